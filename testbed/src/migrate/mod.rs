//! `testbed migrate`: CSM migrations back and forth between two edges
//! (issue 12 item 9), with every figure of DESIGN.md section 6.
//!
//! 1. The testbed comes up with the SMF's countdown set to `--countdown`.
//! 2. The UE plays through the first edge: PDU session 1 through that
//!    edge's UPF (`ue session add`), an instance at its agent
//!    (`POST /instances`, rendering `--scene`), then `POST /play` to the UE
//!    daemon's API, which registers the service with the SMF.
//! 3. `--count` one-way migrations edge1 -> edge2 -> edge1 ...: each is
//!    asked for with `POST /migrate {"to": EDGE}` to the UE (or, with
//!    `--trigger latency`, by the UE's own agent once the testbed raised the
//!    delay of the serving edge's N6 link), and waited for (polling
//!    `GET /status`, with a deadline) until it no longer runs. Before each
//!    full migration the destination's repository is made warm or cold
//!    (`--warm`). Between migrations the testbed waits the gap (see
//!    [`Gaps`]): a migration back to a copilot still inside its countdown
//!    is switch-only, after the release it is full.
//! 4. After the last one it waits for the last countdown to release the
//!    source (the SMF's `GET /services` shows no copilot), counts what the
//!    run holds against what it held before the first migration (leaks),
//!    then `DELETE /play` gives the UE's figures.
//!
//! Per migration: the UE's downtime, stall, migration time, SSIM at the
//! switch and frames blended; the SMF's session setup and instance start
//! times; the inter-edge interface's byte counters before and after; inputs
//! sent, and new holes in the sequence numbers the logic server applied.
//! `migrations.json`, `migrations.csv` and the UE's `display.jsonl` (one
//! record per displayed frame) go to the run folder.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bed::{self, BedError, UpOpts};

pub mod api;
pub mod args;
mod flow;
pub mod probe;
pub mod progress;
pub mod report;

pub use args::MigrateArgs;
pub use report::{MigrateReport, MigrationRow, Summary};

/// What starts a migration.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The testbed asks the UE's API (`POST /migrate`).
    Command,
    /// The testbed raises the serving edge's N6 delay; the UE's agent asks.
    Latency,
}

/// How the UE's service moves between the edges.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    /// CSM: the SMF's migration manager, a parallel session, a new
    /// instance synchronised through the cloud, the UE's stream switch.
    #[value(name = "csm")]
    #[serde(rename = "csm")]
    Csm,
    /// Baseline: the source instance stops, its memory image (a model with
    /// the preset's size) crosses the inter-edge link, the destination starts.
    #[value(name = "stop-and-copy")]
    #[serde(rename = "stop-and-copy")]
    StopAndCopy,
    /// Baseline: iterative pre-copy rounds while the source runs, then
    /// stop-and-copy of the remainder.
    #[value(name = "pre-copy")]
    #[serde(rename = "pre-copy")]
    PreCopy,
}

impl Method {
    /// Its name on the command line, in the agent's API and the CSV files.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Csm => "csm",
            Method::StopAndCopy => "stop-and-copy",
            Method::PreCopy => "pre-copy",
        }
    }

    /// Whether it is a state-copy baseline.
    pub fn is_state_copy(self) -> bool {
        self != Method::Csm
    }
}

/// The waits between migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gaps {
    /// Alternately longer than the countdown (1.5 x countdown + 1 s) and
    /// shorter (countdown / 2, less the time the trigger takes to make the
    /// UE ask), longer first: migrations 1, 2, 4, 6 ... are full and 3, 5,
    /// 7 ... switch-only (6 of 10 full; 3 of 4).
    Auto,
    /// These gaps in turn.
    List(Vec<Duration>),
}

impl Gaps {
    /// The wait before migration `i` (0-based; nothing before the first);
    /// `lead`: how long after the trigger the UE asks (the latency
    /// trigger's hold time; 0 for a command).
    pub fn before(&self, i: u32, countdown: Duration, lead: Duration) -> Duration {
        if i == 0 {
            return Duration::ZERO;
        }
        match self {
            Gaps::Auto if i % 2 == 1 => countdown * 3 / 2 + Duration::from_secs(1),
            Gaps::Auto => (countdown / 2).saturating_sub(lead),
            Gaps::List(v) if v.is_empty() => Duration::ZERO,
            Gaps::List(v) => v[(i as usize - 1) % v.len()],
        }
    }
}

