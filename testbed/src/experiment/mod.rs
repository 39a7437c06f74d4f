//! `testbed experiment NAME`: the paper's section V on this testbed
//! (issue 14), one command per result, each a series of `testbed migrate`
//! runs ([`crate::migrate::run`], the library call) with repetitions, then
//! plots and a report beside the paper's own numbers.
//!
//! Run folder (new or empty; default `./results/experiment-NAME-<UTC time>`):
//!
//! ```text
//! experiment.json       what was asked: name, reps, quick, each configuration's `testbed migrate` flags
//! runs.csv              one line per run: configuration, rep, bring-up and wall time, error
//! NAME.csv              one line per migration per configuration per rep (and NAME-*.csv extras)
//! *.svg, *.png          the figures
//! report.md             the sections, every figure computed from the CSV files read back
//! runs/<cfg>-r<rep>/    each run's testbed folder (configs/, logs/, migrations.json/.csv)
//! ```
//!
//! Each configuration and repetition is one `testbed migrate` run, and so
//! one bring-up and tear-down of the testbed (`migrate::run` always does
//! both: `runs.csv` says what that costs). Ctrl-C stops the run under way
//! (its testbed goes down), keeps the CSV lines of the runs that ended and
//! writes no report. A run that fails otherwise is noted in `runs.csv` and
//! the experiment goes on.
//!
//! Adding an experiment: a module with a type implementing [`Experiment`]
//! (its configurations, what it records from each run, its report
//! section), and a [`Name`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use crate::bed::BedArgs;
use crate::bed::{BedError, UpOpts};
use crate::migrate::{MigrateArgs, MigrateOpts, MigrateReport};

mod all;
pub mod bandwidth;
mod overhead;
mod pingpong;
pub mod plot;
mod progress;
pub mod report;
pub mod sampler;
mod smoothness;
mod ssim_threshold;
pub mod table;
pub mod video;

pub use progress::Progress;
use progress::RunObs;
use sampler::Samples;
use table::CsvOut;

/// Errors of `testbed experiment`.
#[derive(Debug, thiserror::Error)]
pub enum ExpError {
    #[error(transparent)]
    Bed(#[from] BedError),
    #[error("run folder {} is not empty: give a new or empty folder with --run-dir", .0.display())]
    RunDirNotEmpty(PathBuf),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Csv { path: PathBuf, msg: String },
    #[error("figure {0}")]
    Plot(String),
    #[error("video {0}")]
    Video(String),
    /// A configuration's `testbed migrate` flags were refused.
    #[error("configuration `{0}`: {1}")]
    Flags(String, String),
}

impl ExpError {
    /// A closure making an [`ExpError::Io`].
    pub fn io<'a>(
        what: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> ExpError + 'a {
        move |source| ExpError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<ExpError> for BedError {
    fn from(e: ExpError) -> BedError {
        match e {
            ExpError::Bed(b) => b,
            e @ ExpError::RunDirNotEmpty(_) => BedError::Usage(e.to_string()),
            e => BedError::Request(e.to_string()),
        }
    }
}

/// The experiments.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// Every experiment below, then one report: Fig. 8 and Table IV (the
    /// snake at every bandwidth, Minetest at 200 and 1000 Mbit/s once),
    /// Fig. 9, Fig. 10, Table V and ping-pong.
    All,
    /// Fig. 8 and Table IV: downtime, migration time and bytes moved against
    /// bandwidth, CSM against stop-and-copy and pre-copy.
    Bandwidth,
    /// Table IV: bytes moved between the edges per method and bandwidth
    /// (the `bandwidth` runs).
    Data,
    /// Fig. 9: each edge's CPU, memory and throughput around a migration,
    /// CSM against pre-copy.
    Overhead,
    /// Fig. 10: CDF of switch downtime and migration time per SSIM threshold.
    SsimThreshold,
    /// Table V: flicker around the switch for CSM, No-Sliding, No-Opt, Static.
    Smoothness,
    /// Migrations back and forth, with and without delayed release.
    Pingpong,
}

impl Name {
    /// Its name on the command line and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Name::All => "all",
            Name::Bandwidth => "bandwidth",
            Name::Data => "data",
            Name::Overhead => "overhead",
            Name::SsimThreshold => "ssim-threshold",
            Name::Smoothness => "smoothness",
            Name::Pingpong => "pingpong",
        }
    }

    fn experiment(self) -> Box<dyn Experiment> {
        match self {
            Name::All => Box::new(all::All),
            Name::Bandwidth => Box::new(bandwidth::Bandwidth),
            Name::Data => Box::new(bandwidth::Data),
            Name::Overhead => Box::new(overhead::Overhead),
            Name::SsimThreshold => Box::new(ssim_threshold::SsimThreshold),
            Name::Smoothness => Box::new(smoothness::Smoothness),
            Name::Pingpong => Box::new(pingpong::Pingpong),
        }
    }
}

