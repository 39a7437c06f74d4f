//! `testbed experiment` as a user runs it: each experiment with `--quick`
//! (root, the daemon binaries), its report checked for its section, every
//! row, every column and every image file, one summary recomputed from the
//! raw CSV; and the usage errors (no root needed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{read, Bed};
use testbed::experiment::table::{spread, Table};

/// One experiment's testbed at a time: three at once on two cores would
/// time each other's migrations out.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `testbed experiment NAME --quick`; the report's text.
fn quick(name: &str) -> (Bed, String) {
    let bed = Bed::with_daemons("x");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = bed.ok(&bed.job_args(&["experiment", name, "--quick"]));
    assert!(out.contains("report.md"), "{out}");
    let report = read(&bed.run.join("report.md"));
    assert!(bed.namespaces().is_empty(), "namespaces left");
    (bed, report)
}

/// The report has `heading`, a table row starting with each of `rows`,
/// each of `columns`, and every image it links exists and is not empty.
fn check(dir: &Path, report: &str, heading: &str, rows: &[&str], columns: &[&str]) {
    for h in ["## Parameters", heading, "## Runs", "Machine: "] {
        assert!(
            report.lines().any(|l| l.starts_with(h)),
            "no {h}:\n{report}"
        );
    }
    for r in rows {
        assert!(
            report.lines().any(|l| l.starts_with(&format!("| {r} |"))),
            "no row {r}:\n{report}"
        );
    }
    for c in columns {
        assert!(
            report.contains(&format!(" {c} |")),
            "no column {c}:\n{report}"
        );
    }
    let mut images = 0;
    for part in report.split("](").skip(1) {
        let file = part.split(')').next().unwrap();
        let p = dir.join(file);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{} missing or empty", p.display());
        images += 1;
    }
    assert!(images >= 2, "no images:\n{report}");
    assert!(!report.contains("failed:"), "a run failed:\n{report}");
}

