//! The gNB in namespaces: UE ns -- radio -- gNB ns -- n3 -- fake-UPF ns.
//! Needs root (network namespaces, TUN): those tests are #[ignore]d unless
//! asked for (`--include-ignored`). Every namespace and process is
//! removed by guards, also when an assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use testkit::gnb::{addr, FakeSmf, FakeUpf, RoutedUpf};
use testkit::wait_until;
use wire::ctl::{ApiError, SessionInfo};
use wire::gtpu::{encap_in_place, GpduHeader, Repr};

mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_gnb");

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn two_sessions_two_tunnels_and_release() {
    // Asked for, the packet threads run at real-time priority
    // (ctlhttp::rt). Other tests of this binary that start a gNB meanwhile
    // get it too, which changes nothing they check.
    std::env::set_var(ctlhttp::rt::ENV, "1");
    let (topo, upf, gnb) = gnb_with_upf("h7a", BIN, FakeUpf::start);
    std::env::remove_var(ctlhttp::rt::ENV);
    // Each packet thread (an uplink and a downlink per worker, one worker
    // per CPU up to 4 by default) names itself and raises its own priority
    // once it runs: wait for all (a thread just spawned still has the
    // gNB's name).
    let workers = dpio::reuseport::workers(None).expect("workers");
    let fifo = |t: &str| {
        gnb.0
            .thread_policies()
            .iter()
            .any(|(n, p)| n == t && *p == libc::SCHED_FIFO)
    };
    let raised = wait_until(Duration::from_secs(5), || {
        (0..workers).all(|k| fifo(&format!("gnb-uplink{k}")) && fifo(&format!("gnb-downlink{k}")))
    });
    assert!(
        raised,
        "packet threads of {workers} workers: {:?}",
        gnb.0.thread_policies()
    );

    let a1 = Ipv4Addr::new(10, 45, 0, 2);
    let a2 = Ipv4Addr::new(10, 45, 0, 3);
    let r1 = setup(&topo.upf, "imsi-001010000000001", 1, a1, 0x100);
    let r2 = setup(&topo.upf, "imsi-001010000000001", 2, a2, 0x200);
    assert_ne!(r1.dl_teid, r2.dl_teid);
    for (ul, r) in [(0x100, &r1), (0x200, &r2)] {
        upf.sessions.lock().unwrap().insert(ul, to_gnb(r.dl_teid));
    }
    ue_session(&topo.ue, a1, 1001);
    ue_session(&topo.ue, a2, 1002);

    // Session 1: right tunnel, QFI, UL container; the reply reaches the UE.
    let (data, from) = udp_echo(&topo.ue, a1, b"via session one").expect("echo through session 1");
    assert_eq!(data, b"via session one");
    assert_eq!(from, SocketAddr::from((addr::DN_HOST, 7777)));
    let seen = upf.seen();
    assert!(seen
        .iter()
        .any(|s| s.teid == 0x100 && s.src == a1 && s.dst == addr::DN_HOST));
    assert!(
        seen.iter().all(|s| s.qfi == Some(9) && s.ul_container),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|s| s.teid == 0x200),
        "session 2 tunnel not used yet"
    );

    // Session 2 uses the other tunnel.
    let (data, _) = udp_echo(&topo.ue, a2, b"via session two").expect("echo through session 2");
    assert_eq!(data, b"via session two");
    assert!(upf.seen().iter().any(|s| s.teid == 0x200 && s.src == a2));

    let t = tunnels(&topo.upf);
    assert_eq!(t.len(), 2);
    let t1 = t.iter().find(|t| t.dl_teid == r1.dl_teid).unwrap();
    assert!(t1.ul_packets >= 1 && t1.dl_packets >= 1, "{t1:?}");
    assert_eq!(t1.ul_teid, 0x100);

    // The CLI shows both tunnels.
    let api = format!("{}:{}", addr::GNB_N3, wire::ctl::GNB_N2_PORT);
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.gnb.name,
            BIN,
            "tunnels",
            "--api",
            &api,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&a1.to_string()) && text.contains(&a2.to_string()),
        "{text}"
    );

    // Release session 1's tunnel: its traffic stops, session 2 carries on.
    let (st, _) = release(&topo.upf, r1.dl_teid);
    assert_eq!(st, 204);
    // Its address is out of the radio-side filter: dropped and counted
    // there, before the TUN.
    let before = metric(&topo.upf, "gnb_fw_ul_not_own_session_packets_total");
    let n_ul1 = upf.seen().iter().filter(|s| s.teid == 0x100).count();
    assert!(
        udp_echo(&topo.ue, a1, b"after release").is_none(),
        "released session still answers"
    );
    assert_eq!(upf.seen().iter().filter(|s| s.teid == 0x100).count(), n_ul1);
    assert!(metric(&topo.upf, "gnb_fw_ul_not_own_session_packets_total") > before);
    let (data, _) = udp_echo(&topo.ue, a2, b"still here").expect("session 2 after release of 1");
    assert_eq!(data, b"still here");
    // The host route of session 1 is gone, session 2's is there.
    let routes = topo.gnb.ip(&["route", "show"]).unwrap();
    assert!(!routes.contains(&format!("{a1} dev radio")), "{routes}");
    assert!(routes.contains(&format!("{a2} dev radio")), "{routes}");
    // The uplink rule and table are in place.
    let rules = topo.gnb.ip(&["rule", "show"]).unwrap();
    assert!(rules.contains("iif radio lookup 100"), "{rules}");
    let (st, body) = release(&topo.upf, r1.dl_teid);
    assert_eq!(st, 404);
    let e: ApiError = serde_json::from_str(&body).unwrap();
    assert_eq!(e.field.as_deref(), Some("dl_teid"));
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn unknown_teid_echo_end_marker_and_path_switch() {
    let (topo, upf, _gnb) = gnb_with_upf("h7b", BIN, FakeUpf::start);
    let gnb_n3 = SocketAddr::from((addr::GNB_N3, 2152));

    // Unknown TEID: dropped, counted, Error Indication back.
    let mut buf = [0u8; 16 + 28];
    buf[16] = 0x45;
    let pkt = encap_in_place(&mut buf, 16, 28, &GpduHeader::dl(0xdead, 9)).unwrap();
    upf.send(pkt, gnb_n3).unwrap();
    assert!(wait_until(Duration::from_secs(3), || upf
        .error_indications
        .lock()
        .unwrap()
        .contains(&0xdead)));
    assert_eq!(metric(&topo.upf, "gnb_dl_unknown_teid_total"), 1);

    // Echo.
    upf.send_repr(&Repr::echo_request(7), gnb_n3).unwrap();
    assert!(wait_until(Duration::from_secs(3), || upf
        .echo_responses
        .load(std::sync::atomic::Ordering::Relaxed)
        == 1));

    // A session; End Marker on its current tunnel is counted, nothing else.
    let a = Ipv4Addr::new(10, 45, 0, 9);
    let ue = "imsi-001010000000002";
    let old = setup(&topo.upf, ue, 1, a, 0x100);
    upf.sessions
        .lock()
        .unwrap()
        .insert(0x100, to_gnb(old.dl_teid));
    ue_session(&topo.ue, a, 1001);
    assert!(udp_echo(&topo.ue, a, b"before switch").is_some());
    upf.send_repr(&Repr::end_marker(old.dl_teid), gnb_n3)
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || tunnels(&topo.upf)[0]
        .end_markers
        == 1));
    assert_eq!(tunnels(&topo.upf).len(), 1);

    // Path switch: a new tunnel for the same session (new UPF TEID). Uplink
    // moves at once; the old tunnel drains until its End Marker.
    let new = setup(&topo.upf, ue, 1, a, 0x300);
    assert_ne!(new.dl_teid, old.dl_teid);
    upf.sessions
        .lock()
        .unwrap()
        .insert(0x300, to_gnb(new.dl_teid));
    let t = tunnels(&topo.upf);
    assert_eq!(t.len(), 2);
    assert!(
        t.iter()
            .find(|t| t.dl_teid == old.dl_teid)
            .unwrap()
            .draining
    );
    let n_old = upf.seen().iter().filter(|s| s.teid == 0x100).count();
    assert!(udp_echo(&topo.ue, a, b"after switch").is_some());
    assert!(upf.seen().iter().any(|s| s.teid == 0x300));
    assert_eq!(
        upf.seen().iter().filter(|s| s.teid == 0x100).count(),
        n_old,
        "old uplink still used"
    );

    // Downlink on the old tunnel still arrives before its End Marker: a
    // packet from the DN host to the UE, through the old TEID.
    let ue_sock = ue_dl_socket(&topo.ue, a, Duration::from_secs(2));
    let dl = |teid: u32| dl_udp(teid, a, b"old!");
    upf.send(&dl(old.dl_teid), gnb_n3).unwrap();
    let mut b = [0u8; 64];
    let (n, _) = ue_sock
        .recv_from(&mut b)
        .expect("downlink on the draining tunnel");
    assert_eq!(&b[..n], b"old!");

    // End Marker on the old tunnel: it is gone, the new one stays.
    upf.send_repr(&Repr::end_marker(old.dl_teid), gnb_n3)
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || tunnels(&topo.upf)
        .len()
        == 1));
    let t = tunnels(&topo.upf);
    assert_eq!(t[0].dl_teid, new.dl_teid);
    assert!(!t[0].draining);
    assert_eq!(metric(&topo.upf, "gnb_end_markers_total"), 2);
    // The old TEID is now unknown.
    upf.send(&dl(old.dl_teid), gnb_n3).unwrap();
    assert!(wait_until(Duration::from_secs(3), || metric(
        &topo.upf,
        "gnb_dl_unknown_teid_total"
    ) == 2));
    // The session still works over the new tunnel (the host route stayed).
    assert!(udp_echo(&topo.ue, a, b"new path").is_some());
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn api_errors_are_4xx_with_api_error() {
    let topo = root_topo("h7c");
    let cfg = topo.gnb_config(7000); // no SMF listening
    let (_gnb, _f) = topo.start_gnb(BIN, &cfg).unwrap();
    let url = format!("{}/n2/tunnels", n2());
    let n1 = n1_sessions();
    let good = |psi: u8, ue: &str, addr: &str| {
        format!(
            r#"{{"ue_id":"{ue}","pdu_session_id":{psi},"ue_addr":"{addr}","ul_teid":5,"ul_addr":"10.3.0.2","qfi":9}}"#
        )
    };
    let (upf, ue) = (&topo.upf, &topo.ue);
    // In order: (from, method, URL, body, status, the field named); the
    // one good setup makes the next one's address a conflict.
    let cases = [
        (
            upf,
            "POST",
            url.clone(),
            Some("{not json".into()),
            400,
            None,
        ),
        (
            upf,
            "POST",
            url.clone(),
            Some(r#"{"ue_id":"x","pdu_session_id":1}"#.into()),
            400,
            Some("ue_addr"),
        ),
        (
            upf,
            "POST",
            url.clone(),
            Some(good(0, "a", "10.45.0.5")),
            400,
            Some("pdu_session_id"),
        ),
        (
            upf,
            "POST",
            url.clone(),
            Some(good(1, "a", "10.45.0.5")),
            201,
            None,
        ),
        (
            upf,
            "POST",
            url.clone(),
            Some(good(1, "b", "10.45.0.5")),
            409,
            Some("ue_addr"),
        ),
        (
            upf,
            "DELETE",
            format!("{url}/abc"),
            None,
            400,
            Some("dl_teid"),
        ),
        (
            upf,
            "DELETE",
            format!("{url}/4242"),
            None,
            404,
            Some("dl_teid"),
        ),
        (upf, "GET", format!("{}/nothing", n2()), None, 404, None),
        // N1 relay: bad JSON is 400; a good request with no SMF is 502.
        (
            ue,
            "POST",
            n1.clone(),
            Some(r#"{"ue_id":"x"}"#.into()),
            400,
            Some("pdu_session_id"),
        ),
        (
            ue,
            "POST",
            n1.clone(),
            Some(r#"{"ue_id":"x","pdu_session_id":1,"dnn":"internet","colour":1}"#.into()),
            400,
            Some("colour"),
        ),
        (
            ue,
            "POST",
            n1.clone(),
            Some(r#"{"ue_id":"x","pdu_session_id":1,"dnn":"internet"}"#.into()),
            502,
            None,
        ),
        (ue, "DELETE", format!("{n1}/x/99"), None, 400, Some("psi")),
    ];
    for (from, method, url, body, want, field) in cases {
        let what = format!("{method} {url}");
        let (st, body) = http(from, method, url, body);
        assert_eq!(st, want, "{what}: {body}");
        if want >= 400 {
            let e: ApiError =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
            assert!(!e.error.is_empty());
            if field.is_some() {
                assert_eq!(e.field.as_deref(), field, "{what}: {body}");
            }
        }
    }
    // Nothing half made: only the one good tunnel.
    assert_eq!(tunnels(&topo.upf).len(), 1);
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn n1_relay_reaches_the_smf_which_sets_up_the_tunnel() {
    let topo = root_topo("h7d");
    let upf = FakeUpf::start(&topo.upf, addr::UPF_N3).unwrap();
    let smf = FakeSmf::start(
        &topo.upf,
        SocketAddr::from((addr::UPF_N3, 7000)),
        addr::UPF_N3,
        upf.sessions.clone(),
    )
    .unwrap();
    let cfg = topo.gnb_config(7000);
    let (_gnb, _f) = topo.start_gnb(BIN, &cfg).unwrap();
    let n1 = n1_sessions();
    let (st, b) = http(
        &topo.ue,
        "POST",
        n1.clone(),
        Some(r#"{"ue_id":"imsi-1","pdu_session_id":3,"dnn":"internet","upf":"upf2"}"#.into()),
    );
    assert_eq!(st, 201, "{b}");
    let info: SessionInfo = serde_json::from_str(&b).unwrap();
    assert_eq!(info.gnb, "gnb-test");
    assert_eq!(info.upf, "upf2");
    let t = tunnels(&topo.upf);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].dl_teid, t[0].ul_teid, t[0].ue_addr),
        (info.dl_teid, info.ul_teid, info.ue_addr)
    );
    assert_eq!(smf.sessions.lock().unwrap().len(), 1);
    let (st, b) = http(&topo.ue, "DELETE", format!("{n1}/imsi-1/3"), None);
    assert_eq!(st, 204, "{b}");
    assert!(tunnels(&topo.upf).is_empty());
    // Unknown session: the SMF's 404 comes back through the relay.
    let (st, b) = http(&topo.ue, "DELETE", format!("{n1}/imsi-1/3"), None);
    assert_eq!(st, 404, "{b}");
    let _: ApiError = serde_json::from_str(&b).unwrap();
}

/// A TCP connection from a session address, through the gNB and a routing
/// fake UPF, to an echo server behind it: 1 MiB there and back intact
/// (segments larger than the TUN MTU exercise path MTU discovery).
#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn tcp_echo_through_the_tunnel() {
    let (topo, upf, _gnb) = gnb_with_upf("h7t", BIN, RoutedUpf::start);
    let a = Ipv4Addr::new(10, 45, 0, 7);
    routed_session(&topo, &upf, a, 0x700, 1005);
    let peer = tcp_echo(&topo, a, 8080, 1 << 20);
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(a),
        "the server saw the session address"
    );
    let t = tunnels(&topo.upf);
    assert!(t[0].ul_packets > 100 && t[0].dl_packets > 100, "{:?}", t[0]);
}

#[test]
fn check_config_names_the_bad_field() {
    let dir = std::env::temp_dir();
    let bad = dir.join(format!("h7-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "name = \"g\"\nn3_addr = \"10.3.0\"\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    std::fs::remove_file(&bad).unwrap();
    // A configuration error is a usage error: exit status 2.
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("n3_addr"), "{err}");
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gnb.toml");
    testkit::run_cmd(BIN, &["check-config", good]).unwrap_or_else(|e| panic!("{e}"));
}

/// A worker's count in a `/metrics` family with a `worker` label.
fn worker_metric(from: &testkit::Netns, name: &str, worker: usize) -> u64 {
    let (st, body) = http(from, "GET", format!("{}/metrics", n2()), None);
    assert_eq!(st, 200);
    let label = format!("worker=\"{worker}\"");
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name}{{{label}}} missing:\n{body}"))
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn each_worker_takes_the_g_pdus_of_its_source_ports() {
    // The UPF's worker k sends from port 2152 + k: the gNB's N3 port hands
    // a G-PDU to its worker (source port mod workers), and each one
    // reaches the UE.
    let (topo, upf, _gnb) = gnb_with_upf("h7w", BIN, FakeUpf::start);
    let workers = dpio::reuseport::workers(None).expect("workers");
    let gnb_n3 = SocketAddr::from((addr::GNB_N3, 2152));
    let a = Ipv4Addr::new(10, 45, 0, 7);
    let r = setup(&topo.upf, "imsi-001010000000003", 1, a, 0x100);
    ue_session(&topo.ue, a, 1001);
    let ue_sock = ue_dl_socket(&topo.ue, a, Duration::from_secs(3));
    let second = topo
        .upf
        .udp(SocketAddr::from((addr::UPF_N3, 2153)))
        .expect("a second UPF port");
    let before: Vec<u64> = (0..workers)
        .map(|k| worker_metric(&topo.upf, "gnb_worker_n3_rx_packets_total", k))
        .collect();
    let mut b = [0u8; 64];
    upf.send(&dl_udp(r.dl_teid, a, b"2152"), gnb_n3).unwrap();
    let (n, _) = ue_sock.recv_from(&mut b).expect("from port 2152");
    assert_eq!(&b[..n], b"2152");
    for _ in 0..3 {
        second
            .send_to(&dl_udp(r.dl_teid, a, b"2153"), gnb_n3)
            .unwrap();
        let (n, _) = ue_sock.recv_from(&mut b).expect("from port 2153");
        assert_eq!(&b[..n], b"2153");
    }
    let mut want = vec![0u64; workers];
    want[2152 % workers] += 1;
    want[2153 % workers] += 3;
    // A worker adds its batch's count after writing the batch: the UE can
    // have the last packet before the count is there.
    let got = || -> Vec<u64> {
        (0..workers)
            .map(|k| worker_metric(&topo.upf, "gnb_worker_n3_rx_packets_total", k) - before[k])
            .collect()
    };
    wait_until(Duration::from_secs(3), || got() == want);
    let got = got();
    assert_eq!(got, want, "G-PDUs per gNB worker ({workers} workers)");
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn an_end_marker_waits_for_the_old_g_pdus_of_every_worker() {
    // The UPF's worker 1 sends the old path's last G-PDUs from port 2153,
    // its control side the End Marker from 2152: they reach different gNB
    // workers. The old tunnel must stay until the other worker has handled
    // every G-PDU that came before the End Marker (none meets an unknown
    // TEID), and then go.
    let (topo, upf, _gnb) = gnb_with_upf("h7e", BIN, FakeUpf::start);
    let gnb_n3 = SocketAddr::from((addr::GNB_N3, 2152));
    let a = Ipv4Addr::new(10, 45, 0, 8);
    let ue = "imsi-001010000000004";
    let old = setup(&topo.upf, ue, 1, a, 0x100);
    ue_session(&topo.ue, a, 1001);
    let new = setup(&topo.upf, ue, 1, a, 0x300);
    let t = tunnels(&topo.upf);
    assert!(t.iter().any(|t| t.dl_teid == old.dl_teid && t.draining));
    let second = topo
        .upf
        .udp(SocketAddr::from((addr::UPF_N3, 2153)))
        .expect("a second UPF port");
    let m = |name| metric(&topo.upf, name);
    let (unknown0, rx0, tx0) = (
        m("gnb_dl_unknown_teid_total"),
        m("gnb_n3_rx_packets_total"),
        m("gnb_tun_tx_packets_total"),
    );
    const N: u64 = 3000;
    let g_pdu = dl_udp(old.dl_teid, a, b"last");
    for _ in 0..N {
        second.send_to(&g_pdu, gnb_n3).unwrap();
    }
    upf.send_repr(&Repr::end_marker(old.dl_teid), gnb_n3)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || tunnels(&topo.upf).len() == 1),
        "the old tunnel stayed after its End Marker: {:?}",
        tunnels(&topo.upf)
    );
    assert_eq!(tunnels(&topo.upf)[0].dl_teid, new.dl_teid);
    // Every datagram reached the gNB (so none of the G-PDUs was spared the
    // race by a full socket), and each G-PDU went to the TUN.
    assert!(wait_until(Duration::from_secs(3), || m(
        "gnb_n3_rx_packets_total"
    ) - rx0
        == N + 1));
    assert_eq!(
        m("gnb_dl_unknown_teid_total") - unknown0,
        0,
        "G-PDUs sent before the End Marker met an unknown TEID"
    );
    assert_eq!(m("gnb_tun_tx_packets_total") - tx0, N);
}
