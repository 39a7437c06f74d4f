//! Algorithm 1's session manager, tested exhaustively: every sequence of
//! login / write / switch / logout (bounded length) over two and three
//! sessions of one account and over two accounts, and every interleaving
//! of per-session scripts, checked step by step against an independent
//! model and against the invariants:
//!
//! - an account with sessions has exactly one primary, one without has no
//!   session set;
//! - the first session of an account is primary, later ones secondary;
//! - a write is forwarded iff it comes from the primary; drops are counted
//!   exactly, per account;
//! - a switch makes its sender primary and the old primary secondary, and
//!   reports exactly the sessions whose role changed;
//! - a logout touches no other session, except that when the primary
//!   leaves the oldest remaining session is promoted (the documented rule);
//! - no operation on one account changes anything of another account;
//! - unknown sessions are errors that change nothing.

use std::collections::BTreeMap;

use app::session::{
    DropReason, Role, RoleChange, SessionError, SessionId, SessionManager, WriteVerdict,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Login(usize),
    Write(usize),
    Switch(usize),
    Logout(usize),
}

/// The reference model: per session slot, its account and, when logged
/// in, its role and login order.
#[derive(Debug, Clone)]
struct Model {
    accounts: Vec<&'static str>,
    state: Vec<Option<(Role, u64)>>,
    order: u64,
    dropped: BTreeMap<&'static str, u64>,
    forwarded: BTreeMap<&'static str, u64>,
}

fn id(slot: usize) -> SessionId {
    100 + slot as SessionId
}

impl Model {
    fn new(accounts: &[&'static str]) -> Model {
        Model {
            accounts: accounts.to_vec(),
            state: vec![None; accounts.len()],
            order: 0,
            dropped: BTreeMap::new(),
            forwarded: BTreeMap::new(),
        }
    }

    fn peers(&self, slot: usize) -> impl Iterator<Item = usize> + '_ {
        let acc = self.accounts[slot];
        (0..self.accounts.len()).filter(move |&i| self.accounts[i] == acc)
    }

    fn primary_of(&self, slot: usize) -> Option<usize> {
        self.peers(slot)
            .find(|&i| matches!(self.state[i], Some((Role::Primary, _))))
    }

    fn roles(&self) -> Vec<Option<Role>> {
        self.state.iter().map(|s| s.map(|(r, _)| r)).collect()
    }
}

fn actual_roles(m: &SessionManager, n: usize) -> Vec<Option<Role>> {
    (0..n).map(|i| m.role(id(i))).collect()
}

fn check_invariants(m: &SessionManager, model: &Model, trace: &[Op]) {
    let n = model.accounts.len();
    assert_eq!(actual_roles(m, n), model.roles(), "roles after {trace:?}");
    let mut names: Vec<&str> = model.accounts.clone();
    names.sort_unstable();
    names.dedup();
    for acc in names {
        let slots: Vec<usize> = (0..n)
            .filter(|&i| model.accounts[i] == acc && model.state[i].is_some())
            .collect();
        let primaries = slots
            .iter()
            .filter(|&&i| m.role(id(i)) == Some(Role::Primary))
            .count();
        if slots.is_empty() {
            assert!(
                !m.is_logged_in(acc),
                "{acc} has no sessions but a set, after {trace:?}"
            );
            assert_eq!(m.primary(acc), None);
            assert_eq!(m.dropped(acc), 0, "counters recycled with the set");
        } else {
            assert_eq!(primaries, 1, "{acc}: exactly one primary after {trace:?}");
            assert!(m.is_logged_in(acc));
            // Login order is kept.
            let mut by_order = slots.clone();
            by_order.sort_by_key(|&i| model.state[i].map(|(_, o)| o));
            let listed: Vec<SessionId> = m.sessions(acc).iter().map(|(s, _)| *s).collect();
            assert_eq!(listed, by_order.iter().map(|&i| id(i)).collect::<Vec<_>>());
            assert_eq!(m.dropped(acc), model.dropped.get(acc).copied().unwrap_or(0));
            assert_eq!(
                m.forwarded(acc),
                model.forwarded.get(acc).copied().unwrap_or(0)
            );
        }
        for &i in &slots {
            assert_eq!(m.account_of(id(i)), Some(acc));
        }
    }
    assert_eq!(m.len(), model.state.iter().filter(|s| s.is_some()).count());
}

