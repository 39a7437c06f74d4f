//! `down`: stop a topology's processes, then delete the namespaces that
//! still carry its mark, and forget its state.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DownReport, TopoError};
use crate::netns;
use crate::nl::Nl;
use crate::state::{self, Entry, StateDir};

/// Removes a topology: stops its processes and deletes its namespaces, but
/// only those that still carry the mark it set. A topology that is not up is fine.
///
/// Only a topology recorded in `state` is touched: a name that is not a
/// plain topology name (`../..`, `a/b`, ...) is refused with
/// [`TopoError::BadName`] before anything is read, locked or removed, and a
/// valid name that `state` does not record is "not up" (an empty report).
pub fn down(name: &str, state: &StateDir) -> Result<DownReport, TopoError> {
    crate::names::topology(name)?;
    if !state.recorded(name)? {
        tracing::info!("topology `{name}` is not up: nothing to do");
        return Ok(DownReport::default());
    }
    let _lock = state.lock(name, true)?;
    down_locked(name, state)
}

/// Removes every topology of this state directory (also after a crash).
pub fn down_all(state: &StateDir) -> Result<Vec<(String, DownReport)>, TopoError> {
    let mut out = Vec::new();
    for name in state.list()? {
        let r = down(&name, state)?;
        out.push((name, r));
    }
    Ok(out)
}

/// Names of topologies with state, and whether each is complete (up) or interrupted.
pub fn list(state: &StateDir) -> Result<Vec<(String, bool)>, TopoError> {
    let mut v = Vec::new();
    for name in state.list()? {
        let j = state.read_journal(&name)?;
        v.push((name, j.contains(&Entry::Complete)));
    }
    Ok(v)
}

/// `down` with the topology's lock held (also the rollback of a failed `up`).
pub(super) fn down_locked(name: &str, state: &StateDir) -> Result<DownReport, TopoError> {
    let journal = state.read_journal(name)?;
    let mut rep = DownReport::default();
    if !state.recorded(name)? {
        tracing::info!("topology `{name}` is not up: nothing to do");
        return Ok(rep);
    }
    // Processes first (they hold sockets in our namespaces).
    rep.processes = stop_processes(&journal);
    let marks: Vec<(String, String)> = journal
        .iter()
        .filter_map(|e| {
            if let Entry::Netns { name, mark } = e {
                Some((name.clone(), mark.clone()))
            } else {
                None
            }
        })
        .collect();
    // All marks are checked before the first delete: the kernel's teardown
    // of deleted namespaces holds locks the checks need.
    let checked = check_marks(&marks);
    delete_ours(checked, &mut rep)?;
    state.remove(name)?;
    tracing::info!(
        "topology `{name}` down: removed {} namespaces, stopped {} processes",
        rep.namespaces,
        rep.processes
    );
    Ok(rep)
}

/// Stops the journaled processes, and any still running with the
/// configuration of one; how many were running.
fn stop_processes(journal: &[Entry]) -> usize {
    let mut stopped = 0;
    let mut configs: Vec<PathBuf> = Vec::new();
    for e in journal {
        match e {
            Entry::Proc { pid, start, config } => {
                if stop_proc(*pid, *start) {
                    stopped += 1;
                }
                configs.push(config.clone());
            }
            Entry::EmuIntent { config } => configs.push(config.clone()),
            _ => {}
        }
    }
    // A crash between spawn and journaling the pid: find processes by their exact config path.
    for c in &configs {
        for pid in procs_with_config(c) {
            if let Some(st) = state::proc_start_time(pid) {
                if stop_proc(pid, st) {
                    stopped += 1;
                }
            }
        }
    }
    stopped
}

/// [`check_ours`] of each (namespace, mark), on two worker threads.
fn check_marks(marks: &[(String, String)]) -> Vec<(String, Result<bool, TopoError>)> {
    let results: Mutex<Vec<(String, Result<bool, TopoError>)>> = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                // Workers enter each namespace to read its mark, then go home.
                let orig = netns::current();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((ns, mark)) = marks.get(i) else {
                        break;
                    };
                    let r = check_ours(ns, mark);
                    if let Ok(mut v) = results.lock() {
                        v.push((ns.clone(), r));
                    }
                }
                if let Ok(o) = orig {
                    let _ = netns::enter_fd(&o);
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

/// Deletes the namespaces found ours, counting them in `rep`; notes those
/// that are not. The first error, after trying every one.
fn delete_ours(
    checked: Vec<(String, Result<bool, TopoError>)>,
    rep: &mut DownReport,
) -> Result<(), TopoError> {
    let mut first_err = None;
    for (ns, r) in checked {
        match r {
            Ok(true) => match netns::delete(&ns) {
                Ok(()) => {
                    tracing::debug!("deleted namespace {ns}");
                    rep.namespaces += 1;
                }
                Err(e) => {
                    tracing::error!("cannot delete namespace `{ns}`: {e}");
                    first_err.get_or_insert(e.into());
                }
            },
            Ok(false) => {}
            Err(TopoError::Unsupported(why)) => {
                tracing::warn!("left namespace `{ns}` alone: {why}");
                rep.not_ours.push(ns);
            }
            Err(e) => {
                tracing::error!("cannot delete namespace `{ns}`: {e}");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Whether `/run/netns/NS` is bound and carries `mark`. Ok(false): nothing there.
/// Err(Unsupported): someone else's namespace.
fn check_ours(ns: &str, mark: &str) -> Result<bool, TopoError> {
    let p = netns::path(ns);
    if !p.exists() {
        return Ok(false);
    }
    if !netns::is_bound(ns) {
        // A crash between creating the mount point and mounting: an empty
        // file we journaled. `ip netns add` would have mounted it at once.
        let empty = std::fs::metadata(&p)
            .map(|m| m.is_file() && m.len() == 0)
            .unwrap_or(false);
        if empty {
            std::fs::remove_file(&p).map_err(|source| TopoError::Io {
                what: format!("remove {}", p.display()),
                source,
            })?;
        }
        return Ok(false);
    }
    // Called on a worker thread: enter the namespace and ask its lo.
    netns::enter(ns)?;
    let lo = Nl::new()?.get_link(1)?;
    let found = lo.attributes.into_iter().find_map(|a| {
        if let netlink_packet_route::link::LinkAttribute::IfAlias(s) = a {
            Some(s)
        } else {
            None
        }
    });
    if found.as_deref() != Some(mark) {
        return Err(TopoError::Unsupported(format!(
            "its mark is {:?}, not ours ({mark})",
            found.unwrap_or_default()
        )));
    }
    Ok(true)
}

fn stop_proc(pid: i32, start: u64) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if state::proc_start_time(pid) != Some(start) {
        return false;
    }
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if state::proc_start_time(pid) != Some(start) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = kill(p, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    true
}

/// pids whose command line has `--config <config>` exactly.
fn procs_with_config(config: &Path) -> Vec<i32> {
    let want = config.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cl) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cl.split(|b| *b == 0).collect();
        if args.windows(2).any(|w| w[0] == b"--config" && w[1] == want)
            && args.iter().any(|a| *a == b"emu-run")
        {
            out.push(pid);
        }
    }
    out
}
