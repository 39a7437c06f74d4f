//! The N3 data path: two threads with preallocated buffers around the
//! I/O-free decisions of [`core`] (a tunnel snapshot and a packet in, a
//! verdict out), in the loop design of [`dpio`]:
//!
//! - uplink: up to [`dpio::BATCH`] TUN reads per wake-up -> look up the
//!   inner source address in the tunnel snapshot -> GTP-U encapsulation in
//!   place (UL PDU Session Container with the QFI) -> one `sendmmsg` of
//!   the batch to the UPFs' F-TEIDs;
//! - downlink: one `recvmmsg` of up to a batch on UDP 2152 ->
//!   decapsulation -> match the gNB's TEID -> write each inner packet to
//!   the TUN (the kernel routes it out of the radio link); Echo Request
//!   answered, End Marker counted (a draining tunnel's End Marker is handed
//!   to the control side as [`DatapathEvent::EndMarker`], which removes
//!   the tunnel: no table change and no control mutex on this thread),
//!   unknown TEID dropped, counted and answered with an Error Indication.
//!   A G-PDU or End Marker is taken only from the UPF address of its
//!   tunnel (the F-TEID the SMF gave); from anyone else it is dropped and
//!   counted (`gnb_dl_wrong_peer_total`). A datagram longer than a slot
//!   (64 KiB) is counted as malformed and dropped.
//!
//! The uplink maps a packet to its tunnel by its source address, but only
//! packets the radio-side filter let through reach the TUN: their source
//! is a session address of the UE that sent them (its MAC on a shared
//! cell; see [`crate::firewall`]), so a UE cannot enter another UE's tunnel.
//!
//! Nothing here allocates or takes a lock per packet, and no shared counter
//! is written per packet: each batch's counts are added once at its end
//! (per tunnel, once per run of packets of the same tunnel).
//! Packet-triggered logs are rate-limited.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dpio::offload::{self, Coalescer, Push, VnetHdr, VNET_HDR_LEN};
use dpio::udp::{recv_batch, Outbox, Received, Slots};
use dpio::BATCH;
use tracing::{info, warn};
use wire::gtpu::{encap_in_place, Repr};

use crate::tun::Tun;
use crate::tunnels::{Tunnel, TunnelTable};

pub mod core;
use self::core::{Downlink, Uplink};

/// Headroom in front of each uplink packet: enough for the header the gNB
/// writes (16 octets: mandatory, optional fields, UL container with QFI).
const HEADROOM: usize = 16;
/// Largest packet handled (TUN reads, UDP receives).
const MAX_PKT: usize = 65535;
/// How often the threads look at the stop flag when idle.
const POLL: Duration = Duration::from_millis(100);

/// gNB-wide counters (per interface and per event).
#[derive(Debug, Default)]
pub struct GnbCounters {
    /// Packets read from the TUN (uplink, from the radio side; a
    /// super-packet counts once).
    pub tun_rx_packets: AtomicU64,
    /// TUN reads that were TSO/USO super-packets (cut into segments).
    pub tun_rx_super_packets: AtomicU64,
    /// Super-packets joined from several downlink segments and written
    /// to the TUN as one.
    pub tun_tx_super_packets: AtomicU64,
    /// TUN packets with a bad virtio-net header or super-packet lengths
    /// (dropped).
    pub offload_errors: AtomicU64,
    /// Bytes read from the TUN.
    pub tun_rx_bytes: AtomicU64,
    /// Uplink packets with no session for their source address.
    pub ul_no_session: AtomicU64,
    /// Uplink packets that are not IPv4.
    pub ul_not_ipv4: AtomicU64,
    /// Packets written to the TUN (downlink).
    pub tun_tx_packets: AtomicU64,
    /// Bytes written to the TUN.
    pub tun_tx_bytes: AtomicU64,
    /// Downlink TUN write failures.
    pub tun_tx_errors: AtomicU64,
    /// GTP-U datagrams sent on N3.
    pub n3_tx_packets: AtomicU64,
    /// Bytes sent on N3 (UDP payload).
    pub n3_tx_bytes: AtomicU64,
    /// N3 send failures.
    pub n3_tx_errors: AtomicU64,
    /// GTP-U datagrams received on N3.
    pub n3_rx_packets: AtomicU64,
    /// Bytes received on N3 (UDP payload).
    pub n3_rx_bytes: AtomicU64,
    /// Datagrams that are not valid GTP-U.
    pub n3_malformed: AtomicU64,
    /// G-PDUs for a TEID the gNB does not have.
    pub dl_unknown_teid: AtomicU64,
    /// Echo Requests answered.
    pub echo_requests: AtomicU64,
    /// End Markers received (any tunnel).
    pub end_markers: AtomicU64,
    /// End Markers for an unknown TEID.
    pub end_markers_unknown: AtomicU64,
    /// Error Indications sent.
    pub error_indications_tx: AtomicU64,
    /// Error Indications received.
    pub error_indications_rx: AtomicU64,
    /// Other GTP-U messages received and ignored.
    pub n3_other: AtomicU64,
    /// G-PDUs and End Markers for a known TEID from another address than
    /// the UPF of that tunnel (dropped).
    pub dl_wrong_peer: AtomicU64,
    /// N1 requests refused: from another UE than the one they name.
    pub n1_refused: AtomicU64,
}