/// Every `NAME.EXT` of `names` and `exts` is a file in `dir`.
fn assert_files(dir: &Path, names: &[&str], exts: &[&str]) {
    for n in names {
        for e in exts {
            assert!(dir.join(format!("{n}.{e}")).is_file(), "{n}.{e}");
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ssim_threshold_quick_has_fig10() {
    let (bed, report) = quick("ssim-threshold");
    check(
        &bed.run,
        &report,
        "## Fig. 10",
        &["0.80", "0.85", "0.90", "0.95"],
        &["threshold", "downtime ms", "migration time ms", "> 10 s"],
    );
    assert_files(
        &bed.run,
        &["fig10a-downtime-cdf", "fig10b-migration-cdf"],
        &["svg", "png"],
    );
    // One summary recomputed from the raw CSV.
    let t = Table::read(&bed.run.join("ssim-threshold.csv")).unwrap();
    assert_eq!(t.rows.len(), 4 * 3, "4 thresholds x 3 migrations");
    let d = t
        .select("threshold", "0.85")
        .and_then(|g| g.numbers("downtime_ms"))
        .unwrap();
    assert_eq!(d.len(), 3);
    let want = spread(&d, 2);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("| 0.85 |") && l.contains(&want)),
        "{want} not in:\n{report}"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn smoothness_quick_has_table5_and_filmstrips() {
    let (bed, report) = quick("smoothness");
    check(
        &bed.run,
        &report,
        "## Table V",
        &["csm", "no-sliding", "no-opt", "static"],
        &[
            "lowest SSIM around the switch",
            "pairs under the line around the switch",
            "excess pairs under the line",
        ],
    );
    assert_files(
        &bed.run,
        &[
            "filmstrip-csm",
            "filmstrip-no-sliding",
            "filmstrip-no-opt",
            "filmstrip-static",
        ],
        &["png"],
    );
    let t = Table::read(&bed.run.join("smoothness.csv")).unwrap();
    assert_eq!(t.rows.len(), 4 * 2);
    // Every switch was placed in the video, and the videos are gone.
    assert_eq!(t.numbers("switch_frame").unwrap().len(), 8, "{t:?}");
    let st = t.select("method", "static").unwrap();
    assert!(st
        .numbers("min_ssim_video")
        .unwrap()
        .iter()
        .all(|&s| s > 0.9));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn pingpong_quick_counts_sessions_and_instances() {
    let (bed, report) = quick("pingpong");
    check(
        &bed.run,
        &report,
        "## Ping-pong",
        &["delayed release (6 s)", "no delayed release"],
        &["sessions created", "instances created", "downtime ms"],
    );
    let runs = Table::read(&bed.run.join("pingpong-runs.csv")).unwrap();
    let made = |rel: &str, col: &str| runs.select("release", rel).unwrap().numbers(col).unwrap()[0];
    // Delayed release: the first migration is full, the others switches.
    assert_eq!(made("delayed", "full"), 1.0);
    assert_eq!(made("delayed", "sessions_created"), 2.0);
    assert_eq!(made("delayed", "instances_created"), 2.0);
    // None: every one of the 4 makes a session and an instance.
    assert_eq!(made("none", "full"), 4.0);
    assert_eq!(made("none", "sessions_created"), 5.0);
    assert_eq!(made("none", "instances_created"), 5.0);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn bandwidth_quick_has_fig8_and_table4_and_the_baselines_grow_as_bandwidth_falls() {
    let (bed, report) = quick("bandwidth");
    check(
        &bed.run,
        &report,
        "## Fig. 8",
        &[
            "csm | snake | 200",
            "stop-and-copy | snake | 1000",
            "pre-copy | snake | 200",
        ],
        &[
            "downtime ms",
            "freeze ms",
            "migration time s",
            "paper migration time",
        ],
    );
    check(
        &bed.run,
        &report,
        "## Table IV",
        &["snake | 200 | pre-copy", "snake | 1000 | csm"],
        &[
            "ledger GiB",
            "counters GiB",
            "counters / ledger",
            "paper GB (VM)",
        ],
    );
    assert!(report.contains("not a hypervisor"), "{report}");
    assert_files(
        &bed.run,
        &["fig8a-downtime", "fig8b-migration"],
        &["svg", "png"],
    );
    let t = Table::read(&bed.run.join("bandwidth.csv")).unwrap();
    assert_eq!(t.header, testbed::experiment::bandwidth::COLUMNS);
    assert_eq!(t.rows.len(), 3 * 2, "3 methods x 2 bandwidths");
    let at = |m: &str, bw: &str, col: &str| {
        let v = t
            .select("method", m)
            .and_then(|g| g.select("bandwidth_mbit", bw))
            .and_then(|g| g.numbers(col))
            .unwrap();
        assert_eq!(v.len(), 1, "{m} {bw} {col}");
        v[0]
    };
    // One summary recomputed from the raw CSV: pre-copy's migration time
    // at 200 Mbit/s, in seconds as the report shows it.
    let want = spread(&[at("pre-copy", "200", "migration_ms") / 1e3], 2);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("| pre-copy | snake | 200 |") && l.contains(&want)),
        "{want} not in:\n{report}"
    );
    // The baselines are slower at 200 than at 1000 Mbit/s; stop-and-copy
    // copies everything while frozen, so its freeze grows too.
    for m in ["stop-and-copy", "pre-copy"] {
        let (slow, fast) = (at(m, "200", "migration_ms"), at(m, "1000", "migration_ms"));
        assert!(
            slow > 1.5 * fast,
            "{m}: {slow} ms at 200, {fast} ms at 1000"
        );
        // The model's ledger matches the interface counters within 5%.
        for bw in ["200", "1000"] {
            let (l, c) = (at(m, bw, "bytes_ledger"), at(m, bw, "bytes_counters"));
            assert!(
                l > 1e6 && (c - l).abs() < 0.05 * l,
                "{m} {bw}: ledger {l}, counters {c}"
            );
        }
    }
    let (slow, fast) = (
        at("stop-and-copy", "200", "downtime_ms"),
        at("stop-and-copy", "1000", "downtime_ms"),
    );
    assert!(
        slow > 2.0 * fast,
        "stop-and-copy freeze {slow} ms at 200, {fast} ms at 1000"
    );
    // CSM copies no state: nothing in its ledger, a switch downtime far
    // below the baselines' freeze.
    for bw in ["200", "1000"] {
        assert_eq!(at("csm", bw, "bytes_ledger"), 0.0);
        assert!(at("csm", bw, "downtime_ms") < at("stop-and-copy", bw, "downtime_ms"));
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn overhead_quick_has_fig9_with_the_copy_on_the_inter_edge_link() {
    let (bed, report) = quick("overhead");
    check(
        &bed.run,
        &report,
        "## Fig. 9",
        &[
            "csm | edge1",
            "csm | edge2",
            "pre-copy | edge1",
            "pre-copy | edge2",
        ],
        &[
            "CPU % before",
            "CPU % during",
            "CPU % after",
            "egress Mbit/s max",
        ],
    );
    assert_files(
        &bed.run,
        &["fig9a-cpu", "fig9b-memory", "fig9c-ingress", "fig9d-egress"],
        &["png"],
    );
    let t = Table::read(&bed.run.join("overhead.csv")).unwrap();
    let peak = |m: &str, e: &str, col: &str| {
        t.select("method", m)
            .and_then(|g| g.select("edge", e))
            .and_then(|g| g.numbers(col))
            .unwrap()
            .into_iter()
            .fold(0.0f64, f64::max)
    };
    // The copy leaves the source and enters the destination at hundreds of
    // Mbit/s; CSM's edges carry a video stream only.
    assert!(peak("pre-copy", "edge1", "tx_mbit_s") > 100.0);
    assert!(peak("pre-copy", "edge2", "rx_mbit_s") > 100.0);
    assert!(peak("csm", "edge1", "tx_mbit_s") < 50.0);
    // The destination renders after the migration in both.
    for m in ["csm", "pre-copy"] {
        assert!(peak(m, "edge2", "cpu_pct") > 5.0, "{m}");
    }
    // Pre-copy's destination holds the image (snake at --scale 0.05: 79.3
    // MB) in memory, as a migrated VM's.
    let rss = t
        .select("method", "pre-copy")
        .and_then(|g| g.select("edge", "edge2"))
        .and_then(|g| g.numbers("rss_mb"))
        .unwrap();
    let grew = rss.iter().copied().fold(0.0f64, f64::max) - rss[0];
    assert!(grew > 60.0, "pre-copy destination memory grew by {grew} MB");
}

#[test]
fn unknown_experiment_is_a_usage_error_listing_the_names() {
    let bed = Bed::new("u");
    let o = bed.run(&["experiment", "fig99"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    for n in [
        "bandwidth",
        "data",
        "ssim-threshold",
        "smoothness",
        "pingpong",
    ] {
        assert!(err.contains(n), "{n} not listed: {err}");
    }
}

#[test]
fn a_run_folder_that_is_not_empty_is_refused() {
    let bed = Bed::new("n");
    std::fs::create_dir_all(&bed.run).unwrap();
    std::fs::write(bed.run.join("old.csv"), "x\n").unwrap();
    let run = bed.run.display().to_string();
    let o = bed.run(&["experiment", "pingpong", "--quick", "--run-dir", &run]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not empty"), "{err}");
    // Nothing was written to it.
    let names: Vec<_> = std::fs::read_dir(&bed.run).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn ctrl_c_keeps_the_runs_that_ended_and_takes_the_testbed_down() {
    let bed = Bed::with_daemons("i");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let child = bed
        .cmd(&bed.job_args(&["experiment", "pingpong", "--quick"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The first run ended (its row written) and the second one's testbed is
    // coming up or running.
    let runs = bed.run.join("runs.csv");
    let ended = || {
        std::fs::read_to_string(&runs)
            .map(|t| t.lines().count() >= 2)
            .unwrap_or(false)
    };
    let waited = testkit::wait_until(std::time::Duration::from_secs(300), ended);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(waited, "no run ended within 300 s\n{err}");
    assert_eq!(o.status.code(), Some(130), "{err}");
    let kept = read(&runs);
    assert!(kept.lines().count() >= 2, "runs.csv kept: {kept}");
    assert!(
        bed.namespaces().is_empty(),
        "left: {:?}\n{err}",
        bed.namespaces()
    );
}
