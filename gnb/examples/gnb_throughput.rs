//! Throughput through the gNB (+ a routing fake UPF) against plain kernel
//! routing over the same namespaces and links, in one run.
//!
//! ```text
//! sudo cargo run --release -p gnb --example gnb_throughput [-- SECONDS [filter]]
//! ```
//!
//! The gNB runs without its radio-side packet filter (`radio_firewall =
//! false`): the filter drops exactly the kernel-routed baseline (radio
//! traffic that does not go into the TUN). With `filter` it runs with it,
//! for the tunnel column's A/B (the kernel column is then 0).
//!
//! UE ns -- radio -- gNB ns -- n3 -- UPF ns (DN host 10.60.0.1 on its TUN).
//! "tunnel": the UE's session address 10.45.0.2, through the gNB's TUN and
//! GTP-U data path and the fake UPF's (two userspace hops). "kernel": a
//! second UE address 10.46.0.2 routed by the kernels of the same
//! namespaces, over the same veths. Each figure is the receiver's count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::gnb::{addr, FakeSession, InProcessGnb, RoutedUpf, Topo};
use testkit::Netns;
use wire::ctl::{TunnelSetup, TunnelSetupResponse};

const TUNNEL_SRC: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 2);
const KERNEL_SRC: Ipv4Addr = Ipv4Addr::new(10, 46, 0, 2);

/// Uplink UDP: datagrams of `size` bytes from `src` in the UE ns for `secs`;
/// returns (Mbit/s, kpps) received at the DN host.
fn udp_up(topo: &Topo, src: Ipv4Addr, size: usize, secs: f64, port: u16) -> (f64, f64) {
    let rx = topo.upf.udp((addr::DN_HOST, port)).unwrap();
    udp(rx, &topo.ue, src, addr::DN_HOST, size, secs, port)
}

/// Downlink UDP: from the DN host to `dst` in the UE ns.
fn udp_down(topo: &Topo, dst: Ipv4Addr, size: usize, secs: f64, port: u16) -> (f64, f64) {
    let rx = topo.ue.udp((dst, port)).unwrap();
    udp(rx, &topo.upf, addr::DN_HOST, dst, size, secs, port)
}

fn udp(
    rx: UdpSocket,
    tx_ns: &Netns,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    size: usize,
    secs: f64,
    port: u16,
) -> (f64, f64) {
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (bytes, pkts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (b2, p2) = (bytes.clone(), pkts.clone());
    let receiver = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        while let Ok(n) = rx.recv(&mut buf) {
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            b2.fetch_add(n as u64, Ordering::Relaxed);
            p2.fetch_add(1, Ordering::Relaxed);
        }
        first
            .map(|f| last.duration_since(f).as_secs_f64())
            .unwrap_or(0.0)
    });
    tx_ns
        .run(move || {
            let s = UdpSocket::bind((src, 0)).unwrap();
            let payload = vec![0x5au8; size];
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end {
                for _ in 0..64 {
                    let _ = s.send_to(&payload, (dst, port));
                }
            }
        })
        .unwrap();
    let dur = receiver.join().unwrap().max(1e-9);
    let b = bytes.load(Ordering::Relaxed) as f64;
    let p = pkts.load(Ordering::Relaxed) as f64;
    (b * 8.0 / dur / 1e6, p / dur / 1e3)
}

