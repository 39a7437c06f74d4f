//! The session table: PFCP sessions in the UPF's own rule model, without
//! I/O and without reading a clock (every method that needs time takes
//! `now`). Outputs are pulled: [`SessionTable::poll_reports`] for usage
//! reports, [`SessionTable::poll_event`] for End Markers and buffer flushes,
//! [`SessionTable::snapshot`] for the data path's lookup tables.
//!
//! The table keeps those lookup tables up to date incrementally: every
//! change recompiles only the session it touches into a
//! [`CompiledSession`] and swaps that session's keys in the persistent maps
//! of the current [`Snapshot`], so a rule change costs the same with 1 or
//! 10 000 sessions and [`SessionTable::snapshot`] is a clone of two roots.
//!
//! The periodic poll ([`SessionTable::poll_reports`]) does not scan the
//! sessions either: reached volume thresholds arrive on the data path's
//! [`DataSignals`] queue, and the due times of measurement periods are kept
//! in an ordered index, so a poll costs what is due.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use crate::datapath::{
    CompiledSession, Counter, DataSignals, QerState, SessionShared, Snapshot, UrrState,
};
use crate::rules::{
    ie_type, Cause, Far, FarAction, Interface, Modification, Pdr, Qer, SessionRules, Urr,
};

use report::take_report;
pub use report::{ReportTrigger, UsageReport};

/// Limits a session request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions in the table.
    pub max_sessions: usize,
    /// PDRs per session.
    pub max_pdrs_per_session: usize,
    /// FARs, QERs and URRs per session (each).
    pub max_rules_per_session: usize,
    /// Buffered downlink packets per session.
    pub max_buffer_packets: usize,
    /// Buffered downlink bytes per session.
    pub max_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 10_000,
            max_pdrs_per_session: 64,
            max_rules_per_session: 64,
            max_buffer_packets: 1024,
            max_buffer_bytes: 2 * 1024 * 1024,
        }
    }
}

/// A refused session request: the PFCP cause and the IE at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (cause {cause:?}, offending IE {offending_ie:?})")]
pub struct SessionError {
    /// Cause to send.
    pub cause: Cause,
    /// Offending IE type, if one is at fault.
    pub offending_ie: Option<u16>,
    /// What was wrong, for logs.
    pub message: String,
}

impl SessionError {
    fn new(cause: Cause, ie: Option<u16>, message: impl Into<String>) -> Self {
        SessionError {
            cause,
            offending_ie: ie,
            message: message.into(),
        }
    }
}

/// A PDR whose F-TEID the UPF chose, for Created PDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedPdr {
    /// PDR ID.
    pub pdr_id: u16,
    /// Local TEID.
    pub teid: u32,
    /// Local N3 address.
    pub addr: Ipv4Addr,
}

/// Something the driver must do after a rule change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send a GTP-U End Marker to the old peer of a path switch.
    EndMarker {
        /// Old peer.
        peer: SocketAddrV4,
        /// Old peer's TEID.
        teid: u32,
    },
    /// A FAR of this session left BUFF: flush its buffer through the new
    /// snapshot, in order.
    Flush {
        /// Local SEID.
        seid: u64,
    },
}

#[derive(Debug, Clone)]
struct PdrEntry {
    pdr: Pdr,
    teid: Option<u32>,
    counter: Arc<Counter>,
}

#[derive(Debug, Clone)]
struct UrrEntry {
    urr: Urr,
    state: Arc<UrrState>,
    start: Instant,
    next_period: Option<Instant>,
}

/// One PFCP session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Local SEID (ours).
    pub local_seid: u64,
    /// The SMF's SEID.
    pub remote_seid: u64,
    pdrs: BTreeMap<u16, PdrEntry>,
    fars: BTreeMap<u32, Far>,
    qers: BTreeMap<u32, (Qer, Arc<QerState>)>,
    urrs: BTreeMap<u32, UrrEntry>,
    choose: HashMap<u8, u32>,
    /// Per source interface, the addresses this session's G-PDUs are
    /// accepted from: the peers of its FARs' Outer Header Creation towards
    /// that interface (for Access: the gNB). Learnt when a change commits;
    /// kept while no FAR points at that side any more (BUFF or DROP during
    /// idle or a path switch), replaced by the next Outer Header Creation.
    senders: HashMap<Interface, Arc<[Ipv4Addr]>>,
    /// The forwarding (destination, Outer Header Creation) of each FAR that
    /// forwarded and now buffers or drops: kept, as TS 29.244 keeps a FAR's
    /// Forwarding Parameters, so that an Update FAR back to FORW need not
    /// repeat them.
    parked: HashMap<u32, FarAction>,
    seqn: u32,
    /// Shared with the data path.
    pub shared: Arc<SessionShared>,
}

