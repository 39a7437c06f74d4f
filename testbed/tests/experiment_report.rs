//! The report of `testbed experiment` is computed from its raw CSV alone:
//! a run folder written by hand (no testbed), its report rewritten, and
//! one summary recomputed here independently and found in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;

use testbed::experiment::{write_report, Name};

/// A new empty folder for this test process.
fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The mean and the sample standard deviation, computed by hand.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    (mean, sd)
}

/// The report's table row that begins with `start`.
fn table_row<'a>(report: &'a str, start: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row `{start}`:\n{report}"))
}

#[test]
fn fig10_summary_is_recomputed_from_the_csv() {
    let dir = fresh_dir("exp-report");
    let mut csv = String::from("threshold,rep,n,state,downtime_ms,migration_ms\n");
    let down = [0.4, 0.9, 1.7, 0.6];
    for (i, d) in down.iter().enumerate() {
        let _ = writeln!(csv, "0.85,1,{},completed,{d},{}", i + 1, 30.0 + i as f64);
        let _ = writeln!(
            csv,
            "0.95,1,{},completed,9.0,{}",
            i + 1,
            12_000.0 * i as f64
        );
    }
    std::fs::write(dir.join("ssim-threshold.csv"), csv).unwrap();
    std::fs::write(
        dir.join("runs.csv"),
        "experiment,config,rep,ok,bring_up_s,wall_s,migrations,switched,error\n\
ssim-threshold,t0.85,1,true,0.5,10,4,4,\nssim-threshold,t0.95,1,true,0.5,12,4,4,\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("experiment.json"),
        r#"{"experiment":"ssim-threshold","reps":1,"quick":true,"topology":null,
"configs":[{"label":"t0.85","count":4,"flags":["--ssim-threshold","0.85"],"video":false}]}"#,
    )
    .unwrap();
    let p = write_report(Name::SsimThreshold, &dir).expect("report");
    let report = std::fs::read_to_string(p).unwrap();
    // Mean and sample standard deviation by hand.
    let (mean, sd) = mean_sd(&down);
    let want = format!("{mean:.2} ± {sd:.2} [0.40, 1.70]");
    let row = table_row(&report, "| 0.85 |");
    assert!(row.contains(&want), "{want} not in {row}");
    // Three of four migrations at 0.95 (0, 12, 24, 36 s) took more than 10 s.
    let row95 = table_row(&report, "| 0.95 |");
    assert!(row95.ends_with("| 75% |"), "{row95}");
    assert!(
        report.contains("2 runs (22 s in all), 0 failed"),
        "{report}"
    );
    for f in ["fig10a-downtime-cdf.png", "fig10b-migration-cdf.svg"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fig8_and_table4_are_recomputed_from_bandwidth_csv() {
    let dir = fresh_dir("exp-report-bw");
    let mut csv = String::from(
        "method,preset,bandwidth_mbit,rep,downtime_ms,freeze_ms,migration_ms,bytes_ledger,bytes_counters\n",
    );
    // Two repetitions of pre-copy at 200 Mbit/s, one of the rest.
    let mig = [76_000.0, 80_000.0];
    let bytes: [u64; 2] = [1_700_000_000, 1_740_000_000];
    for (rep, (m, b)) in mig.iter().zip(bytes).enumerate() {
        let _ = writeln!(
            csv,
            "pre-copy,snake,200,{},70,70,{m},{b},{}",
            rep + 1,
            b + b / 100
        );
    }
    let _ = writeln!(
        csv,
        "pre-copy,snake,1000,1,65,65,22000,1610000000,1620000000"
    );
    let _ = writeln!(csv, "csm,snake,200,1,0.1,20,900,0,0");
    let _ = writeln!(csv, "csm,snake,1000,1,0.1,21,950,0,0");
    std::fs::write(dir.join("bandwidth.csv"), csv).unwrap();
    std::fs::write(
        dir.join("runs.csv"),
        "experiment,config,rep,ok,bring_up_s,wall_s,migrations,switched,error\n\
bandwidth,pre-copy-snake,1,true,0.5,100,2,2,\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("experiment.json"),
        r#"{"experiment":"bandwidth","reps":2,"quick":false,"topology":null,
"configs":[{"label":"pre-copy-snake","count":2,"flags":["--method","pre-copy"],"video":false}]}"#,
    )
    .unwrap();
    let p = write_report(Name::Bandwidth, &dir).expect("report");
    let report = std::fs::read_to_string(p).unwrap();
    // Fig. 8: the mean and sample sd of the migration time, in seconds.
    let (mean, sd) = mean_sd(&mig.map(|ms| ms / 1e3));
    let want = format!("{mean:.2} ± {sd:.2} [76.00, 80.00]");
    let row = table_row(&report, "| pre-copy | snake | 200 |");
    assert!(row.contains(&want), "{want} not in {row}");
    assert!(row.ends_with("| 78 s |"), "the paper's value: {row}");
    // Table IV: the mean ledger in GiB, the counters' ratio to it.
    let ledger = bytes.iter().sum::<u64>() as f64 / 2.0 / (1u64 << 30) as f64;
    let t4 = table_row(&report, "| snake | 200 | pre-copy |");
    assert!(
        t4.contains(&format!("| {ledger:.4} |")) && t4.contains("| 1.010 |"),
        "{ledger:.4} GiB, ratio 1.010 not in {t4}"
    );
    assert!(t4.ends_with("| 1.60 |"), "the paper's value: {t4}");
    let csm = table_row(&report, "| snake | 1000 | csm |");
    assert!(csm.contains("| 0.0000 |"), "{csm}");
    for f in ["fig8a-downtime.png", "fig8b-migration.svg"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // `data` makes Table IV alone from the same file.
    let p = write_report(Name::Data, &dir).expect("data report");
    let data = std::fs::read_to_string(p).unwrap();
    assert!(
        data.contains("## Table IV") && !data.contains("## Fig. 8"),
        "{data}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
