//! Thin, safe wrappers over the system calls the emulator driver uses: AF_PACKET
//! sockets with virtio-net headers, `setns`, `ppoll` with a nanosecond timeout,
//! eventfd, timer slack, and a self-pipe for signals.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Length of `struct virtio_net_hdr`, which prefixes every frame read from or
/// written to a socket with `PACKET_VNET_HDR` set.
pub const VNET_HDR_LEN: usize = 10;

// From <linux/if_packet.h>; defined here so an older libc does not matter.
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `sll_pkttype` of frames this host sent.
pub const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The C form of an IPv4 socket address (for `bind`/`sendto` by libc;
/// also the testbed's traffic generator's and dpio's).
pub fn sockaddr_in(a: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `setsockopt` of a C `int` option (`level`, `opt`) to `val` (also the
/// data path's socket options in dpio).
pub fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, opt, &val)
}

/// `setsockopt` of option (`level`, `opt`) to the C value `val` (an `int`,
/// a `timeval`, a `sock_fprog`...): the kernel copies `size_of::<T>()`
/// bytes from it, and whatever it points to, during the call; a bad
/// pointer inside is the kernel's `EFAULT`, not a fault here.
pub fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` outlives the call and its size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Move the calling thread into the network namespace `/run/netns/<name>`.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: plain syscall on a valid descriptor; affects only this thread.
    cvt(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

/// Interface index of `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<libc::c_int> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx as libc::c_int)
    }
}

fn packet_socket() -> io::Result<OwnedFd> {
    // Protocol 0: the socket receives nothing until bound with a protocol, so no
    // frame of another interface slips in between socket() and bind().
    // SAFETY: plain syscall; the result is checked before being wrapped.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind_packet(fd: RawFd, ifindex: libc::c_int, protocol: u16) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
    cvt(unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Which options a receive socket got (some are best effort).
#[derive(Debug, Clone, Copy)]
pub struct RxOptions {
    /// `PACKET_IGNORE_OUTGOING` accepted (otherwise outgoing frames are filtered by
    /// `sll_pkttype`).
    pub ignore_outgoing: bool,
}

/// A receive socket on `ifindex`: all protocols, virtio-net headers, promiscuous,
/// own transmissions ignored, large receive buffer.
pub fn open_rx(ifindex: libc::c_int, rcvbuf: usize) -> io::Result<(OwnedFd, RxOptions)> {
    let sock = packet_socket()?;
    let fd = sock.as_raw_fd();
    setsockopt_int(fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    let ignore_outgoing = setsockopt_int(fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1).is_ok();
    let rcv = rcvbuf.min(i32::MAX as usize) as libc::c_int;
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, rcv).is_err() {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, rcv)?;
    }
    bind_packet(fd, ifindex, ETH_P_ALL)?;
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: PACKET_MR_PROMISC,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: `mreq` is a valid packet_mreq and its size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            (&mreq as *const libc::packet_mreq).cast(),
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    })?;
    Ok((sock, RxOptions { ignore_outgoing }))
}

/// A transmit-only socket on `ifindex` (bound with protocol 0: receives nothing),
/// expecting a virtio-net header before each frame.
pub fn open_tx(ifindex: libc::c_int, sndbuf: usize) -> io::Result<OwnedFd> {
    let sock = packet_socket()?;
    let fd = sock.as_raw_fd();
    setsockopt_int(fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    let snd = sndbuf.min(i32::MAX as usize) as libc::c_int;
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, snd).is_err() {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, snd)?;
    }
    bind_packet(fd, ifindex, 0)?;
    Ok(sock)
}

/// Receive one frame without blocking. `Ok(None)`: nothing pending. The length is
/// the frame's real length, which exceeds `buf.len()` if it was truncated.
pub fn recv_frame(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, u8)>> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut sll_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `sll` are valid for writes of the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut sll_len,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some((n as usize, sll.sll_pkttype)))
}

