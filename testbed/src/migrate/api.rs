//! The APIs `testbed migrate` drives, each inside its daemon's namespace:
//! the UE daemon's CSM API (`/play`, `/migrate`, `/status`), the edge
//! agents (instances and the repository's warmth), the SMF's views
//! (`/services`, `/migrations`) and the logic server's `/stats`.
//!
//! The UE daemon's bodies are the UE's own types ([`ue::service::api`]).

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
pub use ue::service::api::{
    LatencyTrigger, PlayOutcome, PlayStart, SelectorSettings, UeMigration, UeMigrationState,
    UeStatus,
};
use wire::ctl::migration::{MigrationAccepted, MigrationRecord, ServiceInfo};

use crate::bed::{http_in_auth, BedError};

/// The application every migration moves.
pub const APP: &str = "snake";

/// One account's figures at the logic server (`GET /stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CloudCount {
    /// Inputs applied (each sequence number once).
    pub inputs_applied: u64,
    /// Highest sequence number applied.
    pub last_seq: u64,
    /// Writes dropped because they came from a secondary.
    pub writes_dropped: u64,
    /// Writes applied while their session was a secondary (the logic
    /// server counts them; `None` from one that does not).
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
    /// Sent as `Authorization: Bearer` (the edge agents' token).
    pub token: Option<String>,
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
            token: None,
        }
    }

    /// The same API, called with `token` as bearer (an edge agent's).
    pub fn with_token(self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self
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
        http_in_auth(
            &self.ns,
            method,
            &format!("{}{path}", self.base),
            body,
            timeout,
            self.token.as_deref(),
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
