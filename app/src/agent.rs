//! The edge migration agent, `app agent`: a JSON/HTTP API that starts and
//! stops application instances (`app instance` child processes) for users,
//! with an edge application repository filled from the cloud repository
//! (see [`crate::repo`]) when an application is missing.
//!
//! # API
//!
//! - `POST /instances` `{app, account, token, ue: "ADDR:PORT", width?, height?,
//!   fps?, bitrate?}` -> 201 [`Started`]: the application is looked up in the
//!   edge repository, pulled from the cloud repository when missing (timed:
//!   `pull_ms`), and run as `APP_BIN instance --cloud .. --account ..
//!   --token .. --name .. --ue .. --bind .. --input-listen .. [--width ..
//!   --height .. --fps .. --bitrate ..] --sdp FILE --metrics ADDR:PORT`, its
//!   output in `RUN_DIR/<id>.log`. 201 is sent once the instance has written
//!   its SDP file and its metrics endpoint answers; if it exits or times out
//!   first, the answer is a 500 carrying its last log lines, and nothing is
//!   left (process, SDP, log).
//! - `GET /instances`, `GET /instances/{id}` -> [`InstanceStatus`] (with the
//!   exit status of an instance that died).
//! - `DELETE /instances/{id}`: SIGTERM to the instance's process group, SIGKILL
//!   after `--stop-timeout`; -> [`Stopped`].
//! - `POST /instances/{id}/switch`: forwarded to the instance's
//!   `POST /switch` on its metrics address; its answer is passed back.
//! - `GET /apps` (edge repository), `GET /metrics`, `GET /healthz`.
//!
//! Errors are `{"error": ..., "field"?: ..., "log"?: [...]}`: 400 for a bad
//! request (naming the field), 404 for an application in neither repository
//! or an unknown instance, 502 when the cloud repository is unreachable or
//! sends a bad package (nothing is installed then), 500 when an instance
//! fails to start.
//!
//! On SIGTERM/SIGINT the agent stops every instance, aborts pulls in
//! progress (removing their staging directories) and exits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use crate::repo::{self, Installed, RepoError, Repository, SNAKE_ENTRY};

/// An inclusive port range, written `LOW-HIGH` (or one port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let low: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
        let high: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
        if low == 0 || high < low {
            return Err(format!(
                "bad port range {s:?} (want LOW-HIGH, 0 < LOW <= HIGH)"
            ));
        }
        Ok(PortRange { low, high })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// Command-line arguments of `app agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// HTTP API listen address.
    #[arg(long, default_value = "0.0.0.0:7400")]
    pub listen: SocketAddr,
    /// The edge repository directory (created if missing).
    #[arg(long)]
    pub repo: PathBuf,
    /// Base URL of the cloud repository.
    #[arg(long, default_value = "http://127.0.0.1:7310")]
    pub cloud_repo: String,
    /// The cloud logic server's sync address, given to instances as --cloud.
    #[arg(long, default_value = "127.0.0.1:7300")]
    pub cloud_sync: String,
    /// The binary run as `APP_BIN instance ...` (default: this executable).
    #[arg(long)]
    pub app_bin: Option<PathBuf>,
    /// UDP ports for the instances' input (one per instance).
    #[arg(long, default_value = "7500-7599")]
    pub input_ports: PortRange,
    /// TCP ports for the instances' metrics/control HTTP (one per instance).
    #[arg(long, default_value = "7600-7699")]
    pub metrics_ports: PortRange,
    /// Directory for instance logs and SDP files (created if missing).
    #[arg(long, default_value = "/tmp/app-agent")]
    pub run_dir: PathBuf,
    /// Address instances listen for input on.
    #[arg(long, default_value = "0.0.0.0")]
    pub input_host: IpAddr,
    /// Address instances send RTP from (--bind).
    #[arg(long, default_value = "0.0.0.0")]
    pub instance_bind: IpAddr,
    /// Address instances serve metrics/control on.
    #[arg(long, default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Prefix of instance names given to the cloud (`<name>-<id>`).
    #[arg(long, default_value = "edge")]
    pub name: String,
    /// Seconds an instance has to become ready.
    #[arg(long, default_value_t = 10.0)]
    pub start_timeout: f64,
    /// Seconds between SIGTERM and SIGKILL when stopping an instance.
    #[arg(long, default_value_t = 5.0)]
    pub stop_timeout: f64,
    /// Seconds a pull may take in all.
    #[arg(long, default_value_t = 600.0)]
    pub pull_timeout: f64,
}

