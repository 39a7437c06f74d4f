//! `testbed bench sessions` as a user runs it, scaled down: every timed
//! setup gets a packet through its new tunnel, every UE of the rate bench
//! gets its session (and loses it again), and nothing is left afterwards.
//! The figures themselves are for the README, not asserted. Needs root and
//! the daemon binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Bed;

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn bench_sessions_measures_setups_through_the_tunnel_and_cleans_up() {
    let bed = Bed::with_daemons("b");
    let r = bed.job_json(
        &["bench", "sessions"],
        &["--setups", "20", "--ues", "100", "--concurrency", "8"],
    );
    let t = &r["setup_time"];
    assert_eq!(t["upf"], "upf1", "{t}");
    assert_eq!(t["edge"], "edge1", "{t}");
    assert_eq!(
        t["lost"], 0,
        "every setup got its first packet through: {t}"
    );
    assert_eq!(t["setup"]["n"], 20, "{t}");
    let p50 = |d: &serde_json::Value| d["p50_us"].as_f64().expect("p50");
    // The first packet crosses after the UE has its answer.
    assert!(p50(&t["setup"]) >= p50(&t["answered"]), "{t}");
    assert!(p50(&t["baseline_rtt"]) > 0.0, "{t}");
    // Where the time goes: each daemon counted every setup, and the stages
    // nest (the UE's total holds its install and the gNB's relay, which
    // holds the SMF's setup, which holds the gNB's N2 setup).
    let stage = |prefix: &str| -> f64 {
        let s = t["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .find(|s| s["what"].as_str().is_some_and(|w| w.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no stage `{prefix}`: {t}"));
        assert_eq!(s["count"], 20, "{s}");
        s["mean_us"].as_f64().expect("mean_us")
    };
    let ue_total = stage("ue1: request");
    let ue_install = stage("ue1: installing");
    let relay = stage("gnb1: N1");
    let smf = stage("SMF:");
    let n2 = stage("gnb1: N2");
    assert!(ue_total > relay + ue_install, "{t}");
    assert!(relay > smf && smf > n2 && n2 > 0.0, "{t}");
    let rate = &r["setup_rate"];
    assert_eq!(rate["established"], 100, "{rate}");
    assert_eq!(rate["failed"], 0, "{rate}");
    assert_eq!(rate["release_failed"], 0, "{rate}");
    assert!(rate["rate"].as_f64().expect("rate") > 0.0, "{rate}");
    bed.assert_nothing_left("bench");
}
