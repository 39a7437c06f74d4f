//! The UPF daemon: threads and sockets around the I/O-free core.
//!
//! Threads:
//! - one **uplink** thread per N3 address: `recv_from` on UDP 2152, GTP-U
//!   decap in place, snapshot lookup, write the inner packet to the TUN;
//!   answers Echo Requests and sends Error Indications for unknown TEIDs;
//! - one **downlink** thread: read the TUN into a buffer with headroom,
//!   snapshot lookup by UE address, GTP-U encap in place, `send_to` the
//!   gNB;
//! - one **control** thread: the driver of the I/O-free PFCP node
//!   ([`crate::n4::N4Node`]): socket receive -> `handle_datagram`, deadline
//!   -> `handle_timeout`, events -> snapshot publication and the report
//!   queue, `poll_transmit` -> socket send;
//! - one **metrics** thread: HTTP `/metrics` and `/stats`.
//!
//! Rule changes: the control side holds the [`SessionTable`] under a mutex
//! (only control-plane callers take it), takes its immutable [`Snapshot`]
//! after every change (the table recompiles only the changed session into
//! persistent maps, so this does not grow with the number of sessions) and
//! publishes it with one atomic pointer swap (`arc_swap::ArcSwap`). Packet threads `load()` the current snapshot
//! per packet (a few ns, wait-free) and never touch the mutex; all
//! per-packet state they change is atomics.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use dpio::reuseport::PerWorker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::datapath::{DropReason, Metrics, SessionShared, Snapshot, Verdict};
use crate::gtp;
use crate::n4::logs::{LogCause, LogLimiter as LogBudgets, Suppressed};
use crate::n4::{N4Event, N4Node, N4Params, PfcpStats};
use crate::ratelimit::PeerBuckets;
use crate::rules::{Modification, OuterHeader, SessionRules};
use crate::session::{Established, Event, Modified, SessionError, SessionTable, UsageReport};
use crate::tun::{Tun, TunError};

/// Errors starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum UpfError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The TUN device.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// A socket could not be bound.
    #[error("bind {what} {addr}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// Thread spawn or other I/O.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A log that a packet can trigger: at most one per second per limiter.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: AtomicU64,
}

