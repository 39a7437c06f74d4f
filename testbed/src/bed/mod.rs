//! `up`, `down`, `status` and sessions: the topology plus every daemon in
//! its namespace, recorded in a state file so that another process can find
//! and stop it.
//!
//! Run folder (default `./results/run-<UTC timestamp>/`):
//!
//! ```text
//! configs/<daemon>.toml   generated configurations (see `plan`)
//! logs/<daemon>.log       each daemon's stdout and stderr
//! plan.json               the derived plan (addresses, pools, APIs)
//! testbed.json            what was started: namespaces, pids, start times
//! ```
//!
//! State file: `<state dir>/testbed/<topology>.json` (same content as
//! `testbed.json`); the state dir is topo's (`$MINEDGE_STATE_DIR` or
//! `/run/minedge`). Every daemon is also appended to topo's journal of the
//! topology, so `topo down` stops them too if `testbed` itself was killed.
//!
//! Modules by job: `record` (state file and run-folder record), `process`
//! (binaries, spawning, stopping), `http` (requests inside a namespace),
//! `ready` (health checks), `daemons` (start in order, restart), `up` (up and
//! down orchestration), `status`, `session`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, PlanError, Role};

mod daemons;
mod http;
mod process;
mod ready;
mod record;
mod session;
mod status;
mod up;

pub use daemons::restart;
pub use http::{http_in, http_in_auth};
pub use process::{alive, default_bin_dir, log_tail, stop_proc};
pub use record::{load_all, load_one};
pub use session::{add_args, pick_dnn, session_addr, ue_session, ue_sessions};
pub use status::{parse_prometheus, status, DaemonStatus, Status};
pub use up::{down, up, up_run_down, utc_stamp, DownSummary};

/// Errors of testbed operations.
#[derive(Debug, thiserror::Error)]
pub enum BedError {
    /// The topology cannot be used.
    #[error(transparent)]
    Topology(#[from] topo::ConfigError),
    /// The topology lacks what a daemon needs.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A daemon binary is not built.
    #[error("binary `{bin}` not found in {} (it is built by package `{package}`): run `cargo build{profile} -p upf -p smf-lite -p gnb -p ue` (same profile as testbed), or give --bin-dir", dir.display())]
    MissingBinary {
        /// Binary.
        bin: &'static str,
        /// Package.
        package: &'static str,
        /// Where it was looked for.
        dir: PathBuf,
        /// ` --release` when testbed itself is a release build.
        profile: &'static str,
    },
    /// A testbed of this topology is up already.
    #[error("a testbed of topology `{0}` is already up (run `testbed down` first)")]
    AlreadyUp(String),
    /// Nothing is up.
    #[error("no testbed is up (state dir {0})")]
    NotUp(String),
    /// topo failed.
    #[error(transparent)]
    Topo(#[from] topo::TopoError),
    /// A daemon did not start or did not become healthy.
    #[error("{daemon} did not become ready: {reason}\n--- last lines of {} ---\n{tail}", log.display())]
    NotReady {
        /// Daemon.
        daemon: String,
        /// Why.
        reason: String,
        /// Its log.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Ctrl-C or SIGTERM during `up`: everything was removed again.
    #[error("interrupted: everything started so far was stopped and removed")]
    Interrupted,
    /// A request to a daemon failed.
    #[error("{0}")]
    Request(String),
    /// Bad usage (unknown UE, UPF...).
    #[error("{0}")]
    Usage(String),
    /// File I/O.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was done.
        what: &'static str,
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl BedError {
    /// Exit code of the CLI: 2 for usage/configuration errors, 130 when interrupted, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            BedError::Topology(_) | BedError::Plan(_) | BedError::Usage(_) => 2,
            BedError::Interrupted => 130,
            _ => 1,
        }
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BedError + 'a {
    move |source| BedError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The command-line options of every command that brings a testbed of its
/// own up (`--state-dir` and `--bin-dir` are the CLI's global ones). A
/// command whose run folder holds more says so with
/// `#[command(mut_arg("run_dir", ...))]`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BedArgs {
    /// Topology file (default: the paper topology).
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Run folder for configs/ and logs/ (default ./results/run-<UTC time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Prefix of every namespace name.
    #[arg(long)]
    pub prefix: Option<String>,
}

impl BedArgs {
    /// `dirs` (what the global options set) with this run's topology, run
    /// folder and prefix.
    pub fn up_opts(&self, dirs: &UpOpts) -> UpOpts {
        UpOpts {
            topology: self.topology.clone(),
            run_dir: self.run_dir.clone(),
            prefix: self.prefix.clone(),
            ..dirs.clone()
        }
    }
}

/// Options of [`up`].
#[derive(Clone, Debug, Default)]
pub struct UpOpts {
    /// Topology file (default: the embedded paper topology).
    pub topology: Option<PathBuf>,
    /// Run folder (default `./results/run-<timestamp>`).
    pub run_dir: Option<PathBuf>,
    /// Namespace prefix.
    pub prefix: Option<String>,
    /// State dir (default topo's).
    pub state_dir: Option<PathBuf>,
    /// Where the daemon binaries are (default: next to the current executable).
    pub bin_dir: Option<PathBuf>,
    /// Health-check timeout per daemon.
    pub ready_timeout: Option<Duration>,
    /// Set by a signal handler to abort `up` (everything made is removed).
    pub cancel: Option<Arc<AtomicBool>>,
    /// What the plan takes besides the topology (the SMF's migration timers).
    pub plan: crate::plan::PlanOpts,
}

/// A started daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRec {
    /// Daemon name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Node.
    pub node: String,
    /// Namespace.
    pub netns: String,
    /// pid.
    pub pid: i32,
    /// Start time (field 22 of /proc/PID/stat) to tell pid reuse.
    pub start: u64,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log.
    pub log: PathBuf,
    /// Its API (reachable inside `netns`).
    pub api: String,
    /// Its command line when configured by arguments (the application's
    /// daemons); empty: `run --config CONFIG`.
    #[serde(default)]
    pub args: Vec<String>,
}

/// What is up: written to the state file and the run folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BedState {
    /// Topology name (topo's state key).
    pub topology: String,
    /// Namespace prefix.
    pub prefix: String,
    /// topo's state dir.
    pub state_dir: PathBuf,
    /// Run folder.
    pub run_dir: PathBuf,
    /// Unix time of `up`.
    pub started_unix: u64,
    /// The plan.
    pub plan: Plan,
    /// Node -> namespace.
    pub namespaces: Vec<(String, String)>,
    /// Daemons started, in start order.
    pub procs: Vec<ProcRec>,
    /// Whether every daemon passed its health check.
    pub ready: bool,
}

impl BedState {
    /// Namespace of a node.
    pub fn ns(&self, node: &str) -> String {
        self.namespaces
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, ns)| ns.clone())
            .unwrap_or_else(|| format!("{}{}", self.prefix, node))
    }
    /// The record of a daemon.
    pub fn proc(&self, name: &str) -> Option<&ProcRec> {
        self.procs.iter().find(|p| p.name == name)
    }
}