/// `testbed experiment`.
#[derive(clap::Args, Debug, Clone)]
#[command(mut_arg("run_dir", |a| a.help(
    "Run folder: new or empty (default ./results/experiment-NAME-<UTC time>)"
)))]
pub struct ExperimentArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub name: Name,
    /// Repetitions of every configuration (each one testbed run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: u32,
    /// One repetition and few migrations per configuration (a smoke run).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub bed: BedArgs,
}

/// One configuration of an experiment: a `testbed migrate` run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// Its name in the CSV files and the report.
    pub label: String,
    /// Migrations per run.
    pub count: u32,
    /// `testbed migrate` flags (besides `--count`).
    pub flags: Vec<String>,
    /// The UE writes what it displays (Y4M) into the run's folder, and the
    /// sampler follows its displayed-frame count.
    pub video: bool,
    /// The sampler follows each edge's CPU, memory and traffic (Fig. 9).
    pub edges: bool,
    /// Run in the first repetition only (`all`'s Minetest runs).
    pub once: bool,
}

impl Config {
    /// The `testbed migrate` options of this configuration.
    pub fn opts(&self) -> Result<MigrateOpts, ExpError> {
        #[derive(clap::Parser)]
        struct W {
            #[command(flatten)]
            a: MigrateArgs,
        }
        let count = self.count.to_string();
        let args = ["migrate", "--count", count.as_str()]
            .into_iter()
            .chain(self.flags.iter().map(String::as_str));
        let w = <W as clap::Parser>::try_parse_from(args)
            .map_err(|e| ExpError::Flags(self.label.clone(), e.to_string()))?;
        w.a.opts()
            .map_err(|e| ExpError::Flags(self.label.clone(), e.to_string()))
    }
}

/// What one run gave.
pub struct RunOut {
    pub rep: u32,
    pub report: MigrateReport,
    pub samples: Samples,
    /// The displayed video, when the configuration asked for it.
    pub video: Option<PathBuf>,
    /// The run's folder.
    pub dir: PathBuf,
}

/// One experiment.
pub trait Experiment {
    /// Its name (the CSV's and the command line's).
    fn name(&self) -> Name;
    /// Its configurations.
    fn configs(&self, quick: bool) -> Vec<Config>;
    /// Writes the CSV lines of one run that ended.
    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError>;
    /// Its report section(s), from its CSV files in `dir` (and draws its figures there).
    fn sections(&self, dir: &Path) -> Result<Vec<report::Section>, ExpError>;
}

/// What [`run`] made.
#[derive(Debug)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub report: PathBuf,
    pub runs: usize,
    pub failed: usize,
    pub took: std::time::Duration,
}

/// Makes the run folder; refuses one that exists and is not empty.
pub fn prepare_dir(dir: &Path) -> Result<PathBuf, ExpError> {
    if let Ok(mut it) = std::fs::read_dir(dir) {
        if it.next().is_some() {
            return Err(ExpError::RunDirNotEmpty(dir.to_path_buf()));
        }
    }
    std::fs::create_dir_all(dir).map_err(ExpError::io("create", dir))?;
    dir.canonicalize().map_err(ExpError::io("resolve", dir))
}

const RUNS_HEADER: &[&str] = &[
    "experiment",
    "config",
    "rep",
    "ok",
    "bring_up_s",
    "wall_s",
    "migrations",
    "switched",
    "error",
];