/// Per-PDR counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdrStats {
    /// PDR ID.
    pub pdr_id: u16,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
}

impl Session {
    /// The UE address, from the first PDR that names one.
    pub fn ue_ip(&self) -> Option<Ipv4Addr> {
        self.pdrs.values().find_map(|e| e.pdr.pdi.ue_ip)
    }
    /// Local TEIDs in use.
    pub fn teids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.pdrs.values().filter_map(|e| e.teid).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    /// A FAR by ID.
    pub fn far(&self, id: u32) -> Option<&Far> {
        self.fars.get(&id)
    }
    /// FAR `id`'s forwarding: its action when it forwards, else the
    /// forwarding it had before it went to BUFF or DROP (None if it never
    /// forwarded).
    pub fn forwarding(&self, id: u32) -> Option<&FarAction> {
        match self.fars.get(&id) {
            Some(
                f @ Far {
                    action: FarAction::Forward { .. },
                    ..
                },
            ) => Some(&f.action),
            Some(_) => self.parked.get(&id),
            None => None,
        }
    }
    /// A PDR by ID.
    pub fn pdr(&self, id: u16) -> Option<&Pdr> {
        self.pdrs.get(&id).map(|e| &e.pdr)
    }
    /// A QER by ID.
    pub fn qer(&self, id: u32) -> Option<&Qer> {
        self.qers.get(&id).map(|(q, _)| q)
    }
    /// A URR by ID.
    pub fn urr(&self, id: u32) -> Option<&Urr> {
        self.urrs.get(&id).map(|e| &e.urr)
    }
    /// Number of PDRs.
    pub fn pdr_count(&self) -> usize {
        self.pdrs.len()
    }
    /// The addresses G-PDUs for PDRs with source interface `iface` are
    /// accepted from; `None` while no FAR ever had an Outer Header Creation
    /// towards it (any address then, see [`CompiledPdr::senders`]).
    ///
    /// [`CompiledPdr::senders`]: crate::datapath::CompiledPdr::senders
    pub fn senders(&self, iface: Interface) -> Option<&[Ipv4Addr]> {
        self.senders.get(&iface).map(|v| &v[..])
    }

    /// Learn the tunnel peers of the FARs as they are now (see `senders`).
    fn learn_senders(&mut self) {
        let mut now: HashMap<Interface, Vec<Ipv4Addr>> = HashMap::new();
        for f in self.fars.values() {
            if let FarAction::Forward {
                destination,
                outer_header: Some(o),
            } = &f.action
            {
                let v = now.entry(*destination).or_default();
                if !v.contains(o.peer.ip()) {
                    v.push(*o.peer.ip());
                }
            }
        }
        for (iface, v) in now {
            self.senders.insert(iface, v.into());
        }
    }

    /// Per-PDR counters.
    pub fn pdr_stats(&self) -> Vec<PdrStats> {
        self.pdrs
            .values()
            .map(|e| {
                let (packets, bytes) = e.counter.get();
                PdrStats {
                    pdr_id: e.pdr.id,
                    packets,
                    bytes,
                }
            })
            .collect()
    }
}

/// What a validated change does to state shared with the data path (token
/// bucket rates, URR thresholds and counters): held back by
/// [`SessionTable::apply`] and done by [`SessionTable::commit`] only once
/// every IE of the request passed, so that a refused request changes
/// nothing the packet threads see.
#[derive(Default)]
struct SharedEffects {
    /// Update QER: new uplink and downlink rates.
    rates: Vec<(Arc<QerState>, Option<u64>, Option<u64>)>,
    /// Update URR: new thresholds.
    thresholds: Vec<(Arc<UrrState>, Option<crate::rules::VolumeThreshold>)>,
    /// Remove URR: the removed entries, for their final reports.
    removed_urrs: Vec<UrrEntry>,
}