/// Applies `op` to both, checking the outcome against the model.
fn step(m: &mut SessionManager, model: &mut Model, op: Op, trace: &[Op]) {
    let before = model.roles();
    let n = model.accounts.len();
    // Sessions whose role may change, and to what; everything else must
    // stay as it was.
    let mut expected_changes: Vec<RoleChange> = Vec::new();
    match op {
        Op::Login(s) => {
            let r = m.login(model.accounts[s], id(s));
            if model.state[s].is_some() {
                assert_eq!(r, Err(SessionError::AlreadyLoggedIn(id(s))), "{trace:?}");
            } else {
                let expect = if model.primary_of(s).is_none() {
                    Role::Primary
                } else {
                    Role::Secondary
                };
                assert_eq!(r, Ok(expect), "login role after {trace:?}");
                model.order += 1;
                model.state[s] = Some((expect, model.order));
                if model.peers(s).all(|i| i == s || model.state[i].is_none()) {
                    // A new set: counters start from zero.
                    model.dropped.remove(model.accounts[s]);
                    model.forwarded.remove(model.accounts[s]);
                }
            }
        }
        Op::Write(s) => {
            let r = m.write(id(s));
            match model.state[s] {
                None => assert_eq!(r, Err(SessionError::UnknownSession(id(s))), "{trace:?}"),
                Some((Role::Primary, _)) => {
                    assert_eq!(
                        r,
                        Ok(WriteVerdict::Forward),
                        "primary write after {trace:?}"
                    );
                    *model.forwarded.entry(model.accounts[s]).or_default() += 1;
                }
                Some((Role::Secondary, _)) => {
                    assert_eq!(
                        r,
                        Ok(WriteVerdict::Drop(DropReason::Secondary)),
                        "secondary write after {trace:?}"
                    );
                    *model.dropped.entry(model.accounts[s]).or_default() += 1;
                }
            }
        }
        Op::Switch(s) => {
            let r = m.switch(id(s));
            match model.state[s] {
                None => assert_eq!(r, Err(SessionError::UnknownSession(id(s))), "{trace:?}"),
                Some((Role::Primary, _)) => assert_eq!(r, Ok(vec![]), "{trace:?}"),
                Some((Role::Secondary, o)) => {
                    let old = model.primary_of(s);
                    expected_changes.push(RoleChange {
                        session: id(s),
                        role: Role::Primary,
                    });
                    model.state[s] = Some((Role::Primary, o));
                    if let Some(p) = old {
                        expected_changes.push(RoleChange {
                            session: id(p),
                            role: Role::Secondary,
                        });
                        if let Some((_, po)) = model.state[p] {
                            model.state[p] = Some((Role::Secondary, po));
                        }
                    }
                    assert_eq!(r, Ok(expected_changes.clone()), "switch after {trace:?}");
                }
            }
        }
        Op::Logout(s) => {
            let r = m.logout(id(s));
            match model.state[s] {
                None => assert_eq!(
                    r.err(),
                    Some(SessionError::UnknownSession(id(s))),
                    "{trace:?}"
                ),
                Some((role, _)) => {
                    model.state[s] = None;
                    let rest: Vec<usize> = model
                        .peers(s)
                        .filter(|&i| model.state[i].is_some())
                        .collect();
                    if role == Role::Primary {
                        if let Some(&oldest) =
                            rest.iter().min_by_key(|&&i| model.state[i].map(|(_, o)| o))
                        {
                            if let Some((_, o)) = model.state[oldest] {
                                model.state[oldest] = Some((Role::Primary, o));
                            }
                            expected_changes.push(RoleChange {
                                session: id(oldest),
                                role: Role::Primary,
                            });
                        }
                    }
                    let out = r.unwrap_or_else(|e| panic!("logout after {trace:?}: {e}"));
                    assert_eq!(out.account, model.accounts[s]);
                    assert_eq!(out.role, role);
                    assert_eq!(out.changes, expected_changes, "logout after {trace:?}");
                    assert_eq!(out.last, rest.is_empty());
                }
            }
        }
    }
    // Nobody else's role moved.
    let after = actual_roles(m, n);
    for i in 0..n {
        let acting = matches!(op, Op::Login(s) | Op::Logout(s) if s == i);
        let told = expected_changes.iter().any(|c| c.session == id(i));
        if !acting && !told {
            assert_eq!(
                after[i], before[i],
                "session {i} disturbed by {op:?} after {trace:?}"
            );
        }
    }
    check_invariants(m, model, trace);
}

fn ops(n: usize) -> Vec<Op> {
    (0..n)
        .flat_map(|s| [Op::Login(s), Op::Write(s), Op::Switch(s), Op::Logout(s)])
        .collect()
}

/// Depth-first over all sequences of `ops` up to `depth`; returns the
/// number of sequences checked.
fn explore(
    m: &SessionManager,
    model: &Model,
    ops: &[Op],
    trace: &mut Vec<Op>,
    depth: usize,
) -> u64 {
    if depth == 0 {
        return 1;
    }
    let mut n = 1;
    for &op in ops {
        let mut m2 = m.clone();
        let mut model2 = model.clone();
        trace.push(op);
        step(&mut m2, &mut model2, op, trace);
        n += explore(&m2, &model2, ops, trace, depth - 1);
        trace.pop();
    }
    n
}