/// Errors of the agent; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request is malformed.
    #[error("{msg}")]
    BadRequest { field: Option<String>, msg: String },
    /// The application is in no repository.
    #[error("application {app:?} was found neither in the edge repository ({edge}) nor in the cloud repository ({cloud})")]
    AppNotFound {
        app: String,
        edge: String,
        cloud: String,
    },
    /// No such instance.
    #[error("no instance {0:?}")]
    NoInstance(String),
    /// The cloud repository cannot be reached.
    #[error("cloud repository {url} is unreachable: {reason}")]
    CloudUnreachable { url: String, reason: String },
    /// The cloud repository answered with an unexpected status.
    #[error("cloud repository {url} answered HTTP {status} for {app:?}: {body}")]
    CloudStatus {
        url: String,
        app: String,
        status: u16,
        body: String,
    },
    /// Pulling the package failed; nothing was installed.
    #[error(
        "pulling {app:?} from the cloud repository {url} failed: {source}; nothing was installed"
    )]
    Pull {
        app: String,
        url: String,
        #[source]
        source: RepoError,
    },
    /// The edge repository failed.
    #[error("edge repository: {0}")]
    Repo(#[from] RepoError),
    /// The package's entry is not one this agent can run.
    #[error("application {app:?} has entry {entry:?}; this agent runs only {SNAKE_ENTRY:?}")]
    UnsupportedEntry { app: String, entry: String },
    /// No port left.
    #[error("no free {what} port in {range}")]
    NoPort {
        what: &'static str,
        range: PortRange,
    },
    /// The instance process could not be started or did not become ready.
    #[error("instance {id} of {app:?} failed to start: {reason}")]
    StartFailed {
        id: String,
        app: String,
        reason: String,
        log: Vec<String>,
    },
    /// The instance is not running.
    #[error("instance {id} is not running ({state})")]
    NotRunning { id: String, state: String },
    /// The instance's control endpoint did not answer.
    #[error("instance {id} at {addr} did not answer: {reason}")]
    InstanceUnreachable {
        id: String,
        addr: SocketAddr,
        reason: String,
    },
    /// The agent is stopping.
    #[error("the agent is stopping")]
    Stopping,
    /// Setting up the agent failed.
    #[error("{what}: {source}")]
    Setup {
        what: String,
        #[source]
        source: io::Error,
    },
    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AgentError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        use AgentError::*;
        match self {
            BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppNotFound { .. } | NoInstance(_) => StatusCode::NOT_FOUND,
            CloudUnreachable { .. } | CloudStatus { .. } | InstanceUnreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Pull { source, .. } => match source {
                RepoError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                RepoError::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            UnsupportedEntry { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            NotRunning { .. } => StatusCode::CONFLICT,
            NoPort { .. } | Stopping => StatusCode::SERVICE_UNAVAILABLE,
            Repo(_) | StartFailed { .. } | Setup { .. } | Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// An error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
    /// The request field at fault, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The instance's last log lines, for a failed start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<String>>,
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (field, log) = match &self {
            AgentError::BadRequest { field, .. } => (field.clone(), None),
            AgentError::StartFailed { log, .. } => (None, Some(log.clone())),
            _ => (None, None),
        };
        let body = ApiError {
            error: self.to_string(),
            field,
            log,
        };
        (status, Json(body)).into_response()
    }
}

fn bad(field: &str, msg: impl Into<String>) -> AgentError {
    AgentError::BadRequest {
        field: Some(field.to_owned()),
        msg: msg.into(),
    }
}

/// A start request, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Application name.
    pub app: String,
    /// The user's account.
    pub account: String,
    /// The account's token (passed to the instance).
    pub token: String,
    /// Where the instance streams RTP to.
    pub ue: SocketAddr,
    /// Frame width (even).
    pub width: Option<u32>,
    /// Frame height (even).
    pub height: Option<u32>,
    /// Frames per second.
    pub fps: Option<u32>,
    /// Encoder bitrate (bit/s).
    pub bitrate: Option<u32>,
}

impl StartRequest {
    /// Parses and checks a request body; errors name the field.
    pub fn parse(body: &[u8]) -> Result<Self, AgentError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| AgentError::BadRequest {
            field: None,
            msg: format!("malformed JSON: {e}"),
        })?;
        let Value::Object(obj) = v else {
            return Err(AgentError::BadRequest {
                field: None,
                msg: "the request must be a JSON object".into(),
            });
        };
        const KNOWN: [&str; 8] = [
            "app", "account", "token", "ue", "width", "height", "fps", "bitrate",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field `{k}` (known: {})", KNOWN.join(", ")),
            ));
        }
        let app = req_str(&obj, "app")?;
        repo::check_name(&app).map_err(|e| bad("app", e.to_string()))?;
        let account = req_str(&obj, "account")?;
        let token = req_str(&obj, "token")?;
        let ue_s = req_str(&obj, "ue")?;
        let ue: SocketAddr = ue_s.parse().map_err(|_| {
            bad(
                "ue",
                format!("bad `ue` address {ue_s:?}: want IP:PORT, e.g. 10.60.0.1:5004"),
            )
        })?;
        if ue.port() == 0 || ue.ip().is_unspecified() {
            return Err(bad(
                "ue",
                format!("bad `ue` address {ue_s:?}: the IP must be specific and the port non-zero"),
            ));
        }
        let width = opt_u32(&obj, "width", 16, 7680)?;
        let height = opt_u32(&obj, "height", 16, 4320)?;
        for (f, v) in [("width", width), ("height", height)] {
            if v.is_some_and(|v| v % 2 != 0) {
                return Err(bad(f, format!("`{f}` must be even (I420)")));
            }
        }
        let fps = opt_u32(&obj, "fps", 1, 240)?;
        let bitrate = opt_u32(&obj, "bitrate", 10_000, 1_000_000_000)?;
        Ok(StartRequest {
            app,
            account,
            token,
            ue,
            width,
            height,
            fps,
            bitrate,
        })
    }
}

