//! `ue run`: keeps the UE's sessions and serves a small HTTP API for the
//! CLI; releases everything when it stops.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /sessions` | [`AddSession`] | 201 [`SessionInfo`] |
//! | `GET /sessions` | - | 200 `[SessionInfo]` |
//! | `DELETE /sessions/{psi}` | - | 204 |
//!
//! Errors are 4xx/5xx with an [`ApiError`] body.

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gnb::api::{parse_json, ApiErr};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use wire::ctl::{ApiError, SessionInfo};

use crate::config::UeConfig;
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
            return ApiErr(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                error.clone(),
            )
        }
        SessionError::Relay(_) => (StatusCode::BAD_GATEWAY, None),
        SessionError::Net(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    ApiErr(
        status,
        ApiError {
            error: e.to_string(),
            field: field.map(str::to_string),
        },
    )
}

/// The API router.
pub fn router(m: Arc<SessionManager>) -> Router {
    Router::new()
        .route("/sessions", post(add).get(list))
        .route("/sessions/{psi}", delete(del))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiErr(
                StatusCode::NOT_FOUND,
                ApiError {
                    error: "no such endpoint".into(),
                    field: None,
                },
            )
        })
        .with_state(m)
}

async fn add(State(m): State<Arc<SessionManager>>, body: Bytes) -> Result<Response, ApiErr> {
    let req: AddSession = parse_json(&body)?;
    let info = m
        .establish(req.psi, &req.dnn, req.upf.as_deref())
        .await
        .map_err(err)?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn metrics(State(m): State<Arc<SessionManager>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.metrics_text().await,
    )
        .into_response()
}

async fn list(State(m): State<Arc<SessionManager>>) -> Json<Vec<SessionInfo>> {
    Json(m.list().await)
}

async fn del(
    State(m): State<Arc<SessionManager>>,
    Path(psi): Path<String>,
) -> Result<StatusCode, ApiErr> {
    let psi: u8 = psi.parse().map_err(|_| {
        ApiErr(
            StatusCode::BAD_REQUEST,
            ApiError {
                error: format!("`{psi}` is not a PDU session id"),
                field: Some("psi".into()),
            },
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
    let l = tokio::net::TcpListener::bind(api)
        .await
        .map_err(|source| UeError::Listen { addr: api, source })?;
    for s in &specs {
        if let Err(e) = m.establish(s.psi, &s.dnn, s.upf.as_deref()).await {
            warn!(psi = s.psi, error = %e, "configured session not established");
        }
    }
    info!(ue = %m.config().ue_id, %api, "UE ready");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(l, router(m.clone()))
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .into_future(),
    );
    shutdown.await;
    info!("UE stopping: releasing sessions");
    let _ = tx.send(());
    let _ = server.await;
    m.release_all().await;
    Ok(())
}
