//! `testbed migrate` as a user runs it, shortened: four CSM migrations
//! between edge1 and edge2 with a 1 s countdown, the gaps chosen so that
//! the second migration is full (after the release of its destination) and
//! the third switch-only (back to a copilot inside its countdown). Every
//! migration switches and has its figures, no input is lost, no byte
//! crosses the inter-edge link, nothing is leaked, and the run folder has
//! migrations.json, migrations.csv and the UE's display log. Timings are
//! not asserted.
//! Needs root and the daemon binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Bed, SMALL_VIDEO};

#[test]
#[ignore = "needs root: network namespaces"]
fn migrations_switch_lose_no_input_cross_no_edge_and_leak_nothing() {
    let bed = Bed::with_daemons("m");
    let r = bed.job_json(
        &["migrate"],
        &[
            &SMALL_VIDEO[..],
            &[
                "--count",
                "4",
                "--countdown",
                "1s",
                // Before migration 2: 3 s (released: full); before 3: 0.4 s
                // (its destination is still copilot: switch-only); before 4: 3 s.
                "--gap",
                "3s,400ms",
            ],
        ]
        .concat(),
    );
    let ms = r["migrations"].as_array().expect("migrations");
    assert_eq!(ms.len(), 4, "{r:#}");
    let edges: Vec<_> = ms
        .iter()
        .map(|m| (m["from"].as_str().unwrap(), m["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        edges,
        [
            ("edge1", "edge2"),
            ("edge2", "edge1"),
            ("edge1", "edge2"),
            ("edge2", "edge1")
        ]
    );
    for m in ms {
        assert_eq!(m["switched"], true, "{m:#}");
        assert!(
            matches!(m["state"].as_str(), Some("switched" | "completed")),
            "{m:#}"
        );
        // The stall and, with pacing (the default), the display thread's
        // share of it (how late the gap's closing frame was shown) and
        // where that gap ended: each migration carries all three.
        for f in [
            "downtime_ms",
            "migration_ms",
            "stall_ms",
            "stall_display_late_ms",
            "stall_offset_ms",
        ] {
            assert!(m[f].as_f64().is_some(), "{f} missing: {m:#}");
        }
        // The gap lies in the switch's window (1 s either side).
        let off = m["stall_offset_ms"].as_f64().unwrap();
        assert!(off.abs() <= 1000.0, "stall gap outside the window: {m:#}");
        assert_eq!(m["inputs_lost"], 0, "{m:#}");
        // Measured by the logic server, not assumed.
        assert_eq!(m["secondary_writes_applied"], 0, "{m:#}");
        // The bot had sent more than the 8 to resend: all 8 went again.
        assert_eq!(m["inputs_resent"], 8, "{m:#}");
        assert_eq!(m["cross_edge_bytes"], 0, "{m:#}");
        let ie = &m["cross_edge"];
        assert_eq!(ie["iface"], "ie", "{m:#}");
        assert!(ie["after"]["rx_bytes"].as_u64().is_some(), "{m:#}");
    }
    let kinds: Vec<_> = ms.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "full", "{kinds:?}");
    assert_eq!(kinds[1], "full", "after the release: {kinds:?}");
    assert_eq!(
        kinds[2], "switch_only",
        "back inside the countdown: {kinds:?}"
    );
    // Full migrations had the parallel session set up by the SMF.
    assert!(ms[0]["setup_ms"].as_f64().is_some(), "{:#}", ms[0]);
    let s = &r["summary"];
    assert_eq!(s["migrations"], 4, "{s:#}");
    assert_eq!(s["switched"], 4, "{s:#}");
    assert_eq!(s["inputs_lost"], 0, "{s:#}");
    assert!(
        s["inputs_sent"].as_u64().unwrap() > 0,
        "the bot played: {s:#}"
    );
    assert_eq!(s["inputs_applied"], s["inputs_sent"], "{s:#}");
    assert_eq!(s["secondary_writes_applied"], 0, "{s:#}");
    assert_eq!(s["last_released"], true, "{s:#}");
    assert!(s["downtime_ms"]["p50"].as_f64().is_some(), "{s:#}");
    // The host the figures come from: its preemption model and how busy
    // the run kept its CPUs (a run of migrations keeps them busy).
    let host = &s["host"];
    assert!(host["preemption"].is_string(), "{host:#}");
    let busy = host["cpu"]["busy_percent"].as_f64().expect("busy_percent");
    assert!(busy > 1.0 && busy <= 100.0, "{host:#}");
    assert!(host["cpu"]["steal_percent"].as_f64().is_some(), "{host:#}");
    // The figures assume openh264's SIMD code (built with nasm).
    assert!(host["h264_simd"].is_u64(), "{host:#}");
    let leaks = r["leaks"].as_object().expect("leaks");
    for f in [
        "upf_sessions",
        "gnb_tunnels",
        "ue_addresses",
        "instances",
        "processes",
        "namespaces",
    ] {
        assert_eq!(leaks[f], 0, "leaked {f}: {leaks:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&common::read(&bed.run.join("migrations.json"))).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(4));
    let csv = common::read(&bed.run.join("migrations.csv"));
    assert_eq!(csv.lines().count(), 5, "{csv}");
    // Every displayed frame, in display order, from both edges.
    let log = common::read(&bed.run.join("display.jsonl"));
    let recs: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record a line"))
        .collect();
    assert!(recs.len() > 60, "{} displayed frames", recs.len());
    let shown: Vec<u64> = recs
        .iter()
        .map(|r| r["display_ns"].as_u64().unwrap())
        .collect();
    assert!(shown.windows(2).all(|w| w[0] <= w[1]), "display order");
    for edge in ["edge1", "edge2"] {
        assert!(
            recs.iter().any(|r| r["source"] == edge),
            "no frame of {edge}"
        );
    }
    bed.assert_nothing_left("migrate");
}

/// `--trigger latency`: the testbed slows the serving edge's N6 path (the
/// userspace link emulator; this kernel has no netem) and the UE's own
/// agent, measuring the latency to its serving edge, asks for each
/// migration. The two paths then differ by the added delay, and the
/// selector must still find the streams alike (the paced destination
/// waits for the slower source) and switch.
#[test]
#[ignore = "needs root: network namespaces"]
fn the_ue_agent_migrates_when_its_serving_path_slows() {
    let bed = Bed::with_daemons("l");
    let r = bed.job_json(
        &["migrate"],
        &[
            &SMALL_VIDEO[..],
            &["--trigger", "latency", "--count", "2", "--countdown", "1s"],
        ]
        .concat(),
    );
    let ms = r["migrations"].as_array().expect("migrations");
    assert_eq!(ms.len(), 2, "{r:#}");
    for m in ms {
        assert_eq!(m["triggered"], true, "asked by the UE's agent: {m:#}");
        assert_eq!(m["switched"], true, "{m:#}");
        assert_eq!(m["inputs_lost"], 0, "{m:#}");
    }
    let leaks = r["leaks"].as_object().expect("leaks");
    assert!(leaks.values().all(|v| v == 0), "leaked: {leaks:?}");
    bed.assert_nothing_left("migrate");
}
