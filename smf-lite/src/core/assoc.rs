//! PFCP associations: setup, heartbeats, a UPF found down or restarted,
//! its sessions lost and restored, and the timers (T1 retransmission, N1
//! give-up, heartbeat and association retry).

use super::txn::{Txn, TxnKind};
use super::{AssocState, SessionKey, SessionState, Smf, SmfError};
use std::time::Instant;
use tracing::{info, warn};
use wire::pfcp::{self, Message};

impl Smf {
    /// A Recovery Time Stamp seen from `upf`; `setup`: it came with an
    /// association setup (so the association is now up).
    pub(super) fn peer_recovery(&mut self, now: Instant, upf: usize, ts: u32, setup: bool) {
        let p = &mut self.peers[upf];
        let restarted = p.recovery_ts.is_some_and(|old| old != ts);
        p.recovery_ts = Some(ts);
        if restarted {
            p.restarts += 1;
            self.metrics.upf_restarts += 1;
            warn!(upf = %p.name, rts = ts, "UPF restarted (new Recovery Time Stamp)");
            self.upf_lost_all(now, upf);
        }
        let p = &mut self.peers[upf];
        if setup {
            let restarted = std::mem::take(&mut p.lost_all);
            p.assoc_failures = 0;
            p.state = AssocState::Associated;
            p.hb_outstanding = false;
            p.next_timer = now + self.hb;
            // Restore what the UPF lost (or, without a restart, what we
            // marked lost when it stopped answering).
            self.restore_sessions(now, upf, restarted);
        } else if restarted {
            // Its sessions and our association are gone: set it up again,
            // then restore.
            self.start_association(now, upf);
        }
    }

    pub(super) fn start_association(&mut self, now: Instant, upf: usize) {
        // Drop the heartbeat/association transactions still running.
        self.txns.remove_node(upf);
        let p = &mut self.peers[upf];
        p.state = AssocState::Connecting;
        p.hb_outstanding = false;
        let msg = pfcp::AssociationSetupRequest {
            node_id: self.node_id.clone(),
            recovery_time_stamp: self.recovery_ts,
            cp_function_features: Some(pfcp::FunctionFeatures(vec![0])),
            ..Default::default()
        };
        self.send_request(now, upf, Message::node(0, msg), TxnKind::Association);
    }

    pub(super) fn peer_down(&mut self, now: Instant, upf: usize) {
        let p = &mut self.peers[upf];
        p.state = AssocState::Down;
        p.hb_outstanding = false;
        p.next_timer = now + self.hb;
        self.txns.remove_node(upf);
        self.lose_sessions(upf);
    }