impl GnbCounters {
    /// `(name, help, value)` of every counter, for `/metrics`.
    pub fn all(&self) -> Vec<(&'static str, &'static str, u64)> {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            (
                "gnb_tun_rx_packets_total",
                "packets read from the TUN (uplink)",
                r(&self.tun_rx_packets),
            ),
            (
                "gnb_tun_rx_bytes_total",
                "bytes read from the TUN (uplink)",
                r(&self.tun_rx_bytes),
            ),
            (
                "gnb_tun_rx_super_packets_total",
                "TUN reads that were TSO/USO super-packets (cut into segments)",
                r(&self.tun_rx_super_packets),
            ),
            (
                "gnb_tun_tx_super_packets_total",
                "downlink segments joined into one TUN write (each write counted once)",
                r(&self.tun_tx_super_packets),
            ),
            (
                "gnb_offload_errors_total",
                "TUN packets with a bad virtio-net header or super-packet lengths (dropped)",
                r(&self.offload_errors),
            ),
            (
                "gnb_ul_no_session_total",
                "uplink packets without a session for their source",
                r(&self.ul_no_session),
            ),
            (
                "gnb_ul_not_ipv4_total",
                "uplink packets that are not IPv4",
                r(&self.ul_not_ipv4),
            ),
            (
                "gnb_tun_tx_packets_total",
                "packets written to the TUN (downlink)",
                r(&self.tun_tx_packets),
            ),
            (
                "gnb_tun_tx_bytes_total",
                "bytes written to the TUN (downlink)",
                r(&self.tun_tx_bytes),
            ),
            (
                "gnb_tun_tx_errors_total",
                "TUN write failures",
                r(&self.tun_tx_errors),
            ),
            (
                "gnb_n3_tx_packets_total",
                "GTP-U datagrams sent on N3",
                r(&self.n3_tx_packets),
            ),
            (
                "gnb_n3_tx_bytes_total",
                "GTP-U bytes sent on N3",
                r(&self.n3_tx_bytes),
            ),
            (
                "gnb_n3_tx_errors_total",
                "N3 send failures",
                r(&self.n3_tx_errors),
            ),
            (
                "gnb_n3_rx_packets_total",
                "GTP-U datagrams received on N3",
                r(&self.n3_rx_packets),
            ),
            (
                "gnb_n3_rx_bytes_total",
                "GTP-U bytes received on N3",
                r(&self.n3_rx_bytes),
            ),
            (
                "gnb_n3_malformed_total",
                "datagrams on N3 that are not valid GTP-U",
                r(&self.n3_malformed),
            ),
            (
                "gnb_dl_unknown_teid_total",
                "G-PDUs for an unknown TEID (dropped)",
                r(&self.dl_unknown_teid),
            ),
            (
                "gnb_echo_requests_total",
                "GTP-U Echo Requests answered",
                r(&self.echo_requests),
            ),
            (
                "gnb_end_markers_total",
                "End Markers received",
                r(&self.end_markers),
            ),
            (
                "gnb_end_markers_unknown_total",
                "End Markers for an unknown TEID",
                r(&self.end_markers_unknown),
            ),
            (
                "gnb_error_indications_tx_total",
                "Error Indications sent",
                r(&self.error_indications_tx),
            ),
            (
                "gnb_error_indications_rx_total",
                "Error Indications received",
                r(&self.error_indications_rx),
            ),
            (
                "gnb_n3_other_total",
                "other GTP-U messages received",
                r(&self.n3_other),
            ),
            (
                "gnb_dl_wrong_peer_total",
                "G-PDUs and End Markers not from the UPF of their tunnel (dropped)",
                r(&self.dl_wrong_peer),
            ),
            (
                "gnb_n1_refused_total",
                "N1 requests refused: not from the UE they name",
                r(&self.n1_refused),
            ),
        ]
    }
}

