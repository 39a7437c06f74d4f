//! The per-packet side of the UPF, without I/O.
//!
//! A [`Snapshot`] is an immutable compilation of the session table: lookup
//! maps from TEID (uplink) and UE address (downlink) to PDRs sorted by
//! precedence. The control plane swaps a new one in atomically after every
//! rule change (see `daemon`); packet threads load it once per batch and
//! never wait for the control plane.
//!
//! The maps are persistent hash tries (`imbl`): a rule change recompiles
//! only the session it touches ([`CompiledSession`]) and replaces that
//! session's keys, which copies one path of the trie (O(log n)) and shares
//! every other node with the previous snapshot. Taking a snapshot clones
//! the roots, so publishing costs the same with 1 or 10 000 sessions.
//!
//! Mutable per-packet state (counters, token buckets, URR volumes, the
//! downlink buffer flag) lives in `Arc`ed structures of atomics that survive
//! snapshot rebuilds. The only lock, [`SessionShared::buffer`], is touched by
//! packets whose FAR says BUFF and by the flush after the FAR changes, never
//! on the forwarding path.
//!
//! The packet threads write those counters once per run of one PDR, not
//! once per packet: a [`Tally`] holds the run (one per batch) and writes
//! it when another PDR's packet comes or the batch ends. The segments of a
//! super-packet from the TUN share their headers, so the downlink thread
//! decides the first and gives the others its PDR ([`Snapshot::again`]),
//! each still through the PDR's QERs and counted.
//!
//! Events the control plane must act on (a first packet in a session's
//! downlink buffer, a URR's volume threshold reached) set an atomic flag
//! and, only on its false -> true transition, push the SEID onto the
//! table's [`DataSignals`] queue, so the control plane's periodic poll
//! reads what happened instead of scanning every session. A packet that
//! changes no flag takes no lock.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dpio::reuseport::PerWorker;

use crate::packet::FiveTuple;
use crate::protect::Protected;
use crate::rules::{Gate, OuterHeader};
use crate::sdf::{Direction, FlowDescription};

/// A packet and byte counter pair.
#[derive(Debug, Default)]
pub struct Counter {
    /// Packets.
    pub packets: AtomicU64,
    /// Bytes.
    pub bytes: AtomicU64,
}