    /// The UPF restarted: every session it held is gone and its UP SEIDs
    /// may be handed out again. Active sessions are restored at the next
    /// association; setups under way fail without a word to the UPF (a
    /// Modification or Deletion with an old UP SEID could reach a restored
    /// session of its new life).
    pub(super) fn upf_lost_all(&mut self, now: Instant, upf: usize) {
        self.peers[upf].lost_all = true;
        // Nothing of ours in flight may reach its new life: retransmitted
        // Modifications, Deletions and clean-ups carry old UP SEIDs.
        self.txns.remove_node(upf);
        let releasing: Vec<(SessionKey, u64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.upf == upf && s.state == SessionState::Releasing)
            .map(|(k, s)| (k.clone(), s.gen))
            .collect();
        for (key, gen) in releasing {
            // Gone with the UPF's state: released.
            self.released(&key, gen, &[]);
        }
        for s in self.sessions.values_mut() {
            if s.upf == upf && s.restoring {
                // Its restore was under way: again at the next association.
                s.state = SessionState::Lost;
            }
        }
        self.lose_sessions(upf);
        let in_flight: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.upf == upf
                    && !s.restoring
                    && matches!(
                        s.state,
                        SessionState::Establishing | SessionState::WaitN2 | SessionState::Modifying
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        let name = self.peers[upf].name.clone();
        for key in in_flight {
            if let Some(s) = self.sessions.get_mut(&key) {
                s.info.up_seid = 0;
            }
            let e = SmfError::UpfBadAnswer {
                upf: name.clone(),
                msg: "it restarted during the setup (its sessions are gone)".into(),
            };
            self.fail(now, &key, e, false);
        }
    }

    /// Marks the UPF's active sessions lost (to be restored).
    pub(super) fn lose_sessions(&mut self, upf: usize) {
        for s in self.sessions.values_mut() {
            if s.upf == upf && s.state == SessionState::Active {
                s.state = SessionState::Lost;
            }
        }
    }

    fn restore_sessions(&mut self, now: Instant, upf: usize, restarted: bool) {
        let keys: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.upf == upf
                    && (s.state == SessionState::Lost
                        || (restarted && s.state == SessionState::Active))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !keys.is_empty() {
            info!(upf = %self.peers[upf].name, n = keys.len(), "re-establishing sessions");
        }
        for key in keys {
            let gen = self.gen();
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            s.state = SessionState::Establishing;
            s.restoring = true;
            s.gen = gen;
            let old_up_seid = s.info.up_seid;
            if !restarted && old_up_seid != 0 {
                // Same UPF life: it may still hold the session (or may have
                // dropped it with the association). Delete it first so the
                // new one does not collide; "not found" is fine. (After a
                // restart the UPF hands out UP SEIDs afresh: the old one
                // may be a restored session's by now.)
                self.send_cleanup(now, upf, old_up_seid);
            }
            let Some(s) = self.sessions.get(&key) else {
                continue;
            };
            let dl = Some((s.info.dl_teid, s.info.dl_addr));
            let s = &self.sessions[&key];
            let msg = self.establishment(s, dl);
            self.send_request(
                now,
                upf,
                Message::session(0, 0, msg),
                TxnKind::Establish { key, gen },
            );
        }
    }

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.quiet(now) {
            return;
        }
        self.audits_due(now);
        for key in self.txns.due(now) {
            // Giving up on an earlier one may have removed it.
            let Some(t) = self.txns.get(key) else {
                continue;
            };
            if t.retries_left > 0 {
                let deadline = now + self.t1;
                let Some(t) = self.txns.rearm(key, deadline) else {
                    continue;
                };
                t.retries_left -= 1;
                let (to, data) = (self.peers[t.upf].addr, t.data.clone());
                self.metrics.pfcp_retransmissions += 1;
                self.push_send(to, data);
            } else if let Some(t) = self.txns.remove(key) {
                self.metrics.pfcp_timeouts += 1;
                self.give_up(now, t);
            }
        }
        for upf in 0..self.peers.len() {
            let p = &mut self.peers[upf];
            if p.next_timer > now {
                continue;
            }
            match p.state {
                AssocState::Down => self.start_association(now, upf),
                AssocState::Associated if !p.hb_outstanding => {
                    p.hb_outstanding = true;
                    let msg = pfcp::HeartbeatRequest {
                        recovery_time_stamp: self.recovery_ts,
                        ..Default::default()
                    };
                    self.send_request(now, upf, Message::node(0, msg), TxnKind::Heartbeat);
                }
                _ => {}
            }
        }
    }

    fn give_up(&mut self, now: Instant, t: Txn) {
        let name = self.peers[t.upf].name.clone();
        match t.kind {
            TxnKind::Association => {
                let p = &mut self.peers[t.upf];
                if p.assoc_failures % 12 == 0 {
                    warn!(upf = %name, addr = %p.addr, tries = p.assoc_failures + 1,
                          "no answer to Association Setup; retrying every heartbeat interval");
                }
                p.assoc_failures += 1;
                p.state = AssocState::Down;
                p.next_timer = now + self.hb;
            }
            TxnKind::Heartbeat => {
                warn!(upf = %name, "heartbeat unanswered: UPF down");
                self.peer_down(now, t.upf);
            }
            TxnKind::Establish { key, gen } => {
                let what = "Session Establishment Request";
                self.setup_unanswered(
                    now,
                    &key,
                    gen,
                    SmfError::UpfTimeout { upf: name, what },
                    false,
                )
            }
            TxnKind::Modify { key, gen } => {
                let what = "Session Modification Request";
                self.setup_unanswered(
                    now,
                    &key,
                    gen,
                    SmfError::UpfTimeout { upf: name, what },
                    true,
                )
            }
            TxnKind::Delete { key, gen } => {
                warn!(?key, upf = %name, "no answer to Session Deletion; released anyway");
                self.released(&key, gen, &[]);
            }
            TxnKind::Cleanup => {}
        }
    }

    /// A setup step of attempt `gen` of `key` got no answer: a restoring
    /// session is lost again, an API request fails with `e` (`pfcp_made`:
    /// the UPF holds the session).
    fn setup_unanswered(
        &mut self,
        now: Instant,
        key: &SessionKey,
        gen: u64,
        e: SmfError,
        pfcp_made: bool,
    ) {
        let Some(s) = self.sessions.get_mut(key).filter(|s| s.gen == gen) else {
            return;
        };
        if s.restoring {
            s.state = SessionState::Lost;
            return;
        }
        self.fail(now, key, e, pfcp_made);
    }
}
