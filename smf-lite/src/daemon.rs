//! The tokio driver around [`Smf`]: a UDP socket for N4, the HTTP API
//! (axum), N2-lite calls to gNBs (async, one task per call).
//!
//! One task owns the state machine; API handlers talk to it over a channel.

use crate::client::N2Client;
use crate::config::Config;
use crate::core::{Action, ReqId, SessionKey, SessionView, Smf, SmfError, UpfStatus};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use wire::ctl::{ApiError, GnbRef, SessionInfo, SessionRequest, TunnelSetupResponse};

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
}

type Query = Box<dyn FnOnce(&Smf) + Send>;

enum Cmd {
    Create(
        SessionRequest,
        oneshot::Sender<Result<SessionInfo, SmfError>>,
    ),
    Release(String, u8, oneshot::Sender<Result<(), SmfError>>),
    Query(Query),
    N2Done {
        key: SessionKey,
        gen: u64,
        gnb: GnbRef,
        result: Result<TunnelSetupResponse, String>,
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
    let rts = wire::pfcp::ntp_seconds(std::time::SystemTime::now());
    let smf = Smf::new(&cfg, rts, Instant::now());
    let (tx, rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = oneshot::channel();
    let core = tokio::spawn(core_loop(smf, Arc::new(sock), rx, tx.clone(), stop_rx));
    let app = router(tx);
    let api = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!("API server stopped: {e}");
        }
    });
    tracing::info!(%api_addr, %n4_addr, upfs = cfg.upf.len(), "smf running");
    Ok(Running {
        api_addr,
        n4_addr,
        stop: Some(stop_tx),
        tasks: vec![core, api],
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

async fn core_loop(
    mut smf: Smf,
    sock: Arc<UdpSocket>,
    mut rx: mpsc::Receiver<Cmd>,
    tx: mpsc::Sender<Cmd>,
    mut stop: oneshot::Receiver<()>,
) {
    let n2 = N2 {
        http: N2Client::new(Duration::from_secs(5)),
        done: tx.clone(),
    };
    let mut creates: HashMap<ReqId, oneshot::Sender<Result<SessionInfo, SmfError>>> =
        HashMap::new();
    let mut releases: HashMap<ReqId, oneshot::Sender<Result<(), SmfError>>> = HashMap::new();
    let mut next_req: ReqId = 1;
    let mut buf = vec![0u8; 65536];
    smf.handle_timeout(Instant::now());
    loop {
        drain(&mut smf, &sock, &n2, &mut creates, &mut releases).await;
        let deadline = smf
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut stop => break,
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                let now = Instant::now();
                match cmd {
                    Cmd::Create(r, reply) => {
                        let id = next_req;
                        next_req += 1;
                        creates.insert(id, reply);
                        smf.create_session(now, id, r);
                    }
                    Cmd::Release(ue, psi, reply) => {
                        let id = next_req;
                        next_req += 1;
                        releases.insert(id, reply);
                        smf.release_session(now, id, &ue, psi);
                    }
                    Cmd::Query(f) => f(&smf),
                    Cmd::N2Done { key, gen, gnb, result } => smf.n2_setup_done(now, &key, gen, &gnb, result),
                }
            }
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => smf.handle_pfcp(Instant::now(), from, &buf[..n]),
                Err(e) => debug!("N4 recv: {e}"),
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                smf.handle_timeout(Instant::now());
            }
        }
    }
}

async fn drain(
    smf: &mut Smf,
    sock: &UdpSocket,
    n2: &N2,
    creates: &mut HashMap<ReqId, oneshot::Sender<Result<SessionInfo, SmfError>>>,
    releases: &mut HashMap<ReqId, oneshot::Sender<Result<(), SmfError>>>,
) {
    while let Some(a) = smf.poll_action() {
        match a {
            Action::SendPfcp { to, data } => {
                if let Err(e) = sock.send_to(&data, to).await {
                    debug!(%to, "N4 send: {e}");
                }
            }
            Action::N2Setup {
                key,
                gen,
                gnb,
                setup,
                replace_dl_teid,
            } => n2.submit(N2Job::Setup {
                key,
                gen,
                gnb,
                setup,
                replace_dl_teid,
            }),
            Action::N2Delete { gnb, dl_teid } => n2.submit(N2Job::Delete { gnb, dl_teid }),
            Action::CreateDone { req, result } => {
                if let Some(r) = creates.remove(&req) {
                    let _ = r.send(result);
                }
            }
            Action::ReleaseDone { req, result } => {
                if let Some(r) = releases.remove(&req) {
                    let _ = r.send(result);
                }
            }
        }
    }
}

enum N2Job {
    Setup {
        key: SessionKey,
        gen: u64,
        gnb: GnbRef,
        setup: wire::ctl::TunnelSetup,
        replace_dl_teid: Option<u32>,
    },
    Delete {
        gnb: GnbRef,
        dl_teid: u32,
    },
}

/// N2-lite calls, each a task on the SMF's runtime; a setup's result goes
/// back to the core task as [`Cmd::N2Done`].
struct N2 {
    http: N2Client,
    done: mpsc::Sender<Cmd>,
}

impl N2 {
    fn submit(&self, job: N2Job) {
        let (http, done) = (self.http.clone(), self.done.clone());
        tokio::spawn(async move { run_n2(&http, &done, job).await });
    }
}

