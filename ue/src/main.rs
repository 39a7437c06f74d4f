//! `ue`: the UE daemon and its CLI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ctlhttp::daemon::CliError;
use ue::{AddSession, UeConfig};
use wire::ctl::{ApiError, SessionInfo};

#[derive(Parser)]
#[command(name = "ue", version, about = "UE: PDU sessions through the gNB")]
enum Cmd {
    /// Run the UE daemon in the current namespace until Ctrl-C/SIGTERM;
    /// its sessions are released when it stops.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Sessions of a running UE daemon.
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
        /// `IP:PORT` of the daemon's API (default: from --config, else
        /// $UE_API, else 127.0.0.1:7100).
        #[arg(long, global = true)]
        api: Option<String>,
        /// The daemon's configuration file, to find its API.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Ask the running UE daemon's migration agent for a CSM migration of
    /// the service it plays (prints the migration the SMF accepted, or its
    /// reason to refuse).
    Migrate {
        /// Destination edge (default: the SMF picks by latency).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// The played service: serving and copilot edges, migrations and their
    /// figures.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Parse and validate a configuration file.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Play: receive and decode the video streams, display the chief
    /// pilot's, send numbered inputs; then print the report.
    Play(PlayArgs),
}

/// How to find a running UE daemon's API.
#[derive(clap::Args)]
struct DaemonArgs {
    /// `IP:PORT` of the daemon's API (default: from --config, else
    /// $UE_API, else 127.0.0.1:7100).
    #[arg(long)]
    api: Option<String>,
    /// The daemon's configuration file, to find its API.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// The daemon's API address.
fn daemon_api(api: Option<String>, config: Option<PathBuf>) -> Result<String, CliError> {
    Ok(match (api, config) {
        (Some(a), _) => a,
        (None, Some(c)) => UeConfig::load(&c).map_err(CliError::usage)?.api.to_string(),
        (None, None) => std::env::var("UE_API").unwrap_or_else(|_| ue::config::DEFAULT_API.into()),
    })
}

/// The body of a 2xx answer of the daemon at `api`; any other answer, or
/// none, is the error.
fn answer(api: &str, r: Result<ctlhttp::Response, ctlhttp::Error>) -> Result<String, String> {
    let r = r.map_err(|e| format!("UE daemon at {api}: {e} (is `ue run` going?)"))?;
    let status = r.status;
    let body = r.text();
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(failed(status, &body))
    }
}

/// `v` as pretty JSON with `json`, else as `table` prints it.
fn print_json_or<T: serde::Serialize + ?Sized>(
    json: bool,
    v: &T,
    table: impl FnOnce(&T),
) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
        );
    } else {
        table(v);
    }
    Ok(())
}

#[derive(clap::Args)]
struct PlayArgs {
    /// A stream to receive, `NAME=BIND_ADDR:PORT` (bind to the session's
    /// address); repeatable, the first is the chief pilot (displayed).
    #[arg(long = "stream", required = true)]
    streams: Vec<ue::stream::StreamSpec>,
    /// The chief pilot's input address `ADDR:PORT` (no inputs without it).
    #[arg(long)]
    input_to: Option<std::net::SocketAddr>,
    /// Local address to send the inputs from, `ADDR` or `ADDR:PORT`.
    #[arg(long, default_value = "0.0.0.0", value_parser = ue::stream::play::parse_bind)]
    input_from: std::net::SocketAddr,
    /// Inputs per second.
    #[arg(long, default_value_t = ue::stream::bot::DEFAULT_RATE)]
    input_rate: f64,
    /// Seed of the input bot's heading policy.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long to play (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = ue::stream::play::parse_duration)]
    duration: Duration,
    /// The inputs stop this long before the end, so the last ones can be
    /// displayed.
    #[arg(long, default_value = "500ms", value_parser = ue::stream::play::parse_duration)]
    drain: Duration,
    /// Write the displayed video to this file (YUV4MPEG2 4:2:0).
    #[arg(long)]
    video: Option<PathBuf>,
    /// Frame rate written in the video file's header.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum SessionCmd {
    /// Establish a PDU session.
    Add {
        /// PDU session id, 1..=15.
        #[arg(long)]
        psi: u8,
        /// Data network name.
        #[arg(long, default_value = "internet")]
        dnn: String,
        /// Ask for this UPF.
        #[arg(long)]
        upf: Option<String>,
    },
    /// List the sessions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release a PDU session.
    Del {
        /// PDU session id.
        #[arg(long)]
        psi: u8,
    },
}

fn main() -> ExitCode {
    ctlhttp::daemon::init_logs("info");
    ctlhttp::daemon::exit("ue", cmd(Cmd::parse()))
}

fn client() -> ctlhttp::blocking::Client {
    ctlhttp::blocking::Client::new(Duration::from_secs(30))
}

/// A request body as JSON.
fn to_json(v: &impl serde::Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| e.to_string())
}

/// The error text of a non-2xx answer.
fn failed(status: u16, body: &str) -> String {
    match serde_json::from_str::<ApiError>(body) {
        Ok(e) => match e.field {
            Some(f) => format!("{} (HTTP {status}, field `{f}`)", e.error),
            None => format!("{} (HTTP {status})", e.error),
        },
        Err(_) => format!("HTTP {status}: {body}"),
    }
}

