//! `bandwidth` (paper Fig. 8) and `data` (Table IV): downtime, migration
//! time and the bytes moved between the edges against the inter-edge/WAN
//! bandwidth (200 to 1000 Mbit/s, set with tc before each migration), CSM
//! against the two state-copy baselines (stop-and-copy and iterative
//! pre-copy, models of VM/container live migration with the paper's sizes:
//! see `app::agent::statecopy`).
//!
//! One configuration per method and preset, each run one testbed with one
//! migration per bandwidth (back and forth between the edges). `data`
//! runs the same configurations and writes only Table IV; with both, the
//! report of either is written from the same `bandwidth.csv`.
//!
//! - `bandwidth.csv`: `method,preset,bandwidth_mbit,rep,downtime_ms,
//!   freeze_ms,migration_ms,bytes_ledger,bytes_counters`. Downtime is the
//!   switch downtime for CSM and the display freeze for the baselines
//!   (DESIGN.md section 6); the ledger is the model's own count of bytes
//!   sent (0 for CSM, which copies no state), the counters the inter-edge
//!   interface's, both directions.
//! - `bandwidth-migrations.csv`: `method,preset,scale,bandwidth_mbit,rep`
//!   then every column of `testbed migrate`'s `migrations.csv`.

use std::path::Path;

use super::plot::{self, Chart, Series};
use super::report::Section;
use super::table::{cell, spread, CsvOut, Spread, Table};
use super::{flags, header, migration_cells, pick, Config, ExpError, Fail, RunOut};

/// The raw file of Fig. 8 and Table IV.
pub const CSV: &str = "bandwidth.csv";
/// Its columns.
pub const COLUMNS: [&str; 9] = [
    "method",
    "preset",
    "bandwidth_mbit",
    "rep",
    "downtime_ms",
    "freeze_ms",
    "migration_ms",
    "bytes_ledger",
    "bytes_counters",
];
const DETAIL_CSV: &str = "bandwidth-migrations.csv";
const GIB: f64 = (1u64 << 30) as f64;

/// The paper's bandwidths (Mbit/s).
pub const BANDWIDTHS: [u32; 5] = [200, 400, 600, 800, 1000];
/// `--quick`'s.
pub const QUICK_BANDWIDTHS: [u32; 2] = [200, 1000];
/// The methods, CSM first.
pub const METHODS: [&str; 3] = ["csm", "stop-and-copy", "pre-copy"];
/// The state-copy model's scale with `--quick` (the snake's 1.5 GB become
/// about 32 MB: 1.6 s of pre-copy at 200 Mbit/s).
pub const QUICK_SCALE: f64 = 0.02;

/// The paper's Table IV (GB moved by VM migration; CSM moves 0).
const PAPER_TABLE4: [(u32, f64, f64); 5] = [
    (200, 1.60, 6.38),
    (400, 1.56, 6.23),
    (600, 1.54, 6.25),
    (800, 1.50, 6.17),
    (1000, 1.50, 6.22),
];

/// The configurations: each method with `preset` at `bandwidths`.
pub fn configs(quick: bool, preset: &str, bandwidths: &[u32]) -> Vec<Config> {
    let scale = pick(quick, QUICK_SCALE, 1.0);
    let bw: Vec<String> = bandwidths.iter().map(u32::to_string).collect();
    METHODS
        .iter()
        .map(|m| {
            // CSM: every migration full (the gap outlasts the countdown).
            let extra = match *m {
                "csm" => "--countdown 1s --gap 2500ms",
                _ => "--gap 1s",
            };
            Config {
                label: format!("{m}-{preset}"),
                count: bandwidths.len() as u32,
                flags: flags(&format!(
                    "--method {m} --preset {preset} --scale {scale} --bandwidth {} --scene textured {extra}",
                    bw.join(",")
                )),
                video: false,
                edges: false,
                once: false,
            }
        })
        .collect()
}

/// The CSV lines of one run.
pub fn record(dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
    let o = cfg.opts()?;
    let (preset, scale) = (o.preset.clone(), o.scale.to_string());
    let rep = out.rep.to_string();
    let mut rows = Vec::new();
    let mut detail = Vec::new();
    for m in &out.report.migrations {
        let csm = m.method == "csm";
        let bw = m.bandwidth_mbit.map(|b| b.to_string()).unwrap_or_default();
        let downtime = if csm { m.downtime_ms } else { m.freeze_ms };
        rows.push(vec![
            m.method.clone(),
            preset.clone(),
            bw.clone(),
            rep.clone(),
            cell(downtime),
            cell(m.freeze_ms),
            cell(m.migration_ms),
            m.bytes_ledger
                .or(csm.then_some(0))
                .map(|b| b.to_string())
                .unwrap_or_default(),
            m.cross_edge_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
        ]);
        let mut d = vec![
            m.method.clone(),
            preset.clone(),
            scale.clone(),
            bw,
            rep.clone(),
        ];
        d.extend(migration_cells(m));
        detail.push(d);
    }
    CsvOut::new(dir, CSV, &COLUMNS).append(&rows)?;
    let key = ["method", "preset", "scale", "bandwidth_mbit", "rep"];
    CsvOut::new(dir, DETAIL_CSV, &header(&key, &[])).append(&detail)
}

