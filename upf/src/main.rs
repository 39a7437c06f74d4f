//! `upf`: run the User Plane Function, check its configuration, read its
//! counters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use ctlhttp::daemon::{init_logs, CliError};
use upf::config::Config;

#[derive(Parser)]
#[command(
    name = "upf",
    version,
    about = "GTP-U User Plane Function controlled over PFCP (N4)"
)]
enum Cmd {
    /// Run the daemon until SIGINT/SIGTERM.
    Run {
        /// TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the counters of a running UPF (its metrics endpoint).
    Stats {
        /// Metrics endpoint address.
        #[arg(long, default_value = "127.0.0.1:9100")]
        addr: SocketAddr,
        /// Print the Prometheus text instead of the table.
        #[arg(long)]
        prometheus: bool,
    },
    /// Parse and validate a configuration file, print it with defaults.
    CheckConfig {
        /// TOML configuration file.
        file: PathBuf,
    },
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A configuration that cannot be read or is invalid: exit status 2.
fn load(path: &std::path::Path) -> Result<Config, CliError> {
    Config::load(path).map_err(CliError::usage)
}

fn run(cmd: Cmd) -> Result<(), CliError> {
    match cmd {
        Cmd::Run { config } => {
            let cfg = load(&config)?;
            init_logs(&cfg.log_level);
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe.
            unsafe {
                libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
                libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
            }
            let upf = upf::daemon::Upf::start(cfg).map_err(|e| CliError::Runtime(e.to_string()))?;
            while !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            tracing::info!("stopping");
            upf.stop();
            Ok(())
        }
        Cmd::Stats { addr, prometheus } => {
            let path = if prometheus { "/metrics" } else { "/stats" };
            let text = upf::metrics::fetch(addr, path)
                .map_err(|e| CliError::Runtime(format!("metrics endpoint {addr}: {e}")))?;
            print!("{text}");
            Ok(())
        }
        Cmd::CheckConfig { file } => {
            let cfg = load(&file)?;
            println!("{cfg:#?}");
            Ok(())
        }
    }
}

/// Exit status 2 for bad arguments or configuration, 1 for a failure
/// while running (ctlhttp::daemon::exit, as every daemon of the project).
fn main() -> ExitCode {
    ctlhttp::daemon::exit("upf", run(Cmd::parse()))
}
