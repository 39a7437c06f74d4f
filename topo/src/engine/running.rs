//! The handle of a topology that is up: attach, commands and threads in
//! its namespaces, down (also from a guard on drop).

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use super::{down, DownReport, RunInfo, TopoError};
use crate::config::Topology;
use crate::netns;
use crate::state::{Entry, StateDir};

/// A topology that is up.
#[derive(Debug)]
pub struct Running {
    pub(super) state: StateDir,
    pub(super) info: RunInfo,
    pub(super) timings: Vec<(&'static str, Duration)>,
}

/// Downs the topology when dropped (for tests).
#[derive(Debug)]
pub struct TopoGuard(Option<Running>);

impl std::ops::Deref for TopoGuard {
    type Target = Running;
    fn deref(&self) -> &Running {
        // Only `take` in Drop empties it.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("guard used after drop"))
    }
}

impl std::ops::DerefMut for TopoGuard {
    fn deref_mut(&mut self) -> &mut Running {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("guard used after drop"))
    }
}

impl Drop for TopoGuard {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let name = r.info.topology.name.clone();
            if let Err(e) = r.down() {
                tracing::error!("down of `{name}` on drop failed: {e}");
            }
        }
    }
}

impl Running {
    /// Attaches to a topology that is up (from its state).
    pub fn attach(name: &str, state: &StateDir) -> Result<Running, TopoError> {
        crate::names::topology(name)?;
        let j = state.read_journal(name)?;
        if !j.contains(&Entry::Complete) {
            return Err(if j.is_empty() {
                TopoError::NotUp(name.into())
            } else {
                TopoError::Leftover(name.into())
            });
        }
        let info: RunInfo = state
            .read_json(name, "running.json")?
            .ok_or_else(|| TopoError::NotUp(name.into()))?;
        Ok(Running {
            state: state.clone(),
            info,
            timings: Vec::new(),
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.info.topology
    }

    /// Run-time state (shaping, mechanisms, emulator processes).
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Duration of each step of `up`.
    pub fn timings(&self) -> &[(&'static str, Duration)] {
        &self.timings
    }

    /// Namespace of a node.
    pub fn ns_name(&self, node: &str) -> Result<String, TopoError> {
        let t = &self.info.topology;
        if t.node(node).is_none() {
            return Err(TopoError::UnknownNode {
                topo: t.name.clone(),
                node: node.into(),
            });
        }
        Ok(t.ns_name(node))
    }

    /// A command that runs `prog` in the node's namespace.
    pub fn command(
        &self,
        node: &str,
        prog: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, TopoError> {
        let ns = self.ns_name(node)?;
        command_in(&ns, prog)
    }

    /// Runs `f` on a thread inside the node's namespace.
    pub fn run_in<T: Send + 'static>(
        &self,
        node: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TopoError> {
        let ns = self.ns_name(node)?;
        Ok(netns::run_in_netns(&ns, f)?)
    }

    /// Removes the topology.
    pub fn down(self) -> Result<DownReport, TopoError> {
        down(&self.info.topology.name, &self.state)
    }

    /// Wraps in a guard that downs the topology on drop.
    pub fn guard(self) -> TopoGuard {
        TopoGuard(Some(self))
    }
}

/// A command that runs `prog` in namespace `ns` (setns in the child before exec).
pub fn command_in(ns: &str, prog: impl AsRef<std::ffi::OsStr>) -> Result<Command, TopoError> {
    let fd = netns::open(ns)?;
    let mut c = Command::new(prog);
    // SAFETY: the closure only calls setns(2), which is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(c)
}
