//! Bringing topologies up and down.
//!
//! `up` runs in steps: namespaces (in parallel, each marked as ours and
//! journaled before it exists), veth pairs (one batched netlink send, each
//! end created directly in its namespace), sysctls, addresses and routes
//! (one batched send per namespace), shaping (tc), emulators. Any failure,
//! or an interrupt, rolls everything back through the same path as `down`.

use std::io::BufRead;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Link, NodeKind, Shape, Topology};
use crate::emu::{EmuConfig, Impairment};
use crate::netns::{self, NetnsError};
use crate::nl::{self, LinkSpec, NetlinkError, Nl};
use crate::state::{self, Entry, Journal, StateDir, StateError};
use crate::tc::{self, EgressState, TcError};

/// Errors of topology operations.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    /// The topology description is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `up` of a topology that is up.
    #[error("topology `{0}` is already up (run `topo down {0}` first)")]
    AlreadyUp(String),
    /// State of an interrupted `up` is still there.
    #[error(
        "topology `{0}` has leftovers of an interrupted `up` (run `topo down {0}` to remove them)"
    )]
    Leftover(String),
    /// Another process is changing the topology.
    #[error("topology `{0}` is being changed by another process")]
    Busy(String),
    /// The topology is not up.
    #[error("topology `{0}` is not up")]
    NotUp(String),
    /// No node of that name.
    #[error("topology `{topo}` has no node `{node}`")]
    UnknownNode {
        /// Topology.
        topo: String,
        /// Node.
        node: String,
    },
    /// No link of that name.
    #[error("topology `{topo}` has no link `{link}` (links: {known})")]
    UnknownLink {
        /// Topology.
        topo: String,
        /// Link.
        link: String,
        /// Known links.
        known: String,
    },
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// tc failed.
    #[error(transparent)]
    Tc(#[from] TcError),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A sysctl could not be written.
    #[error("sysctl {key}={value} on node `{node}`: {source}")]
    Sysctl {
        /// Node.
        node: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Error.
        source: std::io::Error,
    },
    /// A link emulator failed.
    #[error("link emulator of `{link}`: {reason}")]
    Emu {
        /// Link.
        link: String,
        /// Why.
        reason: String,
    },
    /// A fault injected by a test.
    #[error("injected fault at step `{0}`")]
    Injected(String),
    /// Ctrl-C or SIGTERM during `up`.
    #[error("interrupted")]
    Interrupted,
    /// The change is not possible on this link.
    #[error("{0}")]
    Unsupported(String),
    /// `up` failed and was rolled back.
    #[error("bringing up `{topo}` failed at step `{step}`; rolled back {rolled_back} objects")]
    UpFailed {
        /// Topology.
        topo: String,
        /// The step that failed.
        step: &'static str,
        /// Namespaces and processes removed again.
        rolled_back: usize,
        /// What failed.
        #[source]
        source: Box<TopoError>,
    },
    /// An I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Error.
        source: std::io::Error,
    },
}

impl TopoError {
    /// Whether this is a usage/configuration error (exit code 2) rather than a runtime one.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            TopoError::Config(_)
                | TopoError::UnknownNode { .. }
                | TopoError::UnknownLink { .. }
                | TopoError::Unsupported(_)
        )
    }
}

/// How delay, jitter and loss are realised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpairMode {
    /// netem if the kernel has it, else the userspace emulator.
    #[default]
    Auto,
    /// Always netem.
    Netem,
    /// Always the userspace emulator.
    Userspace,
}

/// Options of [`up`].
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// State directory (default: `$MINEDGE_STATE_DIR` or /run/minedge).
    pub state_dir: Option<PathBuf>,
    /// Delay/loss mechanism.
    pub impair: ImpairMode,
    /// The `topo` binary used to run emulators (default: found next to the current executable).
    pub topo_bin: Option<PathBuf>,
    /// Worker threads for namespace work (default 2).
    pub threads: usize,
    /// Set to true (e.g. by a SIGINT handler) to abort `up` and roll back.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Test hook: fail right after the named step (`namespaces`, `links`,
    /// `addresses`, `shaping`, `emulators`), or after N namespaces with `namespaces:N`.
    #[doc(hidden)]
    pub fault: Option<String>,
}

impl UpOptions {
    /// Options using state directory `dir`.
    pub fn with_state_dir(dir: impl Into<PathBuf>) -> Self {
        UpOptions {
            state_dir: Some(dir.into()),
            ..Default::default()
        }
    }
    fn state(&self) -> StateDir {
        match &self.state_dir {
            Some(d) => StateDir::new(d),
            None => StateDir::from_env(),
        }
    }
}

/// Which way along a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// a to b.
    Ab,
    /// b to a.
    Ba,
    /// Both.
    Both,
}

/// A running emulator process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmuProc {
    /// pid.
    pub pid: i32,
    /// Start time, to detect pid reuse.
    pub start: u64,
    /// Its JSON config.
    pub config: PathBuf,
    /// Its namespace.
    pub netns: String,
    /// Port towards a.
    pub port_a: String,
    /// Port towards b.
    pub port_b: String,
}

