//! Daemon processes: finding their binaries, starting one in a namespace
//! with its log, telling whether it still runs, stopping it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{io, BedError, ProcRec};
use crate::plan::{Plan, Role};

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

pub(super) fn find_bins(bin_dir: &Path, plan: &Plan) -> Result<Vec<(Role, PathBuf)>, BedError> {
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

/// Starts `bin run --config cfg` (or `bin ARGS...` when `args` is not
/// empty) in namespace `ns`, output to `log`.
pub(super) fn spawn_daemon(
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
