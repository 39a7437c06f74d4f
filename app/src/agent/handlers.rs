//! The HTTP handlers and the router.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tracing::info;

use super::api::{StateCopyReport, StateCopyRequest};
use super::instances::Instance;
use super::statecopy::CopyStatus;
use super::{
    Agent, AgentError, ApiError, InstanceStatus, Pulled, Removed, StartRequest, Started, Stopped,
};
use crate::instance::realtime_ns;
use crate::repo;

type St = State<Arc<Agent>>;

/// Counts the errors that have counters, and passes the result on.
fn counted<T>(a: &Agent, r: Result<T, AgentError>) -> Result<T, AgentError> {
    match &r {
        Err(AgentError::BadRequest { .. }) => a.m.bad_requests.fetch_add(1, Ordering::Relaxed),
        Err(AgentError::AppNotFound { .. }) => a.m.not_found.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    r
}

async fn create(
    State(a): St,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Started>), AgentError> {
    let received_ns = realtime_ns();
    let r = async {
        let req = StartRequest::parse(&body)?;
        a.start_instance(req, received_ns).await
    }
    .await;
    counted(&a, r).map(|s| (StatusCode::CREATED, Json(s)))
}

async fn list(State(a): St) -> Result<Json<Vec<InstanceStatus>>, AgentError> {
    let l: Vec<Arc<Instance>> = a
        .instances
        .lock()
        .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
        .values()
        .cloned()
        .collect();
    let all = futures::future::join_all(l.iter().map(|i| i.status_now())).await;
    Ok(Json(all))
}

async fn get_one(
    State(a): St,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<InstanceStatus>, AgentError> {
    Ok(Json(a.get(&id)?.status_now().await))
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
    let url = format!("http://{addr}/switch");
    let r = a.instances_http.post_json(&url, body).await.map_err(|e| {
        AgentError::InstanceUnreachable {
            id: id.clone(),
            addr,
            reason: e.to_string(),
        }
    })?;
    let (status, text) = (r.status, r.text());
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

async fn pull_app(State(a): St, UrlPath(app): UrlPath<String>) -> Result<Json<Pulled>, AgentError> {
    counted(&a, a.pull_only(&app).await).map(Json)
}

async fn remove_app(
    State(a): St,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<Removed>, AgentError> {
    counted(&a, a.remove_app(&app).await).map(Json)
}

async fn apps(State(a): St) -> Result<Json<Vec<repo::AppInfo>>, AgentError> {
    Ok(Json(a.repo.list()?))
}

async fn statecopy(
    State(a): St,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<StateCopyReport>, AgentError> {
    let r = async {
        let req = StateCopyRequest::parse(&body)?;
        a.state_copy(&id, req).await
    }
    .await;
    counted(&a, r).map(Json)
}

async fn statecopy_status(State(a): St) -> Json<CopyStatus> {
    Json(a.copy.status())
}

async fn metrics(State(a): St) -> Response {
    ctlhttp::metrics::response(a.metrics_text())
}

/// 401 unless the request carries the agent's token (when it has one);
/// `GET /healthz` and `GET /metrics` are open (probes, status).
async fn require_token(
    State(a): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(token) = a.args.token.as_deref() else {
        return next.run(req).await;
    };
    let open = req.method() == axum::http::Method::GET
        && matches!(req.uri().path(), "/healthz" | "/metrics");
    if open {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let why = match given {
        Some(t) if token_eq(t.trim(), token) => return next.run(req).await,
        Some(_) => "wrong token in Authorization: Bearer",
        None => "this agent's API needs `Authorization: Bearer TOKEN` (the testbed's agent token)",
    };
    a.m.unauthorized
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        Json(ApiError {
            error: why.into(),
            field: Some("authorization".into()),
            log: None,
        }),
    )
        .into_response()
}

/// Compares in time independent of where the first difference is.
fn token_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub(super) fn router(a: Arc<Agent>) -> Router {
    Router::new()
        .route("/instances", get(list).post(create))
        .route("/instances/{id}", get(get_one).delete(delete))
        .route("/instances/{id}/switch", post(switch))
        .route("/instances/{id}/statecopy", post(statecopy))
        .route("/statecopy", get(statecopy_status))
        .route("/apps", get(apps))
        .route("/apps/{app}", axum::routing::delete(remove_app))
        .route("/apps/{app}/pull", post(pull_app))
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
        .layer(axum::middleware::from_fn_with_state(
            a.clone(),
            require_token,
        ))
        .with_state(a)
}
