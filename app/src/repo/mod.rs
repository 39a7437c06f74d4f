//! Application packages, the repositories that hold them (cloud and edge),
//! and the cloud repository's HTTP server, `app repo-server`.
//!
//! # Package format
//!
//! One file, a header then the application image:
//!
//! ```text
//! offset   size  field
//! 0        8     magic "MEAPKG1\n"
//! 8        4     manifest length L, u32 big-endian, 2..=65536
//! 12       L     manifest, UTF-8 JSON (see [`Manifest`])
//! 12+L     N     payload, the application image; N = manifest.payload_size
//! ```
//!
//! Nothing follows the payload. The manifest is
//! `{"name", "version", "entry", "args", "payload_size", "sha256"}`: `entry`
//! is the kind of instance to run (`"snake"` is the only one the agent knows:
//! it runs `app instance`), `args` the instance's default flags (flag name
//! without `--` -> value, e.g. `{"fps": "60"}`; a start request overrides
//! them), `sha256` the lowercase hex SHA-256 of the payload.
//!
//! # Repository layout
//!
//! ```text
//! <dir>/<name>/package.mea    the package, byte for byte as published / pulled
//! <dir>/<name>/manifest.json  its manifest, for listing without reading the package
//! <dir>/.staging-<name>-<pid>-<n>/   an install in progress (never listed)
//! ```
//!
//! An install streams into a staging directory, checks the size and the
//! checksum, and only then renames the staging directory to `<dir>/<name>`:
//! an application directory is complete or absent. A failed install removes
//! its staging directory; one left by a crashed process is removed by the
//! next [`Repository::open`].
//!
//! # `app repo-server`
//!
//! `GET /apps` (JSON list of [`AppInfo`]), `GET /apps/{name}` (the package,
//! streamed, with Content-Length), `GET /metrics`, `GET /healthz`. Errors are
//! JSON `{"error": ...}`; an unknown application is a 404 that names it.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// The package magic.
pub const MAGIC: [u8; 8] = *b"MEAPKG1\n";
/// Largest manifest accepted.
pub const MAX_MANIFEST: u32 = 65536;
/// The package file's name inside an application directory.
pub const PACKAGE_FILE: &str = "package.mea";
/// The manifest copy's name inside an application directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The entry kind of the snake game.
pub const SNAKE_ENTRY: &str = "snake";
/// Version of the snake package `--publish-snake` creates.
pub const SNAKE_VERSION: &str = "1.0.0";

const CHUNK: usize = 256 * 1024;
const STAGING_PREFIX: &str = ".staging-";

/// Errors of packages and repositories.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A file system operation on the repository failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the package from its source (e.g. the network) failed.
    #[error("reading the package failed after {got} bytes: {source}")]
    Read {
        got: u64,
        #[source]
        source: io::Error,
    },
    /// An application name that cannot be a directory name.
    #[error("invalid application name {0:?}: 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.'")]
    BadName(String),
    /// The source does not start with [`MAGIC`].
    #[error("not an application package (bad magic)")]
    BadMagic,
    /// The manifest does not parse or is inconsistent.
    #[error("bad package manifest: {0}")]
    BadManifest(String),
    /// The package is of another application than the one asked for.
    #[error("package is of application {found:?}, expected {expected:?}")]
    NameMismatch { expected: String, found: String },
    /// The package ended early.
    #[error("package truncated: {expected} bytes expected, {got} received")]
    Truncated { expected: u64, got: u64 },
    /// Bytes after the payload, or a Content-Length that disagrees.
    #[error("package size mismatch: {0}")]
    SizeMismatch(String),
    /// The payload's hash differs from the manifest's.
    #[error("checksum mismatch for {name:?}: manifest says sha256 {expected}, payload hashes to {actual}")]
    Checksum {
        name: String,
        expected: String,
        actual: String,
    },
    /// The install was cancelled (the process is stopping).
    #[error("install cancelled")]
    Cancelled,
    /// A size such as "32MiB" that does not parse.
    #[error("bad size {0:?} (examples: 1048576, 512KiB, 32MiB, 1GiB, 10MB)")]
    BadSize(String),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A package's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Application name (also its directory name).
    pub name: String,
    /// Free-form version.
    pub version: String,
    /// Which kind of instance runs it (`"snake"`).
    pub entry: String,
    /// Default instance flags (name without `--` -> value).
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Payload size in bytes.
    pub payload_size: u64,
    /// Lowercase hex SHA-256 of the payload.
    pub sha256: String,
}

