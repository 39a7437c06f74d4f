//! The report of `testbed experiment` is computed from its raw CSV alone:
//! a run folder written by hand (no testbed), its report rewritten, and
//! one summary recomputed here independently and found in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;

use testbed::experiment::{write_report, Name};

#[test]
fn fig10_summary_is_recomputed_from_the_csv() {
    let dir = std::env::temp_dir().join(format!("exp-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
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
    let n = down.len() as f64;
    let mean = down.iter().sum::<f64>() / n;
    let sd = (down.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let want = format!("{mean:.2} ± {sd:.2} [0.40, 1.70]");
    let row = report
        .lines()
        .find(|l| l.starts_with("| 0.85 |"))
        .unwrap_or_else(|| panic!("no 0.85 row:\n{report}"));
    assert!(row.contains(&want), "{want} not in {row}");
    // Three of four migrations at 0.95 (0, 12, 24, 36 s) took more than 10 s.
    let row95 = report.lines().find(|l| l.starts_with("| 0.95 |")).unwrap();
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
