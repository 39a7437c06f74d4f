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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
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
            get(|State(i): State<Arc<Inner>>| async move { text(prometheus(&i)) }),
        )
        .route(
            "/stats",
            get(|State(i): State<Arc<Inner>>| async move { text(stats_text(&i)) }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found; try /metrics or /stats\n") })
        .with_state(inner)
}

fn text(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

fn counter(out: &mut String, name: &str, labels: &str, c: &Counter) {
    let (p, b) = c.get();
    let _ = writeln!(out, "upf_{name}_packets_total{labels} {p}");
    let _ = writeln!(out, "upf_{name}_bytes_total{labels} {b}");
}

/// Prometheus text.
pub fn prometheus(inner: &Inner) -> String {
    let m = &inner.metrics;
    let mut o = String::new();
    for (name, c) in [
        ("n3_rx", &m.n3_rx),
        ("n3_tx", &m.n3_tx),
        ("n6_rx", &m.n6_rx),
        ("n6_tx", &m.n6_tx),
    ] {
        let _ = writeln!(o, "# TYPE upf_{name}_packets_total counter");
        let _ = writeln!(o, "# TYPE upf_{name}_bytes_total counter");
        counter(&mut o, name, "", c);
    }
    let _ = writeln!(o, "# TYPE upf_drops_total counter");
    for r in DropReason::ALL {
        let _ = writeln!(
            o,
            "upf_drops_total{{reason=\"{}\"}} {}",
            r.label(),
            m.drops_of(r)
        );
    }
    for (name, v) in [
        ("echo_answered_total", &m.echo_answered),
        ("error_indications_sent_total", &m.error_indications),
        (
            "error_indications_suppressed_total",
            &m.error_indications_suppressed,
        ),
        ("end_markers_sent_total", &m.end_markers),
    ] {
        let _ = writeln!(o, "# TYPE upf_{name} counter");
        let _ = writeln!(o, "upf_{name} {}", v.load(Ordering::Relaxed));
    }
    let (lines, suppressed) = inner.n3_log_counts();
    for (name, v) in [
        ("n3_log_lines_total", lines),
        ("n3_log_suppressed_total", suppressed),
    ] {
        let _ = writeln!(o, "# TYPE upf_{name} counter");
        let _ = writeln!(o, "upf_{name} {v}");
    }
    let pfcp = &inner.pfcp_stats;
    let _ = writeln!(o, "# TYPE upf_pfcp_messages_total counter");
    for (k, v) in pfcp.snapshot() {
        let _ = writeln!(o, "upf_pfcp_messages_total{{kind=\"{k}\"}} {v}");
    }
    let rows = session_rows(inner);
    let _ = writeln!(o, "# TYPE upf_sessions gauge");
    let _ = writeln!(o, "upf_sessions {}", rows.len());
    let _ = writeln!(o, "# TYPE upf_session_packets_total counter");
    for s in &rows {
        let seid = s.seid;
        let sh = &s.shared;
        counter(
            &mut o,
            "session",
            &format!("{{seid=\"{seid}\",direction=\"ul\"}}"),
            &sh.ul,
        );
        counter(
            &mut o,
            "session",
            &format!("{{seid=\"{seid}\",direction=\"dl\"}}"),
            &sh.dl,
        );
        for (name, v) in [
            ("dropped_total", sh.dropped.load(Ordering::Relaxed)),
            ("spoofed_total", sh.spoofed.load(Ordering::Relaxed)),
            (
                "wrong_sender_total",
                sh.wrong_sender.load(Ordering::Relaxed),
            ),
            (
                "protected_destination_total",
                sh.protected_dst.load(Ordering::Relaxed),
            ),
            ("buffered", sh.buffered_len() as u64),
        ] {
            let _ = writeln!(o, "upf_session_{name}{{seid=\"{seid}\"}} {v}");
        }
        for p in &s.pdrs {
            let _ = writeln!(
                o,
                "upf_pdr_packets_total{{seid=\"{seid}\",pdr=\"{}\"}} {}",
                p.pdr_id, p.packets
            );
            let _ = writeln!(
                o,
                "upf_pdr_bytes_total{{seid=\"{seid}\",pdr=\"{}\"}} {}",
                p.pdr_id, p.bytes
            );
        }
    }
    o
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
