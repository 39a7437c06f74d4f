//! The UE daemon and CLI against a real gNB (in-process, in its namespace),
//! a fake SMF and a fake UPF: UE ns -- radio -- gNB ns -- n3 -- UPF ns.
//! Needs root. Guards remove every namespace and process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{cli, BIN};
use testkit::gnb::{addr, dn_round_trip, fake_core, FakeSmf, FakeUpf, InProcessGnb, Topo};
use testkit::{wait_until, Netns, TempFile};
use ue::UeConfig;
use wire::ctl::SessionInfo;

/// A "ping" from `src` through the data network comes back from the DN
/// host's port 9000 (the fake UPF echoes).
fn udp_echo(ns: &Netns, src: Ipv4Addr) -> bool {
    dn_round_trip(ns, src, 9000, b"ping")
        .unwrap()
        .is_some_and(|(data, from)| {
            data == b"ping" && from == SocketAddr::from((addr::DN_HOST, 9000))
        })
}

struct Bed {
    topo: Topo,
    upf: FakeUpf,
    smf: FakeSmf,
    gnb: InProcessGnb,
}

fn bed(tag: &str) -> Bed {
    bed_on(tag, gnb::radio::RadioLink::default())
}

/// A bed whose gNB treats its radio link as `link`.
fn bed_on(tag: &str, link: gnb::radio::RadioLink) -> Bed {
    let topo = Topo::new(tag).unwrap();
    let (upf, smf) = fake_core(&topo.upf).unwrap();
    let mut cfg = topo.gnb_config(7000);
    cfg.radio_link = link;
    let gnb = InProcessGnb::start(&topo.gnb, cfg).unwrap();
    Bed {
        topo,
        upf,
        smf,
        gnb,
    }
}

fn start_ue(b: &Bed, cfg: &UeConfig) -> (testkit::Process, TempFile) {
    let f = TempFile::new(
        &format!("{}-{}.toml", b.topo.ue.name, cfg.api.port()),
        &cfg.to_toml(),
    )
    .unwrap();
    let mut p = b
        .topo
        .ue
        .spawn_process(BIN, &["run", "--config", f.path()])
        .unwrap();
    let api = cfg.api;
    let ns = &b.topo.ue;
    assert!(
        wait_until(Duration::from_secs(10), || ns
            .run(
                move || std::net::TcpStream::connect_timeout(&api, Duration::from_millis(100))
                    .is_ok()
            )
            .unwrap()),
        "UE API did not come up (running: {})",
        p.running()
    );
    (p, f)
}

/// A client for calls from the thread that makes it (its namespace).
fn client() -> ctlhttp::blocking::Client {
    ctlhttp::blocking::Client::new(Duration::from_secs(10))
}

