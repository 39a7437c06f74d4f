//! `app repo-server`: the cloud repository over HTTP.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ctlhttp::metrics::{Kind, NO_LABELS};
use tracing::{info, warn};

use super::*;

/// Command-line arguments of `app repo-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoServerArgs {
    /// HTTP listen address.
    #[arg(long, default_value = "0.0.0.0:7310")]
    pub listen: SocketAddr,
    /// Repository directory (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Create the snake package with a deterministic image of this size at
    /// start if missing (e.g. 64MiB); 0 publishes nothing.
    #[arg(long, default_value = "32MiB", value_parser = parse_size_arg)]
    pub publish_snake: u64,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

#[derive(Default)]
struct ServerMetrics {
    requests: AtomicU64,
    downloads: AtomicU64,
    downloads_complete: AtomicU64,
    bytes_sent: AtomicU64,
    not_found: AtomicU64,
}

struct ServerState {
    repo: Repository,
    m: ServerMetrics,
}

/// A JSON error response `{"error": ...}`.
struct JsonError(StatusCode, String);

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// A running repository server.
pub struct RepoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The repository it serves.
    pub repo: Repository,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RepoServer {
    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Opens the repository, publishes the snake if asked, binds and serves on
/// the current runtime.
pub async fn start(args: &RepoServerArgs) -> Result<RepoServer, RepoError> {
    let repo = Repository::open(&args.dir)?;
    if args.publish_snake > 0 {
        let r = repo.clone();
        let size = args.publish_snake;
        let (info, created) = tokio::task::spawn_blocking(move || r.publish_snake(size))
            .await
            .map_err(|e| RepoError::Io {
                path: args.dir.clone(),
                source: io::Error::other(e.to_string()),
            })??;
        info!(
            size = info.size,
            sha256 = %info.sha256,
            created,
            "snake package ready"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| RepoError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RepoError::Bind {
        addr: args.listen,
        source,
    })?;
    let state = Arc::new(ServerState {
        repo: repo.clone(),
        m: ServerMetrics::default(),
    });
    let router = Router::new()
        .route("/apps", get(list_apps))
        .route("/apps/{name}", get(get_app))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async {
            JsonError(
                StatusCode::NOT_FOUND,
                "no such endpoint (see GET /apps, /apps/{name}, /metrics)".into(),
            )
        })
        .with_state(state);
    let (tx, task) = serve_until_stopped(listener, router, "repository server");
    Ok(RepoServer {
        addr,
        repo,
        stop: Some(tx),
        task,
    })
}

async fn list_apps(State(s): State<Arc<ServerState>>) -> Result<Json<Vec<AppInfo>>, JsonError> {
    s.m.requests.fetch_add(1, Ordering::Relaxed);
    let repo = s.repo.clone();
    tokio::task::spawn_blocking(move || repo.list())
        .await
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn get_app(
    State(s): State<Arc<ServerState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, JsonError> {
    s.m.requests.fetch_add(1, Ordering::Relaxed);
    let not_found = |s: &ServerState, name: &str| {
        s.m.not_found.fetch_add(1, Ordering::Relaxed);
        JsonError(
            StatusCode::NOT_FOUND,
            format!("application {name:?} is not in this repository"),
        )
    };
    if check_name(&name).is_err() {
        return Err(not_found(&s, &name));
    }
    let installed = s
        .repo
        .get(&name)
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| not_found(&s, &name))?;
    let file = File::open(&installed.package).map_err(|e| {
        JsonError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", installed.package.display()),
        )
    })?;
    let len = file
        .metadata()
        .map_err(|e| JsonError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .len();
    s.m.downloads.fetch_add(1, Ordering::Relaxed);
    // A reader thread feeds a small channel; the body stream drains it. The
    // thread ends when the client goes away (send fails) or at end of file.
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(4);
    let st = s.clone();
    std::thread::spawn(move || {
        let mut file = file;
        let mut sent = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    buf.truncate(k);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                    sent += k as u64;
                    st.m.bytes_sent.fetch_add(k as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if sent == len {
            st.m.downloads_complete.fetch_add(1, Ordering::Relaxed);
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = axum::body::Body::from_stream(stream);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

async fn metrics(State(s): State<Arc<ServerState>>) -> Response {
    let apps = s.repo.list().map(|l| l.len()).unwrap_or(0);
    let m = &s.m;
    let rows: [(&str, Kind, &str, u64); 6] = [
        (
            "repo_requests_total",
            Kind::Counter,
            "HTTP requests on /apps*",
            m.requests.load(Ordering::Relaxed),
        ),
        (
            "repo_downloads_total",
            Kind::Counter,
            "package downloads started",
            m.downloads.load(Ordering::Relaxed),
        ),
        (
            "repo_downloads_complete_total",
            Kind::Counter,
            "package downloads whose last byte was handed to the connection",
            m.downloads_complete.load(Ordering::Relaxed),
        ),
        (
            "repo_bytes_sent_total",
            Kind::Counter,
            "package bytes handed to connections",
            m.bytes_sent.load(Ordering::Relaxed),
        ),
        (
            "repo_not_found_total",
            Kind::Counter,
            "requests for an application not in the repository",
            m.not_found.load(Ordering::Relaxed),
        ),
        (
            "repo_apps",
            Kind::Gauge,
            "applications in the repository",
            apps as u64,
        ),
    ];
    ctlhttp::metrics::response(ctlhttp::metrics::encode_fn(move |f| {
        for (name, kind, help, v) in rows {
            f.single(kind, name, help, NO_LABELS, v)?;
        }
        Ok(())
    }))
}

/// Serves `router` on `listener` in a task until the sender is sent to or
/// dropped (then in-flight requests finish); a server error is logged as
/// a warning, `what` naming the server. The API servers of the repository
/// and of the agent.
pub(crate) fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    router: Router,
    what: &'static str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = r {
            warn!("{what} stopped: {e}");
        }
    });
    (tx, task)
}

/// Sets up logging for a daemon subcommand (stderr, `RUST_LOG`, default info).
pub(crate) fn init_tracing() {
    ctlhttp::daemon::init_logs("info");
}

/// The runtime of a daemon subcommand (two workers); on failure says so
/// as `app CMD: ...` and gives the exit code.
pub(crate) fn daemon_runtime(cmd: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("app {cmd}: runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Runs `app repo-server`: prints `listening on ADDR` on stdout once
/// serving, stops on SIGTERM/SIGINT.
pub fn main(args: RepoServerArgs) -> ExitCode {
    init_tracing();
    let rt = match daemon_runtime("repo-server") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let server = match start(&args).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("app repo-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {}", server.addr);
        let _ = io::stdout().flush();
        info!(addr = %server.addr, dir = %server.repo.dir().display(), "repository server up");
        ctlhttp::daemon::shutdown_signal().await;
        info!("stopping");
        server.stop().await;
        ExitCode::SUCCESS
    })
}