/// Uplink TCP bulk transfer from `src` for `secs`; Mbit/s at the receiver.
fn tcp_up(topo: &Topo, src: Ipv4Addr, secs: f64, port: u16) -> f64 {
    let l = topo
        .upf
        .run(move || std::net::TcpListener::bind((addr::DN_HOST, port)).unwrap())
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let start = Instant::now();
        let mut total = 0u64;
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        (total, start.elapsed().as_secs_f64())
    });
    topo.ue
        .run(move || {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
            s.connect(&SocketAddr::from((addr::DN_HOST, port)).into())
                .unwrap();
            let mut c: std::net::TcpStream = s.into();
            let chunk = vec![0xa5u8; 1 << 16];
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end {
                if c.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let (total, dur) = server.join().unwrap();
    total as f64 * 8.0 / dur / 1e6
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let topo = Topo::new("h7thr").expect("topology (needs root)");
    let upf = RoutedUpf::start(&topo.upf, addr::UPF_N3).unwrap();
    let mut cfg = topo.gnb_config(7000);
    let filter = std::env::args().nth(2).as_deref() == Some("filter");
    cfg.radio_firewall = filter;
    let gnb = InProcessGnb::start(&topo.gnb, cfg).unwrap();

    // The session (as the SMF would set it up) and the UE's side of it.
    let setup = TunnelSetup {
        ue_id: "imsi-001010000000001".into(),
        pdu_session_id: 1,
        ue_addr: TUNNEL_SRC,
        ul_teid: 0x100,
        ul_addr: addr::UPF_N3.into(),
        qfi: 9,
    };
    let url = format!(
        "http://{}:{}/n2/tunnels",
        addr::GNB_N3,
        wire::ctl::GNB_N2_PORT
    );
    let r: TunnelSetupResponse = topo
        .upf
        .run(move || {
            let c = ctlhttp::blocking::Client::new(Duration::from_secs(10));
            let body = serde_json::to_vec(&setup).unwrap();
            ctlhttp::blocking::json_of(&url, c.post_json(&url, body)).unwrap()
        })
        .unwrap();
    upf.sessions.lock().unwrap().insert(
        TUNNEL_SRC,
        FakeSession {
            dl_teid: r.dl_teid,
            gnb: SocketAddr::from((addr::GNB_N3, 2152)),
            qfi: 9,
        },
    );
    let gw = addr::GNB_RADIO.to_string();
    for (src, table) in [(TUNNEL_SRC, "1001"), (KERNEL_SRC, "2000")] {
        let a = format!("{src}/32");
        topo.ue.ip(&["addr", "add", &a, "dev", "radio"]).unwrap();
        topo.ue
            .ip(&["rule", "add", "from", &a, "lookup", table, "pref", "100"])
            .unwrap();
        topo.ue
            .ip(&[
                "route", "add", "default", "via", &gw, "dev", "radio", "table", table,
            ])
            .unwrap();
    }
    // Kernel path: the gNB routes 10.46.0.0/24 itself (before its TUN rule).
    topo.gnb
        .ip(&[
            "rule",
            "add",
            "from",
            "10.46.0.0/24",
            "lookup",
            "main",
            "pref",
            "50",
        ])
        .unwrap();
    topo.gnb
        .ip(&[
            "route",
            "add",
            "10.60.0.0/24",
            "via",
            &addr::UPF_N3.to_string(),
        ])
        .unwrap();
    topo.gnb
        .ip(&["route", "add", &format!("{KERNEL_SRC}/32"), "dev", "radio"])
        .unwrap();
    topo.upf
        .ip(&[
            "route",
            "add",
            "10.46.0.0/24",
            "via",
            &addr::GNB_N3.to_string(),
        ])
        .unwrap();

    // Warm up ARP on both paths.
    let _ = udp_up(&topo, TUNNEL_SRC, 64, 0.1, 5000);
    let _ = udp_up(&topo, KERNEL_SRC, 64, 0.1, 5001);

    println!("throughput, {secs} s per figure, same namespaces and veths (receiver's count)");
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "test", "kernel", "gNB+fake UPF", "ratio"
    );
    let row = |name: &str, k: f64, t: f64, unit: &str| {
        println!(
            "{name:<28} {:>9.1} {unit:<4} {:>9.1} {unit:<4} {:>8.2}",
            k,
            t,
            t / k
        );
    };
    let mut port = 6000;
    let mut next = || {
        port += 1;
        port
    };
    for size in [64usize, 1400] {
        let (km, kp) = udp_up(&topo, KERNEL_SRC, size, secs, next());
        let (tm, tp) = udp_up(&topo, TUNNEL_SRC, size, secs, next());
        row(&format!("UDP up {size} B (Mbit/s)"), km, tm, "Mb/s");
        row(&format!("UDP up {size} B (kpps)"), kp, tp, "kpps");
    }
    let (km, _) = udp_down(&topo, KERNEL_SRC, 1400, secs, next());
    let (tm, _) = udp_down(&topo, TUNNEL_SRC, 1400, secs, next());
    row("UDP down 1400 B (Mbit/s)", km, tm, "Mb/s");
    // (the filter drops the kernel path: its connection would not open)
    let k = if filter {
        0.0
    } else {
        tcp_up(&topo, KERNEL_SRC, secs, next())
    };
    let t = tcp_up(&topo, TUNNEL_SRC, secs, next());
    row("TCP up, 1 stream (Mbit/s)", k, t, "Mb/s");
    drop(gnb);
    drop(upf);
}
