//! `app cloud`: the cloud logic server.
//!
//! Holds the authoritative [`World`], ticks it at `--tick-hz`, and speaks
//! the [`crate::sync`] protocol with application instances. Every session
//! goes through the CSM [`SessionManager`] (Algorithm 1): only the
//! primary's writes become `Turn` events, each `(account, seq)` at most
//! once (inputs resent by a second edge across a switch are recognized and
//! counted as duplicates); writes from secondaries are dropped and counted.
//! Every session (of every account: all players share the world) gets a
//! snapshot at login and then every tick's [`Delta`].
//!
//! HTTP on `--metrics`: `GET /metrics` (Prometheus text) and `GET /stats`
//! (JSON, [`Stats`]).
//!
//! Tests and tools run it in-process with [`spawn`] (own thread and
//! runtime) or [`serve`] (inside a tokio runtime).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, info, warn};

use crate::game::{Delta, Event, World};
use crate::session::{Role, SessionError, SessionId, SessionManager, WriteVerdict};
use crate::sync::{encode, ClientMsg, FrameDecoder, LoginOk, ServerMsg};

/// Command-line arguments of `app cloud`.
#[derive(Debug, Clone, clap::Args)]
pub struct CloudArgs {
    /// Address of the sync protocol (TCP).
    #[arg(long, default_value = "0.0.0.0:7300")]
    pub listen: SocketAddr,
    /// Address of the HTTP metrics and stats endpoint.
    #[arg(long, default_value = "0.0.0.0:7301")]
    pub metrics: SocketAddr,
    /// World ticks per second.
    #[arg(long, default_value_t = 20.0)]
    pub tick_hz: f64,
    /// Grid columns.
    #[arg(long, default_value_t = 64)]
    pub width: u16,
    /// Grid rows.
    #[arg(long, default_value_t = 36)]
    pub height: u16,
    /// Seed of the world's random generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// An account allowed to log in, NAME:TOKEN (repeatable).
    #[arg(long = "account", value_name = "NAME:TOKEN")]
    pub account: Vec<String>,
    /// A file of accounts: a JSON or TOML map from name to token.
    #[arg(long = "accounts", value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    /// Sync connections open at once; one more is closed at once (and
    /// logged, at most once a second with the count suppressed).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNS)]
    pub max_conns: usize,
}

/// Default bound of the sync connections open at once.
pub const DEFAULT_MAX_CONNS: usize = 256;

/// Errors of the logic server.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Socket error (bind, accept).
    #[error("logic server I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An `--account` argument that is not NAME:TOKEN.
    #[error("bad --account {0:?}: expected NAME:TOKEN")]
    AccountArg(String),
    /// An unreadable accounts file.
    #[error("accounts file {path}: {reason}")]
    AccountsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tick rate that is not a positive number.
    #[error("tick rate {0} Hz is not a positive number")]
    TickRate(f64),
    /// `--max-conns 0`.
    #[error("bad --max-conns 0: at least one sync connection must be allowed")]
    MaxConns,
    /// `GET /stats` failed.
    #[error("stats from {addr}: {reason}")]
    Stats {
        /// The metrics address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// `GET http://{metrics_addr}/stats` (blocking), e.g. for the testbed's
/// exactly-once check.
pub fn fetch_stats(metrics_addr: SocketAddr) -> Result<Stats, CloudError> {
    let err = |e: ureq::Error| CloudError::Stats {
        addr: metrics_addr,
        reason: e.to_string(),
    };
    ureq::get(&format!("http://{metrics_addr}/stats"))
        .call()
        .map_err(err)?
        .body_mut()
        .read_json()
        .map_err(err)
}

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// World ticks per second.
    pub tick_hz: f64,
    /// Grid columns.
    pub width: u16,
    /// Grid rows.
    pub height: u16,
    /// World seed.
    pub seed: u64,
    /// Account name -> token.
    pub accounts: BTreeMap<String, String>,
    /// Messages queued per session before it counts as too slow and is
    /// disconnected (it could not keep its world in step otherwise).
    pub queue: usize,
    /// Sync connections open at once (at least 1).
    pub max_conns: usize,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            tick_hz: 20.0,
            width: 64,
            height: 36,
            seed: 1,
            accounts: BTreeMap::new(),
            queue: 4096,
            max_conns: DEFAULT_MAX_CONNS,
        }
    }
}