impl Counter {
    /// Count one packet of `len` bytes.
    pub fn add(&self, len: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
    /// Count `packets` packets of `bytes` bytes in all (a batch: one write
    /// per field instead of one per packet); zeros write nothing.
    pub fn add_n(&self, packets: u64, bytes: u64) {
        if packets != 0 {
            self.packets.fetch_add(packets, Ordering::Relaxed);
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    /// (packets, bytes).
    pub fn get(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Why a packet was dropped. Each has a counter in [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// G-PDU for a TEID no session owns (an Error Indication is due).
    UnknownTeid,
    /// Downlink packet for an address no session owns.
    UnknownUe,
    /// The session has PDRs for the TEID/address but none matched.
    NoPdrMatch,
    /// Uplink inner source is not the session's UE address.
    Spoofed,
    /// A QER gate is closed.
    GateClosed,
    /// A QER's MBR was exceeded.
    RateExceeded,
    /// The FAR says DROP.
    FarDrop,
    /// The session's buffer is full.
    BufferFull,
    /// Not parseable (bad GTP-U, not IPv4).
    Malformed,
    /// A G-PDU for a known TEID from an address that is not the session's
    /// tunnel peer on that side (for uplink: not the gNB its downlink FAR
    /// sends to).
    WrongSender,
    /// An uplink packet for one of the UPF's own addresses or a protected
    /// (core) network: never delivered.
    ProtectedDestination,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 11] = [
        DropReason::UnknownTeid,
        DropReason::UnknownUe,
        DropReason::NoPdrMatch,
        DropReason::Spoofed,
        DropReason::GateClosed,
        DropReason::RateExceeded,
        DropReason::FarDrop,
        DropReason::BufferFull,
        DropReason::Malformed,
        DropReason::WrongSender,
        DropReason::ProtectedDestination,
    ];
    /// Label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::UnknownTeid => "unknown_teid",
            DropReason::UnknownUe => "unknown_ue",
            DropReason::NoPdrMatch => "no_pdr_match",
            DropReason::Spoofed => "spoofed",
            DropReason::GateClosed => "gate_closed",
            DropReason::RateExceeded => "rate_exceeded",
            DropReason::FarDrop => "far_drop",
            DropReason::BufferFull => "buffer_full",
            DropReason::Malformed => "malformed",
            DropReason::WrongSender => "wrong_sender",
            DropReason::ProtectedDestination => "protected_destination",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Interface-level counters of the whole UPF.
#[derive(Debug, Default)]
pub struct Metrics {
    /// G-PDUs received on N3.
    pub n3_rx: Counter,
    /// GTP-U packets sent on N3 (G-PDU, echo, error indication, end marker).
    pub n3_tx: Counter,
    /// Packets read from the N6 TUN.
    pub n6_rx: Counter,
    /// Packets written to the N6 TUN.
    pub n6_tx: Counter,
    /// N6 TUN reads that were TSO/USO super-packets (cut into segments;
    /// `n6_rx` counts each read once).
    pub n6_rx_super: AtomicU64,
    /// N6 TUN writes that joined several uplink segments (`n6_tx` counts
    /// each segment).
    pub n6_tx_super: AtomicU64,
    /// Echo Requests answered.
    pub echo_answered: AtomicU64,
    /// Error Indications sent.
    pub error_indications: AtomicU64,
    /// Error Indications not sent: the peer's token bucket was empty.
    pub error_indications_suppressed: AtomicU64,
    /// End Markers sent.
    pub end_markers: AtomicU64,
    /// Drops, indexed like [`DropReason::ALL`].
    pub drops: [AtomicU64; DropReason::ALL.len()],
    /// G-PDUs each data-path worker received on N3.
    pub worker_n3_rx: PerWorker,
    /// Packets each data-path worker read from its N6 TUN queue.
    pub worker_n6_rx: PerWorker,
}

impl Metrics {
    /// Counters for `workers` data-path workers.
    pub fn with_workers(workers: usize) -> Metrics {
        Metrics {
            worker_n3_rx: PerWorker::new(workers),
            worker_n6_rx: PerWorker::new(workers),
            ..Metrics::default()
        }
    }

    /// Count a drop.
    pub fn drop(&self, r: DropReason) {
        self.drops[r.index()].fetch_add(1, Ordering::Relaxed);
    }
    /// Drops of one reason.
    pub fn drops_of(&self, r: DropReason) -> u64 {
        self.drops[r.index()].load(Ordering::Relaxed)
    }
}

/// Bounded FIFO of downlink packets waiting for a FAR to forward.
#[derive(Debug)]
pub struct PacketBuffer {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    max_packets: usize,
    max_bytes: usize,
}

impl PacketBuffer {
    /// A buffer holding at most `max_packets` packets and `max_bytes` bytes.
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        PacketBuffer {
            queue: VecDeque::new(),
            bytes: 0,
            max_packets,
            max_bytes,
        }
    }
    /// Append, or `false` when full (the packet is dropped).
    pub fn push(&mut self, pkt: &[u8]) -> bool {
        if self.queue.len() >= self.max_packets || self.bytes + pkt.len() > self.max_bytes {
            return false;
        }
        self.bytes += pkt.len();
        self.queue.push_back(pkt.to_vec());
        true
    }
    /// Oldest packet.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        let p = self.queue.pop_front()?;
        self.bytes -= p.len();
        Some(p)
    }
    /// Packets held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
    /// Discard everything.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

/// Data-path events waiting for the control plane, queued so that its
/// periodic poll costs what is pending, not the number of sessions.
///
/// An entry is pushed only when the matching flag
/// ([`SessionShared::dl_data_pending`], [`UrrState::threshold_hit`]) goes
/// from false to true, and the flag is cleared only by the control plane,
/// so the queues hold at most one entry per session (downlink data) and per
/// URR (threshold) that was not consumed yet. Entries are hints: the
/// consumer checks the flag of the session/URR that currently has the
/// SEID/URR ID (it may have been removed or replaced since).
#[derive(Debug, Default)]
pub struct DataSignals {
    dl_data: Mutex<Vec<u64>>,
    thresholds: Mutex<Vec<(u64, u32)>>,
}

impl DataSignals {
    /// Empty queues.
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet landed in the empty buffer of session `seid`.
    pub fn push_dl_data(&self, seid: u64) {
        // A poisoned lock only means a thread panicked while pushing a
        // number; the vector is consistent.
        self.dl_data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(seid);
    }

    /// URR `urr_id` of session `seid` reached its volume threshold.
    pub fn push_threshold(&self, seid: u64, urr_id: u32) {
        self.thresholds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((seid, urr_id));
    }

    /// Take the SEIDs queued by [`push_dl_data`](Self::push_dl_data).
    pub fn take_dl_data(&self) -> Vec<u64> {
        std::mem::take(&mut *self.dl_data.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Take the (SEID, URR ID) pairs queued by
    /// [`push_threshold`](Self::push_threshold).
    pub fn take_thresholds(&self) -> Vec<(u64, u32)> {
        std::mem::take(&mut *self.thresholds.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Per-session state shared by the control plane and the packet threads.
#[derive(Debug)]
pub struct SessionShared {
    /// Local SEID.
    pub seid: u64,
    /// Uplink packets matched.
    pub ul: Counter,
    /// Downlink packets matched.
    pub dl: Counter,
    /// Packets dropped by this session's rules (any reason).
    pub dropped: AtomicU64,
    /// Uplink packets dropped by anti-spoofing.
    pub spoofed: AtomicU64,
    /// G-PDUs for this session's TEIDs from an address that is not its
    /// tunnel's peer.
    pub wrong_sender: AtomicU64,
    /// Uplink packets for a protected destination.
    pub protected_dst: AtomicU64,
    /// Downlink buffer (BUFF).
    pub buffer: Mutex<PacketBuffer>,
    /// Set while the buffer holds packets, so the forwarding path can check
    /// without taking the lock.
    pub buffered: AtomicBool,
    /// Set when a packet lands in an empty buffer: the control plane sends a
    /// Downlink Data Report (if the FAR asked for NOCP) and clears it.
    /// Setting it (false -> true) queues the SEID on `signals`.
    pub dl_data_pending: AtomicBool,
    /// The PDR whose FAR last buffered a packet.
    pub buffering_pdr: std::sync::atomic::AtomicU32,
    /// Where the first buffered packet is announced to the control plane.
    pub signals: Arc<DataSignals>,
}

impl SessionShared {
    /// New state for session `seid` with a buffer bound; `signals` is the
    /// session table's event queue.
    pub fn new(seid: u64, max_packets: usize, max_bytes: usize, signals: Arc<DataSignals>) -> Self {
        SessionShared {
            seid,
            ul: Counter::default(),
            dl: Counter::default(),
            dropped: AtomicU64::new(0),
            spoofed: AtomicU64::new(0),
            wrong_sender: AtomicU64::new(0),
            protected_dst: AtomicU64::new(0),
            buffer: Mutex::new(PacketBuffer::new(max_packets, max_bytes)),
            buffered: AtomicBool::new(false),
            dl_data_pending: AtomicBool::new(false),
            buffering_pdr: std::sync::atomic::AtomicU32::new(0),
            signals,
        }
    }

    /// Buffer a packet; `false` if the buffer is full.
    pub fn buffer_packet(&self, pkt: &[u8]) -> bool {
        // A poisoned lock means a thread panicked while pushing; the queue
        // itself is still consistent, so keep using it.
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = b.is_empty();
        let ok = b.push(pkt);
        if ok {
            self.buffered.store(true, Ordering::Release);
            // Queue the SEID only when the flag was clear: once per
            // buffering episode until the control plane consumed it.
            if was_empty && !self.dl_data_pending.swap(true, Ordering::AcqRel) {
                self.signals.push_dl_data(self.seid);
            }
        }
        ok
    }

    /// Take every buffered packet, oldest first, and hand each to `f` while
    /// holding the buffer lock (so that two drains cannot interleave).
    pub fn drain_buffer(&self, mut f: impl FnMut(&[u8])) -> usize {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        while let Some(p) = b.pop() {
            f(&p);
            n += 1;
        }
        self.buffered.store(false, Ordering::Release);
        n
    }

    /// Packets currently buffered.
    pub fn buffered_len(&self) -> usize {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// What the FAR of a compiled PDR does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Remove the outer header (if any) and send to N6.
    ToN6,
    /// Encapsulate towards a GTP-U peer.
    Tunnel {
        /// Remote TEID and address.
        outer: OuterHeader,
        /// QFI for the PDU Session Container, if any.
        qfi: Option<u8>,
    },
    /// Buffer.
    Buffer,
    /// Drop.
    Drop,
}

/// A PDR as the data path uses it.
#[derive(Debug, Clone)]
pub struct CompiledPdr {
    /// PDR ID.
    pub pdr_id: u16,
    /// Precedence (lower wins).
    pub precedence: u32,
    /// QFI to match.
    pub qfi: Option<u8>,
    /// SDF filters (any matches; empty = all).
    pub sdf: Vec<FlowDescription>,
    /// How SDF filters are read.
    pub direction: Direction,
    /// The session's UE address.
    pub ue_ip: Option<Ipv4Addr>,
    /// For a PDR with a local F-TEID: the only addresses its G-PDUs are
    /// accepted from (the session's tunnel peers on its source interface).
    /// `None` until a FAR of the session first had an Outer Header
    /// Creation towards that interface: the first uplink data may arrive
    /// before the SMF tells the UPF the gNB's tunnel (TS 23.502 4.3.2.2.1,
    /// steps 14 and 16), and is accepted from any address (the UE address
    /// check still applies).
    pub senders: Option<Arc<[Ipv4Addr]>>,
    /// FAR action.
    pub action: Action,
    /// QERs with this direction's gate.
    pub qers: Vec<(Gate, Arc<QerState>)>,
    /// URRs.
    pub urrs: Vec<Arc<UrrState>>,
    /// Session state.
    pub session: Arc<SessionShared>,
    /// This PDR's matched packets.
    pub counter: Arc<Counter>,
}

impl CompiledPdr {
    fn matches(&self, qfi: Option<u8>, t: &FiveTuple) -> bool {
        if let Some(q) = self.qfi {
            if qfi != Some(q) {
                return false;
            }
        }
        self.sdf.is_empty()
            || self
                .sdf
                .iter()
                .any(|f| f.matches(t, self.direction, self.ue_ip))
    }
}

/// The outcome for one packet.
#[derive(Debug)]
pub enum Verdict<'a> {
    /// Write the inner packet to N6.
    ToN6,
    /// Encapsulate and send to `outer.peer`.
    Tunnel {
        /// Peer TEID and address.
        outer: OuterHeader,
        /// QFI for the PDU Session Container.
        qfi: Option<u8>,
        /// The session (to flush its buffer first, if it holds packets).
        session: &'a SessionShared,
    },
    /// Put the packet in this session's buffer.
    Buffer(&'a SessionShared),
    /// Drop.
    Drop(DropReason),
}

/// The PDRs of one lookup key (a TEID or a UE address), in precedence
/// order. Shared between snapshots until the session changes.
pub type PdrList = Arc<[CompiledPdr]>;

/// Sort PDRs by precedence (then ID) into a [`PdrList`].
pub fn pdr_list(mut pdrs: Vec<CompiledPdr>) -> PdrList {
    pdrs.sort_by_key(|p| (p.precedence, p.pdr_id));
    pdrs.into()
}

/// One session compiled for the data path: its lookup keys and their PDR
/// lists. Built once when the session changes; the snapshot maps point at
/// the same lists.
#[derive(Debug, Clone)]
pub struct CompiledSession {
    /// Local SEID.
    pub seid: u64,
    /// Local TEID -> PDRs (PDRs with a local F-TEID), by TEID.
    pub uplink: Vec<(u32, PdrList)>,
    /// UE address -> PDRs (downlink PDRs without F-TEID).
    pub downlink: Option<(Ipv4Addr, PdrList)>,
}

/// TEID -> PDRs, a persistent map.
pub type UplinkMap = imbl::HashMap<u32, PdrList>;
/// UE address -> PDRs, a persistent map.
pub type DownlinkMap = imbl::HashMap<Ipv4Addr, PdrList>;

/// Immutable lookup tables of all sessions.
#[derive(Debug, Clone)]
pub struct Snapshot {
    epoch: Instant,
    /// TEID -> PDRs, precedence order.
    pub uplink: UplinkMap,
    /// UE address -> PDRs, precedence order.
    pub downlink: DownlinkMap,
    /// Destinations an uplink packet is never delivered to.
    pub protected: Arc<Protected>,
}

impl Snapshot {
    /// An empty snapshot; `epoch` is the time base of the token buckets.
    pub fn empty(epoch: Instant) -> Self {
        Snapshot {
            epoch,
            uplink: UplinkMap::new(),
            downlink: DownlinkMap::new(),
            protected: Arc::new(Protected::none()),
        }
    }

    /// A snapshot of these maps (cheap: the maps share their nodes).
    pub fn new(epoch: Instant, uplink: UplinkMap, downlink: DownlinkMap) -> Self {
        Snapshot {
            epoch,
            uplink,
            downlink,
            protected: Arc::new(Protected::none()),
        }
    }

    /// Add a compiled session's keys (replacing what they pointed to).
    pub fn insert_session(&mut self, c: &CompiledSession) {
        for (teid, l) in &c.uplink {
            self.uplink.insert(*teid, l.clone());
        }
        if let Some((ue, l)) = &c.downlink {
            self.downlink.insert(*ue, l.clone());
        }
    }

    /// Remove a compiled session's keys.
    pub fn remove_session(&mut self, c: &CompiledSession) {
        for (teid, _) in &c.uplink {
            self.uplink.remove(teid);
        }
        if let Some((ue, _)) = &c.downlink {
            self.downlink.remove(ue);
        }
    }

    /// Is this TEID known?
    pub fn knows_teid(&self, teid: u32) -> bool {
        self.uplink.contains_key(&teid)
    }

    /// Decide what to do with the inner packet of a G-PDU received from
    /// `from` with `teid` (and `qfi` from its PDU Session Container).
    ///
    /// In this order: the TEID must be known; `from` must be one of the
    /// session's tunnel peers on the PDRs' source interface (for uplink,
    /// the gNB its downlink FAR sends to); the inner packet must parse;
    /// an uplink packet's source must be the session's UE address and its
    /// destination must not be protected; then the PDRs decide.
    ///
    /// The matched PDR's counters are written before this returns; the
    /// packet threads use [`uplink_tallied`](Self::uplink_tallied).
    pub fn uplink(
        &self,
        from: Ipv4Addr,
        teid: u32,
        qfi: Option<u8>,
        inner: &[u8],
        now: Instant,
    ) -> Verdict<'_> {
        self.uplink_tallied(from, teid, qfi, inner, now, &mut Tally::new())
    }

    /// [`uplink`](Self::uplink), the packet counted into `tally` (written
    /// to the shared counters when its run of one PDR ends).
    pub fn uplink_tallied<'a>(
        &'a self,
        from: Ipv4Addr,
        teid: u32,
        qfi: Option<u8>,
        inner: &[u8],
        now: Instant,
        tally: &mut Tally<'a>,
    ) -> Verdict<'a> {
        tally.last = None;
        let Some(pdrs) = self.uplink.get(&teid) else {
            return Verdict::Drop(DropReason::UnknownTeid);
        };
        if let Some(first) = pdrs.first() {
            if first.senders.as_ref().is_some_and(|s| !s.contains(&from)) {
                first.session.wrong_sender.fetch_add(1, Ordering::Relaxed);
                first.session.dropped.fetch_add(1, Ordering::Relaxed);
                return Verdict::Drop(DropReason::WrongSender);
            }
        }
        let Some(t) = FiveTuple::parse(inner) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if let Some(first) = pdrs.first() {
            if first.direction == Direction::Uplink {
                if let Some(ue) = first.ue_ip {
                    if t.src != ue {
                        first.session.spoofed.fetch_add(1, Ordering::Relaxed);
                        first.session.dropped.fetch_add(1, Ordering::Relaxed);
                        return Verdict::Drop(DropReason::Spoofed);
                    }
                }
                if self.protected.contains(t.dst) {
                    first.session.protected_dst.fetch_add(1, Ordering::Relaxed);
                    first.session.dropped.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Drop(DropReason::ProtectedDestination);
                }
            }
        }
        self.apply(pdrs, qfi, &t, inner.len(), now, Some(tally))
    }

    /// Decide what to do with a packet read from N6. With `account` false
    /// (replaying buffered packets), counters, QERs and URRs are skipped:
    /// the packet was counted when it was buffered. The counters are
    /// written before this returns; the packet threads use
    /// [`downlink_tallied`](Self::downlink_tallied).
    pub fn downlink(&self, pkt: &[u8], now: Instant, account: bool) -> Verdict<'_> {
        let mut tally = Tally::new();
        self.downlink_tallied(pkt, now, account.then_some(&mut tally))
    }

    /// [`downlink`](Self::downlink), the packet counted into `tally`
    /// (`None`: not counted, as `account` false).
    pub fn downlink_tallied<'a>(
        &'a self,
        pkt: &[u8],
        now: Instant,
        mut tally: Option<&mut Tally<'a>>,
    ) -> Verdict<'a> {
        if let Some(t) = tally.as_deref_mut() {
            t.last = None;
        }
        let Some(t) = FiveTuple::parse(pkt) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Some(pdrs) = self.downlink.get(&t.dst) else {
            return Verdict::Drop(DropReason::UnknownUe);
        };
        self.apply(pdrs, None, &t, pkt.len(), now, tally)
    }

    /// The decision for another segment of the super-packet whose first
    /// segment `tally` last decided, `len` bytes long: the PDR it matched
    /// applies again (segmentation copies the headers: every segment has
    /// the same addresses, protocol and ports, all that a PDR matches on,
    /// so parsing, lookup and matching would find it again), with its QERs
    /// and counters per segment. `None` when the last decision matched no
    /// PDR (decide that segment in full). Only for segments cut from one
    /// packet: packets that merely follow each other are decided in full.
    pub fn again<'a>(
        &'a self,
        len: usize,
        now: Instant,
        tally: &mut Tally<'a>,
    ) -> Option<Verdict<'a>> {
        let pdr = tally.last?;
        Some(self.decide(pdr, len, now, Some(tally)))
    }

    fn apply<'a>(
        &'a self,
        pdrs: &'a [CompiledPdr],
        qfi: Option<u8>,
        t: &FiveTuple,
        len: usize,
        now: Instant,
        mut tally: Option<&mut Tally<'a>>,
    ) -> Verdict<'a> {
        let Some(pdr) = pdrs.iter().find(|p| p.matches(qfi, t)) else {
            if let Some(p) = pdrs.first() {
                p.session.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return Verdict::Drop(DropReason::NoPdrMatch);
        };
        if let Some(t) = tally.as_deref_mut() {
            t.last = Some(pdr);
        }
        self.decide(pdr, len, now, tally)
    }

    /// What `pdr` does with a packet of `len` bytes: its QERs' gates and
    /// buckets, then its FAR; counted into `tally` (not at all without
    /// one, and then no QER is applied).
    fn decide<'a>(
        &'a self,
        pdr: &'a CompiledPdr,
        len: usize,
        now: Instant,
        tally: Option<&mut Tally<'a>>,
    ) -> Verdict<'a> {
        let s = &pdr.session;
        if let Some(tally) = tally {
            let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
            for (gate, q) in &pdr.qers {
                if *gate == Gate::Closed {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Drop(DropReason::GateClosed);
                }
                let bucket = match pdr.direction {
                    Direction::Uplink => &q.ul,
                    Direction::Downlink => &q.dl,
                };
                if !bucket.take(now_ns, len as u64) {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Drop(DropReason::RateExceeded);
                }
            }
            tally.count(pdr, len);
        }
        match &pdr.action {
            Action::ToN6 => Verdict::ToN6,
            Action::Tunnel { outer, qfi } => Verdict::Tunnel {
                outer: *outer,
                qfi: *qfi,
                session: s,
            },
            Action::Buffer => {
                s.buffering_pdr
                    .store(u32::from(pdr.pdr_id), Ordering::Relaxed);
                Verdict::Buffer(s)
            }
            Action::Drop => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                Verdict::Drop(DropReason::FarDrop)
            }
        }
    }
}

mod rule_state;
mod tally;
pub use rule_state::{QerState, TokenBucket, UrrState};
pub use tally::Tally;

#[cfg(test)]
mod tests;
