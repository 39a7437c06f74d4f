//! The agent's errors, each with its HTTP status, and the JSON error body.

use std::io;
use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::PortRange;
use crate::repo::{RepoError, SNAKE_ENTRY};

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
    /// The application is not in the edge repository.
    #[error("application {0:?} is not in the edge repository")]
    AppNotInstalled(String),
    /// The application cannot be removed while instances of it run or start.
    #[error("application {app:?} is in use by {}", in_use_by(instances, *starting))]
    AppInUse {
        app: String,
        instances: Vec<String>,
        starting: usize,
    },
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
    /// A state copy failed; the source instance runs again.
    #[error("state copy of instance {id}: {reason}")]
    StateCopy {
        id: String,
        status: u16,
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
            AppNotFound { .. } | NoInstance(_) | AppNotInstalled(_) => StatusCode::NOT_FOUND,
            CloudUnreachable { .. } | CloudStatus { .. } | InstanceUnreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Pull { source, .. } => match source {
                RepoError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                RepoError::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            UnsupportedEntry { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            NotRunning { .. } | AppInUse { .. } => StatusCode::CONFLICT,
            NoPort { .. } | Stopping => StatusCode::SERVICE_UNAVAILABLE,
            StateCopy { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
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

pub(super) fn bad(field: &str, msg: impl Into<String>) -> AgentError {
    AgentError::BadRequest {
        field: Some(field.to_owned()),
        msg: msg.into(),
    }
}

fn in_use_by(instances: &[String], starting: usize) -> String {
    let mut parts = Vec::new();
    if !instances.is_empty() {
        parts.push(format!("running instance(s) {}", instances.join(", ")));
    }
    if starting > 0 {
        parts.push(format!("{starting} start(s) in progress"));
    }
    parts.join(" and ")
}