/// The latency trigger's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyOpts {
    /// Latency to the serving edge above which the UE's agent asks.
    pub threshold: Duration,
    /// How long it must stay above.
    pub hold: Duration,
    /// One-way delay the testbed adds to the serving edge's N6 link.
    pub delay: Duration,
}

/// What `testbed migrate` does (see [`MigrateArgs`] for each option).
#[derive(Debug, Clone)]
pub struct MigrateOpts {
    pub count: u32,
    /// CSM or a state-copy baseline.
    pub method: Method,
    /// The state-copy model's preset (`snake`, `minetest`).
    pub preset: String,
    /// The state-copy model's scale (0 < s <= 1).
    pub scale: f64,
    /// The inter-edge and WAN links' rate (Mbit/s) for each migration in
    /// turn, set with tc before it (empty: the topology's).
    pub bandwidths: Vec<u32>,
    /// Playing time before the first migration and after the last.
    pub before: Duration,
    pub after: Duration,
    pub countdown: Duration,
    pub gaps: Gaps,
    pub trigger: Trigger,
    pub latency: LatencyOpts,
    pub warm: bool,
    /// The UE's stream selector (threshold, slide, give-up, ablations,
    /// inputs resent), passed in `POST /play`.
    pub selector: ue::service::api::SelectorSettings,
    pub scene: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: Option<u32>,
    pub input_rate: f64,
    pub video: Option<PathBuf>,
    /// Longest wait for one migration (default: the SMF's setup and switch
    /// timeouts plus 10 s).
    pub deadline: Option<Duration>,
    /// Set by Ctrl-C: the run stops, the play is stopped, the testbed goes down.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl MigrateOpts {
    /// The wait before migration `i` (see [`Gaps`]).
    pub fn gap(&self, i: u32) -> Duration {
        let lead = match self.trigger {
            Trigger::Command => Duration::ZERO,
            Trigger::Latency => self.latency.hold,
        };
        self.gaps.before(i, self.countdown, lead)
    }

    /// The links' rate before migration `i` (0-based), Mbit/s.
    pub fn bandwidth(&self, i: u32) -> Option<u32> {
        match self.bandwidths.len() {
            0 => None,
            n => Some(self.bandwidths[i as usize % n]),
        }
    }

