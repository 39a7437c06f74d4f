//! The N3 and N6 packet loops: sockets and the TUN around the I/O-free
//! decisions of [`crate::datapath::Snapshot`].
//!
//! Bad input on N3 (malformed GTP-U, a G-PDU from an address that is not
//! its tunnel's peer, an uplink packet for a protected destination, an
//! unknown TEID) is counted per reason and logged at most a few lines per
//! second per cause, with the count of lines left out; Error Indications
//! are limited per peer by a token bucket.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::daemon::Inner;
use crate::datapath::{DropReason, Verdict};
use crate::gtp;
use crate::n4::logs::LogCause;

pub(crate) fn uplink_loop(inner: &Inner, idx: usize) {
    let sock = &inner.n3[idx];
    let local = match sock.local_addr() {
        Ok(SocketAddr::V4(a)) => *a.ip(),
        _ => inner.n3_addr,
    };
    // Headroom in front so a packet forwarded into another tunnel (N9) can
    // be re-encapsulated in place.
    let mut buf = vec![0u8; 65536 + gtp::HEADROOM];
    let mut out = [0u8; 64];
    while !inner.stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf[gtp::HEADROOM..]) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                if inner.log_limit.allow() {
                    warn!(error = %e, "N3 receive failed");
                }
                continue;
            }
        };
        let SocketAddr::V4(from) = from else { continue };
        let pkt = &buf[gtp::HEADROOM..gtp::HEADROOM + n];
        let d = match gtp::decap(pkt) {
            Ok(d) => d,
            Err(e) => {
                inner.metrics.drop(DropReason::Malformed);
                if let Some(sup) = inner.n3_log(LogCause::GtpuMalformed) {
                    warn!(%from, error = %e, "malformed GTP-U datagram dropped{sup}");
                }
                continue;
            }
        };
        match d.msg_type {
            gtp::G_PDU => {
                inner.metrics.n3_rx.add(n);
                let snap = inner.snapshot.load();
                match snap.uplink(*from.ip(), d.teid, d.qfi, d.payload, Instant::now()) {
                    Verdict::ToN6 => match inner.tun.send(d.payload) {
                        Ok(w) => inner.metrics.n6_tx.add(w),
                        Err(e) => {
                            if inner.log_limit.allow() {
                                warn!(error = %e, "TUN write failed");
                            }
                        }
                    },
                    Verdict::Tunnel { outer, qfi, .. } => {
                        let start = gtp::HEADROOM + d.payload_offset;
                        let end = start + d.payload.len();
                        match gtp::encap_in_place(&mut buf, start, end, outer.teid, qfi) {
                            Some(s) => inner.send_n3(&buf[s..end], outer.peer),
                            None => inner.metrics.drop(DropReason::Malformed),
                        }
                    }
                    Verdict::Buffer(s) => {
                        if !s.buffer_packet(d.payload) {
                            inner.metrics.drop(DropReason::BufferFull);
                        }
                    }
                    Verdict::Drop(DropReason::UnknownTeid) => {
                        inner.metrics.drop(DropReason::UnknownTeid);
                        error_indication(inner, from, d.teid, local, &mut out);
                    }
                    Verdict::Drop(r) => {
                        inner.metrics.drop(r);
                        bad_gpdu_log(inner, r, from, d.teid, d.payload);
                    }
                }
            }
            gtp::ECHO_REQUEST => {
                let m = gtp::echo_response(d.seq.unwrap_or(0), &mut out);
                inner.send_n3(&out[..m], from);
                inner.metrics.echo_answered.fetch_add(1, Ordering::Relaxed);
            }
            gtp::ECHO_RESPONSE | gtp::END_MARKER => {}
            gtp::ERROR_INDICATION => {
                if let Some(sup) = inner.n3_log(LogCause::ErrorIndication) {
                    warn!(%from, info = ?gtp::parse_error_indication(pkt), "Error Indication received{sup}");
                }
            }
            other => {
                inner.metrics.drop(DropReason::Malformed);
                if let Some(sup) = inner.n3_log(LogCause::GtpuMalformed) {
                    warn!(%from, msg_type = other, "GTP-U message type not handled, dropped{sup}");
                }
            }
        }
    }
}