fn print_sessions(list: &[SessionInfo]) {
    println!(
        "{:>3} {:<10} {:<8} {:<15} {:>3} {:>10} {:<15} {:>10} {:<15}",
        "PSI", "DNN", "UPF", "UE ADDR", "QFI", "UL TEID", "UPF N3", "DL TEID", "GNB N3"
    );
    for s in list {
        println!(
            "{:>3} {:<10} {:<8} {:<15} {:>3} {:>10} {:<15} {:>10} {:<15}",
            s.pdu_session_id,
            s.dnn,
            s.upf,
            s.ue_addr,
            s.qfi,
            s.ul_teid,
            s.ul_addr,
            s.dl_teid,
            s.dl_addr
        );
    }
}

fn cmd(cmd: Cmd) -> Result<(), CliError> {
    match cmd {
        Cmd::Play(a) => {
            let cfg = ue::PlayConfig {
                streams: a.streams,
                input_to: a.input_to,
                input_from: a.input_from,
                input_rate: a.input_rate,
                seed: a.seed,
                duration: a.duration,
                drain: a.drain,
                video: a.video,
                fps: a.fps,
            };
            let report = ue::stream::play::run(&cfg).map_err(|e| e.to_string())?;
            Ok(print_json_or(a.json, &report, |r| print!("{}", r.table()))?)
        }
        Cmd::CheckConfig { file } => {
            let c = UeConfig::load(&file).map_err(CliError::usage)?;
            println!(
                "{}: ok (UE `{}`, gNB N1 {}, API {})",
                file.display(),
                c.ue_id,
                c.gnb_n1,
                c.api
            );
            Ok(())
        }
        Cmd::Run { config } => {
            let cfg = UeConfig::load(&config).map_err(CliError::usage)?;
            ctlhttp::daemon::block_on_control_plane(ue::run(
                cfg,
                ctlhttp::daemon::shutdown_signal(),
            ))?
            .map_err(|e| e.to_string().into())
        }
        Cmd::Migrate { to, daemon } => {
            let api = daemon_api(daemon.api, daemon.config)?;
            let req = ue::service::MigrateRequest { to };
            let body = answer(
                &api,
                client().post_json(&format!("http://{api}/migrate"), to_json(&req)?),
            )?;
            let m: wire::ctl::migration::MigrationAccepted =
                serde_json::from_str(&body).map_err(|e| e.to_string())?;
            println!(
                "migration {} accepted: {} -> {} ({:?})",
                m.id, m.from, m.to, m.kind
            );
            Ok(())
        }
        Cmd::Status { json, daemon } => {
            let api = daemon_api(daemon.api, daemon.config)?;
            let body = answer(&api, client().get(&format!("http://{api}/status")))?;
            let st: ue::service::UeStatus =
                serde_json::from_str(&body).map_err(|e| e.to_string())?;
            Ok(print_json_or(json, &st, print_status)?)
        }
        Cmd::Session { cmd, api, config } => {
            let api = daemon_api(api, config)?;
            let base = format!("http://{api}/sessions");
            let a = client();
            let r = match &cmd {
                SessionCmd::Add { psi, dnn, upf } => {
                    let req = AddSession {
                        psi: *psi,
                        dnn: dnn.clone(),
                        upf: upf.clone(),
                    };
                    a.post_json(&base, to_json(&req)?)
                }
                SessionCmd::List { .. } => a.get(&base),
                SessionCmd::Del { psi } => a.delete(&format!("{base}/{psi}")),
            };
            let body = answer(&api, r)?;
            match cmd {
                SessionCmd::Add { .. } => {
                    let s: SessionInfo = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                    println!(
                        "session {} up: {} via {} (UL TEID {} at {}, DL TEID {} at {}, QFI {})",
                        s.pdu_session_id,
                        s.ue_addr,
                        s.upf,
                        s.ul_teid,
                        s.ul_addr,
                        s.dl_teid,
                        s.dl_addr,
                        s.qfi
                    );
                }
                SessionCmd::List { json } => {
                    let l: Vec<SessionInfo> =
                        serde_json::from_str(&body).map_err(|e| e.to_string())?;
                    print_json_or(json, &l[..], print_sessions)?;
                }
                SessionCmd::Del { psi } => println!("session {psi} released"),
            }
            Ok(())
        }
    }
}

fn print_status(st: &ue::service::UeStatus) {
    let copilot = st.copilot.as_deref().unwrap_or("-");
    println!(
        "{}: serving {}, copilot {copilot}, {} frames displayed",
        st.ue_id, st.serving, st.frames_displayed
    );
    if let Some(e) = &st.registration_error {
        println!("not registered with the SMF: {e}");
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for m in &st.migrations {
        println!(
            "migration {}: {} -> {} {:?} {:?}: downtime {} ms, migration {} ms, SSIM {}, {} frames blended{}",
            m.id,
            m.from,
            m.to,
            m.kind,
            m.state,
            f(m.downtime_ms),
            f(m.migration_ms),
            f(m.ssim_at_switch),
            m.frames_blended,
            m.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
    }
}
