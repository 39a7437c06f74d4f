//! The uplink thread: up to a batch of TUN reads per wake-up, each packet
//! (or each segment of a TSO/USO super-packet) mapped to its tunnel by
//! [`core::uplink`], GTP-U encapsulated in place and sent to its UPF in
//! one `sendmmsg` (with UDP GSO) per batch.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use dpio::offload::{self, VnetHdr, VNET_HDR_LEN};
use dpio::udp::{Outbox, Slots};
use dpio::BATCH;
use tracing::{info, warn};
use wire::gtpu::encap_in_place;

use super::core::{self, Uplink};
use super::counters::{add, RateLimit, Runs};
use super::{GnbCounters, MAX_PKT, POLL};
use crate::tun::Tun;
use crate::tunnels::{Tunnel, TunnelTable};

/// Headroom in front of each uplink packet: enough for the header the gNB
/// writes (16 octets: mandatory, optional fields, UL container with QFI).
const HEADROOM: usize = 16;

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

pub(super) fn uplink(
    tun: &Tun,
    sock: &UdpSocket,
    table: &TunnelTable,
    ctr: &GnbCounters,
    stop: &AtomicBool,
    worker: usize,
) {
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
        ctr.worker_tun_rx.add(worker, rx);
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
