//! The server's state under its one lock: the world, the CSM session
//! manager, the connections and each account's applied inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use super::stats::{AccountStats, SessionStats, Stats};
use super::CloudConfig;
use crate::game::{Delta, Event, World};
use crate::session::{Role, SessionError, SessionId, SessionManager, WriteVerdict};
use crate::sync::{encode, ClientMsg, LoginOk, ServerMsg};

/// Applied input seqs of one account: all of `..=floor` plus `above`.
#[derive(Debug, Default)]
pub(super) struct SeqSet {
    pub(super) floor: u64,
    pub(super) above: BTreeSet<u64>,
}

/// Gaps older than this many seqs above the floor are given up on.
const SEQ_WINDOW: usize = 4096;

/// A seq further than this above the floor is refused, not applied: a UE
/// numbers its inputs 1, 2, 3, ... (resends repeat the last few), so such a
/// seq is bogus, and taking it would move the floor past every honest input
/// to come (a seq of 2^63 or more would also overflow the floor's count).
const SEQ_AHEAD: u64 = 1 << 16;

/// What [`SeqSet::insert`] made of a seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeqVerdict {
    /// Not seen before: apply it.
    Fresh,
    /// Seen (or given up on): drop it.
    Duplicate,
    /// Too far ahead of the inputs applied: drop it, change nothing.
    OutOfWindow,
}

impl SeqSet {
    /// Inserts `seq` unless it was seen or lies outside the window.
    pub(super) fn insert(&mut self, seq: u64) -> SeqVerdict {
        if seq <= self.floor {
            return SeqVerdict::Duplicate;
        }
        if seq - self.floor > SEQ_AHEAD {
            return SeqVerdict::OutOfWindow;
        }
        if !self.above.insert(seq) {
            return SeqVerdict::Duplicate;
        }
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
        while self.above.len() > SEQ_WINDOW {
            if let Some(first) = self.above.pop_first() {
                self.floor = first;
            }
            while self.above.remove(&(self.floor + 1)) {
                self.floor += 1;
            }
        }
        SeqVerdict::Fresh
    }
}

#[derive(Debug, Default)]
pub(super) struct AccountState {
    pub(super) seen: SeqSet,
    pub(super) stats: AccountStats,
}

pub(super) struct Conn {
    pub(super) tx: mpsc::Sender<Arc<Vec<u8>>>,
    pub(super) kill: Arc<Notify>,
    pub(super) account: Option<String>,
    pub(super) instance: String,
    pub(super) peer: SocketAddr,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) ticks: u64,
    pub(super) inputs_applied: u64,
    pub(super) duplicates: u64,
    pub(super) dropped_secondary: u64,
    pub(super) secondary_applied: u64,
    pub(super) dropped_not_logged_in: u64,
    pub(super) dropped_invalid_seq: u64,
    pub(super) bad_frames: u64,
    pub(super) logins_ok: u64,
    pub(super) logins_refused: u64,
    pub(super) slow_consumers: u64,
}

pub(super) struct Core {
    pub(super) world: World,
    pub(super) pending: Vec<Event>,
    pub(super) mgr: SessionManager,
    pub(super) conns: BTreeMap<SessionId, Conn>,
    pub(super) accounts: BTreeMap<String, AccountState>,
    pub(super) counters: Counters,
    pub(super) next_id: SessionId,
}

/// What the connection does after a message.
pub(super) enum Flow {
    Continue,
    Close,
}

pub(super) struct Shared {
    pub(super) config: CloudConfig,
    pub(super) core: Mutex<Core>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves consistent-enough state for
        // counters; keep serving rather than cascading the panic.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Core {
    /// Queues a message for one connection; a full queue marks it slow.
    pub(super) fn send(&mut self, id: SessionId, msg: &ServerMsg) {
        let Ok(frame) = encode(msg) else {
            warn!(session = id, "message too large to send");
            return;
        };
        self.send_frame(id, Arc::new(frame));
    }

