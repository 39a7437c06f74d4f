//! The N3 data path: two threads with preallocated buffers.
//!
//! - uplink: TUN -> look up the inner source address in the tunnel
//!   snapshot -> GTP-U encapsulation in place (UL PDU Session Container with
//!   the QFI) -> UDP to the UPF's F-TEID;
//! - downlink: UDP 2152 -> decapsulation -> match the gNB's TEID -> write
//!   the inner packet to the TUN (the kernel routes it out of the radio
//!   link); Echo Request answered, End Marker counted (and a draining tunnel
//!   removed), unknown TEID dropped, counted and answered with an Error
//!   Indication. A G-PDU or End Marker is taken only from the UPF address
//!   of its tunnel (the F-TEID the SMF gave); from anyone else it is
//!   dropped and counted (`gnb_dl_wrong_peer_total`).
//!
//! The uplink maps a packet to its tunnel by its source address, but only
//! packets the radio-side filter let through reach the TUN: their source
//! is a session address of the UE that sent them (its MAC on a shared
//! cell; see [`crate::firewall`]), so a UE cannot enter another UE's tunnel.
//!
//! Nothing here allocates or takes a lock per packet; packet-triggered logs
//! are rate-limited.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use wire::gtpu::{decap, encap_in_place, GpduHeader, GtpuError, MessageType, Repr};

use crate::tun::Tun;
use crate::tunnels::TunnelTable;

/// Headroom in front of each uplink packet: enough for the header the gNB
/// writes (16 octets: mandatory, optional fields, UL container with QFI).
const HEADROOM: usize = 16;
/// Largest packet handled (TUN reads, UDP receives).
const MAX_PKT: usize = 65535;
/// How often the threads look at the stop flag when idle.
const POLL: Duration = Duration::from_millis(100);
/// Packets handled per readiness event before looking at the stop flag.
const BATCH: usize = 64;

/// gNB-wide counters (per interface and per event).
#[derive(Debug, Default)]
pub struct GnbCounters {
    /// Packets read from the TUN (uplink, from the radio side).
    pub tun_rx_packets: AtomicU64,
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
    /// An End Marker ended a draining tunnel whose UE address has no tunnel
    /// left: remove the host route.
    AddressFreed(Ipv4Addr),
}

