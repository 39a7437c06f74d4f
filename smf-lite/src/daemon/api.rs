//! The HTTP API: the router, its errors, and the session endpoints (the
//! migration ones are in [`super::n1`]).

use super::control::Ctx;
use super::events::Events;
use super::{n1, Cmd};
use crate::core::{SessionView, Smf, SmfError, UpfStatus};
use crate::migration::MigrationError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use wire::ctl::{ApiError, SessionInfo, SessionRequest};

/// What every handler has: the way to the control thread, and the event
/// lists (read without it).
#[derive(Clone)]
pub(super) struct Api {
    pub tx: mpsc::Sender<Cmd>,
    pub events: Events,
}

/// An API error response.
pub struct ApiFailure(pub(super) StatusCode, pub(super) ApiError);

impl ApiFailure {
    pub(super) fn new(status: u16, field: Option<&str>, msg: impl Into<String>) -> ApiFailure {
        ApiFailure(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError {
                error: msg.into(),
                field: field.map(str::to_owned),
            },
        )
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<SmfError> for ApiFailure {
    fn from(e: SmfError) -> Self {
        ApiFailure::new(e.status(), e.field(), e.to_string())
    }
}

impl From<MigrationError> for ApiFailure {
    fn from(e: MigrationError) -> Self {
        ApiFailure::new(e.status(), e.field(), e.to_string())
    }
}

pub(super) fn bad(field: Option<&str>, msg: impl Into<String>) -> ApiFailure {
    ApiFailure::new(400, field, msg)
}

fn gone() -> ApiFailure {
    ApiFailure::new(503, None, "SMF is stopping")
}

/// The field a serde_json error is about: the first `name` in backquotes.
fn serde_field(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(msg[start..end].to_owned())
}

/// A JSON body of type `T`; a 400 naming the field if it is not one.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiFailure> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let field = serde_field(&msg);
        bad(field.as_deref(), format!("bad {what}: {msg}"))
    })
}

/// The API router.
pub(super) fn router(api: Api) -> Router {
    Router::new()
        .route("/sessions", get(list_sessions).post(create_session))
        .route(
            "/sessions/{ue_id}/{psi}",
            get(get_session).delete(release_session),
        )
        .route("/upfs", get(list_upfs))
        .route("/n2/gnbs", axum::routing::post(gnb_up))
        .route("/metrics", get(metrics))
        .merge(n1::routes())
        .fallback(|| async {
            ApiFailure::new(
                404,
                None,
                "no such endpoint (see GET /sessions, /upfs, /metrics, /services, /migrations, /edges)",
            )
        })
        .with_state(api)
}

/// Runs `f` on the control thread and returns what it gives.
pub(super) async fn call<T: Send + 'static>(
    tx: &mpsc::Sender<Cmd>,
    f: impl FnOnce(&mut Ctx<'_>) -> T + Send + 'static,
) -> Result<T, ApiFailure> {
    let (otx, orx) = oneshot::channel();
    tx.send(Cmd::Call(Box::new(move |ctx| {
        let _ = otx.send(f(ctx));
    })))
    .await
    .map_err(|_| gone())?;
    orx.await.map_err(|_| gone())
}

async fn query<T: Send + 'static>(
    tx: &mpsc::Sender<Cmd>,
    f: impl FnOnce(&Smf) -> T + Send + 'static,
) -> Result<T, ApiFailure> {
    call(tx, move |ctx| f(ctx.smf)).await
}

async fn create_session(
    State(api): State<Api>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<SessionInfo>), ApiFailure> {
    let req: SessionRequest = parse_body(&body, "SessionRequest")?;
    let (otx, orx) = oneshot::channel();
    api.tx
        .send(Cmd::Create(req, otx))
        .await
        .map_err(|_| gone())?;
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
    State(api): State<Api>,
    Path((ue_id, psi)): Path<(String, String)>,
) -> Result<StatusCode, ApiFailure> {
    let psi = parse_psi(&psi)?;
    let (otx, orx) = oneshot::channel();
    api.tx
        .send(Cmd::Release(ue_id, psi, otx))
        .await
        .map_err(|_| gone())?;
    orx.await.map_err(|_| gone())??;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_session(
    State(api): State<Api>,
    Path((ue_id, psi)): Path<(String, String)>,
) -> Result<Json<SessionView>, ApiFailure> {
    let psi = parse_psi(&psi)?;
    let ue = ue_id.clone();
    query(&api.tx, move |s| s.session(&ue, psi))
        .await?
        .map(Json)
        .ok_or_else(|| SmfError::NotFound { ue_id, psi }.into())
}

/// `POST /n2/gnbs`: a gNB (re)started with no tunnel; its sessions get
/// theirs again.
async fn gnb_up(State(api): State<Api>, body: axum::body::Bytes) -> Result<StatusCode, ApiFailure> {
    let gnb: wire::ctl::GnbRef = parse_body(&body, "GnbRef")?;
    if gnb.name.is_empty() {
        return Err(bad(Some("name"), "must not be empty".to_string()));
    }
    if gnb.n2_api.parse::<std::net::SocketAddr>().is_err() {
        return Err(bad(
            Some("n2_api"),
            format!("`{}` is not IP:PORT", gnb.n2_api),
        ));
    }
    let (otx, orx) = oneshot::channel();
    api.tx
        .send(Cmd::GnbUp(gnb, otx))
        .await
        .map_err(|_| gone())?;
    orx.await.map_err(|_| gone())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_sessions(State(api): State<Api>) -> Result<Json<Vec<SessionView>>, ApiFailure> {
    query(&api.tx, |s| s.sessions()).await.map(Json)
}

async fn list_upfs(State(api): State<Api>) -> Result<Json<Vec<UpfStatus>>, ApiFailure> {
    query(&api.tx, |s| s.upfs()).await.map(Json)
}

async fn metrics(State(api): State<Api>) -> Result<Response, ApiFailure> {
    call(&api.tx, |ctx| {
        let foreign = ctx.pfcp_foreign;
        ctx.smf.metrics_text_with(move |f| {
            f.counter_value(
                "smf_pfcp_foreign_dropped_total",
                "PFCP datagrams from no configured UPF's address, dropped.",
                foreign,
            )
        })
    })
    .await
    .map(ctlhttp::metrics::response)
}