fn exhaustive(accounts: &[&'static str], depth: usize) -> u64 {
    let model = Model::new(accounts);
    let ops = ops(accounts.len());
    explore(&SessionManager::new(), &model, &ops, &mut Vec::new(), depth)
}

#[test]
fn all_sequences_two_sessions_one_account() {
    let n = exhaustive(&["u"], 8) + exhaustive(&["u", "u"], 6);
    // 8 operations, sequences of length 0..=6.
    assert!(n > 8u64.pow(6), "{n} sequences");
}

#[test]
fn all_sequences_three_sessions_one_account() {
    let n = exhaustive(&["u", "u", "u"], 5);
    assert!(n > 12u64.pow(5), "{n} sequences");
}

#[test]
fn all_sequences_two_accounts() {
    // Two sessions of u and one of v: operations on one account must not
    // touch the other (checked by the role comparison in `step`).
    let n = exhaustive(&["u", "u", "v"], 5) + exhaustive(&["u", "v", "v", "u"], 3);
    assert!(n > 12u64.pow(5), "{n} sequences");
}

/// Every interleaving of per-session scripts (each session logs in,
/// writes, sends the switching signal, writes again, logs out): the "all
/// orders" of the issue, without the noise of operations on sessions that
/// are not logged in.
fn interleavings(
    m: &SessionManager,
    model: &Model,
    scripts: &[Vec<Op>],
    pos: &mut Vec<usize>,
    trace: &mut Vec<Op>,
) -> u64 {
    let mut done = true;
    let mut n = 0;
    for s in 0..scripts.len() {
        if pos[s] < scripts[s].len() {
            done = false;
            let op = scripts[s][pos[s]];
            let mut m2 = m.clone();
            let mut model2 = model.clone();
            trace.push(op);
            step(&mut m2, &mut model2, op, trace);
            pos[s] += 1;
            n += interleavings(&m2, &model2, scripts, pos, trace);
            pos[s] -= 1;
            trace.pop();
        }
    }
    if done {
        // Everyone logged out: nothing left.
        assert!(m.is_empty());
        1
    } else {
        n
    }
}

/// Two sessions: log in, write, switch, write, log out. Three sessions:
/// log in, switch, write, log out (the write shows whether the switch
/// took; writes before it are the other sessions' writes interleaved).
fn script(s: usize, long: bool) -> Vec<Op> {
    if long {
        vec![
            Op::Login(s),
            Op::Write(s),
            Op::Switch(s),
            Op::Write(s),
            Op::Logout(s),
        ]
    } else {
        vec![Op::Login(s), Op::Switch(s), Op::Write(s), Op::Logout(s)]
    }
}

#[test]
fn all_interleavings_of_session_scripts() {
    for accounts in [
        vec!["u", "u"],
        vec!["u", "v"],
        vec!["u", "u", "u"],
        vec!["u", "v", "u"],
    ] {
        let long = accounts.len() == 2;
        let scripts: Vec<Vec<Op>> = (0..accounts.len()).map(|s| script(s, long)).collect();
        let model = Model::new(&accounts);
        let n = interleavings(
            &SessionManager::new(),
            &model,
            &scripts,
            &mut vec![0; accounts.len()],
            &mut Vec::new(),
        );
        // Multinomial: 10! / (5!)^2 and 12! / (4!)^3.
        let expected = if long { 252 } else { 34_650 };
        assert_eq!(n, expected, "{accounts:?}");
    }
}

#[test]
fn examples() {
    let mut m = SessionManager::new();
    assert_eq!(m.login("alice", 1), Ok(Role::Primary));
    assert_eq!(m.login("alice", 2), Ok(Role::Secondary));
    assert_eq!(m.login("bob", 3), Ok(Role::Primary));
    assert_eq!(m.login("bob", 1), Err(SessionError::AlreadyLoggedIn(1)));
    assert_eq!(m.write(2), Ok(WriteVerdict::Drop(DropReason::Secondary)));
    assert_eq!(m.write(1), Ok(WriteVerdict::Forward));
    assert_eq!(m.write(9), Err(SessionError::UnknownSession(9)));
    assert_eq!(m.dropped("alice"), 1);
    assert_eq!(
        m.switch(2),
        Ok(vec![
            RoleChange {
                session: 2,
                role: Role::Primary
            },
            RoleChange {
                session: 1,
                role: Role::Secondary
            },
        ])
    );
    assert_eq!(m.write(1), Ok(WriteVerdict::Drop(DropReason::Secondary)));
    let out = m.logout(1).expect("logged in");
    assert_eq!(
        (out.role, out.last, out.changes.len()),
        (Role::Secondary, false, 0)
    );
    assert_eq!(m.role(2), Some(Role::Primary));
    assert_eq!(m.role(3), Some(Role::Primary));
    let out = m.logout(2).expect("logged in");
    assert!(out.last);
    assert!(!m.is_logged_in("alice"));
    assert!(m.logout(2).is_err());
}