/// The state-copy scale the runs used (from the detail CSV; 1 if absent).
fn scale_of(dir: &Path) -> f64 {
    Table::read(&dir.join(DETAIL_CSV))
        .ok()
        .and_then(|t| t.numbers("scale").ok())
        .and_then(|v| v.first().copied())
        .unwrap_or(1.0)
}

/// The rows of `t` for one method, preset and bandwidth.
fn group(t: &Table, method: &str, preset: &str, bw: &str) -> Result<Table, String> {
    t.select("method", method)?
        .select("preset", preset)?
        .select("bandwidth_mbit", bw)
}

/// The mean of column `col` over `g`, if any.
pub fn mean(g: &Table, col: &str) -> Result<Option<f64>, String> {
    Ok(Spread::of(&g.numbers(col)?).map(|s| s.mean))
}

/// The paper's Fig. 8 values for a method, preset and bandwidth:
/// (downtime, migration time), as its text gives them.
fn paper_fig8(method: &str, preset: &str, bw: u32) -> (String, String) {
    let (mig200, ratio, csm_mig) = match preset {
        "minetest" => (298.0, 4.2, "< 4.6 s"),
        _ => (78.0, 3.5, "< 2.5 s"),
    };
    match method {
        "csm" => ("< 12 ms".into(), csm_mig.into()),
        "pre-copy" => {
            let t = match bw {
                200 => format!("{mig200:.0} s"),
                1000 => format!("≈ {:.0} s ({mig200:.0}/{ratio})", mig200 / ratio),
                _ => "- (figure only)".into(),
            };
            ("≥ 64 ms (VM)".into(), t)
        }
        _ => ("- (not measured)".into(), "-".into()),
    }
}

fn sorted_bandwidths(t: &Table) -> Result<Vec<String>, String> {
    let mut bws = t.distinct("bandwidth_mbit")?;
    bws.sort_by_key(|b| b.parse::<u32>().unwrap_or(u32::MAX));
    Ok(bws)
}

