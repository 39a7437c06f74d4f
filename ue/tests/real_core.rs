//! The UE daemon and CLI, the gNB, and the real SMF (smf-lite) and UPF
//! (upf) crates, in-process, each in its namespace:
//! UE ns -- radio -- gNB ns -- n3 -- core ns (SMF + UPF, DN host 10.60.0.1).
//! Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::{cli, BIN};
use testkit::gnb::{InProcessGnb, Topo};
use testkit::{wait_until, TempFile};
use ue::UeConfig;
use wire::ctl::SessionInfo;

/// The real UPF in its namespace, stopped on drop.
struct RealUpf(Option<upf::daemon::Upf>);
impl Drop for RealUpf {
    fn drop(&mut self) {
        if let Some(u) = self.0.take() {
            u.stop();
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn sessions_through_the_real_smf_and_upf() {
    testkit::require_root();
    let topo = Topo::new("h7r").unwrap();
    // The DN host: a local address of the core namespace.
    topo.upf
        .ip(&["addr", "add", "10.60.0.1/32", "dev", "lo"])
        .unwrap();
    let upf_cfg = upf::config::Config::from_toml(
        r#"
node_id = "127.0.0.1"
[n4]
addr = "127.0.0.1:8805"
[n3]
addrs = ["10.3.0.2"]
[n6]
tun = "n6"
ue_pools = ["10.45.0.0/16"]
[metrics]
addr = "127.0.0.1:0"
"#,
    )
    .unwrap();
    let _upf = RealUpf(Some(
        topo.upf
            .run(move || upf::daemon::Upf::start(upf_cfg))
            .unwrap()
            .unwrap(),
    ));
    let smf_file = TempFile::new(
        &format!("{}-smf.toml", topo.upf.name),
        r#"
node_id = "127.0.0.2"
n4_bind = "127.0.0.2:8805"
api_bind = "10.3.0.2:7000"
[[upf]]
name = "upf1"
n4 = "127.0.0.1:8805"
[[upf.dnn]]
name = "internet"
pool = "10.45.0.0/16"
"#,
    )
    .unwrap();
    let smf_cfg = smf_lite::config::Config::load(std::path::Path::new(smf_file.path())).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = topo
        .upf
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let r = smf_lite::daemon::start(smf_cfg).await.unwrap();
                ready_tx.send(()).unwrap();
                let _ = rx.await;
                r.stop().await;
            });
        })
        .unwrap();
    // The real SMF on a runtime thread in its namespace, stopped on drop.
    let _smf = testkit::StopOnDrop::new(tx, thread);
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let _gnb = InProcessGnb::start(&topo.gnb, topo.gnb_config(7000)).unwrap();

    let cfg = UeConfig::with_id("imsi-001010000000001");
    let f = TempFile::new(&format!("{}-ue.toml", topo.ue.name), &cfg.to_toml()).unwrap();
    let mut daemon = topo
        .ue
        .spawn_process(BIN, &["run", "--config", f.path()])
        .unwrap();
    let api = cfg.api;
    assert!(wait_until(Duration::from_secs(10), || topo
        .ue
        .run(move || std::net::TcpStream::connect_timeout(&api, Duration::from_millis(100)).is_ok())
        .unwrap()));

    // The SMF associates with the UPF in the background: retry briefly.
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let (ok, out, err) = cli(&topo.ue, &["session", "add", "--psi", "1"]);
        last = format!("{out}{err}");
        ok
    });
    assert!(ok, "{last}");
    let (ok, out, err) = cli(&topo.ue, &["session", "add", "--psi", "2"]);
    assert!(ok, "{out}{err}");
    let (_, json, _) = cli(&topo.ue, &["session", "list", "--json"]);
    let list: Vec<SessionInfo> = serde_json::from_str(&json).unwrap();
    assert_eq!(list.len(), 2);

    // UDP bound to each session's address reaches the DN host through the
    // real UPF, and the reply comes back.
    let server = topo
        .upf
        .run(|| UdpSocket::bind(("10.60.0.1", 9000)).unwrap())
        .unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut seen = Vec::new();
        while !done2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                seen.push(from.ip());
                let _ = server.send_to(&buf[..n], from);
            }
        }
        seen
    });
    for s in &list {
        let src = s.ue_addr;
        let got = topo
            .ue
            .run(move || {
                let s = UdpSocket::bind((src, 0)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut buf = [0u8; 64];
                for _ in 0..6 {
                    s.send_to(b"hello core", ("10.60.0.1", 9000)).unwrap();
                    if let Ok((n, from)) = s.recv_from(&mut buf) {
                        return Some((buf[..n].to_vec(), from));
                    }
                }
                None
            })
            .unwrap();
        let (data, from) =
            got.unwrap_or_else(|| panic!("no echo through session {}", s.pdu_session_id));
        assert_eq!(data, b"hello core");
        assert_eq!(from, SocketAddr::from((Ipv4Addr::new(10, 60, 0, 1), 9000)));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = echo.join().unwrap();
    for s in &list {
        assert!(seen.contains(&std::net::IpAddr::V4(s.ue_addr)), "{seen:?}");
    }
    let (ok, out, err) = cli(&topo.ue, &["session", "del", "--psi", "1"]);
    assert!(ok, "{out}{err}");

    // Killed with session 2 up, the daemon leaves it at the network; the
    // next daemon of this UE releases it before it sets up the one it is
    // configured with, so the SMF holds exactly that one and it carries
    // traffic.
    let old_addr = list
        .iter()
        .find(|s| s.pdu_session_id == 2)
        .expect("session 2")
        .ue_addr
        .to_string();
    let ue_net = |what: &'static str| {
        topo.ue
            .run(move || testkit::run_cmd("ip", &["-4", "-o", what, "show"]))
            .unwrap()
            .unwrap()
    };
    assert!(ue_net("addr").contains(&old_addr), "{}", ue_net("addr"));
    daemon.kill();
    let smf_sessions = || {
        topo.upf
            .run(|| {
                let c = ctlhttp::Client::new(Duration::from_secs(3));
                ctlhttp::daemon::block_on_control_plane(async move {
                    c.get("http://10.3.0.2:7000/sessions").await
                })
            })
            .unwrap()
            .unwrap()
            .unwrap()
            .text()
    };
    let left: Vec<serde_json::Value> = serde_json::from_str(&smf_sessions()).unwrap();
    assert_eq!(left.len(), 1, "the killed daemon's session stays: {left:?}");
    let mut cfg = cfg;
    cfg.sessions = vec![ue::config::SessionSpec {
        psi: 3,
        dnn: "internet".into(),
        upf: None,
    }];
    let f = TempFile::new(&format!("{}-ue2.toml", topo.ue.name), &cfg.to_toml()).unwrap();
    let mut daemon = topo
        .ue
        .spawn_process(BIN, &["run", "--config", f.path()])
        .unwrap();
    let mut now: Vec<serde_json::Value> = Vec::new();
    let settled = wait_until(Duration::from_secs(10), || {
        let (_, json, _) = cli(&topo.ue, &["session", "list", "--json"]);
        let mine: Vec<SessionInfo> = serde_json::from_str(&json).unwrap_or_default();
        now = serde_json::from_str(&smf_sessions()).unwrap_or_default();
        mine.len() == 1 && now.len() == 1
    });
    assert!(settled, "after the restart the SMF holds {now:?}");
    assert_eq!(now[0]["pdu_session_id"], 3, "{now:?}");
    // Nor does the UE keep the earlier life's address and rule.
    for what in ["addr", "rule"] {
        let left = ue_net(what);
        assert!(
            !left.contains(&format!("{old_addr}/")) && !left.contains(&format!("{old_addr} ")),
            "{what} of the killed daemon's session {old_addr} left: {left}"
        );
    }
    assert!(daemon.stop(Duration::from_secs(10)));
}
