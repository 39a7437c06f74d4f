//! The SMF daemon against the real `upf` (in-process), both on the loopback
//! of a namespace of their own (the UPF makes a TUN and routes; root only):
//! association, establishment (F-TEID CHOOSE), modification, deletion, and
//! a UPF restart that the SMF repairs by itself.

mod common;

use common::loopback::{self, edge1_session, fake_gnb_with, gnb_ref, GnbOpts, Tunnels};
use common::peers::{blocking, wait_in_place};
use smf_lite::client::SmfClient;
use smf_lite::Config;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The gNB for the real UPF: downlink on 127.0.0.1, TEIDs apart by PDU
/// session, deletes always answered 204.
async fn fake_gnb() -> (SocketAddr, Tunnels) {
    fake_gnb_with(GnbOpts {
        dl_addr: Ipv4Addr::LOCALHOST,
        teid: |held, _, req| 0x9000 + held as u32 + 16 * (req.pdu_session_id as u32),
        strict_delete: false,
    })
    .await
}

fn upf_config(tag: &str, n4: SocketAddr) -> upf::config::Config {
    let mut c = loopback::upf_config("upf1.test", n4, format!("{tag}t"), "10.60.0.0/24");
    c.n4.heartbeat_interval_ms = 0;
    c
}

fn smf_config(upf_n4: SocketAddr) -> Config {
    Config::parse(&format!(
        "node_id = \"127.0.0.1\"\nn4_bind = \"127.0.0.1:0\"\napi_bind = \"127.0.0.1:0\"\n\
         usage_report_period_s = 1\n\
         [timers]\nt1_ms = 200\nn1 = 2\nheartbeat_ms = 300\n\
         [[upf]]\nname = \"upf1\"\nn4 = \"{upf_n4}\"\n\
         [[upf.dnn]]\nname = \"edge1\"\npool = \"10.60.0.0/24\"\nnetwork_instance = \"internet\"\n"
    ))
    .expect("valid")
}

/// The wall clock in NTP seconds (the unit of Recovery Time Stamps).
fn ntp_now() -> u64 {
    u64::from(wire::pfcp::ntp_seconds(std::time::SystemTime::now()))
}

#[test]
#[ignore = "needs root: a network namespace and the UPF's TUN"]
fn smf_drives_the_real_upf() {
    testkit::require_root();
    let tag = format!("s6r{}", std::process::id() % 100_000);
    let ns = loopback::netns(tag.clone());
    loopback::block_on(&ns, move || scenario(tag));
    drop(ns);
}

async fn scenario(tag: String) {
    let n4 = SocketAddr::from(([127, 0, 0, 1], 8805));
    let upf = upf::daemon::Upf::start(upf_config(&tag, n4)).expect("UPF starts");
    let rts1 = upf.recovery_time_stamp();
    let (gnb_addr, tunnels) = fake_gnb().await;
    let smf = smf_lite::daemon::start(smf_config(n4))
        .await
        .expect("SMF starts");
    let c = SmfClient::new(&smf.api_addr.to_string());

    // Association.
    let mut upfs = Vec::new();
    wait_in_place(Duration::from_secs(2), || {
        upfs = c.upfs().expect("GET /upfs");
        upfs[0]["state"] == "associated"
    });
    assert_eq!(upfs[0]["state"], "associated", "{upfs:?}");
    assert_eq!(upfs[0]["recovery_time_stamp"], rts1);
    assert_eq!(upfs[0]["node_id"], "upf1.test");

    // Establishment + N2 + Modification.
    let req = edge1_session("imsi-001010000000001".into(), 1, &gnb_ref(gnb_addr));
    let (c2, r2) = (c.clone(), req.clone());
    let info = blocking(move || c2.create(&r2))
        .await
        .expect("session created by the real UPF");
    assert_eq!(
        info.ul_addr,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "F-TEID chosen on its N3"
    );
    assert_ne!(info.ul_teid, 0);
    assert!(
        upf.session_counters(info.up_seid).is_some(),
        "UPF holds the session"
    );
    {
        let t = tunnels.lock().expect("lock");
        assert_eq!(t[&info.dl_teid].ul_teid, info.ul_teid);
    }
    let sessions_metric = "smf_sessions{state=\"Active\"} 1";
    let c2 = c.clone();
    let m = blocking(move || c2.metrics()).await.expect("metrics");
    assert!(m.contains(sessions_metric), "{m}");

    // Periodic usage reports (URR PERIO, 1 s) from the UPF are answered.
    assert!(
        wait_in_place(Duration::from_secs(3), || {
            let v = c.get("imsi-001010000000001", 1).expect("GET");
            v["usage"]["reports"].as_u64().unwrap_or(0) > 0
        }),
        "no Session Report Request from the UPF within 3 s"
    );
    let c2 = c.clone();
    let m = blocking(move || c2.metrics()).await.expect("metrics");
    assert!(!m.contains("smf_pfcp_session_reports_total 0"), "{m}");

    // Restart the UPF: new Recovery Time Stamp, no sessions. The SMF
    // notices at its next heartbeat and re-establishes the session.
    let old_seid = info.up_seid;
    upf.stop();
    // The stamp has a one-second resolution: restart in a later second.
    assert!(
        wait_in_place(Duration::from_secs(3), || ntp_now() > u64::from(rts1)),
        "the clock did not pass {rts1} (NTP seconds)"
    );
    let upf = upf::daemon::Upf::start(upf_config(&tag, n4)).expect("UPF restarts");
    let rts2 = upf.recovery_time_stamp();
    assert_ne!(rts1, rts2);
    let mut v = serde_json::Value::Null;
    assert!(
        wait_in_place(Duration::from_secs(4), || {
            // Only a read after the SMF saw the restart: the new UPF hands
            // out the same UP SEIDs, so the old life's "active" with its
            // old UL F-TEID would pass the check below once the new UPF
            // holds the restored session.
            let seen = c.upfs().expect("GET /upfs")[0]["restarts"] == 1;
            v = c.get("imsi-001010000000001", 1).expect("GET");
            seen && v["state"] == "active"
                && v["up_seid"]
                    .as_u64()
                    .is_some_and(|s| upf.session_counters(s).is_some())
        }),
        "session not restored on the restarted UPF within 4 s: {v}"
    );
    assert_eq!(v["ue_addr"], info.ue_addr.to_string(), "same UE address");
    assert_eq!(v["cp_seid"], info.cp_seid);
    let _ = old_seid;
    let c2 = c.clone();
    let upfs = blocking(move || c2.upfs()).await.expect("GET /upfs");
    assert_eq!(upfs[0]["recovery_time_stamp"], rts2);
    assert_eq!(upfs[0]["restarts"], 1);
    let new_ul = v["ul_teid"].as_u64().expect("ul_teid") as u32;
    let new_dl = v["dl_teid"].as_u64().expect("dl_teid") as u32;
    {
        let t = tunnels.lock().expect("lock");
        assert_eq!(
            t.get(&new_dl).map(|t| t.ul_teid),
            Some(new_ul),
            "gNB has the new UL F-TEID"
        );
    }

    // Deletion.
    let up_seid = v["up_seid"].as_u64().expect("up_seid");
    let c2 = c.clone();
    blocking(move || c2.release("imsi-001010000000001", 1))
        .await
        .expect("released");
    assert!(
        upf.session_counters(up_seid).is_none(),
        "UPF deleted the session"
    );
    assert!(
        wait_in_place(Duration::from_secs(2), || tunnels
            .lock()
            .expect("lock")
            .is_empty()),
        "the gNB tunnel is still there after 2 s"
    );
    smf.stop().await;
    upf.stop();
}
