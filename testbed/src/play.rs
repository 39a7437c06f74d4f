//! `testbed play`: one UE plays the snake game through an edge (issue 6).
//!
//! The UE gets a PDU session through the UPF of the edge, the edge's
//! migration agent starts an application instance for the UE's account
//! (pulling the application from the cloud repository over the WAN when
//! the edge does not have it), the instance logs in to the cloud logic
//! server and streams H.264 over RTP to the session's address, and
//! `ue play` in the UE's namespace receives, decodes and displays it while
//! its input bot plays. The report has the client's figures (frames
//! displayed, frame interval, input-to-display latency, bitrate on the
//! wire) and the logic server's count of the inputs it applied.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bed::{self, BedError, BedState, UpOpts};

/// UDP port the UE receives the video on.
pub const VIDEO_PORT: u16 = 5004;

/// What to play.
#[derive(Debug, Clone)]
pub struct PlayOpts {
    /// The edge that renders (default: the first edge with an agent).
    pub edge: Option<String>,
    /// How long the UE plays.
    pub duration: Duration,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Inputs per second of the bot.
    pub input_rate: f64,
    /// Write the displayed video here (Y4M).
    pub video: Option<PathBuf>,
}

impl Default for PlayOpts {
    fn default() -> Self {
        PlayOpts {
            edge: None,
            duration: Duration::from_secs(10),
            width: 640,
            height: 360,
            fps: 60,
            input_rate: 10.0,
            video: None,
        }
    }
}

/// The logic server's view of the account after the run.
#[derive(Debug, Clone, Serialize)]
pub struct CloudCount {
    /// Inputs applied for the account (each sequence number once).
    pub inputs_applied: u64,
    /// Writes whose sequence number had been applied already.
    pub duplicates: u64,
    /// Writes dropped because they came from a secondary session.
    pub writes_dropped: u64,
    /// Highest sequence number applied.
    pub last_seq: u64,
}

/// The report of `testbed play`.
#[derive(Debug, Clone, Serialize)]
pub struct PlayReport {
    /// Configs and logs.
    pub run_dir: String,
    /// The UE.
    pub ue: String,
    /// Its session's address.
    pub ue_addr: Ipv4Addr,
    /// UPF and edge.
    pub upf: String,
    /// The edge.
    pub edge: String,
    /// The agent's answer to the start request (pull and start times...).
    pub instance: serde_json::Value,
    /// `ue play`'s report.
    pub client: serde_json::Value,
    /// The logic server's count for the account.
    pub cloud: CloudCount,
    /// Inputs the bot sent that the logic server did not apply.
    pub lost_inputs: u64,
    /// Whether the testbed was left up.
    pub kept: bool,
}

/// Brings the testbed up, plays, reports, and takes it down (unless
/// `keep`); everything made is removed also when a step fails.
pub fn run(
    up: &UpOpts,
    opts: &PlayOpts,
    keep: bool,
    on_progress: &mut dyn FnMut(&str),
) -> Result<PlayReport, BedError> {
    let (mut r, kept) = bed::up_run_down(up, keep, on_progress, |st, on_progress| {
        play(st, up.bin_dir.as_deref(), opts, on_progress)
    })?;
    r.kept = kept;
    Ok(r)
}

fn req(e: impl std::fmt::Display) -> BedError {
    BedError::Request(e.to_string())
}