/// Result of an establishment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// Local SEID allocated.
    pub local_seid: u64,
    /// PDRs whose TEID the UPF chose.
    pub created: Vec<CreatedPdr>,
}

/// Result of a modification.
#[derive(Debug, Clone)]
pub struct Modified {
    /// PDRs created with CHOOSE.
    pub created: Vec<CreatedPdr>,
    /// Reports for queried or removed URRs.
    pub reports: Vec<UsageReport>,
    /// The removed URRs' counters: a packet thread that still has the
    /// rules from before counts into them until its batch ends; once none
    /// does, [`UsageReport::add_late`] adds that to their reports.
    pub removed_urrs: Vec<Arc<UrrState>>,
}

/// An entry of the period index: (due time, local SEID, URR ID).
type PeriodKey = (Instant, u64, u32);

/// All sessions of the UPF.
#[derive(Debug)]
pub struct SessionTable {
    limits: Limits,
    n3_addr: Ipv4Addr,
    epoch: Instant,
    sessions: HashMap<u64, Session>,
    teid_owner: HashMap<u32, u64>,
    /// UE address -> local SEID (an address belongs to one session).
    ue_owner: HashMap<Ipv4Addr, u64>,
    /// Each session as it is in `current` (its keys, to remove them).
    compiled: HashMap<u64, CompiledSession>,
    /// The lookup tables of all sessions, updated per changed session.
    current: Snapshot,
    next_teid: u32,
    next_seid: u64,
    events: VecDeque<Event>,
    /// Thresholds and first buffered packets, queued by the data path.
    signals: Arc<DataSignals>,
    /// The `next_period` of every URR that has one, earliest first: exactly
    /// [`Session::period_keys`] of every session.
    periods: BTreeSet<PeriodKey>,
}

fn err(cause: Cause, ie: u16, msg: impl Into<String>) -> SessionError {
    SessionError::new(cause, Some(ie), msg)
}

/// 73 Rule creation/modification failure, naming `ie`.
fn rule_failure(ie: u16, msg: impl Into<String>) -> SessionError {
    err(Cause::RuleCreationModificationFailure, ie, msg)
}

/// The refusal of a `verb` IE (`ie`: Remove, Update, Query ...) that names
/// a `kind` rule (PDR, FAR, QER, URR) `id` the session does not have.
pub(crate) fn no_rule(ie: u16, verb: &str, kind: &str, id: impl std::fmt::Display) -> SessionError {
    rule_failure(ie, format!("{verb} {kind}: no {kind} {id}"))
}

impl SessionTable {
    /// An empty table. `n3_addr` is returned in Created PDR; `epoch` is
    /// the time base of the snapshots' token buckets.
    pub fn new(limits: Limits, n3_addr: Ipv4Addr, epoch: Instant) -> Self {
        SessionTable {
            limits,
            n3_addr,
            epoch,
            sessions: HashMap::new(),
            teid_owner: HashMap::new(),
            ue_owner: HashMap::new(),
            compiled: HashMap::new(),
            current: Snapshot::empty(epoch),
            next_teid: 1,
            next_seid: 1,
            events: VecDeque::new(),
            signals: Arc::new(DataSignals::new()),
            periods: BTreeSet::new(),
        }
    }

    /// Protect these destinations in every snapshot from now on (the UPF's
    /// own addresses and the core's networks, see [`crate::protect`]).
    pub fn set_protected(&mut self, p: crate::protect::Protected) {
        self.current.protected = Arc::new(p);
    }

    /// Start TEID allocation at `base` (a restarted UPF should not hand out
    /// the TEIDs of its previous life to new sessions right away).
    pub fn set_teid_base(&mut self, base: u32) {
        self.next_teid = base.max(1);
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
    /// True without sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
    /// A session by local SEID.
    pub fn session(&self, seid: u64) -> Option<&Session> {
        self.sessions.get(&seid)
    }
    /// All sessions.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    fn alloc_teid(&mut self, taken: &HashSet<u32>) -> u32 {
        loop {
            let t = self.next_teid;
            self.next_teid = self.next_teid.wrapping_add(1).max(1);
            if !self.teid_owner.contains_key(&t) && !taken.contains(&t) {
                return t;
            }
        }
    }

