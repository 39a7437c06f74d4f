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
//!     datagram  -> (needs_settled_counts(bytes): wait out the packet
//!                   threads' batches in flight)
//!                  handle_datagram(now, from, bytes, &mut table)
//!     deadline  -> handle_timeout(now, &mut table)
//!     poll_event() until None  (RulesChanged: publish a snapshot, ...)
//!     removals_pending(): wait out the batches in flight
//!     poll_transmit() until None -> send_to
//! }
//! ```
//!
//! Events are drained before transmits so that a response never reaches the
//! SMF before the data path runs the rules it acknowledges. The two waits
//! are for packet threads that count a batch's packets at its end: a
//! query's report then holds every packet forwarded before the request,
//! and the final report of a deleted session or a removed URR every packet
//! forwarded with its rules (that response is made at the transmit poll).
//!
//! Behaviour:
//! - Heartbeat Requests are answered before and after an association; the
//!   UPF sends its own to every associated SMF every `heartbeat_interval`
//!   and drops an association (and its sessions) one interval after the
//!   `1 + heartbeat_retries`-th Heartbeat Request in a row went unanswered.
//! - Association Setup/Update/Release from any Node ID form (IPv4, IPv6,
//!   FQDN); a Setup from a node whose Recovery Time Stamp changed (the SMF
//!   restarted) removes the sessions of its previous life.
//! - A peer is its Node ID and its address together (`assoc.rs`): a Setup
//!   for a Node ID associated from another address is refused (64 Request
//!   rejected); an Update or Release, a Session Establishment from another
//!   address than the association's, and any session request from an
//!   address without an association get 72 (No established PFCP
//!   Association); a session answers only to the association that
//!   established it (another peer gets 65, Session context not found).
//!   Each is counted (`wrong_peer`).
//! - A Heartbeat Request or Response from an associated peer's address
//!   with a newer Recovery Time Stamp means the peer restarted (TS 29.244
//!   §19A, TS 23.527 §4.4): without a restoration feature advertised, its
//!   sessions are deleted and its association is gone (`peer_restart`).
//! - Retransmitted requests (same peer address, same sequence number, same
//!   bytes) get the stored response, not a second execution ([`replay`]:
//!   kept `cache_ttl`, 60 s, bounded in count and per peer, forgotten for
//!   a peer that restarted). Only answers to associated peers are stored.
//! - Malformed requests whose header parsed get the matching response with
//!   the codec's cause (66/68/69) and Offending IE; others are counted and
//!   dropped. Nothing a peer sends can make the node panic, and the log
//!   lines bad input causes are rate-limited per cause ([`logs`]).
//! - Bounds: at most `max_sessions_per_peer` sessions per Node ID, and the
//!   session table's limits (sessions, PDRs, FARs, QERs, URRs per
//!   session); a request over one gets 74 (No resources available) and is
//!   counted (`over_limit`).
//! - A Session Establishment (a new request, not a retransmission) for a
//!   CP F-SEID the same peer already has a session for replaces that
//!   session (`session_replaced`): the SMF lost our response, or gave up
//!   on it, and sets the session up again; the first one would otherwise
//!   stay orphaned.
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

use tracing::{debug, warn};
use wire::pfcp::{self, Message, MessageBody};

use crate::config::{Config, NodeId as CfgNodeId};
use crate::datapath::UrrState;
use crate::rules::Cause;
use crate::session::{SessionError, SessionTable, UsageReport};

mod assoc;
#[doc(hidden)]
pub mod fixtures;
pub mod logs;
pub mod replay;
mod sessions;
#[cfg(test)]
mod tests;