/// Send one frame (virtio-net header included) without blocking.
pub fn send_frame(fd: RawFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: `frame` is valid for reads of its length.
    let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An eventfd (non-blocking, close-on-exec).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before being wrapped.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Make an eventfd readable (it stays readable: nobody reads it).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64. Failure (counter overflow) leaves the
    // fd readable anyway, which is all we need.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Readiness returned by [`ppoll2`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    /// First descriptor readable (or in error).
    pub first: bool,
}

/// Wait until `a` or `b` is readable or `timeout` passes (`None`: no timeout),
/// with nanosecond resolution. EINTR is reported as nothing ready.
pub fn ppoll2(a: RawFd, b: RawFd, timeout: Option<Duration>) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: a,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` and `ts` are valid for the duration of the call.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready::default());
        }
        return Err(e);
    }
    Ok(Ready {
        first: fds[0].revents != 0,
    })
}

/// Ask for 1 ns timer slack on the calling thread (the default 50 µs would add up
/// to 50 µs to every timed wait).
pub fn precise_timer_slack() {
    // SAFETY: plain prctl on the calling thread; failure only costs precision.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Run the calling thread under SCHED_FIFO at `priority` (needs CAP_SYS_NICE).
///
/// The emulator stands in for netem, which runs in softirq context above every
/// user task; a real-time worker keeps the added delay precise on a loaded machine.
/// It cannot starve the machine: it only works while frames arrive, and the
/// kernel's RT throttling (95% by default) still applies.
pub fn realtime_priority(priority: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is valid; pid 0 means the calling thread.
    cvt(unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) }).map(drop)
}

static SIGNAL_PIPE_WR: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: an atomic load and write(2); errno is preserved.
    // SAFETY: __errno_location returns the calling thread's errno slot.
    let saved = unsafe { *libc::__errno_location() };
    let fd = SIGNAL_PIPE_WR.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: writes one byte from a valid local.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// Signals arriving as bytes on a pipe (the self-pipe trick), so that one thread can
/// wait for SIGHUP/SIGTERM/SIGINT and for other events (written with [`SignalPipe::notify`]).
#[derive(Debug)]
pub struct SignalPipe {
    rd: OwnedFd,
    wr: OwnedFd,
}

impl SignalPipe {
    /// Create the pipe and install handlers for `signals` (process-wide; at most one
    /// `SignalPipe` should exist at a time).
    pub fn install(signals: &[libc::c_int]) -> io::Result<SignalPipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: fresh descriptors we own.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The write end must never block inside a signal handler.
        // SAFETY: fcntl on a valid descriptor.
        cvt(unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) })?;
        SIGNAL_PIPE_WR.store(wr.as_raw_fd(), Ordering::SeqCst);
        for &sig in signals {
            // SAFETY: all-zero is a valid sigaction; we fill handler, mask, flags.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            // SAFETY: `sa.sa_mask` is a valid sigset_t.
            unsafe { libc::sigemptyset(&mut sa.sa_mask) };
            // SAFETY: installs a handler that only does async-signal-safe work.
            cvt(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) })?;
        }
        Ok(SignalPipe { rd, wr })
    }

    /// A notifier usable from another thread.
    pub fn notifier(&self) -> io::Result<OwnedFd> {
        self.wr.try_clone()
    }

    /// Block until a byte arrives; return it.
    pub fn wait(&self) -> io::Result<u8> {
        loop {
            let mut b = 0u8;
            // SAFETY: reads one byte into a valid local.
            let n = unsafe { libc::read(self.rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1) };
            if n == 1 {
                return Ok(b);
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(if n == 0 {
                io::Error::from(io::ErrorKind::UnexpectedEof)
            } else {
                e
            });
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        SIGNAL_PIPE_WR.store(-1, Ordering::SeqCst);
    }
}

/// Write one byte to a pipe descriptor from [`SignalPipe::notifier`].
pub fn notify_fd(fd: RawFd, byte: u8) {
    // SAFETY: writes one byte from a valid local.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}
