//! First throughput figure of the UPF (root only; run with
//! `cargo run --release -p upf --example throughput`).
//!
//! Topology (namespaces, veth): gnb --N3-- upf --N6-- edge.
//! - Through the UPF: the gnb namespace holds a TUN with the UE address
//!   (10.60.0.1) and a userspace gNB shim (GTP-U encap/decap, one thread
//!   per direction); iperf3 binds the UE address; the UPF decapsulates to
//!   its N6 TUN, the kernel routes to the edge, and back.
//! - Baseline, same run, same namespaces: iperf3 from the gnb's N3 address
//!   to the edge, routed by the kernel through the upf namespace, no tunnel.
//!
//! Prints TCP and UDP figures and the ratio UPF/kernel.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use upf::rules::*;
use upf::tun::Tun;

fn iperf(ns: &Netns, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "iperf3",
            "-J",
            "--connect-timeout",
            "2000",
        ])
        .args(args)
        .output()
        .expect("iperf3");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("iperf3 output: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The tests' session (`common::rules`) with the uplink TEID given and the
/// downlink to the shim's port 2153.
fn shim_rules(ul_teid: u32) -> SessionRules {
    let mut r = rules(FarAction::to_access(0x200, SocketAddrV4::new(GNB_N3, 2153)));
    r.pdrs[0].pdi.local_fteid = Some(FTeidSpec::Given(ul_teid));
    r
}

fn main() {
    testkit::require_tool("iperf3");
    let bed = Bed::new();
    let tag = bed.tag.clone();
    must(
        bed.edge
            .ip(&["route", "add", "10.0.1.0/24", "via", "10.0.2.1"]),
    );
    must(
        bed.gnb
            .ip(&["route", "add", "10.0.2.0/24", "via", "10.0.1.2"]),
    );
    eprintln!("bed up");
    let ul_teid = 0x100;
    bed.upf()
        .establish(1, shim_rules(ul_teid))
        .expect("session");

    // UE + gNB shim in the gnb namespace.
    let ue_tun = format!("{tag}x");
    let (tun, sock) = {
        let name = ue_tun.clone();
        must(bed.gnb.run(move || {
            let t = Tun::create(&name, 1400, &[]).expect("ue tun");
            let s = UdpSocket::bind((GNB_N3, 2153)).expect("gnb n3");
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            (t, s)
        }))
    };
    must(bed.gnb.ip(&["addr", "add", "10.60.0.1/32", "dev", &ue_tun]));
    // Source-based policy routing, as the UE does (DESIGN §4).
    must(
        bed.gnb
            .ip(&["rule", "add", "from", "10.60.0.1", "table", "100"]),
    );
    must(bed.gnb.ip(&[
        "route",
        "add",
        "10.0.2.0/24",
        "dev",
        &ue_tun,
        "table",
        "100",
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let (t_up, s_up, st) = (
        tun.try_clone().expect("tun"),
        sock.try_clone().expect("sock"),
        stop.clone(),
    );
    let up = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut idle = true;
        while !st.load(Ordering::Relaxed) {
            if idle
                && !t_up
                    .wait_readable(Duration::from_millis(100))
                    .unwrap_or(false)
            {
                continue;
            }
            let Ok(n) = t_up.recv(&mut buf[16..]) else {
                idle = true;
                continue;
            };
            idle = false;
            if let Some(s) = upf::gtp::encap_in_place(&mut buf, 16, 16 + n, ul_teid, None) {
                let _ = s_up.send_to(&buf[s..16 + n], SocketAddrV4::new(UPF_N3, 2152));
            }
        }
    });
    let st = stop.clone();
    let down = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !st.load(Ordering::Relaxed) {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if let Ok(d) = upf::gtp::decap(&buf[..n]) {
                let _ = tun.send(d.payload);
            }
        }
    });

    // iperf3 servers on the edge.
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &bed.edge.name,
            "iperf3",
            "-s",
            "-B",
            "10.0.2.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    let listening = testkit::wait_until(Duration::from_secs(5), || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &bed.edge.name,
                "ss",
                "-Hltn",
                "sport = :5201",
            ])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    });
    assert!(listening, "iperf3 -s did not listen within 5 s");
    let secs = "3";
    let tcp = |src: &str| {
        let v = iperf(&bed.gnb, &["-c", "10.0.2.2", "-B", src, "-t", secs]);
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e9
    };
    let udp = |src: &str| {
        let v = iperf(
            &bed.gnb,
            &[
                "-c", "10.0.2.2", "-B", src, "-t", secs, "-u", "-b", "0", "-l", "1300",
            ],
        );
        let s = &v["end"]["sum"];
        (
            s["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9
                * (1.0 - s["lost_percent"].as_f64().unwrap_or(100.0) / 100.0),
            s["lost_percent"].as_f64().unwrap_or(100.0),
        )
    };
    eprintln!("measuring");
    let tcp_kernel = tcp("10.0.1.1");
    eprintln!("tcp kernel {tcp_kernel}");
    let tcp_upf = tcp("10.60.0.1");
    let (udp_kernel, loss_k) = udp("10.0.1.1");
    let (udp_upf, loss_u) = udp("10.60.0.1");
    println!("one TCP stream, {secs} s: kernel {tcp_kernel:.2} Gbit/s, through the UPF {tcp_upf:.2} Gbit/s, ratio {:.3}", tcp_upf / tcp_kernel);
    println!("UDP 1300 B unlimited, {secs} s (delivered): kernel {udp_kernel:.2} Gbit/s ({loss_k:.1}% loss), through the UPF {udp_upf:.2} Gbit/s ({loss_u:.1}% loss), ratio {:.3}", udp_upf / udp_kernel);
    let m = bed.upf().metrics();
    println!(
        "UPF counters: n3 rx {:?}, n6 tx {:?}, n6 rx {:?}, n3 tx {:?}",
        m.n3_rx.get(),
        m.n6_tx.get(),
        m.n6_rx.get(),
        m.n3_tx.get()
    );
    let _ = server.kill();
    let _ = server.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = up.join();
    let _ = down.join();
}
