//! `up`, `down`, `status` and sessions: the topology plus every daemon in
//! its namespace, recorded in a state file so that another process can find
//! and stop it.
//!
//! Run folder (default `./results/run-<UTC timestamp>/`):
//!
//! ```text
//! configs/<daemon>.toml   generated configurations (see `plan`)
//! logs/<daemon>.log       each daemon's stdout and stderr
//! plan.json               the derived plan (addresses, pools, APIs)
//! testbed.json            what was started: namespaces, pids, start times
//! ```
//!
//! State file: `<state dir>/testbed/<topology>.json` (same content as
//! `testbed.json`); the state dir is topo's (`$MINEDGE_STATE_DIR` or
//! `/run/minedge`). Every daemon is also appended to topo's journal of the
//! topology, so `topo down` stops them too if `testbed` itself was killed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use topo::{StateDir, Topology, UpOptions};

use crate::plan::{Plan, PlanError, Role};

/// Errors of testbed operations.
#[derive(Debug, thiserror::Error)]
pub enum BedError {
    /// The topology cannot be used.
    #[error(transparent)]
    Topology(#[from] topo::ConfigError),
    /// The topology lacks what a daemon needs.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A daemon binary is not built.
    #[error("binary `{bin}` not found in {} (it is built by package `{package}`): run `cargo build{profile} -p upf -p smf-lite -p gnb -p ue` (same profile as testbed), or give --bin-dir", dir.display())]
    MissingBinary {
        /// Binary.
        bin: &'static str,
        /// Package.
        package: &'static str,
        /// Where it was looked for.
        dir: PathBuf,
        /// ` --release` when testbed itself is a release build.
        profile: &'static str,
    },
    /// A testbed of this topology is up already.
    #[error("a testbed of topology `{0}` is already up (run `testbed down` first)")]
    AlreadyUp(String),
    /// Nothing is up.
    #[error("no testbed is up (state dir {0})")]
    NotUp(String),
    /// topo failed.
    #[error(transparent)]
    Topo(#[from] topo::TopoError),
    /// A daemon did not start or did not become healthy.
    #[error("{daemon} did not become ready: {reason}\n--- last lines of {} ---\n{tail}", log.display())]
    NotReady {
        /// Daemon.
        daemon: String,
        /// Why.
        reason: String,
        /// Its log.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Ctrl-C or SIGTERM during `up`: everything was removed again.
    #[error("interrupted: everything started so far was stopped and removed")]
    Interrupted,
    /// A request to a daemon failed.
    #[error("{0}")]
    Request(String),
    /// Bad usage (unknown UE, UPF...).
    #[error("{0}")]
    Usage(String),
    /// File I/O.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was done.
        what: &'static str,
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl BedError {
    /// Exit code of the CLI: 2 for usage/configuration errors, 130 when interrupted, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            BedError::Topology(_) | BedError::Plan(_) | BedError::Usage(_) => 2,
            BedError::Interrupted => 130,
            _ => 1,
        }
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BedError + 'a {
    move |source| BedError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Options of [`up`].
#[derive(Clone, Debug, Default)]
pub struct UpOpts {
    /// Topology file (default: the embedded paper topology).
    pub topology: Option<PathBuf>,
    /// Run folder (default `./results/run-<timestamp>`).
    pub run_dir: Option<PathBuf>,
    /// Namespace prefix.
    pub prefix: Option<String>,
    /// State dir (default topo's).
    pub state_dir: Option<PathBuf>,
    /// Where the daemon binaries are (default: next to the current executable).
    pub bin_dir: Option<PathBuf>,
    /// Health-check timeout per daemon.
    pub ready_timeout: Option<Duration>,
    /// Set by a signal handler to abort `up` (everything made is removed).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// A started daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRec {
    /// Daemon name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Node.
    pub node: String,
    /// Namespace.
    pub netns: String,
    /// pid.
    pub pid: i32,
    /// Start time (field 22 of /proc/PID/stat) to tell pid reuse.
    pub start: u64,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log.
    pub log: PathBuf,
    /// Its API (reachable inside `netns`).
    pub api: String,
    /// Its command line when configured by arguments (the application's
    /// daemons); empty: `run --config CONFIG`.
    #[serde(default)]
    pub args: Vec<String>,
}

/// What is up: written to the state file and the run folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BedState {
    /// Topology name (topo's state key).
    pub topology: String,
    /// Namespace prefix.
    pub prefix: String,
    /// topo's state dir.
    pub state_dir: PathBuf,
    /// Run folder.
    pub run_dir: PathBuf,
    /// Unix time of `up`.
    pub started_unix: u64,
    /// The plan.
    pub plan: Plan,
    /// Node -> namespace.
    pub namespaces: Vec<(String, String)>,
    /// Daemons started, in start order.
    pub procs: Vec<ProcRec>,
    /// Whether every daemon passed its health check.
    pub ready: bool,
}

impl BedState {
    /// Namespace of a node.
    pub fn ns(&self, node: &str) -> String {
        self.namespaces
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, ns)| ns.clone())
            .unwrap_or_else(|| format!("{}{}", self.prefix, node))
    }
    /// The record of a daemon.
    pub fn proc(&self, name: &str) -> Option<&ProcRec> {
        self.procs.iter().find(|p| p.name == name)
    }
}

fn state_dir(opt: Option<&Path>) -> StateDir {
    match opt {
        Some(p) => StateDir::new(p),
        None => StateDir::from_env(),
    }
}

fn bed_dir(state: &StateDir) -> PathBuf {
    state.root().join("testbed")
}

fn state_file(state: &StateDir, topo_name: &str) -> PathBuf {
    bed_dir(state).join(format!("{topo_name}.json"))
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), BedError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| BedError::Io {
        what: "serialize",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename to", path))
}

fn save(st: &BedState) -> Result<(), BedError> {
    let state = StateDir::new(&st.state_dir);
    let dir = bed_dir(&state);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    write_json(&state_file(&state, &st.topology), st)?;
    write_json(&st.run_dir.join("testbed.json"), st)
}

/// Every testbed recorded in a state dir.
pub fn load_all(state_dir_opt: Option<&Path>) -> Result<Vec<BedState>, BedError> {
    let state = state_dir(state_dir_opt);
    let dir = bed_dir(&state);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    let mut v = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(io("read", &p))?;
        match serde_json::from_str::<BedState>(&text) {
            Ok(s) => v.push(s),
            Err(e) => tracing::warn!("ignoring unreadable state file {}: {e}", p.display()),
        }
    }
    v.sort_by(|a, b| a.topology.cmp(&b.topology));
    Ok(v)
}