impl LogLimiter {
    /// True at most once per wall-clock second.
    pub fn allow(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        last != now
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Peers whose Error Indication buckets are tracked at once.
const ERROR_INDICATION_PEERS: usize = 1024;

/// Longest an End Marker waits for the downlink workers' batches in
/// progress ([`Inner::quiesce_downlink`]).
const QUIESCE_DEADLINE: Duration = Duration::from_millis(10);

/// Seconds between 1900 (NTP era 0) and 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// State shared by all threads.
#[derive(Debug)]
pub struct Inner {
    /// Configuration in force.
    pub config: Config,
    /// Set to stop every thread.
    pub stop: AtomicBool,
    /// The data path's current rules.
    pub snapshot: ArcSwap<Snapshot>,
    /// Control-plane state.
    table: Mutex<SessionTable>,
    /// Interface counters.
    pub metrics: Metrics,
    /// Per downlink worker, odd while it is inside a batch (a snapshot
    /// loaded, its G-PDUs not yet sent): [`Inner::quiesce_downlink`].
    pub(crate) dl_in_batch: PerWorker,
    /// Per uplink thread (N3 socket), odd while it is inside a batch: a
    /// session's final reports wait for it ([`Inner::delete`]).
    pub(crate) ul_in_batch: PerWorker,
    /// N3 receive sockets: per address, one per worker (worker `k`'s at
    /// `address index * workers + k`), in one `SO_REUSEPORT` group per
    /// address that hands each datagram to the socket its source port
    /// names ([`dpio::reuseport`]).
    pub(crate) n3: Vec<UdpSocket>,
    /// What each worker's downlink sends from: the first address, port
    /// `n3.port + k` (so that a gNB with as many workers receives worker
    /// `k`'s G-PDUs on its worker `k`).
    pub(crate) n3_tx: Vec<UdpSocket>,
    /// Address put into chosen F-TEIDs.
    pub n3_addr: Ipv4Addr,
    /// The N6 TUN's queues, one per worker.
    pub(crate) tuns: Vec<Tun>,
    /// PFCP Recovery Time Stamp (NTP seconds), fixed at start.
    pub recovery_ts: u32,
    /// Usage reports not yet taken by [`Upf::take_reports`].
    reports: Mutex<VecDeque<UsageReport>>,
    /// Limits packet-triggered logs.
    pub log_limit: LogLimiter,
    /// PFCP counters (shared with the N4 node).
    pub pfcp_stats: Arc<PfcpStats>,
    /// Budgets of the log lines N3 input can cause (per cause, with
    /// "N suppressed"); taken only for bad input, never when forwarding.
    pub(crate) n3_logs: Mutex<LogBudgets>,
    /// Error Indications per peer (token buckets).
    pub(crate) ei_limit: Mutex<PeerBuckets>,
}

impl Inner {
    /// The session table (control plane only; never from packet threads).
    pub fn table(&self) -> MutexGuard<'_, SessionTable> {
        // A poisoned table means a control-plane panic mid-change; the
        // table's methods are all-or-nothing, so keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish the table's snapshot (O(1): it is kept up to date by each
    /// change), then perform its events (End Markers, buffer flushes) with
    /// the new snapshot.
    pub fn publish(&self, table: &mut SessionTable) {
        let snap = Arc::new(table.snapshot());
        self.snapshot.store(snap.clone());
        // Most changes have no End Marker or flush: allocate the 64 KiB
        // scratch buffer only for the first event.
        let mut scratch = Vec::new();
        let mut quiesced = false;
        while let Some(ev) = table.poll_event() {
            if scratch.is_empty() {
                scratch = vec![0u8; gtp::HEADROOM + 65536];
            }
            match ev {
                Event::EndMarker { peer, teid } => {
                    if !quiesced {
                        self.quiesce_downlink();
                        quiesced = true;
                    }
                    let n = gtp::end_marker(teid, &mut scratch);
                    if self.n3[0].send_to(&scratch[..n], peer).is_ok() {
                        self.metrics.n3_tx.add(n);
                        self.metrics.end_markers.fetch_add(1, Ordering::Relaxed);
                    }
                    debug!(%peer, teid, "end marker sent");
                }
                Event::Flush { seid } => {
                    if let Some(s) = table.session(seid) {
                        let shared = s.shared.clone();
                        let n = self.flush(&snap, &shared, &mut scratch);
                        debug!(seid, packets = n, "buffer flushed");
                    }
                }
            }
        }
    }

    /// Waits until no downlink worker is inside a batch that began before
    /// the snapshot just published, so that an End Marker (TS 29.281 5.1:
    /// the last packet of the old path) is sent after the G-PDUs that
    /// batch took the old path for. A worker that is idle, or starts its
    /// next batch, sees the new snapshot; one inside a batch is waited for
    /// (a batch takes microseconds; at most [`QUIESCE_DEADLINE`], logged).
    pub(crate) fn quiesce_downlink(&self) {
        let deadline = Instant::now() + QUIESCE_DEADLINE;
        if let Err(worker) = self.dl_in_batch.wait_out_batches(deadline) {
            warn!(
                worker,
                "End Marker sent while a downlink worker is still inside a batch"
            );
        }
    }

    /// Waits until every packet thread has ended the batch it is in now: a
    /// batch counts its packets at its end, so the counters then hold
    /// every packet forwarded before, and every packet of the snapshots
    /// published before (at most [`QUIESCE_DEADLINE`] in all, logged).
    fn quiesce_counts(&self) {
        let deadline = Instant::now() + QUIESCE_DEADLINE;
        for (dir, batches) in [
            ("uplink", &self.ul_in_batch),
            ("downlink", &self.dl_in_batch),
        ] {
            if let Err(worker) = batches.wait_out_batches(deadline) {
                warn!(
                    worker,
                    dir, "usage reported while a packet thread is still inside a batch: the report may miss its packets"
                );
            }
        }
    }

    /// Send every buffered packet of a session through `snap`, in order.
    pub(crate) fn flush(&self, snap: &Snapshot, s: &SessionShared, scratch: &mut [u8]) -> usize {
        let now = Instant::now();
        s.drain_buffer(|p| match snap.downlink(p, now, false) {
            Verdict::Tunnel { outer, qfi, .. } => {
                self.send_encapped(scratch, p, outer, qfi);
            }
            Verdict::ToN6 => {
                let _ = self.tuns[0].send(p);
            }
            _ => self.metrics.drop(DropReason::FarDrop),
        })
    }

    pub(crate) fn send_encapped(
        &self,
        scratch: &mut [u8],
        p: &[u8],
        outer: OuterHeader,
        qfi: Option<u8>,
    ) {
        let h = gtp::HEADROOM;
        if p.len() + h > scratch.len() {
            return;
        }
        scratch[h..h + p.len()].copy_from_slice(p);
        if let Some(s) = gtp::encap_in_place(scratch, h, h + p.len(), outer.teid, qfi) {
            self.send_n3(&scratch[s..h + p.len()], outer.peer);
        }
    }

    pub(crate) fn send_n3(&self, pkt: &[u8], to: SocketAddrV4) {
        match self.n3[0].send_to(pkt, to) {
            Ok(n) => self.metrics.n3_tx.add(n),
            Err(e) => {
                if self.log_limit.allow() {
                    warn!(%to, error = %e, "N3 send failed");
                }
            }
        }
    }

    /// Session Establishment.
    pub fn establish(
        &self,
        remote_seid: u64,
        rules: SessionRules,
    ) -> Result<Established, SessionError> {
        let mut t = self.table();
        let r = t.establish(remote_seid, rules, Instant::now())?;
        self.publish(&mut t);
        info!(seid = r.local_seid, remote_seid, "session established");
        Ok(r)
    }

    /// Session Modification.
    pub fn modify(&self, seid: u64, m: Modification) -> Result<Modified, SessionError> {
        // Its query and removal reports count what was forwarded before.
        self.quiesce_counts();
        let mut t = self.table();
        let mut r = t.modify(seid, m, Instant::now())?;
        self.publish(&mut t);
        if !r.removed_urrs.is_empty() {
            // And what the packet threads count into the removed URRs
            // until their batches with the old rules end.
            self.quiesce_counts();
            UsageReport::add_late(&mut r.reports, &std::mem::take(&mut r.removed_urrs));
        }
        debug!(seid, "session modified");
        Ok(r)
    }

    /// Session Deletion.
    pub fn delete(&self, seid: u64) -> Result<Vec<UsageReport>, SessionError> {
        let mut t = self.table();
        let mut s = t.remove(seid)?;
        self.publish(&mut t);
        // Packets decided with the snapshots that had the session are
        // counted when their batch ends: the final reports wait for that.
        self.quiesce_counts();
        let r = s.final_reports(Instant::now());
        info!(seid, "session deleted");
        Ok(r)
    }

    /// Remove all sessions (association released).
    pub fn clear_sessions(&self) {
        let mut t = self.table();
        t.clear();
        self.publish(&mut t);
    }

    /// May a log line of N3 input of `cause` be written now? If so, the
    /// lines of that cause left out since the last one.
    pub(crate) fn n3_log(&self, cause: LogCause) -> Option<Suppressed> {
        self.n3_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(Instant::now(), cause)
    }

    /// Log lines N3 input caused so far (summaries included), and those
    /// left out by the rate limit.
    pub fn n3_log_counts(&self) -> (u64, u64) {
        let l = self.n3_logs.lock().unwrap_or_else(|e| e.into_inner());
        (l.emitted(), l.suppressed())
    }

    /// One line per N3 cause whose second ended with lines left out.
    fn n3_log_summaries(&self) {
        let due = self
            .n3_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_summaries(Instant::now());
        for (cause, n) in due {
            warn!("N3: {}: {n} suppressed in the last second", cause.label());
        }
    }

    /// Queue reports for [`Upf::take_reports`].
    pub fn queue_reports(&self, reports: impl IntoIterator<Item = UsageReport>) {
        let mut q = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        for r in reports {
            if q.len() >= 4096 {
                q.pop_front();
            }
            q.push_back(r);
        }
    }
}

/// A running UPF. Dropping it stops every thread and removes the TUN.
pub struct Upf {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    metrics_addr: SocketAddr,
    n4_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Upf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upf")
            .field("metrics_addr", &self.metrics_addr)
            .field("n4_addr", &self.n4_addr)
            .finish()
    }
}

impl Upf {
    /// Start in the calling thread's network namespace: create the TUN and
    /// routes, bind N3/N4/metrics, spawn the threads (which inherit the
    /// namespace).
    pub fn start(config: Config) -> Result<Upf, UpfError> {
        config.validate()?;
        let epoch = Instant::now();
        let workers = dpio::reuseport::workers(config.n3.workers)?;
        let tuns = crate::tun::create(&config.n6.tun, workers, config.n6.mtu, &config.n6.ue_pools)?;
        let mut n3 = Vec::new();
        for a in &config.n3.addrs {
            let addr = SocketAddrV4::new(*a, config.n3.port);
            let group =
                dpio::reuseport::bind_group(addr, workers).map_err(|source| UpfError::Bind {
                    what: "N3",
                    addr: addr.into(),
                    source,
                })?;
            if let Some(e) = &group.steering_error {
                warn!(%addr, error = %e, "N3: datagrams are not steered to workers by source port; the kernel spreads them by a hash");
            }
            n3.extend(group.sockets);
        }
        let mut n3_tx = Vec::with_capacity(workers);
        for k in 0..workers {
            let (s, moved) = dpio::reuseport::bind_sender(&n3[..workers], k)?;
            if let Some(e) = moved {
                warn!(worker = k, port = s.local_addr()?.port(), error = %e,
                    "N3: the worker's own source port is taken, it sends from another (its G-PDUs may reach another gNB worker)");
            }
            n3_tx.push(s);
        }
        for s in &n3 {
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
        }
        // n3_tx[0] is n3[0] (a clone): set once; the others take no input.
        for s in n3.iter().chain(n3_tx.iter().skip(1)) {
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            if let Err(e) = dpio::udp::set_buffers(fd, dpio::udp::N3_BUFFER) {
                warn!(error = %e, "N3 socket buffers left at the default");
            }
        }
        let metrics_listener =
            std::net::TcpListener::bind(config.metrics.addr).map_err(|source| UpfError::Bind {
                what: "metrics",
                addr: config.metrics.addr,
                source,
            })?;
        let metrics_addr = metrics_listener.local_addr()?;
        let n4 = UdpSocket::bind(config.n4.addr).map_err(|source| UpfError::Bind {
            what: "N4",
            addr: config.n4.addr,
            source,
        })?;
        let n4_addr = n4.local_addr()?;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let recovery_ts = (unix + NTP_UNIX_OFFSET) as u32;
        let n3_addr = config.n3.addrs[0];
        let mut node = N4Node::new(
            N4Params::from_config(&config, n3_addr, recovery_ts),
            Instant::now(),
            SystemTime::now(),
        );
        node.set_max_sessions_per_peer(config.limits.max_sessions_per_peer);
        let mut table = SessionTable::new(config.limits(), n3_addr, epoch);
        let protected = config.protected(&crate::protect::local_addrs()?);
        info!(nets = %protected.nets().iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            "uplink packets for these destinations are dropped");
        table.set_protected(protected);
        // TEIDs of a restarted UPF start elsewhere than those of its last life.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| {
            d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16)
        });
        table.set_teid_base(nanos & 0x7fff_ffff);
        let inner = Arc::new(Inner {
            table: Mutex::new(table),
            snapshot: ArcSwap::from_pointee(Snapshot::empty(epoch)),
            stop: AtomicBool::new(false),
            metrics: Metrics::with_workers(workers),
            dl_in_batch: PerWorker::new(workers),
            ul_in_batch: PerWorker::new(n3.len()),
            n3,
            n3_tx,
            n3_addr,
            tuns,
            recovery_ts,
            reports: Mutex::new(VecDeque::new()),
            log_limit: LogLimiter::default(),
            n3_logs: Mutex::new(LogBudgets::default()),
            ei_limit: Mutex::new(PeerBuckets::new(
                config.n3.error_indications_per_s,
                config.n3.error_indications_per_s,
                ERROR_INDICATION_PEERS,
            )),
            pfcp_stats: node.stats().clone(),
            config,
        });
        // Threads go into the UPF as they start: if a later one fails to
        // start, dropping it stops and joins those already running.
        let mut upf = Upf {
            inner: inner.clone(),
            threads: Vec::new(),
            metrics_addr,
            n4_addr: Some(n4_addr),
        };
        // The packet threads: an uplink per N3 socket (worker `i % workers`
        // of its address), a downlink per worker.
        let loops = (0..inner.n3.len())
            .map(|i| ("upf-ul", i, Some(i % workers)))
            .chain((0..workers).map(|k| ("upf-dl", k, None)));
        for (what, i, uplink_worker) in loops {
            let inn = inner.clone();
            upf.threads.push(
                std::thread::Builder::new()
                    .name(format!("{what}{i}"))
                    .spawn(move || {
                        ctlhttp::rt::media_thread(what);
                        match uplink_worker {
                            Some(k) => crate::n3::uplink_loop(&inn, i, k),
                            None => crate::n3::downlink_loop(&inn, i),
                        }
                    })?,
            );
        }
        let inn = inner.clone();
        upf.threads.push(
            std::thread::Builder::new()
                .name("upf-n4".into())
                .spawn(move || control_loop(&inn, n4, node))?,
        );
        let inn = inner.clone();
        upf.threads.push(
            std::thread::Builder::new()
                .name("upf-metrics".into())
                .spawn(move || crate::metrics::serve(inn, metrics_listener))?,
        );
        info!(
            node_id = %inner.config.node_id,
            n3 = ?inner.config.n3.addrs,
            %n4_addr,
            %metrics_addr,
            workers,
            tun = inner.tuns[0].name(),
            recovery_ts,
            "UPF started"
        );
        Ok(upf)
    }

    /// Shared state (for the PFCP layer and tests).
    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
    /// Where the metrics HTTP server listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }
    /// Where the PFCP server listens.
    pub fn n4_addr(&self) -> Option<SocketAddr> {
        self.n4_addr
    }
    /// Recovery Time Stamp (NTP seconds).
    pub fn recovery_time_stamp(&self) -> u32 {
        self.inner.recovery_ts
    }
    /// Interface counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    /// Session Establishment (in-process control API).
    pub fn establish(
        &self,
        remote_seid: u64,
        rules: SessionRules,
    ) -> Result<Established, SessionError> {
        self.inner.establish(remote_seid, rules)
    }
    /// Session Modification.
    pub fn modify(&self, seid: u64, m: Modification) -> Result<Modified, SessionError> {
        self.inner.modify(seid, m)
    }
    /// Session Deletion: final usage reports.
    pub fn delete(&self, seid: u64) -> Result<Vec<UsageReport>, SessionError> {
        self.inner.delete(seid)
    }
    /// Usage reports triggered since the last call (threshold, period).
    pub fn take_reports(&self) -> Vec<UsageReport> {
        let mut q = self.inner.reports.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }
    /// Per-session counters: (ul packets, ul bytes, dl packets, dl bytes,
    /// dropped, spoofed, buffered now).
    pub fn session_counters(&self, seid: u64) -> Option<[u64; 7]> {
        let t = self.inner.table();
        let s = t.session(seid)?;
        let sh = &s.shared;
        let (ulp, ulb) = sh.ul.get();
        let (dlp, dlb) = sh.dl.get();
        Some([
            ulp,
            ulb,
            dlp,
            dlb,
            sh.dropped.load(Ordering::Relaxed),
            sh.spoofed.load(Ordering::Relaxed),
            sh.buffered_len() as u64,
        ])
    }

    /// Stop every thread and close the TUN.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Upf {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Longest wait for a PFCP datagram (bounds the reaction to `stop`).
