//! The metrics endpoint: a tiny HTTP/1.0 responder on std::net.
//!
//! - `GET /metrics`: Prometheus text exposition (interface, drop, session
//!   and PDR counters).
//! - `GET /stats`: the same as a human-readable table (what `upf stats`
//!   prints).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::daemon::Inner;
use crate::datapath::{Counter, DropReason, SessionShared};
use crate::session::PdrStats;

/// Serve until `inner.stop`.
pub fn serve(inner: &Inner, listener: TcpListener) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !inner.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => handle(inner, s),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The whole of a request's reading and of its answer's writing: a client
/// that sends or reads slowly holds the (single) server thread at most this
/// long.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

fn handle(inner: &Inner, mut s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let _ = s.set_write_timeout(Some(REQUEST_DEADLINE));
    let mut req = [0u8; 2048];
    let mut n = 0;
    while n < req.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut req[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n += k;
                if req[..n].windows(4).any(|w| w == b"\r\n\r\n") || req[..n].ends_with(b"\n\n") {
                    break;
                }
            }
        }
    }
    let line = String::from_utf8_lossy(&req[..n]);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/metrics" => ("200 OK", prometheus(inner)),
        "/stats" => ("200 OK", stats_text(inner)),
        _ => (
            "404 Not Found",
            "not found; try /metrics or /stats\n".to_string(),
        ),
    };
    let _ = write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
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

/// Fetch `path` from a metrics endpoint (client side of `upf stats`).
pub fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_string(),
        ));
    }
    Ok(body.to_string())
}