fn req_str(obj: &Map<String, Value>, f: &str) -> Result<String, AgentError> {
    match obj.get(f) {
        None | Some(Value::Null) => Err(bad(f, format!("missing field `{f}`"))),
        Some(Value::String(s)) if s.is_empty() => Err(bad(f, format!("`{f}` is empty"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(f, format!("`{f}` must be a string"))),
    }
}

fn opt_u32(obj: &Map<String, Value>, f: &str, lo: u32, hi: u32) -> Result<Option<u32>, AgentError> {
    match obj.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (u64::from(lo)..=u64::from(hi)).contains(&n) => Ok(Some(n as u32)),
            _ => Err(bad(
                f,
                format!("`{f}` must be an integer in {lo}..={hi}, got {v}"),
            )),
        },
    }
}

/// What identifies a running instance (part of [`Started`] and
/// [`InstanceStatus`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Instance id (within this agent).
    pub id: String,
    /// Application name.
    pub app: String,
    /// Application version.
    pub version: String,
    /// Account.
    pub account: String,
    /// The instance's name at the cloud.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// RTP destination.
    pub ue: SocketAddr,
    /// UDP port the instance takes input on.
    pub input_port: u16,
    /// The instance's metrics/control address.
    pub metrics: SocketAddr,
    /// The instance's log file.
    pub log: PathBuf,
}

/// The answer to a successful start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstanceInfo,
    /// The SDP text for the UE.
    pub sdp: String,
    /// Whether the application was pulled from the cloud for this start.
    pub pulled: bool,
    /// Time of the pull (0 when not pulled).
    pub pull_ms: f64,
    /// Package bytes pulled (0 when not pulled).
    pub pull_bytes: u64,
    /// Time from spawning the process to its being ready.
    pub start_ms: f64,
}

/// An instance's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstanceInfo,
    /// "running" or "exited".
    pub state: String,
    /// Exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub exit_signal: Option<i32>,
    /// Time since start.
    pub uptime_ms: u64,
}

/// The answer to a DELETE.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stopped {
    /// Instance id.
    pub id: String,
    /// Exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub exit_signal: Option<i32>,
    /// Whether SIGKILL was needed.
    pub killed: bool,
    /// Whether it had already exited before the request.
    pub already_exited: bool,
    /// Time the stop took.
    pub stop_ms: f64,
}

/// A child process whose pid stays valid until it is reaped, which happens
/// only under the lock: signals are never sent to a reused pid.
struct Proc {
    pid: u32,
    inner: Mutex<(Child, Option<ExitStatus>)>,
}

impl Proc {
    /// The exit status, if it has exited (reaps it).
    fn poll(&self) -> Option<ExitStatus> {
        let Ok(mut g) = self.inner.lock() else {
            return None;
        };
        if g.1.is_none() {
            if let Ok(Some(st)) = g.0.try_wait() {
                g.1 = Some(st);
            }
        }
        g.1
    }

    /// Sends `sig` to the process group (the child is its leader) unless
    /// it has exited. Returns false if it had.
    fn signal(&self, sig: i32) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        if g.1.is_none() {
            if let Ok(Some(st)) = g.0.try_wait() {
                g.1 = Some(st);
            }
        }
        if g.1.is_some() {
            return false;
        }
        let pid = self.pid as i32;
        // SAFETY: plain kill(2) on a pid that is our unreaped child (and the
        // leader of its own process group), so it cannot have been reused.
        unsafe {
            if libc::kill(-pid, sig) != 0 {
                libc::kill(pid, sig);
            }
        }
        true
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and wait. Returns the exit
    /// status and whether SIGKILL was needed.
    async fn stop(&self, grace: Duration) -> (Option<ExitStatus>, bool) {
        if !self.signal(libc::SIGTERM) {
            return (self.poll(), false);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.poll() {
                return (Some(st), false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.signal(libc::SIGKILL);
        for _ in 0..500 {
            if let Some(st) = self.poll() {
                return (Some(st), true);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (None, true)
    }
}

fn exit_parts(st: Option<ExitStatus>) -> (Option<i32>, Option<i32>) {
    match st {
        None => (None, None),
        Some(s) => (s.code(), s.signal()),
    }
}

struct Instance {
    started: Started,
    sdp_path: PathBuf,
    since: Instant,
    proc: Proc,
    exit_logged: AtomicBool,
}

impl Instance {
    fn status(&self) -> InstanceStatus {
        let st = self.proc.poll();
        let (exit_code, exit_signal) = exit_parts(st);
        InstanceStatus {
            instance: self.started.instance.clone(),
            state: if st.is_some() { "exited" } else { "running" }.into(),
            exit_code,
            exit_signal,
            uptime_ms: self.since.elapsed().as_millis() as u64,
        }
    }
}

#[derive(Default)]
struct Metrics {
    starts: AtomicU64,
    start_failures: AtomicU64,
    stops: AtomicU64,
    pulls: AtomicU64,
    pull_failures: AtomicU64,
    pull_bytes: AtomicU64,
    pull_us_total: AtomicU64,
    last_pull_us: AtomicU64,
    bad_requests: AtomicU64,
    not_found: AtomicU64,
    switches: AtomicU64,
}

struct Agent {
    args: AgentArgs,
    app_bin: PathBuf,
    run_dir: PathBuf,
    cloud: String,
    repo: Repository,
    http: ureq::Agent,
    instances: Mutex<BTreeMap<String, Arc<Instance>>>,
    reserved: Mutex<HashSet<(bool, u16)>>,
    pull_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    next_id: AtomicU64,
    cancel: Arc<AtomicBool>,
    pulls_in_flight: AtomicU64,
    m: Metrics,
}

/// Releases reserved ports on drop.
struct PortLease<'a> {
    agent: &'a Agent,
    ports: Vec<(bool, u16)>,
}

impl Drop for PortLease<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.agent.reserved.lock() {
            for p in &self.ports {
                r.remove(p);
            }
        }
    }
}

/// Reads the last `n` lines of a file (from its last 64 KiB).
fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(65536);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// True when an HTTP server answers `GET /metrics` at `addr`.
async fn http_answers(addr: SocketAddr) -> bool {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"HTTP/").then_some(())
    };
    tokio::time::timeout(Duration::from_millis(500), fut)
        .await
        .ok()
        .flatten()
        .is_some()
}

