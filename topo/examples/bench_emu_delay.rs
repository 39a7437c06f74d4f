//! Added one-way delay of the userspace link emulator, against a direct veth.
//!
//! `cargo run --release -p topo --example bench_emu_delay [-- PACKETS]` (root).
//!
//! Builds namespaces A and B joined twice: directly by a veth (the baseline) and
//! through an emulator namespace. A sends UDP probes carrying their CLOCK_MONOTONIC
//! send time every millisecond; B records arrival minus send time (one clock for all
//! namespaces). Probe threads and emulator workers run SCHED_FIFO (root), so that
//! other load on the machine does not dominate the tails. Added delay = one-way delay through the emulator − median one-way
//! delay of the direct veth, measured in the same run. Also a TCP bulk transfer
//! through the emulator, direct and with 10 ms each way.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use topo::emu::{run, EmuConfig, EmuControl, Impairment};

const A_EMU: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const B_EMU: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const A_DIR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const B_DIR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

fn ip(args: &[&str]) {
    testkit::run_cmd("ip", args).unwrap_or_else(|e| panic!("{e}"));
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn setup(base: &str) -> Namespaces {
    let (a, e, b) = (
        format!("{base}-a"),
        format!("{base}-e"),
        format!("{base}-b"),
    );
    let guard = Namespaces(vec![a.clone(), e.clone(), b.clone()]);
    for ns in &guard.0 {
        ip(&["netns", "add", ns]);
    }
    ip(&[
        "link",
        "add",
        "a0",
        "netns",
        &a,
        "address",
        "02:00:00:77:00:01",
        "type",
        "veth",
        "peer",
        "name",
        "pa",
        "netns",
        &e,
    ]);
    ip(&[
        "link",
        "add",
        "b0",
        "netns",
        &b,
        "address",
        "02:00:00:77:00:02",
        "type",
        "veth",
        "peer",
        "name",
        "pb",
        "netns",
        &e,
    ]);
    ip(&[
        "link", "add", "a1", "netns", &a, "type", "veth", "peer", "name", "b1", "netns", &b,
    ]);
    for (ns, cmds) in [
        (
            &a,
            vec![
                format!("addr add {A_EMU}/24 dev a0"),
                format!("addr add {A_DIR}/24 dev a1"),
                format!("neigh add {B_EMU} lladdr 02:00:00:77:00:02 dev a0 nud permanent"),
                "link set lo up".into(),
                "link set a0 up".into(),
                "link set a1 up".into(),
            ],
        ),
        (
            &b,
            vec![
                format!("addr add {B_EMU}/24 dev b0"),
                format!("addr add {B_DIR}/24 dev b1"),
                format!("neigh add {A_EMU} lladdr 02:00:00:77:00:01 dev b0 nud permanent"),
                "link set lo up".into(),
                "link set b0 up".into(),
                "link set b1 up".into(),
            ],
        ),
        (
            &e,
            vec![
                "link set pa addrgenmode none".to_string(),
                "link set pb addrgenmode none".into(),
                "link set pa up".into(),
                "link set pb up".into(),
            ],
        ),
    ] {
        let path = std::env::temp_dir().join(format!("{ns}.ipbatch"));
        std::fs::write(&path, cmds.join("\n") + "\n").unwrap();
        ip(&["-n", ns, "-batch", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(path);
    }
    guard
}

fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    topo::netns::run_in_netns_scoped(ns, f).unwrap_or_else(|e| panic!("into {ns}: {e}"))
}

/// Measurement threads run SCHED_FIFO like the emulator's workers, so that on a
/// loaded machine the probes measure the link, not the scheduler (best effort).
fn realtime() {
    let p = libc::sched_param { sched_priority: 10 };
    // SAFETY: valid sched_param; pid 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One-way delays (µs) of `n` probes sent every `gap` from `tx` to `dst` and read on `rx`.
fn one_way(
    tx: &UdpSocket,
    rx: &UdpSocket,
    dst: (Ipv4Addr, u16),
    n: usize,
    gap: Duration,
) -> Vec<f64> {
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    thread::scope(|s| {
        let receiver = s.spawn(|| {
            realtime();
            let mut out = Vec::with_capacity(n);
            let mut buf = [0u8; 64];
            while let Ok(k) = rx.recv(&mut buf) {
                let now = mono_ns();
                if k == 8 {
                    let sent = u64::from_be_bytes(buf[..8].try_into().unwrap());
                    out.push((now - sent) as f64 / 1000.0);
                }
                if out.len() == n {
                    break;
                }
            }
            out
        });
        s.spawn(|| {
            realtime();
            let mut next = Instant::now();
            for _ in 0..n {
                next += gap;
                tx.send_to(&mono_ns().to_be_bytes(), dst).unwrap();
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    thread::sleep(d);
                }
            }
        });
        receiver.join().unwrap()
    })
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn tcp_mbps(a: &str, b: &str, dst: Ipv4Addr, port: u16, secs: f64) -> f64 {
    let listener = in_ns(b, || TcpListener::bind((dst, port)).unwrap());
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        n
    });
    let mut c = in_ns(a, || TcpStream::connect((dst, port)).unwrap());
    let buf = vec![0x5au8; 1 << 16];
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        c.write_all(&buf).unwrap();
    }
    drop(c);
    let n = server.join().unwrap();
    n as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let base = format!("bemu{}", std::process::id());
    let ns = setup(&base);
    let (a, e, b) = (ns.0[0].clone(), ns.0[1].clone(), ns.0[2].clone());

    let control = EmuControl::new();
    let cfg = EmuConfig {
        netns: Some(e),
        port_a: "pa".into(),
        port_b: "pb".into(),
        a_to_b: Impairment::default(),
        b_to_a: Impairment::default(),
        seed: 1,
    };
    let c = control.clone();
    let emu = thread::spawn(move || run(cfg, c));
    assert!(control.wait_ready(Duration::from_secs(5)));

    let tx = in_ns(&a, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap());
    let rx_emu = in_ns(&b, || UdpSocket::bind((B_EMU, 9000)).unwrap());
    let rx_dir = in_ns(&b, || UdpSocket::bind((B_DIR, 9001)).unwrap());
    let gap = Duration::from_millis(1);

    // Warm-up (page faults, neighbour entries on the direct link).
    one_way(&tx, &rx_dir, (B_DIR, 9001), 50, gap);
    one_way(&tx, &rx_emu, (B_EMU, 9000), 50, gap);

    let mut direct = one_way(&tx, &rx_dir, (B_DIR, 9001), n, gap);
    let base_p50 = pct(&mut direct, 0.5);
    let base_p99 = pct(&mut direct, 0.99);

    println!("link emulator added one-way delay, {n} UDP probes per row, 1 ms apart");
    println!(
        "{:<22} {:>10} {:>12} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "path",
        "set ms",
        "one-way p50",
        "one-way p99",
        "added p50",
        "added p99",
        "err p50 ms",
        "received"
    );
    println!(
        "{:<22} {:>10} {:>10.1}µs {:>10.1}µs {:>12} {:>12} {:>12} {:>8}",
        "direct veth (baseline)",
        "-",
        base_p50,
        base_p99,
        "-",
        "-",
        "-",
        direct.len()
    );
    for set_ms in [0u64, 10, 50] {
        let imp = Impairment {
            delay_us: set_ms * 1000,
            ..Impairment::default()
        };
        control.set_impairments(imp.clone(), imp);
        thread::sleep(Duration::from_millis(20));
        let mut v = one_way(&tx, &rx_emu, (B_EMU, 9000), n, gap);
        let p50 = pct(&mut v, 0.5);
        let p99 = pct(&mut v, 0.99);
        let (add50, add99) = (p50 - base_p50, p99 - base_p50);
        let set_us = (set_ms * 1000) as f64;
        println!(
            "{:<22} {:>10} {:>10.1}µs {:>10.1}µs {:>10.1}µs {:>10.1}µs {:>+12.3} {:>8}",
            "through emulator",
            set_ms,
            p50,
            p99,
            add50,
            add99,
            (add50 - set_us) / 1000.0,
            v.len()
        );
    }

    // Jitter: uniform ±2 ms around 10 ms, never reordered (FIFO), so with probes
    // 1 ms apart some wait behind a later-drawn predecessor: p50 sits above 10 ms.
    let jit = Impairment {
        delay_us: 10_000,
        jitter_us: 2_000,
        loss_ppm: 0,
    };
    control.set_impairments(jit.clone(), jit);
    thread::sleep(Duration::from_millis(20));
    let mut v = one_way(&tx, &rx_emu, (B_EMU, 9000), n, gap);
    let (p1, p50, p99) = (pct(&mut v, 0.01), pct(&mut v, 0.5), pct(&mut v, 0.99));
    println!(
        "through emulator, 10 ms ± 2 ms jitter: added p1 {:.2} ms, p50 {:.2} ms, p99 {:.2} ms",
        (p1 - base_p50) / 1000.0,
        (p50 - base_p50) / 1000.0,
        (p99 - base_p50) / 1000.0
    );

    println!();
    println!("TCP bulk A→B, 2 s each");
    let d = tcp_mbps(&a, &b, B_DIR, 9100, 2.0);
    println!("  direct veth:                     {d:>8.0} Mbit/s");
    control.set_impairments(Impairment::default(), Impairment::default());
    let z = tcp_mbps(&a, &b, B_EMU, 9101, 2.0);
    println!(
        "  emulator, no impairment:         {z:>8.0} Mbit/s ({:.2} × direct)",
        z / d
    );
    let ten = Impairment {
        delay_us: 10_000,
        ..Impairment::default()
    };
    control.set_impairments(ten.clone(), ten);
    let t = tcp_mbps(&a, &b, B_EMU, 9102, 2.0);
    println!(
        "  emulator, 10 ms each way:        {t:>8.0} Mbit/s ({:.2} × direct)",
        t / d
    );

    let t0 = Instant::now();
    control.stop();
    let stats = emu.join().unwrap().unwrap();
    println!();
    println!("stop → run() returned in {:?}", t0.elapsed());
    println!("emulator counters: {stats:?}");
    drop(ns);
}
