//! `topo`: build, shape, inspect and remove network namespace topologies.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use topo::engine::{Dir, ImpairMode, Running, TopoError, UpOptions};
use topo::{StateDir, Topology};

const EXAMPLES: &str = "\
Examples:
  topo up                         # the paper's topology (embedded), namespaces ue1, gnb1, ...
  topo up my.toml --prefix t1-    # a file, with namespaces t1-<node>
  topo show                       # nodes, addresses, shaping, counters
  topo exec cloud -- ip addr      # run a command in a node's namespace
  topo shape wan1 --rate 200mbit  # change shaping while traffic flows
  topo shape interedge --delay 10ms --jitter 1ms --loss 0.1% --dir ab
                                  # (delay/loss: netem, or the userspace emulator on links
                                  #  that have delay/loss or `emulate = true` in the file)
  topo capture n6a:b -w n6.pcap -c 100
  topo down                       # remove it (only what topo made)
  topo down --all                 # remove everything recorded, also after a crash

State is kept in $MINEDGE_STATE_DIR (default /run/minedge). RUST_LOG sets the log level.
Exit codes: 0 ok, 1 runtime error, 2 usage or topology-file error.";

#[derive(Parser)]
#[command(name = "topo", version, about = "Network namespace topologies with veth links, bridges and tc shaping (a Mininet replacement)", after_help = EXAMPLES)]
struct Cli {
    /// State directory (overrides $MINEDGE_STATE_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Command-line names are checked like the names in a topology file
/// (topo::names): a bad one is a usage error (exit 2) naming the argument,
/// the value and why, before anything is read or removed.
fn topology_arg(s: &str) -> Result<String, String> {
    topo::names::topology(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn node_arg(s: &str) -> Result<String, String> {
    topo::names::node(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn link_arg(s: &str) -> Result<String, String> {
    topo::names::link(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `LINK`, `LINK:a` or `LINK:b`.
fn link_end_arg(s: &str) -> Result<String, String> {
    let link = match s.rsplit_once(':') {
        Some((l, "a" | "b")) => l,
        _ => s,
    };
    link_arg(link)?;
    Ok(s.to_string())
}

fn prefix_arg(s: &str) -> Result<String, String> {
    topo::names::prefix(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

#[derive(Clone, Copy, ValueEnum)]
enum DirArg {
    Ab,
    Ba,
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImpairArg {
    Auto,
    Netem,
    Userspace,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring a topology up (no FILE: the paper's topology).
    #[command(
        after_help = "Examples:\n  topo up\n  topo up topo/topologies/multi-ue.toml --prefix lab-"
    )]
    Up {
        /// Topology file (TOML).
        file: Option<PathBuf>,
        /// Prefix for every namespace name (overrides the file's `prefix`).
        #[arg(long, value_parser = prefix_arg)]
        prefix: Option<String>,
        /// Delay/loss mechanism.
        #[arg(long, value_enum, default_value = "auto")]
        impair: ImpairArg,
        /// Print `topo show` afterwards.
        #[arg(long)]
        show: bool,
    },
    /// Remove a topology (NAME, or the only one up), or all with --all.
    Down {
        /// Topology name (as `topo list` shows it).
        #[arg(value_parser = topology_arg)]
        name: Option<String>,
        /// Remove every topology recorded in the state directory.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// Show nodes, interfaces, addresses, shaping and counters.
    Show {
        /// Topology name (default: the only one up).
        #[arg(value_parser = topology_arg)]
        name: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a node's namespace (exit code passed through).
    #[command(after_help = "Example:\n  topo exec edge1 -- ip route")]
    Exec {
        /// Topology name (default: the only one up).
        #[arg(short, long, value_parser = topology_arg)]
        topo: Option<String>,
        /// Node.
        #[arg(value_parser = node_arg)]
        node: String,
        /// Command and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Change the shaping of a link while traffic flows.
    #[command(
        after_help = "Examples:\n  topo shape wan1 --rate 500mbit\n  topo shape wan1 --rate none\n  topo shape interedge --delay 20ms --dir ba"
    )]
    Shape {
        /// Topology name (default: the only one up).
        #[arg(short, long, value_parser = topology_arg)]
        topo: Option<String>,
        /// Link name.
        #[arg(value_parser = link_arg)]
        link: String,
        /// Rate (e.g. 200mbit, 10gbit) or `none`.
        #[arg(long)]
        rate: Option<String>,
        /// htb burst (e.g. 64kb) or `auto` (2 ms at the rate).
        #[arg(long)]
        burst: Option<String>,
        /// One-way delay (e.g. 10ms).
        #[arg(long)]
        delay: Option<String>,
        /// Delay jitter.
        #[arg(long)]
        jitter: Option<String>,
        /// Loss (e.g. 0.1%).
        #[arg(long)]
        loss: Option<String>,
        /// Direction.
        #[arg(long, value_enum, default_value = "both")]
        dir: DirArg,
    },
    /// Capture packets on a link end into a pcap file.
    #[command(
        after_help = "Examples:\n  topo capture n6a -w n6a.pcap            # end a\n  topo capture wan1:b -w wan.pcap -c 100 --duration 10s"
    )]
    Capture {
        /// Topology name (default: the only one up).
        #[arg(short, long, value_parser = topology_arg)]
        topo: Option<String>,
        /// LINK or LINK:a / LINK:b.
        #[arg(value_parser = link_end_arg)]
        link: String,
        /// Output pcap file.
        #[arg(short = 'w', long)]
        write: PathBuf,
        /// Stop after COUNT packets.
        #[arg(short, long)]
        count: Option<u64>,
        /// Stop after this long (e.g. 10s).
        #[arg(long)]
        duration: Option<String>,
    },
    /// List the topologies that are up.
    List,
    /// Run the userspace link emulator (started by `topo up`).
    #[command(hide = true)]
    EmuRun {
        /// JSON configuration.
        #[arg(long)]
        config: PathBuf,
    },
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    if let Some(s) = STOP.get() {
        s.store(true, Ordering::Relaxed);
    }
}

fn install_stop_flag() -> Arc<AtomicBool> {
    let flag = STOP
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    flag
}

fn print_err(e: &dyn std::error::Error) {
    eprintln!("topo: error: {e}");
    let mut s = e.source();
    while let Some(c) = s {
        eprintln!("  caused by: {c}");
        s = c.source();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::EmuRun { config } = &cli.cmd {
        init_log();
        return topo::emu::run_cli(config);
    }
    init_log();
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`topo show --json | head`) instead of panicking on EPIPE. Not for
    // `emu-run`, whose stdout pipe is closed by design after "ready".
    // SAFETY: called before any thread is spawned; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let state = match &cli.state_dir {
        Some(d) => StateDir::new(d),
        None => StateDir::from_env(),
    };
    match run(cli.cmd, &state) {
        Ok(code) => code,
        Err(e) => {
            print_err(&e);
            if e.is_usage() || matches!(&e, TopoError::UpFailed { source, .. } if source.is_usage())
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Like `ip netns exec`: a private mount namespace with /sys remounted, so
/// /sys/class/net shows the node's interfaces. Best effort.
fn remount_sys() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
        return;
    }
    let _ = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    );
    if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
        let _ = mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::empty(),
            None::<&str>,
        );
    }
}

fn pick(state: &StateDir, name: Option<String>) -> Result<String, TopoError> {
    if let Some(n) = name {
        return Ok(n);
    }
    let up = topo::list(state)?;
    match up.as_slice() {
        [(n, _)] => Ok(n.clone()),
        [] => Err(TopoError::NotUp("(none)".into())),
        many => Err(TopoError::Unsupported(format!(
            "several topologies are up ({}); name one",
            many.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn run(cmd: Cmd, state: &StateDir) -> Result<ExitCode, TopoError> {
    match cmd {
        Cmd::Up {
            file,
            prefix,
            impair,
            show,
        } => {
            let mut t = match &file {
                Some(f) => Topology::from_file(f)?,
                None => Topology::paper_default(),
            };
            if let Some(p) = prefix {
                t = t.with_prefix(&p)?;
            }
            let opts = UpOptions {
                state_dir: Some(state.root().to_path_buf()),
                impair: match impair {
                    ImpairArg::Auto => ImpairMode::Auto,
                    ImpairArg::Netem => ImpairMode::Netem,
                    ImpairArg::Userspace => ImpairMode::Userspace,
                },
                cancel: Some(install_stop_flag()),
                ..Default::default()
            };
            let r = topo::up(&t, &opts)?;
            let ms: f64 = r.timings().iter().map(|(_, d)| d.as_secs_f64() * 1e3).sum();
            println!(
                "topology `{}` is up: {} nodes, {} links ({ms:.0} ms)",
                t.name,
                t.nodes.len(),
                t.links.len()
            );
            if show {
                print!("{}", topo::show::render(&topo::show::status(&r)?));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { name, all } => {
            if all {
                let v = topo::down_all(state)?;
                if v.is_empty() {
                    println!(
                        "nothing to do: no topology recorded in {}",
                        state.root().display()
                    );
                }
                for (n, r) in v {
                    println!(
                        "{n}: removed {} namespaces, stopped {} processes",
                        r.namespaces, r.processes
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let name = match name {
                Some(n) => n,
                None => match pick(state, None) {
                    Ok(n) => n,
                    Err(TopoError::NotUp(_)) => {
                        println!("nothing to do: no topology is up");
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(e) => return Err(e),
                },
            };
            let r = topo::down(&name, state)?;
            if r.namespaces == 0 && r.processes == 0 && r.not_ours.is_empty() {
                println!("nothing to do: `{name}` is not up");
            } else {
                println!(
                    "{name}: removed {} namespaces, stopped {} processes",
                    r.namespaces, r.processes
                );
            }
            for ns in r.not_ours {
                println!("left `{ns}` alone: it is no longer ours");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Show { name, json } => {
            let r = Running::attach(&pick(state, name)?, state)?;
            let s = topo::show::status(&r)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s)
                        .map_err(|e| TopoError::Unsupported(e.to_string()))?
                );
            } else {
                print!("{}", topo::show::render(&s));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec {
            topo: tn,
            node,
            cmd,
        } => {
            let r = Running::attach(&pick(state, tn)?, state)?;
            let ns = r.ns_name(&node)?;
            let fd = topo::netns::open(&ns)?;
            topo::netns::enter_fd(&fd)?;
            remount_sys();
            let mut c = std::process::Command::new(&cmd[0]);
            c.args(&cmd[1..]);
            let status = c.status().map_err(|source| TopoError::Io {
                what: format!("run `{}`", cmd[0]),
                source,
            })?;
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        Cmd::Shape {
            topo: tn,
            link,
            rate,
            burst,
            delay,
            jitter,
            loss,
            dir,
        } => {
            let mut r = Running::attach(&pick(state, tn)?, state)?;
            let dir = match dir {
                DirArg::Ab => Dir::Ab,
                DirArg::Ba => Dir::Ba,
                DirArg::Both => Dir::Both,
            };
            let lr = r.info().links.iter().find(|l| l.name == link).cloned();
            let Some(lr) = lr else {
                let t = r.topology();
                return Err(TopoError::unknown_link(t, &link));
            };
            let dirs: &[Dir] = match dir {
                Dir::Both => &[Dir::Ab, Dir::Ba],
                d => {
                    if d == Dir::Ab {
                        &[Dir::Ab]
                    } else {
                        &[Dir::Ba]
                    }
                }
            };
            for d in dirs {
                let base = if *d == Dir::Ab {
                    &lr.shape_ab
                } else {
                    &lr.shape_ba
                };
                let s = topo::config::shape_from_strs(
                    rate.as_deref(),
                    burst.as_deref(),
                    delay.as_deref(),
                    jitter.as_deref(),
                    loss.as_deref(),
                    base,
                )?;
                r.shape(&link, *d, &s)?;
                println!(
                    "{link} {}: {}",
                    if *d == Dir::Ab { "a->b" } else { "b->a" },
                    topo::engine::describe_shape(&s)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Capture {
            topo: tn,
            link,
            write,
            count,
            duration,
        } => {
            let r = Running::attach(&pick(state, tn)?, state)?;
            let (ns, ifname) = topo::capture::resolve(&r, &link)?;
            let duration = match duration {
                Some(d) => Some(Duration::from_micros(
                    topo::units::parse_time_us(&d).map_err(|reason| {
                        TopoError::Config(topo::ConfigError {
                            file: "<command line>".into(),
                            line: 0,
                            col: 0,
                            field: "--duration".into(),
                            reason,
                        })
                    })?,
                )),
                None => None,
            };
            let fd = topo::capture::open_socket(&ns, &ifname)
                .map_err(|e| TopoError::Unsupported(e.to_string()))?;
            eprintln!(
                "capturing on {ns}:{ifname} into {} (Ctrl-C to stop)",
                write.display()
            );
            let opts = topo::capture::CaptureOptions {
                count,
                duration,
                stop: Some(install_stop_flag()),
            };
            let n = topo::capture::capture_fd(&fd, &write, &opts).map_err(|e| TopoError::Io {
                what: "capture".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            println!("{n} packets written to {}", write.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List => {
            for (n, complete) in topo::list(state)? {
                println!(
                    "{n}{}",
                    if complete {
                        ""
                    } else {
                        "  (interrupted; run `topo down` to clean up)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::EmuRun { config } => Ok(topo::emu::run_cli(&config)),
    }
}
