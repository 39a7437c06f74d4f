//! The UPFs: their DNNs and UE address pools, their PFCP association state,
//! the answers to their recent requests, and the choice of a UPF for a new
//! session.

use super::SmfError;
use crate::config::{Ipv4Net, UpfConfig};
use crate::pool::AddrPool;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;
use wire::ctl::SessionRequest;
use wire::pfcp;

/// Answers kept per UPF for its retransmitted requests.
const RESPONSE_CACHE: usize = 64;

/// PFCP association state of a UPF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssocState {
    /// No association; Association Setup is retried every heartbeat interval.
    Down,
    /// Association Setup Request sent.
    Connecting,
    /// Associated; heartbeats running.
    Associated,
}

/// A DNN a UPF serves.
pub(super) struct Dnn {
    pub(super) name: String,
    pub(super) ni: pfcp::NetworkInstance,
    pub(super) pool: AddrPool,
}

/// A UPF.
pub(super) struct Peer {
    pub(super) name: String,
    pub(super) addr: SocketAddr,
    pub(super) dnns: Vec<Dnn>,
    pub(super) state: AssocState,
    pub(super) recovery_ts: Option<u32>,
    pub(super) node_id: Option<String>,
    pub(super) restarts: u64,
    /// Next heartbeat (associated) or association attempt (down).
    pub(super) next_timer: Instant,
    pub(super) hb_outstanding: bool,
    /// Association Setups unanswered in a row (for rate-limited logging).
    pub(super) assoc_failures: u32,
    /// The UPF restarted and the association is being set up again: its
    /// sessions are gone, and the UP SEIDs we knew may be other sessions'
    /// in its new life (never to be deleted by a restore).
    pub(super) lost_all: bool,
    /// Answers to the UPF's recent requests, by sequence number, resent
    /// when a request is retransmitted.
    answered: VecDeque<(u32, u8, Vec<u8>)>,
}

impl Peer {
    /// A UPF as configured, not associated; its first association attempt
    /// is due at `now`.
    pub(super) fn new(u: &UpfConfig, now: Instant) -> Peer {
        Peer {
            name: u.name.clone(),
            addr: u.n4,
            dnns: u
                .dnn
                .iter()
                .map(|d| Dnn {
                    name: d.name.clone(),
                    ni: pfcp::NetworkInstance::from_dnn(
                        d.network_instance.as_deref().unwrap_or(&d.name),
                    ),
                    // validated by Config::validate; an invalid one gets an empty /32
                    pool: AddrPool::new(d.pool.parse().unwrap_or(Ipv4Net {
                        addr: Ipv4Addr::UNSPECIFIED,
                        len: 32,
                    })),
                })
                .collect(),
            state: AssocState::Down,
            recovery_ts: None,
            node_id: None,
            restarts: 0,
            next_timer: now,
            hb_outstanding: false,
            assoc_failures: 0,
            lost_all: false,
            answered: VecDeque::new(),
        }
    }

    /// Our answer to the UPF's request `(seq, ty)`, if we gave one lately.
    pub(super) fn answered(&self, seq: u32, ty: u8) -> Option<&[u8]> {
        self.answered
            .iter()
            .find(|(s, t, _)| *s == seq && *t == ty)
            .map(|(_, _, d)| d.as_slice())
    }

    /// Keeps our answer to the UPF's request `(seq, ty)` for its retransmissions.
    pub(super) fn remember_answer(&mut self, seq: u32, ty: u8, data: Vec<u8>) {
        if self.answered.len() >= RESPONSE_CACHE {
            self.answered.pop_front();
        }
        self.answered.push_back((seq, ty, data));
    }
}

/// The (UPF, DNN) indices for a new session: the UPF the request names, or
/// among those serving the DNN, associated ones first, then the one with
/// the most free addresses.
pub(super) fn select_upf(peers: &[Peer], r: &SessionRequest) -> Result<(usize, usize), SmfError> {
    if let Some(name) = &r.upf {
        let i = peers
            .iter()
            .position(|p| &p.name == name)
            .ok_or_else(|| SmfError::BadRequest {
                field: "upf",
                msg: format!("no UPF named `{name}`"),
            })?;
        let d = peers[i]
            .dnns
            .iter()
            .position(|d| d.name == r.dnn)
            .ok_or_else(|| SmfError::BadRequest {
                field: "dnn",
                msg: format!("UPF `{name}` does not serve DNN `{}`", r.dnn),
            })?;
        return Ok((i, d));
    }
    peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.dnns
                .iter()
                .position(|d| d.name == r.dnn)
                .map(|d| (i, d, p))
        })
        .max_by_key(|(_, d, p)| {
            let pool = &p.dnns[*d].pool;
            (
                p.state == AssocState::Associated,
                u64::from(pool.capacity()) - pool.in_use() as u64,
            )
        })
        .map(|(i, d, _)| (i, d))
        .ok_or_else(|| SmfError::BadRequest {
            field: "dnn",
            msg: format!("no UPF serves DNN `{}`", r.dnn),
        })
}