/// Plays on a testbed that is up.
pub fn play(
    st: &BedState,
    bin_dir: Option<&Path>,
    opts: &PlayOpts,
    on_progress: &mut dyn FnMut(&str),
) -> Result<PlayReport, BedError> {
    let app = st.plan.app.as_ref().ok_or_else(|| {
        BedError::Usage("the topology has no `cloud` node: nothing to play".into())
    })?;
    let edge = match &opts.edge {
        Some(e) => st.plan.edge(e).ok_or_else(|| {
            let known: Vec<_> = app.edges.iter().map(|e| e.name.as_str()).collect();
            BedError::Usage(format!(
                "no edge `{e}` with an agent (edges: {})",
                known.join(", ")
            ))
        })?,
        None => app
            .edges
            .first()
            .ok_or_else(|| BedError::Usage("no edge is linked to the cloud".into()))?,
    };
    let upf = st
        .plan
        .upfs
        .iter()
        .find(|u| u.edge == edge.name)
        .ok_or_else(|| BedError::Usage(format!("no UPF serves {}", edge.name)))?;
    let n6 = edge
        .n6
        .ok_or_else(|| BedError::Usage(format!("{} has no N6 address", edge.name)))?;
    let ue = st
        .plan
        .ues
        .first()
        .ok_or_else(|| BedError::Usage("the topology has no UE (a node named ue*)".into()))?;
    let (_, account, token) = app
        .accounts
        .iter()
        .find(|(u, _, _)| *u == ue.name)
        .ok_or_else(|| BedError::Usage(format!("no account for {}", ue.name)))?;
    let state_dir = Some(st.state_dir.as_path());

    // 1. The PDU session to the edge.
    let psi = 1u8;
    let args = bed::add_args(psi, &upf.dnn, Some(&upf.name));
    let line = bed::ue_session(state_dir, bin_dir, &ue.name, &args)?;
    on_progress(line.trim());
    let sessions = bed::ue_sessions(state_dir, bin_dir, &ue.name)?;
    let ue_addr = bed::session_addr(&sessions, psi)?;

    // 2. The instance, streaming to the session's address.
    let edge_ns = st.ns(&edge.name);
    let agent = format!("http://{}", edge.agent_api);
    let body = serde_json::json!({
        "app": "snake",
        "account": account,
        "token": token,
        "ue": format!("{ue_addr}:{VIDEO_PORT}"),
        "width": opts.width,
        "height": opts.height,
        "fps": opts.fps,
    })
    .to_string();
    let (code, text) = bed::http_in_auth(
        &edge_ns,
        "POST",
        &format!("{agent}/instances"),
        Some(body),
        Duration::from_secs(120),
        st.plan.agent_token(),
    )
    .map_err(req)?;
    if code != 201 {
        return Err(req(format!(
            "{} agent refused to start the instance: HTTP {code}: {}",
            edge.name,
            text.trim()
        )));
    }
    let instance: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| req(format!("agent answer: {e}: {text}")))?;
    let id = instance["id"].as_str().unwrap_or_default().to_string();
    let input_port = instance["input_port"]
        .as_u64()
        .ok_or_else(|| req(format!("agent answer without input_port: {text}")))?;
    on_progress(&format!(
        "instance {id} on {} (pulled: {}, pull {} ms, start {} ms), streaming to {ue_addr}:{VIDEO_PORT}",
        edge.name, instance["pulled"], instance["pull_ms"], instance["start_ms"]
    ));

    // 3. The UE plays.
    let idr = instance["metrics"]
        .as_str()
        .map(|m| format!("http://{m}/idr"));
    let result = client(
        st,
        bin_dir,
        &ue.name,
        ue_addr,
        n6,
        input_port,
        &edge_ns,
        idr.as_deref(),
        opts,
        on_progress,
    );

    // 4. The logic server's count, before the instance logs out.
    let stats = bed::http_in(
        &st.ns(&app.cloud),
        "GET",
        &format!("http://{}/stats", app.cloud_stats),
        None,
        Duration::from_secs(5),
    );
    let _ = bed::http_in_auth(
        &edge_ns,
        "DELETE",
        &format!("{agent}/instances/{id}"),
        None,
        Duration::from_secs(15),
        st.plan.agent_token(),
    );
    let _ = bed::ue_session(
        state_dir,
        bin_dir,
        &ue.name,
        &["del".into(), "--psi".into(), psi.to_string()],
    );
    let client = result?;
    let (code, text) = stats.map_err(req)?;
    if code != 200 {
        return Err(req(format!("cloud /stats: HTTP {code}: {}", text.trim())));
    }
    let stats: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| req(format!("cloud /stats: {e}")))?;
    let a = &stats["accounts"][account.as_str()];
    let n = |k: &str| a[k].as_u64().unwrap_or(0);
    let cloud = CloudCount {
        inputs_applied: n("inputs_applied"),
        duplicates: n("duplicates"),
        writes_dropped: n("writes_dropped"),
        last_seq: n("last_seq"),
    };
    let sent = client["inputs_sent"].as_u64().unwrap_or(0);
    Ok(PlayReport {
        run_dir: st.run_dir.display().to_string(),
        ue: ue.name.clone(),
        ue_addr,
        upf: upf.name.clone(),
        edge: edge.name.clone(),
        instance,
        client,
        lost_inputs: sent.saturating_sub(cloud.inputs_applied),
        cloud,
        kept: false,
    })
}