use logs::{LogCause, LogLimiter, Suppressed};
use replay::ReplayStore;

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
    /// Requests refused because of who sent them (an address without the
    /// association, another peer's Node ID or session).
    pub wrong_peer: AtomicU64,
    /// Associated peers found restarted (new Recovery Time Stamp).
    pub peer_restarts: AtomicU64,
    /// Log lines written about bad input (rate-limited).
    pub logged: AtomicU64,
    /// Log lines about bad input suppressed by the rate limit.
    pub log_suppressed: AtomicU64,
    /// Requests refused because a bound was reached (sessions in all,
    /// sessions of the peer, PDRs, FARs, QERs or URRs of a session).
    pub over_limit: AtomicU64,
    /// Sessions replaced by an establishment for the same CP F-SEID.
    pub replaced: AtomicU64,
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
            ("wrong_peer", self.wrong_peer.load(Ordering::Relaxed)),
            ("peer_restart", self.peer_restarts.load(Ordering::Relaxed)),
            ("over_limit", self.over_limit.load(Ordering::Relaxed)),
            ("session_replaced", self.replaced.load(Ordering::Relaxed)),
            ("log_line", self.logged.load(Ordering::Relaxed)),
            (
                "log_suppressed",
                self.log_suppressed.load(Ordering::Relaxed),
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

/// A response held until the packet threads no longer count into the
/// usage it reports: that of a Session Deletion, and of a Session
/// Modification that removes URRs. Made at the next `poll_transmit`.
#[derive(Debug)]
struct Deferred {
    /// The request's sequence number and digest (for resends).
    req: (u32, u64),
    to: SocketAddr,
    at: Instant,
    /// The response, its usage reports set when it is made.
    msg: Message,
    /// The reports taken at the request.
    reports: Vec<UsageReport>,
    /// The counters of the removed URRs (of the deleted session, or
    /// removed by the modification): what they counted since the reports
    /// were taken is added when the response is made.
    late: Vec<Arc<UrrState>>,
}

#[derive(Debug)]
struct Assoc {
    node: pfcp::NodeId,
    peer: SocketAddr,
    recovery_ts: u32,
    /// Sequence numbers of our Heartbeat Requests since the last answer.
    /// (Its address is `peer`'s IP; the port is where we send.)
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
    /// The session's BAR ID, if it has one.
    bar: Option<u8>,
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
    /// Sessions per peer Node ID (the entries of `sessions`, counted).
    per_node: HashMap<pfcp::NodeId, usize>,
    /// Sessions one peer may have at once.
    max_sessions_per_peer: usize,
    /// (peer Node ID, its SEID) -> local SEID, of every entry of
    /// `sessions`: a repeated establishment for the same CP F-SEID (the
    /// SMF lost our response and tries again) replaces the session instead
    /// of leaving the first one orphaned.
    by_cp: HashMap<(pfcp::NodeId, u64), u64>,
    replay: ReplayStore,
    logs: LogLimiter,
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
    /// Responses made at the next `poll_transmit`.
    deferred: Vec<Deferred>,
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
            epoch: now,
            wall_epoch: wall,
            assocs: Vec::new(),
            sessions: BTreeMap::new(),
            per_node: HashMap::new(),
            max_sessions_per_peer: usize::MAX,
            by_cp: HashMap::new(),
            replay: ReplayStore::new(params.cache_ttl, replay::MAX_ENTRIES, replay::MAX_PER_PEER),
            logs: LogLimiter::default(),
            next_seq: 1,
            pending: BTreeMap::new(),
            pending_by_time: BTreeSet::new(),
            pending_by_seid: BTreeSet::new(),
            next_data_poll,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rules_changed: false,
            deferred: Vec::new(),
            stats: Arc::new(PfcpStats::default()),
            setups,
            p: params,
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

    /// At most `n` sessions per peer Node ID from now on (default: no
    /// bound but the table's); one more is refused with 74 and counted
    /// (`over_limit`).
    pub fn set_max_sessions_per_peer(&mut self, n: usize) {
        self.max_sessions_per_peer = n.max(1);
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

    /// The retransmission store (responses kept for retransmissions).
    pub fn replay_store(&self) -> &ReplayStore {
        &self.replay
    }

    /// Bound the retransmission store to `max` responses, `max_per_peer`
    /// per peer address (defaults [`replay::MAX_ENTRIES`],
    /// [`replay::MAX_PER_PEER`]); it starts empty.
    pub fn set_replay_bounds(&mut self, max: usize, max_per_peer: usize) {
        self.replay = ReplayStore::new(self.p.cache_ttl, max, max_per_peer);
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
        self.replay.expire(now);
        for (cause, n) in self.logs.take_summaries(now) {
            bump(&self.stats.logged);
            warn!("{}: {n} suppressed in the last second", cause.label());
        }
    }

    /// The next datagram to send. The responses to Session Deletions and
    /// to Session Modifications that removed URRs are made here, with the
    /// usage the removed counters hold now.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.deferred.is_empty() {
            self.finish_deferred();
        }
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
        let cache = self.replay.next_expiry();
        let logs = self.logs.next_summary();
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
        [Some(self.next_data_poll), hb, resend, cache, setup, logs]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the packet threads' counts must be complete before `bytes`
    /// is handled: a Session Modification Request (type 52) may query or
    /// remove URRs, whose reports count every packet forwarded before the
    /// request came. A driver whose packet threads count at the end of a
    /// batch waits for the batches in flight first; what comes after the
    /// request is in the next report.
    pub fn needs_settled_counts(bytes: &[u8]) -> bool {
        pfcp::RawHeader::parse(bytes).is_ok_and(|h| h.msg_type == 52)
    }

    /// Whether sessions or URRs were removed since the last
    /// [`poll_transmit`](Self::poll_transmit): a driver with packet threads
    /// that count at the end of a batch waits, after publishing the rules
    /// without them, until the batches that began before have ended, so
    /// that the responses' final usage reports hold every packet forwarded.
    pub fn removals_pending(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Makes the responses held back, with their usage reports.
    fn finish_deferred(&mut self) {
        for mut d in std::mem::take(&mut self.deferred) {
            UsageReport::add_late(&mut d.reports, &d.late);
            self.set_usage(&mut d.msg, &d.reports, d.at);
            self.respond(d.req, d.msg, d.to, d.at);
        }
    }

    /// Puts `reports`, taken at `at`, into the response `msg` (a Session
    /// Deletion or Modification Response).
    fn set_usage(&self, msg: &mut Message, reports: &[UsageReport], at: Instant) {
        let wall = self.wall(at);
        let ies = reports
            .iter()
            .map(|u| crate::pfcp_map::usage_report(u, at, wall))
            .collect();
        match &mut msg.body {
            MessageBody::SessionDeletionResponse(b) => b.usage_reports = ies,
            MessageBody::SessionModificationResponse(b) => b.usage_reports = ies,
            _ => {}
        }
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

    /// A line about bad input may be written now (the rate limit of its
    /// cause allows it); counted either way.
    fn may_log(&mut self, now: Instant, cause: LogCause) -> Option<Suppressed> {
        let s = self.logs.allow(now, cause);
        bump(if s.is_some() {
            &self.stats.logged
        } else {
            &self.stats.log_suppressed
        });
        s
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

    /// Send the response to request `req` (sequence number, digest of its
    /// bytes) and keep it for retransmissions if `to` is an associated
    /// peer's address (answers to others are not worth a slot: their
    /// requests change nothing, and answering again gives the same).
    fn respond(&mut self, req: (u32, u64), msg: Message, to: SocketAddr, now: Instant) {
        if let Some(bytes) = self.queue(&msg, to) {
            if self.assocs.iter().any(|a| a.peer.ip() == to.ip()) {
                self.replay.insert(now, to, req.0, req.1, bytes);
            }
        }
    }

    fn table_delete(&mut self, table: &mut SessionTable, seid: u64, now: Instant) {
        let _ = table.delete(seid, now);
        self.forget(seid);
    }

    /// The session is gone: no more resends about it.
    fn forget(&mut self, seid: u64) {
        if let Some(p) = self.sessions.remove(&seid) {
            let key = (p.node.clone(), p.remote_seid);
            if self.by_cp.get(&key) == Some(&seid) {
                self.by_cp.remove(&key);
            }
            if let Some(n) = self.per_node.get_mut(&p.node) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_node.remove(&p.node);
                }
            }
        }
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
        // Retransmission: answer from the store before parsing.
        let mut digest = 0;
        if let Ok(raw) = pfcp::RawHeader::parse(bytes) {
            if is_request(raw.msg_type) {
                digest = self.replay.digest(bytes);
                if let Some(resp) = self.replay.lookup(from, raw.header.seq, digest) {
                    bump(&self.stats.retransmissions);
                    self.transmits.push_back(Transmit {
                        destination: from,
                        contents: resp.to_vec(),
                    });
                    debug!(%from, seq = raw.header.seq, "retransmitted request answered from the store");
                    return;
                }
            }
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                bump(&self.stats.malformed);
                if let Some(s) = self.may_log(now, LogCause::Malformed) {
                    warn!(%from, error = %e, "malformed PFCP message{s}");
                }
                if let Some(ctx) = e.context() {
                    self.reject_malformed(ctx, &e, (from, digest), now);
                }
                return;
            }
        };
        let seq = msg.header.seq;
        let seid = msg.header.seid.unwrap_or(0);
        let resp = match msg.body {
            MessageBody::HeartbeatRequest(r) => {
                // Answered whoever asks (§6.2.2.1); acted on only from an
                // associated peer's address.
                self.peer_recovery(from, None, r.recovery_time_stamp, now, table);
                Some(Message::node(
                    seq,
                    pfcp::HeartbeatResponse {
                        recovery_time_stamp: self.p.recovery_ts,
                        ..Default::default()
                    },
                ))
            }
            MessageBody::HeartbeatResponse(r) => {
                self.heartbeat_answered(from, seq, r.recovery_time_stamp, now, table);
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
                let cause = self.node_request_cause(&r.node_id, from, now, "Association Update");
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
                let mut cause =
                    self.node_request_cause(&r.node_id, from, now, "Association Release");
                if cause.is_accepted() {
                    self.release(&r.node_id, now, table);
                } else if !self.is_associated(&r.node_id) {
                    cause = pfcp::Cause::NoEstablishedPfcpAssociation;
                }
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
                self.modify(seid, r, (seq, digest), from, now, table)
            }
            MessageBody::SessionDeletionRequest(_) => {
                self.delete(seid, (seq, digest), from, now, table)
            }
            MessageBody::SessionReportResponse(r) => {
                self.report_answered(msg.header.seid, &r, seq, from, now, table);
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
            self.respond((seq, digest), r, from, now);
        }
    }

    fn count_reject(&self, c: pfcp::Cause) {
        if !c.is_accepted() {
            bump(&self.stats.rejected);
        }
    }
}