    /// Session Establishment.
    pub fn establish(
        &mut self,
        remote_seid: u64,
        rules: SessionRules,
        now: Instant,
    ) -> Result<Established, SessionError> {
        if self.sessions.len() >= self.limits.max_sessions {
            return Err(SessionError::new(
                Cause::NoResourcesAvailable,
                None,
                format!("session limit {} reached", self.limits.max_sessions),
            ));
        }
        if let Some(n) = rules.buffer_packets {
            if n as usize > self.limits.max_buffer_packets {
                return Err(err(
                    Cause::NoResourcesAvailable,
                    ie_type::CREATE_BAR,
                    format!(
                        "buffering {n} packets asked, limit {}",
                        self.limits.max_buffer_packets
                    ),
                ));
            }
        }
        let mut seid = self.next_seid;
        while self.sessions.contains_key(&seid) || seid == 0 {
            seid = seid.wrapping_add(1);
        }
        self.next_seid = seid.wrapping_add(1);
        let buf_packets = rules
            .buffer_packets
            .map_or(self.limits.max_buffer_packets, |n| n as usize);
        let mut s = Session {
            local_seid: seid,
            remote_seid,
            pdrs: BTreeMap::new(),
            fars: BTreeMap::new(),
            qers: BTreeMap::new(),
            urrs: BTreeMap::new(),
            choose: HashMap::new(),
            senders: HashMap::new(),
            parked: HashMap::new(),
            seqn: 0,
            shared: Arc::new(SessionShared::new(
                seid,
                buf_packets,
                self.limits.max_buffer_bytes,
                self.signals.clone(),
            )),
        };
        let m = Modification {
            create: rules,
            ..Default::default()
        };
        let (created, fx) = self.apply(&mut s, m, now)?;
        let _ = Self::commit(&mut s, fx, now);
        s.learn_senders();
        for t in s.teids() {
            self.teid_owner.insert(t, seid);
        }
        if let Some(ue) = s.ue_ip() {
            self.ue_owner.insert(ue, seid);
        }
        self.periods.extend(s.period_keys());
        self.recompile(&s);
        self.sessions.insert(seid, s);
        Ok(Established {
            local_seid: seid,
            created,
        })
    }

    /// Session Modification. All or nothing: every IE is checked before
    /// anything changes, and on error the session is exactly as it was
    /// (rules, counters, rates, thresholds, TEID allocation).
    pub fn modify(
        &mut self,
        seid: u64,
        m: Modification,
        now: Instant,
    ) -> Result<Modified, SessionError> {
        let Some(old) = self.sessions.get(&seid) else {
            return Err(SessionError::new(
                Cause::SessionContextNotFound,
                None,
                format!("no session with SEID {seid:#x}"),
            ));
        };
        let mut s = old.clone();
        let old_fars = old.fars.clone();
        let old_teids = old.teids();
        let old_ue = old.ue_ip();
        let old_periods: Vec<PeriodKey> = old.period_keys().collect();
        let query = m.query_urrs.clone();
        let (created, fx) = self.apply(&mut s, m, now)?;
        let (mut reports, removed_urrs) = Self::commit(&mut s, fx, now);
        s.learn_senders();
        for id in query {
            if let Some(r) = s.report(id, ReportTrigger::Query, now) {
                reports.push(r);
            }
        }
        // Forwarding kept for FARs that stop forwarding; dropped for those
        // that forward (again) or are gone.
        s.parked.retain(|id, _| s.fars.contains_key(id));
        for (id, far) in &s.fars {
            if matches!(far.action, FarAction::Forward { .. }) {
                s.parked.remove(id);
            } else if let Some(prev @ FarAction::Forward { .. }) =
                old_fars.get(id).map(|f| &f.action)
            {
                s.parked.insert(*id, prev.clone());
            }
        }
        // Path switch and buffer flush events.
        for (id, far) in &s.fars {
            let Some(prev) = old_fars.get(id) else {
                continue;
            };
            if let FarAction::Forward {
                outer_header: Some(o),
                ..
            } = &prev.action
            {
                let same = matches!(&far.action, FarAction::Forward { outer_header: Some(n), .. } if n == o);
                if !same {
                    self.events.push_back(Event::EndMarker {
                        peer: o.peer,
                        teid: o.teid,
                    });
                }
            }
            if prev.action == FarAction::Buffer && far.action != FarAction::Buffer {
                if matches!(far.action, FarAction::Drop) {
                    s.shared.drain_buffer(|_| {});
                } else {
                    self.events.push_back(Event::Flush { seid });
                }
            }
        }
        for t in old_teids {
            self.teid_owner.remove(&t);
        }
        for t in s.teids() {
            self.teid_owner.insert(t, seid);
        }
        if let Some(ue) = old_ue {
            self.ue_owner.remove(&ue);
        }
        if let Some(ue) = s.ue_ip() {
            self.ue_owner.insert(ue, seid);
        }
        for k in old_periods {
            self.periods.remove(&k);
        }
        self.periods.extend(s.period_keys());
        self.recompile(&s);
        self.sessions.insert(seid, s);
        Ok(Modified {
            created,
            reports,
            removed_urrs,
        })
    }