impl Agent {
    fn secs(v: f64) -> Duration {
        Duration::from_secs_f64(if v.is_finite() && v > 0.0 { v } else { 0.0 })
    }

    fn alloc_port(
        &self,
        range: PortRange,
        udp: bool,
        host: IpAddr,
        taken: &HashSet<u16>,
    ) -> Result<u16, AgentError> {
        let mut r = self
            .reserved
            .lock()
            .map_err(|_| AgentError::Internal("port lock poisoned".into()))?;
        for p in range.low..=range.high {
            if taken.contains(&p) || r.contains(&(udp, p)) {
                continue;
            }
            let free = if udp {
                UdpSocket::bind((host, p)).is_ok()
            } else {
                StdTcpListener::bind((host, p)).is_ok()
            };
            if free {
                r.insert((udp, p));
                return Ok(p);
            }
        }
        Err(AgentError::NoPort {
            what: if udp { "input (UDP)" } else { "metrics (TCP)" },
            range,
        })
    }

    /// Finds the application in the edge repository or pulls it.
    /// Returns (installed, pulled, pull time, bytes).
    async fn ensure_app(
        self: &Arc<Self>,
        app: &str,
    ) -> Result<(Installed, bool, Duration, u64), AgentError> {
        let lock = {
            let mut l = self
                .pull_locks
                .lock()
                .map_err(|_| AgentError::Internal("pull lock poisoned".into()))?;
            l.entry(app.to_owned()).or_default().clone()
        };
        let _g = lock.lock().await;
        if let Some(i) = self.repo.get(app)? {
            return Ok((i, false, Duration::ZERO, 0));
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(AgentError::Stopping);
        }
        let me = self.clone();
        let name = app.to_owned();
        self.pulls_in_flight.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        let r = tokio::task::spawn_blocking(move || me.pull_blocking(&name)).await;
        self.pulls_in_flight.fetch_sub(1, Ordering::SeqCst);
        let elapsed = t0.elapsed();
        let r = r.map_err(|e| AgentError::Internal(e.to_string()))?;
        match r {
            Ok((installed, bytes)) => {
                self.m.pulls.fetch_add(1, Ordering::Relaxed);
                self.m.pull_bytes.fetch_add(bytes, Ordering::Relaxed);
                let us = elapsed.as_micros() as u64;
                self.m.pull_us_total.fetch_add(us, Ordering::Relaxed);
                self.m.last_pull_us.store(us, Ordering::Relaxed);
                info!(
                    app,
                    bytes,
                    ms = elapsed.as_secs_f64() * 1e3,
                    mbit_s = bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6,
                    "pulled from the cloud repository"
                );
                Ok((installed, true, elapsed, bytes))
            }
            Err(e) => {
                if !matches!(e, AgentError::AppNotFound { .. }) {
                    self.m.pull_failures.fetch_add(1, Ordering::Relaxed);
                }
                warn!(app, "pull failed: {e}");
                Err(e)
            }
        }
    }