/// Answer a G-PDU for an unknown TEID with an Error Indication, if the
/// peer's token bucket allows (else count it as suppressed).
fn error_indication(inner: &Inner, from: SocketAddrV4, teid: u32, local: Ipv4Addr, out: &mut [u8]) {
    let allowed = inner
        .ei_limit
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(*from.ip(), Instant::now());
    if !allowed {
        inner
            .metrics
            .error_indications_suppressed
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    let m = gtp::error_indication(teid, local, out);
    inner.send_n3(&out[..m], from);
    inner
        .metrics
        .error_indications
        .fetch_add(1, Ordering::Relaxed);
    if let Some(sup) = inner.n3_log(LogCause::UnknownTeid) {
        debug!(%from, teid, "G-PDU for unknown TEID, Error Indication sent{sup}");
    }
}

/// The log line of a G-PDU dropped by a session's rules, when it says
/// something about the sender (not for drops by QER, FAR or buffer).
fn bad_gpdu_log(inner: &Inner, r: DropReason, from: SocketAddrV4, teid: u32, inner_pkt: &[u8]) {
    let cause = match r {
        DropReason::WrongSender => LogCause::WrongSender,
        DropReason::ProtectedDestination => LogCause::ProtectedDestination,
        DropReason::Malformed => LogCause::GtpuMalformed,
        _ => return,
    };
    let Some(sup) = inner.n3_log(cause) else {
        return;
    };
    let t = crate::packet::FiveTuple::parse(inner_pkt);
    match r {
        DropReason::WrongSender => warn!(
            %from, teid = format_args!("{teid:#x}"),
            "G-PDU dropped: {from} is not the peer of the tunnel of TEID {teid:#x}{sup}"
        ),
        DropReason::ProtectedDestination => warn!(
            %from, teid = format_args!("{teid:#x}"),
            src = ?t.map(|t| t.src), dst = ?t.map(|t| t.dst),
            "uplink packet dropped: its destination is the UPF or a protected network{sup}"
        ),
        _ => {
            warn!(%from, teid = format_args!("{teid:#x}"), "G-PDU with an inner packet that is not IPv4 dropped{sup}")
        }
    }
}

pub(crate) fn downlink_loop(inner: &Inner) {
    let h = gtp::HEADROOM;
    let mut buf = vec![0u8; 65536 + h];
    let mut scratch = vec![0u8; 65536 + h];
    // The TUN is non-blocking: read until it is empty, poll only then (one
    // syscall per packet under load instead of two).
    let mut idle = true;
    while !inner.stop.load(Ordering::Relaxed) {
        if idle {
            match inner.tun.wait_readable(Duration::from_millis(100)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    if inner.log_limit.allow() {
                        warn!(error = %e, "TUN poll failed");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let n = match inner.tun.recv(&mut buf[h..]) {
            Ok(n) => {
                idle = false;
                n
            }
            Err(e) => {
                idle = true;
                if e.kind() != io::ErrorKind::WouldBlock && inner.log_limit.allow() {
                    warn!(error = %e, "TUN read failed");
                }
                continue;
            }
        };
        inner.metrics.n6_rx.add(n);
        let snap = inner.snapshot.load();
        let now = Instant::now();
        match snap.downlink(&buf[h..h + n], now, true) {
            Verdict::Tunnel {
                outer,
                qfi,
                session,
            } => {
                if session.buffered.load(Ordering::Acquire) {
                    // A flush is pending: older packets go first.
                    inner.flush(&snap, session, &mut scratch);
                }
                match gtp::encap_in_place(&mut buf, h, h + n, outer.teid, qfi) {
                    Some(s) => inner.send_n3(&buf[s..h + n], outer.peer),
                    None => inner.metrics.drop(DropReason::Malformed),
                }
            }
            Verdict::ToN6 => {
                // A downlink PDR forwarding back to N6 would loop; drop.
                inner.metrics.drop(DropReason::FarDrop);
            }
            Verdict::Buffer(s) => {
                if !s.buffer_packet(&buf[h..h + n]) {
                    inner.metrics.drop(DropReason::BufferFull);
                }
            }
            Verdict::Drop(r) => inner.metrics.drop(r),
        }
    }
}
