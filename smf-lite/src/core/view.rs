//! What the API shows: UPFs with their association and pools, sessions
//! with their state and usage.

use super::session::Session;
use super::{AssocState, SessionState, Smf, Usage};
use serde::Serialize;
use std::net::SocketAddr;
use wire::ctl::SessionInfo;

/// A UPF as `GET /upfs` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UpfStatus {
    pub name: String,
    pub n4: SocketAddr,
    pub state: AssocState,
    /// The UPF's Recovery Time Stamp (NTP seconds), once known.
    pub recovery_time_stamp: Option<u32>,
    /// Its Node ID as it sent it.
    pub node_id: Option<String>,
    /// Restarts detected (changed Recovery Time Stamp).
    pub restarts: u64,
    pub sessions: usize,
    pub pools: Vec<PoolStatus>,
}

/// A UE address pool's usage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolStatus {
    pub dnn: String,
    pub pool: String,
    pub in_use: usize,
    pub capacity: u32,
}

/// A session as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionView {
    #[serde(flatten)]
    pub info: SessionInfo,
    pub state: SessionState,
    pub usage: Usage,
}

impl Smf {
    /// Every UPF's state.
    pub fn upfs(&self) -> Vec<UpfStatus> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| UpfStatus {
                name: p.name.clone(),
                n4: p.addr,
                state: p.state,
                recovery_time_stamp: p.recovery_ts,
                node_id: p.node_id.clone(),
                restarts: p.restarts,
                sessions: self.sessions.values().filter(|s| s.upf == i).count(),
                pools: p
                    .dnns
                    .iter()
                    .map(|d| PoolStatus {
                        dnn: d.name.clone(),
                        pool: d.pool.net().to_string(),
                        in_use: d.pool.in_use(),
                        capacity: d.pool.capacity(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every session, sorted by key.
    pub fn sessions(&self) -> Vec<SessionView> {
        let mut v: Vec<_> = self.sessions.values().map(Self::view).collect();
        v.sort_by(|a, b| {
            (&a.info.ue_id, a.info.pdu_session_id).cmp(&(&b.info.ue_id, b.info.pdu_session_id))
        });
        v
    }

    /// One session.
    pub fn session(&self, ue_id: &str, psi: u8) -> Option<SessionView> {
        self.sessions.get(&(ue_id.to_owned(), psi)).map(Self::view)
    }

    fn view(s: &Session) -> SessionView {
        SessionView {
            info: s.info.clone(),
            state: s.state,
            usage: s.usage,
        }
    }
}