/// `## Fig. 8`: the table and the two log-scale figures.
pub(crate) fn fig8(dir: &Path, t: &Table) -> Result<Section, Fail> {
    let scale = scale_of(dir);
    let mut s = Section::new(
        "## Fig. 8",
        "Downtime and migration time against the bandwidth of the inter-edge and WAN links (set with tc before each migration), \
CSM against two state-copy baselines run by the edge agents over the inter-edge link.\n\n\
The baselines are **models of VM/container live migration with the paper's sizes, not a hypervisor**: a memory image of \
pseudo-random bytes of the preset's size crosses the shaped link (stop-and-copy: all of it while the source is stopped; \
pre-copy: rounds of what the running source dirtied, then the rest while it is stopped), the source instance is really frozen \
(SIGSTOP) and the destination really started; the UE shows the destination's stream (over a second PDU session set up before) \
as soon as it has a frame. CRIU would be the real thing; the Debian build here (3.17) cannot initialise on this kernel.\n\n\
Downtime: for CSM the switch downtime (decision to the first displayed frame with a destination contribution); \
for the baselines the display freeze (the longest interval between displayed frames during the migration, DESIGN.md section 6). \
CSM's freeze is listed too. Migration time: the UE's request to its first shown destination frame (CSM: to the switch decision).\n\n\
The paper (section V-B, V-C, Fig. 8): \"CSM keeps average downtime less than 12 ms for both snake and Minetest. VM migration's \
downtime is no less than 64 ms\"; \"the migration time of VM increases rapidly when bandwidth goes down, (x3.5 for snake and x4.2 \
for Minetest). When the bandwidth equals 200 Mbps, the migration time of migrating snake and Minetest even reach 78 s and 298 s\"; \
\"CSM finishes migrating snake and Minetest in less than 2.5 s and 4.6 s\". The paper's VM migration is pre-copy; it has no \
stop-and-copy.\n\n",
    );
    if scale < 1.0 {
        s.body.push_str(&format!(
            "State-copy scale {scale}: the image, set-up and stop threshold are {scale} of the preset's (the dirty rate stays), \
so the baselines' copy bytes and times are about {scale} of the paper's; the destination's start is not scaled.\n\n"
        ));
    }
    let mut rows = Vec::new();
    let (mut down, mut mig) = (Vec::new(), Vec::new());
    let bws = sorted_bandwidths(t)?;
    for preset in t.distinct("preset")? {
        for method in METHODS {
            let (mut dp, mut mp) = (Vec::new(), Vec::new());
            for bw in &bws {
                let g = group(t, method, &preset, bw)?;
                if g.rows.is_empty() {
                    continue;
                }
                let x: f64 = bw.parse().map_err(|_| format!("bandwidth `{bw}`"))?;
                let d = g.numbers("downtime_ms")?;
                let m = g.numbers("migration_ms")?;
                if let Some(v) = Spread::of(&d) {
                    dp.push((x, v.mean));
                }
                if let Some(v) = Spread::of(&m) {
                    mp.push((x, v.mean / 1e3));
                }
                let (pd, pm) = paper_fig8(method, &preset, x as u32);
                rows.push(vec![
                    method.to_string(),
                    preset.clone(),
                    bw.clone(),
                    g.rows.len().to_string(),
                    spread(&d, 1),
                    spread(&g.numbers("freeze_ms")?, 1),
                    spread(&m.iter().map(|x| x / 1e3).collect::<Vec<_>>(), 2),
                    pd,
                    pm,
                ]);
            }
            if !dp.is_empty() {
                let name = format!("{method} ({preset})");
                down.push(Series {
                    name: name.clone(),
                    points: dp,
                });
                mig.push(Series { name, points: mp });
            }
        }
    }
    s.table(
        &[
            "method",
            "preset",
            "Mbit/s",
            "n",
            "downtime ms",
            "freeze ms",
            "migration time s",
            "paper downtime",
            "paper migration time",
        ],
        &rows,
    );
    for (stem, title, y, series, caption) in [
        (
            "fig8a-downtime",
            "Fig. 8(a) downtime",
            "downtime (ms, log)",
            down,
            "Fig. 8(a): downtime against bandwidth (log scale)",
        ),
        (
            "fig8b-migration",
            "Fig. 8(b) migration time",
            "migration time (s, log)",
            mig,
            "Fig. 8(b): migration time against bandwidth (log scale)",
        ),
    ] {
        let f = plot::lines(
            dir,
            stem,
            &Chart {
                title: title.into(),
                x_label: "bandwidth (Mbit/s)".into(),
                y_label: y.into(),
                series,
                steps: false,
                log_y: true,
            },
        )?;
        s.show(f, caption);
    }
    Ok(s)
}

/// `## Table IV`: bytes between the edges per method and bandwidth.
pub(crate) fn table4(dir: &Path, t: &Table) -> Result<Section, Fail> {
    let scale = scale_of(dir);
    let mut s = Section::new(
        "## Table IV",
        "Data moved between the edges per migration (GiB = 2^30 bytes, as the state-copy presets read the paper's \"GB\": see `app::agent::statecopy::plan`; mean over the repetitions): the state-copy model's own \
ledger of the bytes it sent (payload and framing), and the inter-edge interface's counters (both directions, every packet: \
TCP/IP headers, acknowledgements and the copy's control included). CSM copies no state between the edges: its ledger is 0 by \
construction, and its counters show what crossed the link anyway.\n\n\
The paper (section V-D, Table IV): \"the transferred data of snake ranges from 1.5 GB to 1.6 GB\", Minetest \"at least 6.17 GB\"; \
\"the peer-to-peer data transference amount of CSM keeps zero for both of the games\".\n\n",
    );
    if scale < 1.0 {
        s.body.push_str(&format!(
            "State-copy scale {scale}: the column `ledger / scale` gives the bytes the full-size model would move, to set beside the paper's.\n\n"
        ));
    }
    let gb = |v: Option<f64>, prec: usize| v.map_or("-".into(), |x| format!("{:.prec$}", x / GIB));
    let mut rows = Vec::new();
    for preset in t.distinct("preset")? {
        for bw in sorted_bandwidths(t)? {
            let b: u32 = bw.parse().unwrap_or(0);
            let paper = PAPER_TABLE4.iter().find(|p| p.0 == b);
            for method in METHODS {
                let g = group(t, method, &preset, &bw)?;
                if g.rows.is_empty() {
                    continue;
                }
                let ledger = mean(&g, "bytes_ledger")?;
                let counters = mean(&g, "bytes_counters")?;
                let ratio = match (ledger, counters) {
                    (Some(l), Some(c)) if l > 0.0 => format!("{:.3}", c / l),
                    _ => "-".into(),
                };
                let p = match (method, paper) {
                    ("csm", _) => "0".into(),
                    ("pre-copy", Some(p)) => {
                        format!("{:.2}", if preset == "minetest" { p.2 } else { p.1 })
                    }
                    _ => "-".into(),
                };
                rows.push(vec![
                    preset.clone(),
                    bw.clone(),
                    method.to_string(),
                    g.rows.len().to_string(),
                    gb(ledger, 4),
                    gb(counters, 4),
                    ratio,
                    gb(ledger.map(|l| l / scale), 2),
                    p,
                ]);
            }
        }
    }
    s.table(
        &[
            "preset",
            "Mbit/s",
            "method",
            "n",
            "ledger GiB",
            "counters GiB",
            "counters / ledger",
            "ledger / scale GiB",
            "paper GB (VM)",
        ],
        &rows,
    );
    Ok(s)
}

