//! The metrics endpoint, served by axum (the HTTP stack of every daemon of
//! the project) on a one-thread tokio runtime of its own: the data path and
//! N4 stay on their threads; clients are served side by side, so a slow one
//! holds only its own connection.
//!
//! - `GET /metrics`: Prometheus text exposition (interface, drop, session
//!   and PDR counters).
//! - `GET /stats`: the same as a human-readable table (what `upf stats`
//!   prints).

use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ctlhttp::metrics::{Collector, DescriptorEncoder, Families};
use tracing::warn;

use crate::daemon::Inner;
use crate::datapath::{Counter, DropReason, SessionShared};
use crate::session::PdrStats;

/// How often the server looks at `inner.stop` (bounds how long
/// [`crate::daemon::Upf::stop`] waits for this thread).
const STOP_POLL: Duration = Duration::from_millis(50);

/// Serve until `inner.stop`; a failure to start is logged (the UPF keeps
/// forwarding without its metrics).
pub fn serve(inner: Arc<Inner>, listener: TcpListener) {
    let run = || -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let stop = inner.clone();
            axum::serve(listener, router(inner))
                .with_graceful_shutdown(async move {
                    while !stop.stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(STOP_POLL).await;
                    }
                })
                .await
        })
    };
    if let Err(e) = run() {
        warn!(error = %e, "metrics server stopped");
    }
}

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(i): State<Arc<Inner>>| async move {
                ctlhttp::metrics::response(prometheus(&i))
            }),
        )
        .route(
            "/stats",
            get(|State(i): State<Arc<Inner>>| async move { text(stats_text(&i)) }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found; try /metrics or /stats\n") })
        .with_state(inner)
}

fn text(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// The UPF's `/metrics` families. They are read from the data path's
/// counters (written once per batch by the forwarding threads) when a
/// scrape encodes them; nothing is counted twice for the exposition.
pub struct UpfCollector(pub Arc<Inner>);

impl std::fmt::Debug for UpfCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpfCollector")
    }
}

impl Collector for UpfCollector {
    fn encode(&self, enc: DescriptorEncoder) -> std::fmt::Result {
        families(&mut Families::new(enc), &self.0)
    }
}

/// Prometheus text.
pub fn prometheus(inner: &Arc<Inner>) -> String {
    ctlhttp::metrics::encode(UpfCollector(inner.clone()))
}

/// One interface counter pair: (packets series, its help, bytes series,
/// its help, the counter).
type Iface<'a> = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'a Counter,
);

