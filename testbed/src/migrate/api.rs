//! The APIs `testbed migrate` drives, each inside its daemon's namespace:
//! the UE daemon's CSM API (`/play`, `/migrate`, `/status`), the edge
//! agents (instances and the repository's warmth), the SMF's views
//! (`/services`, `/migrations`) and the logic server's `/stats`.
//!
//! The UE's types mirror its contract (the UE crate is not a dependency of
//! the testbed); unknown fields are ignored and missing ones take defaults,
//! so that a newer UE still reads.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wire::ctl::migration::{MigrationAccepted, MigrationRecord, ServiceInfo, StreamParams};

use crate::bed::{http_in, BedError};

/// The application every migration moves.
pub const APP: &str = "snake";

/// `POST /play`: what the UE plays, and where.
#[derive(Debug, Clone, Serialize)]
pub struct PlayStart {
    pub app: String,
    pub account: String,
    pub token: String,
    /// The serving edge.
    pub edge: String,
    /// The PDU session the stream runs over.
    pub psi: u8,
    /// The serving instance at that edge's agent.
    pub instance: String,
    /// The instance's input address.
    pub input: SocketAddr,
    /// The UDP port the UE receives video on (every session's address).
    pub stream_port: u16,
    /// How instances render and stream (for the destination instances).
    pub params: StreamParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<LatencyTrigger>,
}

/// The UE's agent asks for a migration itself when the latency to its
/// serving edge stays above `threshold_ms` for `for_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyTrigger {
    pub threshold_ms: f64,
    pub for_ms: u64,
}

/// `GET /status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UeStatus {
    pub serving: Option<String>,
    pub copilot: Option<String>,
    pub migrating: Option<u64>,
    /// Whether the SMF knows the service (when the UE reports it).
    pub registered: Option<bool>,
    pub registration_error: Option<String>,
    pub frames_displayed: u64,
    /// Inputs the bot sent (when the UE reports it).
    pub inputs_sent: Option<u64>,
    pub migrations: Vec<UeMigration>,
}

impl UeStatus {
    /// The migration of this id.
    pub fn migration(&self, id: u64) -> Option<&UeMigration> {
        self.migrations.iter().find(|m| m.id == id)
    }
}

/// One migration as the UE saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UeMigration {
    pub id: u64,
    pub from: String,
    pub to: String,
    /// `full` or `switch_only`.
    pub kind: String,
    /// `running`, `switched`, `completed`, `abandoned`.
    pub state: String,
    pub reason: Option<String>,
    /// Whether the UE's agent asked on its own (latency trigger).
    pub triggered: bool,
    pub requested_ns: u64,
    pub decided_ns: Option<u64>,
    pub first_dest_frame_ns: Option<u64>,
    pub downtime_ms: Option<f64>,
    pub migration_ms: Option<f64>,
    pub ssim_at_switch: Option<f64>,
    pub frames_blended: u32,
    pub inputs_resent: u64,
    /// Filled in by `DELETE /play`.
    pub stall_ms: Option<f64>,
    /// Filled in by `DELETE /play`.
    pub min_displayed_ssim: Option<f64>,
}

impl UeMigration {
    /// Whether it is still going on.
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// `DELETE /play`: the figures of the whole play.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PlayOutcome {
    /// The streaming client's report (as `ue play` prints it).
    pub report: serde_json::Value,
    pub migrations: Vec<UeMigration>,
    /// The p99 frame interval away from switches (the stall baseline).
    #[serde(alias = "stall_baseline_ms")]
    pub stall_p99_away_ms: Option<f64>,
    /// The 1st percentile of the SSIM between consecutive displayed
    /// frames away from switches (the smoothness baseline).
    pub smoothness_baseline: Option<f64>,
    /// Inputs the bot sent (else in the client's report).
    pub inputs_sent: Option<u64>,
}

impl PlayOutcome {
    /// Inputs the bot sent in the whole play.
    pub fn inputs_sent(&self) -> u64 {
        self.inputs_sent
            .or_else(|| self.report["inputs_sent"].as_u64())
            .unwrap_or(0)
    }
}

/// One account's figures at the logic server (`GET /stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CloudCount {
    /// Inputs applied (each sequence number once).
    pub inputs_applied: u64,
    /// Highest sequence number applied.
    pub last_seq: u64,
    /// Writes dropped because they came from a secondary.
    pub writes_dropped: u64,
    /// Writes applied from a secondary, if the logic server counts them.
    pub secondary_writes_applied: Option<u64>,
}

impl CloudCount {
    /// Sequence numbers up to the highest applied that were not applied.
    pub fn holes(&self) -> u64 {
        self.last_seq.saturating_sub(self.inputs_applied)
    }
}

/// A JSON API inside a namespace.
#[derive(Debug, Clone)]
pub struct Api {
    /// Namespace.
    pub ns: String,
    /// `http://ADDR:PORT`.
    pub base: String,
    /// What it is, for errors.
    pub what: String,
}

