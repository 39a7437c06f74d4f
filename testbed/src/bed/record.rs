//! The record of what is up: the state file (and its copy in the run
//! folder), and each daemon in topo's journal of the topology.

use std::path::{Path, PathBuf};

use serde::Serialize;
use topo::StateDir;

use super::{io, BedError, BedState};

pub(super) fn state_dir(opt: Option<&Path>) -> StateDir {
    match opt {
        Some(p) => StateDir::new(p),
        None => StateDir::from_env(),
    }
}

fn bed_dir(state: &StateDir) -> PathBuf {
    state.root().join("testbed")
}

pub(super) fn state_file(state: &StateDir, topo_name: &str) -> PathBuf {
    bed_dir(state).join(format!("{topo_name}.json"))
}

pub(super) fn write_json(path: &Path, v: &impl Serialize) -> Result<(), BedError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| BedError::Io {
        what: "serialize",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename to", path))
}

pub(super) fn save(st: &BedState) -> Result<(), BedError> {
    let state = StateDir::new(&st.state_dir);
    let dir = bed_dir(&state);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    write_json(&state_file(&state, &st.topology), st)?;
    write_json(&st.run_dir.join("testbed.json"), st)
}

/// Every testbed recorded in a state dir.
pub fn load_all(state_dir_opt: Option<&Path>) -> Result<Vec<BedState>, BedError> {
    let state = state_dir(state_dir_opt);
    let dir = bed_dir(&state);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    let mut v = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(io("read", &p))?;
        match serde_json::from_str::<BedState>(&text) {
            Ok(s) => v.push(s),
            Err(e) => tracing::warn!("ignoring unreadable state file {}: {e}", p.display()),
        }
    }
    v.sort_by(|a, b| a.topology.cmp(&b.topology));
    Ok(v)
}

/// The one testbed that is up (the first if several).
pub fn load_one(state_dir_opt: Option<&Path>) -> Result<BedState, BedError> {
    let st = state_dir(state_dir_opt);
    load_all(state_dir_opt)?
        .into_iter()
        .next()
        .ok_or_else(|| BedError::NotUp(st.root().display().to_string()))
}

/// Appends a daemon to topo's journal, so that `topo down` stops it too.
pub(super) fn journal_proc(state: &StateDir, name: &str, pid: i32, start: u64, cfg: &Path) {
    let r = (|| -> Result<(), topo::state::StateError> {
        let _lock = state.lock(name, true)?;
        let mut j = topo::state::Journal::open(state, name)?;
        j.append(&[topo::state::Entry::Proc {
            pid,
            start,
            config: cfg.to_path_buf(),
        }])
    })();
    if let Err(e) = r {
        tracing::warn!("could not journal pid {pid} with topo: {e}");
    }
}