/// A log limiter for packet-triggered messages: at most one per second,
/// with the number suppressed since.
#[derive(Debug)]
struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    fn new() -> Self {
        RateLimit {
            last: None,
            suppressed: 0,
        }
    }
    /// `Some(suppressed)` when a message may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|l| now.duration_since(l) >= Duration::from_secs(1))
        {
            self.last = Some(now);
            let s = self.suppressed;
            self.suppressed = 0;
            Some(s)
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Something the data path asks the control side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatapathEvent {
    /// An End Marker arrived from its UPF on the draining tunnel with this
    /// downlink TEID: remove it ([`end_marker_teardown`]).
    EndMarker(u32),
}

/// The control side's part of an End Marker: removes the tunnel of
/// `dl_teid` if it is still draining, and returns its UE address when no
/// tunnel is left for it (its host route goes).
pub fn end_marker_teardown(table: &TunnelTable, dl_teid: u32) -> Option<Ipv4Addr> {
    let t = table.load().by_teid.get(&dl_teid).cloned()?;
    if !t.draining.load(Ordering::Relaxed) {
        return None;
    }
    info!(teid = dl_teid, ue = %t.ue_id, psi = t.psi, "End Marker: old tunnel of a path switch removed");
    match table.remove(dl_teid) {
        Ok(c) if c.addr_freed => Some(t.ue_addr),
        _ => None,
    }
}

/// The running data path; stops (and joins) on drop.
#[derive(Debug)]
pub struct Datapath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Datapath {
    /// Starts the uplink and downlink threads on `tun` (made non-blocking
    /// here) and the bound N3 socket.
    pub fn start(
        tun: Tun,
        sock: UdpSocket,
        table: Arc<TunnelTable>,
        counters: Arc<GnbCounters>,
        events: tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    ) -> io::Result<Datapath> {
        let stop = Arc::new(AtomicBool::new(false));
        sock.set_read_timeout(Some(POLL))?;
        if let Err(e) = dpio::udp::set_buffers(sock.as_raw_fd(), dpio::udp::N3_BUFFER) {
            warn!(error = %e, "N3 socket buffers left at the default");
        }
        tun.set_nonblocking().map_err(io::Error::other)?;
        match dpio::udp::enable_gro(sock.as_raw_fd()) {
            Ok(()) => info!("N3: UDP GRO on (the kernel may coalesce received G-PDUs)"),
            Err(e) => warn!(error = %e, "N3: UDP GRO unavailable, G-PDUs are received one by one"),
        }
        let local = sock.local_addr()?;
        let dl_tun = tun.try_clone()?;
        let dl_sock = sock.try_clone()?;
        let mut threads = Vec::new();
        {
            let (stop, table, counters) = (stop.clone(), table.clone(), counters.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("gnb-uplink".into())
                    .spawn(move || uplink(&tun, &sock, &table, &counters, &stop))?,
            );
        }
        {
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("gnb-downlink".into())
                    .spawn(move || {
                        downlink(&dl_tun, &dl_sock, local, &table, &counters, &events, &stop)
                    })?,
            );
        }
        Ok(Datapath { stop, threads })
    }

    /// Stops both threads and waits for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Adds packets and bytes to a tunnel's counter pair once per run of
/// consecutive packets of the same tunnel.
struct Runs<'a> {
    cur: Option<&'a Tunnel>,
    packets: u64,
    bytes: u64,
    pick: fn(&Tunnel) -> (&AtomicU64, &AtomicU64),
}