fn families(f: &mut Families<'_>, inner: &Inner) -> std::fmt::Result {
    let m = &inner.metrics;
    let ifaces: [Iface<'_>; 4] = [
        (
            "upf_n3_rx_packets_total",
            "G-PDUs received on N3 (TS 28.552 GTP.InDataPktN3UPF).",
            "upf_n3_rx_bytes_total",
            "Octets of the G-PDUs received on N3 (TS 28.552 GTP.InDataOctN3UPF).",
            &m.n3_rx,
        ),
        (
            "upf_n3_tx_packets_total",
            "GTP-U packets sent on N3: G-PDUs (TS 28.552 GTP.OutDataPktN3UPF), echo, \
             error indications, end markers.",
            "upf_n3_tx_bytes_total",
            "Octets of the GTP-U packets sent on N3 (TS 28.552 GTP.OutDataOctN3UPF).",
            &m.n3_tx,
        ),
        (
            "upf_n6_rx_packets_total",
            "Packets read from the N6 TUN (a super-packet counts once).",
            "upf_n6_rx_bytes_total",
            "Octets read from the N6 TUN.",
            &m.n6_rx,
        ),
        (
            "upf_n6_tx_packets_total",
            "Packets written to the N6 TUN (each segment of a joined write counts).",
            "upf_n6_tx_bytes_total",
            "Octets written to the N6 TUN.",
            &m.n6_tx,
        ),
    ];
    for (pn, ph, bn, bh, c) in ifaces {
        let (p, b) = c.get();
        f.counter_value(pn, ph, p)?;
        f.counter_value(bn, bh, b)?;
    }
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (log_lines, log_suppressed) = inner.n3_log_counts();
    for (name, help, v) in [
        (
            "upf_n6_rx_super_packets_total",
            "N6 TUN reads that were TSO/USO super-packets, cut into segments \
             (upf_n6_rx_packets_total counts each read once).",
            ld(&m.n6_rx_super),
        ),
        (
            "upf_n6_tx_super_packets_total",
            "N6 TUN writes that joined several uplink segments \
             (upf_n6_tx_packets_total counts each segment).",
            ld(&m.n6_tx_super),
        ),
        (
            "upf_echo_answered_total",
            "GTP-U Echo Requests answered.",
            ld(&m.echo_answered),
        ),
        (
            "upf_error_indications_sent_total",
            "GTP-U Error Indications sent.",
            ld(&m.error_indications),
        ),
        (
            "upf_error_indications_suppressed_total",
            "Error Indications not sent: the peer's token bucket was empty.",
            ld(&m.error_indications_suppressed),
        ),
        (
            "upf_end_markers_sent_total",
            "GTP-U End Markers sent.",
            ld(&m.end_markers),
        ),
        (
            "upf_n3_log_lines_total",
            "Log lines written about bad N3 input (rate-limited).",
            log_lines,
        ),
        (
            "upf_n3_log_suppressed_total",
            "Log lines about bad N3 input suppressed by the rate limit.",
            log_suppressed,
        ),
    ] {
        f.counter_value(name, help, v)?;
    }
    f.counter(
        "upf_drops_total",
        "Packets dropped, by reason.",
        DropReason::ALL.map(|r| ([("reason", r.label())], m.drops_of(r))),
    )?;
    for (name, help, per) in [
        (
            "upf_worker_n3_rx_packets_total",
            "G-PDUs received on N3, by data-path worker (how the flows spread).",
            &m.worker_n3_rx,
        ),
        (
            "upf_worker_n6_rx_packets_total",
            "Packets read from the N6 TUN, by data-path worker (its TUN queue).",
            &m.worker_n6_rx,
        ),
    ] {
        f.counter(
            name,
            help,
            per.counts()
                .into_iter()
                .enumerate()
                .map(|(k, v)| ([("worker", k.to_string())], v)),
        )?;
    }
    f.counter(
        "upf_pfcp_messages_total",
        "PFCP (N4) messages and events, by kind (kind=\"session_report\": \
         TS 28.552 SM.N4SessionReport).",
        inner
            .pfcp_stats
            .snapshot()
            .into_iter()
            .map(|(k, v)| ([("kind", k)], v)),
    )?;
    session_families(f, &session_rows(inner))
}