    /// Whether Ctrl-C was pressed.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Where progress goes: lines, and the migrations done.
pub trait Observer {
    /// A line for people.
    fn line(&mut self, s: &str);
    /// `total` migrations are to come.
    fn begin(&mut self, _total: u64) {}
    /// `done` migrations are done; `msg` says how the last went.
    fn step(&mut self, _done: u64, _msg: &str) {}
    /// What is being waited for now.
    fn status(&mut self, _msg: &str) {}
    /// The migrations are over.
    fn finish(&mut self) {}
}

/// Removes a file on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Brings the testbed up, migrates, reports, and takes it down (unless
/// `keep`); everything made is removed also when a step fails or Ctrl-C
/// stops the run.
pub fn run(
    up: &UpOpts,
    opts: &MigrateOpts,
    keep: bool,
    obs: &mut dyn Observer,
) -> Result<MigrateReport, BedError> {
    let mut up = up.clone();
    up.plan.migration.countdown = opts.countdown;
    if up.cancel.is_none() {
        up.cancel = opts.cancel.clone();
    }
    // The latency trigger changes the N6 links' delay while traffic flows:
    // on the paper topology they get the userspace emulator.
    let _patched = if opts.trigger == Trigger::Latency && up.topology.is_none() {
        let path =
            std::env::temp_dir().join(format!("testbed-migrate-{}-paper.toml", std::process::id()));
        std::fs::write(&path, probe::paper_with_emulated_n6()?).map_err(|source| BedError::Io {
            what: "write",
            path: path.clone(),
            source,
        })?;
        up.topology = Some(path.clone());
        Some(TempFile(path))
    } else {
        None
    };
    let timers = up.plan.migration;
    let deadline = opts.deadline.unwrap_or(if opts.method.is_state_copy() {
        args::STATE_COPY_DEADLINE
    } else {
        timers.setup_timeout + timers.switch_timeout + Duration::from_secs(10)
    });
    let obs = RefCell::new(obs);
    let ((mut report, namespaces), kept) =
        bed::up_run_down(&up, keep, &mut |l| obs.borrow_mut().line(l), |st, _| {
            let mut o = obs.borrow_mut();
            flow::session(st, up.bin_dir.as_deref(), opts, deadline, &mut **o)
        })?;
    if !kept {
        report.leaks.namespaces = probe::namespaces_left(&namespaces) as i64;
    }
    report.summary.settings["kept"] = serde_json::Value::Bool(kept);
    Ok(report)
}

/// Sleeps `d` in short steps; `Interrupted` when Ctrl-C was pressed.
fn pause(opts: &MigrateOpts, d: Duration) -> Result<(), BedError> {
    let t = Instant::now();
    while t.elapsed() < d {
        if opts.cancelled() {
            return Err(BedError::Interrupted);
        }
        std::thread::sleep((d - t.elapsed()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Polls `f` every 20 ms until it gives a value; an error naming `what`
/// after `timeout`, `Interrupted` on Ctrl-C.
fn wait_for<T>(
    opts: &MigrateOpts,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<Option<T>, BedError>,
) -> Result<T, BedError> {
    let t = Instant::now();
    loop {
        if opts.cancelled() {
            return Err(BedError::Interrupted);
        }
        if let Some(v) = f()? {
            return Ok(v);
        }
        if t.elapsed() > timeout {
            return Err(BedError::Request(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `text` to `dir/name`.
fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), BedError> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|source| BedError::Io {
        what: "write",
        path: p,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full unless the destination is still a copilot: the gap before it
    /// is shorter than the countdown (and it is not the first).
    fn kinds(g: &Gaps, count: u32, countdown: Duration) -> Vec<bool> {
        (0..count)
            .map(|i| i == 0 || g.before(i, countdown, Duration::ZERO) >= countdown)
            .collect()
    }

    #[test]
    fn auto_gaps_make_at_least_half_full() {
        let c = Duration::from_secs(10);
        let z = Duration::ZERO;
        assert_eq!(Gaps::Auto.before(0, c, z), z);
        assert_eq!(Gaps::Auto.before(1, c, z), Duration::from_secs(16));
        assert_eq!(Gaps::Auto.before(2, c, z), Duration::from_secs(5));
        // The latency trigger's hold comes off the short gap only.
        let hold = Duration::from_millis(500);
        assert_eq!(Gaps::Auto.before(1, c, hold), Duration::from_secs(16));
        assert_eq!(Gaps::Auto.before(2, c, hold), Duration::from_millis(4500));
        for n in 1..=20 {
            let k = kinds(&Gaps::Auto, n, c);
            let full = k.iter().filter(|f| **f).count();
            assert!(2 * full >= n as usize, "{n}: {k:?}");
            if n >= 3 {
                assert!(k.contains(&false), "{n}: some switch-only");
            }
        }
        assert_eq!(
            kinds(&Gaps::Auto, 4, Duration::from_secs(1)),
            [true, true, false, true]
        );
        let l = Gaps::List(vec![Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(l.before(1, c, hold), Duration::from_secs(1));
        assert_eq!(l.before(2, c, z), Duration::from_secs(2));
        assert_eq!(l.before(3, c, z), Duration::from_secs(1));
    }

    #[test]
    fn waits_end_on_their_condition_or_deadline() {
        let opts = MigrateArgs::default_opts();
        let mut n = 0;
        let v = wait_for(&opts, Duration::from_secs(5), "three calls", || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .expect("condition met");
        assert_eq!(v, 3);
        let e = wait_for(&opts, Duration::from_millis(50), "never", || Ok(None::<()>))
            .expect_err("deadline");
        assert!(e.to_string().contains("never"), "{e}");
        let cancel = Arc::new(AtomicBool::new(true));
        let opts = MigrateOpts {
            cancel: Some(cancel),
            ..opts
        };
        assert!(matches!(
            pause(&opts, Duration::from_secs(60)),
            Err(BedError::Interrupted)
        ));
    }
}
