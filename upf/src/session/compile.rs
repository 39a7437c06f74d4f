//! Compiling a session's rules into the data path's lookup lists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Session, UrrEntry};
use crate::datapath::{pdr_list, Action, CompiledPdr, CompiledSession, DataSignals, UrrState};
use crate::rules::{FarAction, Interface, Urr};
use crate::sdf::Direction;

/// Compile one session's PDRs into lookup lists: PDRs with a local TEID
/// under that TEID, downlink PDRs without one under the UE address.
pub(super) fn compile(s: &Session) -> CompiledSession {
    let ue_ip = s.ue_ip();
    let mut ul: BTreeMap<u32, Vec<CompiledPdr>> = BTreeMap::new();
    let mut dl: Vec<CompiledPdr> = Vec::new();
    let mut dl_key = None;
    for e in s.pdrs.values() {
        let p = &e.pdr;
        let direction = match p.pdi.source_interface {
            Interface::Access => Direction::Uplink,
            _ => Direction::Downlink,
        };
        // References were checked when the rules were applied.
        let Some(far) = s.fars.get(&p.far_id) else {
            continue;
        };
        let qers: Vec<_> = p
            .qer_ids
            .iter()
            .filter_map(|id| s.qers.get(id))
            .map(|(q, st)| {
                let gate = match direction {
                    Direction::Uplink => q.gate_ul,
                    Direction::Downlink => q.gate_dl,
                };
                (gate, st.clone())
            })
            .collect();
        let qfi = p
            .qer_ids
            .iter()
            .filter_map(|id| s.qers.get(id))
            .find_map(|(q, _)| q.qfi);
        let action = match &far.action {
            FarAction::Forward {
                outer_header: Some(o),
                ..
            } => Action::Tunnel { outer: *o, qfi },
            FarAction::Forward { .. } => Action::ToN6,
            FarAction::Buffer => Action::Buffer,
            FarAction::Drop => Action::Drop,
        };
        let c = CompiledPdr {
            pdr_id: p.id,
            precedence: p.precedence,
            qfi: p.pdi.qfi,
            sdf: p.pdi.sdf_filters.clone(),
            direction,
            ue_ip,
            senders: e
                .teid
                .and_then(|_| s.senders.get(&p.pdi.source_interface).cloned()),
            action,
            qers,
            urrs: p
                .urr_ids
                .iter()
                .filter_map(|id| s.urrs.get(id))
                .map(|e| e.state.clone())
                .collect(),
            session: s.shared.clone(),
            counter: e.counter.clone(),
        };
        if let Some(t) = e.teid {
            ul.entry(t).or_default().push(c);
        } else if direction == Direction::Downlink {
            // All PDRs of a session name the same UE address (checked).
            if let Some(ip) = p.pdi.ue_ip {
                dl_key = Some(ip);
                dl.push(c);
            }
        }
    }
    CompiledSession {
        seid: s.local_seid,
        uplink: ul.into_iter().map(|(t, v)| (t, pdr_list(v))).collect(),
        downlink: dl_key.map(|k| (k, pdr_list(dl))),
    }
}

pub(super) fn new_urr_entry(
    urr: Urr,
    seid: u64,
    signals: &Arc<DataSignals>,
    now: Instant,
) -> UrrEntry {
    UrrEntry {
        state: Arc::new(UrrState::attached(
            urr.id,
            urr.volume_threshold,
            seid,
            signals.clone(),
        )),
        start: now,
        next_period: urr.measurement_period.map(|p: Duration| now + p),
        urr,
    }
}
