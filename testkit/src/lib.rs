//! The test kit every crate's tests share (a dev-only crate): network
//! namespaces and processes with cleanup guards, temporary files, waiting
//! for a condition with a deadline, and the gates for tests that need root
//! or an external tool. [`gnb`] adds a small UE -- gNB -- UPF topology, a
//! fake UPF that answers G-PDUs, and a fake SMF that drives the gNB's
//! N2-lite API the way the real SMF does.
//!
//! Every guard removes what it made on drop, also when a test panics.
//!
//! Tests that need root carry `#[ignore = "needs root: ..."]`, so that a
//! plain `cargo test` reports them as not run; `./minedge test` runs them
//! as root (`--include-ignored`), and they call [`require_root`] first, so
//! that a run of them without root fails instead of passing silently.

pub mod gnb;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A harness step failed (the message says which command and why).
pub type KitResult<T> = Result<T, String>;

/// Runs a command, failing with its stderr.
pub fn run_cmd(prog: &str, args: &[&str]) -> KitResult<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| format!("{prog} {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NS ARGS...`.
pub fn ip_in(ns: &str, args: &[&str]) -> KitResult<String> {
    let mut v = vec!["-n", ns];
    v.extend_from_slice(args);
    run_cmd("ip", &v)
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call (`PREFIX` + pid + counter),
/// for namespaces that tests running in parallel must not share.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    pub fn new(name: &str) -> KitResult<Netns> {
        run_cmd("ip", &["netns", "add", name])?;
        let ns = Netns { name: name.into() };
        ip_in(name, &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> KitResult<String> {
        ip_in(&self.name, args)
    }

    /// A veth pair: `ifname` here, `peer_ifname` in `peer` (both down).
    pub fn veth(&self, ifname: &str, peer: &Netns, peer_ifname: &str) -> KitResult<String> {
        self.ip(&[
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            peer_ifname,
            "netns",
            &peer.name,
        ])
    }

    /// Adds `addr` (with its prefix length) to `ifname` and sets it up.
    pub fn addr_up(&self, ifname: &str, addr: &str) -> KitResult<()> {
        self.ip(&["addr", "add", addr, "dev", ifname])?;
        self.ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens stay
    /// there) and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> KitResult<T> {
        self.spawn(f)?
            .join()
            .map_err(|_| format!("thread in {} panicked", self.name))
    }

    /// Starts `f` on a thread inside the namespace. Threads it starts
    /// (a tokio runtime's workers) are in the namespace too.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> KitResult<JoinHandle<T>> {
        spawn_in(&self.name, f)
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn udp(&self, addr: impl Into<SocketAddr>) -> KitResult<UdpSocket> {
        udp_in(&self.name, addr)
    }

    /// Starts a program inside the namespace (`ip netns exec`); it is
    /// stopped (SIGTERM, then SIGKILL) when the guard drops.
    pub fn spawn_process(&self, prog: &str, args: &[&str]) -> KitResult<Process> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {prog}: {e}"))?;
        Ok(Process { child: Some(child) })
    }
}

/// Starts `f` on a thread inside the namespace named `ns` (one this kit
/// did not make too, such as a testbed's). Threads it starts are in the
/// namespace too.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> KitResult<JoinHandle<T>> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    std::thread::Builder::new()
        .name(format!("ns-{ns}"))
        .spawn(move || {
            // The thread was just made for this: if it cannot enter the
            // namespace, nothing it would do is meaningful.
            #[allow(clippy::expect_used)]
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns into an existing namespace");
            f()
        })
        .map_err(|e| format!("spawn thread: {e}"))
}

/// A UDP socket bound to `addr` inside the namespace named `ns`.
pub fn udp_in(ns: &str, addr: impl Into<SocketAddr>) -> KitResult<UdpSocket> {
    let addr = addr.into();
    spawn_in(ns, move || UdpSocket::bind(addr))?
        .join()
        .map_err(|_| format!("thread in {ns} panicked"))?
        .map_err(|e| format!("bind {addr} in {ns}: {e}"))
}

