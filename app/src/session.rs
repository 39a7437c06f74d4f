//! CSM session manager: Algorithm 1 of the paper, as an I/O-free state
//! machine (no sockets, no clock).
//!
//! ```text
//! Input: a state synchronization session s from user account u_i
//!  if s not in S: if u_i has not logged in: create an empty set for the user, push s, mark s primary
//!                 else: push s, mark s secondary
//!  else: if s is primary: transfer packets (writes) to logic server
//!        else if s has switching signal: mark current primary secondary, mark s primary, transfer packets
//!        else: drop packets from s
//! ```
//!
//! The logic server is the driver: it calls [`SessionManager::login`] when a
//! session logs in, [`SessionManager::write`] for every write (and forwards
//! it to the world only on [`WriteVerdict::Forward`]),
//! [`SessionManager::switch`] on the switching signal and
//! [`SessionManager::logout`] when a session logs out or its connection
//! goes away, and tells the sessions in the returned [`RoleChange`]s their
//! new role.
//!
//! Invariant: every account with at least one session has exactly one
//! primary session; an account with none has no entry at all (its
//! resources are recycled only then).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A state-synchronization session, numbered by the logic server.
pub type SessionId = u64;

/// A session's role in its account's session set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Its writes reach the logic server.
    Primary,
    /// Receives the state; its writes are dropped.
    Secondary,
}

/// Why a write was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// The session is a secondary of its account (Algorithm 1: "drop
    /// packets from s").
    Secondary,
}

impl DropReason {
    /// Label for metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Secondary => "secondary",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteVerdict {
    /// Transfer it to the logic server.
    Forward,
    /// Drop it (counted).
    Drop(DropReason),
}

/// A session whose role changed as the result of a call; the driver tells
/// the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    /// The session.
    pub session: SessionId,
    /// Its new role.
    pub role: Role,
}

/// What a logout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    /// The account of the session.
    pub account: String,
    /// The role the session had.
    pub role: Role,
    /// Sessions of the account whose role changed (at most one: the
    /// secondary promoted when the primary left).
    pub changes: Vec<RoleChange>,
    /// The account has no session left (the player leaves the game).
    pub last: bool,
}

/// Errors of the session manager.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No such session (never logged in, or logged out).
    #[error("no session {0}")]
    UnknownSession(SessionId),
    /// The session id is already logged in.
    #[error("session {0} is already logged in")]
    AlreadyLoggedIn(SessionId),
}

/// The session set of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Account {
    /// Sessions in login order with their role.
    members: Vec<(SessionId, Role)>,
    /// Writes forwarded.
    forwarded: u64,
    /// Writes dropped.
    dropped: u64,
}

impl Account {
    fn primary(&self) -> Option<SessionId> {
        self.members
            .iter()
            .find(|(_, r)| *r == Role::Primary)
            .map(|(s, _)| *s)
    }

    fn role(&self, s: SessionId) -> Option<Role> {
        self.members.iter().find(|(m, _)| *m == s).map(|(_, r)| *r)
    }

    fn set_role(&mut self, s: SessionId, role: Role) {
        if let Some(m) = self.members.iter_mut().find(|(m, _)| *m == s) {
            m.1 = role;
        }
    }
}

/// Algorithm 1's session sets, one per account.
#[derive(Debug, Clone, Default)]
pub struct SessionManager {
    accounts: BTreeMap<String, Account>,
    sessions: BTreeMap<SessionId, String>,
}

impl SessionManager {
    /// No sessions.
    pub fn new() -> SessionManager {
        SessionManager::default()
    }

    /// Session `session` of `account` logs in: the first session of an
    /// account (no session set yet) is primary, later ones secondary.
    pub fn login(&mut self, account: &str, session: SessionId) -> Result<Role, SessionError> {
        if self.sessions.contains_key(&session) {
            return Err(SessionError::AlreadyLoggedIn(session));
        }
        let acc = self.accounts.entry(account.to_string()).or_default();
        let role = if acc.members.is_empty() {
            Role::Primary
        } else {
            Role::Secondary
        };
        acc.members.push((session, role));
        self.sessions.insert(session, account.to_string());
        Ok(role)
    }

    /// A write from `session`: forwarded iff the session is its account's
    /// primary, otherwise dropped and counted for the account.
    pub fn write(&mut self, session: SessionId) -> Result<WriteVerdict, SessionError> {
        let acc = self.account_mut(session)?;
        if acc.role(session) == Some(Role::Primary) {
            acc.forwarded += 1;
            Ok(WriteVerdict::Forward)
        } else {
            acc.dropped += 1;
            Ok(WriteVerdict::Drop(DropReason::Secondary))
        }
    }

