//! Userspace link emulator: delay, jitter and loss where the kernel has no netem.
//!
//! An impaired link A↔B is built as `A:if ⇄ veth ⇄ [emu ns]:port_a`,
//! `[emu ns]:port_b ⇄ veth ⇄ B:if`; the emulator bridges layer-2 frames between
//! the two ports through AF_PACKET sockets, one thread per direction. Each thread
//! owns an [`ImpairedQueue`] (the I/O-free core in [`core`]): it receives frames
//! straight into the queue's ring, and sleeps in `ppoll` with a nanosecond timeout
//! (1 ns timer slack) until the oldest frame is due.
//!
//! Frames carry a virtio-net header (`PACKET_VNET_HDR` on both sockets), so TSO/GSO
//! super-packets of up to 64 KiB pass through unsegmented with their checksum and
//! segmentation metadata: the endpoints keep their offloads on.
//!
//! Rate shaping stays on the endpoints (htb); the emulator only does delay, jitter
//! and loss. Ports should carry no addresses (and no IPv6, so the emulator's
//! namespace sends nothing of its own on them).

pub mod core;
mod sys;

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use self::core::{ImpairedQueue, QueueLimits, QueueStats, SplitMix64, Verdict};
pub use self::sys::{setsockopt, setsockopt_int, sockaddr_in};

/// Impairment of one direction of a link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// Added one-way delay, microseconds.
    pub delay_us: u64,
    /// Jitter, microseconds: each frame's delay is uniform in `delay ± jitter`
    /// (clamped at 0); frames are never reordered.
    pub jitter_us: u64,
    /// Loss probability, parts per million.
    pub loss_ppm: u32,
}

/// Configuration of one emulator instance (written as JSON by `topo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmuConfig {
    /// Network namespace (name under /run/netns) holding the ports; None: current.
    pub netns: Option<String>,
    /// Port towards A.
    pub port_a: String,
    /// Port towards B.
    pub port_b: String,
    /// Impairment of frames entering at `port_a` and leaving at `port_b`.
    pub a_to_b: Impairment,
    /// Impairment of frames entering at `port_b` and leaving at `port_a`.
    pub b_to_a: Impairment,
    /// Seed of the loss/jitter PRNG (the two directions use derived seeds).
    pub seed: u64,
}

impl EmuConfig {
    /// Read a JSON configuration file.
    pub fn read_file(path: &Path) -> Result<EmuConfig, EmuError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmuError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| EmuError::ConfigParse {
            path: path.to_owned(),
            source,
        })
    }

    /// Write this configuration as JSON (atomically: temporary file, then rename),
    /// so that an emulator reloading on SIGHUP never reads a half-written file.
    pub fn write_file(&self, path: &Path) -> Result<(), EmuError> {
        let err = |source| EmuError::ConfigWrite {
            path: path.to_owned(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.into()))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    fn validate(&self) -> Result<(), EmuError> {
        if self.port_a.is_empty() || self.port_b.is_empty() {
            return Err(EmuError::InvalidConfig(
                "port names must not be empty".into(),
            ));
        }
        if self.port_a == self.port_b {
            return Err(EmuError::InvalidConfig(format!(
                "port_a and port_b are both {:?}",
                self.port_a
            )));
        }
        for (dir, imp) in [("a_to_b", &self.a_to_b), ("b_to_a", &self.b_to_a)] {
            if imp.loss_ppm > 1_000_000 {
                return Err(EmuError::InvalidConfig(format!(
                    "{dir}.loss_ppm {} exceeds 1000000",
                    imp.loss_ppm
                )));
            }
        }
        Ok(())
    }
}

