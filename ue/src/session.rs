//! The UE's PDU sessions: ask through the gNB's N1 relay, then give each
//! session its address (/32 on the radio interface), a routing table
//! (`default via GATEWAY dev RADIO onlink`) and a rule
//! (`from UE_ADDR lookup TABLE`), so that an application picks a session by
//! binding to its address. Release undoes all three.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use gnb::netcfg::{Net, NetError};
use tracing::{info, warn};
use wire::ctl::{ApiError, SessionInfo, SessionRequest};

use crate::config::UeConfig;

/// A session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session id is out of range.
    #[error("PDU session id {0} is not in 1..=15")]
    BadPsi(u8),
    /// The UE already has this session.
    #[error("session {0} already exists")]
    Exists(u8),
    /// The UE has no such session.
    #[error("no session {0}")]
    NotFound(u8),
    /// The gNB or the SMF refused (their status and error).
    #[error("network refused ({status}): {}", .error.error)]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Their error body.
        error: ApiError,
    },
    /// The gNB could not be reached, or its answer was not understood.
    #[error("N1 relay: {0}")]
    Relay(String),
    /// Setting up the address, rule or route failed (the session was
    /// released again).
    #[error("installing the session: {0}")]
    Net(#[from] NetError),
}

/// A session the UE holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UeSession {
    /// What the SMF said.
    pub info: SessionInfo,
    /// Its routing table.
    pub table: u32,
}

/// The UE's sessions, one manager per UE identity.
#[derive(Debug)]
pub struct SessionManager {
    cfg: UeConfig,
    net: Net,
    radio_index: u32,
    gateway: Ipv4Addr,
    agent: ureq::Agent,
    sessions: tokio::sync::Mutex<BTreeMap<u8, UeSession>>,
}

impl SessionManager {
    /// Opens netlink in the current namespace and finds the radio
    /// interface. Inside a tokio runtime.
    pub async fn new(cfg: UeConfig) -> Result<SessionManager, SessionError> {
        let net = Net::open()?;
        let radio_index = net.link_index(&cfg.radio_iface).await?;
        // validate() made sure there is one.
        let gateway = cfg.gateway().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        Ok(SessionManager {
            cfg,
            net,
            radio_index,
            gateway,
            agent,
            sessions: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UeConfig {
        &self.cfg
    }

    async fn n1(
        &self,
        method: &'static str,
        path: String,
        body: Option<String>,
    ) -> Result<(u16, String), SessionError> {
        let url = format!("http://{}{}", self.cfg.gnb_n1, path);
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || {
            let r = match body {
                Some(b) if method == "POST" => agent
                    .post(&url)
                    .header("content-type", "application/json")
                    .send(b.as_bytes()),
                _ => agent.delete(&url).call(),
            };
            let mut r = r.map_err(|e| SessionError::Relay(format!("{url}: {e}")))?;
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().unwrap_or_default();
            Ok((status, body))
        })
        .await
        .map_err(|e| SessionError::Relay(e.to_string()))?
    }

    fn rejected(status: u16, body: &str) -> SessionError {
        let error = serde_json::from_str::<ApiError>(body).unwrap_or(ApiError {
            error: if body.is_empty() {
                format!("HTTP {status}")
            } else {
                body.to_string()
            },
            field: None,
        });
        SessionError::Rejected { status, error }
    }

    /// Establishes session `psi` and installs its address, table and rule.
    pub async fn establish(
        &self,
        psi: u8,
        dnn: &str,
        upf: Option<&str>,
    ) -> Result<SessionInfo, SessionError> {
        if !(1..=15).contains(&psi) {
            return Err(SessionError::BadPsi(psi));
        }
        let mut sessions = self.sessions.lock().await;
        if sessions.contains_key(&psi) {
            return Err(SessionError::Exists(psi));
        }
        let req = SessionRequest {
            ue_id: self.cfg.ue_id.clone(),
            pdu_session_id: psi,
            dnn: dnn.into(),
            upf: upf.map(str::to_string),
            gnb: None,
        };
        let body = serde_json::to_string(&req).map_err(|e| SessionError::Relay(e.to_string()))?;
        let (status, body) = self.n1("POST", "/n1/sessions".into(), Some(body)).await?;
        if status != 201 && status != 200 {
            return Err(SessionManager::rejected(status, &body));
        }
        let info: SessionInfo = serde_json::from_str(&body)
            .map_err(|e| SessionError::Relay(format!("bad SessionInfo: {e}: {body}")))?;
        let table = self.cfg.table(psi);
        if let Err(e) = self.install(info.ue_addr, table, true).await {
            // Nothing half made: undo locally and at the network.
            let _ = self.install(info.ue_addr, table, false).await;
            let _ = self.n1("DELETE", self.release_path(psi), None).await;
            return Err(e.into());
        }
        info!(ue = %self.cfg.ue_id, psi, ue_addr = %info.ue_addr, upf = %info.upf, table, "session up");
        sessions.insert(
            psi,
            UeSession {
                info: info.clone(),
                table,
            },
        );
        Ok(info)
    }

    fn release_path(&self, psi: u8) -> String {
        format!("/n1/sessions/{}/{psi}", self.cfg.ue_id)
    }

    /// Adds (or removes) address, route and rule of a session.
    async fn install(&self, addr: Ipv4Addr, table: u32, add: bool) -> Result<(), NetError> {
        let (net, idx, prio) = (&self.net, self.radio_index, self.cfg.rule_priority);
        if add {
            net.addr_add(idx, addr, 32).await?;
            net.route_via(true, Ipv4Addr::UNSPECIFIED, 0, self.gateway, idx, table)
                .await?;
            net.rule_from(true, addr, table, prio).await
        } else {
            // Each step even if an earlier one failed; the first error wins.
            let r1 = net.rule_from(false, addr, table, prio).await;
            let r2 = net
                .route_via(false, Ipv4Addr::UNSPECIFIED, 0, self.gateway, idx, table)
                .await;
            let r3 = net.addr_del(idx, addr, 32).await;
            r1.and(r2).and(r3)
        }
    }

    /// Releases session `psi`: local state first (the address goes even if
    /// the network is unreachable), then the network.
    pub async fn release(&self, psi: u8) -> Result<(), SessionError> {
        let mut sessions = self.sessions.lock().await;
        let s = sessions.remove(&psi).ok_or(SessionError::NotFound(psi))?;
        let local = self.install(s.info.ue_addr, s.table, false).await;
        let (status, body) = self.n1("DELETE", self.release_path(psi), None).await?;
        info!(ue = %self.cfg.ue_id, psi, status, "session released");
        local?;
        if status != 204 && status != 200 && status != 404 {
            return Err(SessionManager::rejected(status, &body));
        }
        Ok(())
    }

    /// Releases every session (daemon exit).
    pub async fn release_all(&self) {
        let psis: Vec<u8> = self.sessions.lock().await.keys().copied().collect();
        for psi in psis {
            if let Err(e) = self.release(psi).await {
                warn!(psi, error = %e, "release failed");
            }
        }
    }

    /// The sessions, by id.
    pub async fn list(&self) -> Vec<SessionInfo> {
        self.sessions
            .lock()
            .await
            .values()
            .map(|s| s.info.clone())
            .collect()
    }
}