    /// Session Deletion: final usage reports.
    pub fn delete(&mut self, seid: u64, now: Instant) -> Result<Vec<UsageReport>, SessionError> {
        Ok(self.remove(seid)?.final_reports(now))
    }

    /// Session Deletion in two steps: the session leaves the table (and
    /// the next snapshot) here, its buffered packets dropped; its final
    /// reports ([`Session::final_reports`]) are taken once the packet
    /// threads no longer count into it.
    pub fn remove(&mut self, seid: u64) -> Result<Session, SessionError> {
        let Some(s) = self.sessions.remove(&seid) else {
            return Err(SessionError::new(
                Cause::SessionContextNotFound,
                None,
                format!("no session with SEID {seid:#x}"),
            ));
        };
        for t in s.teids() {
            self.teid_owner.remove(&t);
        }
        if let Some(ue) = s.ue_ip() {
            self.ue_owner.remove(&ue);
        }
        if let Some(old) = self.compiled.remove(&seid) {
            self.current.remove_session(&old);
        }
        for k in s.period_keys() {
            self.periods.remove(&k);
        }
        s.shared.drain_buffer(|_| {});
        Ok(s)
    }

    /// Remove every session (association release); no reports.
    pub fn clear(&mut self) {
        self.sessions.clear();
        self.teid_owner.clear();
        self.ue_owner.clear();
        self.compiled.clear();
        self.periods.clear();
        let protected = self.current.protected.clone();
        self.current = Snapshot::empty(self.epoch);
        self.current.protected = protected;
    }

    /// SEIDs of the sessions whose downlink buffer received a first packet
    /// (their [`SessionShared::dl_data_pending`] went from false to true)
    /// since the last call. Whoever sends Downlink Data Reports takes them
    /// here and clears the flag; the poll costs what is queued.
    pub fn take_dl_data(&self) -> Vec<u64> {
        self.signals.take_dl_data()
    }

    /// Check that the period index holds exactly the periods of the
    /// sessions (tests).
    #[cfg(test)]
    pub(crate) fn periods_consistent(&self) -> bool {
        let expect: BTreeSet<PeriodKey> = self
            .sessions
            .values()
            .flat_map(|s| s.period_keys())
            .collect();
        expect == self.periods
    }

    /// Next End Marker / flush to perform.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The data path's lookup tables of every session. Cheap: the maps are
    /// kept up to date by each change and share their nodes with the
    /// snapshots taken before.
    pub fn snapshot(&self) -> Snapshot {
        self.current.clone()
    }

    /// Compile every session from scratch into new maps: what
    /// [`snapshot`](Self::snapshot) did before it became incremental, kept
    /// as the reference the incremental tables are checked against and as
    /// the benchmark's baseline. O(sessions).
    pub fn rebuild_snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::empty(self.epoch);
        snap.protected = self.current.protected.clone();
        for s in self.sessions.values() {
            snap.insert_session(&compile::compile(s));
        }
        snap
    }

    /// A session as it is compiled into the current snapshot.
    pub fn compiled(&self, seid: u64) -> Option<&CompiledSession> {
        self.compiled.get(&seid)
    }

    /// Replace a session's keys in the current tables by its new rules.
    fn recompile(&mut self, s: &Session) {
        let c = compile::compile(s);
        if let Some(old) = self.compiled.remove(&s.local_seid) {
            self.current.remove_session(&old);
        }
        self.current.insert_session(&c);
        self.compiled.insert(s.local_seid, c);
    }
}

mod apply;
mod compile;
mod report;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_incremental;
#[cfg(test)]
mod tests_isolation;
#[cfg(test)]
mod tests_periods;
#[cfg(test)]
mod tests_tally;