impl<'a> Runs<'a> {
    fn new(pick: fn(&Tunnel) -> (&AtomicU64, &AtomicU64)) -> Self {
        Runs {
            cur: None,
            packets: 0,
            bytes: 0,
            pick,
        }
    }
    fn add(&mut self, t: &'a Tunnel, bytes: usize) {
        if !self.cur.is_some_and(|c| std::ptr::eq(c, t)) {
            self.flush();
            self.cur = Some(t);
        }
        self.packets += 1;
        self.bytes += bytes as u64;
    }
    fn flush(&mut self) {
        if let Some(t) = self.cur.take() {
            let (p, b) = (self.pick)(t);
            p.fetch_add(self.packets, Ordering::Relaxed);
            b.fetch_add(self.bytes, Ordering::Relaxed);
        }
        self.packets = 0;
        self.bytes = 0;
    }
}

/// Adds `v` to a shared counter (once per batch); a zero writes nothing,
/// so an idle counter's cache line is not dirtied.
fn add(a: &AtomicU64, v: u64) {
    if v != 0 {
        a.fetch_add(v, Ordering::Relaxed);
    }
}

fn v4_or_unspecified(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

/// Bytes of a slot on a TUN with offloads: a 64 KiB super-packet cut into
/// segments, each with its own headers and GTP-U headroom (up to about 500
/// segments at the smallest MSS that fits; a super-packet whose segments
/// do not fit is counted and dropped).
const SEG_SLOT: usize = 128 << 10;
/// Datagrams an uplink batch may queue (a batch of super-packets cut into
/// segments); reading stops for the batch once this many are queued.
const OUT_ITEMS: usize = 2048;

/// Where the segments of one TUN read went in the outbox: the tunnel and
/// the GTP-U header length, for the per-tunnel counters after the flush.
#[derive(Clone, Copy)]
struct Queued<'a> {
    tunnel: &'a Tunnel,
    items: (usize, usize),
    gtp_len: usize,
}

