//! `testbed bench dataplane --quick --json` as CI runs it: every test has a
//! row with a positive figure on each of the three paths (GTP-U through
//! gnb and upf, kernel routing, kernel VXLAN), the round trips and idle CPU
//! are there, every byte-exact transfer arrived whole on every path, the
//! report files are in the run folder, and nothing is left
//! afterwards (the bench fails when it cannot remove what it added). No
//! timing is asserted. With `--sessions 500`, path (a) is measured again
//! with 500 sessions on gnb1 and upf1 and with them released (set up and
//! released through the SMF), each state with its own worker census.
//! Needs root and the daemon binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Bed;

const TESTS: [&str; 8] = [
    "tcp-1-up",
    "tcp-1-down",
    "tcp-4-up",
    "tcp-4-down",
    "udp-64-up",
    "udp-64-down",
    "udp-1400-up",
    "udp-1400-down",
];

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN, VXLAN (the testbed's daemons)"]
fn bench_dataplane_quick_measures_every_path_and_cleans_up() {
    let bed = Bed::with_daemons("dp");
    let r = bed.job_json(&["bench", "dataplane"], &["--quick", "--sessions", "500"]);
    let out = r.to_string();
    let rows = r["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().filter_map(|x| x["test"].as_str()).collect();
    assert_eq!(names, TESTS, "{out}");
    for row in rows {
        for k in [
            "kernel",
            "kernel_tunnel",
            "tunnel",
            "ratio",
            "ratio_kernel_tunnel",
        ] {
            let v = row[k].as_f64().unwrap_or(0.0);
            assert!(v > 0.0 && v.is_finite(), "{k} of {}: {row}", row["test"]);
        }
        let unit = row["unit"].as_str().expect("unit");
        let want = if row["test"].as_str().unwrap().starts_with("tcp") {
            "Gbit/s"
        } else {
            "kpps"
        };
        assert_eq!(unit, want, "{row}");
    }
    for q in ["p50", "p99"] {
        assert!(r["added_rtt_us"][q].as_f64().is_some(), "{out}");
        for p in ["kernel", "kernel_tunnel", "tunnel"] {
            let v = r["rtt_us"][p][q].as_f64().unwrap_or(0.0);
            assert!(v > 0.0, "rtt {p} {q}: {out}");
        }
    }
    let idle = r["idle_cpu_percent"].as_f64().expect("idle_cpu_percent");
    assert!(idle >= 0.0, "{out}");
    assert_eq!(r["idle_cpu"].as_array().map(Vec::len), Some(2), "{out}");
    assert_eq!(r["setup"]["kernel_tunnel"], "VXLAN on N3, UDP port 4789");
    // Byte-exact transfers on every path (the bench also fails without
    // them): TCP both ways at 5 sizes, UDP GSO both ways, 8 UDP echoes,
    // the receivers' checksum counters.
    let exact = r["exact"].as_array().expect("exact");
    for p in ["kernel", "kernel_tunnel", "tunnel"] {
        let of: Vec<_> = exact.iter().filter(|c| c["path"] == p).collect();
        assert_eq!(of.len(), 21, "{p}: {of:?}");
        let bad: Vec<_> = of.iter().filter(|c| c["ok"] != true).collect();
        assert!(bad.is_empty(), "{p}: {bad:?}");
    }
    assert!(
        exact.iter().any(|c| c["test"] == "tcp-down-8388608"),
        "{exact:?}"
    );
    let md = common::read(&bed.run.join("dataplane.md"));
    for t in TESTS {
        assert!(
            md.contains(&format!("| {t} |")),
            "{t} in dataplane.md:\n{md}"
        );
    }
    // Where each path dropped during the UDP searches: every UDP test and
    // path has its (possibly empty) set of kernel counters that grew, each
    // named after a node of the measured path and counted in packets.
    let drops = r["udp_drops"].as_object().expect("udp_drops");
    let udp: Vec<&str> = TESTS
        .iter()
        .copied()
        .filter(|t| t.starts_with("udp"))
        .collect();
    assert_eq!(drops.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut u = udp.clone();
        u.sort_unstable();
        u
    });
    let on_path: Vec<&str> = ["ue", "gnb", "upf", "edge"]
        .iter()
        .map(|k| {
            r["setup"][*k]
                .as_str()
                .expect("setup names the path's nodes")
        })
        .collect();
    for t in &udp {
        for p in ["kernel", "kernel_tunnel", "tunnel"] {
            let c = drops[*t][p]
                .as_object()
                .unwrap_or_else(|| panic!("{t} {p}: {out}"));
            for (k, v) in c {
                let node = k.split('/').next().unwrap_or("");
                assert!(
                    on_path.contains(&node),
                    "{t} {p}: counter {k} of a node off the path {on_path:?}"
                );
                assert!(v.as_u64().is_some_and(|n| n > 0), "{t} {p} {k}: {v}");
            }
        }
    }
    assert!(md.contains("Kernel drop counters that grew"), "{md}");
    // Which workers carried each test on path (a): in each of the gNB and
    // the UPF, the busiest worker's share, once per repeat, between an
    // even spread over the workers and all of it.
    let one_share_each = |by_daemon: &serde_json::Value, t: &str| {
        for k in ["gnb", "upf"] {
            let daemon = r["setup"][k].as_str().expect("daemon name");
            let v = by_daemon[daemon]
                .as_array()
                .unwrap_or_else(|| panic!("{t} {daemon}: {out}"));
            assert_eq!(v.len(), 1, "one repeat: {t} {daemon} {v:?}");
            let x = v[0].as_f64().unwrap_or(0.0);
            assert!((0.25..=1.0).contains(&x), "{t} {daemon}: share {x}");
        }
    };
    let shares = r["busiest_worker_share"]
        .as_object()
        .expect("busiest_worker_share");
    assert_eq!(shares.len(), TESTS.len(), "{out}");
    for t in TESTS {
        one_share_each(&shares[t], t);
    }
    assert!(md.contains("The busiest data-path worker's share"), "{md}");
    let many = &r["many_sessions"];
    assert_eq!(many["installed"], 500, "{out}");
    assert!(many["upf_sessions"].as_u64().unwrap_or(0) >= 500, "{out}");
    let names: Vec<&str> = many["rows"]
        .as_array()
        .expect("many_sessions.rows")
        .iter()
        .filter_map(|x| x["test"].as_str())
        .collect();
    assert_eq!(names, TESTS, "{out}");
    for row in many["rows"].as_array().unwrap() {
        for k in ["one", "many", "ratio"] {
            let v = row[k].as_f64().unwrap_or(0.0);
            assert!(v > 0.0 && v.is_finite(), "{k} of {}: {row}", row["test"]);
        }
        // The same worker census with the 500 sessions installed, and
        // with them released in the same round.
        let t = row["test"].as_str().unwrap_or("?");
        one_share_each(&row["busiest_worker_share"], t);
        one_share_each(&row["busiest_worker_share_one"], t);
        // One repeat: its ratio is the row's.
        let ratios = row["ratios"].as_array().expect("ratios");
        assert_eq!(ratios.len(), 1, "{t}: {row}");
        assert_eq!(ratios[0], row["ratio"], "{t}: {row}");
    }
    assert!(md.contains("with 500 sessions installed"), "{md}");
    assert!(md.contains("busiest worker, 500 sessions"), "{md}");
    let saved: serde_json::Value =
        serde_json::from_str(&common::read(&bed.run.join("dataplane.json"))).expect("saved JSON");
    assert_eq!(saved["rows"], r["rows"]);
    bed.assert_nothing_left("bench");
}
