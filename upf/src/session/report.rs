//! Usage reports (TS 29.244 5.2.2): what a URR measured since its last
//! report, taken when a threshold is reached, a period ends, the SMF
//! asks or the URR goes; and the index of the periods due.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{PeriodKey, Session, SessionTable, UrrEntry};
use crate::datapath::UrrState;

/// Why a usage report was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportTrigger {
    /// VOLTH: volume threshold reached.
    VolumeThreshold,
    /// PERIO: measurement period elapsed.
    Period,
    /// TERMR: session (or URR) removed.
    Termination,
    /// IMMER: queried by the SMF.
    Query,
}

/// A usage report (volume measurement since the previous report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// Local SEID.
    pub seid: u64,
    /// The SMF's SEID.
    pub remote_seid: u64,
    /// URR ID.
    pub urr_id: u32,
    /// UR-SEQN.
    pub seqn: u32,
    /// Trigger.
    pub trigger: ReportTrigger,
    /// Start of the measurement.
    pub start: Instant,
    /// End of the measurement.
    pub end: Instant,
    /// Uplink packets.
    pub ul_packets: u64,
    /// Uplink bytes.
    pub ul_bytes: u64,
    /// Downlink packets.
    pub dl_packets: u64,
    /// Downlink bytes.
    pub dl_bytes: u64,
}

/// The report of URR entry `e` of session `ids` (local, remote SEID): its
/// volumes since the last report, taken (reset) from the shared counters.
pub(super) fn take_report(
    ids: (u64, u64),
    seqn: &mut u32,
    e: &mut UrrEntry,
    trigger: ReportTrigger,
    now: Instant,
) -> UsageReport {
    let (ul_packets, ul_bytes, dl_packets, dl_bytes) = e.state.take();
    e.state.threshold_hit.store(false, Ordering::Release);
    let start = e.start;
    e.start = now;
    if let (Some(p), Some(next)) = (e.urr.measurement_period, e.next_period) {
        if trigger == ReportTrigger::Period {
            let mut n = next;
            while n <= now {
                n += p;
            }
            e.next_period = Some(n);
        }
    }
    *seqn = seqn.wrapping_add(1);
    UsageReport {
        seid: ids.0,
        remote_seid: ids.1,
        urr_id: e.urr.id,
        seqn: *seqn,
        trigger,
        start,
        end: now,
        ul_packets,
        ul_bytes,
        dl_packets,
        dl_bytes,
    }
}

impl UsageReport {
    /// Adds to the Termination reports what the removed URRs in `late` (of
    /// a deleted session, or removed by a modification) counted since
    /// their reports were taken (and resets their counters): packets
    /// decided with the rules from before the removal, counted when their
    /// batch ended. Call it when no packet thread counts into them any
    /// more.
    pub fn add_late(reports: &mut [UsageReport], late: &[Arc<UrrState>]) {
        for st in late {
            let (ulp, ulb, dlp, dlb) = st.take();
            let r = reports
                .iter_mut()
                .find(|r| r.urr_id == st.id && r.trigger == ReportTrigger::Termination);
            if let Some(r) = r {
                r.ul_packets += ulp;
                r.ul_bytes += ulb;
                r.dl_packets += dlp;
                r.dl_bytes += dlb;
            }
        }
    }
}

impl Session {
    /// (due time, SEID, URR ID) of every URR with a measurement period:
    /// this session's entries in [`SessionTable`]'s period index.
    pub(super) fn period_keys(&self) -> impl Iterator<Item = PeriodKey> + '_ {
        self.urrs
            .values()
            .filter_map(|e| e.next_period.map(|t| (t, self.local_seid, e.urr.id)))
    }

    pub(super) fn report(
        &mut self,
        urr_id: u32,
        trigger: ReportTrigger,
        now: Instant,
    ) -> Option<UsageReport> {
        let e = self.urrs.get_mut(&urr_id)?;
        Some(take_report(
            (self.local_seid, self.remote_seid),
            &mut self.seqn,
            e,
            trigger,
            now,
        ))
    }

    /// Its URRs' counters (for [`UsageReport::add_late`] after
    /// [`final_reports`](Self::final_reports)).
    pub fn urr_states(&self) -> Vec<Arc<UrrState>> {
        self.urrs.values().map(|e| e.state.clone()).collect()
    }

    /// The reports of a deleted session: one per URR, trigger Termination
    /// (in the Session Deletion Response, TS 29.244 7.5.7).
    pub fn final_reports(&mut self, now: Instant) -> Vec<UsageReport> {
        let ids: Vec<u32> = self.urrs.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.report(id, ReportTrigger::Termination, now))
            .collect()
    }
}

impl SessionTable {
    /// Usage reports due at `now` (volume threshold reached, period over),
    /// ordered by SEID and URR ID. Costs what is due, not the number of
    /// sessions: thresholds come from the data path's queue, periods from
    /// the period index. A URR reported for its threshold in this poll
    /// makes its period report (if also due) at the next poll.
    pub fn poll_reports(&mut self, now: Instant) -> Vec<UsageReport> {
        let mut out = Vec::new();
        let mut by_threshold = HashSet::new();
        for (seid, id) in self.signals.take_thresholds() {
            let Some(s) = self.sessions.get_mut(&seid) else {
                continue; // deleted since
            };
            // The flag of the URR that has the ID now: a queued URR may have
            // been removed, replaced, or reported for another trigger.
            let hit = s
                .urrs
                .get(&id)
                .is_some_and(|e| e.state.threshold_hit.load(Ordering::Acquire));
            if !hit {
                continue;
            }
            if let Some(r) = s.report(id, ReportTrigger::VolumeThreshold, now) {
                by_threshold.insert((seid, id));
                out.push(r);
            }
        }
        let mut deferred = Vec::new();
        while let Some(&key) = self.periods.first() {
            let (due, seid, id) = key;
            if due > now {
                break;
            }
            self.periods.pop_first();
            if by_threshold.contains(&(seid, id)) {
                deferred.push(key);
                continue;
            }
            let Some(s) = self.sessions.get_mut(&seid) else {
                debug_assert!(false, "period index names a deleted session");
                continue;
            };
            if s.urrs.get(&id).map(|e| e.next_period) != Some(Some(due)) {
                debug_assert!(false, "period index out of date");
                continue;
            }
            if let Some(r) = s.report(id, ReportTrigger::Period, now) {
                out.push(r);
            }
            // The report moved the due time past `now`.
            if let Some(next) = s.urrs.get(&id).and_then(|e| e.next_period) {
                self.periods.insert((next, seid, id));
            }
        }
        self.periods.extend(deferred);
        out.sort_by_key(|r| (r.seid, r.urr_id));
        out
    }

    /// The next time a period report is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.periods.first().map(|k| k.0)
    }
}