impl Manifest {
    /// The header (magic, length, manifest JSON) that precedes the payload.
    pub fn header(&self) -> Vec<u8> {
        // Serializing a struct of strings, a map of strings and an integer
        // cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + json.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Total package size: header plus payload.
    pub fn package_size(&self) -> u64 {
        self.header().len() as u64 + self.payload_size
    }

    fn check(&self) -> Result<(), RepoError> {
        check_name(&self.name).map_err(|e| RepoError::BadManifest(e.to_string()))?;
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(RepoError::BadManifest(format!(
                "sha256 {:?} is not 64 lowercase hex digits",
                self.sha256
            )));
        }
        if self.entry.is_empty() {
            return Err(RepoError::BadManifest("empty entry".into()));
        }
        Ok(())
    }
}

/// Reads and checks a package header; returns the manifest and the header's
/// length in bytes.
pub fn read_header(src: &mut impl Read) -> Result<(Manifest, u64), RepoError> {
    let mut fixed = [0u8; 12];
    read_full(src, &mut fixed, 0, 12)?;
    if fixed[..8] != MAGIC {
        return Err(RepoError::BadMagic);
    }
    let len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if !(2..=MAX_MANIFEST).contains(&len) {
        return Err(RepoError::BadManifest(format!(
            "manifest length {len} out of range 2..={MAX_MANIFEST}"
        )));
    }
    let mut json = vec![0u8; len as usize];
    read_full(src, &mut json, 12, 12 + u64::from(len))?;
    let m: Manifest =
        serde_json::from_slice(&json).map_err(|e| RepoError::BadManifest(e.to_string()))?;
    m.check()?;
    Ok((m, 12 + u64::from(len)))
}

/// `read_exact` that reports truncation and read errors with byte counts.
fn read_full(
    src: &mut impl Read,
    buf: &mut [u8],
    before: u64,
    expected: u64,
) -> Result<(), RepoError> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => {
                return Err(RepoError::Truncated {
                    expected,
                    got: before + n as u64,
                })
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(RepoError::Read {
                    got: before + n as u64,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Checks that `name` can be an application (directory) name.
pub fn check_name(name: &str) -> Result<(), RepoError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RepoError::BadName(name.to_owned()))
    }
}

/// Parses a size: a number of bytes with an optional unit (B, KiB, MiB,
/// GiB, KB, MB, GB; case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, RepoError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| RepoError::BadSize(s.into()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(RepoError::BadSize(s.into())),
    };
    n.checked_mul(mult)
        .ok_or_else(|| RepoError::BadSize(s.into()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A deterministic, incompressible application image: `size` bytes of a
/// splitmix64 stream seeded from `seed`. Two calls with the same arguments
/// give the same bytes.
pub struct ImageGen {
    state: u64,
    remaining: u64,
    pending: [u8; 8],
    pending_len: usize,
}

impl ImageGen {
    /// An image of `size` bytes; `seed` names it (e.g. "snake 1.0.0").
    pub fn new(seed: &str, size: u64) -> Self {
        // FNV-1a of the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        ImageGen {
            state: h,
            remaining: size,
            pending: [0; 8],
            pending_len: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Read for ImageGen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let mut n = 0;
        while n < want {
            if self.pending_len == 0 {
                self.pending = self.next().to_le_bytes();
                self.pending_len = 8;
            }
            let take = (want - n).min(self.pending_len);
            let start = 8 - self.pending_len;
            buf[n..n + take].copy_from_slice(&self.pending[start..start + take]);
            self.pending_len -= take;
            n += take;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// One application in a repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Application name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Entry kind.
    pub entry: String,
    /// Package size in bytes (what a pull transfers).
    pub size: u64,
    /// Payload size in bytes.
    pub payload_size: u64,
    /// Payload SHA-256, hex.
    pub sha256: String,
}

impl AppInfo {
    fn from_manifest(m: &Manifest) -> Self {
        AppInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            entry: m.entry.clone(),
            size: m.package_size(),
            payload_size: m.payload_size,
            sha256: m.sha256.clone(),
        }
    }
}

/// An installed application.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its directory.
    pub dir: PathBuf,
    /// Its package file.
    pub package: PathBuf,
}

/// What [`Repository::install`] did.
#[derive(Debug, Clone)]
pub struct InstallOutcome {
    /// The installed application.
    pub installed: Installed,
    /// Bytes read from the source.
    pub bytes: u64,
    /// True when another install of the same application finished first
    /// (this one's copy was dropped).
    pub raced: bool,
}

/// A repository of applications on disk (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct Repository {
    dir: PathBuf,
    staging: Arc<Mutex<HashSet<PathBuf>>>,
    counter: Arc<AtomicU64>,
}

/// Removes a staging directory unless disarmed.
struct StagingGuard<'a> {
    repo: &'a Repository,
    path: PathBuf,
    armed: bool,
}

