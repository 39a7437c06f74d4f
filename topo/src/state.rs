//! The state directory: one subdirectory per topology that is up (or was
//! being brought up), holding a write-ahead journal of everything made.
//!
//! Every namespace and process is journaled *before* it is created, so a
//! crash (even SIGKILL) in the middle of `up` leaves nothing that
//! `down --all` cannot find.
//!
//! Every method that takes a topology name checks it first
//! ([`crate::names::topology`]): a name is one path component below
//! `topologies/` (and `locks/`), never `..` or a path, so nothing outside the
//! state directory is ever read, written or removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::{self, NameError};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/minedge";
/// Environment variable overriding the state directory.
pub const STATE_DIR_ENV: &str = "MINEDGE_STATE_DIR";

/// A state directory error.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O error on a state file.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A topology name that is not a plain name (e.g. `../..`).
    #[error("{0}")]
    BadName(#[from] NameError),
    /// A state file could not be parsed.
    #[error("corrupt state file {}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Entry {
    /// A namespace about to be created, with the mark set on its `lo` alias.
    Netns {
        /// Namespace name.
        name: String,
        /// The mark (`minedge:<topology>:<token>`).
        mark: String,
    },
    /// An emulator process about to be spawned with this config file.
    EmuIntent {
        /// Config path (unique; appears on the process's command line).
        config: PathBuf,
    },
    /// A spawned process.
    Proc {
        /// pid.
        pid: i32,
        /// Start time (field 22 of /proc/PID/stat) to detect pid reuse.
        start: u64,
        /// Its config file.
        config: PathBuf,
    },
    /// `up` finished.
    Complete,
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl Default for StateDir {
    fn default() -> Self {
        Self::from_env()
    }
}

impl StateDir {
    /// At `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `$MINEDGE_STATE_DIR` or `/run/minedge`.
    pub fn from_env() -> Self {
        match std::env::var_os(STATE_DIR_ENV) {
            Some(v) if !v.is_empty() => Self::new(v),
            _ => Self::new(DEFAULT_STATE_DIR),
        }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of one topology (the name checked: one plain path component).
    pub fn topo_dir(&self, name: &str) -> Result<PathBuf, StateError> {
        names::topology(name)?;
        Ok(self.root.join("topologies").join(name))
    }

    /// Whether `name` is a topology recorded here: a valid name with a real
    /// directory (not a symbolic link) under `topologies/`.
    pub fn recorded(&self, name: &str) -> Result<bool, StateError> {
        let d = self.topo_dir(name)?;
        match std::fs::symlink_metadata(&d) {
            Ok(m) => Ok(m.file_type().is_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("inspect", &d)(e)),
        }
    }

    /// Names of all topologies that have state (up, or interrupted).
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let dir = self.root.join("topologies");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &dir)(e)),
        };
        // Real directories with valid names only: a symbolic link or a
        // stray file someone put there is not a topology of ours.
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| names::topology(n).is_ok())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Takes the exclusive lock of a topology (released on drop, or when the process dies).
    pub fn lock(&self, name: &str, wait: bool) -> Result<Option<TopoLock>, StateError> {
        names::topology(name)?;
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let p = dir.join(format!("{name}.lock"));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io("open", &p))?;
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        // SAFETY: flock on a valid fd we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(io("lock", &p)(e));
        }
        Ok(Some(TopoLock { _f: f }))
    }

    /// Reads the journal of a topology (empty if none).
    pub fn read_journal(&self, name: &str) -> Result<Vec<Entry>, StateError> {
        let p = self.topo_dir(name)?.join("journal.jsonl");
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &p)(e)),
        };
        let mut out = Vec::new();
        for l in text.lines() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(l) {
                Ok(e) => out.push(e),
                // A torn last line after a crash: everything before it counts.
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Writes a JSON file in the topology's directory (atomically).
    pub fn write_json<T: Serialize>(
        &self,
        name: &str,
        file: &str,
        v: &T,
    ) -> Result<(), StateError> {
        let dir = self.topo_dir(name)?;
        let p = dir.join(file);
        let tmp = dir.join(format!(".{file}.tmp"));
        let data = serde_json::to_vec_pretty(v).map_err(|e| StateError::Corrupt {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, data).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(io("rename", &p))
    }

    /// Reads a JSON file of a topology.
    pub fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
        file: &str,
    ) -> Result<Option<T>, StateError> {
        let p = self.topo_dir(name)?.join(file);
        match std::fs::read(&p) {
            Ok(d) => serde_json::from_slice(&d)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: p,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Removes a topology's directory.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        let d = self.topo_dir(name)?;
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &d)(e)),
        }
    }
}

/// Held while a topology is being changed.
#[derive(Debug)]
pub struct TopoLock {
    _f: File,
}

/// An open journal (append-only; each record is one `write`, so a SIGKILL
/// leaves whole records in the page cache).
#[derive(Debug)]
pub struct Journal {
    f: File,
    path: PathBuf,
}

impl Journal {
    /// Creates the topology directory and opens its journal for appending.
    pub fn open(state: &StateDir, name: &str) -> Result<Journal, StateError> {
        let dir = state.topo_dir(name)?;
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = dir.join("journal.jsonl");
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        Ok(Journal { f, path })
    }

    /// Appends records in one write.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StateError> {
        let mut buf = Vec::new();
        for e in entries {
            // Serializing these plain enums cannot fail.
            let line = serde_json::to_string(e).unwrap_or_default();
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        self.f.write_all(&buf).map_err(io("append to", &self.path))
    }
}

/// Start time of a process (field 22 of /proc/PID/stat), None if it is gone or a zombie.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state).
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// A short random token (from /dev/urandom, falling back to time and pid).
pub fn token() -> String {
    let mut b = [0u8; 8];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = ((t as u64) ^ ((std::process::id() as u64) << 32)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
