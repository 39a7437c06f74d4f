//! The traffic generator of `testbed bench dataplane`, the same on every
//! path: TCP bulk with plain blocking sockets (one thread per stream on
//! each side), UDP with `sendmmsg`/`recvmmsg` batches (no UDP_SEGMENT: every
//! datagram is its own packet on every hop), and a UDP ping-pong for the
//! round trip. Sockets are made inside the namespace they belong to and
//! then used from ordinary threads (a socket keeps its namespace).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One end of a measurement: a namespace and an address in it.
#[derive(Clone, Debug)]
pub struct End {
    /// Network namespace.
    pub ns: String,
    /// Address to bind (sender: source; receiver: where it listens).
    pub addr: Ipv4Addr,
}

/// Creates something inside namespace `ns`.
pub(super) fn in_ns<T: Send + 'static>(
    ns: &str,
    what: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    topo::netns::run_in_netns(ns, f)
        .map_err(|e| format!("{what} in {ns}: {e}"))?
        .map_err(|e| format!("{what} in {ns}: {e}"))
}

/// Sets SO_RCVBUFFORCE/SO_SNDBUFFORCE (root may pass rmem_max), falling
/// back to the plain options; the generator's buffers are the same on
/// every path.
fn big_buffers(fd: i32, bytes: i32) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let v = bytes;
        let p = &v as *const i32 as *const libc::c_void;
        let len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: fd is an open socket; p points at an i32 of `len` bytes.
        let r = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) };
        if r != 0 {
            // SAFETY: as above.
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len) };
        }
    }
}