/// A UDP server on a thread, stopped and joined on drop (see
/// [`udp_server`]).
#[derive(Debug)]
pub struct UdpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves on `sock` from a thread: each datagram it receives goes to
/// `answer` with its sender (and the socket, to answer on) until the guard
/// drops. The socket's read timeout becomes 20 ms: how often the thread
/// looks whether it is to stop.
pub fn udp_server(
    sock: UdpSocket,
    mut answer: impl FnMut(&UdpSocket, &[u8], SocketAddr) + Send + 'static,
) -> KitResult<UdpServer> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| format!("UDP read timeout: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("udp-server".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    answer(&sock, &buf[..n], from);
                }
            }
        })
        .map_err(|e| format!("spawn thread: {e}"))?;
    Ok(UdpServer {
        stop,
        thread: Some(thread),
    })
}

/// A UDP echo on `sock`: every datagram goes back to its sender, until the
/// guard drops.
pub fn udp_echo(sock: UdpSocket) -> KitResult<UdpServer> {
    udp_server(sock, |s, data, from| {
        let _ = s.send_to(data, from);
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_cmd("ip", &["netns", "del", &self.name]);
    }
}

/// A child process killed (SIGKILL) and reaped on drop, also when a test
/// panics; `.0` is the child, for its pid, signals and `try_wait`.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Sends SIGTERM (panics if it cannot be sent) and waits up to `within`
    /// for the exit: its status, `None` if the child still runs (it is then
    /// killed on drop).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = i32::try_from(self.0.id()).expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM to the child");
        let mut status = None;
        wait_until(within, || {
            status = self.0.try_wait().expect("wait");
            status.is_some()
        });
        status
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process, stopped on drop.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
}

impl Process {
    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its threads' names and scheduling policies (`libc::SCHED_*`), from
    /// `/proc/<pid>/task/*/stat`.
    pub fn thread_policies(&self) -> Vec<(String, i32)> {
        let Some(pid) = self.id() else {
            return Vec::new();
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                // "tid (comm) state ...": the name may hold spaces, the
                // policy is the 41st field, the 39th after the name.
                let (head, rest) = stat.rsplit_once(") ")?;
                let name = head.split_once(" (")?.1.to_string();
                let policy = rest.split_whitespace().nth(38)?.parse().ok()?;
                Some((name, policy))
            })
            .collect()
    }

    /// Kills it with SIGKILL (a crash: nothing of its clean-up runs) and
    /// reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `grace` before SIGKILL; returns whether
    /// it exited on its own with success.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(st)) = child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A thread that runs a server until told to stop: on drop it is sent the
/// stop message and joined (the in-process daemons and fakes of tests).
#[derive(Debug)]
pub struct StopOnDrop<T> {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<T>>,
}

impl<T> StopOnDrop<T> {
    /// Guards `thread`, which ends when `stop` is sent to.
    pub fn new(stop: tokio::sync::oneshot::Sender<()>, thread: JoinHandle<T>) -> StopOnDrop<T> {
        StopOnDrop {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Whether the thread has ended on its own.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// Joins the thread (without a stop message): what it ended with.
    pub fn join(mut self) -> Option<std::thread::Result<T>> {
        self.thread.take().map(|t| t.join())
    }
}

impl<T> Drop for StopOnDrop<T> {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `f` is true, polling every 20 ms, at most `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test unless it runs as root. For tests marked
/// `#[ignore = "needs root: ..."]`, which only run when asked for.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (network namespaces, TUN, tc): run it as root, e.g. `./minedge test`"
    );
}

/// Fails the test unless `tool` is on the PATH (the test command installs
/// every tool the tests use; a test never skips for want of one).
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{tool}` on the PATH: `./minedge test` installs it (Debian package names in the README)"
    );
}

/// A file removed on drop.
#[derive(Debug)]
pub struct TempFile {
    path: String,
}

impl TempFile {
    /// Writes `text` to a new file in the temporary directory.
    pub fn new(name: &str, text: &str) -> KitResult<TempFile> {
        let path = std::env::temp_dir().join(name).display().to_string();
        std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))?;
        Ok(TempFile { path })
    }
    /// Its path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A directory removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
