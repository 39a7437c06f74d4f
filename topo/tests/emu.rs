//! Link emulator on real namespaces: A ⇄ [emulator namespace] ⇄ B.
//!
//! Needs root (network namespaces). Every test makes its own namespaces with a
//! unique prefix and removes them on drop, also when it fails.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use topo::emu::{run, EmuConfig, EmuControl, EmuError, Impairment};

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const A_MAC: &str = "02:00:00:09:00:01";
const B_MAC: &str = "02:00:00:09:00:02";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    testkit::run_cmd("ip", args).unwrap_or_else(|e| panic!("{e}"));
}

/// Three namespaces: `a` (10.9.0.1 on a0), `e` (ports pa, pb), `b` (10.9.0.2 on b0).
/// Deleted on drop.
struct Link {
    a: String,
    e: String,
    b: String,
}

impl Link {
    fn new(tag: &str) -> Link {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("emut{}-{}-{tag}", std::process::id(), n);
        let link = Link {
            a: format!("{base}-a"),
            e: format!("{base}-e"),
            b: format!("{base}-b"),
        };
        for ns in [&link.a, &link.e, &link.b] {
            ip(&["netns", "add", ns]);
        }
        let (a, e, b) = (link.a.as_str(), link.e.as_str(), link.b.as_str());
        // Veths are created straight into their namespaces: no names in the root one.
        ip(&[
            "link", "add", "a0", "netns", a, "address", A_MAC, "type", "veth", "peer", "name",
            "pa", "netns", e,
        ]);
        ip(&[
            "link", "add", "b0", "netns", b, "address", B_MAC, "type", "veth", "peer", "name",
            "pb", "netns", e,
        ]);
        let batches = [
            (
                a,
                vec![
                    // No IPv6 link-local addresses: only the test's own frames cross.
                    "link set a0 addrgenmode none".to_string(),
                    format!("addr add {A_IP}/24 dev a0"),
                    // Static neighbours: no ARP through the (lossy) link.
                    format!("neigh add {B_IP} lladdr {B_MAC} dev a0 nud permanent"),
                    "link set lo up".into(),
                    "link set a0 up".into(),
                ],
            ),
            (
                b,
                vec![
                    "link set b0 addrgenmode none".to_string(),
                    format!("addr add {B_IP}/24 dev b0"),
                    format!("neigh add {A_IP} lladdr {A_MAC} dev b0 nud permanent"),
                    "link set lo up".into(),
                    "link set b0 up".into(),
                ],
            ),
            (
                e,
                vec![
                    "link set pa addrgenmode none".to_string(),
                    "link set pb addrgenmode none".into(),
                    "link set pa up".into(),
                    "link set pb up".into(),
                ],
            ),
        ];
        for (ns, lines) in batches {
            let path = std::env::temp_dir().join(format!("{ns}.ipbatch"));
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            ip(&["-n", ns, "-batch", path.to_str().unwrap()]);
            let _ = std::fs::remove_file(path);
        }
        link
    }