/// Errors of the link emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// Cannot read the configuration file.
    #[error("cannot read emulator config {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration file is not valid JSON for [`EmuConfig`].
    #[error("invalid emulator config {path}: {source}")]
    ConfigParse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Cannot write the configuration file.
    #[error("cannot write emulator config {path}: {source}")]
    ConfigWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid emulator config: {0}")]
    InvalidConfig(String),
    /// Cannot enter the network namespace.
    #[error("cannot enter network namespace {name:?}: {source}")]
    Netns {
        name: String,
        source: std::io::Error,
    },
    /// A port does not exist in the namespace.
    #[error("no interface {name:?} in the emulator's namespace: {source}")]
    NoSuchPort {
        name: String,
        source: std::io::Error,
    },
    /// Opening or configuring a packet socket failed.
    #[error("packet socket on {port}: {source}")]
    Socket {
        port: String,
        source: std::io::Error,
    },
    /// An unexpected system call failure in the data path.
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("emulator thread {0} panicked")]
    ThreadPanic(&'static str),
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirStats {
    /// Frames received on the ingress port.
    pub rx_frames: u64,
    /// Bytes received (layer 2, without the virtio-net header).
    pub rx_bytes: u64,
    /// Frames sent out of the egress port.
    pub forwarded: u64,
    /// Bytes sent (layer 2).
    pub forwarded_bytes: u64,
    /// Frames dropped by the loss impairment.
    pub lost: u64,
    /// Frames dropped because the queue was full (drop-tail).
    pub queue_full: u64,
    /// Frames received truncated or malformed, and receive errors.
    pub rx_errors: u64,
    /// Frames the egress port refused (e.g. ENOBUFS).
    pub tx_errors: u64,
}

/// Counters of both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmuStats {
    /// port_a → port_b.
    pub a_to_b: DirStats,
    /// port_b → port_a.
    pub b_to_a: DirStats,
}

#[derive(Debug, Default)]
struct DirCounters {
    rx_frames: AtomicU64,
    rx_bytes: AtomicU64,
    forwarded: AtomicU64,
    forwarded_bytes: AtomicU64,
    lost: AtomicU64,
    queue_full: AtomicU64,
    rx_errors: AtomicU64,
    tx_errors: AtomicU64,
}

impl DirCounters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> DirStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirStats {
            rx_frames: g(&self.rx_frames),
            rx_bytes: g(&self.rx_bytes),
            forwarded: g(&self.forwarded),
            forwarded_bytes: g(&self.forwarded_bytes),
            lost: g(&self.lost),
            queue_full: g(&self.queue_full),
            rx_errors: g(&self.rx_errors),
            tx_errors: g(&self.tx_errors),
        }
    }
}

#[derive(Debug, Default)]
struct ControlInner {
    stop: AtomicBool,
    /// eventfd the workers poll; readable once stop is requested.
    wake: Mutex<Option<OwnedFd>>,
    /// Bumped by every impairment update.
    generation: AtomicU64,
    /// Latest update (a_to_b, b_to_a).
    update: Mutex<Option<(Impairment, Impairment)>>,
    ready: Mutex<bool>,
    ready_cv: Condvar,
    a_to_b: DirCounters,
    b_to_a: DirCounters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the
    // data (plain values) is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handle to steer a running emulator: change impairments, stop it, read counters.
/// Cheap to clone; all clones control the same instance.
#[derive(Clone, Debug, Default)]
pub struct EmuControl {
    inner: Arc<ControlInner>,
}

impl EmuControl {
    /// A fresh handle, to pass to [`run`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the impairments; they apply to frames received after this call.
    pub fn set_impairments(&self, a_to_b: Impairment, b_to_a: Impairment) {
        *lock(&self.inner.update) = Some((a_to_b, b_to_a));
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// Ask [`run`] to return; it does within a millisecond or so.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(fd) = lock(&self.inner.wake).as_ref() {
            sys::eventfd_signal(fd.as_raw_fd());
        }
    }

