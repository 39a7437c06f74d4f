//! N4: the PFCP server (TS 29.244) as an I/O-free state machine.
//!
//! [`N4Node`] holds the whole protocol and does no I/O and reads no clock
//! (quinn-proto style): every input takes `now`, the Recovery Time Stamp and
//! a wall-clock anchor are given at construction, and outputs are pulled.
//! The daemon ([`crate::daemon`]) is a thin driver:
//!
//! ```text
//! loop {
//!     wait for a datagram on the N4 socket, at most until poll_timeout()
//!     datagram  -> handle_datagram(now, from, bytes, &mut table)
//!     deadline  -> handle_timeout(now, &mut table)
//!     poll_event() until None  (RulesChanged: publish a snapshot, ...)
//!     poll_transmit() until None -> send_to
//! }
//! ```
//!
//! Events are drained before transmits so that a response never reaches the
//! SMF before the data path runs the rules it acknowledges.
//!
//! Behaviour:
//! - Heartbeat Requests are answered before and after an association; the
//!   UPF sends its own to every associated SMF every `heartbeat_interval`
//!   and drops an association (and its sessions) one interval after the
//!   `1 + heartbeat_retries`-th Heartbeat Request in a row went unanswered.
//! - Association Setup/Update/Release from any Node ID form (IPv4, IPv6,
//!   FQDN); a Setup from a node whose Recovery Time Stamp changed (the SMF
//!   restarted) removes the sessions of its previous life.
//! - Session requests from a node without an association: cause 72. A
//!   session answers only to the address that established it (another peer
//!   gets 65, Session context not found).
//! - Retransmitted requests (same peer, same sequence number) get the cached
//!   response, not a second execution (cache kept `cache_ttl`, 60 s).
//! - Malformed requests whose header parsed get the matching response with
//!   the codec's cause (66/68/69) and Offending IE; others are counted and
//!   dropped. Nothing a peer sends can make the node panic.
//! - Usage reports (threshold, period) go out as Session Report Requests to
//!   the session's SMF and are also handed to the driver
//!   ([`N4Event::UsageReports`]) for the in-process API; the first packet
//!   buffered by a FAR with NOCP sends a Session Report Request with a
//!   Downlink Data Report (report type DLDR).
//! - Session Report Requests are resent every T1 until answered, at most N1
//!   times, then given up ([`N4Event::ReportUnanswered`]).
//!
//! Cost: nothing on the timer path scans the sessions. The data-path poll
//! takes the SEIDs the data path queued ([`SessionTable::take_dl_data`])
//! and the reports that are due ([`SessionTable::poll_reports`], indexed
//! by due time); our requests waiting for T1 are indexed by send time. A
//! poll with 10 000 idle sessions costs what it costs with 10
//! (`cargo bench -p upf --bench n4_poll`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};
use wire::pfcp::{self, Message, MessageBody};

use crate::config::{Config, NodeId as CfgNodeId};
use crate::pfcp_map::{self, cause_to_wire};
use crate::rules::Cause;
use crate::session::{SessionError, SessionTable, UsageReport};

#[doc(hidden)]
pub mod fixtures;
#[cfg(test)]
mod tests;

/// PFCP message counters.
#[derive(Debug, Default)]
pub struct PfcpStats {
    /// Messages received.
    pub rx: AtomicU64,
    /// Messages sent.
    pub tx: AtomicU64,
    /// Undecodable messages.
    pub malformed: AtomicU64,
    /// Retransmitted requests answered from the cache.
    pub retransmissions: AtomicU64,
    /// Requests answered with a rejection cause.
    pub rejected: AtomicU64,
    /// Session Report Requests sent.
    pub reports_sent: AtomicU64,
    /// Session Report Requests given up after N1 resends.
    pub reports_unanswered: AtomicU64,
}

impl PfcpStats {
    /// (label, value) pairs.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rx", self.rx.load(Ordering::Relaxed)),
            ("tx", self.tx.load(Ordering::Relaxed)),
            ("malformed", self.malformed.load(Ordering::Relaxed)),
            (
                "retransmission",
                self.retransmissions.load(Ordering::Relaxed),
            ),
            ("rejected", self.rejected.load(Ordering::Relaxed)),
            ("session_report", self.reports_sent.load(Ordering::Relaxed)),
            (
                "session_report_unanswered",
                self.reports_unanswered.load(Ordering::Relaxed),
            ),
        ]
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// How long a response stays in the retransmission cache.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// How often the daemon looks at data-path signals (volume thresholds,
/// URR periods, downlink data) by default.
pub const DATA_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Parameters of an [`N4Node`].
#[derive(Debug, Clone, PartialEq)]
pub struct N4Params {
    /// Our Node ID.
    pub node_id: pfcp::NodeId,
    /// Address put in the UP F-SEID.
    pub f_seid_addr: Ipv4Addr,
    /// Our Recovery Time Stamp (NTP seconds).
    pub recovery_ts: u32,
    /// Heartbeat Requests towards associated SMFs; `None` disables.
    pub heartbeat_interval: Option<Duration>,
    /// Intervals without a Heartbeat Response tolerated after the first
    /// unanswered one; one more drops the association.
    pub heartbeat_retries: u32,
    /// T1: wait for a response to our request before resending.
    pub t1: Duration,
    /// N1: resends of an unanswered request.
    pub n1: u32,
    /// Lifetime of cached responses (retransmission detection).
    pub cache_ttl: Duration,
    /// Period of the data-path poll in [`N4Node::handle_timeout`].
    pub data_poll_interval: Duration,
    /// SMFs to set up an association with at start (UPF-initiated).
    pub associate_with: Vec<SocketAddr>,
}

