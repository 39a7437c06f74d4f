//! `upf`: run the User Plane Function, check its configuration, read its
//! counters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use upf::config::Config;

#[derive(Parser)]
#[command(
    name = "upf",
    version,
    about = "GTP-U User Plane Function controlled over PFCP (N4)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
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

fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run { config } => {
            let cfg = Config::load(&config)?;
            init_logs(&cfg.log_level);
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe.
            unsafe {
                libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
                libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
            }
            let upf = upf::daemon::Upf::start(cfg)?;
            while !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            tracing::info!("stopping");
            upf.stop();
            Ok(())
        }
        Cmd::Stats { addr, prometheus } => {
            let path = if prometheus { "/metrics" } else { "/stats" };
            print!("{}", upf::metrics::fetch(addr, path)?);
            Ok(())
        }
        Cmd::CheckConfig { file } => {
            let cfg = Config::load(&file)?;
            println!("{cfg:#?}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upf: {e:#}");
            ExitCode::from(1)
        }
    }
}
