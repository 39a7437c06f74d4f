//! The SMF as an I/O-free state machine (quinn-proto style).
//!
//! [`Smf`] owns the PFCP association of every configured UPF, the session
//! registry, the UE address pools and the SEID space. It reads no clock and
//! opens no socket: every input takes `now`, and what it wants done comes out
//! of [`Smf::poll_action`] ([`Action`]: send a PFCP datagram, call the gNB's
//! N2-lite API, answer an API request). [`Smf::poll_timeout`] says when
//! [`Smf::handle_timeout`] must be called next.
//!
//! Inputs:
//! - [`Smf::create_session`] / [`Smf::release_session`]: API requests,
//!   answered later by [`Action::CreateDone`] / [`Action::ReleaseDone`]
//!   (or at once, when the request is refused before anything is sent);
//! - [`Smf::handle_pfcp`]: a datagram from N4;
//! - [`Smf::n2_setup_done`]: the gNB's answer to [`Action::N2Setup`];
//! - [`Smf::handle_timeout`]: T1 retransmission, heartbeats, association retries;
//! - [`Smf::n2_audit_done`], [`Smf::gnb_up`]: a gNB's tunnels after our
//!   restart, a gNB's restart (`recover`).
//!
//! A PDU session goes Establishing (PFCP Session Establishment with an
//! uplink PDR whose F-TEID the UPF CHOOSEs and a downlink FAR that BUFFers)
//! -> WaitN2 (the gNB gets the uplink F-TEID, answers its downlink one) ->
//! Modifying (Update FAR: FORW with Outer Header Creation to the gNB) ->
//! Active. Any failure on the way undoes what was done (PFCP Session
//! Deletion, N2 tunnel delete, address freed) before the API gets its error.
//!
//! When a UPF comes back with a new Recovery Time Stamp, every session it
//! anchored is established again (same UE address, same CP SEID, downlink
//! FAR forwarding straight to the gNB's known F-TEID); if the UPF chose a new
//! uplink F-TEID, the gNB's tunnel is replaced over N2.
//!
//! One job per module:
//! - [`session`]: the session registry and flow (API and N2 inputs, setup,
//!   release, failure undo);
//! - `peer`: the UPFs, their DNNs and address pools, UPF selection;
//! - `assoc`: PFCP associations, heartbeats, restart recovery, timers;
//! - `n4`: PFCP input (requests from the UPF, responses to ours);
//! - `txn`: our PFCP requests in flight (T1/N1), found by (UPF, sequence
//!   number) and by deadline without a scan;
//! - `rules`: the PDRs/FARs/QERs/URRs of a session's PFCP messages;
//! - `recover`: crash consistency (a Recovery Time Stamp no earlier life
//!   had, the gNB audit after our restart, tunnels again after a gNB's);
//! - [`metrics`]: counters and their Prometheus text;
//! - [`view`]: what the API shows of UPFs and sessions;
//! - [`error`]: what a request fails with ([`SmfError`]).

mod assoc;
pub mod error;
pub mod metrics;
mod n4;
mod peer;
mod recover;
mod rules;
pub mod session;
mod txn;
pub mod view;

pub use error::SmfError;
pub use metrics::{Metrics, SETUP_BUCKETS};
pub use peer::AssocState;
pub use recover::{recovery_stamp, GnbTunnel};
pub use session::{SessionState, Usage};
pub use view::{PoolStatus, SessionView, UpfStatus};

use crate::config::Config;
use peer::Peer;
use session::Session;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tracing::warn;
use txn::{Txn, TxnKind, Txns};
use wire::ctl::{GnbRef, SessionInfo, TunnelSetup};
use wire::pfcp::{self, Message};

/// Identifies an API request so that its answer can be routed back.
pub type ReqId = u64;

/// A session's key: (UE id, PDU session id).
pub type SessionKey = (String, u8);

/// A tunnel setup for the gNB of session `key` (generation `gen`), after
/// the tunnel `replace_dl_teid` is deleted, if set.
#[derive(Debug, Clone, PartialEq)]
pub struct N2Request {
    pub key: SessionKey,
    pub gen: u64,
    pub gnb: GnbRef,
    pub setup: TunnelSetup,
    pub replace_dl_teid: Option<u32>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a PFCP datagram.
    SendPfcp { to: SocketAddr, data: Vec<u8> },
    /// Call `POST /n2/tunnels` on the gNB (after `DELETE`ing
    /// `replace_dl_teid` first, if set) and feed the answer to
    /// [`Smf::n2_setup_done`] with `key` and `gen`.
    N2Setup(N2Request),
    /// Call `DELETE /n2/tunnels/{dl_teid}` on the gNB (no answer expected).
    N2Delete { gnb: GnbRef, dl_teid: u32 },
    /// Call `GET /tunnels` on the gNB and feed the list (or the error) to
    /// [`Smf::n2_audit_done`].
    N2Audit { gnb: GnbRef },
    /// Answer a create request.
    CreateDone {
        req: ReqId,
        result: Result<SessionInfo, SmfError>,
    },
    /// Answer a release request.
    ReleaseDone {
        req: ReqId,
        result: Result<(), SmfError>,
    },
}

