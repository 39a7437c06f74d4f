//! `overhead` (paper Fig. 9): CPU, memory, ingress and egress throughput
//! of each edge over time, from before one migration to after it, CSM
//! against pre-copy (the paper's VM migration) at 1000 Mbit/s, with the
//! start and the end of each method marked.
//!
//! Each edge's load is sampled every 200 ms while the run's testbed is up
//! ([`super::sampler::EdgeSample`]): the CPU time and resident memory of
//! every process in the edge's namespace (its agent and instances) and the
//! byte counters of its interfaces (N6, WAN, inter-edge, cp).
//!
//! - `overhead.csv`: `method,rep,edge,t_s,cpu_pct,rss_mb,rx_mbit_s,
//!   tx_mbit_s`, t from the migration's request, rates over the interval
//!   since the edge's previous sample.
//! - `overhead-marks.csv`: `method,rep,start_s,end_s`: the request (0) and
//!   the first displayed destination frame.

use std::path::Path;

use super::plot::{self, Chart, Series};
use super::report::Section;
use super::table::{CsvOut, Spread, Table};
use super::{flags, pick, Config, ExpError, Experiment, Fail, Name, RunOut};

pub struct Overhead;

const CSV: &str = "overhead.csv";
const MARKS_CSV: &str = "overhead-marks.csv";
const COLS: [&str; 8] = [
    "method",
    "rep",
    "edge",
    "t_s",
    "cpu_pct",
    "rss_mb",
    "rx_mbit_s",
    "tx_mbit_s",
];
/// The methods compared (the paper's VM migration is pre-copy).
const METHODS: [&str; 2] = ["csm", "pre-copy"];

impl Experiment for Overhead {
    fn name(&self) -> Name {
        Name::Overhead
    }

    fn configs(&self, quick: bool) -> Vec<Config> {
        // The paper: Minetest, 1 Gbit/s, 10 s before and after.
        let (preset, scale, around) = pick(quick, ("snake", 0.05, 3), ("minetest", 1.0, 10));
        METHODS
            .iter()
            .map(|m| Config {
                label: (*m).into(),
                count: 1,
                flags: flags(&format!(
                    "--method {m} --preset {preset} --scale {scale} --bandwidth 1000 --scene textured \
--countdown {around}s --before {around}s --after {around}s"
                )),
                video: false,
                edges: true,
                once: false,
            })
            .collect()
    }

    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
        let rep = out.rep.to_string();
        let Some(m) = out.samples.ue_migrations.first() else {
            return Ok(());
        };
        let t0 = m.requested_ns;
        let secs = |t: u64| (t as f64 - t0 as f64) / 1e9;
        // From `--before` ahead of the request: the play's own start (its
        // instance's pull) is no part of the figure.
        let from = -cfg.opts()?.before.as_secs_f64();
        let mut rows = Vec::new();
        let edges = &out.samples.edges;
        for (i, s) in edges.iter().enumerate() {
            let Some(prev) = edges[..i].iter().rev().find(|p| p.edge == s.edge) else {
                continue;
            };
            let dt = (s.t_ns.saturating_sub(prev.t_ns)) as f64 / 1e9;
            if dt <= 0.0 || secs(prev.t_ns) < from {
                continue;
            }
            // A process that ended takes its CPU time along: no negative load.
            let cpu = ((s.cpu_s - prev.cpu_s) / dt * 100.0).max(0.0);
            let mbit = |a: u64, b: u64| a.saturating_sub(b) as f64 * 8.0 / dt / 1e6;
            rows.push(vec![
                cfg.label.clone(),
                rep.clone(),
                s.edge.clone(),
                format!("{:.3}", secs(s.t_ns)),
                format!("{cpu:.2}"),
                format!("{:.1}", s.rss_bytes as f64 / 1e6),
                format!("{:.3}", mbit(s.rx_bytes, prev.rx_bytes)),
                format!("{:.3}", mbit(s.tx_bytes, prev.tx_bytes)),
            ]);
        }
        CsvOut::new(dir, CSV, &COLS).append(&rows)?;
        let end = m.first_dest_frame_ns.map(|t| format!("{:.3}", secs(t)));
        CsvOut::new(dir, MARKS_CSV, &["method", "rep", "start_s", "end_s"]).append(&[vec![
            cfg.label.clone(),
            rep,
            "0".into(),
            end.unwrap_or_default(),
        ]])
    }

    fn sections(&self, dir: &Path) -> Result<Vec<Section>, ExpError> {
        let p = dir.join(CSV);
        let t = Table::read(&p)?;
        let marks = Table::read(&dir.join(MARKS_CSV))?;
        Fail::name(section(dir, &t, &marks), &p).map(|s| vec![s])
    }
}

fn mean_of(g: &Table, col: &str, keep: impl Fn(f64) -> bool) -> Result<String, String> {
    let t = g.numbers("t_s")?;
    let v = g.numbers(col)?;
    let sel: Vec<f64> = t
        .iter()
        .zip(v)
        .filter(|(t, _)| keep(**t))
        .map(|(_, v)| v)
        .collect();
    Ok(Spread::of(&sel).map_or("-".into(), |s| format!("{:.1}", s.mean)))
}

