//! Issue 5, "Checked by", end to end in namespaces: `testbed up` on the
//! default topology; UE1 gets session 1 via upf1 to edge1 and session 2 via
//! upf2 to edge2; UDP and TCP traffic bound to each session's address
//! reaches the right edge and comes back; releasing session 1 removes it at
//! the SMF, the gNB, the UPF and the UE while session 2 carries on.
//! Needs root and the daemon binaries (`cargo build -p upf -p smf-lite -p gnb -p ue`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::Bed;

const PORT: u16 = 9000;

/// UDP and TCP echo servers in an edge's namespace; each answer is
/// `<edge>|<source address seen>|<payload>`.
struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Echo {
    fn start(ns: &str, edge: &'static str) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for proto in ["udp", "tcp"] {
            let ns = ns.to_string();
            let stop = stop.clone();
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || {
                topo::netns::enter(&ns).expect("enter edge namespace");
                if proto == "udp" {
                    let s = UdpSocket::bind(("0.0.0.0", PORT)).expect("bind udp");
                    s.set_read_timeout(Some(Duration::from_millis(50)))
                        .expect("timeout");
                    tx.send(()).expect("ready");
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((n, from)) = s.recv_from(&mut buf) {
                            let msg = format!(
                                "{edge}|{}|{}",
                                from.ip(),
                                String::from_utf8_lossy(&buf[..n])
                            );
                            let _ = s.send_to(msg.as_bytes(), from);
                        }
                    }
                } else {
                    let l = TcpListener::bind(("0.0.0.0", PORT)).expect("bind tcp");
                    l.set_nonblocking(true).expect("nonblocking");
                    tx.send(()).expect("ready");
                    while !stop.load(Ordering::Relaxed) {
                        match l.accept() {
                            Ok((mut c, from)) => {
                                let _ = c.set_nonblocking(false);
                                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                                let mut buf = [0u8; 2048];
                                if let Ok(n) = c.read(&mut buf) {
                                    let msg = format!(
                                        "{edge}|{}|{}",
                                        from.ip(),
                                        String::from_utf8_lossy(&buf[..n])
                                    );
                                    let _ = c.write_all(msg.as_bytes());
                                }
                            }
                            // Idle wait of a non-blocking accept loop that
                            // watches its stop flag, not synchronisation.
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                }
            }));
        }
        rx.recv().expect("udp ready");
        rx.recv().expect("tcp ready");
        Echo { stop, threads }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// UDP from `src` (a session address) to `dst` in the UE's namespace: the answer, or an error.