/// The SMF state machine.
pub struct Smf {
    node_id: pfcp::NodeId,
    cp_addr: Ipv4Addr,
    recovery_ts: u32,
    qfi: u8,
    mbr: pfcp::BitRate,
    urr_period: u32,
    t1: Duration,
    n1: u32,
    hb: Duration,
    default_gnb: Option<GnbRef>,
    peers: Vec<Peer>,
    sessions: HashMap<SessionKey, Session>,
    by_seid: HashMap<u64, SessionKey>,
    txns: Txns,
    next_seq: u32,
    next_seid: u64,
    next_gen: u64,
    actions: VecDeque<Action>,
    metrics: Metrics,
    /// No N4 before this (see `recover`).
    quiet_until: Option<Instant>,
    /// gNB audits to run.
    audits: Vec<recover::Audit>,
}

impl Smf {
    /// A new SMF; `recovery_ts` is our Recovery Time Stamp (NTP seconds of
    /// this start). Association Setup goes to every UPF at the first
    /// [`Smf::handle_timeout`].
    pub fn new(cfg: &Config, recovery_ts: u32, now: Instant) -> Smf {
        Smf {
            node_id: cfg.pfcp_node_id(),
            cp_addr: cfg.cp_ipv4().unwrap_or(Ipv4Addr::LOCALHOST),
            recovery_ts,
            qfi: cfg.qfi,
            mbr: pfcp::BitRate {
                ul_kbps: cfg.mbr.ul_kbps,
                dl_kbps: cfg.mbr.dl_kbps,
            },
            urr_period: cfg.usage_report_period_s,
            t1: cfg.timers.t1(),
            n1: cfg.timers.n1,
            hb: cfg.timers.heartbeat(),
            default_gnb: cfg.default_gnb.clone(),
            peers: cfg.upf.iter().map(|u| Peer::new(u, now)).collect(),
            sessions: HashMap::new(),
            by_seid: HashMap::new(),
            txns: Txns::default(),
            next_seq: 1,
            next_seid: 1,
            next_gen: 1,
            actions: VecDeque::new(),
            metrics: Metrics::default(),
            quiet_until: None,
            audits: cfg
                .known_gnbs()
                .into_iter()
                .map(|gnb| recover::Audit { gnb, due: now })
                .collect(),
        }
    }

    // ----- outputs -----

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Smf::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p = self.peers.iter().filter_map(|p| match p.state {
            AssocState::Connecting => None,
            AssocState::Associated if p.hb_outstanding => None,
            _ => Some(p.next_timer),
        });
        p.chain(self.txns.next_deadline())
            .chain(self.audits.iter().map(|a| a.due))
            .min()
    }

    // ----- plumbing -----

    /// A sequence number for a request to `upf`, not used by another of
    /// its requests in flight.
    fn alloc_seq(&mut self, upf: usize) -> u32 {
        loop {
            let s = self.next_seq;
            self.next_seq = if s >= 0x00ff_ffff { 1 } else { s + 1 };
            if !self.txns.contains((upf, s)) {
                return s;
            }
        }
    }

    /// Sends `msg` to `upf` as a request of ours, retransmitted every T1 up
    /// to N1 times until answered.
    fn send_request(&mut self, now: Instant, upf: usize, mut msg: Message, kind: TxnKind) {
        let seq = self.alloc_seq(upf);
        msg.header.seq = seq;
        let to = self.peers[upf].addr;
        let Some(data) = self.emit(to, &msg) else {
            return;
        };
        let t = Txn::new(upf, data, now + self.t1, self.n1, kind);
        self.txns.insert(seq, t);
    }

    /// Asks `upf` to delete its session `up_seid`; nobody waits for the answer.
    fn send_cleanup(&mut self, now: Instant, upf: usize, up_seid: u64) {
        let msg = Message::session(up_seid, 0, pfcp::SessionDeletionRequest::default());
        self.send_request(now, upf, msg, TxnKind::Cleanup);
    }

    /// Encodes and queues `msg`; returns the bytes.
    fn emit(&mut self, to: SocketAddr, msg: &Message) -> Option<Vec<u8>> {
        match msg.to_vec() {
            Ok(data) => {
                self.push_send(to, data.clone());
                Some(data)
            }
            Err(e) => {
                // Only a message over 64 KiB can fail; ours are small.
                warn!("cannot encode PFCP message: {e}");
                None
            }
        }
    }

    fn push_send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.metrics.pfcp_tx += 1;
        self.actions.push_back(Action::SendPfcp { to, data });
    }
}