    /// True once stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    /// Wait until both ports are open (true) or `timeout` passes (false).
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ready = lock(&self.inner.ready);
        while !*ready {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            ready = match self.inner.ready_cv.wait_timeout(ready, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }

    /// Counters so far (live while running).
    pub fn stats(&self) -> EmuStats {
        EmuStats {
            a_to_b: self.inner.a_to_b.snapshot(),
            b_to_a: self.inner.b_to_a.snapshot(),
        }
    }

    fn set_ready(&self) {
        *lock(&self.inner.ready) = true;
        self.inner.ready_cv.notify_all();
    }
}

/// Receive frames per readiness event before transmitting again.
const RX_BATCH: usize = 64;
/// SCHED_FIFO priority of the worker threads (best effort).
const RT_PRIORITY: libc::c_int = 10;
/// Socket buffer sizes (force-set as root).
const SOCK_BUF: usize = 8 * 1024 * 1024;
/// Seed mixing constant for the second direction.
const SEED_B_TO_A: u64 = 0xD1B5_4A32_D192_ED03;

/// Logs at most once per second per kind; counts what it suppressed.
#[derive(Debug, Default)]
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    fn warn(&mut self, dir: &str, what: &str, err: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(dir, suppressed = self.suppressed, "{what}: {err}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[derive(Debug)]
struct Ports {
    rx_a: OwnedFd,
    tx_a: OwnedFd,
    rx_b: OwnedFd,
    tx_b: OwnedFd,
    ignore_outgoing: bool,
}

impl Ports {
    /// Close the sockets concurrently: closing an AF_PACKET socket waits for an RCU
    /// grace period (about 10 ms here); four in a row would delay shutdown by ~50 ms.
    fn close(self) {
        let Ports {
            rx_a,
            tx_a,
            rx_b,
            tx_b,
            ..
        } = self;
        thread::scope(|s| {
            for fd in [rx_a, tx_a, rx_b, tx_b] {
                // If the thread cannot be spawned the closure (and the fd) is dropped
                // here, which closes it sequentially: slower, still correct.
                let _ = thread::Builder::new().spawn_scoped(s, move || drop(fd));
            }
        });
    }
}

fn open_ports(cfg: &EmuConfig) -> Result<Ports, EmuError> {
    let open = |name: &str| -> Result<(OwnedFd, OwnedFd, bool), EmuError> {
        let idx = sys::ifindex(name).map_err(|source| EmuError::NoSuchPort {
            name: name.to_owned(),
            source,
        })?;
        let sock_err = |source| EmuError::Socket {
            port: name.to_owned(),
            source,
        };
        let (rx, opts) = sys::open_rx(idx, SOCK_BUF).map_err(sock_err)?;
        let tx = sys::open_tx(idx, SOCK_BUF).map_err(sock_err)?;
        Ok((rx, tx, opts.ignore_outgoing))
    };
    let open_both = || -> Result<Ports, EmuError> {
        let (rx_a, tx_a, ia) = open(&cfg.port_a)?;
        let (rx_b, tx_b, ib) = open(&cfg.port_b)?;
        Ok(Ports {
            rx_a,
            tx_a,
            rx_b,
            tx_b,
            ignore_outgoing: ia && ib,
        })
    };
    match &cfg.netns {
        None => open_both(),
        // setns changes only the calling thread: do it on a short-lived thread. The
        // sockets stay in that namespace for their whole life.
        Some(ns) => thread::scope(|s| {
            s.spawn(|| {
                sys::enter_netns(ns).map_err(|source| EmuError::Netns {
                    name: ns.clone(),
                    source,
                })?;
                open_both()
            })
            .join()
            .map_err(|_| EmuError::ThreadPanic("open ports"))?
        }),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    AToB,
    BToA,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::AToB => "a_to_b",
            Dir::BToA => "b_to_a",
        }
    }
}

struct Worker<'a> {
    dir: Dir,
    rx: RawFd,
    tx: RawFd,
    wake: RawFd,
    filter_outgoing: bool,
    queue: ImpairedQueue,
    ctl: &'a ControlInner,
    counters: &'a DirCounters,
    generation: u64,
    rx_log: RateLimited,
    tx_log: RateLimited,
}

impl Worker<'_> {
    fn transmit_due(&mut self, now: Instant) {
        while let Some(frame) = self.queue.pop_due(now) {
            match sys::send_frame(self.tx, frame) {
                Ok(()) => {
                    DirCounters::add(&self.counters.forwarded, 1);
                    DirCounters::add(
                        &self.counters.forwarded_bytes,
                        frame.len().saturating_sub(sys::VNET_HDR_LEN) as u64,
                    );
                }
                Err(e) => {
                    DirCounters::add(&self.counters.tx_errors, 1);
                    self.tx_log.warn(self.dir.name(), "transmit failed", &e);
                }
            }
        }
    }