/// The one testbed that is up (the first if several).
pub fn load_one(state_dir_opt: Option<&Path>) -> Result<BedState, BedError> {
    let st = state_dir(state_dir_opt);
    load_all(state_dir_opt)?
        .into_iter()
        .next()
        .ok_or_else(|| BedError::NotUp(st.root().display().to_string()))
}

/// Whether the recorded process is still the one we started.
pub fn alive(p: &ProcRec) -> bool {
    topo::state::proc_start_time(p.pid) == Some(p.start)
}

/// SIGTERM, then SIGKILL after `grace`. Returns whether it was running.
pub fn stop_proc(pid: i32, start: u64, grace: Duration) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let same = || topo::state::proc_start_time(pid) == Some(start);
    if !same() {
        return false;
    }
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < grace {
        // Reaps it if it is our child; harmless otherwise.
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if !same() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::warn!(pid, "did not stop on SIGTERM within {grace:?}: SIGKILL");
    let _ = kill(p, Signal::SIGKILL);
    let t = Instant::now();
    while same() && t.elapsed() < Duration::from_secs(2) {
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The directory of the daemon binaries: next to the current executable
/// (for a test binary in `target/<profile>/deps/`, its parent).
pub fn default_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().and_then(|n| n.to_str()) == Some("deps") {
        return dir.parent().map(Path::to_path_buf).unwrap_or(dir);
    }
    dir
}

fn find_bins(bin_dir: &Path, plan: &Plan) -> Result<Vec<(Role, PathBuf)>, BedError> {
    let mut roles: Vec<Role> = plan.daemons.iter().map(|d| d.role).collect();
    roles.sort();
    roles.dedup();
    let mut out = Vec::new();
    for r in roles {
        let p = bin_dir.join(r.binary());
        if !p.is_file() {
            return Err(BedError::MissingBinary {
                bin: r.binary(),
                package: r.package(),
                dir: bin_dir.to_path_buf(),
                profile: if cfg!(debug_assertions) {
                    ""
                } else {
                    " --release"
                },
            });
        }
        out.push((r, p));
    }
    Ok(out)
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub fn utc_stamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The last `max` bytes of a log file, from a line start.
pub fn log_tail(path: &Path, max: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max as u64)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s.lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- HTTP inside a namespace -----------------------------------------------

/// `GET url` from a thread inside namespace `ns`: (status, body).
pub fn http_in(
    ns: &str,
    method: &'static str,
    url: &str,
    body: Option<String>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let url2 = url.to_string();
    let r = topo::netns::run_in_netns(ns, move || -> Result<(u16, String), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let rsp = match (method, body) {
            ("POST", Some(b)) => agent
                .post(&url2)
                .header("content-type", "application/json")
                .send(b.as_bytes()),
            ("DELETE", _) => agent.delete(&url2).call(),
            _ => agent.get(&url2).call(),
        };
        let mut rsp = rsp.map_err(|e| e.to_string())?;
        let status = rsp.status().as_u16();
        let text = rsp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, text))
    })
    .map_err(|e| e.to_string())?;
    r.map_err(|e| format!("{url}: {e}"))
}

