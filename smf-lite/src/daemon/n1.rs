//! CSM's N1-lite on the SMF API (relayed verbatim by the gNB; see
//! `wire::ctl::migration`) and the operator's views of the migration
//! manager: services, migrations, edges.

use super::api::{bad, call, parse_body, Api, ApiFailure};
use super::control::{ms, Ctx};
use crate::core::SessionState;
use crate::migration::{EdgeConfig, MigrationError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tracing::info;
use wire::ctl::migration::{
    AbandonReport, EventsQuery, MigrationAccepted, MigrationRecord, MigrationRequest, ServiceInfo,
    ServiceRegistration, SwitchReport, UeEvents, EVENTS_MAX_WAIT_MS,
};

/// An edge as `GET /edges` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeView {
    pub name: String,
    pub upf: String,
    pub dnn: String,
    pub agent: SocketAddr,
    pub app_server: IpAddr,
    /// The latest measure from the core (TCP connect and `GET /healthz` to
    /// its agent), ms; absent while unreachable or not measured yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl EdgeView {
    fn new(e: &EdgeConfig, latency: Option<Duration>) -> EdgeView {
        EdgeView {
            name: e.name.clone(),
            upf: e.upf.clone(),
            dnn: e.dnn().to_owned(),
            agent: e.agent,
            app_server: e.app_server,
            latency_ms: latency.map(ms),
        }
    }
}

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/n1/services", post(register))
        .route("/n1/migrations", post(request))
        .route("/n1/migrations/{id}/{report}", post(report))
        .route("/n1/events/{ue_id}", get(events))
        .route("/services", get(services))
        .route("/services/{ue_id}", get(service))
        .route("/migrations", get(migrations))
        .route("/migrations/{id}", get(migration))
        .route("/edges", get(edges))
}

/// With no `[[edge]]` configured, migration is off.
fn edges_configured(ctx: &Ctx<'_>, field: &str) -> Result<(), ApiFailure> {
    if ctx.mgr.edges().next().is_none() {
        return Err(ApiFailure::new(
            503,
            Some(field),
            "no edges are configured at this SMF ([[edge]] in smf.toml): migration is off",
        ));
    }
    Ok(())
}

async fn register(
    State(api): State<Api>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ServiceInfo>), ApiFailure> {
    let reg: ServiceRegistration = parse_body(&body, "ServiceRegistration")?;
    let info = call(&api.tx, move |ctx| register_on(ctx, reg)).await??;
    Ok((StatusCode::CREATED, Json(info)))
}

/// A registration's session must be the UE's, up, and anchored at the
/// named edge's UPF; the gNB it runs through is the manager's way to the UE.
fn register_on(ctx: &mut Ctx<'_>, reg: ServiceRegistration) -> Result<ServiceInfo, ApiFailure> {
    edges_configured(ctx, "edge")?;
    let edge = ctx
        .mgr
        .edge(&reg.edge)
        .ok_or_else(|| MigrationError::UnknownEdge {
            field: "edge",
            edge: reg.edge.clone(),
        })?;
    let psi = reg.pdu_session_id;
    let Some(s) = ctx.smf.session(&reg.ue_id, psi) else {
        return Err(ApiFailure::new(
            404,
            Some("pdu_session_id"),
            format!("UE `{}` has no PDU session {psi} at this SMF", reg.ue_id),
        ));
    };
    if s.info.upf != edge.upf {
        return Err(ApiFailure::new(
            409,
            Some("edge"),
            format!(
                "PDU session {psi} of UE `{}` is anchored at {}, not at {} (the UPF of edge `{}`)",
                reg.ue_id, s.info.upf, edge.upf, edge.name
            ),
        ));
    }
    if s.state != SessionState::Active {
        return Err(ApiFailure::new(
            409,
            Some("pdu_session_id"),
            format!("PDU session {psi} of UE `{}` is not active", reg.ue_id),
        ));
    }
    let Some(gnb) = ctx.gnbs.get(&s.info.gnb).cloned() else {
        return Err(ApiFailure::new(
            500,
            None,
            format!("the N2 API of gNB `{}` is not known", s.info.gnb),
        ));
    };
    let input_port = reg.input_port;
    Ok(ctx.mgr.register(ctx.now, reg, gnb, input_port)?)
}