    fn poll_config(&mut self) {
        let g = self.ctl.generation.load(Ordering::Acquire);
        if g == self.generation {
            return;
        }
        self.generation = g;
        if let Some((ab, ba)) = lock(&self.ctl.update).clone() {
            let imp = match self.dir {
                Dir::AToB => ab,
                Dir::BToA => ba,
            };
            tracing::debug!(dir = self.dir.name(), ?imp, "impairment updated");
            self.queue.set_impairment(imp);
        }
    }

    fn receive_batch(&mut self) {
        for _ in 0..RX_BATCH {
            let slot = self.queue.rx_slot();
            let cap = slot.len();
            match sys::recv_frame(self.rx, slot) {
                Ok(None) => return,
                Ok(Some((_, pkttype)))
                    if self.filter_outgoing && pkttype == sys::PACKET_OUTGOING => {}
                Ok(Some((len, _))) => {
                    let now = Instant::now();
                    DirCounters::add(&self.counters.rx_frames, 1);
                    DirCounters::add(
                        &self.counters.rx_bytes,
                        len.saturating_sub(sys::VNET_HDR_LEN) as u64,
                    );
                    if len > cap || len <= sys::VNET_HDR_LEN {
                        DirCounters::add(&self.counters.rx_errors, 1);
                        self.rx_log.warn(
                            self.dir.name(),
                            "frame dropped",
                            &format_args!("length {len} (buffer {cap})"),
                        );
                        continue;
                    }
                    match self.queue.commit(now, len) {
                        Verdict::Queued { .. } => {}
                        Verdict::Lost => DirCounters::add(&self.counters.lost, 1),
                        Verdict::QueueFull => DirCounters::add(&self.counters.queue_full, 1),
                        Verdict::Invalid => DirCounters::add(&self.counters.rx_errors, 1),
                    }
                    // Frames due now (no delay) leave at once.
                    self.transmit_due(now);
                }
                Err(e) => {
                    // ENETDOWN when the port goes down, and the like: reported once
                    // per event by the kernel, so no busy loop.
                    DirCounters::add(&self.counters.rx_errors, 1);
                    self.rx_log.warn(self.dir.name(), "receive failed", &e);
                    return;
                }
            }
        }
    }

    fn run(mut self) -> Result<(), EmuError> {
        sys::precise_timer_slack();
        if let Err(e) = sys::realtime_priority(RT_PRIORITY) {
            tracing::info!(
                dir = self.dir.name(),
                "no real-time priority ({e}); delays may stretch when CPUs are busy"
            );
        }
        loop {
            if self.ctl.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.transmit_due(Instant::now());
            let timeout = self
                .queue
                .next_due()
                .map(|due| due.saturating_duration_since(Instant::now()));
            let ready =
                sys::ppoll2(self.rx, self.wake, timeout).map_err(|source| EmuError::Sys {
                    what: "ppoll",
                    source,
                })?;
            if ready.first {
                self.poll_config();
                self.receive_batch();
            }
        }
    }
}

/// Run the emulator until [`EmuControl::stop`]; returns the final counters.
///
/// Opens both ports (entering `cfg.netns` on a helper thread), marks the control
/// ready, then forwards frames on two threads (one per direction) applying the
/// impairments.
pub fn run(cfg: EmuConfig, control: EmuControl) -> Result<EmuStats, EmuError> {
    run_inner(&cfg, &control, || {})
}

