//! The gNB's counters ([`GnbCounters`], read by `/metrics`) and the
//! helpers that keep the data path's per-packet work off shared state:
//! counts added once per batch ([`add`]) or once per run of one tunnel's
//! packets ([`Runs`]), and the rate limit of packet-triggered logs
//! ([`RateLimit`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dpio::reuseport::PerWorker;

use crate::tunnels::Tunnel;

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
    /// Packets each data-path worker read from its TUN queue.
    pub worker_tun_rx: PerWorker,
    /// GTP-U datagrams each data-path worker received on N3.
    pub worker_n3_rx: PerWorker,
    /// How many times each worker found its N3 socket empty (a receive
    /// that waited out its timeout or took less than a full batch), counted
    /// once what it received is handled: the End Marker's drain barrier
    /// ([`crate::datapath::DrainBarrier`]).
    pub worker_n3_drained: PerWorker,
}

impl GnbCounters {
    /// Counters for `workers` data-path workers.
    pub fn with_workers(workers: usize) -> GnbCounters {
        GnbCounters {
            worker_tun_rx: PerWorker::new(workers),
            worker_n3_rx: PerWorker::new(workers),
            worker_n3_drained: PerWorker::new(workers),
            ..GnbCounters::default()
        }
    }

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
pub(super) struct RateLimit {
    last: Option<Instant>,
    pub(super) suppressed: u64,
}

impl RateLimit {
    pub(super) fn new() -> Self {
        RateLimit {
            last: None,
            suppressed: 0,
        }
    }
    /// `Some(suppressed)` when a message may be logged now.
    pub(super) fn allow(&mut self) -> Option<u64> {
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

/// Adds packets and bytes to a tunnel's counter pair once per run of
/// consecutive packets of the same tunnel.
pub(super) struct Runs<'a> {
    run: dpio::run::Run<'a, Tunnel>,
    pick: fn(&Tunnel) -> (&AtomicU64, &AtomicU64),
}

impl<'a> Runs<'a> {
    pub(super) fn new(pick: fn(&Tunnel) -> (&AtomicU64, &AtomicU64)) -> Self {
        Runs {
            run: dpio::run::Run::new(),
            pick,
        }
    }
    pub(super) fn add(&mut self, t: &'a Tunnel, bytes: usize) {
        let ended = self.run.add(t, bytes as u64);
        self.write(ended);
    }
    pub(super) fn flush(&mut self) {
        let ended = self.run.take();
        self.write(ended);
    }
    fn write(&self, ended: Option<dpio::run::Ended<'_, Tunnel>>) {
        if let Some((t, packets, bytes)) = ended {
            let (p, b) = (self.pick)(t);
            p.fetch_add(packets, Ordering::Relaxed);
            b.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// Adds `v` to a shared counter (once per batch); a zero writes nothing,
/// so an idle counter's cache line is not dirtied.
pub(super) fn add(a: &AtomicU64, v: u64) {
    if v != 0 {
        a.fetch_add(v, Ordering::Relaxed);
    }
}
