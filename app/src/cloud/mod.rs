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

mod state;
mod stats;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, info, warn};

use crate::game::World;
use crate::session::SessionManager;
use crate::sync::{ClientMsg, FrameDecoder, ServerMsg};

use state::{Conn, Core, Counters, Flow, Shared};
use stats::metrics_text;
pub use stats::{AccountStats, SessionStats, Stats};

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
    ctlhttp::blocking::Client::new(std::time::Duration::from_secs(10))
        .get_json(&format!("http://{metrics_addr}/stats"))
        .map_err(|reason| CloudError::Stats {
            addr: metrics_addr,
            reason,
        })
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
                    ctlhttp::metrics::response(metrics_text(&st))
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
}
