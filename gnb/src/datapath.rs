//! The N3 data path: two threads per worker with preallocated buffers
//! around the I/O-free decisions of [`core`] (a tunnel snapshot and a
//! packet in, a verdict out), in the loop design of [`dpio`]. Worker `k`
//! has TUN queue `k` (the kernel spreads flows over the queues) and
//! socket `k` of the N3 port's group, which gets the G-PDUs a UPF sent
//! from a source port `p` with `p mod workers = k`
//! ([`dpio::reuseport`]); its uplink sends from port 2152 + `k`, so a UPF
//! with as many workers hands its uplink to its worker `k` too:
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
//!
//! One job per file: [`core`] (the verdicts), `uplink` and `downlink` (the
//! two threads), `counters` ([`GnbCounters`] and the counting and log
//! limiting helpers); this file starts and stops the threads and holds
//! what they hand to the control side.

use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use crate::tun::Tun;
use crate::tunnels::TunnelTable;

pub mod core;
mod counters;
mod downlink;
mod uplink;

pub use counters::GnbCounters;
use downlink::downlink;
use uplink::uplink;

/// Largest packet handled (TUN reads, UDP receives).
const MAX_PKT: usize = 65535;
/// How often the threads look at the stop flag when idle.
const POLL: Duration = Duration::from_millis(100);

/// Something the data path asks the control side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatapathEvent {
    /// An End Marker arrived from its UPF on the draining tunnel with this
    /// downlink TEID: remove it ([`end_marker_teardown`]).
    EndMarker(u32),
}

/// Waits out what the other workers had received before an End Marker.
///
/// The UPF's workers send G-PDUs from ports of their own, so the G-PDUs of
/// the old path can sit in another worker's socket when the End Marker
/// (TS 29.281 5.1: the last packet on that path) reaches its worker. The
/// tunnel goes only once every worker has found its socket empty twice
/// since (the receive that finds it empty the second time began after the
/// End Marker arrived) and handled what it took: no G-PDU that came before
/// the End Marker meets an unknown TEID. Pure: the counts are
/// [`GnbCounters::worker_n3_drained`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainBarrier {
    at: Vec<u64>,
}

impl DrainBarrier {
    /// Each worker's count of empty sockets when the End Marker arrived.
    pub fn new(drained: Vec<u64>) -> DrainBarrier {
        DrainBarrier { at: drained }
    }

    /// The workers (by index) that have not drained yet, given the counts
    /// `now`; none left means the tunnel may go.
    pub fn waiting(&self, now: &[u64]) -> Vec<usize> {
        self.at
            .iter()
            .enumerate()
            .filter(|&(k, at)| now.get(k).is_none_or(|n| *n < at.saturating_add(2)))
            .map(|(k, _)| k)
            .collect()
    }
}

/// Longest an End Marker's teardown waits for the workers to drain (an
/// idle worker finds its socket empty at every `POLL`; one that never
/// does is under a load of full batches, and the tunnel goes anyway).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

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
    /// Starts an uplink and a downlink thread per worker: one per TUN
    /// queue of `tuns` (made non-blocking here), each with the N3 socket
    /// of `group` at its index (the sockets bound to the N3 port, see
    /// [`dpio::reuseport::bind_group`]; as many as queues).
    pub fn start(
        tuns: Vec<Tun>,
        group: Vec<UdpSocket>,
        table: Arc<TunnelTable>,
        counters: Arc<GnbCounters>,
        events: tokio::sync::mpsc::UnboundedSender<DatapathEvent>,
    ) -> io::Result<Datapath> {
        if tuns.is_empty() || tuns.len() != group.len() {
            return Err(io::Error::other(format!(
                "{} TUN queues for {} N3 sockets",
                tuns.len(),
                group.len()
            )));
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Threads go into the data path as they start: if a later step
        // fails, dropping it stops and joins those already running.
        let mut dp = Datapath {
            stop: stop.clone(),
            threads: Vec::new(),
        };
        let mut senders = Vec::with_capacity(group.len());
        for k in 0..group.len() {
            let (s, moved) = dpio::reuseport::bind_sender(&group, k)?;
            if let Some(e) = moved {
                warn!(worker = k, port = s.local_addr()?.port(), error = %e,
                    "N3: the worker's own source port is taken, it sends from another (its G-PDUs may reach another UPF worker)");
            }
            senders.push(s);
        }
        // Sender 0 is socket 0 of the group (a clone): set once.
        for s in group.iter().chain(senders.iter().skip(1)) {
            if let Err(e) = dpio::udp::set_buffers(s.as_raw_fd(), dpio::udp::N3_BUFFER) {
                warn!(error = %e, "N3 socket buffers left at the default");
            }
        }
        let workers = group.len();
        for (k, ((tun, sock), tx)) in tuns.into_iter().zip(group).zip(senders).enumerate() {
            sock.set_read_timeout(Some(POLL))?;
            tun.set_nonblocking().map_err(io::Error::other)?;
            if let Err(e) = dpio::udp::enable_gro(sock.as_raw_fd()) {
                warn!(worker = k, error = %e, "N3: UDP GRO unavailable, G-PDUs are received one by one");
            }
            let dl_tun = tun.try_clone()?;
            let (stop_u, table_u, counters_u) = (stop.clone(), table.clone(), counters.clone());
            dp.threads.push(
                std::thread::Builder::new()
                    .name(format!("gnb-uplink{k}"))
                    .spawn(move || {
                        ctlhttp::rt::media_thread("gnb-uplink");
                        uplink(&tun, &tx, &table_u, &counters_u, &stop_u, k)
                    })?,
            );
            let (stop_d, table_d, counters_d, events) = (
                stop.clone(),
                table.clone(),
                counters.clone(),
                events.clone(),
            );
            dp.threads.push(
                std::thread::Builder::new()
                    .name(format!("gnb-downlink{k}"))
                    .spawn(move || {
                        ctlhttp::rt::media_thread("gnb-downlink");
                        downlink(&dl_tun, &sock, &table_d, &counters_d, &events, &stop_d, k)
                    })?,
            );
        }
        info!(
            workers,
            "N3 data path started: per worker a TUN queue, a socket of the N3 port (UDP GRO) and an uplink source port"
        );
        Ok(dp)
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

/// The IPv4 address of an `IpAddr` (N3 is IPv4 here).
pub fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::DrainBarrier;

    #[test]
    fn a_worker_drains_when_it_found_its_socket_empty_twice_since() {
        let b = DrainBarrier::new(vec![5, 9]);
        assert_eq!(b.waiting(&[5, 9]), vec![0, 1]);
        // Once: that receive may have begun before the End Marker came.
        assert_eq!(b.waiting(&[6, 11]), vec![0]);
        assert_eq!(b.waiting(&[7, 11]), Vec::<usize>::new());
        // A count that is missing (fewer workers than at the start) waits.
        assert_eq!(b.waiting(&[7]), vec![1]);
    }
}