async fn request(
    State(api): State<Api>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<MigrationAccepted>), ApiFailure> {
    let req: MigrationRequest = parse_body(&body, "MigrationRequest")?;
    let ue = req.ue_id.clone();
    let acc = call(&api.tx, move |ctx| {
        edges_configured(ctx, "to")?;
        ctx.mgr.request(ctx.now, req).map_err(ApiFailure::from)
    })
    .await??;
    info!(mig = acc.id, ue = %ue, from = %acc.from, to = %acc.to, kind = ?acc.kind, "migration accepted");
    Ok((StatusCode::ACCEPTED, Json(acc)))
}

fn parse_id(id: &str) -> Result<u64, ApiFailure> {
    id.parse()
        .map_err(|_| bad(Some("id"), format!("`{id}` is not a migration id")))
}

/// `switched` ([`SwitchReport`]) or `abandon` ([`AbandonReport`]).
async fn report(
    State(api): State<Api>,
    Path((id, what)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiFailure> {
    let id = parse_id(&id)?;
    match what.as_str() {
        "switched" => {
            let r: SwitchReport = parse_body(&body, "SwitchReport")?;
            info!(mig = id, ue = %r.ue_id, ssim = ?r.ssim, "switch reported");
            call(&api.tx, move |ctx| ctx.mgr.switched(ctx.now, id, r)).await??;
        }
        "abandon" => {
            let r: AbandonReport = parse_body(&body, "AbandonReport")?;
            info!(mig = id, ue = %r.ue_id, reason = %r.reason, "abandon reported");
            call(&api.tx, move |ctx| ctx.mgr.abandon(ctx.now, id, r)).await??;
        }
        _ => {
            return Err(ApiFailure::new(
                404,
                None,
                format!("no report `{what}` (switched or abandon)"),
            ))
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn events(
    State(api): State<Api>,
    Path(ue_id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<UeEvents>, ApiFailure> {
    let Query(q) = q.map_err(|e| {
        let msg = e.body_text();
        let field = ["after", "wait_ms"].into_iter().find(|f| msg.contains(f));
        bad(field, format!("bad query: {msg}"))
    })?;
    let wait = Duration::from_millis(q.wait_ms.min(EVENTS_MAX_WAIT_MS));
    Ok(Json(api.events.poll(&ue_id, q.after, wait).await))
}

async fn services(State(api): State<Api>) -> Result<Json<Vec<ServiceInfo>>, ApiFailure> {
    call(&api.tx, |ctx| ctx.mgr.services(ctx.now))
        .await
        .map(Json)
}

async fn service(
    State(api): State<Api>,
    Path(ue_id): Path<String>,
) -> Result<Json<ServiceInfo>, ApiFailure> {
    let ue = ue_id.clone();
    call(&api.tx, move |ctx| ctx.mgr.service(ctx.now, &ue))
        .await?
        .map(Json)
        .ok_or_else(|| MigrationError::UnknownUe { ue_id }.into())
}

async fn migrations(State(api): State<Api>) -> Result<Json<Vec<MigrationRecord>>, ApiFailure> {
    call(&api.tx, |ctx| ctx.mgr.migrations()).await.map(Json)
}

async fn migration(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<MigrationRecord>, ApiFailure> {
    let id = parse_id(&id)?;
    call(&api.tx, move |ctx| ctx.mgr.migration(id))
        .await?
        .map(Json)
        .ok_or_else(|| MigrationError::UnknownMigration { id }.into())
}

async fn edges(State(api): State<Api>) -> Result<Json<Vec<EdgeView>>, ApiFailure> {
    call(&api.tx, |ctx| {
        ctx.mgr
            .edges()
            .map(|(e, l)| EdgeView::new(e, l))
            .collect::<Vec<_>>()
    })
    .await
    .map(Json)
}