    pub(super) fn send_frame(&mut self, id: SessionId, frame: Arc<Vec<u8>>) {
        let full = match self.conns.get(&id) {
            Some(c) => matches!(
                c.tx.try_send(frame),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            None => false,
        };
        if full {
            self.counters.slow_consumers += 1;
            warn!(session = id, "session too slow to keep up, disconnecting");
            if let Some(c) = self.conns.get(&id) {
                c.kill.notify_one();
            }
            self.disconnect(id);
        }
    }

    pub(super) fn tell_roles(&mut self, changes: &[crate::session::RoleChange]) {
        for ch in changes {
            info!(session = ch.session, role = ?ch.role, "role changed");
            self.send(ch.session, &ServerMsg::Role { role: ch.role });
        }
    }

    /// Removes a connection, logging its session out. Idempotent.
    pub(super) fn disconnect(&mut self, id: SessionId) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        let Some(account) = conn.account else {
            debug!(session = id, peer = %conn.peer, "connection closed before login");
            return;
        };
        match self.mgr.logout(id) {
            Ok(out) => {
                info!(
                    session = id,
                    account = %account,
                    role = ?out.role,
                    instance = %conn.instance,
                    last = out.last,
                    "session logged out"
                );
                self.tell_roles(&out.changes);
                if out.last {
                    // The player leaves; its seq numbering may start over
                    // with the next login (a new UE run).
                    if let Some(a) = self.accounts.get_mut(&account) {
                        a.seen = SeqSet::default();
                    }
                    self.pending.push(Event::Leave { player: account });
                }
            }
            Err(e) => warn!(session = id, "logout: {e}"),
        }
    }

