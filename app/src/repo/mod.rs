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

mod server;
mod store;

pub(crate) use server::{daemon_runtime, init_tracing, serve_until_stopped};
pub use server::{main, start, RepoServer, RepoServerArgs};
pub use store::{AppInfo, InstallOutcome, Installed, Repository};

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::AtomicBool;

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