impl CloudConfig {
    /// The configuration the arguments describe (reads the accounts file).
    pub fn from_args(a: &CloudArgs) -> Result<CloudConfig, CloudError> {
        if !(a.tick_hz.is_finite() && a.tick_hz > 0.0) {
            return Err(CloudError::TickRate(a.tick_hz));
        }
        if a.max_conns == 0 {
            return Err(CloudError::MaxConns);
        }
        let mut accounts = match &a.accounts {
            Some(p) => read_accounts(p)?,
            None => BTreeMap::new(),
        };
        for s in &a.account {
            let (n, t) = s
                .split_once(':')
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| CloudError::AccountArg(s.clone()))?;
            accounts.insert(n.to_string(), t.to_string());
        }
        Ok(CloudConfig {
            tick_hz: a.tick_hz,
            width: a.width,
            height: a.height,
            seed: a.seed,
            accounts,
            max_conns: a.max_conns,
            ..CloudConfig::default()
        })
    }
}

/// Reads a JSON or TOML map of account name -> token.
pub fn read_accounts(path: &Path) -> Result<BTreeMap<String, String>, CloudError> {
    let err = |reason: String| CloudError::AccountsFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    match serde_json::from_str(&text) {
        Ok(m) => Ok(m),
        Err(je) => {
            toml::from_str(&text).map_err(|te| err(format!("neither JSON ({je}) nor TOML ({te})")))
        }
    }
}

/// One session in [`AccountStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Session number.
    pub session: SessionId,
    /// Its role.
    pub role: Role,
    /// The instance name it gave at login.
    pub instance: String,
    /// Peer address.
    pub peer: String,
}

/// Per-account figures in [`Stats`] (kept after the account logs out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStats {
    /// Sessions logged in now, in login order.
    pub sessions: Vec<SessionStats>,
    /// Inputs applied (each `(account, seq)` once).
    pub inputs_applied: u64,
    /// Writes from the primary whose seq was already applied.
    pub duplicates: u64,
    /// Writes dropped because they came from a secondary.
    pub writes_dropped: u64,
    /// Writes applied while the session that sent them was not its
    /// account's primary (checked when each is applied; must stay 0).
    #[serde(default)]
    pub secondary_writes_applied: u64,
    /// Highest input seq applied.
    pub last_seq: u64,
    /// Score of the player's snake, if it is in the world.
    pub score: Option<u32>,
}

/// `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The world's tick.
    pub tick: u64,
    /// Sessions logged in.
    pub sessions: usize,
    /// Connections open (logged in or not).
    pub connections: usize,
    /// Ticks run.
    pub ticks: u64,
    /// Inputs applied.
    pub inputs_applied: u64,
    /// Duplicate inputs (not applied again).
    pub duplicates: u64,
    /// Writes dropped, by reason ("secondary", "not_logged_in", "invalid_seq").
    pub writes_dropped: BTreeMap<String, u64>,
    /// Writes applied from a session that was not its account's primary
    /// (must stay 0).
    #[serde(default)]
    pub secondary_writes_applied: u64,
    /// Malformed or oversized frames (each closed its connection).
    pub bad_frames: u64,
    /// Logins accepted.
    pub logins_ok: u64,
    /// Logins refused.
    pub logins_refused: u64,
    /// Sessions disconnected because they could not keep up.
    pub slow_consumers: u64,
    /// Per account.
    pub accounts: BTreeMap<String, AccountStats>,
}

