//! The N3 and N6 packet loops: sockets and the TUN around the I/O-free
//! decisions of [`crate::datapath::Snapshot`], in the loop design of
//! [`dpio`] (the gNB's too): an uplink worker takes up to a batch of
//! datagrams with one `recvmmsg`, a downlink worker up to a batch of TUN
//! reads per wake-up; each loads the snapshot once per batch, sends what
//! goes to N3 with one `sendmmsg` and adds the batch's interface counts
//! once. A datagram over 64 KiB is counted as malformed and dropped.
//!
//! Bad input on N3 (malformed GTP-U, a G-PDU from an address that is not
//! its tunnel's peer, an uplink packet for a protected destination, an
//! unknown TEID) is counted per reason and logged at most a few lines per
//! second per cause, with the count of lines left out; Error Indications
//! are limited per peer by a token bucket.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dpio::offload::{self, Coalescer, Push, VnetHdr, VNET_HDR_LEN};
use dpio::tun::Tun;
use dpio::udp::{recv_batch, Outbox, Received, Slots};
use dpio::BATCH;
use tracing::{debug, warn};

use crate::daemon::Inner;
use crate::datapath::{DropReason, Tally, Verdict};
use crate::gtp;
use crate::n4::logs::LogCause;

/// A batch's interface counts, added to [`crate::datapath::Metrics`] once
/// at its end.
#[derive(Default)]
struct BatchCounts {
    rx: (u64, u64),
    tx: (u64, u64),
}

impl BatchCounts {
    fn rx(&mut self, len: usize) {
        self.rx.0 += 1;
        self.rx.1 += len as u64;
    }
    fn tx(&mut self, len: usize) {
        self.tx.0 += 1;
        self.tx.1 += len as u64;
    }
}

/// Bytes of a downlink slot on a TUN with offloads: a 64 KiB super-packet
/// cut into segments, each with its headers and GTP-U headroom.
const SEG_SLOT: usize = 128 << 10;
/// Datagrams a downlink batch may queue; reading stops for the batch at
/// half of it.
const OUT_ITEMS: usize = 2048;

/// Writes one inner packet to the TUN: joined with the in-order TCP
/// segments of its flow that follow when the TUN takes super-packets
/// (written when the run ends, [`write_run`]), else on its own.
fn to_tun(inner: &Inner, tun: &Tun, co: &mut Coalescer, pkt: &[u8], c: &mut BatchCounts) {
    if tun.vnet() {
        loop {
            match co.push(pkt) {
                Push::Held => return,
                Push::FlushFirst => write_run(inner, tun, co, c),
                Push::Single => break,
            }
        }
    }
    match tun.send(pkt) {
        Ok(w) => c.tx(w),
        Err(e) => {
            if inner.log_limit.allow() {
                warn!(error = %e, "TUN write failed");
            }
        }
    }
}

