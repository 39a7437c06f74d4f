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
//! - `POST /apps/{app}/pull` -> 200 [`Pulled`] `{app, version, pulled,
//!   pull_ms, bytes}`: makes the edge repository warm without starting
//!   anything (pulls the application when missing; `pulled` false, `pull_ms`
//!   and `bytes` 0 when it was there). Errors as for a start: 404, 502, and
//!   nothing half-installed. Concurrent pulls and starts of one application
//!   pull it once.
//! - `DELETE /apps/{app}` -> 200 [`Removed`] `{app, version}`: makes the edge
//!   repository cold again; 409 while an instance of the application runs
//!   or starts (an instance that exited does not count), 404 when it is not
//!   in the edge repository. With the pull-only request, a migration run sets
//!   the destination's warmth explicitly.
//! - `GET /apps` (edge repository), `GET /metrics`, `GET /healthz`.
//! - `POST /instances/{id}/statecopy`, `GET /statecopy`: state-copy
//!   migration, the VM/container baselines (see [`statecopy`]); the copy
//!   listener runs with `--copy-listen ADDR`.
//!
//! # Timing of a start
//!
//! All times are from the moment the `POST /instances` request arrived (the
//! host's real-time clock, which the agent and its instances share):
//!
//! - `pull_ms`: the pull, when there was one;
//! - `start_ms`: until the process was ready (logged in, endpoints up), as
//!   the instance itself reports it (`app_instance_ready_unix_ns` on its
//!   metrics endpoint; when it does not, the moment the agent saw it ready);
//!   `spawn_ms` is the part after the process was spawned;
//! - `first_frame_ms`: until the instance's first RTP frame had been sent
//!   (`app_instance_first_frame_unix_ns`, written by the instance once all
//!   the frame's datagrams have left). The `POST` answers at readiness and
//!   does not wait for the first frame: its `first_frame_ms` is null unless
//!   the frame had already gone. `GET /instances/{id}` (and `GET
//!   /instances`) asks a running instance that has not reported it yet, and
//!   carries it from then on; so a client that needs it polls the `GET`.
//!   `first_frame_ms >= start_ms` always: an instance is ready before it
//!   renders.
//!
//! Every instance record also carries `h264_simd`, openh264's SIMD flags
//! in the instance's own build as it reported them at readiness
//! (`app_instance_h264_simd_flags`), null when it was built without the
//! codec's assembly.
//!
//! # Ports
//!
//! Each instance gets an input (UDP) and a metrics (TCP) port from
//! `--input-ports` and `--metrics-ports`. An instance holds them while its
//! process runs: once it exits, on its own or stopped, they serve the next
//! start (its record, still listed until `DELETE`, keeps showing them). The
//! agent answers 503 only when the running instances and the starts in
//! progress hold the whole range.
//!
//! # Errors
//!
//! Errors are `{"error": ..., "field"?: ..., "log"?: [...]}`: 400 for a bad
//! request (naming the field), 404 for an application in neither repository
//! or an unknown instance, 409 for removing an application in use, 502 when
//! the cloud repository is unreachable or sends a bad package (nothing is
//! installed then), 500 when an instance fails to start, 503 when no port is
//! free or the agent is stopping.
//!
//! On SIGTERM/SIGINT the agent stops every instance, aborts pulls in
//! progress (removing their staging directories) and exits.
//!
//! # Modules
//!
//! [`config`] (command line, port ranges), [`error`] (errors and their
//! statuses), [`api`] (request and answer types), and, private: `handlers`
//! (HTTP), `instances` (starting, watching and stopping instances),
//! `process` (the child process, its readiness probe), `ports` (port
//! allocation), `pull` (the edge repository filled from the cloud, made
//! warm or cold on request), `metrics`.

pub mod api;
pub mod config;
pub mod error;
mod handlers;
mod instances;
mod metrics;
mod ports;
mod process;
mod pull;
pub mod statecopy;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

pub use api::{InstanceInfo, InstanceStatus, Pulled, Removed, StartRequest, Started, Stopped};
pub use config::{AgentArgs, PortRange};
pub use error::{AgentError, ApiError};

use crate::repo::{self, Repository};
use instances::Instance;
use metrics::Metrics;

/// The agent's state, shared by the handlers (its methods live in the
/// submodules by job).
struct Agent {
    args: AgentArgs,
    app_bin: PathBuf,
    run_dir: PathBuf,
    cloud: String,
    repo: Repository,
    /// Pulls and state-copy starts (blocking, on spawn_blocking threads).
    http: ctlhttp::blocking::Client,
    /// Calls to the agent's own instances (`/switch`), from async handlers.
    instances_http: ctlhttp::Client,
    instances: Mutex<BTreeMap<String, Arc<Instance>>>,
    reserved: Mutex<HashSet<(bool, u16)>>,
    /// Per application: serializes its pulls and its removal.
    pull_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per application: starts in progress that use it (see `pull::AppUse`).
    app_users: Mutex<HashMap<String, usize>>,
    next_id: AtomicU64,
    cancel: Arc<AtomicBool>,
    pulls_in_flight: AtomicU64,
    m: Metrics,
    /// State copies (see [`statecopy`]).
    copy: Arc<statecopy::CopyState>,
}

impl Agent {
    /// A duration from seconds, 0 for anything not finite and positive.
    fn secs(v: f64) -> Duration {
        Duration::from_secs_f64(if v.is_finite() && v > 0.0 { v } else { 0.0 })
    }
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
    // Connecting must succeed within 5 s (the connector keeps the timeout
    // it was made with); a whole call, within the pull timeout.
    let http = ctlhttp::blocking::Client::new(Duration::from_secs(5))
        .with_timeout(Agent::secs(args.pull_timeout));
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
    let copy_listener =
        match args.copy_listen {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.map_err(|source| {
                AgentError::Setup {
                    what: format!("cannot listen for state copies on {a}"),
                    source,
                }
            })?),
            None => None,
        };
    match args.token.as_deref() {
        Some("") => {
            return Err(AgentError::Setup {
                what: "--token: an empty token".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "give a token, or no --token",
                ),
            })
        }
        Some(_) => info!("API requests need the agent token (Authorization: Bearer)"),
        None => warn!(
            "no --token: the agent's API is open to whoever reaches {}",
            args.listen
        ),
    }
    let agent = Arc::new(Agent {
        args,
        app_bin,
        run_dir,
        cloud,
        repo,
        http,
        // An instance answers a switch in bytes: read at most 1 MiB.
        instances_http: ctlhttp::Client::new(Duration::from_secs(5)).with_body_limit(1 << 20),
        instances: Mutex::default(),
        reserved: Mutex::default(),
        pull_locks: Mutex::default(),
        app_users: Mutex::default(),
        next_id: AtomicU64::new(1),
        cancel: Arc::new(AtomicBool::new(false)),
        pulls_in_flight: AtomicU64::new(0),
        m: Metrics::default(),
        copy: Arc::default(),
    });
    let (tx, api) =
        repo::serve_until_stopped(listener, handlers::router(agent.clone()), "API server");
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
    let mut tasks = vec![api, monitor];
    if let Some(l) = copy_listener {
        tasks.push(statecopy::serve(l, agent.copy.clone()));
    }
    Ok(RunningAgent {
        addr,
        agent,
        stop: Some(tx),
        tasks,
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
        ctlhttp::daemon::shutdown_signal().await;
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