    /// The switching signal from `session`: it becomes primary and the old
    /// primary secondary. Returns the sessions whose role changed (empty
    /// when the sender already was primary), the new primary first.
    pub fn switch(&mut self, session: SessionId) -> Result<Vec<RoleChange>, SessionError> {
        let acc = self.account_mut(session)?;
        if acc.role(session) == Some(Role::Primary) {
            return Ok(Vec::new());
        }
        let mut changes = vec![RoleChange {
            session,
            role: Role::Primary,
        }];
        if let Some(old) = acc.primary() {
            acc.set_role(old, Role::Secondary);
            changes.push(RoleChange {
                session: old,
                role: Role::Secondary,
            });
        }
        acc.set_role(session, Role::Primary);
        Ok(changes)
    }

    /// `session` logs out (or its connection is gone).
    ///
    /// Logging out one session never disturbs the others of its account:
    /// they keep their place, their state stream and, if secondary, their
    /// role. The one case where another session is touched is the primary
    /// logging out while secondaries remain: then the *oldest* remaining
    /// session (first logged in) is promoted to primary, and reported in
    /// [`Logout::changes`]. Rationale: Algorithm 1 needs exactly one
    /// primary per non-empty set, or the player's inputs would be dropped
    /// by every remaining session until some switching signal arrives,
    /// which after a crash of the primary's edge may never come; promoting
    /// is what that session's next switching signal would do anyway, and it
    /// changes nothing the session receives (state flows to every session
    /// regardless of role). The oldest is chosen because it has been
    /// receiving the state the longest, and the choice is deterministic.
    /// The account's session set (and the player) goes away only with its
    /// last session.
    pub fn logout(&mut self, session: SessionId) -> Result<Logout, SessionError> {
        let account = self
            .sessions
            .remove(&session)
            .ok_or(SessionError::UnknownSession(session))?;
        let mut out = Logout {
            account: account.clone(),
            role: Role::Secondary,
            changes: Vec::new(),
            last: false,
        };
        let Some(acc) = self.accounts.get_mut(&account) else {
            // The two maps are kept in step; an account entry exists for
            // every session. Treat a missing one as an empty set.
            out.last = true;
            return Ok(out);
        };
        if let Some(i) = acc.members.iter().position(|(m, _)| *m == session) {
            out.role = acc.members.remove(i).1;
        }
        if acc.members.is_empty() {
            self.accounts.remove(&account);
            out.last = true;
        } else if out.role == Role::Primary {
            // Unwrap-free: members is non-empty here.
            if let Some(first) = acc.members.first_mut() {
                first.1 = Role::Primary;
                out.changes.push(RoleChange {
                    session: first.0,
                    role: Role::Primary,
                });
            }
        }
        Ok(out)
    }

    /// The role of a session, `None` if it is not logged in.
    pub fn role(&self, session: SessionId) -> Option<Role> {
        let account = self.sessions.get(&session)?;
        self.accounts.get(account)?.role(session)
    }

    /// The account of a session.
    pub fn account_of(&self, session: SessionId) -> Option<&str> {
        self.sessions.get(&session).map(String::as_str)
    }

    /// The primary session of an account.
    pub fn primary(&self, account: &str) -> Option<SessionId> {
        self.accounts.get(account)?.primary()
    }

    /// The sessions of an account in login order, with their roles.
    pub fn sessions(&self, account: &str) -> Vec<(SessionId, Role)> {
        self.accounts
            .get(account)
            .map(|a| a.members.clone())
            .unwrap_or_default()
    }

    /// Whether the account has a session set (at least one session).
    pub fn is_logged_in(&self, account: &str) -> bool {
        self.accounts.contains_key(account)
    }

    /// Accounts with a session set.
    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    /// Writes of the account dropped so far (0 once the account's set is
    /// gone: the counter is recycled with it; the server keeps totals).
    pub fn dropped(&self, account: &str) -> u64 {
        self.accounts.get(account).map_or(0, |a| a.dropped)
    }

    /// Writes of the account forwarded so far.
    pub fn forwarded(&self, account: &str) -> u64 {
        self.accounts.get(account).map_or(0, |a| a.forwarded)
    }

    /// Sessions logged in, over all accounts.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No session logged in.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn account_mut(&mut self, session: SessionId) -> Result<&mut Account, SessionError> {
        let account = self
            .sessions
            .get(&session)
            .ok_or(SessionError::UnknownSession(session))?;
        self.accounts
            .get_mut(account)
            .ok_or(SessionError::UnknownSession(session))
    }
}