async fn run_n2(http: &N2Client, done: &mpsc::Sender<Cmd>, job: N2Job) {
    match job {
        N2Job::Setup {
            key,
            gen,
            gnb,
            setup,
            replace_dl_teid,
        } => {
            if let Some(old) = replace_dl_teid {
                if let Err(e) = http.delete(&gnb.n2_api, old).await {
                    debug!("N2 delete of the old tunnel: {e}");
                }
            }
            let result = http
                .setup(&gnb.n2_api, &setup)
                .await
                .map_err(|e| e.to_string());
            let _ = done
                .send(Cmd::N2Done {
                    key,
                    gen,
                    gnb,
                    result,
                })
                .await;
        }
        N2Job::Delete { gnb, dl_teid } => {
            if let Err(e) = http.delete(&gnb.n2_api, dl_teid).await {
                warn!(gnb = %gnb.name, dl_teid, "N2 tunnel delete failed: {e}");
            }
        }
    }
}

// ----- HTTP API -----

/// An API error response.
pub struct ApiFailure(StatusCode, ApiError);

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<SmfError> for ApiFailure {
    fn from(e: SmfError) -> Self {
        ApiFailure(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError {
                error: e.to_string(),
                field: e.field().map(str::to_owned),
            },
        )
    }
}

fn bad(field: Option<&str>, msg: impl Into<String>) -> ApiFailure {
    ApiFailure(
        StatusCode::BAD_REQUEST,
        ApiError {
            error: msg.into(),
            field: field.map(str::to_owned),
        },
    )
}

fn gone() -> ApiFailure {
    ApiFailure(
        StatusCode::SERVICE_UNAVAILABLE,
        ApiError {
            error: "SMF is stopping".into(),
            field: None,
        },
    )
}

/// The field a serde_json error is about: the first `name` in backquotes.
fn serde_field(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(msg[start..end].to_owned())
}

/// The API router; `tx` reaches the core task.
fn router(tx: mpsc::Sender<Cmd>) -> Router {
    Router::new()
        .route("/sessions", get(list_sessions).post(create_session))
        .route(
            "/sessions/{ue_id}/{psi}",
            get(get_session).delete(release_session),
        )
        .route("/upfs", get(list_upfs))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiFailure(
                StatusCode::NOT_FOUND,
                ApiError {
                    error: "no such endpoint (see GET /sessions, /upfs, /metrics)".into(),
                    field: None,
                },
            )
        })
        .with_state(tx)
}

async fn query<T: Send + 'static>(
    tx: &mpsc::Sender<Cmd>,
    f: impl FnOnce(&Smf) -> T + Send + 'static,
) -> Result<T, ApiFailure> {
    let (otx, orx) = oneshot::channel();
    tx.send(Cmd::Query(Box::new(move |smf| {
        let _ = otx.send(f(smf));
    })))
    .await
    .map_err(|_| gone())?;
    orx.await.map_err(|_| gone())
}

async fn create_session(
    State(tx): State<mpsc::Sender<Cmd>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<SessionInfo>), ApiFailure> {
    let req: SessionRequest = serde_json::from_slice(&body).map_err(|e| {
        let msg = e.to_string();
        let field = serde_field(&msg);
        bad(field.as_deref(), format!("bad SessionRequest: {msg}"))
    })?;
    let (otx, orx) = oneshot::channel();
    tx.send(Cmd::Create(req, otx)).await.map_err(|_| gone())?;
    let info = orx.await.map_err(|_| gone())??;
    Ok((StatusCode::CREATED, Json(info)))
}

fn parse_psi(psi: &str) -> Result<u8, ApiFailure> {
    psi.parse::<u8>()
        .ok()
        .filter(|p| (1..=15).contains(p))
        .ok_or_else(|| {
            bad(
                Some("pdu_session_id"),
                format!("`{psi}` is not a PDU session id 1..=15"),
            )
        })
}

async fn release_session(
    State(tx): State<mpsc::Sender<Cmd>>,
    Path((ue_id, psi)): Path<(String, String)>,
) -> Result<StatusCode, ApiFailure> {
    let psi = parse_psi(&psi)?;
    let (otx, orx) = oneshot::channel();
    tx.send(Cmd::Release(ue_id, psi, otx))
        .await
        .map_err(|_| gone())?;
    orx.await.map_err(|_| gone())??;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_session(
    State(tx): State<mpsc::Sender<Cmd>>,
    Path((ue_id, psi)): Path<(String, String)>,
) -> Result<Json<SessionView>, ApiFailure> {
    let psi = parse_psi(&psi)?;
    let ue = ue_id.clone();
    query(&tx, move |s| s.session(&ue, psi))
        .await?
        .map(Json)
        .ok_or_else(|| SmfError::NotFound { ue_id, psi }.into())
}

async fn list_sessions(
    State(tx): State<mpsc::Sender<Cmd>>,
) -> Result<Json<Vec<SessionView>>, ApiFailure> {
    query(&tx, |s| s.sessions()).await.map(Json)
}

async fn list_upfs(
    State(tx): State<mpsc::Sender<Cmd>>,
) -> Result<Json<Vec<UpfStatus>>, ApiFailure> {
    query(&tx, |s| s.upfs()).await.map(Json)
}

async fn metrics(State(tx): State<mpsc::Sender<Cmd>>) -> Result<String, ApiFailure> {
    query(&tx, |s| s.metrics_text()).await
}
