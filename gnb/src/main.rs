//! `gnb`: the gNB shim daemon and its CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ctlhttp::daemon::CliError;
use gnb::tunnels::TunnelView;
use gnb::GnbConfig;

/// How long `gnb tunnels` waits for the daemon's answer.
const CLI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Parser)]
#[command(
    name = "gnb",
    version,
    about = "gNB shim: UE traffic into GTP-U tunnels on N3"
)]
enum Cmd {
    /// Run the gNB in the current network namespace until Ctrl-C/SIGTERM.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List the tunnels of a running gNB.
    Tunnels {
        /// `IP:PORT` of its N2-lite API (default: from --config).
        #[arg(long)]
        api: Option<String>,
        /// Its configuration file, to find the API.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Parse and validate a configuration file.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    ctlhttp::daemon::init_logs("info");
    ctlhttp::daemon::exit("gnb", cmd(Cmd::parse()))
}

fn cmd(cmd: Cmd) -> Result<(), CliError> {
    match cmd {
        Cmd::CheckConfig { file } => {
            let c = GnbConfig::load(&file).map_err(CliError::usage)?;
            println!(
                "{}: ok (gNB `{}`, N2 {}, N1 {}, N3 {})",
                file.display(),
                c.name,
                c.n2_api(),
                c.n1_api(),
                c.n3_addr
            );
            Ok(())
        }
        Cmd::Run { config } => {
            let cfg = GnbConfig::load(&config).map_err(CliError::usage)?;
            ctlhttp::daemon::block_on_control_plane(gnb::run(
                cfg,
                ctlhttp::daemon::shutdown_signal(),
            ))?
            .map_err(|e| e.to_string().into())
        }
        Cmd::Tunnels { api, config, json } => {
            let api = match (api, config) {
                (Some(a), _) => a,
                (None, Some(c)) => GnbConfig::load(&c)
                    .map_err(CliError::usage)?
                    .n2_api()
                    .to_string(),
                (None, None) => return Err(CliError::usage("give --api IP:PORT or --config FILE")),
            };
            let url = format!("http://{api}/tunnels");
            let list: Vec<TunnelView> =
                ctlhttp::blocking::Client::new(CLI_TIMEOUT).get_json(&url)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            println!(
                "{:<22} {:>3} {:<15} {:>10} {:>10} {:<21} {:>3} {:>10} {:>10} {:>4}",
                "UE",
                "PSI",
                "UE ADDR",
                "DL TEID",
                "UL TEID",
                "UPF",
                "QFI",
                "UL PKTS",
                "DL PKTS",
                "EM"
            );
            for t in list {
                println!(
                    "{:<22} {:>3} {:<15} {:>10} {:>10} {:<21} {:>3} {:>10} {:>10} {:>4}{}",
                    t.ue_id,
                    t.pdu_session_id,
                    t.ue_addr,
                    t.dl_teid,
                    t.ul_teid,
                    t.ul_peer,
                    t.qfi,
                    t.ul_packets,
                    t.dl_packets,
                    t.end_markers,
                    if t.draining { " draining" } else { "" }
                );
            }
            Ok(())
        }
    }
}