/// TCP bulk from `tx` to `rx` with `streams` connections: bytes/s counted
/// by the receiver over `measure`, after `warm` of transfer.
pub fn tcp_bulk(
    tx: &End,
    rx: &End,
    port: u16,
    streams: usize,
    warm: Duration,
    measure: Duration,
) -> Result<f64, String> {
    let at = SocketAddrV4::new(rx.addr, port);
    let l = in_ns(&rx.ns, "TCP listener", move || {
        let l = TcpListener::bind(at)?;
        l.set_nonblocking(false)?;
        Ok(l)
    })?;
    let src = tx.addr;
    let conns = in_ns(&tx.ns, "TCP connect", move || {
        (0..streams)
            .map(|_| connect_from(src, at))
            .collect::<std::io::Result<Vec<TcpStream>>>()
    })
    .map_err(|e| format!("{e} (to {at} from {src})"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers: Vec<(Arc<AtomicU64>, JoinHandle<()>)> = Vec::new();
    for _ in 0..streams {
        let (mut c, _) = l.accept().map_err(|e| format!("accept on {at}: {e}"))?;
        let n = Arc::new(AtomicU64::new(0));
        let n2 = n.clone();
        readers.push((
            n,
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 17];
                while let Ok(k) = c.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n2.fetch_add(k as u64, Ordering::Relaxed);
                }
            }),
        ));
    }
    let writers: Vec<JoinHandle<()>> = conns
        .into_iter()
        .map(|mut c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let chunk = vec![0xa5u8; 1 << 17];
                while !stop.load(Ordering::Relaxed) {
                    if c.write_all(&chunk).is_err() {
                        break;
                    }
                }
                let _ = c.shutdown(std::net::Shutdown::Both);
            })
        })
        .collect();
    let total = || {
        readers
            .iter()
            .map(|(n, _)| n.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    // The measurement window itself (not a synchronisation).
    std::thread::sleep(warm);
    let (b0, t0) = (total(), Instant::now());
    std::thread::sleep(measure);
    let (b1, t1) = (total(), Instant::now());
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    for (_, r) in readers {
        let _ = r.join();
    }
    if b1 == b0 {
        return Err(format!("no TCP data arrived at {at} from {src}"));
    }
    Ok((b1 - b0) as f64 / (t1 - t0).as_secs_f64())
}

/// A TCP connection from `src` to `to` (call inside the source's
/// namespace).
pub(super) fn connect_from(src: Ipv4Addr, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    connect_timeout(socket_with_src(src)?, to)
}

fn socket_with_src(src: Ipv4Addr) -> std::io::Result<TcpStream> {
    // A bound, not yet connected socket: std has no bind-before-connect,
    // so connect through libc on the bound fd.
    // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let s = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    big_buffers(fd, 4 << 20);
    let sa = topo::emu::sockaddr_in(SocketAddrV4::new(src, 0));
    // SAFETY: sa is a valid sockaddr_in of the given length.
    let r = unsafe {
        libc::bind(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}

/// Connects within 3 s (Linux bounds connect(2) by SO_SNDTIMEO).
fn connect_timeout(s: TcpStream, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    let sa = topo::emu::sockaddr_in(to);
    // SAFETY: sa is a valid sockaddr_in; blocking connect on our socket.
    let r = unsafe {
        libc::connect(
            s.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    s.set_write_timeout(None)?;
    Ok(s)
}

/// Datagrams per sendmmsg/recvmmsg call.
const BATCH: usize = 64;

/// UDP sender threads (flows) of a trial: one per core of this machine's
/// class (2 vCPUs), so that the kernel's path, which forwards in the
/// sender's context, can use both.
pub const UDP_SENDERS: usize = 2;

/// What one UDP trial at an offered rate gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trial {
    /// Offered rate (packets/s; infinite: as fast as the sender can).
    pub offered: f64,
    /// Datagrams the sender got out.
    pub sent: u64,
    /// Datagrams the receiver counted.
    pub received: u64,
    /// Seconds of sending.
    pub secs: f64,
}

impl Trial {
    /// Fraction lost.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        1.0 - (self.received.min(self.sent) as f64 / self.sent as f64)
    }
    /// Received packets per second.
    pub fn rx_pps(&self) -> f64 {
        self.received as f64 / self.secs.max(1e-9)
    }
}

/// Sends `size`-byte datagrams from `tx` to `rx:port` at `pps` (infinite:
/// unpaced) for `secs`, counting what arrives.
pub fn udp_trial(
    tx: &End,
    rx: &End,
    port: u16,
    size: usize,
    pps: f64,
    secs: Duration,
) -> Result<Trial, String> {
    let at = SocketAddrV4::new(rx.addr, port);
    let rs = in_ns(&rx.ns, "UDP receiver", move || UdpSocket::bind(at))?;
    big_buffers(rs.as_raw_fd(), 4 << 20);
    rs.set_read_timeout(Some(Duration::from_millis(10)))
        .map_err(|e| e.to_string())?;
    let src = tx.addr;
    let mut socks = Vec::with_capacity(UDP_SENDERS);
    for _ in 0..UDP_SENDERS {
        let ss = in_ns(&tx.ns, "UDP sender", move || {
            let s = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
            s.connect(at)?;
            Ok(s)
        })?;
        big_buffers(ss.as_raw_fd(), 4 << 20);
        socks.push(ss);
    }
    let (count, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (c2, s2) = (count.clone(), stop.clone());
    let receiver = std::thread::spawn(move || recv_count(&rs, size, &c2, &s2));
    // One flow per sender thread (its own source port), each at its share
    // of the rate: the kernel's path forwards in the sender's context, so
    // one thread would measure one core's forwarding, not the path's.
    let share = pps / UDP_SENDERS as f64;
    let senders: Vec<_> = socks
        .into_iter()
        .map(|ss| std::thread::spawn(move || send_paced(&ss, size, share, secs)))
        .collect();
    let (mut sent, mut took) = (0u64, 0f64);
    for h in senders {
        let (n, t) = h
            .join()
            .map_err(|_| "UDP sender thread panicked".to_string())?;
        sent += n;
        took = took.max(t);
    }
    // Drain: until the count stops moving for 30 ms (at most 1 s).
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut last = count.load(Ordering::Relaxed);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(30));
        let now = count.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    Ok(Trial {
        offered: pps,
        sent,
        received: count.load(Ordering::Relaxed),
        secs: took,
    })
}

/// Counts datagrams of `size` bytes with recvmmsg until `stop`.
fn recv_count(s: &UdpSocket, size: usize, count: &AtomicU64, stop: &AtomicBool) {
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: an all-zero mmsghdr is valid (null name and control).
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: msgs point at BATCH live iovecs over live buffers.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            let ok = msgs[..n as usize]
                .iter()
                .filter(|m| m.msg_len as usize == size)
                .count();
            count.fetch_add(ok as u64, Ordering::Relaxed);
        }
    }
}

/// Sends at `pps` for `secs` (batches of up to [`BATCH`]; the sender sleeps
/// between batches, it does not spin). Returns (sent, seconds taken).
fn send_paced(s: &UdpSocket, size: usize, pps: f64, secs: Duration) -> (u64, f64) {
    let mut payload = vec![0x5au8; size];
    let mut iov = vec![
        libc::iovec {
            iov_base: payload.as_mut_ptr() as *mut libc::c_void,
            iov_len: size,
        };
        BATCH
    ];
    // SAFETY: an all-zero mmsghdr is valid (the socket is connected).
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let t0 = Instant::now();
    let mut sent = 0u64;
    loop {
        let el = t0.elapsed();
        if el >= secs {
            break;
        }
        let due = if pps.is_finite() {
            ((pps * el.as_secs_f64()) as u64).saturating_sub(sent)
        } else {
            BATCH as u64
        };
        if due == 0 {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        let k = due.min(BATCH as u64) as usize;
        // SAFETY: msgs[..k] point at live iovecs over `payload`.
        let n = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), k as libc::c_uint, 0) };
        if n > 0 {
            sent += n as u64;
        } else {
            // ENOBUFS or a refused port: count nothing, go on.
            std::thread::yield_now();
        }
    }
    (sent, t0.elapsed().as_secs_f64())
}

/// The loss a rate must stay under.
pub const MAX_LOSS: f64 = 0.001;

/// Outcome of a rate search.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    /// Received packets/s at the highest offered rate with loss under
    /// [`MAX_LOSS`] (0: no tried rate held it).
    pub pps: f64,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

