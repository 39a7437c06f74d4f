//! `ue run`: keeps the UE's sessions and serves a small HTTP API for the
//! CLI; releases everything when it stops.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /sessions` | [`AddSession`] | 201 [`SessionInfo`] |
//! | `GET /sessions` | - | 200 `[SessionInfo]` |
//! | `DELETE /sessions/{psi}` | - | 204 |
//! | `POST /play` | [`PlayStart`] | 201 [`crate::service::UeStatus`] |
//! | `GET /status` | - | 200 [`crate::service::UeStatus`] |
//! | `POST /migrate` | [`MigrateRequest`] | 202 [`wire::ctl::migration::MigrationAccepted`] |
//! | `DELETE /play` | - | 200 [`crate::service::PlayOutcome`] |
//!
//! The play and migration calls are CSM's (see [`crate::service`]).
//!
//! Errors are 4xx/5xx with an [`ApiError`](wire::ctl::ApiError) body.

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ctlhttp::server::{parse_json, ApiErr};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use wire::ctl::SessionInfo;

use crate::config::UeConfig;
use crate::service::{MigrateRequest, PlayStart, Service, ServiceError};
use crate::session::{SessionError, SessionManager};

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum UeError {
    /// The session manager could not start (netlink, radio interface).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The API could not listen.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// `POST /sessions` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSession {
    /// PDU session id.
    pub psi: u8,
    /// Data network name.
    #[serde(default = "internet")]
    pub dnn: String,
    /// UPF to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upf: Option<String>,
}

fn internet() -> String {
    "internet".into()
}