/// Applied input seqs of one account: all of `..=floor` plus `above`.
#[derive(Debug, Default)]
struct SeqSet {
    floor: u64,
    above: BTreeSet<u64>,
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
enum SeqVerdict {
    /// Not seen before: apply it.
    Fresh,
    /// Seen (or given up on): drop it.
    Duplicate,
    /// Too far ahead of the inputs applied: drop it, change nothing.
    OutOfWindow,
}

impl SeqSet {
    /// Inserts `seq` unless it was seen or lies outside the window.
    fn insert(&mut self, seq: u64) -> SeqVerdict {
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
struct AccountState {
    seen: SeqSet,
    stats: AccountStats,
}

struct Conn {
    tx: mpsc::Sender<Arc<Vec<u8>>>,
    kill: Arc<Notify>,
    account: Option<String>,
    instance: String,
    peer: SocketAddr,
}

#[derive(Default)]
struct Counters {
    ticks: u64,
    inputs_applied: u64,
    duplicates: u64,
    dropped_secondary: u64,
    secondary_applied: u64,
    dropped_not_logged_in: u64,
    dropped_invalid_seq: u64,
    bad_frames: u64,
    logins_ok: u64,
    logins_refused: u64,
    slow_consumers: u64,
}

struct Core {
    world: World,
    pending: Vec<Event>,
    mgr: SessionManager,
    conns: BTreeMap<SessionId, Conn>,
    accounts: BTreeMap<String, AccountState>,
    counters: Counters,
    next_id: SessionId,
}

/// What the connection does after a message.
enum Flow {
    Continue,
    Close,
}

struct Shared {
    config: CloudConfig,
    core: Mutex<Core>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves consistent-enough state for
        // counters; keep serving rather than cascading the panic.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Core {
    /// Queues a message for one connection; a full queue marks it slow.
    fn send(&mut self, id: SessionId, msg: &ServerMsg) {
        let Ok(frame) = encode(msg) else {
            warn!(session = id, "message too large to send");
            return;
        };
        self.send_frame(id, Arc::new(frame));
    }

    fn send_frame(&mut self, id: SessionId, frame: Arc<Vec<u8>>) {
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

    fn tell_roles(&mut self, changes: &[crate::session::RoleChange]) {
        for ch in changes {
            info!(session = ch.session, role = ?ch.role, "role changed");
            self.send(ch.session, &ServerMsg::Role { role: ch.role });
        }
    }

    /// Removes a connection, logging its session out. Idempotent.
    fn disconnect(&mut self, id: SessionId) {
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

    fn handle(
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

    fn tick(&mut self) {
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

    fn stats(&self) -> Stats {
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

fn metrics_text(s: &Stats) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let mut g = |name: &str, help: &str, kind: &str, lines: Vec<(String, u64)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    g(
        "app_cloud_world_tick",
        "The world's tick.",
        "gauge",
        one(s.tick),
    );
    g(
        "app_cloud_sessions",
        "Sessions logged in.",
        "gauge",
        one(s.sessions as u64),
    );
    g(
        "app_cloud_connections",
        "Connections open.",
        "gauge",
        one(s.connections as u64),
    );
    g(
        "app_cloud_ticks_total",
        "Ticks run.",
        "counter",
        one(s.ticks),
    );
    g(
        "app_cloud_inputs_applied_total",
        "Inputs applied, each (account, seq) once.",
        "counter",
        one(s.inputs_applied),
    );
    g(
        "app_cloud_input_duplicates_total",
        "Inputs already applied, not applied again.",
        "counter",
        one(s.duplicates),
    );
    g(
        "app_cloud_writes_dropped_total",
        "Writes dropped, by reason.",
        "counter",
        s.writes_dropped
            .iter()
            .map(|(r, v)| (format!("{{reason=\"{r}\"}}"), *v))
            .collect(),
    );
    g(
        "app_cloud_secondary_writes_applied_total",
        "Writes applied from a session that was not its account's primary.",
        "counter",
        one(s.secondary_writes_applied),
    );
    g(
        "app_cloud_bad_frames_total",
        "Malformed or oversized frames.",
        "counter",
        one(s.bad_frames),
    );
    g(
        "app_cloud_logins_total",
        "Logins, by result.",
        "counter",
        vec![
            ("{result=\"ok\"}".to_string(), s.logins_ok),
            ("{result=\"refused\"}".to_string(), s.logins_refused),
        ],
    );
    g(
        "app_cloud_slow_consumers_total",
        "Sessions disconnected for not keeping up.",
        "counter",
        one(s.slow_consumers),
    );
    g(
        "app_cloud_account_inputs_applied_total",
        "Inputs applied per account.",
        "counter",
        s.accounts
            .iter()
            .map(|(a, st)| {
                (
                    format!("{{account=\"{}\"}}", a.escape_default()),
                    st.inputs_applied,
                )
            })
            .collect(),
    );
    o
}

async fn write_loop(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Arc<Vec<u8>>>) {
    while let Some(f) = rx.recv().await {
        if wr.write_all(&f).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn handle_conn(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(shared.config.queue.max(1));
    let kill = Arc::new(Notify::new());
    let id = {
        let mut core = shared.lock();
        core.next_id += 1;
        let id = core.next_id;
        core.conns.insert(
            id,
            Conn {
                tx,
                kill: kill.clone(),
                account: None,
                instance: String::new(),
                peer,
            },
        );
        id
    };
    debug!(session = id, %peer, "connection");
    let writer = tokio::spawn(write_loop(wr, rx));
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = tokio::select! {
            _ = kill.notified() => break 'conn,
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => n,
            },
        };
        dec.push(&buf[..n]);
        loop {
            match dec.next_msg::<ClientMsg>() {
                Ok(None) => break,
                Ok(Some(msg)) => {
                    let mut core = shared.lock();
                    if let Flow::Close = core.handle(id, msg, &shared.config.accounts) {
                        break 'conn;
                    }
                }
                Err(e) => {
                    let mut core = shared.lock();
                    core.counters.bad_frames += 1;
                    warn!(session = id, %peer, "bad frame, closing the connection: {e}");
                    core.send(
                        id,
                        &ServerMsg::Error {
                            message: format!("bad frame: {e}"),
                        },
                    );
                    break 'conn;
                }
            }
        }
    }
    shared.lock().disconnect(id);
    let _ = writer.await;
}

async fn tick_loop(shared: Arc<Shared>) {
    let period = Duration::from_secs_f64(1.0 / shared.config.tick_hz);
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        shared.lock().tick();
    }
}

/// Runs the logic server on the given listeners until `shutdown`
/// completes. Connections are closed when it returns.
pub async fn serve<F>(
    config: CloudConfig,
    sync: TcpListener,
    metrics: TcpListener,
    shutdown: F,
) -> Result<(), CloudError>
where
    F: Future<Output = ()> + Send,
{
    if !(config.tick_hz.is_finite() && config.tick_hz > 0.0) {
        return Err(CloudError::TickRate(config.tick_hz));
    }
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            world: World::new(config.width, config.height, config.seed),
            pending: Vec::new(),
            mgr: SessionManager::new(),
            conns: BTreeMap::new(),
            accounts: BTreeMap::new(),
            counters: Counters::default(),
            next_id: 0,
        }),
        config,
    });
    info!(
        sync = %sync.local_addr()?,
        metrics = %metrics.local_addr()?,
        tick_hz = shared.config.tick_hz,
        accounts = shared.config.accounts.len(),
        "logic server up"
    );
    if shared.config.accounts.is_empty() {
        warn!("no accounts configured: every login will be refused");
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(tick_loop(shared.clone()));
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(s): axum::extract::State<Arc<Shared>>| async move {
                    let st = s.lock().stats();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        metrics_text(&st),
                    )
                },
            ),
        )
        .route(
            "/stats",
            axum::routing::get(
                |axum::extract::State(s): axum::extract::State<Arc<Shared>>| async move {
                    axum::Json(s.lock().stats())
                },
            ),
        )
        .with_state(shared.clone());
    tasks.spawn(async move {
        if let Err(e) = axum::serve(metrics, app).await {
            warn!("metrics server: {e}");
        }
    });
    let mut conns = tokio::task::JoinSet::new();
    let mut limit = ConnLimit::new(shared.config.max_conns);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = sync.accept() => match r {
                Ok((stream, peer)) => {
                    while conns.try_join_next().is_some() {}
                    match limit.admit(conns.len(), std::time::Instant::now()) {
                        Admit::Accept => {
                            conns.spawn(handle_conn(shared.clone(), stream, peer));
                        }
                        Admit::Refuse { log } => {
                            drop(stream);
                            if let Some(suppressed) = log {
                                warn!(%peer, open = conns.len(), max = limit.max, suppressed,
                                      "sync connection refused: too many open ({suppressed} refusals not logged since the last line)");
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
        while conns.try_join_next().is_some() {}
    }
    info!("logic server stopping");
    conns.abort_all();
    tasks.abort_all();
    Ok(())
}

/// What to do with a new sync connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Accept,
    /// Close it; `log`: write a line now, with this many refusals that
    /// were not logged since the last one.
    Refuse {
        log: Option<u64>,
    },
}

/// The bound of the sync connections and its rate-limited log (at most a
/// line a second); no I/O, the clock comes in.
#[derive(Debug)]
struct ConnLimit {
    max: usize,
    refused: u64,
    suppressed: u64,
    last_log: Option<std::time::Instant>,
}

impl ConnLimit {
    fn new(max: usize) -> ConnLimit {
        ConnLimit {
            max: max.max(1),
            refused: 0,
            suppressed: 0,
            last_log: None,
        }
    }

    /// A connection arrives while `open` are open.
    fn admit(&mut self, open: usize, now: std::time::Instant) -> Admit {
        if open < self.max {
            return Admit::Accept;
        }
        self.refused += 1;
        let due = self
            .last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if !due {
            self.suppressed += 1;
            return Admit::Refuse { log: None };
        }
        self.last_log = Some(now);
        Admit::Refuse {
            log: Some(std::mem::take(&mut self.suppressed)),
        }
    }
}

/// A logic server running in its own thread; stops when dropped.
pub struct CloudHandle {
    /// The sync protocol's address.
    pub sync_addr: SocketAddr,
    /// The HTTP metrics/stats address.
    pub metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), CloudError>>>,
}

impl CloudHandle {
    /// Stops the server and waits for its thread.
    pub fn stop(mut self) -> Result<(), CloudError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), CloudError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(CloudError::Io(std::io::Error::other(
                "logic server thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for CloudHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Binds `sync_addr` and `metrics_addr` (port 0: ephemeral) and runs the
/// server in a new thread with its own tokio runtime.
pub fn spawn(
    config: CloudConfig,
    sync_addr: SocketAddr,
    metrics_addr: SocketAddr,
) -> Result<CloudHandle, CloudError> {
    let s = std::net::TcpListener::bind(sync_addr)?;
    let m = std::net::TcpListener::bind(metrics_addr)?;
    s.set_nonblocking(true)?;
    m.set_nonblocking(true)?;
    let (sync_addr, metrics_addr) = (s.local_addr()?, m.local_addr()?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("app-cloud".into())
        .spawn(move || {
            rt.block_on(async move {
                let s = TcpListener::from_std(s)?;
                let m = TcpListener::from_std(m)?;
                serve(config, s, m, async move {
                    let _ = stopped.await;
                })
                .await
            })
        })?;
    Ok(CloudHandle {
        sync_addr,
        metrics_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Runs the subcommand.
pub fn main(args: CloudArgs) -> ExitCode {
    ctlhttp::daemon::init_logs("info");
    let config = match CloudConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("app cloud: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match crate::repo::daemon_runtime("cloud") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let r = rt.block_on(async move {
        let s = TcpListener::bind(args.listen).await?;
        let m = TcpListener::bind(args.metrics).await?;
        serve(config, s, m, ctlhttp::daemon::shutdown_signal()).await
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("app cloud: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: CloudArgs,
    }

    #[test]
    fn args_and_accounts_files() {
        let dir = std::env::temp_dir().join(format!("app-cloud-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let json = dir.join("a.json");
        std::fs::write(&json, r#"{"alice": "t1", "bob": "t2"}"#).expect("write");
        let toml = dir.join("a.toml");
        std::fs::write(&toml, "alice = \"t1\"\ncarol = \"t3\"\n").expect("write");
        let bad = dir.join("bad");
        std::fs::write(&bad, "alice: [").expect("write");

        let cli = Cli::parse_from([
            "x",
            "--accounts",
            json.to_str().unwrap_or_default(),
            "--account",
            "bob:new:colon",
        ]);
        assert_eq!(
            cli.a.listen,
            "0.0.0.0:7300".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            cli.a.metrics,
            "0.0.0.0:7301".parse::<SocketAddr>().expect("addr")
        );
        let c = CloudConfig::from_args(&cli.a).expect("valid");
        assert_eq!((c.tick_hz, c.width, c.height), (20.0, 64, 36));
        assert_eq!(c.accounts["alice"], "t1");
        assert_eq!(
            c.accounts["bob"], "new:colon",
            "--account overrides the file"
        );

        let cli = Cli::parse_from(["x", "--accounts", toml.to_str().unwrap_or_default()]);
        let c = CloudConfig::from_args(&cli.a).expect("valid");
        assert_eq!(c.accounts.len(), 2);
        assert_eq!(c.accounts["carol"], "t3");

        let cli = Cli::parse_from(["x", "--accounts", bad.to_str().unwrap_or_default()]);
        assert!(matches!(
            CloudConfig::from_args(&cli.a),
            Err(CloudError::AccountsFile { .. })
        ));
        let cli = Cli::parse_from(["x", "--account", "nocolon"]);
        assert!(matches!(
            CloudConfig::from_args(&cli.a),
            Err(CloudError::AccountArg(_))
        ));
        let cli = Cli::parse_from(["x", "--tick-hz", "0"]);
        assert!(matches!(
            CloudConfig::from_args(&cli.a),
            Err(CloudError::TickRate(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn conn_limit_refuses_over_the_bound_and_logs_once_a_second() {
        let t0 = std::time::Instant::now();
        let mut l = ConnLimit::new(2);
        assert_eq!(l.admit(0, t0), Admit::Accept);
        assert_eq!(l.admit(1, t0), Admit::Accept);
        assert_eq!(l.admit(2, t0), Admit::Refuse { log: Some(0) });
        for _ in 0..5 {
            assert_eq!(
                l.admit(2, t0 + Duration::from_millis(500)),
                Admit::Refuse { log: None }
            );
        }
        assert_eq!(
            l.admit(3, t0 + Duration::from_secs(1)),
            Admit::Refuse { log: Some(5) },
            "the next line says how many were not logged"
        );
        assert_eq!(l.refused, 7);
        assert_eq!(l.admit(1, t0 + Duration::from_secs(1)), Admit::Accept);
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.a.max_conns, DEFAULT_MAX_CONNS);
        let cli = Cli::parse_from(["x", "--max-conns", "0"]);
        assert!(matches!(
            CloudConfig::from_args(&cli.a),
            Err(CloudError::MaxConns)
        ));
    }

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