/// Delay/loss mechanism of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpairMech {
    /// No delay/loss.
    None,
    /// Kernel netem.
    Netem,
    /// The userspace emulator.
    UserspaceEmu,
}

/// Run-time state of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRun {
    /// Link name.
    pub name: String,
    /// Current shaping a to b.
    pub shape_ab: Shape,
    /// Current shaping b to a.
    pub shape_ba: Shape,
    /// What is installed on a's egress.
    pub egress_a: EgressState,
    /// What is installed on b's egress.
    pub egress_b: EgressState,
    /// Delay/loss mechanism.
    pub impair: ImpairMech,
    /// The emulator, if any.
    pub emu: Option<EmuProc>,
}

/// Everything `up` made, saved as `running.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The topology.
    pub topology: Topology,
    /// Links.
    pub links: Vec<LinkRun>,
    /// Emulator namespace, if any.
    pub emu_ns: Option<String>,
    /// Whether netem is used for delay/loss.
    pub netem: bool,
}

/// A topology that is up.
#[derive(Debug)]
pub struct Running {
    state: StateDir,
    info: RunInfo,
    timings: Vec<(&'static str, Duration)>,
}

/// Downs the topology when dropped (for tests).
#[derive(Debug)]
pub struct TopoGuard(Option<Running>);

impl std::ops::Deref for TopoGuard {
    type Target = Running;
    fn deref(&self) -> &Running {
        // Only `take` in Drop empties it.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("guard used after drop"))
    }
}

impl std::ops::DerefMut for TopoGuard {
    fn deref_mut(&mut self) -> &mut Running {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("guard used after drop"))
    }
}

impl Drop for TopoGuard {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let name = r.info.topology.name.clone();
            if let Err(e) = r.down() {
                tracing::error!("down of `{name}` on drop failed: {e}");
            }
        }
    }
}

/// What `down` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DownReport {
    /// Namespaces removed.
    pub namespaces: usize,
    /// Processes stopped.
    pub processes: usize,
    /// Namespaces left alone because they no longer carry our mark.
    pub not_ours: Vec<String>,
}