    fn pull_blocking(&self, app: &str) -> Result<(Installed, u64), AgentError> {
        let url = format!("{}/apps/{app}", self.cloud);
        let mut resp = match self.http.get(&url).call() {
            Ok(r) => r,
            Err(e) => {
                return Err(AgentError::CloudUnreachable {
                    url: self.cloud.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(AgentError::AppNotFound {
                app: app.into(),
                edge: self.repo.dir().display().to_string(),
                cloud: self.cloud.clone(),
            });
        }
        if status != 200 {
            let body = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            return Err(AgentError::CloudStatus {
                url: self.cloud.clone(),
                app: app.into(),
                status,
                body,
            });
        }
        let len = resp.body().content_length();
        let reader = resp.body_mut().as_reader();
        let out = self
            .repo
            .install(app, reader, len, &self.cancel)
            .map_err(|source| AgentError::Pull {
                app: app.into(),
                url: self.cloud.clone(),
                source,
            })?;
        Ok((out.installed, out.bytes))
    }

    fn build_command(
        &self,
        req: &StartRequest,
        installed: &Installed,
        name: &str,
        input_port: u16,
        metrics: SocketAddr,
        sdp: &Path,
    ) -> Command {
        // Defaults from the manifest, overridden by the request; the agent
        // owns the connection flags.
        let mut flags: BTreeMap<String, String> = installed.manifest.args.clone();
        const OWNED: [&str; 8] = [
            "cloud",
            "account",
            "token",
            "name",
            "ue",
            "bind",
            "input-listen",
            "sdp",
        ];
        flags.retain(|k, _| !OWNED.contains(&k.as_str()) && k != "metrics");
        for (k, v) in [
            ("width", req.width),
            ("height", req.height),
            ("fps", req.fps),
            ("bitrate", req.bitrate),
        ] {
            if let Some(v) = v {
                flags.insert(k.into(), v.to_string());
            }
        }
        let mut cmd = Command::new(&self.app_bin);
        cmd.arg("instance")
            .arg("--cloud")
            .arg(&self.args.cloud_sync)
            .arg("--account")
            .arg(&req.account)
            .arg("--token")
            .arg(&req.token)
            .arg("--name")
            .arg(name)
            .arg("--ue")
            .arg(req.ue.to_string())
            .arg("--bind")
            .arg(self.args.instance_bind.to_string())
            .arg("--input-listen")
            .arg(SocketAddr::new(self.args.input_host, input_port).to_string());
        for (k, v) in &flags {
            cmd.arg(format!("--{k}")).arg(v);
        }
        cmd.arg("--sdp")
            .arg(sdp)
            .arg("--metrics")
            .arg(metrics.to_string())
            .current_dir(&installed.dir)
            .stdin(Stdio::null())
            .process_group(0);
        // An agent killed outright (SIGKILL, a crash) takes its instances
        // along: the kernel sends them SIGTERM when the thread that started
        // them dies (a runtime worker, alive as long as the agent).
        let agent_pid = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls async-signal-safe functions (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The agent died before the prctl: nobody would stop us.
                if libc::getppid() as u32 != agent_pid {
                    return Err(std::io::Error::other("the agent is gone"));
                }
                Ok(())
            });
        }
        cmd
    }

    async fn start_instance(self: &Arc<Self>, req: StartRequest) -> Result<Started, AgentError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(AgentError::Stopping);
        }
        let (installed, pulled, pull_time, pull_bytes) = self.ensure_app(&req.app).await?;
        if installed.manifest.entry != SNAKE_ENTRY {
            return Err(AgentError::UnsupportedEntry {
                app: req.app.clone(),
                entry: installed.manifest.entry.clone(),
            });
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("i{n}");
        let name = format!("{}-{id}", self.args.name);
        let (taken_in, taken_m): (HashSet<u16>, HashSet<u16>) = {
            let l = self
                .instances
                .lock()
                .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?;
            (
                l.values().map(|i| i.started.instance.input_port).collect(),
                l.values()
                    .map(|i| i.started.instance.metrics.port())
                    .collect(),
            )
        };
        let input_port =
            self.alloc_port(self.args.input_ports, true, self.args.input_host, &taken_in)?;
        let mut lease = PortLease {
            agent: self,
            ports: vec![(true, input_port)],
        };
        let mport = self.alloc_port(
            self.args.metrics_ports,
            false,
            self.args.metrics_host,
            &taken_m,
        )?;
        lease.ports.push((false, mport));
        let metrics = SocketAddr::new(self.args.metrics_host, mport);
        let log_path = self.run_dir.join(format!("{id}.log"));
        let sdp_path = self.run_dir.join(format!("{id}.sdp"));
        let _ = fs::remove_file(&sdp_path);
        let log = File::create(&log_path).map_err(|source| AgentError::Setup {
            what: log_path.display().to_string(),
            source,
        })?;
        let log2 = log.try_clone().map_err(|source| AgentError::Setup {
            what: log_path.display().to_string(),
            source,
        })?;
        let mut cmd = self.build_command(&req, &installed, &name, input_port, metrics, &sdp_path);
        cmd.stdout(log).stderr(log2);
        let cleanup = |what: &str| {
            let _ = fs::remove_file(&sdp_path);
            let _ = fs::remove_file(&log_path);
            self.m.start_failures.fetch_add(1, Ordering::Relaxed);
            warn!(%id, app = %req.app, "start failed: {what}");
        };
        let t0 = Instant::now();
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("cannot run {}: {e}", self.app_bin.display());
                cleanup(&reason);
                return Err(AgentError::StartFailed {
                    id,
                    app: req.app.clone(),
                    reason,
                    log: Vec::new(),
                });
            }
        };
        let proc = Proc {
            pid: child.id(),
            inner: Mutex::new((child, None)),
        };
        let deadline = t0 + Self::secs(self.args.start_timeout);
        let failure: Option<String> = loop {
            if let Some(st) = proc.poll() {
                break Some(format!("it exited ({st}) before it was ready"));
            }
            if self.cancel.load(Ordering::Relaxed) {
                break Some("the agent is stopping".into());
            }
            let sdp_ready = fs::metadata(&sdp_path).is_ok_and(|m| m.len() > 0);
            if sdp_ready && http_answers(metrics).await {
                // Still alive after answering?
                if let Some(st) = proc.poll() {
                    break Some(format!("it exited ({st}) right after starting"));
                }
                break None;
            }
            if Instant::now() >= deadline {
                break Some(format!(
                    "not ready within {:.1} s (SDP file {}, metrics {metrics} {})",
                    self.args.start_timeout,
                    if sdp_ready { "written" } else { "missing" },
                    if sdp_ready {
                        "not answering"
                    } else {
                        "not checked"
                    }
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(reason) = failure {
            proc.stop(Duration::from_secs(1)).await;
            let log = tail(&log_path, 20);
            cleanup(&reason);
            return Err(AgentError::StartFailed {
                id,
                app: req.app.clone(),
                reason,
                log,
            });
        }
        let start_time = t0.elapsed();
        let sdp = match fs::read_to_string(&sdp_path) {
            Ok(s) => s,
            Err(e) => {
                proc.stop(Duration::from_secs(1)).await;
                let log = tail(&log_path, 20);
                let reason = format!("cannot read its SDP file {}: {e}", sdp_path.display());
                cleanup(&reason);
                return Err(AgentError::StartFailed {
                    id,
                    app: req.app.clone(),
                    reason,
                    log,
                });
            }
        };
        let started = Started {
            instance: InstanceInfo {
                id: id.clone(),
                app: req.app.clone(),
                version: installed.manifest.version.clone(),
                account: req.account.clone(),
                name,
                pid: proc.pid,
                ue: req.ue,
                input_port,
                metrics,
                log: log_path,
            },
            sdp,
            pulled,
            pull_ms: pull_time.as_secs_f64() * 1e3,
            pull_bytes,
            start_ms: start_time.as_secs_f64() * 1e3,
        };
        let inst = Arc::new(Instance {
            started: started.clone(),
            sdp_path,
            since: t0,
            proc,
            exit_logged: AtomicBool::new(false),
        });
        {
            let mut l = self
                .instances
                .lock()
                .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?;
            l.insert(id.clone(), inst.clone());
        }
        drop(lease);
        // The agent may have begun stopping while this start finished.
        if self.cancel.load(Ordering::Relaxed) {
            self.stop_instance(&id).await.ok();
            return Err(AgentError::Stopping);
        }
        self.m.starts.fetch_add(1, Ordering::Relaxed);
        info!(
            %id, app = %started.instance.app, account = %started.instance.account, pid = started.instance.pid,
            input_port, %metrics, pulled, pull_ms = started.pull_ms,
            start_ms = started.start_ms, "instance started"
        );
        Ok(started)
    }

    fn get(&self, id: &str) -> Result<Arc<Instance>, AgentError> {
        self.instances
            .lock()
            .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
            .get(id)
            .cloned()
            .ok_or_else(|| AgentError::NoInstance(id.into()))
    }

    async fn stop_instance(&self, id: &str) -> Result<Stopped, AgentError> {
        let inst = self
            .instances
            .lock()
            .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
            .remove(id)
            .ok_or_else(|| AgentError::NoInstance(id.into()))?;
        let t0 = Instant::now();
        let already_exited = inst.proc.poll().is_some();
        let (st, killed) = inst.proc.stop(Self::secs(self.args.stop_timeout)).await;
        let _ = fs::remove_file(&inst.sdp_path);
        let (exit_code, exit_signal) = exit_parts(st);
        self.m.stops.fetch_add(1, Ordering::Relaxed);
        info!(id, ?exit_code, ?exit_signal, killed, "instance stopped");
        Ok(Stopped {
            id: id.into(),
            exit_code,
            exit_signal,
            killed,
            already_exited,
            stop_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    async fn stop_all(&self) {
        let ids: Vec<String> = self
            .instances
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        let futs = ids.iter().map(|id| self.stop_instance(id));
        futures::future::join_all(futs).await;
    }

    fn metrics_text(&self) -> String {
        let (running, exited) = self
            .instances
            .lock()
            .map(|l| {
                let r = l.values().filter(|i| i.proc.poll().is_none()).count();
                (r, l.len() - r)
            })
            .unwrap_or((0, 0));
        let m = &self.m;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: Vec<(&str, &str, &str, String)> = vec![
            (
                "agent_instances_started_total",
                "counter",
                "instances started",
                ld(&m.starts).to_string(),
            ),
            (
                "agent_instance_start_failures_total",
                "counter",
                "instance starts that failed",
                ld(&m.start_failures).to_string(),
            ),
            (
                "agent_instances_stopped_total",
                "counter",
                "instances stopped by DELETE or shutdown",
                ld(&m.stops).to_string(),
            ),
            (
                "agent_instances_running",
                "gauge",
                "instances whose process runs",
                running.to_string(),
            ),
            (
                "agent_instances_exited",
                "gauge",
                "instances whose process exited (until DELETE)",
                exited.to_string(),
            ),
            (
                "agent_pulls_total",
                "counter",
                "applications pulled from the cloud repository",
                ld(&m.pulls).to_string(),
            ),
            (
                "agent_pull_failures_total",
                "counter",
                "pulls that failed (unreachable, bad package)",
                ld(&m.pull_failures).to_string(),
            ),
            (
                "agent_pull_bytes_total",
                "counter",
                "package bytes pulled",
                ld(&m.pull_bytes).to_string(),
            ),
            (
                "agent_pull_seconds_total",
                "counter",
                "time spent pulling",
                format!("{:.6}", ld(&m.pull_us_total) as f64 / 1e6),
            ),
            (
                "agent_last_pull_seconds",
                "gauge",
                "duration of the last successful pull",
                format!("{:.6}", ld(&m.last_pull_us) as f64 / 1e6),
            ),
            (
                "agent_bad_requests_total",
                "counter",
                "requests answered 400",
                ld(&m.bad_requests).to_string(),
            ),
            (
                "agent_app_not_found_total",
                "counter",
                "starts for an application in no repository",
                ld(&m.not_found).to_string(),
            ),
            (
                "agent_switches_total",
                "counter",
                "switch requests forwarded",
                ld(&m.switches).to_string(),
            ),
        ];
        let mut o = String::new();
        for (name, kind, help, v) in rows {
            o.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        o
    }
}

// ----- HTTP handlers -----

type St = State<Arc<Agent>>;

fn count_err(a: &Agent, e: &AgentError) {
    match e {
        AgentError::BadRequest { .. } => a.m.bad_requests.fetch_add(1, Ordering::Relaxed),
        AgentError::AppNotFound { .. } => a.m.not_found.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
}

async fn create(
    State(a): St,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Started>), AgentError> {
    let r = async {
        let req = StartRequest::parse(&body)?;
        a.start_instance(req).await
    }
    .await;
    match r {
        Ok(s) => Ok((StatusCode::CREATED, Json(s))),
        Err(e) => {
            count_err(&a, &e);
            Err(e)
        }
    }
}

async fn list(State(a): St) -> Result<Json<Vec<InstanceStatus>>, AgentError> {
    let l: Vec<Arc<Instance>> = a
        .instances
        .lock()
        .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
        .values()
        .cloned()
        .collect();
    Ok(Json(l.iter().map(|i| i.status()).collect()))
}

async fn get_one(
    State(a): St,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<InstanceStatus>, AgentError> {
    Ok(Json(a.get(&id)?.status()))
}

async fn delete(State(a): St, UrlPath(id): UrlPath<String>) -> Result<Json<Stopped>, AgentError> {
    a.stop_instance(&id).await.map(Json)
}

async fn switch(
    State(a): St,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, AgentError> {
    let inst = a.get(&id)?;
    if let Some(st) = inst.proc.poll() {
        return Err(AgentError::NotRunning {
            id,
            state: format!("exited: {st}"),
        });
    }
    let addr = inst.started.instance.metrics;
    let http = a.http.clone();
    let r = tokio::task::spawn_blocking(move || {
        let url = format!("http://{addr}/switch");
        let req = http
            .post(&url)
            .config()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .header("content-type", "application/json");
        let mut resp = if body.is_empty() {
            req.send_empty()
        } else {
            req.send(&body[..])
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        Ok::<_, String>((status, text))
    })
    .await
    .map_err(|e| AgentError::Internal(e.to_string()))?;
    let (status, text) = r.map_err(|reason| AgentError::InstanceUnreachable {
        id: id.clone(),
        addr,
        reason,
    })?;
    a.m.switches.fetch_add(1, Ordering::Relaxed);
    info!(id, status, "switch forwarded");
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let ctype = if serde_json::from_str::<Value>(&text).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok((status, [(axum::http::header::CONTENT_TYPE, ctype)], text).into_response())
}

async fn apps(State(a): St) -> Result<Json<Vec<repo::AppInfo>>, AgentError> {
    Ok(Json(a.repo.list()?))
}

async fn metrics(State(a): St) -> String {
    a.metrics_text()
}

fn router(a: Arc<Agent>) -> Router {
    Router::new()
        .route("/instances", get(list).post(create))
        .route("/instances/{id}", get(get_one).delete(delete))
        .route("/instances/{id}/switch", post(switch))
        .route("/apps", get(apps))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(ApiError {
                    error: "no such endpoint (see /instances, /apps, /metrics)".into(),
                    field: None,
                    log: None,
                }),
            )
        })
        .with_state(a)
}

/// A running agent.
pub struct RunningAgent {
    /// Where the API listens.
    pub addr: SocketAddr,
    agent: Arc<Agent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningAgent {
    /// Stops the API, every instance and every pull; removes staging files.
    pub async fn stop(mut self) {
        let a = self.agent.clone();
        a.cancel.store(true, Ordering::SeqCst);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        a.stop_all().await;
        // Pulls see `cancel` between chunks; give them a moment, then remove
        // whatever staging they still have.
        let deadline = Instant::now() + Duration::from_secs(3);
        while a.pulls_in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.repo.abort_staging();
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        // A start that raced with the stop registered its instance late.
        a.stop_all().await;
    }
}

/// Opens the repository and run directory, binds the API and starts serving
/// on the current runtime.
pub async fn start(args: AgentArgs) -> Result<RunningAgent, AgentError> {
    let repo = Repository::open(&args.repo)?;
    fs::create_dir_all(&args.run_dir).map_err(|source| AgentError::Setup {
        what: format!("run dir {}", args.run_dir.display()),
        source,
    })?;
    let run_dir = fs::canonicalize(&args.run_dir).map_err(|source| AgentError::Setup {
        what: format!("run dir {}", args.run_dir.display()),
        source,
    })?;
    let app_bin = match &args.app_bin {
        Some(p) => fs::canonicalize(p).map_err(|source| AgentError::Setup {
            what: format!("--app-bin {}", p.display()),
            source,
        })?,
        None => std::env::current_exe().map_err(|source| AgentError::Setup {
            what: "current executable".into(),
            source,
        })?,
    };
    let cloud = args.cloud_repo.trim_end_matches('/').to_owned();
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_global(Some(Agent::secs(args.pull_timeout)))
        .build()
        .into();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AgentError::Setup {
            what: format!("cannot listen on {}", args.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AgentError::Setup {
        what: "local address".into(),
        source,
    })?;
    let agent = Arc::new(Agent {
        args,
        app_bin,
        run_dir,
        cloud,
        repo,
        http,
        instances: Mutex::default(),
        reserved: Mutex::default(),
        pull_locks: Mutex::default(),
        next_id: AtomicU64::new(1),
        cancel: Arc::new(AtomicBool::new(false)),
        pulls_in_flight: AtomicU64::new(0),
        m: Metrics::default(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(agent.clone());
    let api = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = r {
            warn!("API server stopped: {e}");
        }
    });
    // Logs instances that die on their own.
    let a = agent.clone();
    let monitor = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let l: Vec<Arc<Instance>> = a
                .instances
                .lock()
                .map(|l| l.values().cloned().collect())
                .unwrap_or_default();
            for i in l {
                if let Some(st) = i.proc.poll() {
                    if !i.exit_logged.swap(true, Ordering::Relaxed) {
                        warn!(id = %i.started.instance.id, app = %i.started.instance.app, "instance exited on its own: {st}");
                    }
                }
            }
        }
    });
    Ok(RunningAgent {
        addr,
        agent,
        stop: Some(tx),
        tasks: vec![api, monitor],
    })
}

/// Runs `app agent`: prints `listening on ADDR` on stdout once serving;
/// on SIGTERM/SIGINT stops every instance and exits.
pub fn main(args: AgentArgs) -> ExitCode {
    repo::init_tracing();
    let rt = match crate::repo::daemon_runtime("agent") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async {
        let running = match start(args).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("app agent: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {}", running.addr);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        info!(addr = %running.addr, "agent up");
        repo::stop_signal().await;
        info!("stopping: instances, pulls");
        running.stop().await;
        info!("stopped");
        ExitCode::SUCCESS
    });
    // A pull stuck in a read would hold a blocking thread; its staging
    // directory is already gone, so do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> Option<String> {
        match StartRequest::parse(body.as_bytes()) {
            Err(AgentError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn start_request_fields() {
        let ok = r#"{"app":"snake","account":"a","token":"t","ue":"10.60.0.1:5004","fps":30}"#;
        let r = StartRequest::parse(ok.as_bytes()).expect("ok");
        assert_eq!(r.fps, Some(30));
        assert_eq!(r.ue, "10.60.0.1:5004".parse().expect("addr"));
        assert_eq!(field("{"), None);
        assert_eq!(field("[1]"), None);
        assert_eq!(
            field(r#"{"app":"snake","account":"a","token":"t"}"#).as_deref(),
            Some("ue")
        );
        assert_eq!(
            field(r#"{"app":"snake","account":"a","token":"t","ue":"x"}"#).as_deref(),
            Some("ue")
        );
        assert_eq!(
            field(r#"{"app":"snake","account":"a","token":"t","ue":"0.0.0.0:5"}"#).as_deref(),
            Some("ue")
        );
        assert_eq!(
            field(r#"{"app":"../x","account":"a","token":"t","ue":"1.2.3.4:5"}"#).as_deref(),
            Some("app")
        );
        assert_eq!(
            field(r#"{"app":"s","account":7,"token":"t","ue":"1.2.3.4:5"}"#).as_deref(),
            Some("account")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","ue":"1.2.3.4:5"}"#).as_deref(),
            Some("token")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","token":"t","ue":"1.2.3.4:5","width":641}"#)
                .as_deref(),
            Some("width")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","token":"t","ue":"1.2.3.4:5","fps":"60"}"#)
                .as_deref(),
            Some("fps")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","token":"t","ue":"1.2.3.4:5","colour":1}"#)
                .as_deref(),
            Some("colour")
        );
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            "7500-7599".parse::<PortRange>(),
            Ok(PortRange {
                low: 7500,
                high: 7599
            })
        );
        assert_eq!(
            "7500".parse::<PortRange>(),
            Ok(PortRange {
                low: 7500,
                high: 7500
            })
        );
        assert!("7599-7500".parse::<PortRange>().is_err());
        assert!("0-5".parse::<PortRange>().is_err());
    }
}