const N4_MAX_WAIT: Duration = Duration::from_millis(100);

/// How far the socket's read timeout may be from the node's next deadline
/// before it is set again. Under a stream of requests the time left to the
/// deadline shrinks a little with every datagram; setting the timeout each
/// time costs a syscall per datagram for nothing, since a datagram ends
/// the wait anyway. Timers are then at most this late (the data poll runs
/// every 20 ms, PFCP timers are in seconds).
const N4_WAIT_SLACK: Duration = Duration::from_millis(4);

/// The read timeout to set for a wait of `wait` when `current` is set:
/// `None` while `current` is within [`N4_WAIT_SLACK`] of `wait`.
fn timeout_change(current: Option<Duration>, wait: Duration) -> Option<Duration> {
    match current {
        Some(c) if c.abs_diff(wait) <= N4_WAIT_SLACK => None,
        _ => Some(wait),
    }
}

/// The N4 driver: the socket and the clock around [`N4Node`].
fn control_loop(inner: &Inner, sock: UdpSocket, mut node: N4Node) {
    let mut buf = vec![0u8; 65536];
    let mut timeout: Option<Duration> = None;
    while !inner.stop.load(Ordering::Relaxed) {
        inner.n3_log_summaries();
        let now = Instant::now();
        if node.poll_timeout().is_some_and(|t| t <= now) {
            let mut t = inner.table();
            node.set_wall_clock(now, SystemTime::now());
            node.handle_timeout(now, &mut t);
            drive_events(inner, &mut node, &mut t);
            drop(t);
            send_all(inner, &sock, &mut node);
        }
        let wait = node
            .poll_timeout()
            .map_or(N4_MAX_WAIT, |t| t.saturating_duration_since(Instant::now()))
            .clamp(Duration::from_millis(1), N4_MAX_WAIT);
        if let Some(w) = timeout_change(timeout, wait) {
            match sock.set_read_timeout(Some(w)) {
                Ok(()) => timeout = Some(w),
                Err(e) => warn!(error = %e, "N4 socket timeout not set"),
            }
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if N4Node::needs_settled_counts(&buf[..n]) {
                    inner.quiesce_counts();
                }
                let mut t = inner.table();
                let now = Instant::now();
                node.set_wall_clock(now, SystemTime::now());
                node.handle_datagram(now, from, &buf[..n], &mut t);
                drive_events(inner, &mut node, &mut t);
                drop(t);
                send_all(inner, &sock, &mut node);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                if inner.log_limit.allow() {
                    warn!(error = %e, "N4 receive failed");
                }
            }
        }
    }
}