fn max_of(g: &Table, col: &str) -> Result<String, String> {
    let v = g.numbers(col)?;
    Ok(Spread::of(&v).map_or("-".into(), |s| format!("{:.1}", s.max)))
}

fn section(dir: &Path, t: &Table, marks: &Table) -> Result<Section, Fail> {
    let mut s = Section::new(
        "## Fig. 9",
        "Each edge's CPU (the processes in its namespace: agent and instances; 100% = one core), resident memory, and \
ingress and egress throughput (all its interfaces), sampled every 200 ms, around one migration at 1000 Mbit/s: CSM against \
pre-copy (a model of the paper's VM migration: a memory image of the preset's size, not a hypervisor). t = 0 is the request; \
`end` is the first displayed destination frame. CPU before: t < 0; during: from 0 to the end (at least 1 s); after: the rest \
(for CSM the source stays copilot until its countdown releases it). Maxima over the whole window shown. The destination agent keeps the image it receives in memory, as a migrated VM's memory: \
its resident memory grows as the first round arrives (later rounds overwrite it) and is freed when the instance is copied \
away or the next copy arrives; the source's memory is not modelled (its instance is not a VM).\n\n\
The paper (section V-D, Fig. 9, Minetest at 1 Gbit/s): CSM's destination CPU \"rapidly increase[s] to around 50% and gradually \
decrease[s] to 45%\", VM's destination \"on average 5%\" during the copy, then 34%; memory: CSM's destination +1035 MB, VM's \
\"from the initial 1126 MB to the final 5084 MB\"; throughput: VM's source egress and destination ingress \"over 800 Mbps\", \
CSM's egress 5.45 and 12.80 Mbps.\n\n",
    );
    let mut rows = Vec::new();
    let mut charts: [Vec<Series>; 4] = Default::default();
    let cols = ["cpu_pct", "rss_mb", "rx_mbit_s", "tx_mbit_s"];
    let mut ends = Vec::new();
    for method in t.distinct("method")? {
        let mk = marks.select("method", &method)?;
        let end = Spread::of(&mk.numbers("end_s")?).map_or(0.0, |s| s.mean);
        ends.push((method.clone(), end));
        // At least a second: a CSM switch is over between two samples.
        let until = end.max(1.0);
        let g = t.select("method", &method)?;
        for edge in g.distinct("edge")? {
            let e = g.select("edge", &edge)?;
            rows.push(vec![
                method.clone(),
                edge.clone(),
                mean_of(&e, "cpu_pct", |x| x < 0.0)?,
                mean_of(&e, "cpu_pct", |x| (0.0..=until).contains(&x))?,
                mean_of(&e, "cpu_pct", |x| x > until)?,
                max_of(&e, "rss_mb")?,
                max_of(&e, "rx_mbit_s")?,
                max_of(&e, "tx_mbit_s")?,
                format!("{end:.2}"),
            ]);
            // The first repetition's curve.
            let r1 = e.select("rep", "1")?;
            let ts = r1.numbers("t_s")?;
            for (k, col) in cols.iter().enumerate() {
                let v = r1.numbers(col)?;
                charts[k].push(Series {
                    name: format!("{method} {edge}"),
                    points: ts.iter().copied().zip(v).collect(),
                });
            }
        }
    }
    s.table(
        &[
            "method",
            "edge",
            "CPU % before",
            "CPU % during",
            "CPU % after",
            "memory MB max",
            "ingress Mbit/s max",
            "egress Mbit/s max",
            "end s",
        ],
        &rows,
    );
    let titles = [
        ("fig9a-cpu", "Fig. 9(a) CPU", "CPU (%)"),
        ("fig9b-memory", "Fig. 9(b) memory", "resident memory (MB)"),
        ("fig9c-ingress", "Fig. 9(c) ingress", "ingress (Mbit/s)"),
        ("fig9d-egress", "Fig. 9(d) egress", "egress (Mbit/s)"),
    ];
    for ((stem, title, y), mut series) in titles.into_iter().zip(charts) {
        // The marks: vertical lines over the data's range.
        let top = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        series.push(Series {
            name: "start".into(),
            points: vec![(0.0, 0.0), (0.0, top)],
        });
        for (m, end) in &ends {
            series.push(Series {
                name: format!("{m} end"),
                points: vec![(*end, 0.0), (*end, top)],
            });
        }
        let f = plot::lines(
            dir,
            stem,
            &Chart {
                title: title.into(),
                x_label: "time from the request (s)".into(),
                y_label: y.into(),
                series,
                steps: false,
                log_y: false,
            },
        )?;
        s.show(f, title);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_methods_have_a_configuration_that_parses() {
        for quick in [true, false] {
            let c = Overhead.configs(quick);
            assert_eq!(c.len(), 2);
            for c in &c {
                let o = c.opts().expect("flags parse");
                assert_eq!(o.bandwidths, [1000]);
                assert!(!o.before.is_zero() && !o.after.is_zero());
                assert!(c.edges);
            }
        }
    }
}
