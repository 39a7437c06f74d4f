//! One UDP port served by several workers: a group of sockets bound to the
//! same address with `SO_REUSEPORT`, each datagram handed to the socket
//! that the sender's source port names ([`bind_group`]), and sender
//! sockets on neighbouring ports ([`bind_sender`]) so that a peer's worker
//! `k` reaches this side's worker `k`.
//!
//! Why the source port: all G-PDUs between one gNB and one UPF share the
//! outer addresses and the destination port 2152, so the kernel's default
//! choice (a hash of the 4-tuple) would hand all of them to one socket, or
//! two senders to the same one by chance. TS 29.281 lets the sender of a
//! G-PDU pick its UDP source port (only the destination is 2152), so each
//! sending worker uses its own, and a classic BPF program on the group
//! picks socket `source port mod n`. A peer that always sends from 2152
//! (2152 = 8 x 269) lands on socket 0, as with one worker.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The environment variable that sets how many data-path workers the gNB
/// and the UPF run when their configuration does not say.
pub const WORKERS_ENV: &str = "MINEDGE_DP_WORKERS";

/// Most workers chosen by default (one per CPU up to this).
pub const MAX_DEFAULT_WORKERS: usize = 4;

/// Workers to run: `configured` if set (at least 1), else [`WORKERS_ENV`]
/// if set (a number from 1 to 64; anything else is refused, naming the
/// variable and its value), else one per CPU up to [`MAX_DEFAULT_WORKERS`].
pub fn workers(configured: Option<usize>) -> io::Result<usize> {
    if let Some(n) = configured {
        return Ok(n.max(1));
    }
    match std::env::var(WORKERS_ENV) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{WORKERS_ENV}={v:?}: not a number of data-path workers from 1 to 64"),
                )
            }),
        Err(_) => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_DEFAULT_WORKERS)),
    }
}

/// A count per data-path worker: each worker adds to its own slot (a
/// cache line of its own) once per batch, a scrape lists them (how the
/// flows spread over the workers).
#[derive(Debug, Default)]
pub struct PerWorker(Box<[Slot]>);

/// One worker's count, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

impl PerWorker {
    /// Zeroed slots for `workers` workers.
    pub fn new(workers: usize) -> PerWorker {
        PerWorker((0..workers).map(|_| Slot::default()).collect())
    }