fn udp_roundtrip(
    ue_ns: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &str,
) -> Result<String, String> {
    let payload = payload.to_string();
    topo::netns::run_in_netns(ue_ns, move || -> Result<String, String> {
        let s = UdpSocket::bind((src, 0)).map_err(|e| format!("bind {src}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 2048];
        for _ in 0..6 {
            s.send_to(payload.as_bytes(), (dst, PORT))
                .map_err(|e| format!("send: {e}"))?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err(format!("no UDP answer from {dst} to {src}"))
    })
    .map_err(|e| e.to_string())?
}

/// TCP from `src` to `dst` in the UE's namespace.
fn tcp_roundtrip(
    ue_ns: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &str,
) -> Result<String, String> {
    let payload = payload.to_string();
    topo::netns::run_in_netns(ue_ns, move || -> Result<String, String> {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        s.bind(&SocketAddr::from((src, 0)).into())
            .map_err(|e| format!("bind {src}: {e}"))?;
        s.connect_timeout(
            &SocketAddr::from((dst, PORT)).into(),
            Duration::from_secs(3),
        )
        .map_err(|e| format!("connect {dst} from {src}: {e}"))?;
        let mut c: TcpStream = s.into();
        c.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        c.write_all(payload.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        c.read_to_string(&mut out)
            .map_err(|e| format!("read: {e}"))?;
        Ok(out)
    })
    .map_err(|e| e.to_string())?
}

/// Asserts that a UDP probe (payload `udp`) and a TCP one (`tcp`) from `src`
/// in `ue_ns` reach `edge` at `dst`, which saw `src`, and come back.
fn assert_echoes(ue_ns: &str, src: Ipv4Addr, dst: Ipv4Addr, edge: &str, udp: &str, tcp: &str) {
    assert_eq!(
        udp_roundtrip(ue_ns, src, dst, udp).expect("udp"),
        format!("{edge}|{src}|{udp}")
    );
    assert_eq!(
        tcp_roundtrip(ue_ns, src, dst, tcp).expect("tcp"),
        format!("{edge}|{src}|{tcp}")
    );
}

/// The gNB's tunnels in a status report.
fn gnb_tunnels(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["tunnels"][0][1]
        .as_array()
        .cloned()
        .expect("gNB tunnels")
}

fn sessions(bed: &Bed) -> Vec<serde_json::Value> {
    bed.status()["sessions"]
        .as_array()
        .cloned()
        .expect("SMF sessions list")
}

fn addr_of(list: &[serde_json::Value], psi: u64) -> Ipv4Addr {
    let s = list
        .iter()
        .find(|s| s["pdu_session_id"] == psi)
        .unwrap_or_else(|| panic!("session {psi} in {list:?}"));
    s["ue_addr"].as_str().unwrap().parse().expect("address")
}

fn counter(status: &serde_json::Value, daemon: &str, series: &str) -> Option<f64> {
    status["daemons"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == daemon)?["counters"]
        .as_array()?
        .iter()
        .find(|c| c[0] == series)
        .and_then(|c| c[1].as_f64())
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn two_sessions_to_two_edges_then_release_one() {
    let bed = Bed::up("e");
    let ue_ns = bed.ns("ue1");
    let edge1 = Ipv4Addr::new(10, 61, 0, 2);
    let edge2 = Ipv4Addr::new(10, 62, 0, 2);
    let _e1 = Echo::start(&bed.ns("edge1"), "edge1");
    let _e2 = Echo::start(&bed.ns("edge2"), "edge2");

    let out = bed.ok(&[
        "session", "add", "--ue", "ue1", "--psi", "1", "--dnn", "edge1",
    ]);
    assert!(out.contains("upf1"), "{out}");
    let out = bed.ok(&[
        "session", "add", "--ue", "ue1", "--psi", "2", "--dnn", "edge2", "--upf", "upf2",
    ]);
    assert!(out.contains("upf2"), "{out}");

    let list = sessions(&bed);
    assert_eq!(list.len(), 2, "{list:?}");
    for (psi, upf, dnn) in [(1, "upf1", "edge1"), (2, "upf2", "edge2")] {
        let s = list
            .iter()
            .find(|s| s["pdu_session_id"] == psi)
            .expect("session");
        assert_eq!(
            (s["upf"].as_str(), s["dnn"].as_str()),
            (Some(upf), Some(dnn)),
            "{s}"
        );
        assert_eq!(s["state"], "active", "{s}");
    }
    let a1 = addr_of(&list, 1);
    let a2 = addr_of(&list, 2);
    assert!(
        a1.octets()[..2] == [10, 45],
        "session 1 from upf1's pool: {a1}"
    );
    assert!(
        a2.octets()[..2] == [10, 46],
        "session 2 from upf2's pool: {a2}"
    );

    // Each session reaches its edge, which sees the session's address, and the answer comes back.
    assert_echoes(&ue_ns, a1, edge1, "edge1", "u1", "t1");
    assert_echoes(&ue_ns, a2, edge2, "edge2", "u2", "t2");

    // The traffic went through the tunnels: gNB and UPF counters moved.
    let st = bed.status();
    let tunnels = gnb_tunnels(&st);
    assert_eq!(tunnels.len(), 2, "{tunnels:?}");
    for t in &tunnels {
        assert!(
            t["ul_packets"].as_u64().unwrap() > 0 && t["dl_packets"].as_u64().unwrap() > 0,
            "{t}"
        );
    }
    assert_eq!(counter(&st, "upf1", "upf_sessions"), Some(1.0));
    assert_eq!(counter(&st, "upf2", "upf_sessions"), Some(1.0));

    // Release session 1.
    bed.ok(&["session", "del", "--ue", "ue1", "--psi", "1"]);
    let list = sessions(&bed);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["pdu_session_id"], 2);
    let st = bed.status();
    let tunnels = gnb_tunnels(&st);
    assert_eq!(
        tunnels.len(),
        1,
        "gNB removed session 1's tunnel: {tunnels:?}"
    );
    assert_eq!(tunnels[0]["pdu_session_id"], 2);
    assert_eq!(
        counter(&st, "upf1", "upf_sessions"),
        Some(0.0),
        "upf1 removed session 1"
    );
    assert_eq!(counter(&st, "upf2", "upf_sessions"), Some(1.0));
    let addrs = std::process::Command::new("ip")
        .args(["-n", &ue_ns, "-4", "addr", "show", "radio"])
        .output()
        .expect("ip addr");
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(!addrs.contains(&a1.to_string()), "UE removed {a1}: {addrs}");
    assert!(addrs.contains(&a2.to_string()), "UE keeps {a2}: {addrs}");
    assert!(
        udp_roundtrip(&ue_ns, a1, edge1, "gone").is_err(),
        "session 1 carries nothing any more"
    );

    // Session 2 carries on.
    assert_echoes(&ue_ns, a2, edge2, "edge2", "u3", "t3");
    let list = bed.ok(&["session", "list", "--ue", "ue1"]);
    assert!(
        list.contains(&a2.to_string()) && !list.contains(&a1.to_string()),
        "{list}"
    );
}

/// Issue 5: "killing and restarting upf1 restores session 1 without the user
/// doing anything".
#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn upf_crash_and_restart_restores_its_session() {
    let bed = Bed::up("r");
    let ue_ns = bed.ns("ue1");
    let edge1 = Ipv4Addr::new(10, 61, 0, 2);
    let _e1 = Echo::start(&bed.ns("edge1"), "edge1");
    bed.ok(&[
        "session", "add", "--ue", "ue1", "--psi", "1", "--dnn", "edge1",
    ]);
    let a1 = addr_of(&sessions(&bed), 1);
    assert_eq!(
        udp_roundtrip(&ue_ns, a1, edge1, "before").expect("udp"),
        format!("edge1|{a1}|before")
    );
    let old_pid = bed.state_json().unwrap()["procs"][0]["pid"]
        .as_i64()
        .unwrap();

    // No waiting: PFCP's Recovery Time Stamp counts whole seconds, so a
    // UPF restarted within a second looks unchanged in its heartbeats; its
    // own Association Setup Request at start is what tells the SMF.
    let out = bed.ok(&["restart", "upf1", "--kill"]);
    assert!(out.contains("upf1 restarted"), "{out}");
    let st = bed.state_json().unwrap();
    assert_ne!(
        st["procs"][0]["pid"].as_i64().unwrap(),
        old_pid,
        "a new upf1 process"
    );

    // The SMF notices the restart and re-establishes the session.
    let mut last = String::new();
    let mut restored = None;
    testkit::wait_until(Duration::from_secs(30), || {
        match udp_roundtrip(&ue_ns, a1, edge1, "after") {
            Ok(r) => restored = Some(r),
            Err(e) => last = e,
        }
        restored.is_some()
    });
    let st = bed.status();
    assert_eq!(
        restored,
        Some(format!("edge1|{a1}|after")),
        "session 1 restored within 30 s (last error: {last}); SMF: {} {}",
        st["upfs"],
        st["sessions"]
    );
    assert_eq!(
        tcp_roundtrip(&ue_ns, a1, edge1, "tcp").expect("tcp"),
        format!("edge1|{a1}|tcp")
    );
    let upf1 = st["upfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "upf1")
        .cloned()
        .unwrap();
    assert!(
        upf1["restarts"].as_u64().unwrap() >= 1,
        "SMF counted the restart: {upf1}"
    );
    assert_eq!(
        counter(&st, "upf1", "upf_sessions"),
        Some(1.0),
        "session back in upf1"
    );
    let list = sessions(&bed);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "active");
    assert_eq!(addr_of(&list, 1), a1, "same UE address after the restore");
}