/// Runs experiment `args.name`: every configuration `reps` times (1 with
/// `--quick`), then the figures and `report.md`. `dirs`: the state and
/// binary folders; `cancel`: set by Ctrl-C.
pub fn run(
    args: &ExperimentArgs,
    dirs: &UpOpts,
    cancel: Arc<AtomicBool>,
) -> Result<Outcome, ExpError> {
    let exp = args.name.experiment();
    let name = exp.name().as_str();
    let started = Instant::now();
    let dir = args.bed.run_dir.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "results/experiment-{name}-{}",
            crate::bed::utc_stamp(sampler::now_ns() / 1_000_000_000)
        ))
    });
    let dir = prepare_dir(&dir)?;
    let reps = if args.quick { 1 } else { args.reps };
    let configs = exp.configs(args.quick);
    for c in &configs {
        c.opts()?;
    }
    let asked = serde_json::json!({
        "experiment": name,
        "reps": reps,
        "quick": args.quick,
        "topology": args.bed.topology.as_ref().map(|p| p.display().to_string()),
        "configs": configs,
    });
    report::write(
        &dir,
        "experiment.json",
        &serde_json::to_string_pretty(&asked).unwrap_or_default(),
    )?;
    let total: u64 = configs
        .iter()
        .map(|c| u64::from(c.count) * u64::from(if c.once { 1 } else { reps }))
        .sum();
    let mut progress = Progress::new(total);
    progress.line(&format!(
        "experiment {name}: {} configurations x {reps} repetitions, {total} migrations; run folder {}",
        configs.len(),
        dir.display()
    ));
    let runs_csv = CsvOut::new(&dir, "runs.csv", RUNS_HEADER);
    let up = UpOpts {
        topology: args.bed.topology.clone(),
        prefix: args.bed.prefix.clone(),
        cancel: Some(cancel.clone()),
        ..dirs.clone()
    };
    let (mut runs, mut failed) = (0, 0);
    let result = (|| {
        for rep in 1..=reps {
            for cfg in configs.iter().filter(|c| rep == 1 || !c.once) {
                let r = one_run(&up, &dir, name, cfg, rep, &cancel, &mut progress)?;
                runs += 1;
                let (ok, row) = match r {
                    Ok(out) => {
                        let row = run_row(name, cfg, rep, &out.0, None);
                        exp.record(&dir, cfg, &RunOut { rep, ..out.1 })?;
                        (true, row)
                    }
                    Err((timing, e)) => {
                        progress.line(&format!("[{}-r{rep}] failed: {e}", cfg.label));
                        (false, run_row(name, cfg, rep, &timing, Some(&e)))
                    }
                };
                failed += usize::from(!ok);
                runs_csv.append(&[row])?;
            }
        }
        Ok::<_, ExpError>(())
    })();
    progress.finish();
    result?;
    let report = write_report(args.name, &dir)?;
    Ok(Outcome {
        run_dir: dir,
        report,
        runs,
        failed,
        took: started.elapsed(),
    })
}

/// Writes `report.md` (and the figures) of experiment `name` from the
/// files in `dir` alone: its CSV files, `runs.csv` and `experiment.json`.
pub fn write_report(name: Name, dir: &Path) -> Result<PathBuf, ExpError> {
    let sections = name.experiment().sections(dir)?;
    report::assemble(dir, &sections)
}

/// Bring-up and wall time of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    bring_up_s: Option<f64>,
    wall_s: f64,
    migrations: usize,
    switched: usize,
}

fn run_row(name: &str, cfg: &Config, rep: u32, t: &Timing, err: Option<&BedError>) -> Vec<String> {
    vec![
        name.to_string(),
        cfg.label.clone(),
        rep.to_string(),
        err.is_none().to_string(),
        table::cell(t.bring_up_s),
        format!("{:.2}", t.wall_s),
        t.migrations.to_string(),
        t.switched.to_string(),
        err.map(|e| e.to_string().replace(['\n', ','], " "))
            .unwrap_or_default(),
    ]
}

