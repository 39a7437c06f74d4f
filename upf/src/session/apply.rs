//! Applying a request's rules to a copy of a session: every IE is checked
//! (references, limits, TEID and UE address conflicts) before anything the
//! data path shares is changed; [`SessionTable::commit`] then carries out
//! what was held back.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use super::compile::new_urr_entry;
use super::{
    err, no_rule, rule_failure, take_report, CreatedPdr, PdrEntry, ReportTrigger, Session,
    SessionError, SessionTable, SharedEffects, UsageReport,
};
use crate::datapath::{Counter, QerState, TokenBucket, UrrState};
use crate::rules::{ie_type, Cause, FTeidSpec, Modification};

impl SessionTable {
    pub(super) fn apply(
        &mut self,
        s: &mut Session,
        m: Modification,
        now: Instant,
    ) -> Result<(Vec<CreatedPdr>, SharedEffects), SessionError> {
        // `s` is the caller's copy; whatever the data path shares (rates,
        // thresholds, counters) is only changed by `commit`, after every
        // check passed.
        let mut fx = SharedEffects::default();
        for id in &m.query_urrs {
            if !s.urrs.contains_key(id) && !m.create.urrs.iter().any(|u| u.id == *id) {
                return Err(no_rule(ie_type::QUERY_URR, "Query", "URR", id));
            }
        }
        // Removals first.
        for id in &m.remove_pdrs {
            s.pdrs
                .remove(id)
                .ok_or_else(|| no_rule(ie_type::REMOVE_PDR, "Remove", "PDR", id))?;
        }
        for id in &m.remove_fars {
            s.fars
                .remove(id)
                .ok_or_else(|| no_rule(ie_type::REMOVE_FAR, "Remove", "FAR", id))?;
        }
        for id in &m.remove_qers {
            s.qers
                .remove(id)
                .ok_or_else(|| no_rule(ie_type::REMOVE_QER, "Remove", "QER", id))?;
        }
        for id in &m.remove_urrs {
            let e = s
                .urrs
                .remove(id)
                .ok_or_else(|| no_rule(ie_type::REMOVE_URR, "Remove", "URR", id))?;
            fx.removed_urrs.push(e);
        }
        // Creations.
        let c = m.create;
        for far in c.fars {
            if s.fars.contains_key(&far.id) {
                return Err(exists(ie_type::CREATE_FAR, "FAR", far.id));
            }
            s.fars.insert(far.id, far);
        }
        for qer in c.qers {
            if s.qers.contains_key(&qer.id) {
                return Err(exists(ie_type::CREATE_QER, "QER", qer.id));
            }
            let st = Arc::new(QerState {
                id: qer.id,
                ul: TokenBucket::new(qer.mbr_ul),
                dl: TokenBucket::new(qer.mbr_dl),
            });
            s.qers.insert(qer.id, (qer, st));
        }
        for urr in c.urrs {
            if s.urrs.contains_key(&urr.id) {
                return Err(exists(ie_type::CREATE_URR, "URR", urr.id));
            }
            s.urrs
                .insert(urr.id, new_urr_entry(urr, s.local_seid, &self.signals, now));
        }
        let mut new_pdrs = Vec::new();
        for pdr in c.pdrs {
            if s.pdrs.contains_key(&pdr.id) {
                return Err(exists(ie_type::CREATE_PDR, "PDR", pdr.id));
            }
            new_pdrs.push(pdr.id);
            s.pdrs.insert(
                pdr.id,
                PdrEntry {
                    pdr,
                    teid: None,
                    counter: Arc::new(Counter::default()),
                },
            );
        }
        // Updates.
        for pdr in m.update_pdrs {
            let e = s
                .pdrs
                .get_mut(&pdr.id)
                .ok_or_else(|| no_rule(ie_type::UPDATE_PDR, "Update", "PDR", pdr.id))?;
            if pdr.pdi.local_fteid != e.pdr.pdi.local_fteid {
                e.teid = None;
                new_pdrs.push(pdr.id);
            }
            e.pdr = pdr;
        }
        for far in m.update_fars {
            let f = s
                .fars
                .get_mut(&far.id)
                .ok_or_else(|| no_rule(ie_type::UPDATE_FAR, "Update", "FAR", far.id))?;
            *f = far;
        }
        for qer in m.update_qers {
            let (q, st) = s
                .qers
                .get_mut(&qer.id)
                .ok_or_else(|| no_rule(ie_type::UPDATE_QER, "Update", "QER", qer.id))?;
            fx.rates.push((st.clone(), qer.mbr_ul, qer.mbr_dl));
            *q = qer;
        }
        for urr in m.update_urrs {
            let e = s
                .urrs
                .get_mut(&urr.id)
                .ok_or_else(|| no_rule(ie_type::UPDATE_URR, "Update", "URR", urr.id))?;
            fx.thresholds.push((e.state.clone(), urr.volume_threshold));
            e.next_period = urr.measurement_period.map(|p| now + p);
            e.urr = urr;
        }
        // Limits and references.
        let max_rules = self.limits.max_rules_per_session;
        for (what, n, max, ie) in [
            (
                "PDRs",
                s.pdrs.len(),
                self.limits.max_pdrs_per_session,
                ie_type::CREATE_PDR,
            ),
            ("FARs", s.fars.len(), max_rules, ie_type::CREATE_FAR),
            ("QERs", s.qers.len(), max_rules, ie_type::CREATE_QER),
            ("URRs", s.urrs.len(), max_rules, ie_type::CREATE_URR),
        ] {
            if n > max {
                return Err(err(
                    Cause::NoResourcesAvailable,
                    ie,
                    format!("{n} {what}, limit {max} per session"),
                ));
            }
        }
        for e in s.pdrs.values() {
            let p = &e.pdr;
            let missing = |ie, kind, id| {
                rule_failure(ie, format!("PDR {} refers to missing {kind} {id}", p.id))
            };
            if !s.fars.contains_key(&p.far_id) {
                return Err(missing(ie_type::FAR_ID, "FAR", p.far_id));
            }
            if let Some(q) = p.qer_ids.iter().find(|q| !s.qers.contains_key(q)) {
                return Err(missing(ie_type::QER_ID, "QER", *q));
            }
            if let Some(u) = p.urr_ids.iter().find(|u| !s.urrs.contains_key(u)) {
                return Err(missing(ie_type::URR_ID, "URR", *u));
            }
        }
        let ue_ips: HashSet<Ipv4Addr> = s.pdrs.values().filter_map(|e| e.pdr.pdi.ue_ip).collect();
        if ue_ips.len() > 1 {
            return Err(err(
                Cause::MandatoryIeIncorrect,
                ie_type::PDI,
                "PDRs name different UE addresses",
            ));
        }
        if let Some(ue) = ue_ips.iter().next() {
            if let Some(other) = self.ue_owner.get(ue).filter(|o| **o != s.local_seid) {
                return Err(rule_failure(
                    ie_type::PDI,
                    format!("UE address {ue} is used by session {other:#x}"),
                ));
            }
        }
        // TEIDs: given ones must not belong to another session (checked
        // before CHOOSE allocates anything); CHOOSE allocates, one TEID per
        // CHOOSE ID.
        for id in &new_pdrs {
            if let Some(FTeidSpec::Given(t)) = s.pdrs.get(id).and_then(|e| e.pdr.pdi.local_fteid) {
                if self.teid_owner.get(&t).is_some_and(|o| *o != s.local_seid) {
                    return Err(rule_failure(
                        ie_type::F_TEID,
                        format!("PDR {id}: TEID {t:#x} belongs to another session"),
                    ));
                }
            }
        }
        let mut created = Vec::new();
        let mut taken: HashSet<u32> = s.pdrs.values().filter_map(|e| e.teid).collect();
        for id in new_pdrs {
            let spec = s.pdrs.get(&id).and_then(|e| e.pdr.pdi.local_fteid);
            let teid = match spec {
                None => None,
                Some(FTeidSpec::Given(t)) => Some(t),
                Some(FTeidSpec::Choose(cid)) => {
                    let t = match cid.and_then(|c| s.choose.get(&c).copied()) {
                        Some(t) => t,
                        None => {
                            let t = self.alloc_teid(&taken);
                            if let Some(c) = cid {
                                s.choose.insert(c, t);
                            }
                            t
                        }
                    };
                    created.push(CreatedPdr {
                        pdr_id: id,
                        teid: t,
                        addr: self.n3_addr,
                    });
                    Some(t)
                }
            };
            if let Some(t) = teid {
                taken.insert(t);
            }
            if let Some(e) = s.pdrs.get_mut(&id) {
                e.teid = teid;
            }
        }
        Ok((created, fx))
    }

    /// Carry out what [`apply`](Self::apply) held back, on the session it
    /// validated: new rates and thresholds, final reports of removed URRs
    /// (with their counters, which packet threads with the old rules may
    /// still count into: [`UsageReport::add_late`]).
    pub(super) fn commit(
        s: &mut Session,
        fx: SharedEffects,
        now: Instant,
    ) -> (Vec<UsageReport>, Vec<Arc<UrrState>>) {
        for (st, ul, dl) in fx.rates {
            st.ul.set_rate(ul);
            st.dl.set_rate(dl);
        }
        for (st, th) in fx.thresholds {
            st.set_threshold(th);
        }
        let ids = (s.local_seid, s.remote_seid);
        fx.removed_urrs
            .into_iter()
            .map(|mut e| {
                let r = take_report(ids, &mut s.seqn, &mut e, ReportTrigger::Termination, now);
                (r, e.state)
            })
            .unzip()
    }
}

/// The refusal of a Create IE (`ie`) for a `kind` rule `id` the session
/// already has.
fn exists(ie: u16, kind: &str, id: impl std::fmt::Display) -> SessionError {
    rule_failure(ie, format!("Create {kind}: {kind} {id} exists"))
}
