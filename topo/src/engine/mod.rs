//! Bringing topologies up and down.
//!
//! `up` runs in steps: namespaces (in parallel, each marked as ours and
//! journaled before it exists), veth pairs (one batched netlink send, each
//! end created directly in its namespace), sysctls, addresses and routes
//! (one batched send per namespace), shaping (tc), emulators. Any failure,
//! or an interrupt, rolls everything back through the same path as `down`.
//!
//! Modules by job: `plan` decides what to make, `build` makes it (`up`, one
//! function per step), `workers` runs namespace work on threads, `emulator`
//! starts the userspace link emulators, `running` is the handle of a topology
//! that is up, `shape` changes shaping while traffic flows, `teardown` is
//! `down`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Shape, Topology};
use crate::names::NameError;
use crate::netns::NetnsError;
use crate::nl::NetlinkError;
use crate::state::{StateDir, StateError};
use crate::tc::{EgressState, TcError};

mod build;
mod emulator;
mod plan;
mod running;
mod shape;
mod teardown;
mod workers;

pub use build::up;
pub use running::{command_in, Running, TopoGuard};
pub use shape::describe_shape;
pub use teardown::{down, down_all, list};

/// Errors of topology operations.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    /// The topology description is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A name (topology, node, link, prefix, interface) that is not allowed.
    #[error("{0}")]
    BadName(#[from] NameError),
    /// `up` of a topology that is up.
    #[error("topology `{0}` is already up (run `topo down {0}` first)")]
    AlreadyUp(String),
    /// State of an interrupted `up` is still there.
    #[error(
        "topology `{0}` has leftovers of an interrupted `up` (run `topo down {0}` to remove them)"
    )]
    Leftover(String),
    /// Another process is changing the topology.
    #[error("topology `{0}` is being changed by another process")]
    Busy(String),
    /// The topology is not up.
    #[error("topology `{0}` is not up")]
    NotUp(String),
    /// No node of that name.
    #[error("topology `{topo}` has no node `{node}`")]
    UnknownNode {
        /// Topology.
        topo: String,
        /// Node.
        node: String,
    },
    /// No link of that name.
    #[error("topology `{topo}` has no link `{link}` (links: {known})")]
    UnknownLink {
        /// Topology.
        topo: String,
        /// Link.
        link: String,
        /// Known links.
        known: String,
    },
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// tc failed.
    #[error(transparent)]
    Tc(#[from] TcError),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A sysctl could not be written.
    #[error("sysctl {key}={value} on node `{node}`: {source}")]
    Sysctl {
        /// Node.
        node: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Error.
        source: std::io::Error,
    },
    /// A link emulator failed.
    #[error("link emulator of `{link}`: {reason}")]
    Emu {
        /// Link.
        link: String,
        /// Why.
        reason: String,
    },
    /// A fault injected by a test.
    #[error("injected fault at step `{0}`")]
    Injected(String),
    /// Ctrl-C or SIGTERM during `up`.
    #[error("interrupted")]
    Interrupted,
    /// The change is not possible on this link.
    #[error("{0}")]
    Unsupported(String),
    /// `up` failed and was rolled back.
    #[error("bringing up `{topo}` failed at step `{step}`; rolled back {rolled_back} objects")]
    UpFailed {
        /// Topology.
        topo: String,
        /// The step that failed.
        step: &'static str,
        /// Namespaces and processes removed again.
        rolled_back: usize,
        /// What failed.
        #[source]
        source: Box<TopoError>,
    },
    /// An I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Error.
        source: std::io::Error,
    },
}

impl TopoError {
    /// [`TopoError::UnknownLink`] for `link` in `t`, listing its links.
    pub fn unknown_link(t: &Topology, link: &str) -> TopoError {
        TopoError::UnknownLink {
            topo: t.name.clone(),
            link: link.into(),
            known: t
                .links
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl TopoError {
    /// Whether this is a usage/configuration error (exit code 2) rather than a runtime one.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            TopoError::Config(_)
                | TopoError::BadName(_)
                | TopoError::State(StateError::BadName(_))
                | TopoError::UnknownNode { .. }
                | TopoError::UnknownLink { .. }
                | TopoError::Unsupported(_)
        )
    }
}

/// How delay, jitter and loss are realised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpairMode {
    /// netem if the kernel has it, else the userspace emulator.
    #[default]
    Auto,
    /// Always netem.
    Netem,
    /// Always the userspace emulator.
    Userspace,
}

/// Options of [`up`].
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// State directory (default: `$MINEDGE_STATE_DIR` or /run/minedge).
    pub state_dir: Option<PathBuf>,
    /// Delay/loss mechanism.
    pub impair: ImpairMode,
    /// The `topo` binary used to run emulators (default: found next to the current executable).
    pub topo_bin: Option<PathBuf>,
    /// Worker threads for namespace work (default 2).
    pub threads: usize,
    /// Set to true (e.g. by a SIGINT handler) to abort `up` and roll back.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Test hook: fail right after the named step (`namespaces`, `links`,
    /// `addresses`, `shaping`, `emulators`), or after N namespaces with `namespaces:N`.
    #[doc(hidden)]
    pub fault: Option<String>,
}

impl UpOptions {
    /// Options using state directory `dir`.
    pub fn with_state_dir(dir: impl Into<PathBuf>) -> Self {
        UpOptions {
            state_dir: Some(dir.into()),
            ..Default::default()
        }
    }
    fn state(&self) -> StateDir {
        match &self.state_dir {
            Some(d) => StateDir::new(d),
            None => StateDir::from_env(),
        }
    }
}

/// Which way along a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// a to b.
    Ab,
    /// b to a.
    Ba,
    /// Both.
    Both,
}

/// A running emulator process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmuProc {
    /// pid.
    pub pid: i32,
    /// Start time, to detect pid reuse.
    pub start: u64,
    /// Its JSON config.
    pub config: PathBuf,
    /// Its namespace.
    pub netns: String,
    /// Port towards a.
    pub port_a: String,
    /// Port towards b.
    pub port_b: String,
}

/// Delay/loss mechanism of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpairMech {
    /// No delay/loss.
    None,
    /// Kernel netem.
    Netem,
    /// The userspace emulator.
    UserspaceEmu,
}

/// Run-time state of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRun {
    /// Link name.
    pub name: String,
    /// Current shaping a to b.
    pub shape_ab: Shape,
    /// Current shaping b to a.
    pub shape_ba: Shape,
    /// What is installed on a's egress.
    pub egress_a: EgressState,
    /// What is installed on b's egress.
    pub egress_b: EgressState,
    /// Delay/loss mechanism.
    pub impair: ImpairMech,
    /// The emulator, if any.
    pub emu: Option<EmuProc>,
}

/// Everything `up` made, saved as `running.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The topology.
    pub topology: Topology,
    /// Links.
    pub links: Vec<LinkRun>,
    /// Emulator namespace, if any.
    pub emu_ns: Option<String>,
    /// Whether netem is used for delay/loss.
    pub netem: bool,
}

/// What `down` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DownReport {
    /// Namespaces removed.
    pub namespaces: usize,
    /// Processes stopped.
    pub processes: usize,
    /// Namespaces left alone because they no longer carry our mark.
    pub not_ours: Vec<String>,
}