fn req(e: impl std::fmt::Display) -> BedError {
    BedError::Request(e.to_string())
}

impl Api {
    /// The API at `addr` in namespace `ns`.
    pub fn new(what: impl Into<String>, ns: String, addr: SocketAddr) -> Api {
        Api {
            ns,
            base: format!("http://{addr}"),
            what: what.into(),
        }
    }

    /// One request: (status, body).
    pub fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> Result<(u16, String), BedError> {
        // http_in sends a body only with POST; every POST here has one.
        let body = match method {
            "POST" => Some(body.unwrap_or_default()),
            _ => body,
        };
        http_in(
            &self.ns,
            method,
            &format!("{}{path}", self.base),
            body,
            timeout,
        )
        .map_err(|e| req(format!("{}: {e}", self.what)))
    }

    /// A request whose answer must have status `want`, decoded from JSON.
    pub fn expect<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<String>,
        want: &[u16],
        timeout: Duration,
    ) -> Result<T, BedError> {
        let (code, text) = self.call(method, path, body, timeout)?;
        if !want.contains(&code) {
            return Err(req(format!(
                "{}: {method} {path}: HTTP {code}: {}",
                self.what,
                text.trim()
            )));
        }
        serde_json::from_str(&text).map_err(|e| {
            req(format!(
                "{}: {method} {path}: unexpected answer ({e}): {}",
                self.what,
                text.trim()
            ))
        })
    }

    /// `GET path`, 200, JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BedError> {
        self.expect("GET", path, None, &[200], Duration::from_secs(5))
    }
}

/// The UE daemon's CSM API.
pub struct Ue(pub Api);

impl Ue {
    /// `POST /play`.
    pub fn play(&self, p: &PlayStart) -> Result<UeStatus, BedError> {
        let body = serde_json::to_string(p).map_err(req)?;
        self.0.expect(
            "POST",
            "/play",
            Some(body),
            &[200, 201],
            Duration::from_secs(30),
        )
    }

    /// `POST /migrate {"to": EDGE}`.
    pub fn migrate(&self, to: &str) -> Result<MigrationAccepted, BedError> {
        let body = serde_json::json!({ "to": to }).to_string();
        self.0.expect(
            "POST",
            "/migrate",
            Some(body),
            &[202],
            Duration::from_secs(30),
        )
    }

    /// `GET /status`.
    pub fn status(&self) -> Result<UeStatus, BedError> {
        self.0.get("/status")
    }

    /// `DELETE /play`.
    pub fn stop(&self) -> Result<PlayOutcome, BedError> {
        self.0
            .expect("DELETE", "/play", None, &[200], Duration::from_secs(60))
    }
}

/// The SMF's views of services and migrations.
pub struct Smf(pub Api);

impl Smf {
    /// The service record of this UE, if any.
    pub fn service(&self, ue_id: &str) -> Result<Option<ServiceInfo>, BedError> {
        let all: Vec<ServiceInfo> = self.0.get("/services")?;
        Ok(all.into_iter().find(|s| s.ue_id == ue_id))
    }

    /// Every migration record.
    pub fn migrations(&self) -> Result<Vec<MigrationRecord>, BedError> {
        self.0.get("/migrations")
    }
}

/// The logic server's count for `account`.
pub fn cloud_count(cloud: &Api, account: &str) -> Result<CloudCount, BedError> {
    let stats: serde_json::Value = cloud.get("/stats")?;
    let a = &stats["accounts"][account];
    let n = |k: &str| a[k].as_u64().unwrap_or(0);
    Ok(CloudCount {
        inputs_applied: n("inputs_applied"),
        last_seq: n("last_seq"),
        writes_dropped: n("writes_dropped"),
        secondary_writes_applied: a["secondary_writes_applied"].as_u64(),
    })
}

/// Makes the application present (`warm`) or absent in an edge's
/// repository; whether it had to change anything. An application still in
/// use (409) is retried until `deadline` passes: the instance of a source
/// just released may still be ending.
pub fn set_warmth(agent: &Api, warm: bool, deadline: Duration) -> Result<bool, BedError> {
    let t = std::time::Instant::now();
    loop {
        let (code, text) = if warm {
            agent.call(
                "POST",
                &format!("/apps/{APP}/pull"),
                None,
                Duration::from_secs(120),
            )?
        } else {
            agent.call(
                "DELETE",
                &format!("/apps/{APP}"),
                None,
                Duration::from_secs(15),
            )?
        };
        match code {
            200 | 201 if warm => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                return Ok(v["pulled"].as_bool().unwrap_or(false));
            }
            200 | 204 => return Ok(true),
            404 if !warm => return Ok(false),
            409 if t.elapsed() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                return Err(req(format!(
                    "{}: making `{APP}` {}: HTTP {code}: {}",
                    agent.what,
                    if warm { "warm" } else { "cold" },
                    text.trim()
                )))
            }
        }
    }
}
