//! Issue 13 items 1 and 4 at the gNB, in namespaces: the radio side
//! reaches only the N1 relay; a UE acts only for itself on N1 and sends
//! uplink only into its own tunnels (point-to-point link and shared cell);
//! downlink is taken only from the UPF of its tunnel. Needs root and `nft`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use testkit::gnb::{addr, FakeSmf, FakeUpf, InProcessGnb, Topo};
use testkit::{wait_until, Netns};
use wire::ctl::SessionInfo;
use wire::gtpu::Repr;

const BIN: &str = env!("CARGO_BIN_EXE_gnb");

fn n1() -> String {
    format!("http://{}:{}", addr::GNB_RADIO, wire::ctl::GNB_N1_PORT)
}

fn session_request(ue: &str) -> Option<String> {
    Some(format!(
        r#"{{"ue_id":"{ue}","pdu_session_id":1,"dnn":"internet"}}"#
    ))
}

/// Asks for PDU session 1 of `ue` through the N1 relay from `ns`.
fn establish(ns: &Netns, ue: &str) -> SessionInfo {
    let (st, b) = http(
        ns,
        "POST",
        format!("{}/n1/sessions", n1()),
        session_request(ue),
    );
    assert_eq!(st, 201, "{b}");
    serde_json::from_str(&b).unwrap()
}

/// Whether a TCP connection from `ns` to `to` is accepted within 500 ms.
fn tcp_reaches(ns: &Netns, to: SocketAddr) -> bool {
    ns.run(move || TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok())
        .unwrap()
}

/// Whether the nftables table of the gNB is in `ns`.
fn has_table(ns: &Netns) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "list", "table", "inet"])
        .arg(gnb::firewall::TABLE)
        .output()
        .unwrap()
        .status
        .success()
}

