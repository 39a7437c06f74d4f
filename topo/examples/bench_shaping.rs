//! Shaping accuracy: TCP throughput between two namespaces at set rates
//! (htb with the automatic 2 ms burst), against the unshaped pair measured
//! in the same run.
//!
//! cargo run --release -p topo --example bench_shaping [-- SECONDS]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use topo::{end, Dir, Running, Shape, Topology, UpOptions};

/// Ethernet + IPv4 + TCP (timestamps) headers per 1448-byte segment: what htb counts.
const L2_PER_PAYLOAD: f64 = 1514.0 / 1448.0;

fn goodput(r: &Running, port: u16, dur: Duration) -> f64 {
    let dst: SocketAddr = format!("10.6.0.2:{port}").parse().expect("addr");
    let l = r
        .run_in("b", move || TcpListener::bind(dst))
        .expect("netns")
        .expect("bind");
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 18];
        let (mut total, mut first) = (0u64, None::<Instant>);
        loop {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            if first.is_none() {
                first = Some(Instant::now());
                continue;
            }
            total += n as u64;
        }
        total as f64 * 8.0 / first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(1.0)
    });
    let mut s = r
        .run_in("a", move || TcpStream::connect(dst))
        .expect("netns")
        .expect("connect");
    let buf = vec![0x5au8; 1 << 16];
    let t = Instant::now();
    while t.elapsed() < dur {
        s.write_all(&buf).expect("write");
    }
    drop(s);
    rx.join().expect("receiver")
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2.0);
    let dur = Duration::from_secs_f64(secs);
    let state = std::env::temp_dir().join(format!("bench-shaping-{}", std::process::id()));
    let prefix = format!("bs{}-", std::process::id() % 100_000);
    let t = Topology::builder("bench-shaping")
        .prefix(&prefix)
        .host("a")
        .host("b")
        .link(
            "l",
            end("a").ifname("eth0").addr("10.6.0.1/24"),
            end("b").ifname("eth0").addr("10.6.0.2/24"),
        )
        .build()
        .expect("valid");
    let mut r = topo::up(&t, &UpOptions::with_state_dir(&state))
        .expect("up")
        .guard();
    let mut port = 6000;
    let mut next_port = || {
        port += 1;
        port
    };
    let base = goodput(&r, next_port(), dur);
    println!(
        "unshaped baseline: goodput {:.0} Mbit/s ({:.0} Mbit/s at layer 2)\n",
        base / 1e6,
        base * L2_PER_PAYLOAD / 1e6
    );
    println!(
        "{:>10} | {:>14} {:>14} | {:>9} | {:>12}",
        "set rate", "goodput", "layer 2", "accuracy", "of baseline"
    );
    println!("{}", "-".repeat(72));
    for mbit in [100u64, 200, 500, 1000, 2000, 5000] {
        let s = Shape {
            rate_bps: Some(mbit * 1_000_000),
            ..Default::default()
        };
        r.shape("l", Dir::Both, &s).expect("shape");
        let g = goodput(&r, next_port(), dur);
        let l2 = g * L2_PER_PAYLOAD;
        println!(
            "{:>7}mbit | {:>9.1} Mbit/s {:>9.1} Mbit/s | {:>8.1}% | {:>11.2}x",
            mbit,
            g / 1e6,
            l2 / 1e6,
            l2 / (mbit as f64 * 1e6) * 100.0,
            g / base
        );
    }
    println!(
        "\naccuracy = layer-2 throughput / set rate (goal 95-105%); layer 2 = goodput x 1514/1448"
    );
    drop(r);
    let _ = std::fs::remove_dir_all(&state);
}
