//! Undoing: a migration abandoned (rollback of what was made for the
//! destination), copilots released, answers owed to rolled-back migrations.

use super::state::{push_phase, Owed, Running, Side, Step};
use super::{Action, Manager};
use std::time::Instant;
use tracing::{info, warn};
use wire::ctl::migration::{MigrationKind, UeEventKind};
use wire::ctl::SessionInfo;

impl Manager {
    /// Abandon `mig`: undo what was made for the destination, remember the
    /// answers still owed, tell the UE.
    pub(super) fn fail(&mut self, now: Instant, mig: u64, reason: String) {
        let Some(mut run) = self.running.remove(&mig) else {
            return;
        };
        let ue_id = run.rec.ue_id.clone();
        let to = run.rec.to.clone();
        warn!(mig, ue = %ue_id, %to, step = run.step.name(), %reason, "migration abandoned");
        if run.kind() == MigrationKind::Full {
            let mut owed = Owed {
                ue_id: ue_id.clone(),
                edge: to.clone(),
                psi: run.psi,
                session: false,
                instance: false,
            };
            match &run.step {
                Step::Preparing { session: None, .. } => owed.session = true,
                Step::Preparing {
                    session: Some(_), ..
                } => self.release_session(&ue_id, run.psi),
                Step::Starting { .. } => {
                    self.release_session(&ue_id, run.psi);
                    owed.instance = true;
                }
                Step::Switching { dest } => {
                    let dest = dest.clone();
                    self.release_side(&ue_id, &dest);
                }
            }
            if owed.session || owed.instance {
                self.owed.insert(mig, owed);
            }
        }
        run.phase(now, "abandoned");
        run.rec.state = "abandoned".into();
        run.rec.reason = Some(reason.clone());
        if let Some(svc) = self.services.get_mut(&ue_id) {
            svc.migrating = None;
        }
        self.finish(run);
        self.notify(now, &ue_id, mig, UeEventKind::Abandoned { reason });
    }

    pub(super) fn finish(&mut self, run: Running) {
        self.history.push_back(run.rec);
        while self.history.len() > self.cfg.history {
            self.history.pop_front();
        }
    }

    pub(super) fn history_phase(&mut self, now: Instant, mig: u64, name: &str) {
        let epoch_ns = self.clock.ns(now);
        if let Some(rec) = self.history.iter_mut().find(|r| r.id == mig) {
            let ms = epoch_ns.saturating_sub(rec.requested_ns) as f64 / 1e6;
            push_phase(rec, name, ms);
        }
    }

    pub(super) fn release_session(&mut self, ue_id: &str, psi: u8) {
        self.push(Action::ReleaseSession {
            ue_id: ue_id.into(),
            pdu_session_id: psi,
        });
    }

    /// Release a side's session and stop its instance.
    pub(super) fn release_side(&mut self, ue_id: &str, side: &Side) {
        self.release_session(ue_id, side.psi);
        self.stop_instance(&side.edge, side.instance.clone());
    }

    pub(super) fn stop_instance(&mut self, edge: &str, instance: String) {
        if let Some(agent) = self.agent(edge) {
            self.push(Action::StopInstance {
                edge: edge.into(),
                agent,
                instance,
            });
        }
    }

    /// The countdown of `ue_id`'s copilot ended (or a full migration to
    /// another edge needs it gone).
    pub(super) fn release_copilot(&mut self, now: Instant, ue_id: &str) {
        let Some(c) = self.services.get_mut(ue_id).and_then(|s| s.copilot.take()) else {
            return;
        };
        info!(mig = c.mig, ue = %ue_id, edge = %c.side.edge, psi = c.side.psi, "copilot released");
        self.release_side(ue_id, &c.side);
        self.history_phase(now, c.mig, "released");
        let event = UeEventKind::Released {
            edge: c.side.edge,
            pdu_session_id: c.side.psi,
        };
        self.notify(now, ue_id, c.mig, event);
    }

    /// A session came up for a migration no longer waiting for it.
    pub(super) fn late_session(&mut self, mig: u64, session: &SessionInfo) {
        if !self.owed.get(&mig).is_some_and(|o| o.session) {
            let in_use = self.services.get(&session.ue_id).is_some_and(|s| {
                s.serving.psi == session.pdu_session_id
                    || s.copilot
                        .as_ref()
                        .is_some_and(|c| c.side.psi == session.pdu_session_id)
            });
            warn!(mig, ue = %session.ue_id, psi = session.pdu_session_id, in_use,
                "session ready for an unknown migration");
            if !in_use {
                self.release_session(&session.ue_id, session.pdu_session_id);
            }
            return;
        }
        info!(mig, ue = %session.ue_id, psi = session.pdu_session_id, "late session released");
        self.release_session(&session.ue_id, session.pdu_session_id);
        self.settle(mig, Answer::Session);
    }

    /// An instance started for a migration no longer waiting for it.
    pub(super) fn late_instance(&mut self, mig: u64, instance: String) {
        let Some(o) = self.owed.get(&mig).filter(|o| o.instance) else {
            warn!(mig, %instance, "instance started for an unknown migration: left alone");
            return;
        };
        let edge = o.edge.clone();
        info!(mig, %edge, %instance, "late instance stopped");
        self.stop_instance(&edge, instance);
        self.settle(mig, Answer::Instance);
    }

    /// An answer came for `mig`: if it was owed, it is no longer.
    pub(super) fn settle(&mut self, mig: u64, answer: Answer) {
        let Some(o) = self.owed.get_mut(&mig) else {
            return;
        };
        match answer {
            Answer::Session => o.session = false,
            Answer::Instance => o.instance = false,
        }
        if !o.session && !o.instance {
            self.owed.remove(&mig);
        }
    }
}

/// Which answer of an owed pair came.
#[derive(Clone, Copy)]
pub(super) enum Answer {
    Session,
    Instance,
}
