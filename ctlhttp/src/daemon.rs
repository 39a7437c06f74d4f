//! Daemon plumbing shared by the project's binaries: their logs, the
//! runtime `gnb` and `ue` run on, the signal they stop on, and their
//! configuration's loader and error.

use std::fmt;
use std::future::Future;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use serde::de::DeserializeOwned;

/// What a binary's command failed with, and so its exit status: the one
/// mapping of the daemons' CLIs (0 ok, 1 runtime, 2 usage or configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Bad arguments or configuration: exit status 2.
    Usage(String),
    /// Failed while running: exit status 1.
    Runtime(String),
}

impl CliError {
    /// A usage or configuration error from any error.
    pub fn usage(e: impl fmt::Display) -> CliError {
        CliError::Usage(e.to_string())
    }

    /// The exit status it maps to.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Runtime(m) => f.write_str(m),
        }
    }
}

impl From<String> for CliError {
    fn from(m: String) -> CliError {
        CliError::Runtime(m)
    }
}

/// A command's result as the process's exit status; the error printed to
/// stderr as `prog: message`.
pub fn exit(prog: &str, r: Result<(), CliError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(e.code())
        }
    }
}

/// The one log setup of the daemons and CLIs: to stderr, filtered by
/// `RUST_LOG` (or `default`, e.g. `"info"`, when it is unset or does not
/// parse), colours only when stderr is a terminal (the testbed writes
/// daemons' logs to files). A second call changes nothing.
pub fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The configuration could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML does not parse or a field has the wrong type (the message
    /// names the field and the line).
    #[error("{path}: {message}")]
    Parse {
        /// File path (or `<string>`).
        path: String,
        /// toml's message, which names the field.
        message: String,
    },
    /// A field has a value that parses but cannot be used.
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Parses a daemon's TOML configuration into `T` (the caller validates the
/// values); `path` names the text in the error.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Reads and parses a daemon's TOML configuration file (see [`parse_toml`]).
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: p.clone(),
        source,
    })?;
    parse_toml(&text, &p)
}

/// Runs a daemon (`gnb run`, `ue run`) to its end on a one-thread tokio
/// runtime: each request is handled where its socket is polled, without
/// waking a second worker (a session setup crosses these daemons several
/// times; measured with `testbed bench sessions`). The gNB's data path has
/// threads of its own; the kernel carries the UE's traffic.
pub fn block_on_control_plane<F: Future>(daemon: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    Ok(rt.block_on(daemon))
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: the shutdown future the `gnb` and
/// `ue` daemons run until.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