/// Writes the run `co` holds, if any (one TUN write; each segment counted).
fn write_run(inner: &Inner, tun: &Tun, co: &mut Coalescer, c: &mut BatchCounts) {
    let segs = co.segments() as u64;
    let Some(f) = co.finish() else { return };
    match tun.send_frame(f) {
        Ok(_) => {
            c.tx.0 += segs;
            c.tx.1 += (f.len() - VNET_HDR_LEN) as u64;
            if segs > 1 {
                inner.metrics.n6_tx_super.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(e) => {
            if inner.log_limit.allow() {
                warn!(error = %e, segments = segs, "TUN write failed");
            }
        }
    }
}

/// Sends what a batch queued for N3 with one `sendmmsg` from worker
/// `k`'s socket and counts it.
fn flush_n3(inner: &Inner, k: usize, out: &mut Outbox, slots: &Slots) {
    if out.is_empty() {
        return;
    }
    let mut err = None;
    let sent = out.flush(inner.n3_tx[k].as_raw_fd(), slots, &mut err);
    out.clear();
    inner.metrics.n3_tx.add_n(sent.packets, sent.bytes);
    if sent.gso_refused {
        warn!(error = ?err, "N3: UDP GSO refused by the kernel, G-PDUs are sent one by one from now on");
    }
    if let (Some(e), true) = (err, sent.errors > 0) {
        if inner.log_limit.allow() {
            warn!(error = %e, errors = sent.errors, "N3 send failed");
        }
    }
}

/// Worker `k`'s uplink on N3 socket `idx`: G-PDUs in, inner packets to
/// TUN queue `k`.
pub(crate) fn uplink_loop(inner: &Inner, idx: usize, k: usize) {
    let sock = &inner.n3[idx];
    let tun = &inner.tuns[k];
    let local = match sock.local_addr() {
        Ok(SocketAddr::V4(a)) => *a.ip(),
        _ => inner.n3_addr,
    };
    // Headroom in front so a packet forwarded into another tunnel (N9) can
    // be re-encapsulated in place.
    let mut slots = Slots::new(gtp::HEADROOM, 65536);
    let mut got = [Received::EMPTY; BATCH];
    let mut fwd = Outbox::new();
    fwd.set_gso(true);
    let mut out = [0u8; 64];
    // A G-PDU forwarded into another tunnel from the middle of a slot GRO
    // filled has no headroom of its own: it is encapsulated in here.
    let mut scratch = Vec::new();
    let mut co = Coalescer::new();
    let fd = sock.as_raw_fd();
    match dpio::udp::enable_gro(fd) {
        Ok(()) => debug!(n3 = %local, "UDP GRO on"),
        Err(e) => {
            warn!(n3 = %local, error = %e, "N3: UDP GRO unavailable, G-PDUs are received one by one")
        }
    }
    while !inner.stop.load(Ordering::Relaxed) {
        let n = match recv_batch(fd, &mut slots, &mut got) {
            Ok(n) => n,
            Err(e) if dpio::udp::nothing_yet(&e) => continue,
            Err(e) => {
                if inner.log_limit.allow() {
                    warn!(error = %e, "N3 receive failed");
                }
                continue;
            }
        };
        // Odd from here until the batch's counts are written (a session's
        // final reports wait for it, [`Inner::delete`]).
        inner.ul_in_batch.enter_batch(idx);
        let snap = inner.snapshot.load();
        let now = Instant::now();
        let mut c = BatchCounts::default();
        let mut tally = Tally::new();
        for (i, r) in got[..n].iter().enumerate() {
            let from = r.from;
            if r.truncated {
                inner.metrics.drop(DropReason::Malformed);
                if let Some(sup) = inner.n3_log(LogCause::GtpuMalformed) {
                    warn!(%from, "GTP-U datagram over 64 KiB dropped{sup}");
                }
                continue;
            }
            // One datagram, or several of one size coalesced by GRO.
            for seg in r.segments() {
                let h = gtp::HEADROOM;
                let first = seg.start == 0;
                let seg_start = h + seg.start;
                let pkt = &slots.buf(i)[seg_start..h + seg.end];
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
                        c.rx(pkt.len());
                        match snap.uplink_tallied(
                            *from.ip(),
                            d.teid,
                            d.qfi,
                            d.payload,
                            now,
                            &mut tally,
                        ) {
                            Verdict::ToN6 => to_tun(inner, tun, &mut co, d.payload, &mut c),
                            Verdict::Tunnel { outer, qfi, .. } => {
                                if first {
                                    let start = seg_start + d.payload_offset;
                                    let end = start + d.payload.len();
                                    match gtp::encap_in_place(
                                        slots.buf_mut(i),
                                        start,
                                        end,
                                        outer.teid,
                                        qfi,
                                    ) {
                                        Some(s) => fwd.push(i, s, end, outer.peer),
                                        None => inner.metrics.drop(DropReason::Malformed),
                                    }
                                } else {
                                    if scratch.is_empty() {
                                        scratch = vec![0u8; h + 65536];
                                    }
                                    inner.send_encapped(&mut scratch, d.payload, outer, qfi);
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
        write_run(inner, tun, &mut co, &mut c);
        flush_n3(inner, k, &mut fwd, &slots);
        tally.flush();
        inner.ul_in_batch.leave_batch(idx);
        inner.metrics.n3_rx.add_n(c.rx.0, c.rx.1);
        inner.metrics.worker_n3_rx.add(k, c.rx.0);
        inner.metrics.n6_tx.add_n(c.tx.0, c.tx.1);
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
    // To the peer's GTP-U port, not the G-PDU's source port: a sender
    // picks the source port of its G-PDUs (TS 29.281 4.4.2; the gNB's
    // workers each send from their own), an Error Indication goes to 2152.
    let m = gtp::error_indication(teid, local, out);
    inner.send_n3(
        &out[..m],
        SocketAddrV4::new(*from.ip(), inner.config.n3.port),
    );
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

/// Worker `k`'s downlink: TUN queue `k` in, G-PDUs out from its N3
/// source port.
pub(crate) fn downlink_loop(inner: &Inner, k: usize) {
    let h = gtp::HEADROOM;
    let tun = &inner.tuns[k];
    let vnet = tun.vnet();
    let cap = if vnet { SEG_SLOT } else { 65536 };
    let mut slots = Slots::new(h, cap);
    // A super-packet is cut into here, then swapped with its slot.
    let mut spare = if vnet {
        vec![0u8; h + cap].into_boxed_slice()
    } else {
        Box::default()
    };
    let mut scratch = vec![0u8; 65536 + h];
    let mut out = Outbox::with_capacity(OUT_ITEMS);
    // The segments of a super-packet go to one gNB as one GSO message.
    out.set_gso(true);
    // The TUN is non-blocking: read up to a batch until it is empty, poll
    // only when the last batch was not full.
    let mut full = false;
    while !inner.stop.load(Ordering::Relaxed) {
        if !full {
            match tun.wait_readable(Duration::from_millis(100)) {
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
        // Odd from here until the batch's G-PDUs are sent and counted (an
        // End Marker waits for it, [`Inner::quiesce_downlink`], and so do
        // a session's final reports).
        inner.dl_in_batch.enter_batch(k);
        let snap = inner.snapshot.load();
        let now = Instant::now();
        let mut c = BatchCounts::default();
        let mut tally = Tally::new();
        let mut read = 0;
        while read < BATCH && out.len() < OUT_ITEMS / 2 {
            let mut vh = [0u8; VNET_HDR_LEN];
            let n = match tun.recv_vnet(&mut vh, slots.data_mut(read)) {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock && inner.log_limit.allow() {
                        warn!(error = %e, "TUN read failed");
                    }
                    break;
                }
            };
            let i = read;
            read += 1;
            c.rx(n);
            // One packet, or the segments of a super-packet, each in the
            // slot with GTP-U headroom in front; each decided on its own.
            let vh = VnetHdr::parse(&vh).unwrap_or_default();
            if vh.is_gso() {
                inner.metrics.n6_rx_super.fetch_add(1, Ordering::Relaxed);
            }
            let segs = offload::slot_segments(&mut slots, i, n, &vh, &mut spare);
            let segs = match segs {
                Ok(s) => s,
                Err(e) => {
                    inner.metrics.drop(DropReason::Malformed);
                    if inner.log_limit.allow() {
                        warn!(error = %e, gso = vh.gso_type, gso_size = vh.gso_size, len = n, "downlink TUN packet dropped");
                    }
                    continue;
                }
            };
            for seg in 0..segs.count {
                let r = segs.range(seg);
                // A super-packet's segments share their headers: the first
                // one's PDR decides the others.
                let again = (seg > 0)
                    .then(|| snap.again(r.len(), now, &mut tally))
                    .flatten();
                let verdict = match again {
                    Some(v) => v,
                    None => snap.downlink_tallied(&slots.buf(i)[r.clone()], now, Some(&mut tally)),
                };
                match verdict {
                    Verdict::Tunnel {
                        outer,
                        qfi,
                        session,
                    } => {
                        if session.buffered.load(Ordering::Acquire) {
                            // A flush is pending: older packets go first.
                            flush_n3(inner, k, &mut out, &slots);
                            inner.flush(&snap, session, &mut scratch);
                        }
                        match gtp::encap_in_place(slots.buf_mut(i), r.start, r.end, outer.teid, qfi)
                        {
                            Some(s) => out.push(i, s, r.end, outer.peer),
                            None => inner.metrics.drop(DropReason::Malformed),
                        }
                    }
                    Verdict::ToN6 => {
                        // A downlink PDR forwarding back to N6 would loop; drop.
                        inner.metrics.drop(DropReason::FarDrop);
                    }
                    Verdict::Buffer(s) => {
                        if !s.buffer_packet(&slots.buf(i)[r]) {
                            inner.metrics.drop(DropReason::BufferFull);
                        }
                    }
                    Verdict::Drop(r) => inner.metrics.drop(r),
                }
            }
        }
        full = read == BATCH || out.len() >= OUT_ITEMS / 2;
        flush_n3(inner, k, &mut out, &slots);
        tally.flush();
        inner.dl_in_batch.leave_batch(k);
        inner.metrics.n6_rx.add_n(c.rx.0, c.rx.1);
        inner.metrics.worker_n6_rx.add(k, c.rx.0);
    }
}
