//! `testbed`: the MiniEdgeCore system in one command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Parser, Subcommand};
use testbed::bed::{self, BedArgs, BedError, UpOpts};

const EXAMPLES: &str = "\
Examples:
  testbed demo                                 # the main job: up, 2 sessions, traffic, down
  testbed up                                   # paper topology, ./results/run-<time>/
  testbed status
  testbed session add --ue ue1 --psi 1 --dnn edge1
  testbed session add --ue ue1 --psi 2 --upf upf2
  testbed session list --ue ue1
  testbed session del --ue ue1 --psi 1
  testbed restart upf1 --kill                  # a UPF crash; the SMF restores its sessions
  testbed migrate --count 10 --countdown 10s   # CSM migrations edge1 <-> edge2, their figures
  testbed migrate --warm false --json          # each full migration pulls the app from the cloud
  testbed experiment ssim-threshold --quick    # paper Fig. 10: plots and report.md in the run folder
  testbed bench dataplane                      # GTP-U via gnb+upf against kernel routing and VXLAN
  testbed probe --quick                        # what a UE and a rogue host can reach and break
  testbed down";

#[derive(Parser)]
#[command(name = "testbed", version, about = "Brings the MiniEdgeCore 5G user plane up in network namespaces", after_help = EXAMPLES)]
struct Cli {
    /// topo's state directory (default $MINEDGE_STATE_DIR or /run/minedge).
    #[arg(long, global = true, env = "MINEDGE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Where the daemon binaries are (default: next to this executable).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring the topology and every daemon up; returns when all are healthy.
    Up {
        #[command(flatten)]
        bed: BedArgs,
        /// Seconds to wait for each daemon's health check.
        #[arg(long, default_value_t = 20)]
        ready_timeout: u64,
    },
    /// Stop every daemon and remove the topology (harmless when nothing is up).
    Down,
    /// The main job: bring everything up, give the first UE one PDU session
    /// per UPF (in parallel), send UDP probes bound to each session's address
    /// to an echo server on that session's edge, report, and take it all down.
    Demo {
        #[command(flatten)]
        bed: BedArgs,
        /// UDP probes per session.
        #[arg(long, default_value_t = 100)]
        probes: u32,
        /// Leave the testbed up afterwards (`testbed status`, `testbed down`).
        #[arg(long)]
        keep: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Play the snake game: bring everything up, give the first UE a PDU
    /// session to an edge, start an instance there for the UE's account
    /// (pulled from the cloud if missing), let the UE's bot play while it
    /// displays the stream, report, and take it all down.
    Play {
        #[command(flatten)]
        bed: BedArgs,
        /// The edge that renders (default: the first, edge1).
        #[arg(long)]
        edge: Option<String>,
        /// Seconds of play.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Frame width.
        #[arg(long, default_value_t = 640)]
        width: u32,
        /// Frame height.
        #[arg(long, default_value_t = 360)]
        height: u32,
        /// Frames per second.
        #[arg(long, default_value_t = 60)]
        fps: u32,
        /// Inputs per second of the UE's bot.
        #[arg(long, default_value_t = 10.0)]
        input_rate: f64,
        /// Write the displayed video to this file (Y4M; `ffplay FILE`).
        #[arg(long)]
        video: Option<PathBuf>,
        /// Leave the testbed up afterwards.
        #[arg(long)]
        keep: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// CSM migrations: bring everything up, let the first UE play through
    /// edge1, migrate it edge1 -> edge2 -> edge1 ... (full migrations, and
    /// switch-only ones back to a copilot inside its countdown), wait for
    /// the last release, report downtime, stall, migration and setup times,
    /// SSIM, cross-edge bytes, lost inputs and leaks (also to
    /// migrations.json and migrations.csv in the run folder), and take it
    /// all down. Ctrl-C stops cleanly.
    Migrate(Box<testbed::migrate::MigrateArgs>),
    /// The paper's section V, one experiment per result: runs `testbed
    /// migrate` per configuration and repetition, writes the raw CSV,
    /// plots (SVG, PNG) and report.md into a new or empty run folder.
    /// Ctrl-C stops cleanly and keeps the CSV of the runs that ended.
    Experiment(testbed::experiment::ExperimentArgs),
    /// Daemons, PDU sessions and counters.
    Status {
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Stop one daemon and start it again with the same configuration.
    Restart {
        /// Daemon name (upf1, smf, gnb1, ue1...).
        daemon: String,
        /// SIGKILL instead of SIGTERM (a crash: no goodbye to its peers).
        #[arg(long)]
        kill: bool,
        /// Seconds to wait for its health check.
        #[arg(long, default_value_t = 20)]
        ready_timeout: u64,
    },
    /// Benchmarks on a testbed of their own (brought up and taken down).
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// The trust boundaries tried from outside: a port scan of the core
    /// from a UE (through its session and on the radio link), PFCP from
    /// the wrong address, another UE's address and uplink TEID, and a flood
    /// of malformed datagrams to N3 and N4 from a rogue host on the cp and
    /// n3 switches. One line per property with PASS or FAIL; exit status 1
    /// if any fails.
    Probe(testbed::probe::ProbeArgs),
    /// PDU sessions of a UE (runs `ue session ...` in the UE's namespace).
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// PDU session setup time (UE request to the first packet through the
    /// new tunnel, one setup at a time) and setup rate (many UEs at once
    /// through the gNB's N1 relay), each with a baseline from the same run.
    Sessions {
        #[command(flatten)]
        bed: BedArgs,
        /// Setups timed one after the other (0: skip).
        #[arg(long, default_value_t = 1000)]
        setups: usize,
        /// UEs asking at once for the rate (0: skip).
        #[arg(long, default_value_t = 1000)]
        ues: usize,
        /// Requests in flight in the rate bench (one client thread)
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// UPF to use (default: the first).
        #[arg(long)]
        upf: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The GTP-U path UE -> gnb -> upf -> edge against the kernel routing
    /// plain IP and a kernel VXLAN tunnel on N3, in the same namespaces:
    /// TCP bulk, UDP packets/s under 0.1% loss, round trip, idle CPU.
    Dataplane(testbed::dataplane::DataplaneArgs),
}

#[derive(Subcommand)]
enum SessionCmd {
    /// Establish a PDU session.
    Add {
        /// The UE (node name, e.g. ue1).
        #[arg(long)]
        ue: String,
        /// PDU session id, 1..=15.
        #[arg(long)]
        psi: u8,
        /// DNN (default: the --upf's DNN, else the first UPF's).
        #[arg(long)]
        dnn: Option<String>,
        /// Ask for this UPF.
        #[arg(long)]
        upf: Option<String>,
    },
    /// Release a PDU session.
    Del {
        #[arg(long)]
        ue: String,
        #[arg(long)]
        psi: u8,
    },
    /// List a UE's sessions.
    List {
        #[arg(long)]
        ue: String,
        /// JSON.
        #[arg(long)]
        json: bool,
    },
}

static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    if let Some(c) = CANCEL.get() {
        c.store(true, Ordering::SeqCst);
    }
}

/// Prints `r` as JSON, or for people.
fn print_report<T: serde::Serialize>(json: bool, r: &T, human: fn(&T)) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    } else {
        human(r);
    }
}

/// The leading columns (daemon, role, namespace, PID) of the daemon tables
/// of `up` and `status`, header and rows.
fn daemon_columns(name: &str, role: &str, netns: &str, pid: impl std::fmt::Display) -> String {
    format!("{name:<6} {role:<4} {netns:<14} {pid:>8}")
}

fn print_up(st: &bed::BedState) {
    println!("testbed `{}` ready", st.topology);
    println!("run folder: {}", st.run_dir.display());
    println!(
        "namespaces: {}",
        st.namespaces
            .iter()
            .map(|(_, ns)| ns.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{} {:<22} LOG",
        daemon_columns("DAEMON", "ROLE", "NETNS", "PID"),
        "API"
    );
    for p in &st.procs {
        println!(
            "{} {:<22} {}",
            daemon_columns(&p.name, p.role.binary(), &p.netns, p.pid),
            p.api,
            p.log.display()
        );
    }
    let pools: Vec<String> = st
        .plan
        .upfs
        .iter()
        .map(|u| format!("{} dnn {} pool {} -> {}", u.name, u.dnn, u.pool, u.edge))
        .collect();
    println!("UPFs: {}", pools.join("; "));
    println!(
        "SMF API: {} (in {})",
        st.plan.smf_api,
        st.ns(&st.plan.smf_node)
    );
}

fn print_status(s: &bed::Status) {
    println!(
        "testbed `{}` (run folder {})",
        s.topology,
        s.run_dir.display()
    );
    println!(
        "{} {:<8} API",
        daemon_columns("DAEMON", "ROLE", "NETNS", "PID"),
        "STATE"
    );
    for d in &s.daemons {
        println!(
            "{} {:<8} {}",
            daemon_columns(&d.name, d.role.binary(), &d.netns, d.pid),
            if d.running { "running" } else { "DOWN" },
            d.api
        );
    }
    println!("\nPFCP associations:");
    match s.upfs.as_array() {
        Some(a) => {
            for u in a {
                println!(
                    "  {:<6} {:<22} {:<12} sessions {}",
                    u["name"].as_str().unwrap_or("?"),
                    u["n4"].as_str().unwrap_or("?"),
                    u["state"].as_str().unwrap_or("?"),
                    u["sessions"]
                );
            }
        }
        None => println!("  {}", s.upfs),
    }
    println!("\nPDU sessions:");
    match s.sessions.as_array() {
        Some(a) if a.is_empty() => println!("  none"),
        Some(a) => {
            println!(
                "  {:<22} {:>3} {:<8} {:<6} {:<15} {:>10} {:>10} {:<10}",
                "UE", "PSI", "DNN", "UPF", "UE ADDR", "UL TEID", "DL TEID", "STATE"
            );
            for x in a {
                println!(
                    "  {:<22} {:>3} {:<8} {:<6} {:<15} {:>10} {:>10} {:<10}",
                    x["ue_id"].as_str().unwrap_or("?"),
                    x["pdu_session_id"].to_string(),
                    x["dnn"].as_str().unwrap_or("?"),
                    x["upf"].as_str().unwrap_or("?"),
                    x["ue_addr"].as_str().unwrap_or("?"),
                    x["ul_teid"].to_string(),
                    x["dl_teid"].to_string(),
                    x["state"].as_str().unwrap_or("?"),
                );
            }
        }
        None => println!("  {}", s.sessions),
    }
    println!("\ngNB tunnels:");
    for (g, t) in &s.tunnels {
        match t.as_array() {
            Some(a) => {
                for x in a {
                    println!(
                        "  {g}: {} psi {} {} ul_teid {} dl_teid {} ul {} pkts, dl {} pkts",
                        x["ue_id"].as_str().unwrap_or("?"),
                        x["pdu_session_id"],
                        x["ue_addr"].as_str().unwrap_or("?"),
                        x["ul_teid"],
                        x["dl_teid"],
                        x["ul_packets"],
                        x["dl_packets"]
                    );
                }
                if a.is_empty() {
                    println!("  {g}: none");
                }
            }
            None => println!("  {g}: {t}"),
        }
    }
    println!("\nCounters (non-zero):");
    for d in &s.daemons {
        if let Some(e) = &d.error {
            println!("  {}: {e}", d.name);
            continue;
        }
        let nz: Vec<_> = d.counters.iter().filter(|(_, v)| *v != 0.0).collect();
        if nz.is_empty() {
            continue;
        }
        println!("  {}:", d.name);
        for (k, v) in nz {
            println!("    {k} {v}");
        }
    }
}

fn print_demo(r: &testbed::demo::DemoReport) {
    println!(
        "\nUE {}: one PDU session per UPF, UDP probes to each session's edge",
        r.ue
    );
    println!(
        "  {:>3} {:<6} {:<6} {:<15} {:<21} {:>9} {:>10} {:>10}",
        "PSI", "UPF", "EDGE", "UE ADDR", "TARGET", "ANSWERED", "RTT p50", "RTT p99"
    );
    let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} us"));
    for s in &r.sessions {
        println!(
            "  {:>3} {:<6} {:<6} {:<15} {:<21} {:>4}/{:<4} {:>10} {:>10}",
            s.psi,
            s.upf,
            s.edge,
            s.ue_addr.to_string(),
            s.target.to_string(),
            s.answered,
            s.sent,
            us(s.rtt_p50_us),
            us(s.rtt_p99_us)
        );
    }
    println!("configs and logs: {}", r.run_dir);
    if r.kept {
        println!("left up: `testbed status`, `testbed down`");
    }
}

fn print_bench_sessions(r: &testbed::bench::SessionsReport) {
    if let Some(t) = &r.setup_time {
        println!(
            "\nsession setup time, {} via {} to {} ({} setups, {} without a packet through):",
            t.ue, t.upf, t.edge, t.setup.n, t.lost
        );
        println!("  {:<44} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
        let row = |name: &str, d: &testbed::bench::Dist| {
            println!(
                "  {:<44} {:>7.0} us {:>7.0} us {:>7.0} us",
                name, d.p50_us, d.p99_us, d.max_us
            )
        };
        row("UE request -> first packet at the edge", &t.setup);
        row("UE request -> UE answer (session installed)", &t.answered);
        row("baseline: round trip over a session", &t.baseline_rtt);
        println!(
            "  setup p50 = {:.1}x the baseline round trip",
            t.setup.p50_us / t.baseline_rtt.p50_us.max(1e-9)
        );
        if !t.stages.is_empty() {
            println!("  where the time goes (mean per setup, each daemon's own histogram):");
            for s in &t.stages {
                println!("    {:<58} {:>7.0} us", s.what, s.mean_us);
            }
        }
    }
    if let Some(r) = &r.setup_rate {
        println!(
            "\nsession setup rate: {} UEs at once, {} in flight: {} established, {} failed in {:.3} s",
            r.ues, r.concurrency, r.established, r.failed, r.seconds
        );
        println!(
            "  {:.0} sessions/s; baseline {:.0} requests/s (GET /n1/sessions at the gNB): {:.2}x",
            r.rate,
            r.baseline_rate,
            r.rate / r.baseline_rate.max(1e-9)
        );
        if let Some(l) = &r.latency {
            println!(
                "  per-request latency under load: p50 {:.0} us, p99 {:.0} us",
                l.p50_us, l.p99_us
            );
        }
        if let Some(e) = &r.first_error {
            println!("  first error: {e}");
        }
        if r.release_failed > 0 {
            println!("  {} releases failed afterwards", r.release_failed);
        }
    }
    println!("configs and logs: {}", r.run_dir);
}

fn print_play(r: &testbed::play::PlayReport) {
    let c = &r.client;
    let ms = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.1} ms"));
    println!(
        "\n{} played via {} and {} (session address {}) for {:.1} s",
        r.ue,
        r.upf,
        r.edge,
        r.ue_addr,
        c["duration_s"].as_f64().unwrap_or(0.0)
    );
    let num = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.0}"));
    if r.instance["pulled"] == true {
        println!(
            "  instance: pulled from the cloud in {} ms ({} bytes), running {} ms after the request",
            num(&r.instance["pull_ms"]),
            r.instance["pull_bytes"],
            num(&r.instance["start_ms"])
        );
    } else {
        println!(
            "  instance: in the edge repository already, started in {} ms",
            num(&r.instance["start_ms"])
        );
    }
    println!(
        "  frames displayed      {} ({:.1} per second)",
        c["frames_displayed"],
        c["display_fps"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  frame interval        p50 {}  p99 {}",
        ms(&c["frame_interval_ms"]["p50"]),
        ms(&c["frame_interval_ms"]["p99"])
    );
    println!(
        "  input -> display      p50 {}  p99 {}  ({} inputs shown)",
        ms(&c["latency_ms"]["p50"]),
        ms(&c["latency_ms"]["p99"]),
        c["latency_ms"]["count"]
    );
    if let Some(streams) = c["streams"].as_array() {
        for s in streams {
            println!(
                "  bitrate on the wire   {:.2} Mbit/s ({} packets)",
                s["wire_mbit_s"].as_f64().unwrap_or(0.0),
                s["packets"]
            );
        }
    }
    println!(
        "  inputs                {} sent, {} applied by the logic server ({} duplicates), {} lost",
        c["inputs_sent"], r.cloud.inputs_applied, r.cloud.duplicates, r.lost_inputs
    );
    println!("configs and logs: {}", r.run_dir);
    if r.kept {
        println!("left up: `testbed status`, `testbed down`");
    }
}

/// Ctrl-C and SIGTERM set the returned flag (instead of killing testbed
/// while it holds namespaces and daemons).
fn install_cancel() -> Arc<AtomicBool> {
    let cancel = CANCEL
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    // SAFETY: the handler only loads a OnceLock and stores to an atomic,
    // both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    cancel
}

fn run(cli: Cli) -> Result<(), BedError> {
    let sd = cli.state_dir.as_deref();
    // What every command that brings its own testbed up shares.
    let dirs = UpOpts {
        state_dir: cli.state_dir.clone(),
        bin_dir: cli.bin_dir.clone(),
        ..UpOpts::default()
    };
    match cli.cmd {
        Cmd::Up { bed, ready_timeout } => {
            let cancel = install_cancel();
            let st = bed::up(&UpOpts {
                ready_timeout: Some(Duration::from_secs(ready_timeout)),
                cancel: Some(cancel),
                ..bed.up_opts(&dirs)
            })?;
            print_up(&st);
            Ok(())
        }
        Cmd::Demo {
            bed,
            probes,
            keep,
            json,
        } => {
            let opts = bed.up_opts(&dirs);
            let report = testbed::demo::run(&opts, probes, keep, &mut |line| eprintln!("{line}"))?;
            print_report(json, &report, print_demo);
            if report.all_answered() {
                Ok(())
            } else {
                Err(BedError::Request(
                    "some probes got no answer from their session's edge".into(),
                ))
            }
        }
        Cmd::Play {
            bed,
            edge,
            seconds,
            width,
            height,
            fps,
            input_rate,
            video,
            keep,
            json,
        } => {
            if !(seconds > 0.0 && seconds <= 86_400.0) {
                return Err(BedError::Usage(format!(
                    "--seconds {seconds}: must be more than 0 and at most a day"
                )));
            }
            let up = bed.up_opts(&dirs);
            let opts = testbed::play::PlayOpts {
                edge,
                duration: Duration::from_secs_f64(seconds),
                width,
                height,
                fps,
                input_rate,
                video: video.map(|v| std::path::absolute(&v).unwrap_or(v)),
            };
            let r = testbed::play::run(&up, &opts, keep, &mut |l| eprintln!("{l}"))?;
            print_report(json, &r, print_play);
            if r.lost_inputs > 0 {
                return Err(BedError::Request(format!(
                    "{} inputs of the UE were never applied by the logic server",
                    r.lost_inputs
                )));
            }
            Ok(())
        }
        Cmd::Migrate(a) => {
            let mut opts = a.opts()?;
            opts.cancel = Some(install_cancel());
            let up = a.bed.up_opts(&dirs);
            let mut bar = testbed::migrate::progress::Bar::new();
            let r = testbed::migrate::run(&up, &opts, a.keep, &mut bar)?;
            print_report(a.json, &r, testbed::migrate::report::print_human);
            match r.problems() {
                p if p.is_empty() => Ok(()),
                p => Err(BedError::Request(p.join("; "))),
            }
        }
        Cmd::Experiment(a) => {
            let o = testbed::experiment::run(&a, &dirs, install_cancel())?;
            println!(
                "report: {} ({:.0} s)",
                o.report.display(),
                o.took.as_secs_f64()
            );
            println!(
                "raw CSV, figures and each run's testbed folder: {}",
                o.run_dir.display()
            );
            match o.failed {
                0 => Ok(()),
                n => Err(BedError::Request(format!(
                    "{n} of {} runs failed (runs.csv)",
                    o.runs
                ))),
            }
        }
        Cmd::Down => {
            let s = bed::down(sd)?;
            if s.topologies.is_empty() {
                println!("nothing is up");
            } else {
                println!(
                    "down: {} ({} daemons stopped, {} namespaces removed)",
                    s.topologies.join(", "),
                    s.daemons,
                    s.namespaces
                );
            }
            Ok(())
        }
        Cmd::Status { json } => {
            let s = bed::status(sd)?;
            print_report(json, &s, print_status);
            Ok(())
        }
        Cmd::Restart {
            daemon,
            kill,
            ready_timeout,
        } => {
            let r = bed::restart(
                sd,
                cli.bin_dir.as_deref(),
                &daemon,
                kill,
                Duration::from_secs(ready_timeout),
            )?;
            println!("{} restarted: pid {} in {}", r.name, r.pid, r.netns);
            Ok(())
        }
        Cmd::Bench {
            cmd:
                BenchCmd::Sessions {
                    bed,
                    setups,
                    ues,
                    concurrency,
                    upf,
                    json,
                },
        } => {
            let opts = bed.up_opts(&dirs);
            let r = testbed::bench::sessions(
                &opts,
                setups,
                ues,
                concurrency,
                upf.as_deref(),
                &mut |l| eprintln!("{l}"),
            )?;
            print_report(json, &r, print_bench_sessions);
            Ok(())
        }
        Cmd::Bench {
            cmd: BenchCmd::Dataplane(a),
        } => {
            let r = testbed::dataplane::run(&a, &dirs, &mut |l| eprintln!("{l}"))?;
            print_report(a.json, &r, testbed::dataplane::print_human);
            Ok(())
        }
        Cmd::Probe(a) => {
            let r = testbed::probe::run(&a, &dirs, &mut |l| eprintln!("{l}"))?;
            print_report(a.json, &r, testbed::probe::print_human);
            match r.failed() {
                f if f.is_empty() => Ok(()),
                f => Err(BedError::Request(format!("probe: FAIL: {}", f.join(", ")))),
            }
        }
        Cmd::Session { cmd } => {
            let bd = cli.bin_dir.as_deref();
            let (ue, args) = match cmd {
                SessionCmd::Add { ue, psi, dnn, upf } => {
                    let st = bed::load_one(sd)?;
                    let dnn = bed::pick_dnn(&st.plan, dnn.as_deref(), upf.as_deref())?;
                    (ue, bed::add_args(psi, &dnn, upf.as_deref()))
                }
                SessionCmd::Del { ue, psi } => {
                    (ue, vec!["del".into(), "--psi".into(), psi.to_string()])
                }
                SessionCmd::List { ue, json } => {
                    let mut a = vec!["list".to_string()];
                    if json {
                        a.push("--json".into());
                    }
                    (ue, a)
                }
            };
            print!("{}", bed::ue_session(sd, bd, &ue, &args)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // The terminal gets the progress lines and the report; each step's log
    // (bring-up timings, daemon starts) only with RUST_LOG=info. The
    // daemons' own logs are in the run folder's logs/.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
