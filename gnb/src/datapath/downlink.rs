//! The downlink thread: one `recvmmsg` of up to a batch of N3 datagrams
//! (GRO-coalesced ones taken apart), each judged by [`core::downlink`]:
//! G-PDUs written to the TUN (joined into super-packets where the TUN has
//! offloads, [`TunWrites`]), everything else handled by [`DlControl`]
//! (Echo, End Marker, Error Indication, unknown TEID, wrong peer).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use dpio::offload::{Coalescer, Push, VNET_HDR_LEN};
use dpio::udp::{recv_batch, Received, Slots};
use dpio::BATCH;
use tracing::{info, warn};
use wire::gtpu::Repr;

use super::core::{self, Downlink};
use super::counters::{add, RateLimit, Runs};
use super::{DatapathEvent, GnbCounters, MAX_PKT};
use crate::tun::Tun;
use crate::tunnels::TunnelTable;

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
                    // At most ~100 Error Indications per second, to the
                    // peer's GTP-U port, not the G-PDU's source port (TS
                    // 29.281 4.4.2: a sender picks the source port of its
                    // G-PDUs, an Error Indication goes to 2152).
                    let r = Repr::error_indication(teid, self.local.ip());
                    let to = SocketAddr::new(from.ip(), self.local.port());
                    if send_repr(self.sock, &r, to, ctr) {
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

/// Worker `worker`'s downlink: G-PDUs from its socket of the N3 port's
/// group (bound to the gNB's N3 address) to its TUN queue.
pub(super) fn downlink(
    tun: &Tun,
    sock: &UdpSocket,
    table: &TunnelTable,
    ctr: &GnbCounters,
    events: &tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    stop: &AtomicBool,
    worker: usize,
) {
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(worker, error = %e, "N3 socket without a local address: downlink not started");
            return;
        }
    };
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
            Err(e) if dpio::udp::nothing_yet(&e) => {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    ctr.worker_n3_drained.add(worker, 1);
                }
                continue;
            }
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
        ctr.worker_n3_rx.add(worker, rx);
        add(&ctr.n3_rx_bytes, rx_bytes);
        add(&ctr.tun_tx_packets, tw.packets);
        add(&ctr.tun_tx_bytes, tw.bytes);
        add(&ctr.tun_tx_errors, tw.errors);
        add(&ctr.tun_tx_super_packets, tw.supers);
        if n < BATCH {
            // The receive took all there was: the socket was empty when
            // it returned, and that batch is now handled.
            ctr.worker_n3_drained.add(worker, 1);
        }
    }
}