fn get_json(ns: &str, url: &str) -> Result<serde_json::Value, String> {
    let (st, body) = http_in(ns, "GET", url, None, Duration::from_secs(3))?;
    if st != 200 {
        return Err(format!("{url}: HTTP {st}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// One health check: Ok(()) when ready, Err(why not yet) otherwise.
fn check(st: &BedState, rec: &ProcRec) -> Result<(), String> {
    match rec.role {
        Role::Upf => {
            let url = format!("http://{}/metrics", rec.api);
            let (code, body) = http_in(&rec.netns, "GET", &url, None, Duration::from_secs(2))?;
            if code == 200 && !body.is_empty() {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {code}"))
            }
        }
        Role::Smf => {
            let url = format!("http://{}/upfs", st.plan.smf_api);
            let v = get_json(&rec.netns, &url)?;
            let list = v.as_array().ok_or(format!("{url}: not a list"))?;
            let mut waiting = Vec::new();
            for u in &st.plan.upfs {
                let state = list
                    .iter()
                    .find(|x| x["name"] == u.name.as_str())
                    .and_then(|x| x["state"].as_str())
                    .unwrap_or("absent");
                if state != "associated" {
                    waiting.push(format!("{} is {state}", u.name));
                }
            }
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(format!("PFCP associations not up: {}", waiting.join(", ")))
            }
        }
        Role::Gnb => {
            let url = format!("http://{}/tunnels", rec.api);
            get_json(&rec.netns, &url).map(|_| ())
        }
        Role::Ue => {
            let url = format!("http://{}/sessions", rec.api);
            get_json(&rec.netns, &url).map(|_| ())
        }
        Role::Cloud => get_json(&rec.netns, &format!("http://{}/stats", rec.api)).map(|_| ()),
        Role::Repo => get_json(&rec.netns, &format!("http://{}/apps", rec.api)).map(|_| ()),
        Role::Agent => {
            let url = format!("http://{}/healthz", rec.api);
            let (code, body) = http_in(&rec.netns, "GET", &url, None, Duration::from_secs(2))?;
            if code == 200 {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {code}: {}", body.trim()))
            }
        }
    }
}

// ---- up ---------------------------------------------------------------------

/// Brings the topology and every daemon up; returns once all are healthy.
/// On any failure or interrupt, everything made so far is removed again.
pub fn up(opts: &UpOpts) -> Result<BedState, BedError> {
    let mut topo = match &opts.topology {
        Some(p) => Topology::from_file(p)?,
        None => Topology::paper_default(),
    };
    if let Some(p) = &opts.prefix {
        topo = topo.with_prefix(p)?;
    }
    let mut plan = Plan::derive(&topo)?;
    plan.issue_tokens();
    let bin_dir = opts.bin_dir.clone().unwrap_or_else(default_bin_dir);
    let bins = find_bins(&bin_dir, &plan)?;
    let state = state_dir(opts.state_dir.as_deref());
    let sf = state_file(&state, &topo.name);
    if sf.exists() {
        return Err(BedError::AlreadyUp(topo.name.clone()));
    }
    let started_unix = now_unix();
    let run_dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("results/run-{}", utc_stamp(started_unix))));
    let cfg_dir = run_dir.join("configs");
    let log_dir = run_dir.join("logs");
    for d in [&cfg_dir, &log_dir] {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    let run_dir = run_dir.canonicalize().map_err(io("resolve", &run_dir))?;
    let cfg_dir = run_dir.join("configs");
    let log_dir = run_dir.join("logs");
    for d in &plan.daemons {
        let p = cfg_dir.join(&d.config_file);
        std::fs::write(&p, &d.config).map_err(io("write", &p))?;
    }
    write_json(&run_dir.join("plan.json"), &plan)?;

    let cancel = opts.cancel.clone().unwrap_or_default();
    let up_opts = UpOptions {
        state_dir: Some(state.root().to_path_buf()),
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let t0 = Instant::now();
    let running = match topo::up(&topo, &up_opts) {
        Ok(r) => r,
        Err(topo::TopoError::Interrupted) => return Err(BedError::Interrupted),
        Err(topo::TopoError::UpFailed { source, .. })
            if matches!(*source, topo::TopoError::Interrupted) =>
        {
            return Err(BedError::Interrupted)
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!("topology `{}` up in {:?}", topo.name, t0.elapsed());
    let mut st = BedState {
        topology: topo.name.clone(),
        prefix: topo.prefix.clone(),
        state_dir: state.root().to_path_buf(),
        run_dir: run_dir.clone(),
        started_unix,
        namespaces: topo
            .nodes
            .iter()
            .map(|n| (n.name.clone(), topo.ns_name(&n.name)))
            .collect(),
        plan: plan.clone(),
        procs: Vec::new(),
        ready: false,
    };
    let res = start_daemons(&mut st, &running, &bins, &log_dir, &cfg_dir, opts, &cancel);
    match res {
        Ok(()) => {
            st.ready = true;
            save(&st)?;
            Ok(st)
        }
        Err(e) => {
            tracing::warn!("up failed, removing everything: {e}");
            teardown(&st);
            let _ = std::fs::remove_file(&sf);
            Err(e)
        }
    }
}

fn start_daemons(
    st: &mut BedState,
    running: &topo::Running,
    bins: &[(Role, PathBuf)],
    log_dir: &Path,
    cfg_dir: &Path,
    opts: &UpOpts,
    cancel: &AtomicBool,
) -> Result<(), BedError> {
    save(st)?;
    let timeout = opts.ready_timeout.unwrap_or(Duration::from_secs(20));
    let plan = st.plan.clone();
    for d in &plan.daemons {
        if cancel.load(Ordering::SeqCst) {
            return Err(BedError::Interrupted);
        }
        let bin = bins
            .iter()
            .find(|(r, _)| *r == d.role)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let cfg = cfg_dir.join(&d.config_file);
        let log = log_dir.join(format!("{}.log", d.name));
        let ns = st.ns(&d.node);
        let args: Vec<String> = d
            .args
            .iter()
            .map(|a| a.replace("@RUN@", &st.run_dir.display().to_string()))
            .collect();
        let mut child = spawn_daemon(&ns, &bin, &cfg, &args, &log, false)?;
        let pid = child.id() as i32;
        let start = topo::state::proc_start_time(pid).unwrap_or(0);
        let rec = ProcRec {
            name: d.name.clone(),
            role: d.role,
            node: d.node.clone(),
            netns: st.ns(&d.node),
            pid,
            start,
            config: cfg.clone(),
            log: log.clone(),
            api: d.api.to_string(),
            args,
        };
        st.procs.push(rec.clone());
        save(st)?;
        journal_proc(running.state(), &running.topology().name, pid, start, &cfg);
        tracing::info!(daemon = %d.name, pid, "started; waiting until ready");
        let t = Instant::now();
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(BedError::Interrupted);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BedError::NotReady {
                    daemon: d.name.clone(),
                    reason: format!("exited with {status}"),
                    tail: log_tail(&log, 4000),
                    log,
                });
            }
            match check(st, &rec) {
                Ok(()) => break,
                Err(why) if t.elapsed() > timeout => {
                    return Err(BedError::NotReady {
                        daemon: d.name.clone(),
                        reason: format!("not healthy after {timeout:?}: {why}"),
                        tail: log_tail(&log, 4000),
                        log,
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        tracing::info!(daemon = %d.name, "ready in {:?}", t.elapsed());
    }
    Ok(())
}

/// Starts `bin run --config cfg` (or `bin ARGS...` when `args` is not
/// empty) in namespace `ns`, output to `log`.
fn spawn_daemon(
    ns: &str,
    bin: &Path,
    cfg: &Path,
    args: &[String],
    log: &Path,
    append: bool,
) -> Result<Child, BedError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)
        .map_err(io("open", log))?;
    let err = out.try_clone().map_err(io("open", log))?;
    let mut cmd = topo::engine::command_in(ns, bin)?;
    if args.is_empty() {
        cmd.arg("run").arg("--config").arg(cfg);
    } else {
        cmd.args(args);
    }
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Own process group: a Ctrl-C at the terminal reaches testbed,
        // which stops the daemons in order.
        .process_group(0);
    cmd.spawn().map_err(io("start", bin))
}

/// Stops one daemon (SIGKILL at once with `kill`, as a crash would) and
/// starts it again with the same configuration, appending to its log;
/// returns once it passes its health check.
pub fn restart(
    state_dir_opt: Option<&Path>,
    bin_dir: Option<&Path>,
    name: &str,
    kill: bool,
    timeout: Duration,
) -> Result<ProcRec, BedError> {
    let mut st = load_one(state_dir_opt)?;
    let idx = st
        .procs
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| {
            let known: Vec<_> = st.procs.iter().map(|p| p.name.as_str()).collect();
            BedError::Usage(format!(
                "no daemon `{name}` (daemons: {})",
                known.join(", ")
            ))
        })?;
    let old = st.procs[idx].clone();
    if kill {
        if alive(&old) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(old.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let t = Instant::now();
            while alive(&old) && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    } else {
        stop_proc(old.pid, old.start, Duration::from_secs(5));
    }
    let bin = bin_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(default_bin_dir)
        .join(old.role.binary());
    let mut child = spawn_daemon(&old.netns, &bin, &old.config, &old.args, &old.log, true)?;
    let pid = child.id() as i32;
    let start = topo::state::proc_start_time(pid).unwrap_or(0);
    let rec = ProcRec { pid, start, ..old };
    st.procs[idx] = rec.clone();
    save(&st)?;
    journal_proc(
        &StateDir::new(&st.state_dir),
        &st.topology,
        pid,
        start,
        &rec.config,
    );
    let t = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BedError::NotReady {
                daemon: name.into(),
                reason: format!("exited with {status}"),
                tail: log_tail(&rec.log, 4000),
                log: rec.log.clone(),
            });
        }
        match check(&st, &rec) {
            Ok(()) => return Ok(rec),
            Err(why) if t.elapsed() > timeout => {
                return Err(BedError::NotReady {
                    daemon: name.into(),
                    reason: format!("not healthy after {timeout:?}: {why}"),
                    tail: log_tail(&rec.log, 4000),
                    log: rec.log.clone(),
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Appends a daemon to topo's journal, so that `topo down` stops it too.
fn journal_proc(state: &StateDir, name: &str, pid: i32, start: u64, cfg: &Path) {
    let r = (|| -> Result<(), topo::state::StateError> {
        let _lock = state.lock(name, true)?;
        let mut j = topo::state::Journal::open(state, name)?;
        j.append(&[topo::state::Entry::Proc {
            pid,
            start,
            config: cfg.to_path_buf(),
        }])
    })();
    if let Err(e) = r {
        tracing::warn!("could not journal pid {pid} with topo: {e}");
    }
}

/// Stops the daemons (reverse order) and removes the topology.
fn teardown(st: &BedState) -> (usize, usize) {
    let mut stopped = 0;
    for p in st.procs.iter().rev() {
        if stop_proc(p.pid, p.start, Duration::from_secs(5)) {
            stopped += 1;
        }
    }
    let state = StateDir::new(&st.state_dir);
    let ns = match topo::down(&st.topology, &state) {
        Ok(r) => r.namespaces,
        Err(e) => {
            tracing::error!("topo down `{}`: {e}", st.topology);
            0
        }
    };
    (stopped, ns)
}

/// What `down` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DownSummary {
    /// Topologies taken down.
    pub topologies: Vec<String>,
    /// Daemons stopped.
    pub daemons: usize,
    /// Namespaces removed.
    pub namespaces: usize,
}

/// Brings the testbed up, runs `f` on it, and takes it down again unless
/// `keep` and `f` succeeded: everything made is removed also when `f`
/// fails. `f`'s result, and whether the testbed was kept.
pub fn up_run_down<T>(
    opts: &UpOpts,
    keep: bool,
    on_progress: &mut dyn FnMut(&str),
    f: impl FnOnce(&BedState, &mut dyn FnMut(&str)) -> Result<T, BedError>,
) -> Result<(T, bool), BedError> {
    let st = up(opts)?;
    on_progress(&format!(
        "testbed `{}` is up (run folder {})",
        st.topology,
        st.run_dir.display()
    ));
    let r = f(&st, on_progress);
    let kept = keep && r.is_ok();
    if !kept {
        down(opts.state_dir.as_deref())?;
        on_progress("testbed down: every daemon stopped, every namespace removed");
    }
    Ok((r?, kept))
}

/// Stops every testbed of the state dir. Harmless when nothing is up.
pub fn down(state_dir_opt: Option<&Path>) -> Result<DownSummary, BedError> {
    let mut sum = DownSummary::default();
    let state = state_dir(state_dir_opt);
    for st in load_all(state_dir_opt)? {
        let (d, n) = teardown(&st);
        sum.daemons += d;
        sum.namespaces += n;
        sum.topologies.push(st.topology.clone());
        let f = state_file(&state, &st.topology);
        std::fs::remove_file(&f).map_err(io("remove", &f))?;
    }
    Ok(sum)
}

// ---- status -----------------------------------------------------------------

/// One daemon in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Namespace.
    pub netns: String,
    /// pid.
    pub pid: i32,
    /// Whether it runs.
    pub running: bool,
    /// API address.
    pub api: String,
    /// Log.
    pub log: PathBuf,
    /// Its counters: Prometheus samples (name{labels} -> value).
    pub counters: Vec<(String, f64)>,
    /// Why counters are missing, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `testbed status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Topology.
    pub topology: String,
    /// Run folder.
    pub run_dir: PathBuf,
    /// Daemons.
    pub daemons: Vec<DaemonStatus>,
    /// The SMF's UPF view (`GET /upfs`).
    pub upfs: serde_json::Value,
    /// PDU sessions (`GET /sessions` of the SMF).
    pub sessions: serde_json::Value,
    /// Tunnels of each gNB (`GET /tunnels`).
    pub tunnels: Vec<(String, serde_json::Value)>,
}

/// Parses Prometheus text into (series, value), skipping comments.
pub fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.trim().rsplit_once(' ')?;
            Some((k.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Gathers the status of the testbed that is up.
pub fn status(state_dir_opt: Option<&Path>) -> Result<Status, BedError> {
    let st = load_one(state_dir_opt)?;
    let mut daemons = Vec::new();
    for p in &st.procs {
        let running = alive(p);
        let url = match p.role {
            Role::Smf => format!("http://{}/metrics", st.plan.smf_api),
            _ => format!("http://{}/metrics", p.api),
        };
        let (counters, error) = if !running {
            (Vec::new(), Some("not running".to_string()))
        } else if url.is_empty() {
            (Vec::new(), None)
        } else {
            match http_in(&p.netns, "GET", &url, None, Duration::from_secs(3)) {
                Ok((200, body)) => (parse_prometheus(&body), None),
                Ok((code, body)) => (
                    Vec::new(),
                    Some(format!("{url}: HTTP {code}: {}", body.trim())),
                ),
                Err(e) => (Vec::new(), Some(e)),
            }
        };
        daemons.push(DaemonStatus {
            name: p.name.clone(),
            role: p.role,
            netns: p.netns.clone(),
            pid: p.pid,
            running,
            api: p.api.clone(),
            log: p.log.clone(),
            counters,
            error,
        });
    }
    let smf_ns = st.ns(&st.plan.smf_node);
    let err = |e: String| serde_json::json!({ "error": e });
    let sessions =
        get_json(&smf_ns, &format!("http://{}/sessions", st.plan.smf_api)).unwrap_or_else(err);
    let upfs = get_json(&smf_ns, &format!("http://{}/upfs", st.plan.smf_api)).unwrap_or_else(err);
    let tunnels = st
        .plan
        .gnbs
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                get_json(&st.ns(&g.name), &format!("http://{}/tunnels", g.n2_api))
                    .unwrap_or_else(err),
            )
        })
        .collect();
    Ok(Status {
        topology: st.topology.clone(),
        run_dir: st.run_dir.clone(),
        daemons,
        upfs,
        sessions,
        tunnels,
    })
}

// ---- sessions ---------------------------------------------------------------

/// Runs `ue session ARGS...` in the UE's namespace with its configuration;
/// returns its stdout.
pub fn ue_session(
    state_dir_opt: Option<&Path>,
    bin_dir: Option<&Path>,
    ue: &str,
    args: &[String],
) -> Result<String, BedError> {
    let st = load_one(state_dir_opt)?;
    let rec = st
        .procs
        .iter()
        .find(|p| p.role == Role::Ue && p.name == ue)
        .ok_or_else(|| {
            let known: Vec<_> = st.plan.ues.iter().map(|u| u.name.as_str()).collect();
            BedError::Usage(format!("no UE `{ue}` (UEs: {})", known.join(", ")))
        })?;
    let bin = bin_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(default_bin_dir)
        .join(Role::Ue.binary());
    let out = topo::engine::command_in(&rec.netns, &bin)?
        .arg("session")
        .arg("--config")
        .arg(&rec.config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io("run", &bin))?;
    if !out.status.success() {
        return Err(BedError::Request(format!(
            "ue {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Picks the DNN of a session request: the given one, else the named UPF's,
/// else the first UPF's.
pub fn pick_dnn(plan: &Plan, dnn: Option<&str>, upf: Option<&str>) -> Result<String, BedError> {
    if let Some(d) = dnn {
        return Ok(d.to_string());
    }
    let u = match upf {
        Some(name) => plan.upf(name).ok_or_else(|| {
            let known: Vec<_> = plan.upfs.iter().map(|u| u.name.as_str()).collect();
            BedError::Usage(format!("no UPF `{name}` (UPFs: {})", known.join(", ")))
        })?,
        None => plan
            .upfs
            .first()
            .ok_or_else(|| BedError::Usage("the plan has no UPF".into()))?,
    };
    Ok(u.dnn.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_795_564_800 + 3661), "20261125-010101");
    }

    #[test]
    fn prometheus_parse() {
        let v = parse_prometheus("# HELP x\nx_total 3\ny{a=\"b c\"} 1.5\n\n");
        assert_eq!(
            v,
            vec![("x_total".into(), 3.0), ("y{a=\"b c\"}".into(), 1.5)]
        );
    }

    #[test]
    fn dnn_choice() {
        let p = Plan::derive(&Topology::paper_default()).expect("plan");
        assert_eq!(pick_dnn(&p, None, Some("upf2")).expect("dnn"), "edge2");
        assert_eq!(pick_dnn(&p, None, None).expect("dnn"), "edge1");
        assert_eq!(pick_dnn(&p, Some("x"), None).expect("dnn"), "x");
        assert!(pick_dnn(&p, None, Some("upf9")).is_err());
    }
}