fn err(e: SessionError) -> ApiErr {
    let (status, field) = match &e {
        SessionError::BadPsi(_) => (StatusCode::BAD_REQUEST, Some("psi")),
        SessionError::Exists(_) => (StatusCode::CONFLICT, Some("psi")),
        SessionError::NotFound(_) => (StatusCode::NOT_FOUND, Some("psi")),
        SessionError::Rejected { status, error } => {
            return ApiErr::new(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                error.error.clone(),
                error.field.as_deref(),
            )
        }
        SessionError::Relay(_) => (StatusCode::BAD_GATEWAY, None),
        SessionError::Net(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    ApiErr::new(status, e.to_string(), field)
}

/// The daemon's shared state: the sessions and the service played.
#[derive(Debug)]
pub struct Ue {
    /// The sessions.
    pub sm: Arc<SessionManager>,
    /// The service, while one plays.
    pub service: tokio::sync::Mutex<Option<Arc<Service>>>,
}

fn service_err(e: ServiceError) -> ApiErr {
    let (status, field) = match &e {
        ServiceError::Bad { field, .. } => (StatusCode::BAD_REQUEST, Some(field.to_string())),
        ServiceError::NotPlaying => (StatusCode::NOT_FOUND, None),
        ServiceError::Playing => (StatusCode::CONFLICT, None),
        ServiceError::Refused { status, field, .. } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            field.clone(),
        ),
        ServiceError::Session(_) => (StatusCode::BAD_GATEWAY, None),
        ServiceError::Stream(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    ApiErr::new(status, e.to_string(), field.as_deref())
}

async fn current(u: &Ue) -> Result<Arc<Service>, ApiErr> {
    u.service
        .lock()
        .await
        .clone()
        .ok_or_else(|| service_err(ServiceError::NotPlaying))
}

async fn play(State(u): State<Arc<Ue>>, body: Bytes) -> Result<Response, ApiErr> {
    let req: PlayStart = parse_json(&body)?;
    let mut slot = u.service.lock().await;
    if slot.is_some() {
        return Err(service_err(ServiceError::Playing));
    }
    let svc = Service::start(u.sm.clone(), req)
        .await
        .map_err(service_err)?;
    let status = svc.status();
    *slot = Some(svc);
    Ok((StatusCode::CREATED, Json(status)).into_response())
}

async fn status(State(u): State<Arc<Ue>>) -> Result<Response, ApiErr> {
    Ok(Json(current(&u).await?.status()).into_response())
}

async fn migrate(State(u): State<Arc<Ue>>, body: Bytes) -> Result<Response, ApiErr> {
    let req: MigrateRequest = parse_json(&body)?;
    let svc = current(&u).await?;
    let acc = svc.migrate(req, false).await.map_err(service_err)?;
    Ok((StatusCode::ACCEPTED, Json(acc)).into_response())
}

async fn follow(State(u): State<Arc<Ue>>, body: Bytes) -> Result<Response, ApiErr> {
    let req: crate::service::FollowRequest = parse_json(&body)?;
    let svc = current(&u).await?;
    let m = svc.follow(req).await.map_err(service_err)?;
    Ok(Json(m).into_response())
}

async fn stop_play(State(u): State<Arc<Ue>>) -> Result<Response, ApiErr> {
    let svc = u
        .service
        .lock()
        .await
        .take()
        .ok_or_else(|| service_err(ServiceError::NotPlaying))?;
    let out = svc.stop().await.map_err(service_err)?;
    Ok(Json(out).into_response())
}

/// The API router.
pub fn router(u: Arc<Ue>) -> Router {
    Router::new()
        .route("/sessions", post(add).get(list))
        .route("/sessions/{psi}", delete(del))
        .route("/play", post(play).delete(stop_play))
        .route("/status", get(status))
        .route("/migrate", post(migrate))
        .route("/follow", post(follow))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiErr::new(StatusCode::NOT_FOUND, "no such endpoint", None) })
        .with_state(u)
}

async fn add(State(u): State<Arc<Ue>>, body: Bytes) -> Result<Response, ApiErr> {
    let m = &u.sm;
    let req: AddSession = parse_json(&body)?;
    let info = m
        .establish(req.psi, &req.dnn, req.upf.as_deref())
        .await
        .map_err(err)?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn metrics(State(u): State<Arc<Ue>>) -> Response {
    let m = &u.sm;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.metrics_text().await,
    )
        .into_response()
}

async fn list(State(u): State<Arc<Ue>>) -> Json<Vec<SessionInfo>> {
    let m = &u.sm;
    Json(m.list().await)
}

async fn del(State(u): State<Arc<Ue>>, Path(psi): Path<String>) -> Result<StatusCode, ApiErr> {
    let m = &u.sm;
    let psi: u8 = psi.parse().map_err(|_| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            format!("`{psi}` is not a PDU session id"),
            Some("psi"),
        )
    })?;
    m.release(psi).await.map_err(err)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs the UE daemon until `shutdown`, then releases every session.
/// Inside a tokio runtime, in the UE's namespace.
pub async fn run(cfg: UeConfig, shutdown: impl Future<Output = ()>) -> Result<(), UeError> {
    let api = cfg.api;
    let specs = cfg.sessions.clone();
    let m = Arc::new(SessionManager::new(cfg).await?);
    let ue = Arc::new(Ue {
        sm: m.clone(),
        service: tokio::sync::Mutex::new(None),
    });
    let l = tokio::net::TcpListener::bind(api)
        .await
        .map_err(|source| UeError::Listen { addr: api, source })?;
    match m.release_leftovers().await {
        Ok(psis) if !psis.is_empty() => {
            info!(released = ?psis, "sessions of an earlier life of this UE released");
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not list the sessions the network holds for this UE"),
    }
    for s in &specs {
        if let Err(e) = m.establish(s.psi, &s.dnn, s.upf.as_deref()).await {
            warn!(psi = s.psi, error = %e, "configured session not established");
        }
    }
    info!(ue = %m.config().ue_id, %api, "UE ready");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(l, router(ue.clone()))
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .into_future(),
    );
    shutdown.await;
    info!("UE stopping: releasing sessions");
    let _ = tx.send(());
    let _ = server.await;
    if let Some(svc) = ue.service.lock().await.take() {
        if let Err(e) = svc.stop().await {
            warn!(error = %e, "play did not stop cleanly");
        }
    }
    m.release_all().await;
    Ok(())
}