    fn config(&self, a_to_b: Impairment, b_to_a: Impairment) -> EmuConfig {
        EmuConfig {
            netns: Some(self.e.clone()),
            port_a: "pa".into(),
            port_b: "pb".into(),
            a_to_b,
            b_to_a,
            seed: 1234,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.a, &self.e, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Run `f` on a thread inside namespace `ns` (sockets it creates stay there).
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    topo::netns::run_in_netns_scoped(ns, f).unwrap_or_else(|e| panic!("into {ns}: {e}"))
}

fn delay(ms: u64) -> Impairment {
    Impairment {
        delay_us: ms * 1000,
        ..Impairment::default()
    }
}

/// Emulator running in-process on a thread; stopped (and joined) on drop.
struct InProc {
    control: EmuControl,
    handle: Option<thread::JoinHandle<Result<topo::emu::EmuStats, EmuError>>>,
}

impl InProc {
    fn start(cfg: EmuConfig) -> InProc {
        let control = EmuControl::new();
        let c = control.clone();
        let handle = thread::spawn(move || run(cfg, c));
        assert!(
            control.wait_ready(Duration::from_secs(5)),
            "emulator not ready"
        );
        InProc {
            control,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> topo::emu::EmuStats {
        self.control.stop();
        self.handle.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        self.control.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A UDP echo at B_IP:7000 in the link's `b` namespace, stopped on drop.
fn echo(link: &Link) -> testkit::UdpServer {
    let sock = in_ns(&link.b, || UdpSocket::bind((B_IP, 7000)).unwrap());
    testkit::udp_echo(sock).unwrap()
}

fn client(link: &Link) -> UdpSocket {
    let sock = in_ns(&link.a, || UdpSocket::bind((A_IP, 0)).unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock
}

/// Median RTT of `n` sequential echoes (lost ones are skipped).
fn median_rtt(sock: &UdpSocket, n: u32) -> Duration {
    let dst = SocketAddr::from((B_IP, 7000));
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    for seq in 0..n {
        let t0 = Instant::now();
        sock.send_to(&seq.to_be_bytes(), dst).unwrap();
        loop {
            match sock.recv_from(&mut buf) {
                Ok((4, _)) if buf[..4] == seq.to_be_bytes() => {
                    rtts.push(t0.elapsed());
                    break;
                }
                Ok(_) => continue, // a late reply to an earlier probe
                Err(_) => break,
            }
        }
    }
    assert!(
        rtts.len() as u32 >= n / 2,
        "only {} of {n} echoes",
        rtts.len()
    );
    rtts.sort();
    rtts[rtts.len() / 2]
}

/// The RTT of one echo, `None` if it is lost.
fn one_rtt(sock: &UdpSocket) -> Option<Duration> {
    let probe = u32::MAX.to_be_bytes();
    let t0 = Instant::now();
    sock.send_to(&probe, (B_IP, 7000)).ok()?;
    let mut buf = [0u8; 64];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((4, _)) if buf[..4] == probe => return Some(t0.elapsed()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// The median RTT of `n` echoes is the set delay `expect_ms` plus at most
/// 1.5 ms. Never under it (an emulator that forwards early is wrong at
/// once); over it, measured again up to twice: on this 2-vCPU VM a busy
/// host can wake the emulator's idle vCPU milliseconds late for a whole
/// measurement (seen once in CI: all four delay tests 2-4 ms over at the
/// same moment), which is the host, not the emulator. Returns the median
/// that passed.
fn assert_median_rtt(sock: &UdpSocket, n: u32, expect_ms: u64) -> Duration {
    let lo = Duration::from_millis(expect_ms);
    let hi = lo + Duration::from_micros(1500);
    let mut medians = Vec::new();
    for _ in 0..3 {
        let rtt = median_rtt(sock, n);
        assert!(rtt >= lo, "median RTT {rtt:?} under the {expect_ms} ms set");
        if rtt <= hi {
            return rtt;
        }
        medians.push(rtt);
    }
    panic!("median RTT {medians:?} in three tries, expected {expect_ms} ms (+1.5 ms)");
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn udp_rtt_is_twice_the_delay() {
    testkit::require_root();
    let link = Link::new("rtt");
    let emu = InProc::start(link.config(delay(10), delay(10)));
    let _echo = echo(&link);
    let sock = client(&link);
    let rtt = assert_median_rtt(&sock, 30, 20);
    eprintln!("median RTT through 2 × 10 ms: {rtt:?}");
    let stats = emu.stop();
    assert!(stats.a_to_b.forwarded >= 15 && stats.b_to_a.forwarded >= 15);
    assert_eq!(stats.a_to_b.rx_errors + stats.b_to_a.rx_errors, 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn asymmetric_delay_applies_per_direction() {
    testkit::require_root();
    let link = Link::new("asym");
    let _emu = InProc::start(link.config(delay(2), delay(8)));
    let _echo = echo(&link);
    let sock = client(&link);
    assert_median_rtt(&sock, 20, 10);
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn ten_percent_loss_drops_about_ten_percent() {
    testkit::require_root();
    let link = Link::new("loss");
    let lossy = Impairment {
        loss_ppm: 100_000,
        ..Impairment::default()
    };
    let emu = InProc::start(link.config(lossy, Impairment::default()));
    let rx = in_ns(&link.b, || UdpSocket::bind((B_IP, 7001)).unwrap());
    // Room for every datagram the emulator forwards, also when the counter
    // waits for a core (CI once lost 65 here, and the test with them).
    topo::emu::setsockopt_int(
        std::os::fd::AsRawFd::as_raw_fd(&rx),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        4 << 20,
    )
    .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let tx = client(&link);
    let n = 2000u32;
    let sent_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counter = {
        let sent_all = sent_all.clone();
        thread::spawn(move || {
            let mut got = 0u32;
            let mut buf = [0u8; 64];
            // Until the sender is done and nothing came for 300 ms (a
            // sender held up longer does not end the count early).
            loop {
                match rx.recv_from(&mut buf) {
                    Ok(_) => got += 1,
                    Err(_) if sent_all.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            got
        })
    };
    for i in 0..n {
        tx.send_to(&i.to_be_bytes(), (B_IP, 7001)).unwrap();
        if i % 50 == 49 {
            // pacing, not synchronisation: bursts the emulator's queue holds
            thread::sleep(Duration::from_millis(1));
        }
    }
    sent_all.store(true, Ordering::Relaxed);
    let got = counter.join().unwrap();
    let stats = emu.stop();
    let lost = n - got;
    eprintln!("sent {n}, received {got}, emulator stats {stats:?}");
    // Binomial(2000, 0.1): mean 200, σ ≈ 13.4; ±75 is more than 5σ.
    assert!((125..=275).contains(&lost), "lost {lost} of {n}");
    assert_eq!(stats.a_to_b.rx_frames, u64::from(n));
    assert_eq!(stats.a_to_b.lost, u64::from(lost));
    assert_eq!(stats.a_to_b.forwarded, u64::from(got));
    assert_eq!(stats.a_to_b.queue_full + stats.a_to_b.tx_errors, 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn control_update_changes_delay_while_running() {
    testkit::require_root();
    let link = Link::new("upd");
    let emu = InProc::start(link.config(delay(3), delay(3)));
    let _echo = echo(&link);
    let sock = client(&link);
    assert_median_rtt(&sock, 15, 6);
    emu.control.set_impairments(delay(12), delay(4));
    assert_median_rtt(&sock, 15, 16);
    emu.control
        .set_impairments(Impairment::default(), Impairment::default());
    let rtt = median_rtt(&sock, 15);
    assert!(rtt < Duration::from_millis(1), "RTT without delay {rtt:?}");
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn tcp_bulk_through_10ms_link() {
    testkit::require_root();
    let link = Link::new("tcp");
    let emu = InProc::start(link.config(delay(10), delay(10)));
    let listener = in_ns(&link.b, || TcpListener::bind((B_IP, 7002)).unwrap());
    let total: usize = 64 << 20;
    let pattern: Arc<Vec<u8>> = Arc::new((0..65521usize).map(|i| (i * 7 % 256) as u8).collect());
    let pat = pattern.clone();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let (mut n, mut corrupt) = (0usize, 0usize);
        loop {
            let k = s.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            // Compare against the cyclic pattern (memcmp per contiguous piece).
            let mut done = 0;
            while done < k {
                let off = (n + done) % pat.len();
                let len = (k - done).min(pat.len() - off);
                if buf[done..done + len] != pat[off..off + len] {
                    corrupt += 1;
                }
                done += len;
            }
            n += k;
        }
        (n, corrupt)
    });
    let mut stream = in_ns(&link.a, || TcpStream::connect((B_IP, 7002)).unwrap());
    let t0 = Instant::now();
    let mut sent = 0usize;
    while sent < total {
        let off = sent % pattern.len();
        let len = (total - sent).min(pattern.len() - off);
        stream.write_all(&pattern[off..off + len]).unwrap();
        sent += len;
    }
    drop(stream);
    let (got, corrupt) = server.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let stats = emu.stop();
    let a2b = stats.a_to_b;
    eprintln!(
        "TCP {} MiB through 2 × 10 ms in {secs:.2} s = {:.0} Mbit/s; a_to_b {} frames, {:.0} B/frame; {stats:?}",
        total >> 20,
        total as f64 * 8.0 / secs / 1e6,
        a2b.forwarded,
        a2b.forwarded_bytes as f64 / a2b.forwarded.max(1) as f64,
    );
    assert_eq!(got, total);
    assert_eq!(corrupt, 0, "payload corrupted");
    assert_eq!(a2b.rx_errors + stats.b_to_a.rx_errors, 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn missing_port_is_an_error() {
    testkit::require_root();
    let link = Link::new("noport");
    let mut cfg = link.config(Impairment::default(), Impairment::default());
    cfg.port_b = "nosuch0".into();
    match run(cfg, EmuControl::new()) {
        Err(EmuError::NoSuchPort { name, .. }) => assert_eq!(name, "nosuch0"),
        other => panic!("expected NoSuchPort, got {other:?}"),
    }
    let mut cfg = link.config(Impairment::default(), Impairment::default());
    cfg.netns = Some(format!("{}-missing", link.e));
    assert!(matches!(
        run(cfg, EmuControl::new()),
        Err(EmuError::Netns { .. })
    ));
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn stop_before_traffic_returns_promptly() {
    testkit::require_root();
    let link = Link::new("stop");
    let emu = InProc::start(link.config(delay(50), delay(50)));
    let t0 = Instant::now();
    let stats = emu.stop();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(stats.a_to_b.forwarded, 0);
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: plain kill(2) to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn cli_sighup_reloads_and_sigterm_stops() {
    testkit::require_root();
    let link = Link::new("cli");
    let dir = std::env::temp_dir().join(format!("{}-cfg", link.e));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emu.json");
    link.config(delay(4), delay(4)).write_file(&path).unwrap();
    // The emulator process `topo up` starts: `topo emu-run --config FILE`.
    let child = Command::new(env!("CARGO_BIN_EXE_topo"))
        .arg("emu-run")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = testkit::KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = lines.next().expect("child exited before ready").unwrap();
        if line.trim_end() == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "no ready line");
    }
    let _echo = echo(&link);
    let sock = client(&link);
    assert_median_rtt(&sock, 15, 8);

    link.config(delay(9), delay(6)).write_file(&path).unwrap();
    signal(&child.0, libc::SIGHUP);
    // Reloaded once a probe takes the new delay (15 ms instead of 8 ms).
    assert!(
        testkit::wait_until(Duration::from_secs(5), || one_rtt(&sock)
            .is_some_and(|rtt| rtt >= Duration::from_millis(12))),
        "SIGHUP did not reload the impairments within 5 s"
    );
    assert_median_rtt(&sock, 15, 15);

    let t0 = Instant::now();
    signal(&child.0, libc::SIGTERM);
    let mut status = None;
    assert!(
        testkit::wait_until(Duration::from_secs(5), || {
            status = child.0.try_wait().unwrap();
            status.is_some()
        }),
        "still running 5 s after SIGTERM"
    );
    let status = status.unwrap();
    eprintln!("emulator exited {:?} after SIGTERM", t0.elapsed());
    assert!(status.success(), "{status:?}");
    // Nothing forwards any more.
    let dst = SocketAddr::from((B_IP, 7000));
    sock.send_to(b"late", dst).unwrap();
    let mut buf = [0u8; 16];
    assert!(sock.recv_from(&mut buf).is_err());
    let _ = std::fs::remove_dir_all(dir);
}