    pub(super) fn handle(
        &mut self,
        id: SessionId,
        msg: ClientMsg,
        accounts: &BTreeMap<String, String>,
    ) -> Flow {
        let logged_in = self.conns.get(&id).and_then(|c| c.account.clone());
        match msg {
            ClientMsg::Login {
                account,
                token,
                instance,
            } => {
                if let Some(a) = logged_in {
                    self.send(
                        id,
                        &ServerMsg::Error {
                            message: format!("session {id} is already logged in as {a}"),
                        },
                    );
                    return Flow::Continue;
                }
                let why = match accounts.get(&account) {
                    None => Some("unknown account"),
                    Some(t) if *t != token => Some("wrong token"),
                    Some(_) => None,
                };
                if let Some(why) = why {
                    self.counters.logins_refused += 1;
                    warn!(session = id, account = %account, instance = %instance, "login refused: {why}");
                    self.send(
                        id,
                        &ServerMsg::Error {
                            message: format!("login refused for account {account:?}: {why}"),
                        },
                    );
                    return Flow::Close;
                }
                let role = match self.mgr.login(&account, id) {
                    Ok(r) => r,
                    Err(e) => {
                        self.send(
                            id,
                            &ServerMsg::Error {
                                message: e.to_string(),
                            },
                        );
                        return Flow::Close;
                    }
                };
                self.counters.logins_ok += 1;
                let first = self.mgr.sessions(&account).len() == 1;
                if first {
                    self.pending.push(Event::Join {
                        player: account.clone(),
                    });
                }
                self.accounts.entry(account.clone()).or_default();
                if let Some(c) = self.conns.get_mut(&id) {
                    c.account = Some(account.clone());
                    c.instance = instance.clone();
                }
                info!(session = id, account = %account, instance = %instance, role = ?role, first, "login accepted");
                let ok = ServerMsg::LoginOk(LoginOk {
                    session: id,
                    role,
                    snapshot: self.world.clone(),
                });
                self.send(id, &ok);
                Flow::Continue
            }
            ClientMsg::Write { seq, dir, sent_ns } => {
                let Some(account) = logged_in else {
                    self.counters.dropped_not_logged_in += 1;
                    warn!(
                        session = id,
                        seq, "write from a connection that has not logged in"
                    );
                    self.send(
                        id,
                        &ServerMsg::Error {
                            message: format!(
                                "write (seq {seq}) refused: this connection has not logged in"
                            ),
                        },
                    );
                    return Flow::Continue;
                };
                let verdict = match self.mgr.write(id) {
                    Ok(v) => v,
                    Err(e) => {
                        self.send(
                            id,
                            &ServerMsg::Error {
                                message: e.to_string(),
                            },
                        );
                        return Flow::Continue;
                    }
                };
                let acc = self.accounts.entry(account.clone()).or_default();
                let dropped = match verdict {
                    WriteVerdict::Drop(reason) => {
                        self.counters.dropped_secondary += 1;
                        acc.stats.writes_dropped += 1;
                        debug!(session = id, account = %account, seq, "write dropped: {reason}");
                        Some(reason.as_str())
                    }
                    WriteVerdict::Forward if seq == 0 => {
                        self.counters.dropped_invalid_seq += 1;
                        Some("invalid_seq")
                    }
                    WriteVerdict::Forward => match acc.seen.insert(seq) {
                        SeqVerdict::OutOfWindow => {
                            self.counters.dropped_invalid_seq += 1;
                            debug!(session = id, account = %account, seq, "input seq out of window");
                            Some("invalid_seq")
                        }
                        SeqVerdict::Fresh => {
                            // Checked at the application itself, not
                            // taken from the verdict.
                            if self.mgr.role(id) != Some(Role::Primary) {
                                acc.stats.secondary_writes_applied += 1;
                                self.counters.secondary_applied += 1;
                                warn!(session = id, account = %account, seq, "input applied from a secondary");
                            }
                            acc.stats.inputs_applied += 1;
                            acc.stats.last_seq = acc.stats.last_seq.max(seq);
                            self.counters.inputs_applied += 1;
                            debug!(session = id, account = %account, seq, ?dir, sent_ns, "input applied");
                            self.pending.push(Event::Turn {
                                player: account,
                                dir,
                                seq,
                            });
                            None
                        }
                        SeqVerdict::Duplicate => {
                            acc.stats.duplicates += 1;
                            self.counters.duplicates += 1;
                            debug!(session = id, account = %account, seq, "duplicate input");
                            Some("duplicate")
                        }
                    },
                };
                if let Some(reason) = dropped {
                    self.send(
                        id,
                        &ServerMsg::WriteDropped {
                            seq,
                            reason: reason.to_string(),
                        },
                    );
                }
                Flow::Continue
            }
            ClientMsg::Switch => {
                if logged_in.is_none() {
                    self.send(
                        id,
                        &ServerMsg::Error {
                            message: "switch refused: this connection has not logged in".into(),
                        },
                    );
                    return Flow::Continue;
                }
                match self.mgr.switch(id) {
                    Ok(changes) => {
                        info!(session = id, changed = changes.len(), "switching signal");
                        self.tell_roles(&changes);
                    }
                    Err(e @ SessionError::UnknownSession(_))
                    | Err(e @ SessionError::AlreadyLoggedIn(_)) => self.send(
                        id,
                        &ServerMsg::Error {
                            message: e.to_string(),
                        },
                    ),
                }
                Flow::Continue
            }
            ClientMsg::Logout => Flow::Close,
        }
    }

