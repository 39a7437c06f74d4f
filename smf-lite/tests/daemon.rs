//! The daemon on loopback (PFCP and HTTP on 127.0.0.1, distinct ports):
//! a fake UPF (wire::pfcp over UDP) and a fake gNB (N2-lite over HTTP).

mod common;

use common::peers::{blocking, config, fake_gnb, raw, wait_associated, wait_in_place, UdpUpf};
use smf_lite::client::{HttpError, SmfClient};
use std::net::Ipv4Addr;
use std::time::Duration;
use wire::ctl::{GnbRef, SessionRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_full_flow_and_api_errors_on_loopback() {
    let u1 = UdpUpf::start("upf1");
    let u2 = UdpUpf::start("upf2");
    let (gnb_addr, tunnels) = fake_gnb().await;
    let cfg = config(&[
        ("upf1", u1.addr, "edge1", "10.60.0.0/24"),
        ("upf2", u2.addr, "edge2", "10.61.0.0/24"),
    ]);
    let smf = smf_lite::daemon::start(cfg).await.expect("starts");
    let api = smf.api_addr;
    let c = SmfClient::new(&api.to_string());
    wait_associated(&c, 2).await;
    let c2 = c.clone();
    let upfs = blocking(move || c2.upfs()).await.expect("upfs");
    assert_eq!(upfs[0]["recovery_time_stamp"], 4242);
    assert_eq!(upfs[0]["name"], "upf1");

    let gnb = GnbRef {
        name: "gnb1".into(),
        n2_api: gnb_addr.to_string(),
    };
    let mk = |psi: u8, dnn: &str| SessionRequest {
        ue_id: "imsi-001010000000001".into(),
        pdu_session_id: psi,
        dnn: dnn.into(),
        upf: None,
        gnb: Some(gnb.clone()),
    };
    let (r1, r2) = (mk(1, "edge1"), mk(2, "edge2"));
    let c2 = c.clone();
    let (a, b) = blocking(move || (c2.create(&r1), c2.create(&r2))).await;
    let (a, b) = (a.expect("session 1"), b.expect("session 2"));
    assert_eq!((a.upf.as_str(), b.upf.as_str()), ("upf1", "upf2"));
    assert_eq!(a.ue_addr, Ipv4Addr::new(10, 60, 0, 1));
    assert_eq!(b.ue_addr, Ipv4Addr::new(10, 61, 0, 1));
    {
        let t = tunnels.lock().expect("lock");
        assert_eq!(t.len(), 2);
        assert_eq!(t[&a.dl_teid].ul_teid, a.ul_teid);
        let up = u1.upf.lock().expect("lock");
        let fs = up.sessions.get(&a.up_seid).expect("at upf1");
        assert_eq!(fs.fars[&2].1.and_then(|o| o.teid), Some(a.dl_teid));
    }

    // Duplicate: 409 naming the field.
    let body = serde_json::to_string(&mk(1, "edge1")).expect("json");
    let (st, e) = raw("POST", &format!("http://{api}/sessions"), Some(&body));
    assert_eq!(st, 409);
    assert_eq!(e["field"], "pdu_session_id");
    // Malformed and unknown requests: 4xx naming what was wrong.
    for (body, field) in [
        (r#"{"ue_id":"x","pdu_session_id":1}"#, "dnn"),
        (
            r#"{"ue_id":"x","pdu_session_id":1,"dnn":"edge1","colour":"red"}"#,
            "colour",
        ),
        (r#"{"ue_id":"x","pdu_session_id":300,"dnn":"edge1"}"#, ""),
        (r#"{"ue_id":"x","pdu_session_id":1,"dnn":"edge9"}"#, "dnn"),
        (r#"{"ue_id":"x","pdu_session_id":1,"dnn":"edge1"}"#, "gnb"),
        ("not json", ""),
    ] {
        let (st, e) = raw("POST", &format!("http://{api}/sessions"), Some(body));
        assert_eq!(st, 400, "{body}: {e}");
        assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        if !field.is_empty() {
            assert_eq!(e["field"], field, "{body}: {e}");
        }
    }
    let (st, e) = raw("GET", &format!("http://{api}/sessions/imsi-1/abc"), None);
    assert_eq!((st, e["field"].as_str()), (400, Some("pdu_session_id")));
    let (st, _) = raw("GET", &format!("http://{api}/sessions/imsi-1/3"), None);
    assert_eq!(st, 404);
    let (st, e) = raw("GET", &format!("http://{api}/nothing"), None);
    assert_eq!(st, 404);
    assert!(e["error"].is_string());
    // Nothing half made by the failures.
    let c2 = c.clone();
    let list = blocking(move || c2.list()).await.expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["state"], "active");

    // Release session 1: UPF1's session and the gNB's tunnel go; session 2 stays.
    let c2 = c.clone();
    blocking(move || c2.release("imsi-001010000000001", 1))
        .await
        .expect("release");
    assert!(u1.upf.lock().expect("lock").sessions.is_empty());
    assert_eq!(u2.upf.lock().expect("lock").sessions.len(), 1);
    // The N2 delete is fire-and-forget: wait for it.
    assert!(
        wait_in_place(Duration::from_secs(2), || !tunnels
            .lock()
            .expect("lock")
            .contains_key(&a.dl_teid)),
        "gNB tunnel not deleted within 2 s"
    );
    assert!(tunnels.lock().expect("lock").contains_key(&b.dl_teid));
    let c2 = c.clone();
    let e = blocking(move || c2.release("imsi-001010000000001", 1)).await;
    assert!(
        matches!(e, Err(HttpError::Status { status: 404, .. })),
        "{e:?}"
    );

    // The CLI against the running daemon.
    let exe = env!("CARGO_BIN_EXE_smf");
    let (api_s, gnb_s) = (api.to_string(), gnb_addr.to_string());
    let out = blocking(move || {
        let run = |args: &[&str]| {
            let o = std::process::Command::new(exe)
                .args(args)
                .args(["--api", &api_s])
                .output()
                .expect("runs");
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr),
            )
        };
        let create = run(&[
            "session", "create", "--ue", "imsi-cli", "--psi", "3", "--dnn", "edge1", "--gnb",
            "gnb1", "--gnb-n2", &gnb_s,
        ]);
        let list = run(&["session", "list"]);
        let release = run(&["session", "release", "--ue", "imsi-cli", "--psi", "3"]);
        let again = run(&["session", "release", "--ue", "imsi-cli", "--psi", "3"]);
        let upfs = run(&["upfs"]);
        (create, list, release, again, upfs)
    })
    .await;
    let (create, list, release, again, upfs) = out;
    assert!(
        create.0 && create.1.contains("\"ue_addr\": \"10.60.0.2\""),
        "{}",
        create.1
    );
    assert!(list.0 && list.1.contains("imsi-cli"), "{}", list.1);
    assert!(release.0, "{}", release.1);
    assert!(!again.0 && again.1.contains("404"), "{}", again.1);
    assert!(upfs.0 && upfs.1.contains("\"associated\""), "{}", upfs.1);

    let c2 = c.clone();
    let m = blocking(move || c2.metrics()).await.expect("metrics");
    assert!(m.contains("smf_sessions_created_total 3"), "{m}");
    assert!(m.contains("smf_sessions_released_total 2"), "{m}");
    // Heartbeats flow (interval 500 ms).
    assert!(
        wait_in_place(Duration::from_secs(2), || u1
            .upf
            .lock()
            .expect("lock")
            .count(wire::pfcp::msg_type::HeartbeatRequest)
            >= 1),
        "no heartbeat request within 2 s"
    );
    smf.stop().await;
}

#[test]
fn cli_check_config_and_session_commands() {
    let exe = env!("CARGO_BIN_EXE_smf");
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/smf.toml");
    let ok = testkit::run_cmd(exe, &["check-config", good]).unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.contains("upf2"));
    let dir = std::env::temp_dir().join(format!("smf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[timers]\nt1_ms = 0\n").expect("write");
    let out = std::process::Command::new(exe)
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    // A configuration error is a usage error: exit status 2.
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timers.t1_ms"));
    // The client side against no server: a clear error, exit 1.
    let out = std::process::Command::new(exe)
        .args(["session", "list", "--api", "127.0.0.1:9"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:9"));
    let help = std::process::Command::new(exe)
        .arg("--help")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&help.stdout).contains("smf session create"));
}