fn start_fakes(upf_ns: &Netns) -> (FakeUpf, FakeSmf) {
    let upf = FakeUpf::start(upf_ns, addr::UPF_N3).unwrap();
    let smf = FakeSmf::start(
        upf_ns,
        SocketAddr::from((addr::UPF_N3, 7000)),
        addr::UPF_N3,
        upf.sessions.clone(),
    )
    .unwrap();
    (upf, smf)
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn radio_side_reaches_only_the_n1_relay() {
    let topo = root_topo("i13a");
    let (_upf, _smf) = start_fakes(&topo.upf);
    let cfg = topo.gnb_config(7000);
    let (mut gnb, _f) = topo.start_gnb(BIN, &cfg).unwrap();
    assert!(has_table(&topo.gnb));
    topo.ue
        .ip(&[
            "route",
            "add",
            "default",
            "via",
            &addr::GNB_RADIO.to_string(),
        ])
        .unwrap();

    // N1 works, and only for the UE on the link.
    let info = establish(&topo.ue, "imsi-1");
    let (st, b) = http(&topo.ue, "GET", format!("{}/n1/sessions", n1()), None);
    assert_eq!(st, 200, "{b}");
    let own: Vec<gnb::api::OwnSession> = serde_json::from_str(&b).unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].ue_addr, info.ue_addr);
    assert!(
        !b.contains("teid") && !b.contains(&addr::UPF_N3.to_string()),
        "{b}"
    );
    // No tunnel list, no metrics, no N2-lite on the radio address.
    for path in ["/tunnels", "/metrics", "/n2/tunnels"] {
        let (st, _) = http(&topo.ue, "GET", format!("{}{path}", n1()), None);
        assert_eq!(st, 404, "{path} on the N1 relay");
    }
    // Nothing else of the gNB answers the radio side: N2-lite on its cp
    // (here also N3) address and on the radio address, GTP-U on N3.
    let n2 = SocketAddr::from((addr::GNB_N3, wire::ctl::GNB_N2_PORT));
    assert!(
        !tcp_reaches(&topo.ue, n2),
        "N2-lite reachable from the radio side"
    );
    assert!(!tcp_reaches(
        &topo.ue,
        SocketAddr::from((addr::GNB_RADIO, wire::ctl::GNB_N2_PORT))
    ));
    assert!(tcp_reaches(&topo.upf, n2), "N2-lite from the core side");
    let echo_answered = topo
        .ue
        .run(|| {
            let s = UdpSocket::bind((addr::UE_RADIO, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut out = [0u8; 64];
            let n = Repr::echo_request(1).emit(&mut out).unwrap();
            s.send_to(&out[..n], (addr::GNB_N3, wire::gtpu::PORT))
                .unwrap();
            s.recv_from(&mut out).is_ok()
        })
        .unwrap();
    assert!(!echo_answered, "GTP-U Echo answered to the radio side");
    assert_eq!(metric(&topo.upf, "gnb_echo_requests_total"), 0);
    assert!(metric(&topo.upf, "gnb_fw_radio_in_dropped_packets_total") >= 3);

    // Not routed onto the n3 (or cp) switch: a datagram from the UE's radio
    // address to the UPF's N3 address never arrives.
    let sink = topo.upf.udp((addr::UPF_N3, 9999)).unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    topo.ue
        .run(|| {
            let s = UdpSocket::bind((addr::UE_RADIO, 0)).unwrap();
            s.send_to(b"hello core", (addr::UPF_N3, 9999)).unwrap();
        })
        .unwrap();
    assert!(
        sink.recv_from(&mut [0u8; 64]).is_err(),
        "radio traffic reached N3"
    );
    assert!(metric(&topo.upf, "gnb_fw_ul_not_own_session_packets_total") >= 1);

    // Another UE's id from this link: refused, for every N1 call.
    let (st, b) = http(
        &topo.ue,
        "POST",
        format!("{}/n1/sessions", n1()),
        session_request("imsi-2"),
    );
    assert_eq!(st, 403, "{b}");
    assert!(b.contains("imsi-1"), "{b}");
    let (st, _) = http(
        &topo.ue,
        "DELETE",
        format!("{}/n1/sessions/imsi-2/1", n1()),
        None,
    );
    assert_eq!(st, 403);
    let (st, _) = http(&topo.ue, "GET", format!("{}/n1/events/imsi-2", n1()), None);
    assert_eq!(st, 403);
    assert_eq!(metric(&topo.upf, "gnb_n1_refused_total"), 3);

    // Stopping the gNB removes its table.
    assert!(gnb.stop(Duration::from_secs(5)));
    assert!(!has_table(&topo.gnb), "nftables table left behind");
}

#[test]
#[ignore = "needs root: network namespaces, TUN"]
fn without_nft_the_gnb_refuses_to_start_and_says_why() {
    testkit::require_root();
    let topo = Topo::new("i13n").unwrap();
    let cfg = topo.gnb_config(7000);
    let file = testkit::TempFile::new(&format!("{}.toml", topo.gnb.name), &cfg.to_toml()).unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.gnb.name,
            "env",
            "PATH=/nonexistent",
            BIN,
        ])
        .args(["run", "--config", file.path()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("`nft` was not found") && err.contains("radio_firewall = false"),
        "{err}"
    );
}

/// A shared cell: the gNB's radio interface is a bridge, each UE a port.
struct Cell {
    ues: Vec<Netns>,
    gnb: Netns,
    upf: Netns,
}

