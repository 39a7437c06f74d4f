//! The tokio driver around [`Smf`] and the migration [`Manager`]: a UDP
//! socket for N4, the HTTP API (axum), N2-lite calls to gNBs and calls to
//! the edge agents (async, one task per call), the latency probe of the
//! edges.
//!
//! One task, the control thread, owns both state machines (`control`);
//! API handlers talk to it over a channel, and every call's answer comes
//! back to it as a command. The N1 event long polls wait outside it, on
//! the per-UE event lists (`events`).
//!
//! Modules: `control` (the loop and the mapping of both machines'
//! actions), `api` (session API, errors, router), `n1` (CSM's N1-lite
//! and the operator views), `events` (per-UE event lists, long poll),
//! `agent` (edge agent calls, latency probe), `n2` (N2-lite calls).
//!
//! # HTTP API
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /sessions` | `SessionRequest` | 201 `SessionInfo` |
//! | `GET /sessions`, `GET /sessions/{ue_id}/{psi}` | - | `SessionView`s |
//! | `DELETE /sessions/{ue_id}/{psi}` | - | 204 (the serving session of a registered service: the UE is gone) |
//! | `GET /upfs`, `GET /metrics` | - | `UpfStatus`es, Prometheus text |
//! | `POST /n2/gnbs` | `GnbRef` | 204 (a gNB started without tunnels: its sessions get theirs again) |
//! | `POST /n1/services` | `ServiceRegistration` | 201 `ServiceInfo` |
//! | `POST /n1/migrations` | `MigrationRequest` | 202 `MigrationAccepted` |
//! | `POST /n1/migrations/{id}/switched` | `SwitchReport` | 204 |
//! | `POST /n1/migrations/{id}/abandon` | `AbandonReport` | 204 |
//! | `GET /n1/events/{ue_id}?after=SEQ&wait_ms=MS` | - | 200 `UeEvents` (long poll) |
//! | `GET /services`, `GET /services/{ue_id}` | - | `ServiceInfo`s |
//! | `GET /migrations`, `GET /migrations/{id}` | - | `MigrationRecord`s |
//! | `GET /edges` | - | [`EdgeView`]s (with the measured latency) |
//!
//! Errors are a 4xx/5xx status with an `ApiError` `{error, field?}` body.

mod agent;
mod api;
mod control;
mod events;
mod n1;
mod n2;

pub use n1::EdgeView;

use crate::config::Config;
use crate::core::{ReqId, SessionKey, Smf, SmfError};
use crate::migration::{Manager, MigrationError, StartedInstance};
use control::{Control, Ctx};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;
use wire::ctl::{GnbRef, SessionInfo, SessionRequest, TunnelSetupResponse};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Binding the PFCP socket failed.
    #[error("cannot bind N4 socket {addr}: {source}")]
    BindN4 {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Binding the API listener failed.
    #[error("cannot bind API {addr}: {source}")]
    BindApi {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The migration manager refused the edges.
    #[error("migration manager: {0}")]
    Migration(#[from] MigrationError),
}

/// Work for the control thread, from API handlers and from call tasks.
type Call = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

enum Cmd {
    Create(
        SessionRequest,
        oneshot::Sender<Result<SessionInfo, SmfError>>,
    ),
    Release(String, u8, oneshot::Sender<Result<(), SmfError>>),
    /// Run on the control thread with both state machines at hand.
    Call(Call),
    N2Done {
        key: SessionKey,
        gen: u64,
        gnb: GnbRef,
        result: Result<TunnelSetupResponse, String>,
    },
    /// A gNB's tunnel list for the audit after our start.
    N2Audit {
        gnb: GnbRef,
        result: Result<Vec<crate::core::GnbTunnel>, String>,
    },
    /// A gNB announced its start (`POST /n2/gnbs`).
    GnbUp(GnbRef, oneshot::Sender<()>),
    /// An edge agent's answer to a migration's call.
    Agent(AgentDone),
    /// A round of the latency probe: each edge's latency (`None`:
    /// unreachable).
    Latency(Vec<(String, Option<Duration>)>),
}

/// An edge agent's answer, for the manager.
enum AgentDone {
    Pulled {
        mig: u64,
        result: Result<(), String>,
    },
    Started {
        mig: u64,
        result: Result<StartedInstance, String>,
    },
}

/// A running SMF.
pub struct Running {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Where the N4 socket is bound.
    pub n4_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the daemon and waits for its tasks.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Binds the sockets and starts the daemon's tasks on the current runtime.
pub async fn start(cfg: Config) -> Result<Running, DaemonError> {
    cfg.validate()?;
    let sock = UdpSocket::bind(cfg.n4_bind)
        .await
        .map_err(|source| DaemonError::BindN4 {
            addr: cfg.n4_bind,
            source,
        })?;
    let n4_addr = sock.local_addr().map_err(|source| DaemonError::BindN4 {
        addr: cfg.n4_bind,
        source,
    })?;
    let listener =
        TcpListener::bind(cfg.api_bind)
            .await
            .map_err(|source| DaemonError::BindApi {
                addr: cfg.api_bind,
                source,
            })?;
    let api_addr = listener
        .local_addr()
        .map_err(|source| DaemonError::BindApi {
            addr: cfg.api_bind,
            source,
        })?;
    let (now, wall) = (Instant::now(), SystemTime::now());
    // A stamp no earlier life of ours announced, and silence until it began.
    let (rts, wait) = crate::core::recovery_stamp(wall);
    let mut smf = Smf::new(&cfg, rts, now);
    smf.hold_until(now + wait);
    let mgr = Manager::new(cfg.migration.manager(), cfg.edge.clone(), now, wall)?;
    let (tx, rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = oneshot::channel();
    let events = events::Events::default();
    let control = Control::new(&cfg, smf, mgr, Arc::new(sock), tx.clone(), events.clone());
    let mut tasks = vec![tokio::spawn(control.run(rx, stop_rx))];
    let app = api::router(api::Api {
        tx: tx.clone(),
        events,
    });
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!("API server stopped: {e}");
        }
    }));
    if !cfg.edge.is_empty() {
        let edges = cfg.edge.iter().map(|e| (e.name.clone(), e.agent)).collect();
        let every = cfg.migration.latency_probe();
        tasks.push(tokio::spawn(agent::probe_loop(edges, every, tx)));
    }
    tracing::info!(%api_addr, %n4_addr, upfs = cfg.upf.len(), edges = cfg.edge.len(), "smf running");
    Ok(Running {
        api_addr,
        n4_addr,
        stop: Some(stop_tx),
        tasks,
    })
}

/// Runs until Ctrl-C / SIGTERM.
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    let r = start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("stopping");
    r.stop().await;
    Ok(())
}

/// Request ids of the core, shared by API and migration requests.
#[derive(Default)]
struct ReqIds(ReqId);

impl ReqIds {
    fn next(&mut self) -> ReqId {
        self.0 += 1;
        self.0
    }
}