/// The per-session and per-PDR families (one series per session or PDR).
fn session_families(f: &mut Families<'_>, rows: &[SessionRow]) -> std::fmt::Result {
    f.gauge_value("upf_sessions", "N4 sessions held.", rows.len())?;
    let seids: Vec<String> = rows.iter().map(|s| s.seid.to_string()).collect();
    let seids = &seids[..];
    let dir = |i: usize, d: &'static str| [("seid", seids[i].clone()), ("direction", d.into())];
    let by_dir = |get: fn(&Counter) -> u64| {
        rows.iter().enumerate().flat_map(move |(i, s)| {
            [
                (dir(i, "ul"), get(&s.shared.ul)),
                (dir(i, "dl"), get(&s.shared.dl)),
            ]
        })
    };
    f.counter(
        "upf_session_packets_total",
        "Packets forwarded for the session, by direction (TS 28.552 \
         GTP.InDataPktN3UPF is the sum of ul, GTP.OutDataPktN3UPF of dl).",
        by_dir(|c| c.get().0),
    )?;
    f.counter(
        "upf_session_bytes_total",
        "Octets forwarded for the session, by direction (TS 28.552 \
         GTP.InDataOctN3UPF / GTP.OutDataOctN3UPF per PDU session).",
        by_dir(|c| c.get().1),
    )?;
    let one = |get: fn(&SessionShared) -> u64| {
        rows.iter()
            .enumerate()
            .map(move |(i, s)| ([("seid", seids[i].as_str())], get(&s.shared)))
    };
    type Per = (&'static str, &'static str, fn(&SessionShared) -> u64);
    let per: [Per; 4] = [
        (
            "upf_session_dropped_total",
            "Packets of the session dropped.",
            |s| s.dropped.load(Ordering::Relaxed),
        ),
        (
            "upf_session_spoofed_total",
            "Uplink packets of the session from another source than the UE's address.",
            |s| s.spoofed.load(Ordering::Relaxed),
        ),
        (
            "upf_session_wrong_sender_total",
            "G-PDUs for the session's TEID from another address than its gNB.",
            |s| s.wrong_sender.load(Ordering::Relaxed),
        ),
        (
            "upf_session_protected_destination_total",
            "Uplink packets of the session for a protected (core) destination.",
            |s| s.protected_dst.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in per {
        f.counter(name, help, one(get))?;
    }
    f.gauge(
        "upf_session_buffered",
        "Downlink packets of the session held in its buffer.",
        one(|s| s.buffered_len() as u64),
    )?;
    let pdrs = || {
        rows.iter().enumerate().flat_map(|(i, s)| {
            s.pdrs.iter().map(move |p| {
                (
                    [("seid", seids[i].clone()), ("pdr", p.pdr_id.to_string())],
                    (p.packets, p.bytes),
                )
            })
        })
    };
    f.counter(
        "upf_pdr_packets_total",
        "Packets matched by the PDR.",
        pdrs().map(|(l, (p, _))| (l, p)),
    )?;
    f.counter(
        "upf_pdr_bytes_total",
        "Octets matched by the PDR.",
        pdrs().map(|(l, (_, b))| (l, b)),
    )
}

/// What the pages show of one session, taken under the table's lock and
/// formatted after it is released (the control plane waits only for the
/// copy, not for the text).
struct SessionRow {
    seid: u64,
    ue: Option<std::net::Ipv4Addr>,
    shared: Arc<SessionShared>,
    pdrs: Vec<PdrStats>,
}

fn session_rows(inner: &Inner) -> Vec<SessionRow> {
    let mut rows: Vec<SessionRow> = {
        let t = inner.table();
        t.sessions()
            .map(|s| SessionRow {
                seid: s.local_seid,
                ue: s.ue_ip(),
                shared: s.shared.clone(),
                pdrs: s.pdr_stats(),
            })
            .collect()
    };
    rows.sort_by_key(|r| r.seid);
    rows
}

/// Human-readable summary.
pub fn stats_text(inner: &Inner) -> String {
    let m = &inner.metrics;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node_id {}  recovery_ts {}",
        inner.config.node_id, inner.recovery_ts
    );
    let _ = writeln!(o, "{:<8} {:>12} {:>14}", "iface", "packets", "bytes");
    for (name, c) in [
        ("n3 rx", &m.n3_rx),
        ("n3 tx", &m.n3_tx),
        ("n6 rx", &m.n6_rx),
        ("n6 tx", &m.n6_tx),
    ] {
        let (p, b) = c.get();
        let _ = writeln!(o, "{name:<8} {p:>12} {b:>14}");
    }
    let _ = writeln!(o, "drops:");
    for r in DropReason::ALL {
        let _ = writeln!(o, "  {:<14} {}", r.label(), m.drops_of(r));
    }
    let rows = session_rows(inner);
    let _ = writeln!(o, "sessions: {}", rows.len());
    let _ = writeln!(
        o,
        "{:>18} {:>15} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}",
        "seid", "ue", "ul_pkts", "ul_bytes", "dl_pkts", "dl_bytes", "dropped", "spoofed"
    );
    for s in &rows {
        let sh = &s.shared;
        let (ulp, ulb) = sh.ul.get();
        let (dlp, dlb) = sh.dl.get();
        let ue = s.ue.map_or("-".to_string(), |a| a.to_string());
        let _ = writeln!(
            o,
            "{:>#18x} {ue:>15} {ulp:>10} {ulb:>12} {dlp:>10} {dlb:>12} {:>8} {:>8}",
            s.seid,
            sh.dropped.load(Ordering::Relaxed),
            sh.spoofed.load(Ordering::Relaxed)
        );
    }
    o
}

/// Fetch `path` from a metrics endpoint (client side of `upf stats`), with
/// the project's one HTTP client; an answer other than 200 is an error
/// naming its status.
pub fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let url = format!("http://{addr}{path}");
    let client = ctlhttp::Client::new(Duration::from_secs(3));
    let r = ctlhttp::daemon::block_on_control_plane(async { client.get(&url).await })
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    if r.status != 200 {
        return Err(std::io::Error::other(format!(
            "HTTP {}: {}",
            r.status,
            r.text().trim()
        )));
    }
    Ok(r.text())
}
