//! The migration manager's configuration, errors, and the actions it asks
//! its driver to carry out.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use wire::ctl::migration::{StreamParams, UeEventKind};
use wire::ctl::GnbRef;

/// One edge the manager can migrate to (`[[edge]]` in `smf.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The edge's name (in requests, records and events).
    pub name: String,
    /// The UPF that anchors sessions to this edge.
    pub upf: String,
    /// The DNN of those sessions (default: the edge's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnn: Option<String>,
    /// The edge migration agent's HTTP API.
    pub agent: SocketAddr,
    /// Where UEs reach the edge's application instances (its N6 address):
    /// an instance's input goes to `app_server:input_port`.
    pub app_server: IpAddr,
    /// The agent's API token (`Authorization: Bearer`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl EdgeConfig {
    /// The DNN of sessions anchored at this edge.
    pub fn dnn(&self) -> &str {
        self.dnn.as_deref().unwrap_or(&self.name)
    }
}

/// The manager's timers and limits (`[migration]` in `smf.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationConfig {
    /// How long the source stays copilot after a switch (delayed release).
    pub countdown_ms: u64,
    /// How long the destination's session, pull and instance start may take
    /// together, from the request to the instance streaming.
    pub setup_timeout_ms: u64,
    /// How long after `StreamReady` the UE may take to report its switch
    /// (or to abandon) before the manager abandons the migration.
    pub switch_timeout_ms: u64,
    /// Finished migrations kept for `GET /migrations`.
    pub history: usize,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            countdown_ms: 10_000,
            setup_timeout_ms: 10_000,
            switch_timeout_ms: 15_000,
            history: 1000,
        }
    }
}

impl MigrationConfig {
    pub fn countdown(&self) -> Duration {
        Duration::from_millis(self.countdown_ms)
    }
    pub fn setup_timeout(&self) -> Duration {
        Duration::from_millis(self.setup_timeout_ms)
    }
    pub fn switch_timeout(&self) -> Duration {
        Duration::from_millis(self.switch_timeout_ms)
    }
}

/// What the agent answered to a [`Action::StartInstance`].
#[derive(Clone, Debug, PartialEq)]
pub struct StartedInstance {
    /// The instance's id at the agent.
    pub instance: String,
    /// The UDP port the instance takes input on (at the edge's `app_server`).
    pub input_port: u16,
    /// The stream's SDP.
    pub sdp: Option<String>,
    /// The agent's measure of the start, ms.
    pub start_ms: Option<f64>,
}

/// Why the manager refused a call; each maps to an HTTP status and names the
/// field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// A field of a registration is missing or wrong.
    #[error("{field}: {msg}")]
    BadRequest { field: &'static str, msg: String },
    /// The configuration is inconsistent.
    #[error("edge `{field}`: {msg}")]
    Config { field: String, msg: String },
    /// No service is registered for this UE.
    #[error("ue_id: UE `{ue_id}` has no registered service")]
    UnknownUe { ue_id: String },
    /// The named edge is not configured.
    #[error("{field}: no edge named `{edge}` is configured")]
    UnknownEdge { field: &'static str, edge: String },
    /// The destination is the edge that already serves the UE.
    #[error("to: `{edge}` already serves UE `{ue_id}`")]
    SameEdge { ue_id: String, edge: String },
    /// No destination named, and no other edge has a latency measure.
    #[error(
        "to: none given, and no edge other than `{serving}` has a measured latency to pick by"
    )]
    NoDestination { serving: String },
    /// The UE already has a migration running.
    #[error("ue_id: UE `{ue_id}` already has migration {id} in progress")]
    InProgress { ue_id: String, id: u64 },
    /// A re-registration while the old source is still kept as copilot.
    #[error(
        "ue_id: UE `{ue_id}` still has a copilot at `{edge}` ({left_ms} ms of countdown left)"
    )]
    HasCopilot {
        ue_id: String,
        edge: String,
        left_ms: u64,
    },
    /// Every PDU session id is taken for this UE.
    #[error("ue_id: UE `{ue_id}` has no free PDU session id for a parallel session")]
    NoSessionId { ue_id: String },
    /// No such migration.
    #[error("id: no migration {id}")]
    UnknownMigration { id: u64 },
    /// The migration has ended.
    #[error("id: migration {id} has ended ({state})")]
    Ended { id: u64, state: String },
    /// A report from another UE than the migration's.
    #[error("ue_id: migration {id} belongs to UE `{owner}`, not `{ue_id}`")]
    WrongUe {
        id: u64,
        owner: String,
        ue_id: String,
    },
    /// A switch reported before the destination was announced.
    #[error("id: migration {id} has not announced its stream yet ({step})")]
    NotReady { id: u64, step: &'static str },
}

impl MigrationError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        use MigrationError as E;
        match self {
            E::BadRequest { .. } | E::UnknownEdge { .. } | E::SameEdge { .. } => 400,
            E::UnknownUe { .. } | E::UnknownMigration { .. } => 404,
            E::InProgress { .. }
            | E::HasCopilot { .. }
            | E::Ended { .. }
            | E::NotReady { .. }
            | E::NoSessionId { .. } => 409,
            E::WrongUe { .. } => 403,
            E::NoDestination { .. } => 503,
            E::Config { .. } => 500,
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        use MigrationError as E;
        match self {
            E::BadRequest { field, .. } | E::UnknownEdge { field, .. } => Some(field),
            E::SameEdge { .. } | E::NoDestination { .. } => Some("to"),
            E::UnknownUe { .. }
            | E::InProgress { .. }
            | E::HasCopilot { .. }
            | E::NoSessionId { .. }
            | E::WrongUe { .. } => Some("ue_id"),
            E::UnknownMigration { .. } | E::Ended { .. } | E::NotReady { .. } => Some("id"),
            E::Config { .. } => None,
        }
    }
}

/// What the driver must do. Calls whose answer the manager waits for carry
/// the migration id (`mig`) to give back with the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Set up the parallel PDU session (the core's `create_session` with
    /// `SessionRequest.upf` set), then call `session_ready` or
    /// `session_failed`.
    SetupSession {
        mig: u64,
        ue_id: String,
        pdu_session_id: u8,
        upf: String,
        dnn: String,
        gnb: GnbRef,
    },
    /// Make sure the edge has the application (agent pull), then call
    /// `pulled` or `pull_failed`.
    Pull {
        mig: u64,
        edge: String,
        agent: SocketAddr,
        app: String,
    },
    /// Start an instance for the account that streams to `ue`, then call
    /// `instance_started` or `instance_failed`.
    StartInstance {
        mig: u64,
        edge: String,
        agent: SocketAddr,
        app: String,
        account: String,
        token: String,
        /// The new session's address : the UE's stream port.
        ue: SocketAddr,
        params: StreamParams,
    },
    /// Stop an instance (no answer expected).
    StopInstance {
        edge: String,
        agent: SocketAddr,
        instance: String,
    },
    /// Release a PDU session (the core's `release_session`; no answer expected).
    ReleaseSession { ue_id: String, pdu_session_id: u8 },
    /// Append an event to the UE's N1 event list.
    Notify {
        ue_id: String,
        migration: u64,
        /// When the manager emitted it, ns of CLOCK_REALTIME.
        at_ns: u64,
        event: UeEventKind,
    },
}
