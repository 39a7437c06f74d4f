//! `ssim-threshold` (paper Fig. 10): the CDF of switch downtime and of
//! migration time for SSIM thresholds 0.80, 0.85, 0.90 and 0.95, on the
//! textured scene, every migration full (the gap outlasts the countdown,
//! so each destination starts a new instance over a new session).
//!
//! `ssim-threshold.csv`: `threshold,rep,` then the migration columns.

use std::path::Path;

use super::plot::{self, Chart, Series};
use super::report::Section;
use super::table::{cdf, quantile, spread, CsvOut, Table};
use super::{
    flags, header, migration_cells, pick, Config, ExpError, Experiment, Fail, Name, RunOut,
};

pub struct SsimThreshold;

/// The thresholds of Fig. 10.
pub const THRESHOLDS: [&str; 4] = ["0.80", "0.85", "0.90", "0.95"];

const CSV: &str = "ssim-threshold.csv";

impl Experiment for SsimThreshold {
    fn name(&self) -> Name {
        Name::SsimThreshold
    }

    fn configs(&self, quick: bool) -> Vec<Config> {
        THRESHOLDS
            .iter()
            .map(|t| Config {
                label: format!("t{t}"),
                count: pick(quick, 3, 10),
                flags: flags(&format!(
                    "--scene textured --countdown 1s --gap 2s --ssim-threshold {t}"
                )),
                video: false,
                edges: false,
                once: false,
            })
            .collect()
    }

    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
        let t = cfg.label.trim_start_matches('t');
        let rows: Vec<Vec<String>> = out
            .report
            .migrations
            .iter()
            .map(|m| {
                let mut r = vec![t.to_string(), out.rep.to_string()];
                r.extend(migration_cells(m));
                r
            })
            .collect();
        CsvOut::new(dir, CSV, &header(&["threshold", "rep"], &[])).append(&rows)
    }

    fn sections(&self, dir: &Path) -> Result<Vec<Section>, ExpError> {
        let p = dir.join(CSV);
        let t = Table::read(&p)?;
        Fail::name(section(dir, &t), &p).map(|s| vec![s])
    }
}

/// The share of `v` above `x`, as a percentage.
fn above(v: &[f64], x: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "{:.0}%",
        100.0 * v.iter().filter(|&&y| y > x).count() as f64 / v.len() as f64
    )
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

fn section(dir: &Path, t: &Table) -> Result<Section, Fail> {
    let mut s = Section::new(
        "## Fig. 10",
        "CDF of switch downtime and of migration time per SSIM threshold, CSM on the textured scene, every migration full.\n\n\
The paper (section V-F, Fig. 10): \"all the downtimes are between 5 ms and 14 ms after the streaming switch has been triggered. \
The SSIM threshold is different, but the downtime distributions are similar\"; \"When SSIM is 0.80 or 0.85, migration time falls between 4 s and 5 s\"; \
\"long-tail effects begin to appear after SSIM exceeds 0.85\", \"The migration time even reaches 72.82 s in extreme cases\"; \
\"When SSIM is 0.90, even about 40% of migration time exceeds 10 s\". The paper settles on 0.85.\n\n\
Here downtime is the switch downtime of DESIGN.md section 6 (decision to the first displayed frame with a destination contribution) \
and migration time runs from the UE's request to the switch decision.\n\n",
    );
    let mut rows = Vec::new();
    let (mut down, mut mig) = (Vec::new(), Vec::new());
    for th in t.distinct("threshold")? {
        let g = t.select("threshold", &th)?;
        let d = g.numbers("downtime_ms")?;
        let m = g.numbers("migration_ms")?;
        rows.push(vec![
            th.clone(),
            g.rows.len().to_string(),
            g.count("state", "abandoned")?.to_string(),
            spread(&d, 2),
            opt(quantile(&d, 0.5), 2),
            opt(quantile(&d, 0.9), 2),
            spread(&m, 1),
            opt(quantile(&m, 0.5), 1),
            opt(quantile(&m, 0.9), 1),
            above(&m, 10_000.0),
        ]);
        down.push(Series {
            name: format!("SSIM {th}"),
            points: cdf(&d),
        });
        mig.push(Series {
            name: format!("SSIM {th}"),
            points: cdf(&m),
        });
    }
    s.table(
        &[
            "threshold",
            "migrations",
            "abandoned",
            "downtime ms",
            "p50",
            "p90",
            "migration time ms",
            "p50",
            "p90",
            "> 10 s",
        ],
        &rows,
    );
    let a = plot::lines(
        dir,
        "fig10a-downtime-cdf",
        &Chart {
            title: "Fig. 10(a) switch downtime".into(),
            x_label: "switch downtime (ms)".into(),
            y_label: "CDF".into(),
            series: down,
            steps: true,
            log_y: false,
        },
    )?;
    s.show(a, "Fig. 10(a): CDF of switch downtime");
    let b = plot::lines(
        dir,
        "fig10b-migration-cdf",
        &Chart {
            title: "Fig. 10(b) migration time".into(),
            x_label: "migration time (ms)".into(),
            y_label: "CDF".into(),
            series: mig,
            steps: true,
            log_y: false,
        },
    )?;
    s.show(b, "Fig. 10(b): CDF of migration time");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threshold_has_a_configuration_that_parses() {
        for quick in [true, false] {
            let c = SsimThreshold.configs(quick);
            assert_eq!(c.len(), THRESHOLDS.len());
            assert!(c
                .iter()
                .all(|c| c.flags.contains(&"--ssim-threshold".to_string())));
        }
    }
}
