//! `testbed demo`, the README's main job, as a user runs it: it brings the
//! paper topology and every daemon up, gets ue1 a session through each UPF,
//! every probe comes back from that session's own edge, and nothing is left
//! afterwards. Needs root and the daemon binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Bed;

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn demo_runs_traffic_through_a_session_per_upf_and_cleans_up() {
    let bed = Bed::with_daemons("d");
    let report = bed.job_json(&["demo"], &["--probes", "20"]);
    let sessions = report["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{report}");
    for (s, (upf, edge, pool, target)) in sessions.iter().zip([
        ("upf1", "edge1", "10.45.", "10.61.0.2:9000"),
        ("upf2", "edge2", "10.46.", "10.62.0.2:9000"),
    ]) {
        assert_eq!(s["upf"], upf, "{s}");
        assert_eq!(s["edge"], edge, "{s}");
        assert!(
            s["ue_addr"].as_str().expect("addr").starts_with(pool),
            "{s}"
        );
        assert_eq!(s["target"], target, "{s}");
        assert_eq!(s["sent"], 20, "{s}");
        assert_eq!(s["answered"], 20, "every probe answered by {edge}: {s}");
        assert!(s["rtt_p50_us"].as_u64().expect("rtt") > 0, "{s}");
    }
    assert_eq!(report["kept"], false);
    bed.assert_nothing_left("demo");
    assert!(
        bed.run.join("logs/upf1.log").is_file(),
        "logs kept in the run folder"
    );
}