/// How long a UPF-initiated association setup waits after N1 unanswered
/// resends before it starts over.
pub const ASSOC_RETRY: Duration = Duration::from_secs(5);

impl N4Params {
    /// Parameters from the daemon's configuration; `n3_addr` is the F-SEID
    /// address of last resort (N4 bound to a wildcard and a non-IPv4 Node
    /// ID).
    pub fn from_config(cfg: &Config, n3_addr: Ipv4Addr, recovery_ts: u32) -> N4Params {
        let f_seid_addr = match cfg.n4.addr.ip() {
            IpAddr::V4(a) if !a.is_unspecified() => a,
            _ => match CfgNodeId::parse(&cfg.node_id) {
                Some(CfgNodeId::V4(a)) => a,
                _ => n3_addr,
            },
        };
        N4Params {
            node_id: wire_node_id(&cfg.node_id),
            f_seid_addr,
            recovery_ts,
            heartbeat_interval: (cfg.n4.heartbeat_interval_ms > 0)
                .then(|| Duration::from_millis(cfg.n4.heartbeat_interval_ms)),
            heartbeat_retries: cfg.n4.heartbeat_retries,
            t1: Duration::from_millis(cfg.n4.t1_ms.max(1)),
            n1: cfg.n4.n1,
            cache_ttl: CACHE_TTL,
            data_poll_interval: DATA_POLL_INTERVAL,
            associate_with: cfg.n4.smf.clone(),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The encoded PFCP message.
    pub contents: Vec<u8>,
}

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum N4Event {
    /// The session table changed: publish a new snapshot (and perform the
    /// table's End Markers and flushes) before sending the queued
    /// transmits.
    RulesChanged,
    /// Usage reports taken from the table (threshold, period), for the
    /// in-process API; those of PFCP sessions also went out as Session
    /// Report Requests.
    UsageReports(Vec<UsageReport>),
    /// An SMF stopped answering heartbeats: its association and sessions
    /// are gone.
    AssociationLost {
        /// The SMF.
        node: pfcp::NodeId,
    },
    /// A Session Report Request went unanswered after N1 resends.
    ReportUnanswered {
        /// The SMF.
        peer: SocketAddr,
        /// Our SEID of the session.
        seid: u64,
        /// Sequence number of the request.
        seq: u32,
    },
}

#[derive(Debug)]
struct Assoc {
    node: pfcp::NodeId,
    peer: SocketAddr,
    recovery_ts: u32,
    /// Sequence numbers of our Heartbeat Requests since the last answer.
    hb_outstanding: Vec<u32>,
    next_hb: Instant,
}

#[derive(Debug, Clone)]
struct SessPeer {
    node: pfcp::NodeId,
    peer: SocketAddr,
    remote_seid: u64,
    /// FARs whose Apply Action has NOCP (notify the CP of buffered data).
    nocp: HashSet<u32>,
}

/// A UPF-initiated Association Setup towards one SMF, until it is answered.
#[derive(Debug)]
struct AssocSetup {
    peer: SocketAddr,
    /// Sequence number of the request in flight (`None`: waiting to retry).
    seq: Option<u32>,
    /// When the request was (re)sent, or when to start over.
    at: Instant,
    resends: u32,
    bytes: Vec<u8>,
}

/// One of our requests waiting for its response.
#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    peer: SocketAddr,
    seid: u64,
    sent: Instant,
    resends: u32,
}

/// The PFCP node of the UPF: associations, heartbeats, the retransmission
/// cache, our own requests with T1/N1, and dispatch of session requests
/// into a [`SessionTable`] that the caller lends to each input.
#[derive(Debug)]
pub struct N4Node {
    p: N4Params,
    /// `now` and the wall clock at construction (usage report times).
    epoch: Instant,
    wall_epoch: SystemTime,
    /// In setup order (deterministic heartbeat order).
    assocs: Vec<Assoc>,
    sessions: BTreeMap<u64, SessPeer>,
    cache: HashMap<(SocketAddr, u32), Vec<u8>>,
    cache_order: VecDeque<(Instant, (SocketAddr, u32))>,
    next_seq: u32,
    pending: BTreeMap<u32, Pending>,
    /// (sent, seq) of every entry of `pending`: the next resend first.
    pending_by_time: BTreeSet<(Instant, u32)>,
    /// (local SEID, seq) of every entry of `pending`: a session's requests.
    pending_by_seid: BTreeSet<(u64, u32)>,
    next_data_poll: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<N4Event>,
    rules_changed: bool,
    stats: Arc<PfcpStats>,
    setups: Vec<AssocSetup>,
}

fn wire_node_id(s: &str) -> pfcp::NodeId {
    match CfgNodeId::parse(s) {
        Some(CfgNodeId::V4(a)) => pfcp::NodeId::Ipv4(a),
        Some(CfgNodeId::V6(a)) => pfcp::NodeId::Ipv6(a),
        Some(CfgNodeId::Fqdn(f)) => pfcp::NodeId::fqdn(&f),
        // validate() refused anything else; fall back to the raw text.
        None => pfcp::NodeId::fqdn(s),
    }
}

fn session_error(cause: Cause, offending_ie: Option<u16>, message: String) -> SessionError {
    SessionError {
        cause,
        offending_ie,
        message,
    }
}

fn is_request(t: u8) -> bool {
    matches!(t, 1 | 3 | 5 | 7 | 9 | 50 | 52 | 54)
}

impl N4Node {
    /// A node with no association. `now` and `wall` are the same moment on
    /// the monotonic and the wall clock: usage report times are derived
    /// from them.
    pub fn new(params: N4Params, now: Instant, wall: SystemTime) -> N4Node {
        let next_data_poll = now + params.data_poll_interval;
        let setups = params
            .associate_with
            .iter()
            .map(|&peer| AssocSetup {
                peer,
                seq: None,
                at: now,
                resends: 0,
                bytes: Vec::new(),
            })
            .collect();
        let mut node = N4Node {
            p: params,
            epoch: now,
            wall_epoch: wall,
            assocs: Vec::new(),
            sessions: BTreeMap::new(),
            cache: HashMap::new(),
            cache_order: VecDeque::new(),
            next_seq: 1,
            pending: BTreeMap::new(),
            pending_by_time: BTreeSet::new(),
            pending_by_seid: BTreeSet::new(),
            next_data_poll,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rules_changed: false,
            stats: Arc::new(PfcpStats::default()),
            setups,
        };
        node.association_setups(now);
        node
    }