fn run_inner(
    cfg: &EmuConfig,
    control: &EmuControl,
    on_ready: impl FnOnce(),
) -> Result<EmuStats, EmuError> {
    cfg.validate()?;
    let ports = open_ports(cfg)?;
    let wake = sys::eventfd().map_err(|source| EmuError::Sys {
        what: "eventfd",
        source,
    })?;
    let wake_fd = wake.as_raw_fd();
    *lock(&control.inner.wake) = Some(wake);
    // A stop() that came before the eventfd existed set the flag; make it visible.
    if control.is_stopped() {
        control.stop();
    }
    let ctl = &*control.inner;
    let generation = ctl.generation.load(Ordering::Acquire);
    let limits = QueueLimits::default();
    let make = |dir, rx: &OwnedFd, tx: &OwnedFd, imp: &Impairment, seed, counters| Worker {
        dir,
        rx: rx.as_raw_fd(),
        tx: tx.as_raw_fd(),
        wake: wake_fd,
        filter_outgoing: !ports.ignore_outgoing,
        queue: ImpairedQueue::new(imp.clone(), seed, limits),
        ctl,
        counters,
        generation,
        rx_log: RateLimited::default(),
        tx_log: RateLimited::default(),
    };
    let ab = make(
        Dir::AToB,
        &ports.rx_a,
        &ports.tx_b,
        &cfg.a_to_b,
        cfg.seed,
        &ctl.a_to_b,
    );
    let ba = make(
        Dir::BToA,
        &ports.rx_b,
        &ports.tx_a,
        &cfg.b_to_a,
        cfg.seed ^ SEED_B_TO_A,
        &ctl.b_to_a,
    );
    // An update made before we read the generation would otherwise be missed.
    let pending = lock(&ctl.update).clone();
    let (mut ab, mut ba) = (ab, ba);
    if let Some((x, y)) = pending {
        ab.queue.set_impairment(x);
        ba.queue.set_impairment(y);
    }
    tracing::info!(
        port_a = %cfg.port_a,
        port_b = %cfg.port_b,
        netns = ?cfg.netns,
        a_to_b = ?cfg.a_to_b,
        b_to_a = ?cfg.b_to_a,
        "link emulator ready"
    );
    control.set_ready();
    on_ready();
    let result = thread::scope(|s| {
        let run_worker = move |w: Worker<'_>| {
            let r = w.run();
            if r.is_err() {
                // A dead direction stops the other one too.
                control.stop();
            }
            r
        };
        let h_ab = thread::Builder::new()
            .name("emu-a2b".into())
            .spawn_scoped(s, move || run_worker(ab))
            .map_err(|source| EmuError::Sys {
                what: "spawn thread",
                source,
            })?;
        let h_ba = thread::Builder::new()
            .name("emu-b2a".into())
            .spawn_scoped(s, move || run_worker(ba));
        let h_ba = match h_ba {
            Ok(h) => h,
            Err(source) => {
                control.stop();
                let _ = h_ab.join();
                return Err(EmuError::Sys {
                    what: "spawn thread",
                    source,
                });
            }
        };
        let r_ab = h_ab.join().map_err(|_| EmuError::ThreadPanic("a_to_b"));
        let r_ba = h_ba.join().map_err(|_| EmuError::ThreadPanic("b_to_a"));
        r_ab.and_then(|r| r).and(r_ba.and_then(|r| r))
    });
    *lock(&control.inner.wake) = None;
    ports.close();
    result?;
    let stats = control.stats();
    tracing::info!(?stats, "link emulator stopped");
    Ok(stats)
}