fn gnb_tunnels(b: &Bed) -> usize {
    let url = format!("http://{}:{}/tunnels", addr::GNB_N3, wire::ctl::GNB_N2_PORT);
    b.topo
        .upf
        .run(move || {
            let v: Vec<serde_json::Value> = client().get_json(&url).unwrap();
            v.len()
        })
        .unwrap()
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn cli_add_list_del_and_release_on_exit() {
    testkit::require_root();
    let b = bed("h7e");
    let ue = &b.topo.ue;
    // No daemon yet: the CLI says so.
    let (ok, _, err) = cli(ue, &["session", "list"]);
    assert!(!ok);
    assert!(err.contains("is `ue run` going?"), "{err}");

    let cfg = UeConfig::with_id("imsi-001010000000001");
    let (mut daemon, _f) = start_ue(&b, &cfg);

    let (ok, out, err) = cli(ue, &["session", "add", "--psi", "1", "--dnn", "internet"]);
    assert!(ok, "{out}{err}");
    let (ok, out2, err) = cli(
        ue,
        &[
            "session", "add", "--psi", "2", "--dnn", "internet", "--upf", "upf2",
        ],
    );
    assert!(ok, "{out2}{err}");
    let (ok, json, _) = cli(ue, &["session", "list", "--json"]);
    assert!(ok);
    let list: Vec<SessionInfo> = serde_json::from_str(&json).unwrap();
    assert_eq!(list.len(), 2);
    let (s1, s2) = (&list[0], &list[1]);
    assert_eq!((s1.pdu_session_id, s2.pdu_session_id), (1, 2));
    assert_eq!(s2.upf, "upf2");
    assert_ne!(s1.ue_addr, s2.ue_addr);
    assert!(out.contains(&s1.ue_addr.to_string()), "{out}");

    // Address, rule and table of each session are in place.
    let addrs = ue.ip(&["addr", "show", "dev", "radio"]).unwrap();
    let rules = ue.ip(&["rule", "show"]).unwrap();
    for (s, table) in [(s1, 1001), (s2, 1002)] {
        assert!(addrs.contains(&format!("inet {}/32", s.ue_addr)), "{addrs}");
        assert!(
            rules.contains(&format!("from {} lookup {table}", s.ue_addr)),
            "{rules}"
        );
        let r = ue
            .ip(&["route", "show", "table", &table.to_string()])
            .unwrap();
        assert!(r.contains("default via 10.10.1.1 dev radio"), "{r}");
    }

    // Traffic bound to each address goes through its own tunnel and back.
    assert!(udp_echo(ue, s1.ue_addr), "session 1 echo");
    assert!(udp_echo(ue, s2.ue_addr), "session 2 echo");
    let seen = b.upf.seen();
    assert!(seen
        .iter()
        .any(|x| x.teid == s1.ul_teid && x.src == s1.ue_addr));
    assert!(seen
        .iter()
        .any(|x| x.teid == s2.ul_teid && x.src == s2.ue_addr));
    assert_eq!(gnb_tunnels(&b), 2);

    // Errors come back readable.
    let (ok, _, err) = cli(ue, &["session", "add", "--psi", "2"]);
    assert!(!ok);
    assert!(
        err.contains("already exists") && err.contains("409"),
        "{err}"
    );
    let (ok, _, err) = cli(ue, &["session", "add", "--psi", "0"]);
    assert!(!ok);
    assert!(err.contains("field `psi`"), "{err}");
    let (ok, _, err) = cli(ue, &["session", "del", "--psi", "9"]);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");

    // Release session 1: its address, rule and table go; session 2 carries on.
    let (ok, out, err) = cli(ue, &["session", "del", "--psi", "1"]);
    assert!(ok, "{out}{err}");
    let addrs = ue.ip(&["addr", "show", "dev", "radio"]).unwrap();
    assert!(
        !addrs.contains(&format!("inet {}/32", s1.ue_addr)),
        "{addrs}"
    );
    let rules = ue.ip(&["rule", "show"]).unwrap();
    assert!(!rules.contains("lookup 1001"), "{rules}");
    assert!(ue
        .ip(&["route", "show", "table", "1001"])
        .map(|r| r.trim().is_empty())
        .unwrap_or(true));
    assert_eq!(gnb_tunnels(&b), 1);
    assert_eq!(b.smf.sessions.lock().unwrap().len(), 1);
    assert!(udp_echo(ue, s2.ue_addr), "session 2 after release of 1");

    // Stopping the daemon releases the rest.
    assert!(daemon.stop(Duration::from_secs(10)), "daemon exit status");
    let addrs = ue.ip(&["addr", "show", "dev", "radio"]).unwrap();
    assert!(
        !addrs.contains(&format!("inet {}/32", s2.ue_addr)),
        "{addrs}"
    );
    assert!(!ue.ip(&["rule", "show"]).unwrap().contains("lookup 1002"));
    assert_eq!(gnb_tunnels(&b), 0);
    assert!(b.smf.sessions.lock().unwrap().is_empty());
    drop(b.gnb);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn two_ues_in_one_namespace_and_sessions_from_config() {
    testkit::require_root();
    // Two UE processes share one radio interface (address and MAC): the gNB
    // must not bind a UE id to the link, as for a benchmark's emulated UEs.
    let b = bed_on("h7f", gnb::radio::RadioLink::EmulatedUes);
    let ue = &b.topo.ue;
    let mut c1 = UeConfig::with_id("imsi-001010000000011");
    c1.sessions = vec![ue::SessionSpec {
        psi: 1,
        dnn: "internet".into(),
        upf: None,
    }];
    let mut c2 = UeConfig::with_id("imsi-001010000000012");
    c2.table_base = 2000;
    c2.api = "127.0.0.1:7101".parse().unwrap();
    c2.sessions = c1.sessions.clone();
    let (_d1, _f1) = start_ue(&b, &c1);
    let (_d2, _f2) = start_ue(&b, &c2);
    let list = |api: &str| -> Vec<SessionInfo> {
        let (ok, json, err) = cli(ue, &["session", "list", "--json", "--api", api]);
        assert!(ok, "{err}");
        serde_json::from_str(&json).unwrap()
    };
    let l1 = list("127.0.0.1:7100");
    let l2 = list("127.0.0.1:7101");
    assert_eq!((l1.len(), l2.len()), (1, 1));
    assert_eq!(l1[0].ue_id, "imsi-001010000000011");
    assert_eq!(l2[0].ue_id, "imsi-001010000000012");
    let rules = ue.ip(&["rule", "show"]).unwrap();
    assert!(
        rules.contains(&format!("from {} lookup 1001", l1[0].ue_addr)),
        "{rules}"
    );
    assert!(
        rules.contains(&format!("from {} lookup 2001", l2[0].ue_addr)),
        "{rules}"
    );
    assert!(udp_echo(ue, l1[0].ue_addr));
    assert!(udp_echo(ue, l2[0].ue_addr));
    assert_eq!(gnb_tunnels(&b), 2);
}

/// Several UEs, each in its own namespace, behind one "cell" switch (a
/// bridge in its own namespace) on the gNB's single radio interface.
#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn ues_behind_a_cell_switch() {
    testkit::require_root();
    use testkit::{unique, Netns};
    let base = unique("h7c");
    let gnb_ns = Netns::new(&format!("{base}g")).unwrap();
    let upf_ns = Netns::new(&format!("{base}p")).unwrap();
    let cell = Netns::new(&format!("{base}c")).unwrap();
    let ues: Vec<Netns> = (0..3)
        .map(|i| Netns::new(&format!("{base}u{i}")).unwrap())
        .collect();
    cell.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    cell.ip(&["link", "set", "br0", "up"]).unwrap();
    let attach = |ns: &Netns, port: &str, ip: &str| {
        cell.veth(port, ns, "radio").unwrap();
        cell.ip(&["link", "set", port, "master", "br0", "up"])
            .unwrap();
        ns.addr_up("radio", ip).unwrap();
    };
    attach(&gnb_ns, "pg", "10.10.1.1/24");
    for (i, ns) in ues.iter().enumerate() {
        attach(ns, &format!("pu{i}"), &format!("10.10.1.{}/24", 10 + i));
    }
    gnb_ns.veth("n3", &upf_ns, "n3").unwrap();
    gnb_ns.addr_up("n3", "10.3.0.1/24").unwrap();
    upf_ns.addr_up("n3", "10.3.0.2/24").unwrap();
    let (_upf, _smf) = fake_core(&upf_ns).unwrap();
    let mut gcfg = gnb::GnbConfig::with_name("gnb-cell");
    gcfg.cp_addr = addr::GNB_N3;
    gcfg.smf_api = SocketAddr::from((addr::UPF_N3, 7000));
    let _gnb = InProcessGnb::start(&gnb_ns, gcfg).unwrap();

    let mut daemons = Vec::new();
    for (i, ns) in ues.iter().enumerate() {
        let mut c = UeConfig::with_id(&format!("imsi-00101000000010{i}"));
        c.sessions = vec![ue::SessionSpec {
            psi: 1,
            dnn: "internet".into(),
            upf: None,
        }];
        let f = TempFile::new(&format!("{}.toml", ns.name), &c.to_toml()).unwrap();
        let p = ns
            .spawn_process(BIN, &["run", "--config", f.path()])
            .unwrap();
        daemons.push((p, f));
    }
    for ns in &ues {
        let mut addr_of = None;
        assert!(wait_until(Duration::from_secs(10), || {
            let (ok, json, _) = cli(ns, &["session", "list", "--json"]);
            if let Some(s) = ok
                .then(|| serde_json::from_str::<Vec<SessionInfo>>(&json).ok())
                .flatten()
            {
                addr_of = s.first().map(|s| s.ue_addr);
            }
            addr_of.is_some()
        }));
        assert!(
            udp_echo(ns, addr_of.unwrap()),
            "UE {} through the cell",
            ns.name
        );
    }
    let url = format!("http://{}:{}/tunnels", addr::GNB_N3, wire::ctl::GNB_N2_PORT);
    let n = upf_ns
        .run(move || {
            let v: Vec<serde_json::Value> = client().get_json(&url).unwrap();
            v.len()
        })
        .unwrap();
    assert_eq!(n, 3);
    drop(daemons);
}