    /// Adds `n` to worker `k`'s slot (nothing for a zero or an unknown
    /// worker).
    pub fn add(&self, k: usize, n: u64) {
        if let (Some(c), true) = (self.0.get(k), n != 0) {
            c.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Each worker's count, by worker.
    pub fn counts(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).collect()
    }

    /// Worker `k` starts a batch (its slot goes odd), before it loads the
    /// shared state the batch works with: either a [`wait_out_batches`]
    /// that follows a change of that state sees the mark, or the worker's
    /// load sees the change (the SeqCst fence here pairs with the one the
    /// waiter makes after the change).
    ///
    /// [`wait_out_batches`]: Self::wait_out_batches
    pub fn enter_batch(&self, k: usize) {
        if let Some(c) = self.0.get(k) {
            c.0.fetch_add(1, Ordering::Relaxed);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Worker `k` has ended its batch (its slot goes even): what the batch
    /// wrote before this (sends, counters) is seen by a
    /// [`wait_out_batches`](Self::wait_out_batches) that returns after it.
    pub fn leave_batch(&self, k: usize) {
        if let Some(c) = self.0.get(k) {
            c.0.fetch_add(1, Ordering::Release);
        }
    }

    /// For workers that mark each batch with [`enter_batch`] and
    /// [`leave_batch`] (odd: inside a batch), after a change of the state
    /// their batches load: waits until every worker that is inside a batch
    /// now has left it, at most until `deadline`; `Err(k)` names a worker
    /// still in the same batch then. Spins, yielding the CPU: a batch takes
    /// microseconds.
    ///
    /// [`enter_batch`]: Self::enter_batch
    /// [`leave_batch`]: Self::leave_batch
    pub fn wait_out_batches(&self, deadline: Instant) -> Result<(), usize> {
        // Pairs with the fence in `enter_batch`: either this reads a
        // worker's mark, or the worker's load sees the change made before.
        std::sync::atomic::fence(Ordering::SeqCst);
        for (k, slot) in self.0.iter().enumerate() {
            let mark = slot.0.load(Ordering::Acquire);
            while mark % 2 == 1 && slot.0.load(Ordering::Acquire) == mark {
                if Instant::now() >= deadline {
                    return Err(k);
                }
                std::thread::yield_now();
            }
        }
        Ok(())
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A UDP socket with `SO_REUSEPORT`, bound to `addr`.
fn bind_reuseport(addr: SocketAddrV4) -> io::Result<UdpSocket> {
    // SAFETY: socket(2) returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just opened and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    topo::emu::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    let sa = topo::emu::sockaddr_in(addr);
    // SAFETY: `sa` is a valid sockaddr_in that outlives the call.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(UdpSocket::from(fd))
}

/// The classic BPF program of a group of `n` sockets: socket index =
/// the datagram's UDP source port mod `n` (IPv4; the IP header's length
/// is read from the packet).
fn source_port_program(n: u32) -> [libc::sock_filter; 4] {
    // Offsets relative to the network header (SKF_NET_OFF).
    const NET: u32 = (-0x0010_0000i32) as u32;
    let op = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    [
        // X = 4 * (IP header's IHL)
        op((libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16, NET),
        // A = UDP source port (first half-word after the IP header)
        op((libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16, NET),
        // A = A mod n
        op((libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16, n),
        // the socket's index
        op((libc::BPF_RET | libc::BPF_A) as u16, 0),
    ]
}

/// Attaches the classic BPF program `prog` to `sock` as socket option
/// `opt` (`SO_ATTACH_FILTER`, `SO_ATTACH_REUSEPORT_CBPF`).
fn attach(sock: &UdpSocket, opt: libc::c_int, prog: &mut [libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // `fprog` points at `prog`, both live across the call; the kernel
    // copies the program.
    topo::emu::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, opt, &fprog)
}

/// Attaches [`source_port_program`] to the group `sock` belongs to.
fn steer_by_source_port(sock: &UdpSocket, n: u32) -> io::Result<()> {
    attach(
        sock,
        libc::SO_ATTACH_REUSEPORT_CBPF,
        &mut source_port_program(n),
    )
}

/// Makes `sock` a sender only: a socket filter that accepts nothing drops
/// whatever comes to it before it is queued (nobody reads a sender, and a
/// queue that is never read would hold up to its buffer's size).
fn send_only(sock: UdpSocket) -> io::Result<UdpSocket> {
    let mut drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    attach(&sock, libc::SO_ATTACH_FILTER, &mut drop_all)?;
    Ok(sock)
}

/// What [`bind_group`] made.
#[derive(Debug)]
pub struct Group {
    /// The sockets, worker `k`'s at index `k`.
    pub sockets: Vec<UdpSocket>,
    /// Why datagrams are not steered by source port, if they are not (the
    /// kernel then spreads them by a hash of the 4-tuple).
    pub steering_error: Option<io::Error>,
}

/// `n` UDP sockets on `addr` (port 0: one port chosen by the kernel for
/// all), each datagram handed to socket `source port mod n`. With `n` = 1,
/// one plain socket. An address already in use is refused as by a plain
/// bind, also by another group: a group is only made on a free address.
pub fn bind_group(addr: SocketAddrV4, n: usize) -> io::Result<Group> {
    if n <= 1 {
        return Ok(Group {
            sockets: vec![UdpSocket::bind(addr)?],
            steering_error: None,
        });
    }
    // A plain bind fails on an address in use, with or without
    // SO_REUSEPORT on the other socket; then it is released for the group.
    let port = {
        let probe = UdpSocket::bind(addr)?;
        probe.local_addr()?.port()
    };
    let at = SocketAddrV4::new(*addr.ip(), port);
    let first = bind_reuseport(at)?;
    let mut sockets = Vec::with_capacity(n);
    sockets.push(first);
    while sockets.len() < n {
        sockets.push(bind_reuseport(at)?);
    }
    let steering_error = steer_by_source_port(&sockets[0], n as u32).err();
    Ok(Group {
        sockets,
        steering_error,
    })
}

/// The socket worker `k` sends from: `group[0]` itself for `k` = 0 (a
/// clone), else a socket bound to `ip` and the group's port + `k`, or to a
/// port the kernel picks when that one is taken (`Err` holds why, beside
/// the socket). A socket of its own takes no input: what a peer sends to
/// it (a G-PDU or an Error Indication to the wrong port, TS 29.281 4.4.2
/// names 2152) is dropped by the kernel instead of queued unread.
pub fn bind_sender(group: &[UdpSocket], k: usize) -> io::Result<(UdpSocket, Option<io::Error>)> {
    let local = match group.first() {
        Some(s) => s.local_addr()?,
        None => return Err(io::Error::other("empty socket group")),
    };
    let SocketAddr::V4(local) = local else {
        return Err(io::Error::other("IPv6 socket group"));
    };
    if k == 0 {
        return Ok((group[0].try_clone()?, None));
    }
    let want = local.port().checked_add(k as u16).filter(|p| *p != 0);
    let ip: Ipv4Addr = *local.ip();
    let any = || UdpSocket::bind(SocketAddrV4::new(ip, 0)).and_then(send_only);
    match want.map(|p| UdpSocket::bind(SocketAddrV4::new(ip, p))) {
        Some(Ok(s)) => Ok((send_only(s)?, None)),
        Some(Err(e)) => Ok((any()?, Some(e))),
        None => Ok((any()?, None)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn waiting_out_batches_waits_for_the_workers_inside_one() {
        let p = std::sync::Arc::new(PerWorker::new(3));
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(p.wait_out_batches(soon), Ok(()), "nobody in a batch");
        p.enter_batch(1);
        p.enter_batch(2);
        p.leave_batch(2);
        assert_eq!(p.wait_out_batches(soon), Err(1), "worker 1 never leaves");
        // Worker 1 leaves its batch and starts the next: not waited for.
        let ends = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                p.leave_batch(1);
                p.enter_batch(1);
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(p.wait_out_batches(deadline), Ok(()));
        assert!(p.counts()[1] >= 3, "returned before the batch ended");
        ends.join().unwrap();
    }

    #[test]
    fn the_sender_port_picks_the_socket_of_the_group() {
        let lo = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let g = bind_group(lo, 2).unwrap();
        assert!(g.steering_error.is_none(), "{:?}", g.steering_error);
        assert_eq!(g.sockets.len(), 2);
        let to = g.sockets[0].local_addr().unwrap();
        assert_eq!(to, g.sockets[1].local_addr().unwrap(), "one port");
        for s in &g.sockets {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        // Four senders of each parity, each several datagrams: every one
        // lands on socket (port mod 2) (a hash would put all eight
        // right by chance once in 256 runs).
        let mut senders: Vec<UdpSocket> = Vec::new();
        let parity = |v: &[UdpSocket], p: u16| {
            v.iter()
                .filter(|s| s.local_addr().unwrap().port() % 2 == p)
                .count()
        };
        while parity(&senders, 0) < 4 || parity(&senders, 1) < 4 {
            let s = UdpSocket::bind(lo).unwrap();
            let p = s.local_addr().unwrap().port() % 2;
            if parity(&senders, p) < 4 {
                senders.push(s);
            }
        }
        for s in &senders {
            let port = s.local_addr().unwrap().port();
            for _ in 0..3 {
                s.send_to(&port.to_be_bytes(), to).unwrap();
                let mut b = [0u8; 8];
                let (n, from) = g.sockets[usize::from(port % 2)].recv_from(&mut b).unwrap();
                assert_eq!((n, from.port()), (2, port));
            }
        }
    }

    #[test]
    fn a_group_is_refused_on_an_address_in_use_and_senders_take_the_next_ports() {
        let lo = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let g = bind_group(lo, 3).unwrap();
        let SocketAddr::V4(at) = g.sockets[0].local_addr().unwrap() else {
            panic!("v4")
        };
        let e = bind_group(at, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert_eq!(
            UdpSocket::bind(at).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        let (s0, e0) = bind_sender(&g.sockets, 0).unwrap();
        assert_eq!(
            (s0.local_addr().unwrap().port(), e0.is_none()),
            (at.port(), true)
        );
        // A taken port: the sender moves to another and says why.
        let next = SocketAddrV4::new(*at.ip(), at.port() + 1);
        if let Ok(_held) = UdpSocket::bind(next) {
            let (s1, e1) = bind_sender(&g.sockets, 1).unwrap();
            let p1 = s1.local_addr().unwrap().port();
            assert_ne!(p1, next.port());
            assert_eq!(e1.map(|e| e.kind()), Some(io::ErrorKind::AddrInUse));
        }
        // A free one: taken as asked (unless a test beside this one took
        // it meanwhile, which the error then says).
        let (s2, e2) = bind_sender(&g.sockets, 2).unwrap();
        let p2 = s2.local_addr().unwrap().port();
        assert_eq!(e2.is_none(), p2 == at.port() + 2, "{p2} {e2:?}");
        assert_eq!(workers(Some(0)).unwrap(), 1);
        assert_eq!(workers(Some(3)).unwrap(), 3);
        // A sender of its own takes no input. Datagrams from one socket
        // over loopback keep their order: once the marker reached the
        // group (the socket of the peer's port), the one sent to s2 before
        // it was dropped, not queued.
        let peer = UdpSocket::bind(lo).unwrap();
        peer.send_to(b"to a sender", s2.local_addr().unwrap())
            .unwrap();
        peer.send_to(b"marker", at).unwrap();
        let mine = &g.sockets[usize::from(peer.local_addr().unwrap().port() % 3)];
        mine.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        let n = mine.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"marker");
        s2.set_nonblocking(true).unwrap();
        let e = s2.recv(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "a sender queued input");
        match std::env::var(WORKERS_ENV) {
            Err(_) => assert!((1..=MAX_DEFAULT_WORKERS).contains(&workers(None).unwrap())),
            Ok(v) => assert_eq!(
                workers(None).ok(),
                v.trim().parse().ok().filter(|n| (1..=64).contains(n))
            ),
        }
    }
}