impl Running {
    /// Attaches to a topology that is up (from its state).
    pub fn attach(name: &str, state: &StateDir) -> Result<Running, TopoError> {
        let j = state.read_journal(name)?;
        if !j.contains(&Entry::Complete) {
            return Err(if j.is_empty() {
                TopoError::NotUp(name.into())
            } else {
                TopoError::Leftover(name.into())
            });
        }
        let info: RunInfo = state
            .read_json(name, "running.json")?
            .ok_or_else(|| TopoError::NotUp(name.into()))?;
        Ok(Running {
            state: state.clone(),
            info,
            timings: Vec::new(),
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.info.topology
    }

    /// Run-time state (shaping, mechanisms, emulator processes).
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Duration of each step of `up`.
    pub fn timings(&self) -> &[(&'static str, Duration)] {
        &self.timings
    }

    /// Namespace of a node.
    pub fn ns_name(&self, node: &str) -> Result<String, TopoError> {
        let t = &self.info.topology;
        if t.node(node).is_none() {
            return Err(TopoError::UnknownNode {
                topo: t.name.clone(),
                node: node.into(),
            });
        }
        Ok(t.ns_name(node))
    }

    /// A command that runs `prog` in the node's namespace.
    pub fn command(
        &self,
        node: &str,
        prog: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, TopoError> {
        let ns = self.ns_name(node)?;
        command_in(&ns, prog)
    }

    /// Runs `f` on a thread inside the node's namespace.
    pub fn run_in<T: Send + 'static>(
        &self,
        node: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TopoError> {
        let ns = self.ns_name(node)?;
        Ok(netns::run_in_netns(&ns, f)?)
    }

    /// Changes the shaping of a link while traffic flows (tc change, emulator reload).
    /// Fields of `shape` replace the current ones for the chosen direction(s).
    pub fn shape(&mut self, link: &str, dir: Dir, shape: &Shape) -> Result<(), TopoError> {
        let _lock = self.state.lock(&self.info.topology.name, true)?;
        let t = self.info.topology.clone();
        let Some(l) = t.link(link) else {
            return Err(TopoError::UnknownLink {
                topo: t.name.clone(),
                link: link.into(),
                known: t
                    .links
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let netem = self.info.netem;
        let lr = self
            .info
            .links
            .iter_mut()
            .find(|x| x.name == link)
            .ok_or_else(|| TopoError::NotUp(t.name.clone()))?;
        if shape.impaired() && lr.impair == ImpairMech::None && !netem {
            return Err(TopoError::Unsupported(format!(
                "link `{link}` was brought up without the delay/loss emulator (this kernel has no netem); give it a delay or loss in the topology file, or `emulate = true`"
            )));
        }
        if matches!(dir, Dir::Ab | Dir::Both) {
            let cmds = tc::commands(&l.a.ifname, &mut lr.egress_a, shape, netem);
            tc::run_batch(&t.ns_name(&l.a.node), &cmds)?;
            lr.shape_ab = shape.clone();
        }
        if matches!(dir, Dir::Ba | Dir::Both) {
            let cmds = tc::commands(&l.b.ifname, &mut lr.egress_b, shape, netem);
            tc::run_batch(&t.ns_name(&l.b.node), &cmds)?;
            lr.shape_ba = shape.clone();
        }
        if netem
            && lr.impair == ImpairMech::None
            && (lr.shape_ab.impaired() || lr.shape_ba.impaired())
        {
            lr.impair = ImpairMech::Netem;
        }
        if let Some(emu) = &lr.emu {
            let cfg = emu_config(emu, lr);
            cfg.write_file(&emu.config).map_err(|e| TopoError::Emu {
                link: link.into(),
                reason: e.to_string(),
            })?;
            if state::proc_start_time(emu.pid) != Some(emu.start) {
                return Err(TopoError::Emu {
                    link: link.into(),
                    reason: format!("emulator process {} is gone", emu.pid),
                });
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(emu.pid),
                nix::sys::signal::Signal::SIGHUP,
            )
            .map_err(|e| TopoError::Emu {
                link: link.into(),
                reason: format!("SIGHUP to {}: {e}", emu.pid),
            })?;
        }
        tracing::info!(link, ?dir, "shaping changed: {}", describe_shape(shape));
        self.state.write_json(&t.name, "running.json", &self.info)?;
        Ok(())
    }

    /// Removes the topology.
    pub fn down(self) -> Result<DownReport, TopoError> {
        down(&self.info.topology.name, &self.state)
    }

    /// Wraps in a guard that downs the topology on drop.
    pub fn guard(self) -> TopoGuard {
        TopoGuard(Some(self))
    }
}

/// Human summary of a shape.
pub fn describe_shape(s: &Shape) -> String {
    let mut v = Vec::new();
    match s.rate_bps {
        Some(r) => v.push(format!(
            "rate {} burst {}B",
            crate::units::fmt_rate(r),
            s.effective_burst().unwrap_or(0)
        )),
        None => v.push("unlimited".into()),
    }
    if s.delay_us > 0 {
        v.push(format!("delay {}", crate::units::fmt_us(s.delay_us)));
    }
    if s.jitter_us > 0 {
        v.push(format!("jitter {}", crate::units::fmt_us(s.jitter_us)));
    }
    if s.loss_ppm > 0 {
        v.push(format!("loss {}%", s.loss_ppm as f64 / 10_000.0));
    }
    v.join(" ")
}

/// A command that runs `prog` in namespace `ns` (setns in the child before exec).
pub fn command_in(ns: &str, prog: impl AsRef<std::ffi::OsStr>) -> Result<Command, TopoError> {
    let fd = netns::open(ns)?;
    let mut c = Command::new(prog);
    // SAFETY: the closure only calls setns(2), which is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(c)
}

fn emu_config(emu: &EmuProc, lr: &LinkRun) -> EmuConfig {
    let imp = |s: &Shape| Impairment {
        delay_us: s.delay_us,
        jitter_us: s.jitter_us,
        loss_ppm: s.loss_ppm,
    };
    EmuConfig {
        netns: Some(emu.netns.clone()),
        port_a: emu.port_a.clone(),
        port_b: emu.port_b.clone(),
        a_to_b: imp(&lr.shape_ab),
        b_to_a: imp(&lr.shape_ba),
        // Stable per link, so a reload keeps the same loss/jitter sequence seed.
        seed: emu
            .config
            .to_string_lossy()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            }),
    }
}

// ---- up ---------------------------------------------------------------------

struct NsPlan {
    name: String,
    /// Node name, None for the emulator namespace.
    node: Option<String>,
    kind: NodeKind,
    sysctls: Vec<(String, String)>,
    mark: String,
    next_index: u32,
}

struct End {
    ns: usize,
    ifname: String,
    index: u32,
    master: Option<u32>,
    mac: Option<[u8; 6]>,
}

struct VethPlan {
    a: End,
    b: End,
    mtu: Option<u32>,
    what: String,
}

const BRIDGE_INDEX: u32 = 2;
const BRIDGE_NAME: &str = "br0";

/// Brings a topology up. On failure everything made is removed again.
pub fn up(topo: &Topology, opts: &UpOptions) -> Result<Running, TopoError> {
    let state = opts.state();
    let name = topo.name.clone();
    netns::ensure_run_dir()?;
    // Wait a little: a lock can linger for microseconds in a child forked
    // (not yet exec'd) by another thread of this process.
    let waited = Instant::now();
    let lock = loop {
        if let Some(l) = state.lock(&name, false)? {
            break l;
        }
        if waited.elapsed() > Duration::from_secs(3) {
            return Err(TopoError::Busy(name.clone()));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let j = state.read_journal(&name)?;
    if j.contains(&Entry::Complete) {
        return Err(TopoError::AlreadyUp(name));
    }
    if !j.is_empty() || state.topo_dir(&name).join("running.json").exists() {
        return Err(TopoError::Leftover(name));
    }
    let mut journal = Journal::open(&state, &name)?;
    let mut step: &'static str = "prepare";
    let t0 = Instant::now();
    let res = build(topo, opts, &state, &mut journal, &mut step);
    match res {
        Ok((info, timings)) => {
            drop(lock);
            tracing::info!(
                "topology `{name}` is up: {} namespaces, {} links in {:.1} ms",
                topo.nodes.len(),
                topo.links.len(),
                t0.elapsed().as_secs_f64() * 1e3
            );
            Ok(Running {
                state,
                info,
                timings,
            })
        }
        Err(e) => {
            tracing::error!("up of `{name}` failed at step `{step}`: {e}; rolling back");
            let n = match down_locked(&name, &state) {
                Ok(r) => r.namespaces + r.processes,
                Err(e2) => {
                    tracing::error!("rollback of `{name}` failed: {e2}");
                    0
                }
            };
            tracing::info!("rolled back {n} objects");
            drop(lock);
            Err(TopoError::UpFailed {
                topo: name,
                step,
                rolled_back: n,
                source: Box::new(e),
            })
        }
    }
}

fn check_cancel(opts: &UpOptions) -> Result<(), TopoError> {
    match &opts.cancel {
        Some(c) if c.load(Ordering::Relaxed) => Err(TopoError::Interrupted),
        _ => Ok(()),
    }
}

fn fault(opts: &UpOptions, step: &str) -> Result<(), TopoError> {
    if opts.fault.as_deref() == Some(step) {
        return Err(TopoError::Injected(step.into()));
    }
    check_cancel(opts)
}

type BuildOut = (RunInfo, Vec<(&'static str, Duration)>);

fn build(
    topo: &Topology,
    opts: &UpOptions,
    state: &StateDir,
    journal: &mut Journal,
    step: &mut &'static str,
) -> Result<BuildOut, TopoError> {
    let mut timings = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, Duration)>| {
        timings.push((name, t.elapsed()));
        tracing::debug!("step {name}: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        t = Instant::now();
    };
    state.write_json(&topo.name, "topology.json", topo)?;

    // Plan.
    let any_impaired = topo.links.iter().any(Link::impaired);
    let netem = match opts.impair {
        ImpairMode::Netem => true,
        ImpairMode::Userspace => false,
        ImpairMode::Auto => any_impaired && tc::netem_available(),
    };
    let use_emu = any_impaired && !netem;
    let mut plans: Vec<NsPlan> = topo
        .nodes
        .iter()
        .map(|n| NsPlan {
            name: topo.ns_name(&n.name),
            node: Some(n.name.clone()),
            kind: n.kind,
            sysctls: n.sysctls.clone(),
            mark: format!("minedge:{}:{}", topo.name, state::token()),
            next_index: if n.kind == NodeKind::Switch {
                BRIDGE_INDEX + 1
            } else {
                2
            },
        })
        .collect();
    let emu_ns = if use_emu {
        plans.push(NsPlan {
            name: topo.emu_ns_name(),
            node: None,
            kind: NodeKind::Host,
            sysctls: vec![
                ("net.ipv6.conf.all.disable_ipv6".into(), "1".into()),
                ("net.ipv6.conf.default.disable_ipv6".into(), "1".into()),
            ],
            mark: format!("minedge:{}:{}", topo.name, state::token()),
            next_index: 2,
        });
        Some(plans.len() - 1)
    } else {
        None
    };
    let idx_of = |node: &str| {
        topo.nodes
            .iter()
            .position(|n| n.name == node)
            .unwrap_or_else(|| unreachable!("validated"))
    };
    let mut veths: Vec<VethPlan> = Vec::new();
    let mut links_run: Vec<LinkRun> = Vec::new();
    let mut emus: Vec<(usize, EmuProc)> = Vec::new();
    for (li, l) in topo.links.iter().enumerate() {
        let mk_end = |ns: usize, ifname: &str, mac: Option<[u8; 6]>, plans: &mut Vec<NsPlan>| {
            let p = &mut plans[ns];
            let index = p.next_index;
            p.next_index += 1;
            End {
                ns,
                ifname: ifname.into(),
                index,
                master: (p.kind == NodeKind::Switch).then_some(BRIDGE_INDEX),
                mac,
            }
        };
        let (na, nb) = (idx_of(&l.a.node), idx_of(&l.b.node));
        let lr = LinkRun {
            name: l.name.clone(),
            shape_ab: l.shape_ab.clone(),
            shape_ba: l.shape_ba.clone(),
            egress_a: EgressState::default(),
            egress_b: EgressState::default(),
            impair: if !l.impaired() {
                ImpairMech::None
            } else if netem {
                ImpairMech::Netem
            } else {
                ImpairMech::UserspaceEmu
            },
            emu: None,
        };
        if let (Some(e), ImpairMech::UserspaceEmu) = (emu_ns, lr.impair) {
            let (pa, pb) = (format!("e{li}a"), format!("e{li}b"));
            let a = mk_end(na, &l.a.ifname, l.a.mac, &mut plans);
            let ea = mk_end(e, &pa, None, &mut plans);
            veths.push(VethPlan {
                a,
                b: ea,
                mtu: l.mtu,
                what: format!(
                    "veth {}:{} <-> emulator:{pa} (link {})",
                    l.a.node, l.a.ifname, l.name
                ),
            });
            let eb = mk_end(e, &pb, None, &mut plans);
            let b = mk_end(nb, &l.b.ifname, l.b.mac, &mut plans);
            veths.push(VethPlan {
                a: eb,
                b,
                mtu: l.mtu,
                what: format!(
                    "veth emulator:{pb} <-> {}:{} (link {})",
                    l.b.node, l.b.ifname, l.name
                ),
            });
            let cfgp = state
                .topo_dir(&topo.name)
                .join(format!("emu-{}.json", l.name));
            emus.push((
                li,
                EmuProc {
                    pid: 0,
                    start: 0,
                    config: cfgp,
                    netns: plans[e].name.clone(),
                    port_a: pa,
                    port_b: pb,
                },
            ));
        } else {
            let a = mk_end(na, &l.a.ifname, l.a.mac, &mut plans);
            let b = mk_end(nb, &l.b.ifname, l.b.mac, &mut plans);
            veths.push(VethPlan {
                a,
                b,
                mtu: l.mtu,
                what: format!(
                    "veth {}:{} <-> {}:{} (link {})",
                    l.a.node, l.a.ifname, l.b.node, l.b.ifname, l.name
                ),
            });
        }
        links_run.push(lr);
    }

    // Step 1: namespaces.
    *step = "namespaces";
    journal.append(
        &plans
            .iter()
            .map(|p| Entry::Netns {
                name: p.name.clone(),
                mark: p.mark.clone(),
            })
            .collect::<Vec<_>>(),
    )?;
    let limit: Option<usize> = opts
        .fault
        .as_deref()
        .and_then(|f| f.strip_prefix("namespaces:"))
        .and_then(|n| n.parse().ok());
    let made = create_namespaces(&plans, opts, limit)?;
    lap("namespaces", &mut timings);
    if let Some(n) = limit {
        if n < plans.len() {
            return Err(TopoError::Injected(format!("namespaces:{n}")));
        }
    }
    fault(opts, "namespaces")?;

    // Step 2: links. Each pair is created from a socket in the namespace of
    // its first end (so ifindexes are looked up there, never in ours), the
    // peer placed directly in its namespace: nothing appears here.
    *step = "links";
    let mut made = made;
    let mut fixups: Vec<(usize, u32)> = Vec::new();
    let mut per_ns_links: Vec<Vec<nl::RouteNetlinkMessageWhat>> =
        (0..plans.len()).map(|_| Vec::new()).collect();
    for v in &mut veths {
        // Only the primary end takes a master: put a switch end first.
        if v.b.master.is_some() && v.a.master.is_none() {
            std::mem::swap(&mut v.a, &mut v.b);
        }
        if v.b.master.is_some() {
            fixups.push((v.b.ns, v.b.index));
        }
        let sa = LinkSpec {
            name: &v.a.ifname,
            index: v.a.index,
            netns_fd: None,
            master: v.a.master,
            mac: v.a.mac,
            mtu: v.mtu,
        };
        let sb = LinkSpec {
            name: &v.b.ifname,
            index: v.b.index,
            netns_fd: Some(made[v.b.ns].fd.as_raw_fd()),
            master: None,
            mac: v.b.mac,
            mtu: v.mtu,
        };
        per_ns_links[v.a.ns].push((nl::new_veth(&sa, &sb), v.what.clone()));
    }
    par_each(&mut made, per_ns_links, opts, |_, m, work| {
        for (msg, what) in work {
            m.nl.queue(msg, nl::CREATE, what);
        }
        m.nl.flush()?;
        Ok(())
    })?;
    lap("links", &mut timings);
    fault(opts, "links")?;

    // Step 3: sysctls, addresses, routes, per namespace in parallel.
    *step = "addresses";
    let mut work: Vec<Vec<nl::RouteNetlinkMessageWhat>> =
        (0..plans.len()).map(|_| Vec::new()).collect();
    for v in &veths {
        let master = if fixups.contains(&(v.b.ns, v.b.index)) {
            Some(BRIDGE_INDEX)
        } else {
            None
        };
        work[v.b.ns].push((
            nl::set_link(v.b.index, true, None, master),
            format!("set {} up", v.b.ifname),
        ));
    }
    for v in &veths {
        for e in [&v.a, &v.b] {
            let Some(node) = plans[e.ns].node.as_deref() else {
                continue;
            };
            let ep = topo
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .find(|x| x.node == node && x.ifname == e.ifname);
            if let Some(ep) = ep {
                for a in &ep.addrs {
                    work[e.ns].push((
                        nl::new_addr(e.index, a.addr, a.prefix),
                        format!("address {a} on {node}:{}", e.ifname),
                    ));
                }
            }
        }
    }
    for (i, n) in topo.nodes.iter().enumerate() {
        for r in &n.routes {
            let oif = r.dev.as_ref().and_then(|d| {
                veths
                    .iter()
                    .flat_map(|v| [&v.a, &v.b])
                    .find(|e| e.ns == i && &e.ifname == d)
                    .map(|e| e.index)
            });
            work[i].push((
                nl::new_route(r.to.addr, r.to.prefix, r.via, oif),
                format!(
                    "route {} via {} on {}",
                    r.to,
                    r.via.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                    n.name
                ),
            ));
        }
    }
    par_each(&mut made, work, opts, |i, m, work| {
        let p = &plans[i];
        if p.node.is_some() && !p.sysctls.is_empty() {
            netns::enter_fd(&m.fd)?;
            write_sysctls(p)?;
        }
        for (msg, what) in work {
            let flags = if matches!(msg, netlink_packet_route::RouteNetlinkMessage::SetLink(_)) {
                0
            } else {
                nl::CREATE
            };
            m.nl.queue(msg, flags, what);
        }
        m.nl.flush()?;
        Ok(())
    })?;
    drop(made);
    lap("addresses", &mut timings);
    fault(opts, "addresses")?;

    // Step 4: shaping.
    *step = "shaping";
    let mut per_ns: Vec<Vec<String>> = (0..topo.nodes.len()).map(|_| Vec::new()).collect();
    for (l, lr) in topo.links.iter().zip(links_run.iter_mut()) {
        let (na, nb) = (idx_of(&l.a.node), idx_of(&l.b.node));
        per_ns[na].extend(tc::commands(
            &l.a.ifname,
            &mut lr.egress_a,
            &l.shape_ab,
            netem,
        ));
        per_ns[nb].extend(tc::commands(
            &l.b.ifname,
            &mut lr.egress_b,
            &l.shape_ba,
            netem,
        ));
    }
    std::thread::scope(|s| -> Result<(), TopoError> {
        let hs: Vec<_> = per_ns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(i, c)| {
                let ns = plans[i].name.clone();
                s.spawn(move || tc::run_batch(&ns, c))
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| TopoError::Unsupported("tc thread panicked".into()))??;
        }
        Ok(())
    })?;
    lap("shaping", &mut timings);
    fault(opts, "shaping")?;

    // Step 5: emulators.
    *step = "emulators";
    if !emus.is_empty() {
        let bin = topo_bin(opts)?;
        for (li, mut ep) in emus {
            let lr = &mut links_run[li];
            let link = lr.name.clone();
            let cfg = emu_config(&ep, lr);
            cfg.write_file(&ep.config).map_err(|e| TopoError::Emu {
                link: link.clone(),
                reason: e.to_string(),
            })?;
            journal.append(&[Entry::EmuIntent {
                config: ep.config.clone(),
            }])?;
            let log = state.topo_dir(&topo.name).join(format!("emu-{link}.log"));
            let (pid, start) = spawn_emu(&bin, &ep.config, &log, &link, journal)?;
            ep.pid = pid;
            ep.start = start;
            tracing::info!("started link emulator for `{link}` (pid {pid})");
            lr.emu = Some(ep);
            check_cancel(opts)?;
        }
    }
    lap("emulators", &mut timings);
    fault(opts, "emulators")?;

    *step = "finish";
    let info = RunInfo {
        topology: topo.clone(),
        links: links_run,
        emu_ns: emu_ns.map(|i| plans[i].name.clone()),
        netem,
    };
    state.write_json(&topo.name, "running.json", &info)?;
    journal.append(&[Entry::Complete])?;
    Ok((info, timings))
}

fn topo_bin(opts: &UpOptions) -> Result<PathBuf, TopoError> {
    if let Some(b) = &opts.topo_bin {
        return Ok(b.clone());
    }
    if let Some(b) = std::env::var_os("MINEDGE_TOPO_BIN") {
        return Ok(b.into());
    }
    let exe = std::env::current_exe().map_err(|source| TopoError::Io {
        what: "current_exe".into(),
        source,
    })?;
    if exe.file_name().is_some_and(|n| n == "topo") {
        return Ok(exe);
    }
    // Test and example binaries live in target/<profile>/{deps,examples}/.
    for dir in exe.ancestors().skip(1).take(3) {
        let c = dir.join("topo");
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(TopoError::Emu { link: "*".into(), reason: "cannot find the `topo` binary to run the link emulator (set MINEDGE_TOPO_BIN or UpOptions::topo_bin)".into() })
}

fn spawn_emu(
    bin: &Path,
    config: &Path,
    log: &Path,
    link: &str,
    journal: &mut Journal,
) -> Result<(i32, u64), TopoError> {
    let err = |reason: String| TopoError::Emu {
        link: link.into(),
        reason,
    };
    let logf =
        std::fs::File::create(log).map_err(|e| err(format!("create {}: {e}", log.display())))?;
    let mut cmd = Command::new(bin);
    cmd.arg("emu-run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(logf);
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("spawn {}: {e}", bin.display())))?;
    let pid = child.id() as i32;
    let start = state::proc_start_time(pid).unwrap_or(0);
    journal.append(&[Entry::Proc {
        pid,
        start,
        config: config.to_path_buf(),
    }])?;
    let Some(out) = child.stdout.take() else {
        return Err(err("no stdout".into()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = std::io::BufReader::new(out)
            .read_line(&mut line)
            .map(|_| line);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(l)) if l.trim() == "ready" => {
            // Reap it in the background if we are still its parent when it ends.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            Ok((pid, start))
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let logtext = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = logtext.lines().rev().take(5).collect();
            let why = match other {
                Ok(Ok(l)) if l.is_empty() => "exited before it was ready".to_string(),
                Ok(Ok(l)) => format!("said `{}` instead of `ready`", l.trim()),
                Ok(Err(e)) => format!("reading its output: {e}"),
                Err(_) => "not ready after 10 s".to_string(),
            };
            Err(err(format!(
                "{why}; log {}: {}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )))
        }
    }
}

struct Made {
    fd: OwnedFd,
    nl: Nl,
}

fn threads(opts: &UpOptions) -> usize {
    if opts.threads == 0 {
        2
    } else {
        opts.threads
    }
}

/// Creates namespaces in parallel; each is marked (lo alias) and its lo set
/// up before it becomes visible under /run/netns; switches get their bridge.
fn create_namespaces(
    plans: &[NsPlan],
    opts: &UpOptions,
    limit: Option<usize>,
) -> Result<Vec<Made>, TopoError> {
    let n = limit.unwrap_or(usize::MAX).min(plans.len());
    let slots: Vec<Mutex<Option<Made>>> = (0..plans.len()).map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: Mutex<Option<TopoError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads(opts) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || failed.load(Ordering::Relaxed) {
                    return;
                }
                let r = check_cancel(opts).and_then(|()| create_one(&plans[i]));
                match r {
                    Ok(m) => {
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(m);
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut fe) = first_err.lock() {
                            fe.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().ok().flatten() {
        return Err(e);
    }
    let out: Vec<Made> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect();
    if out.len() < n {
        return Err(TopoError::Unsupported("namespace worker failed".into()));
    }
    Ok(out)
}

fn create_one(p: &NsPlan) -> Result<Made, TopoError> {
    // The thread ends up inside the new namespace; it is a scoped worker, so
    // go back to where we were before returning to be tidy.
    let orig = netns::current()?;
    let mut nl_slot = None;
    let r = netns::create_here(&p.name, || -> Result<(), TopoError> {
        let mut nl = Nl::new()?;
        nl.queue(
            nl::set_link(1, true, Some(&p.mark), None),
            0,
            format!("mark and bring up lo in `{}`", p.name),
        );
        if p.kind == NodeKind::Switch {
            nl.queue(
                nl::new_bridge(BRIDGE_NAME, BRIDGE_INDEX),
                nl::CREATE,
                format!("bridge in `{}`", p.name),
            );
        }
        nl.flush()?;
        if p.node.is_none() {
            // The emulator namespace: no IPv6 chatter on its ports.
            write_sysctls(p)?;
        }
        nl_slot = Some(nl);
        Ok(())
    });
    let fd = netns::current();
    netns::enter_fd(&orig)?;
    r?;
    tracing::debug!("created namespace {}", p.name);
    let nl = nl_slot.ok_or_else(|| TopoError::Unsupported("netlink socket missing".into()))?;
    Ok(Made { fd: fd?, nl })
}

fn write_sysctls(p: &NsPlan) -> Result<(), TopoError> {
    for (k, v) in &p.sysctls {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|source| TopoError::Sysctl {
            node: p.node.clone().unwrap_or_else(|| p.name.clone()),
            key: k.clone(),
            value: v.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Runs `f` for each namespace with its work list, on worker threads (which
/// may enter namespaces; they go back to their own before ending).
fn par_each<W: Send>(
    made: &mut [Made],
    work: Vec<W>,
    opts: &UpOptions,
    f: impl Fn(usize, &mut Made, W) -> Result<(), TopoError> + Sync,
) -> Result<(), TopoError> {
    let items: Vec<Mutex<Option<(&mut Made, W)>>> = made
        .iter_mut()
        .zip(work)
        .map(|x| Mutex::new(Some(x)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_err: Mutex<Option<TopoError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads(opts) {
            s.spawn(|| {
                let orig = match netns::current() {
                    Ok(o) => o,
                    Err(e) => {
                        if let Ok(mut fe) = first_err.lock() {
                            fe.get_or_insert(e.into());
                        }
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                        break;
                    }
                    let Some((m, w)) = items[i].lock().ok().and_then(|mut x| x.take()) else {
                        continue;
                    };
                    if let Err(e) = f(i, m, w) {
                        if let Ok(mut fe) = first_err.lock() {
                            fe.get_or_insert(e);
                        }
                    }
                }
                let _ = netns::enter_fd(&orig);
            });
        }
    });
    match first_err.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---- down -------------------------------------------------------------------

/// Removes a topology: stops its processes and deletes its namespaces, but
/// only those that still carry the mark it set. A topology that is not up is fine.
pub fn down(name: &str, state: &StateDir) -> Result<DownReport, TopoError> {
    let _lock = state.lock(name, true)?;
    down_locked(name, state)
}

/// Removes every topology of this state directory (also after a crash).
pub fn down_all(state: &StateDir) -> Result<Vec<(String, DownReport)>, TopoError> {
    let mut out = Vec::new();
    for name in state.list()? {
        let r = down(&name, state)?;
        out.push((name, r));
    }
    Ok(out)
}

/// Names of topologies with state, and whether each is complete (up) or interrupted.
pub fn list(state: &StateDir) -> Result<Vec<(String, bool)>, TopoError> {
    let mut v = Vec::new();
    for name in state.list()? {
        let j = state.read_journal(&name)?;
        v.push((name, j.contains(&Entry::Complete)));
    }
    Ok(v)
}

fn down_locked(name: &str, state: &StateDir) -> Result<DownReport, TopoError> {
    let journal = state.read_journal(name)?;
    let mut rep = DownReport::default();
    if journal.is_empty() && !state.topo_dir(name).exists() {
        tracing::info!("topology `{name}` is not up: nothing to do");
        return Ok(rep);
    }
    // Processes first (they hold sockets in our namespaces).
    let mut configs: Vec<PathBuf> = Vec::new();
    for e in &journal {
        match e {
            Entry::Proc { pid, start, config } => {
                if stop_proc(*pid, *start) {
                    rep.processes += 1;
                }
                configs.push(config.clone());
            }
            Entry::EmuIntent { config } => configs.push(config.clone()),
            _ => {}
        }
    }
    // A crash between spawn and journaling the pid: find processes by their exact config path.
    for c in &configs {
        for pid in procs_with_config(c) {
            if let Some(st) = state::proc_start_time(pid) {
                if stop_proc(pid, st) {
                    rep.processes += 1;
                }
            }
        }
    }
    let marks: Vec<(String, String)> = journal
        .iter()
        .filter_map(|e| {
            if let Entry::Netns { name, mark } = e {
                Some((name.clone(), mark.clone()))
            } else {
                None
            }
        })
        .collect();
    let results: Mutex<Vec<(String, Result<bool, TopoError>)>> = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                // Workers enter each namespace to read its mark, then go home.
                let orig = netns::current();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((ns, mark)) = marks.get(i) else {
                        break;
                    };
                    let r = check_ours(ns, mark);
                    if let Ok(mut v) = results.lock() {
                        v.push((ns.clone(), r));
                    }
                }
                if let Ok(o) = orig {
                    let _ = netns::enter_fd(&o);
                }
            });
        }
    });
    let mut first_err = None;
    for (ns, r) in results.into_inner().unwrap_or_default() {
        match r {
            // All marks are checked before the first delete: the kernel's
            // teardown of deleted namespaces holds locks the checks need.
            Ok(true) => match netns::delete(&ns) {
                Ok(()) => {
                    tracing::debug!("deleted namespace {ns}");
                    rep.namespaces += 1;
                }
                Err(e) => {
                    tracing::error!("cannot delete namespace `{ns}`: {e}");
                    first_err.get_or_insert(e.into());
                }
            },
            Ok(false) => {}
            Err(TopoError::Unsupported(why)) => {
                tracing::warn!("left namespace `{ns}` alone: {why}");
                rep.not_ours.push(ns);
            }
            Err(e) => {
                tracing::error!("cannot delete namespace `{ns}`: {e}");
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    state.remove(name)?;
    tracing::info!(
        "topology `{name}` down: removed {} namespaces, stopped {} processes",
        rep.namespaces,
        rep.processes
    );
    Ok(rep)
}

/// Whether `/run/netns/NS` is bound and carries `mark`. Ok(false): nothing there.
/// Err(Unsupported): someone else's namespace.
fn check_ours(ns: &str, mark: &str) -> Result<bool, TopoError> {
    let p = netns::path(ns);
    if !p.exists() {
        return Ok(false);
    }
    if !netns::is_bound(ns) {
        // A crash between creating the mount point and mounting: an empty
        // file we journaled. `ip netns add` would have mounted it at once.
        let empty = std::fs::metadata(&p)
            .map(|m| m.is_file() && m.len() == 0)
            .unwrap_or(false);
        if empty {
            std::fs::remove_file(&p).map_err(|source| TopoError::Io {
                what: format!("remove {}", p.display()),
                source,
            })?;
        }
        return Ok(false);
    }
    // Called on a worker thread: enter the namespace and ask its lo.
    netns::enter(ns)?;
    let lo = Nl::new()?.get_link(1)?;
    let found = lo.attributes.into_iter().find_map(|a| {
        if let netlink_packet_route::link::LinkAttribute::IfAlias(s) = a {
            Some(s)
        } else {
            None
        }
    });
    if found.as_deref() != Some(mark) {
        return Err(TopoError::Unsupported(format!(
            "its mark is {:?}, not ours ({mark})",
            found.unwrap_or_default()
        )));
    }
    Ok(true)
}

fn stop_proc(pid: i32, start: u64) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if state::proc_start_time(pid) != Some(start) {
        return false;
    }
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if state::proc_start_time(pid) != Some(start) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = kill(p, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    true
}

/// pids whose command line has `--config <config>` exactly.
fn procs_with_config(config: &Path) -> Vec<i32> {
    let want = config.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cl) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cl.split(|b| *b == 0).collect();
        if args.windows(2).any(|w| w[0] == b"--config" && w[1] == want)
            && args.iter().any(|a| *a == b"emu-run")
        {
            out.push(pid);
        }
    }
    out
}