/// The running data path; stops (and joins) on drop.
#[derive(Debug)]
pub struct Datapath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Datapath {
    /// Starts the uplink and downlink threads on `tun` and the bound N3
    /// socket.
    pub fn start(
        tun: Tun,
        sock: UdpSocket,
        table: Arc<TunnelTable>,
        counters: Arc<GnbCounters>,
        events: tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    ) -> io::Result<Datapath> {
        let stop = Arc::new(AtomicBool::new(false));
        sock.set_read_timeout(Some(POLL))?;
        let local = sock.local_addr()?;
        let dl_tun = tun.try_clone()?;
        let dl_sock = sock.try_clone()?;
        let mut threads = Vec::new();
        {
            let (stop, table, counters) = (stop.clone(), table.clone(), counters.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("gnb-uplink".into())
                    .spawn(move || uplink(tun, sock, &table, &counters, &stop))?,
            );
        }
        {
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("gnb-downlink".into())
                    .spawn(move || {
                        downlink(dl_tun, dl_sock, local, &table, &counters, &events, &stop)
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

fn uplink(
    mut tun: Tun,
    sock: UdpSocket,
    table: &TunnelTable,
    ctr: &GnbCounters,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; HEADROOM + MAX_PKT];
    let mut log = RateLimit::new();
    if let Err(e) = tun.set_nonblocking() {
        warn!(error = %e, "TUN O_NONBLOCK failed; uplink reads one packet per poll");
    }
    while !stop.load(Ordering::Relaxed) {
        match tun.wait_readable(POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                warn!(error = %e, "TUN poll failed");
                std::thread::sleep(POLL);
                continue;
            }
        }
        for _ in 0..BATCH {
            let n = match tun.recv(&mut buf[HEADROOM..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if let Some(s) = log.allow() {
                        warn!(error = %e, suppressed = s, "TUN read failed");
                    }
                    break;
                }
            };
            ctr.tun_rx_packets.fetch_add(1, Ordering::Relaxed);
            ctr.tun_rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
            let pkt = &buf[HEADROOM..HEADROOM + n];
            if n < 20 || pkt[0] >> 4 != 4 {
                ctr.ul_not_ipv4.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
            let snap = table.load();
            let Some(t) = snap.by_ue.get(&src) else {
                ctr.ul_no_session.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = log.allow() {
                    info!(%src, suppressed = s, "uplink packet from an address without a session dropped");
                }
                continue;
            };
            let hdr = GpduHeader::ul(t.ul_teid, t.qfi);
            let peer = t.ul_peer;
            let out = match encap_in_place(&mut buf, HEADROOM, n, &hdr) {
                Ok(out) => out,
                Err(e) => {
                    t.counters.ul_drops.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = log.allow() {
                        warn!(error = %e, suppressed = s, "uplink encapsulation failed");
                    }
                    continue;
                }
            };
            match sock.send_to(out, peer) {
                Ok(sent) => {
                    t.counters.ul_packets.fetch_add(1, Ordering::Relaxed);
                    t.counters.ul_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    ctr.n3_tx_packets.fetch_add(1, Ordering::Relaxed);
                    ctr.n3_tx_bytes.fetch_add(sent as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    t.counters.ul_drops.fetch_add(1, Ordering::Relaxed);
                    ctr.n3_tx_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = log.allow() {
                        warn!(error = %e, %peer, suppressed = s, "N3 send failed");
                    }
                }
            }
        }
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

fn downlink(
    mut tun: Tun,
    sock: UdpSocket,
    local: SocketAddr,
    table: &TunnelTable,
    ctr: &GnbCounters,
    events: &tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; MAX_PKT];
    let mut log_unknown = RateLimit::new();
    let mut log_other = RateLimit::new();
    let mut errind = RateLimit::new();
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                if let Some(s) = log_other.allow() {
                    warn!(error = %e, suppressed = s, "N3 receive failed");
                }
                continue;
            }
        };
        ctr.n3_rx_packets.fetch_add(1, Ordering::Relaxed);
        ctr.n3_rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
        let d = match decap(&buf[..n]) {
            Ok(d) => d,
            Err(e) => {
                ctr.n3_malformed.fetch_add(1, Ordering::Relaxed);
                if let GtpuError::UnknownRequiredExtension(_) = e {
                    let seq = wire::gtpu::Packet::new_unchecked(&buf[..n])
                        .seq_number()
                        .unwrap_or(0);
                    send_repr(
                        &sock,
                        &Repr::supported_extension_headers_notification(seq),
                        from,
                        ctr,
                    );
                }
                if let Some(s) = log_other.allow() {
                    warn!(error = %e, %from, suppressed = s, "malformed GTP-U dropped");
                }
                continue;
            }
        };
        // A tunnel's G-PDUs and End Markers come from its UPF only.
        let wrong_peer = |t: &crate::tunnels::Tunnel| {
            let wrong = t.ul_peer.ip() != from.ip();
            if wrong {
                ctr.dl_wrong_peer.fetch_add(1, Ordering::Relaxed);
            }
            wrong
        };
        match d.message_type {
            MessageType::GPdu => {
                let snap = table.load();
                let Some(t) = snap.by_teid.get(&d.teid) else {
                    ctr.dl_unknown_teid.fetch_add(1, Ordering::Relaxed);
                    if errind.allow().is_some() || errind.suppressed < 100 {
                        // At most ~100 Error Indications per second.
                        if send_repr(
                            &sock,
                            &Repr::error_indication(d.teid, local.ip()),
                            from,
                            ctr,
                        ) {
                            ctr.error_indications_tx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Some(s) = log_unknown.allow() {
                        info!(teid = d.teid, %from, suppressed = s, "G-PDU for unknown TEID dropped");
                    }
                    continue;
                };
                if wrong_peer(t) {
                    if let Some(s) = log_unknown.allow() {
                        info!(teid = d.teid, %from, upf = %t.ul_peer.ip(), suppressed = s, "G-PDU not from the tunnel's UPF dropped");
                    }
                    continue;
                }
                let len = d.payload.len();
                match tun.send(d.payload) {
                    Ok(_) => {
                        t.counters.dl_packets.fetch_add(1, Ordering::Relaxed);
                        t.counters.dl_bytes.fetch_add(len as u64, Ordering::Relaxed);
                        ctr.tun_tx_packets.fetch_add(1, Ordering::Relaxed);
                        ctr.tun_tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        t.counters.dl_drops.fetch_add(1, Ordering::Relaxed);
                        ctr.tun_tx_errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(s) = log_other.allow() {
                            warn!(error = %e, suppressed = s, "TUN write failed");
                        }
                    }
                }
            }
            MessageType::EchoRequest => {
                ctr.echo_requests.fetch_add(1, Ordering::Relaxed);
                send_repr(&sock, &Repr::echo_response(d.seq.unwrap_or(0)), from, ctr);
            }
            MessageType::EndMarker => {
                ctr.end_markers.fetch_add(1, Ordering::Relaxed);
                let t = table.load().by_teid.get(&d.teid).cloned();
                match t {
                    Some(t) if wrong_peer(&t) => {
                        if let Some(s) = log_unknown.allow() {
                            info!(teid = d.teid, %from, suppressed = s, "End Marker not from the tunnel's UPF ignored");
                        }
                    }
                    Some(t) => {
                        t.counters.end_markers.fetch_add(1, Ordering::Relaxed);
                        if t.draining.load(Ordering::Relaxed) {
                            info!(teid = d.teid, ue = %t.ue_id, psi = t.psi, "End Marker: old tunnel of a path switch removed");
                            if let Ok(c) = table.remove(d.teid) {
                                if c.addr_freed {
                                    let _ = events.send(DatapathEvent::AddressFreed(t.ue_addr));
                                }
                            }
                        } else {
                            info!(teid = d.teid, ue = %t.ue_id, psi = t.psi, "End Marker on the current tunnel");
                        }
                    }
                    None => {
                        ctr.end_markers_unknown.fetch_add(1, Ordering::Relaxed);
                        if let Some(s) = log_unknown.allow() {
                            info!(teid = d.teid, %from, suppressed = s, "End Marker for unknown TEID");
                        }
                    }
                }
            }
            MessageType::ErrorIndication => {
                ctr.error_indications_rx.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = log_other.allow() {
                    let teid = match Repr::parse_bytes(&buf[..n]).map(|r| r.message) {
                        Ok(wire::gtpu::Message::ErrorIndication { teid_data, .. }) => teid_data,
                        _ => 0,
                    };
                    warn!(%from, teid, suppressed = s, "Error Indication from the UPF");
                }
            }
            _ => {
                ctr.n3_other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The IPv4 address of an `IpAddr` (N3 is IPv4 here).
pub fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}
