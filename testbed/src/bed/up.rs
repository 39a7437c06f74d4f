//! Up and down orchestration: the run folder, the topology, the daemons in
//! order; and taking all of it down again (also when `up` fails).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use topo::{StateDir, Topology, UpOptions};

use super::daemons::start_daemons;
use super::process::{default_bin_dir, find_bins, stop_proc};
use super::record::{load_all, save, state_dir, state_file, write_json};
use super::{io, BedError, BedState, UpOpts};
use crate::plan::Plan;

/// Brings the topology and every daemon up; returns once all are healthy.
/// On any failure or interrupt, everything made so far is removed again.
pub fn up(opts: &UpOpts) -> Result<BedState, BedError> {
    let topo = load_topology(opts)?;
    let mut plan = Plan::derive_with(&topo, &opts.plan)?;
    plan.issue_tokens();
    let bin_dir = opts.bin_dir.clone().unwrap_or_else(default_bin_dir);
    let bins = find_bins(&bin_dir, &plan)?;
    let state = state_dir(opts.state_dir.as_deref());
    let sf = state_file(&state, &topo.name);
    if sf.exists() {
        return Err(BedError::AlreadyUp(topo.name.clone()));
    }
    let started_unix = now_unix();
    let run_dir = prepare_run_dir(opts, started_unix, &plan)?;
    let cancel = opts.cancel.clone().unwrap_or_default();
    topo_up(&topo, &state, &cancel)?;
    let mut st = BedState {
        topology: topo.name.clone(),
        prefix: topo.prefix.clone(),
        state_dir: state.root().to_path_buf(),
        run_dir: run_dir.clone(),
        started_unix,
        namespaces: topo
            .nodes
            .iter()
            .map(|n| (n.name.clone(), topo.ns_name(&n.name)))
            .collect(),
        plan,
        procs: Vec::new(),
        ready: false,
    };
    let (log_dir, cfg_dir) = (run_dir.join("logs"), run_dir.join("configs"));
    let res = start_daemons(&mut st, &bins, &log_dir, &cfg_dir, opts, &cancel);
    match res {
        Ok(()) => {
            st.ready = true;
            save(&st)?;
            Ok(st)
        }
        Err(e) => {
            tracing::warn!("up failed, removing everything: {e}");
            teardown(&st);
            let _ = std::fs::remove_file(&sf);
            Err(e)
        }
    }
}

/// The topology of `opts` (default: the paper's), with its prefix.
fn load_topology(opts: &UpOpts) -> Result<Topology, BedError> {
    let mut topo = match &opts.topology {
        Some(p) => Topology::from_file(p)?,
        None => Topology::paper_default(),
    };
    if let Some(p) = &opts.prefix {
        topo = topo.with_prefix(p)?;
    }
    Ok(topo)
}

/// Makes the run folder with every daemon's configuration and the plan;
/// its absolute path.
fn prepare_run_dir(opts: &UpOpts, started_unix: u64, plan: &Plan) -> Result<PathBuf, BedError> {
    let run_dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("results/run-{}", utc_stamp(started_unix))));
    for d in [run_dir.join("configs"), run_dir.join("logs")] {
        std::fs::create_dir_all(&d).map_err(io("create", &d))?;
    }
    let run_dir = run_dir.canonicalize().map_err(io("resolve", &run_dir))?;
    let cfg_dir = run_dir.join("configs");
    for d in &plan.daemons {
        let p = cfg_dir.join(&d.config_file);
        std::fs::write(&p, &d.config).map_err(io("write", &p))?;
    }
    write_json(&run_dir.join("plan.json"), plan)?;
    Ok(run_dir)
}

/// Brings the topology up with topo; a cancel during it is [`BedError::Interrupted`].
fn topo_up(topo: &Topology, state: &StateDir, cancel: &Arc<AtomicBool>) -> Result<(), BedError> {
    let up_opts = UpOptions {
        state_dir: Some(state.root().to_path_buf()),
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let t0 = Instant::now();
    match topo::up(topo, &up_opts) {
        Ok(_) => {}
        Err(topo::TopoError::Interrupted) => return Err(BedError::Interrupted),
        Err(topo::TopoError::UpFailed { source, .. })
            if matches!(*source, topo::TopoError::Interrupted) =>
        {
            return Err(BedError::Interrupted)
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!("topology `{}` up in {:?}", topo.name, t0.elapsed());
    Ok(())
}

/// Stops the daemons (reverse order) and removes the topology.
fn teardown(st: &BedState) -> (usize, usize) {
    let mut stopped = 0;
    for p in st.procs.iter().rev() {
        if stop_proc(p.pid, p.start, Duration::from_secs(5)) {
            stopped += 1;
        }
    }
    let state = StateDir::new(&st.state_dir);
    let ns = match topo::down(&st.topology, &state) {
        Ok(r) => r.namespaces,
        Err(e) => {
            tracing::error!("topo down `{}`: {e}", st.topology);
            0
        }
    };
    (stopped, ns)
}

/// What `down` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DownSummary {
    /// Topologies taken down.
    pub topologies: Vec<String>,
    /// Daemons stopped.
    pub daemons: usize,
    /// Namespaces removed.
    pub namespaces: usize,
}

/// Brings the testbed up, runs `f` on it, and takes it down again unless
/// `keep` and `f` succeeded: everything made is removed also when `f`
/// fails. `f`'s result, and whether the testbed was kept.
pub fn up_run_down<T>(
    opts: &UpOpts,
    keep: bool,
    on_progress: &mut dyn FnMut(&str),
    f: impl FnOnce(&BedState, &mut dyn FnMut(&str)) -> Result<T, BedError>,
) -> Result<(T, bool), BedError> {
    let st = up(opts)?;
    on_progress(&format!(
        "testbed `{}` is up (run folder {})",
        st.topology,
        st.run_dir.display()
    ));
    let r = f(&st, on_progress);
    let kept = keep && r.is_ok();
    if !kept {
        down(opts.state_dir.as_deref())?;
        on_progress("testbed down: every daemon stopped, every namespace removed");
    }
    Ok((r?, kept))
}

/// Stops every testbed of the state dir. Harmless when nothing is up.
pub fn down(state_dir_opt: Option<&Path>) -> Result<DownSummary, BedError> {
    let mut sum = DownSummary::default();
    let state = state_dir(state_dir_opt);
    for st in load_all(state_dir_opt)? {
        let (d, n) = teardown(&st);
        sum.daemons += d;
        sum.namespaces += n;
        sum.topologies.push(st.topology.clone());
        let f = state_file(&state, &st.topology);
        std::fs::remove_file(&f).map_err(io("remove", &f))?;
    }
    Ok(sum)
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub fn utc_stamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_795_564_800 + 3661), "20261125-010101");
    }
}