/// Runs `ue play` in the UE's namespace; its JSON report.
#[allow(clippy::too_many_arguments)]
fn client(
    st: &BedState,
    bin_dir: Option<&Path>,
    ue: &str,
    ue_addr: Ipv4Addr,
    edge_n6: Ipv4Addr,
    input_port: u64,
    edge_ns: &str,
    idr_url: Option<&str>,
    opts: &PlayOpts,
    on_progress: &mut dyn FnMut(&str),
) -> Result<serde_json::Value, BedError> {
    let bin = bin_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(bed::default_bin_dir)
        .join("ue");
    let log = st.run_dir.join("logs").join(format!("{ue}-play.log"));
    let err = std::fs::File::create(&log).map_err(|e| req(format!("{}: {e}", log.display())))?;
    let mut cmd = topo::engine::command_in(&st.ns(ue), &bin)?;
    cmd.arg("play")
        .arg("--stream")
        .arg(format!("edge={ue_addr}:{VIDEO_PORT}"))
        .arg("--input-to")
        .arg(format!("{edge_n6}:{input_port}"))
        .arg("--input-from")
        .arg(ue_addr.to_string())
        .arg("--input-rate")
        .arg(opts.input_rate.to_string())
        .arg("--duration")
        .arg(format!("{}ms", opts.duration.as_millis()))
        .arg("--fps")
        .arg(opts.fps.to_string())
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    if let Some(v) = &opts.video {
        cmd.arg("--video").arg(v);
    }
    on_progress(&format!(
        "{ue} plays for {:.1} s (bot: {} inputs/s to {edge_n6}:{input_port}) ...",
        opts.duration.as_secs_f64(),
        opts.input_rate
    ));
    let child = cmd
        .spawn()
        .map_err(|e| req(format!("start {}: {e}", bin.display())))?;
    let pid = child.id();
    // The instance streams already: once the client has bound its socket,
    // ask for a key frame so that it need not wait for the next one.
    if let Some(m) = idr_url {
        std::thread::sleep(Duration::from_millis(200));
        if let Err(e) = bed::http_in(
            edge_ns,
            "POST",
            m,
            Some(String::new()),
            Duration::from_secs(3),
        ) {
            on_progress(&format!(
                "no key frame on request ({e}); the client waits for the next one"
            ));
        }
    }
    // Wait with a deadline; a hung client is killed.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let deadline = opts.duration + Duration::from_secs(30);
    let t = Instant::now();
    let out = match rx.recv_timeout(deadline) {
        Ok(r) => r.map_err(|e| req(format!("ue play: {e}")))?,
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(req(format!(
                "ue play did not finish within {:?}; log: {}",
                t.elapsed(),
                log.display()
            )));
        }
    };
    if !out.status.success() {
        return Err(req(format!(
            "ue play failed ({}); log {}:\n{}",
            out.status,
            log.display(),
            bed::log_tail(&log, 2000)
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        req(format!(
            "ue play printed no JSON report: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        ))
    })
}