impl Drop for StagingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
        if let Ok(mut s) = self.repo.staging.lock() {
            s.remove(&self.path);
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Repository {
    /// Opens (creating it if needed) the repository at `dir`, and removes
    /// staging directories left by processes that no longer exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, RepoError> {
        let dir: PathBuf = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let dir = fs::canonicalize(&dir).map_err(io_err(&dir))?;
        let me = std::process::id() as i32;
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
                continue;
            };
            // ".staging-<name>-<pid>-<n>": the pid is the second last field.
            let pid = rest
                .rsplit('-')
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok())
                .unwrap_or(0);
            if pid == 0 || (pid != me && !pid_alive(pid)) {
                info!(path = %e.path().display(), "removing a stale staging directory");
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(Repository {
            dir,
            staging: Arc::default(),
            counter: Arc::default(),
        })
    }

    /// The repository's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The installed application `name`, if any.
    pub fn get(&self, name: &str) -> Result<Option<Installed>, RepoError> {
        check_name(name)?;
        let dir = self.dir.join(name);
        let mpath = dir.join(MANIFEST_FILE);
        let text = match fs::read(&mpath) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&mpath)(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| RepoError::BadManifest(format!("{}: {e}", mpath.display())))?;
        if manifest.name != name {
            return Err(RepoError::NameMismatch {
                expected: name.into(),
                found: manifest.name,
            });
        }
        let package = dir.join(PACKAGE_FILE);
        Ok(Some(Installed {
            manifest,
            dir,
            package,
        }))
    }

    /// All installed applications, sorted by name. Entries that are not
    /// well-formed application directories are skipped.
    pub fn list(&self) -> Result<Vec<AppInfo>, RepoError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let e = e.map_err(io_err(&self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_err() {
                continue;
            }
            match self.get(&name) {
                Ok(Some(i)) => out.push(AppInfo::from_manifest(&i.manifest)),
                Ok(None) => {}
                Err(err) => warn!(%name, "skipping a broken application directory: {err}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Staging directories of installs in progress.
    pub fn staging_dirs(&self) -> Vec<PathBuf> {
        self.staging
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes the staging directories of installs in progress (used when
    /// the process stops); those installs then fail.
    pub fn abort_staging(&self) {
        for p in self.staging_dirs() {
            let _ = fs::remove_dir_all(&p);
        }
    }

    /// A fresh staging path for `name`: `.staging-<name>-<pid>-<n>`.
    fn staging_path(&self, name: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{STAGING_PREFIX}{name}-{}-{n}", std::process::id()))
    }

    fn new_staging(&self, name: &str) -> Result<StagingGuard<'_>, RepoError> {
        let path = self.staging_path(name);
        if let Ok(mut s) = self.staging.lock() {
            s.insert(path.clone());
        }
        let guard = StagingGuard {
            repo: self,
            path: path.clone(),
            armed: true,
        };
        fs::create_dir(&path).map_err(io_err(&path))?;
        Ok(guard)
    }

    /// Installs application `name` from a package stream: streams it into a
    /// staging directory while hashing the payload, checks the name, the
    /// size (`content_length` if known, and end of stream right after the
    /// payload) and the checksum, then renames the staging directory into
    /// place. On any error nothing is left. `cancel` is polled between
    /// chunks.
    pub fn install(
        &self,
        name: &str,
        mut src: impl Read,
        content_length: Option<u64>,
        cancel: &AtomicBool,
    ) -> Result<InstallOutcome, RepoError> {
        check_name(name)?;
        let (manifest, header_len) = read_header(&mut src)?;
        if manifest.name != name {
            return Err(RepoError::NameMismatch {
                expected: name.into(),
                found: manifest.name,
            });
        }
        let total = header_len + manifest.payload_size;
        if let Some(cl) = content_length {
            if cl != total {
                return Err(RepoError::SizeMismatch(format!(
                    "Content-Length {cl} but the manifest makes {total} bytes"
                )));
            }
        }
        let mut guard = self.new_staging(name)?;
        let ppath = guard.path.join(PACKAGE_FILE);
        let file = File::create(&ppath).map_err(io_err(&ppath))?;
        let mut out = BufWriter::with_capacity(CHUNK, file);
        out.write_all(&manifest.header()).map_err(io_err(&ppath))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut got = header_len;
        while got < total {
            if cancel.load(Ordering::Relaxed) {
                return Err(RepoError::Cancelled);
            }
            let want = ((total - got) as usize).min(CHUNK);
            let k = match src.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(RepoError::Truncated {
                        expected: total,
                        got,
                    })
                }
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(RepoError::Read { got, source }),
            };
            hasher.update(&buf[..k]);
            out.write_all(&buf[..k]).map_err(io_err(&ppath))?;
            got += k as u64;
        }
        // The stream must end here.
        let mut one = [0u8; 1];
        loop {
            match src.read(&mut one) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(RepoError::SizeMismatch(format!(
                        "bytes after the {total}-byte package"
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(RepoError::Read { got, source }),
            }
        }
        let actual = hex(&hasher.finalize());
        if actual != manifest.sha256 {
            return Err(RepoError::Checksum {
                name: name.into(),
                expected: manifest.sha256,
                actual,
            });
        }
        let file = out
            .into_inner()
            .map_err(|e| io_err(&ppath)(e.into_error()))?;
        file.sync_all().map_err(io_err(&ppath))?;
        drop(file);
        self.finish(&mut guard, &manifest, got)
    }

    /// Writes the manifest copy and renames the staging directory into place.
    fn finish(
        &self,
        guard: &mut StagingGuard<'_>,
        manifest: &Manifest,
        bytes: u64,
    ) -> Result<InstallOutcome, RepoError> {
        let name = &manifest.name;
        let mpath = guard.path.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(manifest).unwrap_or_default();
        let mut f = File::create(&mpath).map_err(io_err(&mpath))?;
        f.write_all(&json).map_err(io_err(&mpath))?;
        f.sync_all().map_err(io_err(&mpath))?;
        let target = self.dir.join(name);
        let raced = match fs::rename(&guard.path, &target) {
            Ok(()) => {
                guard.armed = false;
                false
            }
            // Another install of the same application won (ENOTEMPTY/EEXIST).
            Err(_) if target.join(MANIFEST_FILE).exists() => true,
            Err(e) => return Err(io_err(&target)(e)),
        };
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        let installed = self.get(name)?.ok_or_else(|| RepoError::Io {
            path: target.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "vanished after install"),
        })?;
        Ok(InstallOutcome {
            installed,
            bytes,
            raced,
        })
    }

    /// Removes the installed application `name`: renames its directory to a
    /// staging name (so that it is gone for [`Repository::get`] at once, and
    /// a removal cut short is cleaned up by the next [`Repository::open`]),
    /// then deletes it. Returns its manifest, or None if it was not there.
    pub fn remove(&self, name: &str) -> Result<Option<Manifest>, RepoError> {
        let Some(installed) = self.get(name)? else {
            return Ok(None);
        };
        let trash = self.staging_path(name);
        fs::rename(&installed.dir, &trash).map_err(io_err(&installed.dir))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        fs::remove_dir_all(&trash).map_err(io_err(&trash))?;
        Ok(Some(installed.manifest))
    }

    /// Publishes a package built from a payload: `payload` is called twice
    /// (once to hash, once to write) and must give the same bytes both times.
    /// Replaces an installed application of the same name.
    pub fn publish<R: Read>(
        &self,
        name: &str,
        version: &str,
        entry: &str,
        args: BTreeMap<String, String>,
        mut payload: impl FnMut() -> R,
    ) -> Result<AppInfo, RepoError> {
        check_name(name)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        let mut src = payload();
        loop {
            let k = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(RepoError::Read { got: size, source }),
            };
            hasher.update(&buf[..k]);
            size += k as u64;
        }
        let manifest = Manifest {
            name: name.into(),
            version: version.into(),
            entry: entry.into(),
            args,
            payload_size: size,
            sha256: hex(&hasher.finalize()),
        };
        let mut package = io::Cursor::new(manifest.header()).chain(payload().take(size));
        // Remove an older version first (a publisher owns its repository).
        let old = self.dir.join(name);
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        let never = AtomicBool::new(false);
        let outcome = self.install(name, &mut package, Some(manifest.package_size()), &never)?;
        Ok(AppInfo::from_manifest(&outcome.installed.manifest))
    }

    /// Publishes the snake game with a deterministic `size`-byte image,
    /// unless a snake of that payload size is already there. Returns the
    /// package info and whether it was (re)created.
    pub fn publish_snake(&self, size: u64) -> Result<(AppInfo, bool), RepoError> {
        if let Some(i) = self.get(SNAKE_ENTRY)? {
            if i.manifest.payload_size == size && i.package.exists() {
                return Ok((AppInfo::from_manifest(&i.manifest), false));
            }
        }
        let args: BTreeMap<String, String> = [("width", "640"), ("height", "360"), ("fps", "60")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let seed = format!("{SNAKE_ENTRY} {SNAKE_VERSION}");
        let info = self.publish(SNAKE_ENTRY, SNAKE_VERSION, SNAKE_ENTRY, args, || {
            ImageGen::new(&seed, size)
        })?;
        Ok((info, true))
    }

    /// Re-reads an installed package and checks its header and checksum.
    pub fn verify(&self, name: &str) -> Result<Manifest, RepoError> {
        let i = self.get(name)?.ok_or_else(|| RepoError::Io {
            path: self.dir.join(name),
            source: io::Error::new(io::ErrorKind::NotFound, "not installed"),
        })?;
        let mut f = File::open(&i.package).map_err(io_err(&i.package))?;
        let (m, _) = read_header(&mut f)?;
        let mut hasher = Sha256::new();
        let n = io::copy(&mut f, &mut HashWriter(&mut hasher)).map_err(io_err(&i.package))?;
        if n != m.payload_size {
            return Err(RepoError::Truncated {
                expected: m.payload_size,
                got: n,
            });
        }
        let actual = hex(&hasher.finalize());
        if actual != m.sha256 {
            return Err(RepoError::Checksum {
                name: name.into(),
                expected: m.sha256,
                actual,
            });
        }
        Ok(m)
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ----- `app repo-server` -----

/// Command-line arguments of `app repo-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoServerArgs {
    /// HTTP listen address.
    #[arg(long, default_value = "0.0.0.0:7310")]
    pub listen: SocketAddr,
    /// Repository directory (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Create the snake package with a deterministic image of this size at
    /// start if missing (e.g. 64MiB); 0 publishes nothing.
    #[arg(long, default_value = "32MiB", value_parser = parse_size_arg)]
    pub publish_snake: u64,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

#[derive(Default)]
struct ServerMetrics {
    requests: AtomicU64,
    downloads: AtomicU64,
    downloads_complete: AtomicU64,
    bytes_sent: AtomicU64,
    not_found: AtomicU64,
}

struct ServerState {
    repo: Repository,
    m: ServerMetrics,
}

/// A JSON error response `{"error": ...}`.
struct JsonError(StatusCode, String);

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// A running repository server.
pub struct RepoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The repository it serves.
    pub repo: Repository,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RepoServer {
    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Opens the repository, publishes the snake if asked, binds and serves on
/// the current runtime.
pub async fn start(args: &RepoServerArgs) -> Result<RepoServer, RepoError> {
    let repo = Repository::open(&args.dir)?;
    if args.publish_snake > 0 {
        let r = repo.clone();
        let size = args.publish_snake;
        let (info, created) = tokio::task::spawn_blocking(move || r.publish_snake(size))
            .await
            .map_err(|e| RepoError::Io {
                path: args.dir.clone(),
                source: io::Error::other(e.to_string()),
            })??;
        info!(
            size = info.size,
            sha256 = %info.sha256,
            created,
            "snake package ready"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| RepoError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RepoError::Bind {
        addr: args.listen,
        source,
    })?;
    let state = Arc::new(ServerState {
        repo: repo.clone(),
        m: ServerMetrics::default(),
    });
    let router = Router::new()
        .route("/apps", get(list_apps))
        .route("/apps/{name}", get(get_app))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async {
            JsonError(
                StatusCode::NOT_FOUND,
                "no such endpoint (see GET /apps, /apps/{name}, /metrics)".into(),
            )
        })
        .with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = r {
            warn!("repository server stopped: {e}");
        }
    });
    Ok(RepoServer {
        addr,
        repo,
        stop: Some(tx),
        task,
    })
}

async fn list_apps(State(s): State<Arc<ServerState>>) -> Result<Json<Vec<AppInfo>>, JsonError> {
    s.m.requests.fetch_add(1, Ordering::Relaxed);
    let repo = s.repo.clone();
    tokio::task::spawn_blocking(move || repo.list())
        .await
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn get_app(
    State(s): State<Arc<ServerState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, JsonError> {
    s.m.requests.fetch_add(1, Ordering::Relaxed);
    let not_found = |s: &ServerState, name: &str| {
        s.m.not_found.fetch_add(1, Ordering::Relaxed);
        JsonError(
            StatusCode::NOT_FOUND,
            format!("application {name:?} is not in this repository"),
        )
    };
    if check_name(&name).is_err() {
        return Err(not_found(&s, &name));
    }
    let installed = s
        .repo
        .get(&name)
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| not_found(&s, &name))?;
    let file = File::open(&installed.package).map_err(|e| {
        JsonError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", installed.package.display()),
        )
    })?;
    let len = file
        .metadata()
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .len();
    s.m.downloads.fetch_add(1, Ordering::Relaxed);
    // A reader thread feeds a small channel; the body stream drains it. The
    // thread ends when the client goes away (send fails) or at end of file.
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(4);
    let st = s.clone();
    std::thread::spawn(move || {
        let mut file = file;
        let mut sent = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    buf.truncate(k);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                    sent += k as u64;
                    st.m.bytes_sent.fetch_add(k as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if sent == len {
            st.m.downloads_complete.fetch_add(1, Ordering::Relaxed);
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = axum::body::Body::from_stream(stream);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

async fn metrics(State(s): State<Arc<ServerState>>) -> String {
    let apps = s.repo.list().map(|l| l.len()).unwrap_or(0);
    let m = &s.m;
    let mut o = String::new();
    let rows: [(&str, &str, &str, u64); 6] = [
        (
            "repo_requests_total",
            "counter",
            "HTTP requests on /apps*",
            m.requests.load(Ordering::Relaxed),
        ),
        (
            "repo_downloads_total",
            "counter",
            "package downloads started",
            m.downloads.load(Ordering::Relaxed),
        ),
        (
            "repo_downloads_complete_total",
            "counter",
            "package downloads whose last byte was handed to the connection",
            m.downloads_complete.load(Ordering::Relaxed),
        ),
        (
            "repo_bytes_sent_total",
            "counter",
            "package bytes handed to connections",
            m.bytes_sent.load(Ordering::Relaxed),
        ),
        (
            "repo_not_found_total",
            "counter",
            "requests for an application not in the repository",
            m.not_found.load(Ordering::Relaxed),
        ),
        (
            "repo_apps",
            "gauge",
            "applications in the repository",
            apps as u64,
        ),
    ];
    for (name, kind, help, v) in rows {
        o.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    o
}

/// Sets up logging for a daemon subcommand (stderr, `RUST_LOG`, default info).
pub(crate) fn init_tracing() {
    ctlhttp::daemon::init_logs("info");
}

/// The runtime of a daemon subcommand (two workers); on failure says so
/// as `app CMD: ...` and gives the exit code.
pub(crate) fn daemon_runtime(cmd: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("app {cmd}: runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Runs `app repo-server`: prints `listening on ADDR` on stdout once
/// serving, stops on SIGTERM/SIGINT.
pub fn main(args: RepoServerArgs) -> ExitCode {
    init_tracing();
    let rt = match daemon_runtime("repo-server") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let server = match start(&args).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("app repo-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {}", server.addr);
        let _ = io::stdout().flush();
        info!(addr = %server.addr, dir = %server.repo.dir().display(), "repository server up");
        ctlhttp::daemon::shutdown_signal().await;
        info!("stopping");
        server.stop().await;
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("repo-unit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32MiB").ok(), Some(32 << 20));
        assert_eq!(parse_size("1048576").ok(), Some(1 << 20));
        assert_eq!(parse_size("10MB").ok(), Some(10_000_000));
        assert_eq!(parse_size("2 GiB").ok(), Some(2 << 30));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn names_checked() {
        assert!(check_name("snake").is_ok());
        assert!(check_name("mine-test_2.1").is_ok());
        for bad in ["", ".x", "../etc", "a/b", "sp ace", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_is_deterministic() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        ImageGen::new("s", 1001).read_to_end(&mut a).ok();
        // Odd-sized reads give the same stream.
        let mut g = ImageGen::new("s", 1001);
        let mut buf = [0u8; 7];
        while let Ok(k) = g.read(&mut buf) {
            if k == 0 {
                break;
            }
            b.extend_from_slice(&buf[..k]);
        }
        assert_eq!(a.len(), 1001);
        assert_eq!(a, b);
        let mut c = Vec::new();
        ImageGen::new("t", 1001).read_to_end(&mut c).ok();
        assert_ne!(a, c);
    }

    #[test]
    fn publish_install_roundtrip_and_corruption() {
        let src_dir = tmp("src");
        let dst_dir = tmp("dst");
        let src = Repository::open(&src_dir).expect("open");
        let (info, created) = src.publish_snake(300_000).expect("publish");
        assert!(created);
        assert_eq!(info.payload_size, 300_000);
        assert!(!src.publish_snake(300_000).expect("again").1);
        src.verify("snake").expect("verify");
        let pkg = fs::read(src_dir.join("snake").join(PACKAGE_FILE)).expect("read");
        assert_eq!(pkg.len() as u64, info.size);

        let dst = Repository::open(&dst_dir).expect("open");
        let no = AtomicBool::new(false);
        // Corrupt one payload byte: checksum error, nothing left.
        let mut bad = pkg.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = dst
            .install("snake", &bad[..], Some(bad.len() as u64), &no)
            .expect_err("corrupt");
        assert!(matches!(e, RepoError::Checksum { .. }), "{e}");
        assert_eq!(fs::read_dir(&dst_dir).expect("ls").count(), 0);
        // Truncated.
        let e = dst
            .install("snake", &pkg[..pkg.len() - 10], None, &no)
            .expect_err("short");
        assert!(matches!(e, RepoError::Truncated { .. }), "{e}");
        // Trailing bytes.
        let mut long = pkg.clone();
        long.push(0);
        let e = dst
            .install("snake", &long[..], None, &no)
            .expect_err("long");
        assert!(matches!(e, RepoError::SizeMismatch(_)), "{e}");
        // Wrong name.
        let e = dst.install("other", &pkg[..], None, &no).expect_err("name");
        assert!(matches!(e, RepoError::NameMismatch { .. }), "{e}");
        // Cancelled.
        let yes = AtomicBool::new(true);
        let e = dst
            .install("snake", &pkg[..], None, &yes)
            .expect_err("cancel");
        assert!(matches!(e, RepoError::Cancelled), "{e}");
        assert_eq!(fs::read_dir(&dst_dir).expect("ls").count(), 0);
        // Good.
        let out = dst
            .install("snake", &pkg[..], Some(pkg.len() as u64), &no)
            .expect("install");
        assert_eq!(out.bytes, pkg.len() as u64);
        assert_eq!(
            fs::read(dst_dir.join("snake").join(PACKAGE_FILE)).expect("read"),
            pkg
        );
        assert_eq!(dst.list().expect("list"), vec![info]);
        dst.verify("snake").expect("verify");
        // A second install of the same app reports the race, keeps one copy.
        let out = dst.install("snake", &pkg[..], None, &no).expect("again");
        assert!(out.raced);
        assert_eq!(fs::read_dir(&dst_dir).expect("ls").count(), 1);
        let _ = fs::remove_dir_all(&src_dir);
        let _ = fs::remove_dir_all(&dst_dir);
    }

    #[test]
    fn stale_staging_removed_on_open() {
        let d = tmp("stale");
        fs::create_dir_all(d.join(".staging-snake-999999999-0")).expect("mk");
        fs::write(d.join(".staging-snake-999999999-0").join("x"), b"x").expect("w");
        let _r = Repository::open(&d).expect("open");
        assert_eq!(fs::read_dir(&d).expect("ls").count(), 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn remove_leaves_nothing() {
        let d = tmp("remove");
        let r = Repository::open(&d).expect("open");
        r.publish_snake(4096).expect("publish");
        let m = r.remove("snake").expect("remove").expect("was installed");
        assert_eq!(m.name, "snake");
        assert!(r.get("snake").expect("get").is_none());
        assert_eq!(fs::read_dir(&d).expect("ls").count(), 0, "no staging left");
        assert!(r.remove("snake").expect("again").is_none());
        assert!(matches!(r.remove("../x"), Err(RepoError::BadName(_))));
        let _ = fs::remove_dir_all(&d);
    }
}