impl Cell {
    fn new(tag: &str, n: usize) -> Cell {
        let base = testkit::unique(tag);
        let gnb = Netns::new(&format!("{base}g")).unwrap();
        let upf = Netns::new(&format!("{base}p")).unwrap();
        let ues: Vec<Netns> = (0..n)
            .map(|i| Netns::new(&format!("{base}u{i}")).unwrap())
            .collect();
        gnb.ip(&["link", "add", "radio", "type", "bridge"]).unwrap();
        for (i, ue) in ues.iter().enumerate() {
            let port = format!("p{i}");
            ue.ip(&[
                "link", "add", "radio", "type", "veth", "peer", "name", &port, "netns", &gnb.name,
            ])
            .unwrap();
            gnb.ip(&["link", "set", &port, "master", "radio", "up"])
                .unwrap();
            let a = format!("10.10.1.{}/24", 10 + i);
            ue.ip(&["addr", "add", &a, "dev", "radio"]).unwrap();
            ue.ip(&["link", "set", "radio", "up"]).unwrap();
        }
        gnb.ip(&[
            "link", "add", "n3", "type", "veth", "peer", "name", "n3", "netns", &upf.name,
        ])
        .unwrap();
        for (ns, a, dev) in [
            (&gnb, addr::GNB_RADIO, "radio"),
            (&gnb, addr::GNB_N3, "n3"),
            (&upf, addr::UPF_N3, "n3"),
        ] {
            ns.ip(&["addr", "add", &format!("{a}/24"), "dev", dev])
                .unwrap();
            ns.ip(&["link", "set", dev, "up"]).unwrap();
        }
        Cell { ues, gnb, upf }
    }
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn on_a_shared_cell_a_ue_acts_and_sends_only_for_itself() {
    testkit::require_root();
    testkit::require_tool("nft");
    let cell = Cell::new("i13c", 2);
    let (upf, smf) = start_fakes(&cell.upf);
    let mut cfg = gnb::GnbConfig::with_name("gnb-cell");
    cfg.cp_addr = addr::GNB_N3;
    cfg.n3_addr = addr::GNB_N3;
    cfg.smf_api = SocketAddr::from((addr::UPF_N3, 7000));
    let _gnb = InProcessGnb::start(&cell.gnb, cfg).unwrap();
    let (u0, u1) = (&cell.ues[0], &cell.ues[1]);
    let s0 = establish(u0, "imsi-0");
    let s1 = establish(u1, "imsi-1");
    ue_session(u0, s0.ue_addr, 100);
    ue_session(u1, s1.ue_addr, 100);
    assert!(udp_echo(u0, s0.ue_addr, b"ue0").is_some());
    assert!(udp_echo(u1, s1.ue_addr, b"ue1").is_some());

    // Each UE sees only its own session.
    for (ue, s) in [(u0, &s0), (u1, &s1)] {
        let (st, b) = http(ue, "GET", format!("{}/n1/sessions", n1()), None);
        assert_eq!(st, 200);
        let own: Vec<gnb::api::OwnSession> = serde_json::from_str(&b).unwrap();
        assert_eq!(
            own.iter().map(|o| o.ue_addr).collect::<Vec<_>>(),
            vec![s.ue_addr]
        );
    }
    // UE 0 cannot release, re-establish or watch UE 1's session.
    let (st, b) = http(u0, "DELETE", format!("{}/n1/sessions/imsi-1/1", n1()), None);
    assert_eq!(st, 403, "{b}");
    let (st, _) = http(
        u0,
        "POST",
        format!("{}/n1/sessions", n1()),
        session_request("imsi-1"),
    );
    assert_eq!(st, 403);
    let (st, _) = http(u0, "GET", format!("{}/n1/events/imsi-1", n1()), None);
    assert_eq!(st, 403);
    assert_eq!(smf.sessions.lock().unwrap().len(), 2);
    assert_eq!(tunnels(&cell.upf).len(), 2);

    // UE 0 sends with UE 1's session address as source: dropped and
    // counted, it never enters UE 1's tunnel.
    let from_s1 = |src: Ipv4Addr| upf.seen().iter().filter(|s| s.src == src).count();
    let before = from_s1(s1.ue_addr);
    let dropped = metric(&cell.upf, "gnb_fw_ul_not_own_session_packets_total");
    ue_session(u0, s1.ue_addr, 101);
    // u0 must ARP for its gateway again, as UE 1's address: the gNB's
    // neighbour entry for that address is pinned to UE 1's MAC.
    u0.ip(&["neigh", "flush", "dev", "radio"]).unwrap();
    assert!(udp_echo(u0, s1.ue_addr, b"spoof").is_none());
    assert_eq!(
        from_s1(s1.ue_addr),
        before,
        "UE 0's packet went into UE 1's tunnel"
    );
    assert!(metric(&cell.upf, "gnb_fw_ul_not_own_session_packets_total") >= dropped + 3);
    // Its own session still works, and UE 1 still gets its downlink.
    assert!(udp_echo(u0, s0.ue_addr, b"ue0 again").is_some());
    assert!(udp_echo(u1, s1.ue_addr, b"ue1 again").is_some());
    let neigh = cell
        .gnb
        .ip(&["neigh", "show", &s1.ue_addr.to_string(), "dev", "radio"])
        .unwrap();
    let mac1 = u1.ip(&["link", "show", "radio"]).unwrap();
    let mac1 = mac1
        .split("link/ether ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        neigh.contains(mac1) && neigh.contains("PERMANENT"),
        "{neigh}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn downlink_only_from_the_tunnels_upf() {
    let topo = root_topo("i13d");
    let upf = FakeUpf::start(&topo.upf, addr::UPF_N3).unwrap();
    let _gnb = InProcessGnb::start(&topo.gnb, topo.gnb_config(7000)).unwrap();
    let gnb_n3 = SocketAddr::from((addr::GNB_N3, wire::gtpu::PORT));
    let a = Ipv4Addr::new(10, 45, 0, 7);
    let old = setup(&topo.upf, "imsi-7", 1, a, 0x700);
    ue_session(&topo.ue, a, 100);
    let ue_sock = ue_dl_socket(&topo.ue, a, Duration::from_millis(500));
    // A rogue host on the n3 switch, sending as if it were a UPF.
    let rogue_ip = Ipv4Addr::new(10, 3, 0, 9);
    topo.upf
        .ip(&["addr", "add", &format!("{rogue_ip}/24"), "dev", "n3"])
        .unwrap();
    let rogue = topo.upf.udp((rogue_ip, wire::gtpu::PORT)).unwrap();
    let mut b = [0u8; 64];

    rogue
        .send_to(&dl_udp(old.dl_teid, a, b"fake"), gnb_n3)
        .unwrap();
    assert!(
        ue_sock.recv_from(&mut b).is_err(),
        "downlink from a rogue delivered"
    );
    assert!(wait_until(Duration::from_secs(3), || metric(
        &topo.upf,
        "gnb_dl_wrong_peer_total"
    ) == 1));
    upf.send(&dl_udp(old.dl_teid, a, b"real"), gnb_n3).unwrap();
    let (n, _) = ue_sock.recv_from(&mut b).expect("downlink from the UPF");
    assert_eq!(&b[..n], b"real");

    // A path switch leaves the old tunnel draining: a rogue End Marker does
    // not end it, the UPF's does.
    setup(&topo.upf, "imsi-7", 1, a, 0x701);
    assert_eq!(tunnels(&topo.upf).len(), 2);
    let mut em = [0u8; 64];
    let n = Repr::end_marker(old.dl_teid).emit(&mut em).unwrap();
    rogue.send_to(&em[..n], gnb_n3).unwrap();
    assert!(wait_until(Duration::from_secs(3), || metric(
        &topo.upf,
        "gnb_dl_wrong_peer_total"
    ) == 2));
    assert_eq!(
        tunnels(&topo.upf).len(),
        2,
        "a rogue End Marker ended a tunnel"
    );
    upf.send_repr(&Repr::end_marker(old.dl_teid), gnb_n3)
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || tunnels(&topo.upf)
        .len()
        == 1));
}

#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn emulated_ues_mode_lets_one_peer_speak_for_many() {
    let topo = root_topo("i13e");
    let (_upf, smf) = start_fakes(&topo.upf);
    let mut cfg = topo.gnb_config(7000);
    cfg.radio_link = gnb::radio::RadioLink::EmulatedUes;
    let _gnb = InProcessGnb::start(&topo.gnb, cfg).unwrap();
    let a = establish(&topo.ue, "imsi-a");
    let b = establish(&topo.ue, "imsi-b");
    ue_session(&topo.ue, a.ue_addr, 100);
    ue_session(&topo.ue, b.ue_addr, 101);
    assert!(udp_echo(&topo.ue, a.ue_addr, b"a").is_some());
    assert!(udp_echo(&topo.ue, b.ue_addr, b"b").is_some());
    assert_eq!(smf.sessions.lock().unwrap().len(), 2);
    // Nothing is bound, so nothing is listed as the peer's own.
    let (st, body) = http(&topo.ue, "GET", format!("{}/n1/sessions", n1()), None);
    assert_eq!((st, body.as_str()), (200, "[]"));
}
