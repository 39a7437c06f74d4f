//! A repository on disk: install (staged, checked, renamed), list, read,
//! publish and remove applications.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::*;

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
        check_digest(name, hasher, &manifest.sha256)?;
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
        check_digest(name, hasher, &m.sha256)?;
        Ok(m)
    }
}

/// [`RepoError::Checksum`] unless what `hasher` read has the digest `expected`.
fn check_digest(name: &str, hasher: Sha256, expected: &str) -> Result<(), RepoError> {
    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(RepoError::Checksum {
            name: name.into(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
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