    pub(super) fn tick(&mut self) {
        let delta = Delta {
            tick: self.world.tick.wrapping_add(1),
            events: std::mem::take(&mut self.pending),
        };
        if let Err(e) = self.world.apply(&delta) {
            // Cannot happen: the delta is built for the next tick.
            warn!("tick: {e}");
            return;
        }
        self.counters.ticks += 1;
        for e in &delta.events {
            match e {
                Event::Join { player } => {
                    info!(player = %player, tick = delta.tick, "player joined")
                }
                Event::Leave { player } => {
                    info!(player = %player, tick = delta.tick, "player left")
                }
                Event::Turn { .. } => {}
            }
        }
        let frame = match encode(&ServerMsg::Delta(delta)) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                warn!("delta not sent: {e}");
                return;
            }
        };
        let ids: Vec<SessionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.account.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send_frame(id, frame.clone());
        }
    }

    pub(super) fn stats(&self) -> Stats {
        let mut accounts = BTreeMap::new();
        for (name, a) in &self.accounts {
            let mut s = a.stats.clone();
            s.sessions = self
                .mgr
                .sessions(name)
                .into_iter()
                .map(|(sid, role)| {
                    let c = self.conns.get(&sid);
                    SessionStats {
                        session: sid,
                        role,
                        instance: c.map(|c| c.instance.clone()).unwrap_or_default(),
                        peer: c.map(|c| c.peer.to_string()).unwrap_or_default(),
                    }
                })
                .collect();
            s.score = self.world.snakes.get(name).map(|sn| sn.score);
            accounts.insert(name.clone(), s);
        }
        let c = &self.counters;
        Stats {
            tick: self.world.tick,
            sessions: self.mgr.len(),
            connections: self.conns.len(),
            ticks: c.ticks,
            inputs_applied: c.inputs_applied,
            duplicates: c.duplicates,
            writes_dropped: BTreeMap::from([
                ("secondary".to_string(), c.dropped_secondary),
                ("not_logged_in".to_string(), c.dropped_not_logged_in),
                ("invalid_seq".to_string(), c.dropped_invalid_seq),
            ]),
            secondary_writes_applied: c.secondary_applied,
            bad_frames: c.bad_frames,
            logins_ok: c.logins_ok,
            logins_refused: c.logins_refused,
            slow_consumers: c.slow_consumers,
            accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_set_exactly_once() {
        let fresh = |s: &mut SeqSet, q| s.insert(q) == SeqVerdict::Fresh;
        let mut s = SeqSet::default();
        let got: Vec<bool> = [3, 1, 2, 2, 5, 1, 4, 9]
            .iter()
            .map(|&q| fresh(&mut s, q))
            .collect();
        assert_eq!(got, [true, true, true, false, true, false, true, true]);
        assert_eq!(s.floor, 5);
        assert_eq!(s.insert(9), SeqVerdict::Duplicate);
        assert!(fresh(&mut s, 6));
        // A gap older than the window is given up on, not kept forever.
        let mut s = SeqSet::default();
        for q in 2..(SEQ_WINDOW as u64 + 10) {
            assert!(fresh(&mut s, q));
        }
        assert!(s.above.len() <= SEQ_WINDOW);
        assert_eq!(
            s.insert(1),
            SeqVerdict::Duplicate,
            "given up: treated as seen"
        );
    }

    #[test]
    fn huge_seqs_do_not_poison_the_window() {
        let mut s = SeqSet::default();
        assert_eq!(s.insert(1), SeqVerdict::Fresh);
        // A seq of 2^63 or more, u64::MAX, or just past the window: refused,
        // and the floor does not move.
        for q in [1 << 63, u64::MAX, u64::MAX - 1, 2 + SEQ_AHEAD] {
            assert_eq!(s.insert(q), SeqVerdict::OutOfWindow, "{q}");
        }
        // Even a flood of them (more than the window holds) changes nothing.
        for q in 0..(SEQ_WINDOW as u64 + 10) {
            assert_eq!(s.insert(u64::MAX - q), SeqVerdict::OutOfWindow);
        }
        assert_eq!((s.floor, s.above.len()), (1, 0));
        // The honest inputs that follow are applied, once.
        assert_eq!(s.insert(2), SeqVerdict::Fresh);
        assert_eq!(s.insert(1 + SEQ_AHEAD), SeqVerdict::Fresh);
        assert_eq!(s.insert(2), SeqVerdict::Duplicate);
        assert_eq!(s.floor, 2);
    }
}