    /// Re-anchor the wall clock (`now` and `wall` are the same moment), so
    /// that usage report times follow a wall clock that was stepped.
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.epoch = now;
        self.wall_epoch = wall;
    }

    /// The parameters in force.
    pub fn params(&self) -> &N4Params {
        &self.p
    }

    /// Message counters (shared with the metrics endpoint).
    pub fn stats(&self) -> &Arc<PfcpStats> {
        &self.stats
    }

    /// The associated SMFs: Node ID and address.
    pub fn associations(&self) -> impl Iterator<Item = (&pfcp::NodeId, SocketAddr)> {
        self.assocs.iter().map(|a| (&a.node, a.peer))
    }

    /// True while `node` is associated.
    pub fn is_associated(&self, node: &pfcp::NodeId) -> bool {
        self.assoc(node).is_some()
    }

    /// Sessions established over PFCP: (our SEID, the SMF's SEID).
    pub fn sessions(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.sessions.iter().map(|(l, p)| (*l, p.remote_seid))
    }

    /// Number of our requests waiting for a response.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// A PFCP datagram from `from`. Then drain [`poll_event`](Self::poll_event)
    /// and only after it [`poll_transmit`](Self::poll_transmit).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        table: &mut SessionTable,
    ) {
        bump(&self.stats.rx);
        self.handle(now, from, bytes, table);
    }

    /// Timers due at `now`: heartbeats, resends, cache expiry, and the poll
    /// of data-path signals (usage reports, downlink data). Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Instant, table: &mut SessionTable) {
        if now >= self.next_data_poll {
            self.next_data_poll = now + self.p.data_poll_interval;
        }
        self.poll_dl_data(now, table);
        self.poll_reports(now, table);
        self.heartbeats(now, table);
        self.association_setups(now);
        self.resend(now);
        self.expire_cache(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        bump(&self.stats.tx);
        Some(t)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next;
    /// never later than the next data-path poll.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hb = self
            .p
            .heartbeat_interval
            .and_then(|_| self.assocs.iter().map(|a| a.next_hb).min());
        let resend = self.pending_by_time.first().map(|(t, _)| *t + self.p.t1);
        let cache = self.cache_order.front().map(|(t, _)| *t + self.p.cache_ttl);
        let setup = self
            .setups
            .iter()
            .map(|s| {
                if s.seq.is_some() {
                    s.at + self.p.t1
                } else {
                    s.at
                }
            })
            .min();
        [Some(self.next_data_poll), hb, resend, cache, setup]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing the driver must act on; [`N4Event::RulesChanged`]
    /// comes first.
    pub fn poll_event(&mut self) -> Option<N4Event> {
        if std::mem::take(&mut self.rules_changed) {
            return Some(N4Event::RulesChanged);
        }
        self.events.pop_front()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        match now.checked_duration_since(self.epoch) {
            Some(d) => self.wall_epoch + d,
            None => self
                .wall_epoch
                .checked_sub(self.epoch - now)
                .unwrap_or(self.wall_epoch),
        }
    }

    fn assoc(&self, node: &pfcp::NodeId) -> Option<&Assoc> {
        self.assocs.iter().find(|a| &a.node == node)
    }

    fn remove_assoc(&mut self, node: &pfcp::NodeId) -> bool {
        let before = self.assocs.len();
        self.assocs.retain(|a| &a.node != node);
        self.assocs.len() != before
    }

    fn queue(&mut self, msg: &Message, to: SocketAddr) -> Option<Vec<u8>> {
        match msg.to_vec() {
            Ok(bytes) => {
                self.transmits.push_back(Transmit {
                    destination: to,
                    contents: bytes.clone(),
                });
                Some(bytes)
            }
            Err(e) => {
                warn!(error = %e, "cannot encode PFCP message");
                None
            }
        }
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = (self.next_seq + 1) & 0x00ff_ffff;
        if self.next_seq == 0 {
            self.next_seq = 1;
        }
        s
    }

    fn respond(&mut self, req_seq: u32, msg: Message, to: SocketAddr, now: Instant) {
        if let Some(bytes) = self.queue(&msg, to) {
            let key = (to, req_seq);
            self.cache.insert(key, bytes);
            self.cache_order.push_back((now, key));
        }
    }

    fn expire_cache(&mut self, now: Instant) {
        while let Some((t, key)) = self.cache_order.front().copied() {
            if now.saturating_duration_since(t) < self.p.cache_ttl {
                break;
            }
            self.cache_order.pop_front();
            self.cache.remove(&key);
        }
    }

    fn table_delete(&mut self, table: &mut SessionTable, seid: u64, now: Instant) {
        let _ = table.delete(seid, now);
        self.forget(seid);
    }

    /// The session is gone: no more resends about it.
    fn forget(&mut self, seid: u64) {
        self.sessions.remove(&seid);
        let seqs: Vec<u32> = self
            .pending_by_seid
            .range((seid, 0)..=(seid, u32::MAX))
            .map(|(_, q)| *q)
            .collect();
        for seq in seqs {
            self.pending_remove(seq);
        }
        self.rules_changed = true;
    }

    fn pending_insert(&mut self, seq: u32, p: Pending) {
        // Sequence numbers may have wrapped onto a request still waiting.
        self.pending_remove(seq);
        self.pending_by_time.insert((p.sent, seq));
        self.pending_by_seid.insert((p.seid, seq));
        self.pending.insert(seq, p);
    }

    fn pending_remove(&mut self, seq: u32) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        self.pending_by_time.remove(&(p.sent, seq));
        self.pending_by_seid.remove(&(p.seid, seq));
        Some(p)
    }

    fn handle(&mut self, now: Instant, from: SocketAddr, bytes: &[u8], table: &mut SessionTable) {
        // Retransmission: answer from the cache before parsing.
        if let Ok(raw) = pfcp::RawHeader::parse(bytes) {
            if is_request(raw.msg_type) {
                if let Some(resp) = self.cache.get(&(from, raw.header.seq)) {
                    bump(&self.stats.retransmissions);
                    self.transmits.push_back(Transmit {
                        destination: from,
                        contents: resp.clone(),
                    });
                    debug!(%from, seq = raw.header.seq, "retransmitted request answered from cache");
                    return;
                }
            }
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                bump(&self.stats.malformed);
                warn!(%from, error = %e, "malformed PFCP message");
                if let Some(ctx) = e.context() {
                    self.reject_malformed(ctx, &e, from, now);
                }
                return;
            }
        };
        let seq = msg.header.seq;
        let resp = match msg.body {
            MessageBody::HeartbeatRequest(_) => Some(Message::node(
                seq,
                pfcp::HeartbeatResponse {
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            )),
            MessageBody::HeartbeatResponse(_) => {
                for a in self.assocs.iter_mut() {
                    if a.peer == from && a.hb_outstanding.contains(&seq) {
                        a.hb_outstanding.clear();
                    }
                }
                None
            }
            MessageBody::AssociationSetupRequest(r) => {
                Some(self.association_setup(r, seq, from, now, table))
            }
            MessageBody::AssociationSetupResponse(r) => {
                self.association_setup_answered(r, seq, from, now, table);
                None
            }
            MessageBody::AssociationUpdateRequest(r) => {
                let cause = if self.is_associated(&r.node_id) {
                    pfcp::Cause::RequestAccepted
                } else {
                    pfcp::Cause::NoEstablishedPfcpAssociation
                };
                Some(Message::node(
                    seq,
                    pfcp::AssociationUpdateResponse {
                        node_id: self.p.node_id.clone(),
                        cause,
                        ..Default::default()
                    },
                ))
            }
            MessageBody::AssociationReleaseRequest(r) => {
                let cause = if self.remove_assoc(&r.node_id) {
                    self.drop_sessions_of(&r.node_id, now, table);
                    info!(node = %r.node_id, "association released");
                    pfcp::Cause::RequestAccepted
                } else {
                    pfcp::Cause::NoEstablishedPfcpAssociation
                };
                Some(Message::node(
                    seq,
                    pfcp::AssociationReleaseResponse {
                        node_id: self.p.node_id.clone(),
                        cause,
                        ..Default::default()
                    },
                ))
            }
            MessageBody::SessionEstablishmentRequest(r) => {
                Some(self.establish(r, seq, from, now, table))
            }
            MessageBody::SessionModificationRequest(r) => {
                Some(self.modify(msg.header.seid.unwrap_or(0), r, seq, from, now, table))
            }
            MessageBody::SessionDeletionRequest(_) => {
                Some(self.delete(msg.header.seid.unwrap_or(0), seq, from, now, table))
            }
            MessageBody::SessionReportResponse(r) => {
                if self.pending.get(&seq).is_some_and(|p| p.peer == from) {
                    self.pending_remove(seq);
                }
                if r.cause == pfcp::Cause::SessionContextNotFound {
                    if let Some(seid) = msg.header.seid {
                        // The SMF no longer knows the session: remove ours.
                        let local = self
                            .sessions
                            .iter()
                            .find(|(_, p)| p.remote_seid == seid && p.peer == from)
                            .map(|(l, _)| *l);
                        if let Some(local) = local {
                            info!(seid = local, "SMF lost the session: removed");
                            self.table_delete(table, local, now);
                        }
                    }
                }
                None
            }
            other => {
                debug!(%from, msg_type = other.msg_type(), "PFCP message not handled");
                None
            }
        };
        if let Some(r) = resp {
            if let MessageBody::SessionEstablishmentResponse(x) = &r.body {
                self.count_reject(x.cause);
            }
            self.respond(seq, r, from, now);
        }
    }

    fn count_reject(&self, c: pfcp::Cause) {
        if !c.is_accepted() {
            bump(&self.stats.rejected);
        }
    }

    fn reject_malformed(
        &mut self,
        ctx: pfcp::MsgContext,
        e: &pfcp::PfcpError,
        from: SocketAddr,
        now: Instant,
    ) {
        let cause = e.cause();
        let offending_ie = e.offending_ie();
        let seq = ctx.seq;
        let remote = ctx
            .seid
            .and_then(|l| self.sessions.get(&l))
            .filter(|p| p.peer.ip() == from.ip())
            .map_or(0, |p| p.remote_seid);
        let node_id = self.p.node_id.clone();
        let msg = match ctx.msg_type {
            1 => Message::node(
                seq,
                pfcp::HeartbeatResponse {
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            ),
            5 => Message::node(
                seq,
                pfcp::AssociationSetupResponse {
                    node_id,
                    cause,
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            ),
            7 => Message::node(
                seq,
                pfcp::AssociationUpdateResponse {
                    node_id,
                    cause,
                    ..Default::default()
                },
            ),
            9 => Message::node(
                seq,
                pfcp::AssociationReleaseResponse {
                    node_id,
                    cause,
                    ..Default::default()
                },
            ),
            50 => Message::session(
                0,
                seq,
                pfcp::SessionEstablishmentResponse {
                    node_id,
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            52 => Message::session(
                remote,
                seq,
                pfcp::SessionModificationResponse {
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            54 => Message::session(
                remote,
                seq,
                pfcp::SessionDeletionResponse {
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            _ => return,
        };
        self.count_reject(cause);
        self.respond(seq, msg, from, now);
    }

    fn association_setup(
        &mut self,
        r: pfcp::AssociationSetupRequest,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Message {
        let restarted = self
            .assoc(&r.node_id)
            .is_some_and(|old| old.recovery_ts != r.recovery_time_stamp);
        if restarted {
            info!(node = %r.node_id, "SMF restarted: its old sessions are removed");
            self.drop_sessions_of(&r.node_id, now, table);
        }
        // The SMF was first: our own attempt towards it is moot.
        self.setups.retain(|s| s.peer != from);
        info!(node = %r.node_id, %from, "association set up");
        let a = Assoc {
            node: r.node_id.clone(),
            peer: from,
            recovery_ts: r.recovery_time_stamp,
            hb_outstanding: Vec::new(),
            next_hb: now + self.p.heartbeat_interval.unwrap_or(Duration::ZERO),
        };
        match self.assocs.iter_mut().find(|x| x.node == r.node_id) {
            Some(old) => *old = a,
            None => self.assocs.push(a),
        }
        Message::node(
            seq,
            pfcp::AssociationSetupResponse {
                node_id: self.p.node_id.clone(),
                cause: pfcp::Cause::RequestAccepted,
                recovery_time_stamp: self.p.recovery_ts,
                up_function_features: Some(pfcp::FunctionFeatures::with(&[
                    pfcp::up_features::FTUP,
                ])),
                ..Default::default()
            },
        )
    }

    fn drop_sessions_of(&mut self, node: &pfcp::NodeId, now: Instant, table: &mut SessionTable) {
        let gone: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, p)| &p.node == node)
            .map(|(l, _)| *l)
            .collect();
        for l in gone {
            self.table_delete(table, l, now);
        }
    }

    fn est_reject(&self, seid: u64, seq: u32, e: &SessionError) -> Message {
        warn!(cause = ?e.cause, offending_ie = ?e.offending_ie, reason = %e.message, "session establishment refused");
        Message::session(
            seid,
            seq,
            pfcp::SessionEstablishmentResponse {
                node_id: self.p.node_id.clone(),
                cause: cause_to_wire(e.cause),
                offending_ie: e.offending_ie,
                ..Default::default()
            },
        )
    }

    fn establish(
        &mut self,
        r: pfcp::SessionEstablishmentRequest,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Message {
        let cp_seid = r.cp_f_seid.seid;
        if !self.is_associated(&r.node_id) {
            return self.est_reject(
                cp_seid,
                seq,
                &SessionError {
                    cause: Cause::NoEstablishedPfcpAssociation,
                    offending_ie: None,
                    message: format!("no association with {}", r.node_id),
                },
            );
        }
        let rules = match pfcp_map::establishment(&r) {
            Ok(x) => x,
            Err(e) => return self.est_reject(cp_seid, seq, &e),
        };
        let est = match table.establish(cp_seid, rules, now) {
            Ok(est) => est,
            Err(e) => return self.est_reject(cp_seid, seq, &e),
        };
        self.rules_changed = true;
        info!(seid = est.local_seid, remote_seid = cp_seid, node = %r.node_id, "session established");
        self.sessions.insert(
            est.local_seid,
            SessPeer {
                node: r.node_id.clone(),
                peer: from,
                remote_seid: cp_seid,
                nocp: r
                    .create_fars
                    .iter()
                    .filter(|f| f.apply_action.intersects(pfcp::ApplyAction::NOCP))
                    .map(|f| f.far_id)
                    .collect(),
            },
        );
        Message::session(
            cp_seid,
            seq,
            pfcp::SessionEstablishmentResponse {
                node_id: self.p.node_id.clone(),
                cause: pfcp::Cause::RequestAccepted,
                up_f_seid: Some(pfcp::FSeid {
                    seid: est.local_seid,
                    ipv4: Some(self.p.f_seid_addr),
                    ipv6: None,
                }),
                created_pdrs: est
                    .created
                    .iter()
                    .map(|c| pfcp::CreatedPdr {
                        pdr_id: c.pdr_id,
                        local_f_teid: Some(pfcp::FTeid::ipv4(c.teid, c.addr)),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
    }

    fn mod_reject(&self, seid: u64, remote: u64, seq: u32, e: SessionError) -> Message {
        warn!(seid, cause = ?e.cause, offending_ie = ?e.offending_ie, reason = %e.message, "session modification refused");
        bump(&self.stats.rejected);
        Message::session(
            remote,
            seq,
            pfcp::SessionModificationResponse {
                cause: cause_to_wire(e.cause),
                offending_ie: e.offending_ie,
                ..Default::default()
            },
        )
    }

    fn modify(
        &mut self,
        seid: u64,
        r: pfcp::SessionModificationRequest,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Message {
        // A session is only visible to the node that made it: another peer
        // gets "not found" and cannot touch it.
        let Some(peer) = self.owned(seid, from) else {
            let e = session_error(
                Cause::SessionContextNotFound,
                None,
                format!("no session {seid:#x}"),
            );
            return self.mod_reject(seid, 0, seq, e);
        };
        if !self.is_associated(&peer.node) {
            let e = session_error(
                Cause::NoEstablishedPfcpAssociation,
                None,
                format!("association with {} gone", peer.node),
            );
            return self.mod_reject(seid, peer.remote_seid, seq, e);
        }
        let m = match table.session(seid) {
            Some(s) => pfcp_map::modification(&r, s),
            None => Err(session_error(
                Cause::SessionContextNotFound,
                None,
                format!("no session {seid:#x}"),
            )),
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => return self.mod_reject(seid, peer.remote_seid, seq, e),
        };
        let done = match table.modify(seid, m, now) {
            Ok(done) => done,
            Err(e) => return self.mod_reject(seid, peer.remote_seid, seq, e),
        };
        self.rules_changed = true;
        debug!(seid, "session modified");
        let mut remote = peer.remote_seid;
        if let Some(p) = self.sessions.get_mut(&seid) {
            if let Some(f) = r.cp_f_seid {
                remote = f.seid;
                p.remote_seid = f.seid;
            }
            let aas = r
                .create_fars
                .iter()
                .map(|f| (f.far_id, Some(f.apply_action)))
                .chain(r.update_fars.iter().map(|f| (f.far_id, f.apply_action)));
            for (id, aa) in aas {
                match aa {
                    Some(a) if a.intersects(pfcp::ApplyAction::NOCP) => {
                        p.nocp.insert(id);
                    }
                    Some(_) => {
                        p.nocp.remove(&id);
                    }
                    None => {}
                }
            }
            for f in &r.remove_fars {
                p.nocp.remove(&f.far_id);
            }
        }
        let wall = self.wall(now);
        Message::session(
            remote,
            seq,
            pfcp::SessionModificationResponse {
                cause: pfcp::Cause::RequestAccepted,
                created_pdrs: done
                    .created
                    .iter()
                    .map(|c| pfcp::CreatedPdr {
                        pdr_id: c.pdr_id,
                        local_f_teid: Some(pfcp::FTeid::ipv4(c.teid, c.addr)),
                        ..Default::default()
                    })
                    .collect(),
                usage_reports: done
                    .reports
                    .iter()
                    .map(|u| pfcp_map::usage_report(u, now, wall))
                    .collect(),
                ..Default::default()
            },
        )
    }

    fn owned(&self, seid: u64, from: SocketAddr) -> Option<SessPeer> {
        self.sessions
            .get(&seid)
            .filter(|p| p.peer.ip() == from.ip())
            .cloned()
    }

    fn delete(
        &mut self,
        seid: u64,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Message {
        let Some(peer) = self.owned(seid, from) else {
            bump(&self.stats.rejected);
            return Message::session(
                0,
                seq,
                pfcp::SessionDeletionResponse {
                    cause: pfcp::Cause::SessionContextNotFound,
                    ..Default::default()
                },
            );
        };
        let (cause, reports) = match table.delete(seid, now) {
            Ok(r) => (pfcp::Cause::RequestAccepted, r),
            Err(e) => (cause_to_wire(e.cause), Vec::new()),
        };
        self.forget(seid);
        info!(seid, "session deleted");
        let wall = self.wall(now);
        Message::session(
            peer.remote_seid,
            seq,
            pfcp::SessionDeletionResponse {
                cause,
                usage_reports: reports
                    .iter()
                    .map(|u| pfcp_map::usage_report(u, now, wall))
                    .collect(),
                ..Default::default()
            },
        )
    }

    /// Send a request of ours and keep it for T1/N1.
    fn request(&mut self, seid: u64, p: &SessPeer, body: pfcp::SessionReportRequest, now: Instant) {
        let seq = self.seq();
        let msg = Message::session(p.remote_seid, seq, body);
        if let Some(bytes) = self.queue(&msg, p.peer) {
            self.pending_insert(
                seq,
                Pending {
                    bytes,
                    peer: p.peer,
                    seid,
                    sent: now,
                    resends: 0,
                },
            );
            bump(&self.stats.reports_sent);
        }
    }

    /// Downlink Data Reports: a packet reached an empty buffer of a FAR that
    /// has NOCP. Only the sessions the data path queued are looked at.
    fn poll_dl_data(&mut self, now: Instant, table: &SessionTable) {
        let mut queued = table.take_dl_data();
        if queued.is_empty() {
            return;
        }
        queued.sort_unstable();
        queued.dedup();
        let mut due = Vec::new();
        for seid in &queued {
            let Some(p) = self.sessions.get(seid) else {
                continue; // a session of the in-process API, or gone
            };
            let Some(s) = table.session(*seid) else {
                continue;
            };
            if !s.shared.dl_data_pending.swap(false, Ordering::AcqRel) {
                continue;
            }
            let pdr_id = s.shared.buffering_pdr.load(Ordering::Relaxed) as u16;
            let far = s.pdr(pdr_id).map(|p| p.far_id);
            if far.is_some_and(|f| p.nocp.contains(&f)) {
                due.push((*seid, pdr_id, p.clone()));
            }
        }
        for (seid, pdr_id, p) in due {
            let body = pfcp::SessionReportRequest {
                report_type: pfcp::ReportType::DLDR,
                downlink_data_report: Some(pfcp::DownlinkDataReport {
                    pdr_ids: vec![pdr_id],
                    ..Default::default()
                }),
                ..Default::default()
            };
            self.request(seid, &p, body, now);
            debug!(seid, pdr_id, "downlink data report sent");
        }
    }

    fn poll_reports(&mut self, now: Instant, table: &mut SessionTable) {
        let reports = table.poll_reports(now);
        if reports.is_empty() {
            return;
        }
        let wall = self.wall(now);
        let mut by_session: BTreeMap<u64, Vec<&UsageReport>> = BTreeMap::new();
        for r in &reports {
            by_session.entry(r.seid).or_default().push(r);
        }
        for (seid, rs) in by_session {
            let Some(p) = self.sessions.get(&seid).cloned() else {
                continue; // a session made through the in-process API
            };
            let body = pfcp::SessionReportRequest {
                report_type: pfcp::ReportType::USAR,
                usage_reports: rs
                    .iter()
                    .map(|u| pfcp_map::usage_report(u, now, wall))
                    .collect(),
                ..Default::default()
            };
            self.request(seid, &p, body, now);
        }
        self.events.push_back(N4Event::UsageReports(reports));
    }

    /// Resend unanswered requests after T1, give up after N1 resends. Only
    /// the requests whose T1 ran out are looked at.
    fn resend(&mut self, now: Instant) {
        let (t1, n1) = (self.p.t1, self.p.n1);
        let mut gave_up = Vec::new();
        let mut resent = Vec::new();
        while let Some(&(sent, seq)) = self.pending_by_time.first() {
            if now.saturating_duration_since(sent) < t1 {
                break;
            }
            self.pending_by_time.pop_first();
            let Some(p) = self.pending.get_mut(&seq) else {
                debug_assert!(false, "resend index names no request");
                continue;
            };
            if p.resends >= n1 {
                gave_up.push(seq);
                continue;
            }
            p.resends += 1;
            p.sent = now;
            resent.push((now, seq));
            self.transmits.push_back(Transmit {
                destination: p.peer,
                contents: p.bytes.clone(),
            });
        }
        // Back in the index with their new send time (after the loop, so
        // that one call resends a request at most once).
        self.pending_by_time.extend(resent);
        gave_up.sort_unstable();
        for seq in gave_up {
            // Its time entry is already out of the index.
            if let Some(p) = self.pending.remove(&seq) {
                self.pending_by_seid.remove(&(p.seid, seq));
                warn!(peer = %p.peer, seq, seid = p.seid, "Session Report Request unanswered after N1 resends");
                bump(&self.stats.reports_unanswered);
                self.events.push_back(N4Event::ReportUnanswered {
                    peer: p.peer,
                    seid: p.seid,
                    seq,
                });
            }
        }
    }

    /// Sends, resends and restarts our own Association Setup Requests.
    fn association_setups(&mut self, now: Instant) {
        for i in 0..self.setups.len() {
            let s = &self.setups[i];
            match s.seq {
                None if now >= s.at => {}
                Some(_) if now.saturating_duration_since(s.at) >= self.p.t1 => {
                    if s.resends < self.p.n1 {
                        let s = &mut self.setups[i];
                        s.resends += 1;
                        s.at = now;
                        self.transmits.push_back(Transmit {
                            destination: s.peer,
                            contents: s.bytes.clone(),
                        });
                        continue;
                    }
                    warn!(smf = %s.peer, "Association Setup Request unanswered; trying again later");
                    let s = &mut self.setups[i];
                    s.seq = None;
                    s.at = now + ASSOC_RETRY;
                    continue;
                }
                _ => continue,
            }
            let seq = self.seq();
            let msg = Message::node(
                seq,
                pfcp::AssociationSetupRequest {
                    node_id: self.p.node_id.clone(),
                    recovery_time_stamp: self.p.recovery_ts,
                    up_function_features: Some(pfcp::FunctionFeatures::with(&[
                        pfcp::up_features::FTUP,
                    ])),
                    ..Default::default()
                },
            );
            let peer = self.setups[i].peer;
            if let Some(bytes) = self.queue(&msg, peer) {
                info!(smf = %peer, "setting up the PFCP association (UPF-initiated)");
                let s = &mut self.setups[i];
                s.seq = Some(seq);
                s.at = now;
                s.resends = 0;
                s.bytes = bytes;
            }
        }
    }

    fn association_setup_answered(
        &mut self,
        r: pfcp::AssociationSetupResponse,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) {
        let Some(i) = self
            .setups
            .iter()
            .position(|s| s.peer == from && s.seq == Some(seq))
        else {
            debug!(%from, seq, "Association Setup Response to no request of ours");
            return;
        };
        if !r.cause.is_accepted() {
            warn!(smf = %from, cause = ?r.cause, "SMF refused the association; trying again later");
            let s = &mut self.setups[i];
            s.seq = None;
            s.at = now + ASSOC_RETRY;
            return;
        }
        self.setups.remove(i);
        if self
            .assoc(&r.node_id)
            .is_some_and(|old| old.recovery_ts != r.recovery_time_stamp)
        {
            info!(node = %r.node_id, "SMF restarted: its old sessions are removed");
            self.drop_sessions_of(&r.node_id, now, table);
        }
        info!(node = %r.node_id, smf = %from, "association set up (UPF-initiated)");
        let a = Assoc {
            node: r.node_id.clone(),
            peer: from,
            recovery_ts: r.recovery_time_stamp,
            hb_outstanding: Vec::new(),
            next_hb: now + self.p.heartbeat_interval.unwrap_or(Duration::ZERO),
        };
        match self.assocs.iter_mut().find(|x| x.node == r.node_id) {
            Some(old) => *old = a,
            None => self.assocs.push(a),
        }
    }

    fn heartbeats(&mut self, now: Instant, table: &mut SessionTable) {
        let Some(iv) = self.p.heartbeat_interval else {
            return;
        };
        let mut dead = Vec::new();
        let mut to_send = Vec::new();
        for (i, a) in self.assocs.iter_mut().enumerate() {
            if now < a.next_hb {
                continue;
            }
            a.next_hb = now + iv;
            // The first unanswered heartbeat is tolerated; then `retries`
            // more intervals.
            if a.hb_outstanding.len() as u64 > u64::from(self.p.heartbeat_retries) {
                dead.push(a.node.clone());
                continue;
            }
            to_send.push((i, a.peer));
        }
        for (i, peer) in to_send {
            let seq = self.seq();
            let msg = Message::node(
                seq,
                pfcp::HeartbeatRequest {
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            );
            if self.queue(&msg, peer).is_some() {
                self.assocs[i].hb_outstanding.push(seq);
            }
        }
        for node in dead {
            warn!(%node, "SMF stopped answering heartbeats: association and sessions dropped");
            self.remove_assoc(&node);
            self.drop_sessions_of(&node, now, table);
            self.events.push_back(N4Event::AssociationLost { node });
        }
    }
}
