//! Starting the daemons of a testbed in plan order (each recorded and
//! journaled before it is waited for), and restarting one.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use topo::StateDir;

use super::process::{alive, default_bin_dir, spawn_daemon, stop_proc};
use super::ready::wait_ready;
use super::record::{journal_proc, load_one, save};
use super::{BedError, BedState, ProcRec, UpOpts};
use crate::plan::Role;

/// Starts every daemon of the plan in order, each once the one before is
/// healthy. `bins`: the binary of each role.
pub(super) fn start_daemons(
    st: &mut BedState,
    bins: &[(Role, PathBuf)],
    log_dir: &Path,
    cfg_dir: &Path,
    opts: &UpOpts,
    cancel: &AtomicBool,
) -> Result<(), BedError> {
    save(st)?;
    let timeout = opts.ready_timeout.unwrap_or(Duration::from_secs(20));
    let plan = st.plan.clone();
    for d in &plan.daemons {
        if cancel.load(Ordering::SeqCst) {
            return Err(BedError::Interrupted);
        }
        let bin = bins
            .iter()
            .find(|(r, _)| *r == d.role)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let rec = ProcRec {
            name: d.name.clone(),
            role: d.role,
            node: d.node.clone(),
            netns: st.ns(&d.node),
            pid: 0,
            start: 0,
            config: cfg_dir.join(&d.config_file),
            log: log_dir.join(format!("{}.log", d.name)),
            api: d.api.to_string(),
            args: d
                .args
                .iter()
                .map(|a| a.replace("@RUN@", &st.run_dir.display().to_string()))
                .collect(),
        };
        let idx = st.procs.len();
        let (mut child, rec) = launch(st, idx, rec, &bin, false)?;
        tracing::info!(daemon = %d.name, pid = rec.pid, "started; waiting until ready");
        let took = wait_ready(st, &rec, &mut child, timeout, Some(cancel))?;
        tracing::info!(daemon = %d.name, "ready in {took:?}");
    }
    Ok(())
}

/// Starts the daemon of `rec` (its log appended to or truncated), records it
/// with its pid and start time at `st.procs[idx]` (a new entry when `idx` is
/// the length), saves the state, and journals the pid with topo.
fn launch(
    st: &mut BedState,
    idx: usize,
    rec: ProcRec,
    bin: &Path,
    append_log: bool,
) -> Result<(Child, ProcRec), BedError> {
    let child = spawn_daemon(
        &rec.netns,
        bin,
        &rec.config,
        &rec.args,
        &rec.log,
        append_log,
    )?;
    let pid = child.id() as i32;
    let start = topo::state::proc_start_time(pid).unwrap_or(0);
    let rec = ProcRec { pid, start, ..rec };
    if idx == st.procs.len() {
        st.procs.push(rec.clone());
    } else {
        st.procs[idx] = rec.clone();
    }
    save(st)?;
    journal_proc(
        &StateDir::new(&st.state_dir),
        &st.topology,
        pid,
        start,
        &rec.config,
    );
    Ok((child, rec))
}

/// Stops one daemon (SIGKILL at once with `kill`, as a crash would) and
/// starts it again with the same configuration, appending to its log;
/// returns once it passes its health check.
pub fn restart(
    state_dir_opt: Option<&Path>,
    bin_dir: Option<&Path>,
    name: &str,
    kill: bool,
    timeout: Duration,
) -> Result<ProcRec, BedError> {
    let mut st = load_one(state_dir_opt)?;
    let idx = st
        .procs
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| {
            let known: Vec<_> = st.procs.iter().map(|p| p.name.as_str()).collect();
            BedError::Usage(format!(
                "no daemon `{name}` (daemons: {})",
                known.join(", ")
            ))
        })?;
    let old = st.procs[idx].clone();
    if kill {
        kill_now(&old);
    } else {
        stop_proc(old.pid, old.start, Duration::from_secs(5));
    }
    let bin = bin_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(default_bin_dir)
        .join(old.role.binary());
    let (mut child, rec) = launch(&mut st, idx, old, &bin, true)?;
    wait_ready(&st, &rec, &mut child, timeout, None)?;
    Ok(rec)
}

/// SIGKILL, then waits (up to 5 s) until it is gone.
fn kill_now(p: &ProcRec) {
    if alive(p) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let t = Instant::now();
        while alive(p) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