fn uplink(tun: &Tun, sock: &UdpSocket, table: &TunnelTable, ctr: &GnbCounters, stop: &AtomicBool) {
    let cap = if tun.vnet() { SEG_SLOT } else { MAX_PKT };
    let mut slots = Slots::new(HEADROOM, cap);
    // A super-packet is cut into here, then swapped with its slot.
    let mut spare = if tun.vnet() {
        vec![0u8; HEADROOM + cap].into_boxed_slice()
    } else {
        Box::default()
    };
    let mut out = Outbox::with_capacity(OUT_ITEMS);
    out.set_gso(true);
    let mut log = RateLimit::new();
    let fd = sock.as_raw_fd();
    let mut full = false;
    while !stop.load(Ordering::Relaxed) {
        // After a full batch more is probably queued: read on without a poll.
        if !full {
            match tun.wait_readable(POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(error = %e, "TUN poll failed");
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let snap = table.load();
        let mut queued: [Option<Queued>; BATCH] = [None; BATCH];
        let (mut rx, mut rx_bytes, mut not_ipv4, mut no_session) = (0u64, 0u64, 0u64, 0u64);
        let (mut supers, mut bad) = (0u64, 0u64);
        let mut read = 0;
        while read < BATCH && out.len() < OUT_ITEMS / 2 {
            let mut vh = [0u8; VNET_HDR_LEN];
            let n = match tun.recv_vnet(&mut vh, slots.data_mut(read)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if let Some(s) = log.allow() {
                        warn!(error = %e, suppressed = s, "TUN read failed");
                    }
                    break;
                }
            };
            let i = read;
            read += 1;
            rx += 1;
            rx_bytes += n as u64;
            let vh = VnetHdr::parse(&vh).unwrap_or_default();
            let verdict = core::uplink(&snap, &slots.buf(i)[HEADROOM..HEADROOM + n]);
            match verdict {
                Uplink::Send { tunnel, hdr, peer } => {
                    // One packet, or the segments of a super-packet, each
                    // in the slot with HEADROOM in front.
                    if vh.is_gso() {
                        supers += 1;
                    }
                    let segs = offload::slot_segments(&mut slots, i, n, &vh, &mut spare);
                    let segs = match segs {
                        Ok(s) => s,
                        Err(e) => {
                            bad += 1;
                            tunnel.counters.ul_drops.fetch_add(1, Ordering::Relaxed);
                            if let Some(s) = log.allow() {
                                warn!(error = %e, gso = vh.gso_type, gso_size = vh.gso_size, len = n, suppressed = s, "uplink TUN packet dropped");
                            }
                            continue;
                        }
                    };
                    let first = out.len();
                    let mut gtp_len = 0;
                    for k in 0..segs.count {
                        let r = segs.range(k);
                        match encap_in_place(slots.buf_mut(i), r.start, r.len(), &hdr) {
                            Ok(g) => {
                                gtp_len = g.len() - r.len();
                                out.push(i, r.end - g.len(), r.end, v4_or_unspecified(peer));
                            }
                            Err(e) => {
                                tunnel.counters.ul_drops.fetch_add(1, Ordering::Relaxed);
                                if let Some(s) = log.allow() {
                                    warn!(error = %e, suppressed = s, "uplink encapsulation failed");
                                }
                            }
                        }
                    }
                    queued[i] = Some(Queued {
                        tunnel,
                        items: (first, out.len()),
                        gtp_len,
                    });
                }
                Uplink::NotIpv4 => not_ipv4 += 1,
                Uplink::NoSession(src) => {
                    no_session += 1;
                    if let Some(s) = log.allow() {
                        info!(%src, suppressed = s, "uplink packet from an address without a session dropped");
                    }
                }
            }
        }
        full = read == BATCH || out.len() >= OUT_ITEMS / 2;
        let mut err = None;
        let sent = out.flush(fd, &slots, &mut err);
        let mut runs = Runs::new(|t| (&t.counters.ul_packets, &t.counters.ul_bytes));
        for q in queued[..read].iter().flatten() {
            for k in q.items.0..q.items.1 {
                if out.failed(k) {
                    q.tunnel.counters.ul_drops.fetch_add(1, Ordering::Relaxed);
                } else {
                    let (_, a, b, _) = out.item(k);
                    runs.add(q.tunnel, b - a - q.gtp_len);
                }
            }
        }
        runs.flush();
        out.clear();
        if sent.gso_refused {
            warn!(error = ?err, "N3: UDP GSO refused by the kernel, G-PDUs are sent one by one from now on");
        }
        if let (Some(e), true) = (err, sent.errors > 0) {
            if let Some(s) = log.allow() {
                warn!(error = %e, suppressed = s, "N3 send failed");
            }
        }
        add(&ctr.tun_rx_packets, rx);
        add(&ctr.tun_rx_bytes, rx_bytes);
        add(&ctr.tun_rx_super_packets, supers);
        add(&ctr.offload_errors, bad);
        add(&ctr.ul_not_ipv4, not_ipv4);
        add(&ctr.ul_no_session, no_session);
        add(&ctr.n3_tx_packets, sent.packets);
        add(&ctr.n3_tx_bytes, sent.bytes);
        add(&ctr.n3_tx_errors, sent.errors);
    }
}

/// Sends a control message built from `repr` (small: a stack buffer).
fn send_repr(sock: &UdpSocket, repr: &Repr, to: SocketAddr, ctr: &GnbCounters) -> bool {
    let mut out = [0u8; 128];
    match repr.emit(&mut out) {
        Ok(len) => match sock.send_to(&out[..len], to) {
            Ok(sent) => {
                ctr.n3_tx_packets.fetch_add(1, Ordering::Relaxed);
                ctr.n3_tx_bytes.fetch_add(sent as u64, Ordering::Relaxed);
                true
            }
            Err(_) => {
                ctr.n3_tx_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        },
        Err(_) => false,
    }
}

/// Per-thread state of the downlink for the rare, non-forwarding verdicts.
struct DlControl<'a> {
    sock: &'a UdpSocket,
    local: SocketAddr,
    ctr: &'a GnbCounters,
    events: &'a tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    log_unknown: RateLimit,
    log_other: RateLimit,
    errind: RateLimit,
}

impl DlControl<'_> {
    /// Everything but a G-PDU forwarded to the TUN.
    fn handle(&mut self, v: Downlink<'_>, from: SocketAddr, datagram: &[u8]) {
        let ctr = self.ctr;
        match v {
            Downlink::ToTun { .. } => {}
            Downlink::Malformed { error, notify } => {
                ctr.n3_malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = notify {
                    let r = Repr::supported_extension_headers_notification(seq);
                    send_repr(self.sock, &r, from, ctr);
                }
                if let Some(s) = self.log_other.allow() {
                    warn!(error = %error, %from, suppressed = s, "malformed GTP-U dropped");
                }
            }
            Downlink::UnknownTeid(teid) => {
                ctr.dl_unknown_teid.fetch_add(1, Ordering::Relaxed);
                if self.errind.allow().is_some() || self.errind.suppressed < 100 {
                    // At most ~100 Error Indications per second.
                    let r = Repr::error_indication(teid, self.local.ip());
                    if send_repr(self.sock, &r, from, ctr) {
                        ctr.error_indications_tx.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(s) = self.log_unknown.allow() {
                    info!(teid, %from, suppressed = s, "G-PDU for unknown TEID dropped");
                }
            }
            Downlink::WrongPeer {
                teid,
                upf,
                end_marker,
            } => {
                ctr.dl_wrong_peer.fetch_add(1, Ordering::Relaxed);
                if end_marker {
                    ctr.end_markers.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(s) = self.log_unknown.allow() {
                    let what = if end_marker { "End Marker" } else { "G-PDU" };
                    info!(teid, %from, upf = %upf.ip(), suppressed = s, "{what} not from the tunnel's UPF dropped");
                }
            }
            Downlink::EchoRequest(seq) => {
                ctr.echo_requests.fetch_add(1, Ordering::Relaxed);
                send_repr(self.sock, &Repr::echo_response(seq), from, ctr);
            }
            Downlink::EndMarker(t) => {
                ctr.end_markers.fetch_add(1, Ordering::Relaxed);
                t.counters.end_markers.fetch_add(1, Ordering::Relaxed);
                if t.draining.load(Ordering::Relaxed) {
                    // The control side removes the tunnel.
                    let _ = self.events.send(DatapathEvent::EndMarker(t.dl_teid));
                } else {
                    info!(teid = t.dl_teid, ue = %t.ue_id, psi = t.psi, "End Marker on the current tunnel");
                }
            }
            Downlink::EndMarkerUnknown(teid) => {
                ctr.end_markers.fetch_add(1, Ordering::Relaxed);
                ctr.end_markers_unknown.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = self.log_unknown.allow() {
                    info!(teid, %from, suppressed = s, "End Marker for unknown TEID");
                }
            }
            Downlink::ErrorIndication => {
                ctr.error_indications_rx.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = self.log_other.allow() {
                    let teid = match Repr::parse_bytes(datagram).map(|r| r.message) {
                        Ok(wire::gtpu::Message::ErrorIndication { teid_data, .. }) => teid_data,
                        _ => 0,
                    };
                    warn!(%from, teid, suppressed = s, "Error Indication from the UPF");
                }
            }
            Downlink::Other => {
                ctr.n3_other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A downlink batch's TUN writes: single packets and coalesced runs.
#[derive(Default)]
struct TunWrites {
    packets: u64,
    bytes: u64,
    errors: u64,
    supers: u64,
}

impl TunWrites {
    /// Writes one packet; `false` if the TUN refused it.
    fn single(&mut self, tun: &Tun, pkt: &[u8], log: &mut RateLimit) -> bool {
        match tun.send(pkt) {
            Ok(_) => {
                self.packets += 1;
                self.bytes += pkt.len() as u64;
                true
            }
            Err(e) => {
                self.errors += 1;
                if let Some(s) = log.allow() {
                    warn!(error = %e, suppressed = s, "TUN write failed");
                }
                false
            }
        }
    }
    /// Writes the run `co` holds, if any.
    fn frame(&mut self, tun: &Tun, co: &mut Coalescer, log: &mut RateLimit) {
        let segs = co.segments() as u64;
        let Some(f) = co.finish() else { return };
        match tun.send_frame(f) {
            Ok(_) => {
                self.packets += segs;
                self.bytes += (f.len() - VNET_HDR_LEN) as u64;
                self.supers += u64::from(segs > 1);
            }
            Err(e) => {
                self.errors += segs;
                if let Some(s) = log.allow() {
                    warn!(error = %e, segments = segs, suppressed = s, "TUN write failed");
                }
            }
        }
    }
}

fn downlink(
    tun: &Tun,
    sock: &UdpSocket,
    local: SocketAddr,
    table: &TunnelTable,
    ctr: &GnbCounters,
    events: &tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    stop: &AtomicBool,
) {
    let mut slots = Slots::new(0, MAX_PKT);
    let mut got = [Received::EMPTY; BATCH];
    let mut co = Coalescer::new();
    let mut control = DlControl {
        sock,
        local,
        ctr,
        events,
        log_unknown: RateLimit::new(),
        log_other: RateLimit::new(),
        errind: RateLimit::new(),
    };
    let fd = sock.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let n = match recv_batch(fd, &mut slots, &mut got) {
            Ok(n) => n,
            Err(e) if dpio::udp::nothing_yet(&e) => continue,
            Err(e) => {
                if let Some(s) = control.log_other.allow() {
                    warn!(error = %e, suppressed = s, "N3 receive failed");
                }
                continue;
            }
        };
        let snap = table.load();
        let mut rx = 0u64;
        let mut rx_bytes = 0u64;
        let mut tw = TunWrites::default();
        let mut runs = Runs::new(|t| (&t.counters.dl_packets, &t.counters.dl_bytes));
        for (i, r) in got[..n].iter().enumerate() {
            rx_bytes += r.len as u64;
            let from = SocketAddr::V4(r.from);
            if r.truncated {
                rx += 1;
                ctr.n3_malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = control.log_other.allow() {
                    warn!(%from, suppressed = s, "GTP-U datagram over 64 KiB dropped");
                }
                continue;
            }
            // One datagram, or several of one size coalesced by GRO.
            for seg in r.segments() {
                rx += 1;
                let dg = &slots.buf(i)[seg];
                match core::downlink(&snap, from, dg) {
                    Downlink::ToTun { tunnel, start, end } => {
                        let pkt = &dg[start..end];
                        if tun.vnet() {
                            // Joined with the segments of its flow that
                            // follow, written when the run ends.
                            loop {
                                match co.push(pkt) {
                                    Push::Held => break,
                                    Push::FlushFirst => {
                                        tw.frame(tun, &mut co, &mut control.log_other)
                                    }
                                    Push::Single => {
                                        tw.single(tun, pkt, &mut control.log_other);
                                        break;
                                    }
                                }
                            }
                            runs.add(tunnel, pkt.len());
                        } else if tw.single(tun, pkt, &mut control.log_other) {
                            runs.add(tunnel, pkt.len());
                        } else {
                            tunnel.counters.dl_drops.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    v => control.handle(v, from, dg),
                }
            }
        }
        tw.frame(tun, &mut co, &mut control.log_other);
        runs.flush();
        add(&ctr.n3_rx_packets, rx);
        add(&ctr.n3_rx_bytes, rx_bytes);
        add(&ctr.tun_tx_packets, tw.packets);
        add(&ctr.tun_tx_bytes, tw.bytes);
        add(&ctr.tun_tx_errors, tw.errors);
        add(&ctr.tun_tx_super_packets, tw.supers);
    }
}

/// The IPv4 address of an `IpAddr` (N3 is IPv4 here).
pub fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}