/// The highest rate that holds [`MAX_LOSS`]: first unpaced (if that holds,
/// it is the generator's ceiling), then down from 90% of what arrived
/// unpaced until a rate holds, then bisection; `steps` trials in all.
pub fn search(
    mut trial: impl FnMut(f64) -> Result<Trial, String>,
    steps: usize,
) -> Result<Search, String> {
    let first = trial(f64::INFINITY)?;
    let mut trials = vec![first];
    if first.loss() < MAX_LOSS {
        return Ok(Search {
            pps: first.rx_pps(),
            trials,
        });
    }
    let mut plan = RatePlan::new(first.rx_pps());
    let mut best = 0.0f64;
    for _ in 1..steps.max(2) {
        let Some(r) = plan.next() else { break };
        let t = trial(r)?;
        trials.push(t);
        let held = t.loss() < MAX_LOSS;
        if held {
            best = best.max(t.rx_pps());
        }
        plan.result(r, held);
    }
    Ok(Search { pps: best, trials })
}

/// The rates a search tries: a pure state machine (rates in, next rate out).
#[derive(Clone, Debug, PartialEq)]
pub struct RatePlan {
    /// Highest rate that held.
    lo: Option<f64>,
    /// Lowest rate that failed.
    hi: f64,
}

impl RatePlan {
    /// From the rate that arrived when sending unpaced.
    pub fn new(unpaced_rx: f64) -> RatePlan {
        RatePlan {
            lo: None,
            hi: unpaced_rx.max(1000.0) / 0.9,
        }
    }
    /// The next rate to try (None: the bracket is within 2%).
    pub fn next(&self) -> Option<f64> {
        match self.lo {
            None => Some(self.hi * if self.hi > 1e3 { 0.9 } else { 0.5 }).filter(|r| *r >= 100.0),
            Some(lo) if self.hi / lo > 1.02 => Some((lo * self.hi).sqrt()),
            Some(_) => None,
        }
    }
    /// What happened at `rate`.
    pub fn result(&mut self, rate: f64, held: bool) {
        if held {
            self.lo = Some(self.lo.map_or(rate, |l| l.max(rate)));
        } else {
            self.hi = self.hi.min(rate);
            if self.lo.is_none() {
                // Step down faster while nothing holds.
                self.hi *= 0.7 / 0.9;
            }
        }
    }
}

/// Round trips of 64-byte UDP probes from `tx` to the echo at `echo`, one
/// at a time, `gap` apart (light load); nanoseconds of those answered.
pub fn rtt(tx: &End, echo: SocketAddrV4, n: usize, gap: Duration) -> Result<Vec<u64>, String> {
    let src = tx.addr;
    let s = in_ns(&tx.ns, "RTT probe socket", move || {
        let s = UdpSocket::bind(SocketAddr::from((src, 0)))?;
        s.connect(echo)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(s)
    })?;
    let mut out = Vec::with_capacity(n);
    let (mut buf, mut probe) = ([0u8; 128], [0u8; 64]);
    for i in 0..n as u64 {
        probe[..8].copy_from_slice(&i.to_be_bytes());
        let t = Instant::now();
        if s.send(&probe).is_err() {
            continue;
        }
        // Answers to earlier (late) probes are skipped by their number.
        while let Ok(k) = s.recv(&mut buf) {
            if k >= 8 && buf[..8] == probe[..8] {
                out.push(t.elapsed().as_nanos() as u64);
                break;
            }
        }
        std::thread::sleep(gap);
    }
    if out.is_empty() {
        return Err(format!("no probe from {src} came back from {echo}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_plan_steps_down_then_bisects() {
        let mut p = RatePlan::new(900_000.0);
        let r1 = p.next().expect("first");
        assert!((r1 - 900_000.0).abs() < 1.0, "{r1}");
        p.result(r1, false);
        let r2 = p.next().expect("second");
        assert!((r2 - 630_000.0).abs() < 1.0, "{r2}");
        p.result(r2, true);
        let r3 = p.next().expect("third");
        assert!(r3 > r2 && r3 < r1, "{r3}");
        p.result(r3, true);
        p.result(r3 * 1.01, false);
        assert_eq!(p.next(), None, "within 2%: done");
    }

    #[test]
    fn search_stops_at_the_unpaced_rate_when_it_holds() {
        let s = search(
            |r| {
                Ok(Trial {
                    offered: r,
                    sent: 1000,
                    received: 1000,
                    secs: 1.0,
                })
            },
            6,
        )
        .expect("search");
        assert_eq!((s.pps, s.trials.len()), (1000.0, 1));
    }

    #[test]
    fn search_finds_the_knee_of_a_lossy_path() {
        // A path that holds up to 300 kpps and loses the excess above.
        let path = |r: f64| {
            let sent = if r.is_finite() { r } else { 1e6 };
            Ok(Trial {
                offered: r,
                sent: sent as u64,
                received: sent.min(300_000.0) as u64,
                secs: 1.0,
            })
        };
        let s = search(path, 8).expect("search");
        assert!(s.pps > 250_000.0 && s.pps <= 300_000.0, "{s:?}");
        assert!(s.trials.len() <= 8);
    }
}