/// One `testbed migrate` run: `Err` only when Ctrl-C stopped it (the
/// experiment stops); a failed run is `Ok(Err(..))`.
#[allow(clippy::type_complexity)]
fn one_run(
    up: &UpOpts,
    dir: &Path,
    name: &str,
    cfg: &Config,
    rep: u32,
    cancel: &Arc<AtomicBool>,
    progress: &mut Progress,
) -> Result<Result<(Timing, RunOut), (Timing, BedError)>, ExpError> {
    if cancel.load(Ordering::SeqCst) {
        return Err(BedError::Interrupted.into());
    }
    let run_dir = dir
        .join("runs")
        .join(format!("{name}-{}-r{rep}", cfg.label));
    std::fs::create_dir_all(&run_dir).map_err(ExpError::io("create", &run_dir))?;
    let mut opts = cfg.opts()?;
    opts.cancel = Some(cancel.clone());
    let video = cfg.video.then(|| run_dir.join("displayed.y4m"));
    opts.video = video.clone();
    let up = UpOpts {
        run_dir: Some(run_dir.clone()),
        ..up.clone()
    };
    let base = progress.done();
    let mut obs = RunObs {
        progress,
        base,
        label: format!("{}-r{rep}", cfg.label),
        state_dir: up.state_dir.clone(),
        run_dir: run_dir.clone(),
        frames: cfg.video,
        edges: cfg.edges,
        sampler: None,
        started: Instant::now(),
        bring_up_s: None,
    };
    let r = crate::migrate::run(&up, &opts, false, &mut obs);
    let samples = obs.sampler.take().map(|s| s.stop()).unwrap_or_default();
    let mut timing = Timing {
        bring_up_s: obs.bring_up_s,
        wall_s: obs.started.elapsed().as_secs_f64(),
        ..Timing::default()
    };
    let end = base + u64::from(cfg.count);
    if obs.progress.done() < end {
        // Fewer migrations than planned (the run failed or stopped).
        obs.progress.step(end, &format!("[{}] run over", obs.label));
    }
    match r {
        Err(BedError::Interrupted) => Err(BedError::Interrupted.into()),
        Err(e) if cancel.load(Ordering::SeqCst) => {
            obs.progress.line(&format!("stopped: {e}"));
            Err(BedError::Interrupted.into())
        }
        Err(e) => Ok(Err((timing, e))),
        Ok(report) => {
            timing.migrations = report.summary.migrations;
            timing.switched = report.summary.switched;
            Ok(Ok((
                timing,
                RunOut {
                    rep,
                    report,
                    samples,
                    video,
                    dir: run_dir,
                },
            )))
        }
    }
}

/// The flags of `--quick` or a full run.
pub(crate) fn pick<T>(quick: bool, q: T, full: T) -> T {
    if quick {
        q
    } else {
        full
    }
}

/// `s` as flags (split on spaces).
pub(crate) fn flags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// `key` columns, then the columns of `testbed migrate`'s
/// `migrations.csv`, then `extra`.
pub(crate) fn header(key: &[&str], extra: &[&str]) -> Vec<String> {
    let cols = migration_rows(&[]).header;
    key.iter()
        .map(|k| k.to_string())
        .chain(cols)
        .chain(extra.iter().map(|e| e.to_string()))
        .collect()
}

/// The migrations as the lines of `testbed migrate`'s `migrations.csv`.
pub(crate) fn migration_rows(rows: &[crate::migrate::MigrationRow]) -> table::Table {
    // The migrate CSV has a header and one line per row, all of one width.
    table::Table::parse(&crate::migrate::report::csv(rows)).unwrap_or_default()
}

/// A report section that failed on its CSV (a column missing, a cell not
/// a number) or elsewhere.
pub(crate) enum Fail {
    Csv(String),
    Other(ExpError),
}

impl Fail {
    /// The error, naming the CSV file `path` for a CSV problem.
    pub(crate) fn name<T>(r: Result<T, Fail>, path: &Path) -> Result<T, ExpError> {
        r.map_err(|e| match e {
            Fail::Csv(m) => ExpError::Csv {
                path: path.to_path_buf(),
                msg: m,
            },
            Fail::Other(e) => e,
        })
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Csv(s)
    }
}

impl From<ExpError> for Fail {
    fn from(e: ExpError) -> Fail {
        Fail::Other(e)
    }
}

/// One migration's cells of [`migration_rows`].
pub(crate) fn migration_cells(m: &crate::migrate::MigrationRow) -> Vec<String> {
    migration_rows(std::slice::from_ref(m))
        .rows
        .into_iter()
        .next()
        .unwrap_or_default()
}
