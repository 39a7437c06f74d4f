//! The cloud's figures: [`Stats`] (`GET /stats`, JSON) and their
//! Prometheus text (`GET /metrics`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::session::{Role, SessionId};

/// One session in [`AccountStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Session number.
    pub session: SessionId,
    /// Its role.
    pub role: Role,
    /// The instance name it gave at login.
    pub instance: String,
    /// Peer address.
    pub peer: String,
}

/// Per-account figures in [`Stats`] (kept after the account logs out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStats {
    /// Sessions logged in now, in login order.
    pub sessions: Vec<SessionStats>,
    /// Inputs applied (each `(account, seq)` once).
    pub inputs_applied: u64,
    /// Writes from the primary whose seq was already applied.
    pub duplicates: u64,
    /// Writes dropped because they came from a secondary.
    pub writes_dropped: u64,
    /// Writes applied while the session that sent them was not its
    /// account's primary (checked when each is applied; must stay 0).
    #[serde(default)]
    pub secondary_writes_applied: u64,
    /// Highest input seq applied.
    pub last_seq: u64,
    /// Score of the player's snake, if it is in the world.
    pub score: Option<u32>,
}

/// `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The world's tick.
    pub tick: u64,
    /// Sessions logged in.
    pub sessions: usize,
    /// Connections open (logged in or not).
    pub connections: usize,
    /// Ticks run.
    pub ticks: u64,
    /// Inputs applied.
    pub inputs_applied: u64,
    /// Duplicate inputs (not applied again).
    pub duplicates: u64,
    /// Writes dropped, by reason ("secondary", "not_logged_in", "invalid_seq").
    pub writes_dropped: BTreeMap<String, u64>,
    /// Writes applied from a session that was not its account's primary
    /// (must stay 0).
    #[serde(default)]
    pub secondary_writes_applied: u64,
    /// Malformed or oversized frames (each closed its connection).
    pub bad_frames: u64,
    /// Logins accepted.
    pub logins_ok: u64,
    /// Logins refused.
    pub logins_refused: u64,
    /// Sessions disconnected because they could not keep up.
    pub slow_consumers: u64,
    /// Per account.
    pub accounts: BTreeMap<String, AccountStats>,
}

/// The Prometheus text of `s` (through `ctlhttp::metrics`).
pub(super) fn metrics_text(s: &Stats) -> String {
    let s = s.clone();
    ctlhttp::metrics::encode_fn(move |f| {
        f.gauge_value("app_cloud_world_tick", "The world's tick.", s.tick)?;
        f.gauge_value("app_cloud_sessions", "Sessions logged in.", s.sessions)?;
        f.gauge_value("app_cloud_connections", "Connections open.", s.connections)?;
        f.counter_value("app_cloud_ticks_total", "Ticks run.", s.ticks)?;
        f.counter_value(
            "app_cloud_inputs_applied_total",
            "Inputs applied, each (account, seq) once.",
            s.inputs_applied,
        )?;
        f.counter_value(
            "app_cloud_input_duplicates_total",
            "Inputs already applied, not applied again.",
            s.duplicates,
        )?;
        f.counter(
            "app_cloud_writes_dropped_total",
            "Writes dropped, by reason.",
            s.writes_dropped
                .iter()
                .map(|(r, v)| ([("reason", r.as_str())], *v)),
        )?;
        f.counter_value(
            "app_cloud_secondary_writes_applied_total",
            "Writes applied from a session that was not its account's primary.",
            s.secondary_writes_applied,
        )?;
        f.counter_value(
            "app_cloud_bad_frames_total",
            "Malformed or oversized frames.",
            s.bad_frames,
        )?;
        f.counter(
            "app_cloud_logins_total",
            "Logins, by result.",
            [
                ([("result", "ok")], s.logins_ok),
                ([("result", "refused")], s.logins_refused),
            ],
        )?;
        f.counter_value(
            "app_cloud_slow_consumers_total",
            "Sessions disconnected for not keeping up.",
            s.slow_consumers,
        )?;
        f.counter(
            "app_cloud_account_inputs_applied_total",
            "Inputs applied per account.",
            s.accounts
                .iter()
                .map(|(a, st)| ([("account", a.as_str())], st.inputs_applied)),
        )
    })
}