/// Reads `bandwidth.csv` and makes the sections `which` asks for.
pub fn sections(dir: &Path, fig: bool, table: bool) -> Result<Vec<Section>, ExpError> {
    let p = dir.join(CSV);
    let t = Table::read(&p)?;
    let mut out = Vec::new();
    if fig {
        out.push(Fail::name(fig8(dir, &t), &p)?);
    }
    if table {
        out.push(Fail::name(table4(dir, &t), &p)?);
    }
    Ok(out)
}

/// Fig. 8 and Table IV.
pub struct Bandwidth;
/// Table IV alone (the same runs).
pub struct Data;

impl super::Experiment for Bandwidth {
    fn name(&self) -> super::Name {
        super::Name::Bandwidth
    }
    fn configs(&self, quick: bool) -> Vec<Config> {
        configs(
            quick,
            "snake",
            pick(quick, &QUICK_BANDWIDTHS[..], &BANDWIDTHS[..]),
        )
    }
    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
        record(dir, cfg, out)
    }
    fn sections(&self, dir: &Path) -> Result<Vec<Section>, ExpError> {
        sections(dir, true, true)
    }
}

impl super::Experiment for Data {
    fn name(&self) -> super::Name {
        super::Name::Data
    }
    fn configs(&self, quick: bool) -> Vec<Config> {
        Bandwidth.configs(quick)
    }
    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
        record(dir, cfg, out)
    }
    fn sections(&self, dir: &Path) -> Result<Vec<Section>, ExpError> {
        sections(dir, false, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_configuration_that_parses() {
        for quick in [true, false] {
            let c = super::super::Experiment::configs(&Bandwidth, quick);
            assert_eq!(c.len(), METHODS.len());
            for c in &c {
                let o = c.opts().expect("flags parse");
                let want = pick(quick, QUICK_BANDWIDTHS.len(), BANDWIDTHS.len());
                assert_eq!(o.bandwidths.len(), want, "{}", c.label);
                assert_eq!(o.count as usize, want);
            }
        }
    }

    #[test]
    fn sections_from_a_csv() {
        let dir = std::env::temp_dir().join(format!("exp-bw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = CsvOut::new(&dir, CSV, &COLUMNS);
        let row = |m: &str, bw: u32, d: f64, mig: f64, bytes: u64| {
            [
                m.to_string(),
                "snake".into(),
                bw.to_string(),
                "1".into(),
                d.to_string(),
                d.to_string(),
                mig.to_string(),
                bytes.to_string(),
                (bytes + bytes / 50).to_string(),
            ]
            .to_vec()
        };
        out.append(&[
            row("csm", 200, 5.0, 900.0, 0),
            row("pre-copy", 200, 30.0, 78_000.0, 1_600 << 20),
            row("csm", 1000, 6.0, 950.0, 0),
            row("pre-copy", 1000, 25.0, 22_000.0, 1_500_000_000),
        ])
        .expect("append");
        let t = Table::read(&dir.join(CSV)).expect("read");
        let g = group(&t, "pre-copy", "snake", "200").expect("group");
        assert_eq!(mean(&g, "migration_ms"), Ok(Some(78_000.0)));
        let s = table4(&dir, &t).unwrap_or_else(|_| panic!("table4"));
        assert!(
            s.body
                .contains("| snake | 200 | pre-copy | 1 | 1.5625 | 1.5938 | 1.020 | 1.56 | 1.60 |"),
            "{}",
            s.body
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