/// Entry point of `topo emu-run --config FILE`.
///
/// Blocks: bridges L2 frames between `port_a` and `port_b` (AF_PACKET) in `netns`
/// (a name under /run/netns; None = current), applying the impairments; re-reads the
/// JSON config file on SIGHUP (new impairments apply to frames received after the
/// reload); returns when SIGTERM/SIGINT arrives. Prints one line "ready" to stdout
/// (and flushes) once both ports are open. Exit code 0 after a signal-requested
/// stop, 1 on a runtime error, 2 on a bad configuration.
pub fn run_cli(config_path: &Path) -> ExitCode {
    let cfg = match EmuConfig::read_file(config_path).and_then(|c| c.validate().map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("topo emu-run: {e}");
            return ExitCode::from(2);
        }
    };
    let signals = match sys::SignalPipe::install(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("topo emu-run: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let notifier = match signals.notifier() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("topo emu-run: {e}");
            return ExitCode::from(1);
        }
    };
    let control = EmuControl::new();
    let runner = {
        let control = control.clone();
        let cfg = cfg.clone();
        thread::spawn(move || {
            let r = run_inner(&cfg, &control, || {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ready");
                let _ = out.flush();
            });
            // Wake the signal loop: the emulator is done (error or stop).
            sys::notify_fd(notifier.as_raw_fd(), 0);
            r
        })
    };
    loop {
        match signals.wait() {
            Ok(b) if i32::from(b) == libc::SIGHUP => {
                match EmuConfig::read_file(config_path).and_then(|c| c.validate().map(|()| c)) {
                    Ok(new) => {
                        if new.netns != cfg.netns
                            || new.port_a != cfg.port_a
                            || new.port_b != cfg.port_b
                        {
                            tracing::warn!("SIGHUP: netns/port changes are ignored; only impairments are reloaded");
                        }
                        tracing::info!(a_to_b = ?new.a_to_b, b_to_a = ?new.b_to_a, "SIGHUP: impairments reloaded");
                        control.set_impairments(new.a_to_b, new.b_to_a);
                    }
                    Err(e) => tracing::error!("SIGHUP: keeping the old impairments: {e}"),
                }
            }
            Ok(0) => break,
            Ok(_) => {
                control.stop();
                break;
            }
            Err(e) => {
                tracing::error!("signal pipe: {e}");
                control.stop();
                break;
            }
        }
    }
    let result = runner.join();
    drop(signals);
    match result {
        Ok(Ok(stats)) => {
            tracing::info!(?stats, "exit");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("topo emu-run: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("topo emu-run: emulator thread panicked");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg() -> EmuConfig {
        EmuConfig {
            netns: Some("ns-e".into()),
            port_a: "pa".into(),
            port_b: "pb".into(),
            a_to_b: Impairment {
                delay_us: 10_000,
                jitter_us: 1_000,
                loss_ppm: 5_000,
            },
            b_to_a: Impairment::default(),
            seed: 42,
        }
    }

    #[test]
    fn config_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("emu-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("link.json");
        cfg().write_file(&path).unwrap();
        assert_eq!(EmuConfig::read_file(&path).unwrap(), cfg());
        std::fs::write(&path, "{\"netns\": null}").unwrap();
        let err = EmuConfig::read_file(&path).unwrap_err();
        assert!(matches!(err, EmuError::ConfigParse { .. }), "{err}");
        assert!(err.to_string().contains("link.json"), "{err}");
        let missing = EmuConfig::read_file(&dir.join("nope.json")).unwrap_err();
        assert!(matches!(missing, EmuError::ConfigRead { .. }));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn validation() {
        assert!(cfg().validate().is_ok());
        let mut c = cfg();
        c.port_b = "pa".into();
        assert!(matches!(c.validate(), Err(EmuError::InvalidConfig(_))));
        let mut c = cfg();
        c.port_a.clear();
        assert!(matches!(c.validate(), Err(EmuError::InvalidConfig(_))));
        let mut c = cfg();
        c.b_to_a.loss_ppm = 1_000_001;
        assert!(c.validate().unwrap_err().to_string().contains("b_to_a"));
    }

    #[test]
    fn control_before_run() {
        let c = EmuControl::new();
        assert!(!c.wait_ready(Duration::from_millis(1)));
        c.stop();
        assert!(c.is_stopped());
        // run() with a stopped control still validates and opens ports first.
        let mut bad = cfg();
        bad.port_b = "pa".into();
        assert!(matches!(run(bad, c), Err(EmuError::InvalidConfig(_))));
    }
}