fn send_all(inner: &Inner, sock: &UdpSocket, node: &mut N4Node) {
    while let Some(tx) = node.poll_transmit() {
        if let Err(e) = sock.send_to(&tx.contents, tx.destination) {
            if inner.log_limit.allow() {
                warn!(to = %tx.destination, error = %e, "N4 send failed");
            }
        }
    }
}

/// Act on the node's events, before its transmits go out (a response must
/// not overtake the rules it acknowledges).
fn drive_events(inner: &Inner, node: &mut N4Node, table: &mut SessionTable) {
    while let Some(ev) = node.poll_event() {
        match ev {
            N4Event::RulesChanged => inner.publish(table),
            N4Event::UsageReports(r) => inner.queue_reports(r),
            N4Event::AssociationLost { .. } | N4Event::ReportUnanswered { .. } => {}
        }
    }
    if node.removals_pending() {
        inner.quiesce_counts();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_timeout_set_only_when_the_wait_moved() {
        let ms = Duration::from_millis;
        assert_eq!(timeout_change(None, ms(20)), Some(ms(20)), "first wait");
        assert_eq!(timeout_change(Some(ms(20)), ms(17)), None, "within slack");
        assert_eq!(timeout_change(Some(ms(20)), ms(23)), None, "within slack");
        assert_eq!(
            timeout_change(Some(ms(20)), ms(15)),
            Some(ms(15)),
            "deadline would be missed by more than the slack"
        );
        assert_eq!(
            timeout_change(Some(ms(1)), ms(20)),
            Some(ms(20)),
            "no busy wakeups after a short wait"
        );
    }
}
