//! `smf`: the SMF daemon and a client of its HTTP API.

use clap::{Parser, Subcommand};
use ctlhttp::daemon::CliError;
use smf_lite::client::SmfClient;
use smf_lite::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use wire::ctl::{GnbRef, SessionRequest};

const EXAMPLES: &str = "\
Examples:
  smf check-config smf-lite/examples/smf.toml
  smf run --config smf.toml                      # RUST_LOG=debug for more
  smf session create --ue imsi-001010000000001 --psi 1 --dnn edge1 \\
      --gnb gnb1 --gnb-n2 10.100.0.5:7002
  smf session create --ue imsi-001010000000001 --psi 2 --dnn edge2 --upf upf2
  smf session list
  smf session release --ue imsi-001010000000001 --psi 1
  smf upfs --api 127.0.0.1:7000";

#[derive(Parser)]
#[command(name = "smf", version, about = "Minimal 5G SMF: PDU sessions over PFCP (N4) and N2-lite", after_help = EXAMPLES)]
enum Cmd {
    /// Run the daemon.
    Run {
        /// Configuration file (TOML; see smf-lite/examples/smf.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and print it with defaults filled in.
    CheckConfig { file: PathBuf },
    /// Create, list, show or release PDU sessions.
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
        /// SMF API address.
        #[arg(long, global = true, default_value = "127.0.0.1:7000", env = "SMF_API")]
        api: String,
    },
    /// Show the UPFs, their PFCP association and Recovery Time Stamp.
    Upfs {
        #[arg(long, default_value = "127.0.0.1:7000", env = "SMF_API")]
        api: String,
    },
    /// Print the SMF's Prometheus metrics.
    Metrics {
        #[arg(long, default_value = "127.0.0.1:7000", env = "SMF_API")]
        api: String,
    },
}

#[derive(Subcommand)]
enum SessionCmd {
    /// Create a session (prints its SessionInfo as JSON).
    Create {
        #[arg(long)]
        ue: String,
        /// PDU session id, 1..=15.
        #[arg(long)]
        psi: u8,
        #[arg(long)]
        dnn: String,
        /// Use this UPF instead of selecting by DNN.
        #[arg(long)]
        upf: Option<String>,
        /// gNB name (default: the SMF's default_gnb).
        #[arg(long, requires = "gnb_n2")]
        gnb: Option<String>,
        /// gNB N2-lite API, IP:PORT.
        #[arg(long, requires = "gnb")]
        gnb_n2: Option<String>,
    },
    /// List sessions (JSON).
    List,
    /// Show one session (JSON).
    Get {
        #[arg(long)]
        ue: String,
        #[arg(long)]
        psi: u8,
    },
    /// Release a session.
    Release {
        #[arg(long)]
        ue: String,
        #[arg(long)]
        psi: u8,
    },
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("smf: {e}"),
    }
}

fn main() -> ExitCode {
    ctlhttp::daemon::init_logs("info");
    let r: Result<(), CliError> = match Cmd::parse() {
        Cmd::CheckConfig { file } => Config::load(&file)
            .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))
            .and_then(|c| toml::to_string_pretty(&c).map_err(|e| e.to_string().into()))
            .map(|s| print!("{s}")),
        Cmd::Run { config } => match Config::load(&config) {
            Err(e) => Err(CliError::Usage(format!("{}: {e}", config.display()))),
            // One thread for the control plane: no second worker to wake on each
            // request (a session setup crosses this daemon several times).
            Ok(c) => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Err(e) => Err(e.to_string().into()),
                Ok(rt) => rt
                    .block_on(smf_lite::daemon::run(c))
                    .map_err(|e| e.to_string().into()),
            },
        },
        Cmd::Upfs { api } => SmfClient::new(&api)
            .upfs()
            .map(|v| print_json(&v))
            .map_err(|e| e.to_string().into()),
        Cmd::Metrics { api } => SmfClient::new(&api)
            .metrics()
            .map(|t| print!("{t}"))
            .map_err(|e| e.to_string().into()),
        Cmd::Session { cmd, api } => {
            let c = SmfClient::new(&api);
            match cmd {
                SessionCmd::Create {
                    ue,
                    psi,
                    dnn,
                    upf,
                    gnb,
                    gnb_n2,
                } => {
                    let req = SessionRequest {
                        ue_id: ue,
                        pdu_session_id: psi,
                        dnn,
                        upf,
                        gnb: gnb
                            .zip(gnb_n2)
                            .map(|(name, n2_api)| GnbRef { name, n2_api }),
                    };
                    c.create(&req).map(|i| print_json(&i))
                }
                SessionCmd::List => c.list().map(|v| print_json(&v)),
                SessionCmd::Get { ue, psi } => c.get(&ue, psi).map(|v| print_json(&v)),
                SessionCmd::Release { ue, psi } => c.release(&ue, psi),
            }
            .map_err(|e| e.to_string().into())
        }
    };
    ctlhttp::daemon::exit("smf", r)
}
