//! (d) The flood: from the rogue on the cp and n3 switches, malformed
//! datagrams in turn to every UPF's N3 and N4, the SMF's N4 and every
//! gNB's N3, at most `rate` a second. Before and after, per daemon: alive
//! (pid and start time), log lines, resident memory (`VmRSS` of
//! `/proc/PID/status`). Afterwards: no daemon died, none wrote 100 log
//! lines or more, none grew by 10 MB or more, and the session forwards.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{Ctx, Echo, Rogue, Session};
use super::{Check, Effort};
use crate::bed::{alive, BedError, ProcRec};
use crate::plan::{Role, PFCP_PORT};

/// Log lines a daemon may write for the whole flood.
const MAX_LOG_LINES: u64 = 100;
/// Resident memory a daemon may grow by, kB.
const MAX_RSS_GROWTH_KB: i64 = 10 * 1024;

/// A daemon's figures at one moment.
#[derive(Debug, Clone, Copy)]
struct Figures {
    alive: bool,
    log_lines: u64,
    rss_kb: i64,
}

fn figures(p: &ProcRec) -> Figures {
    let log_lines = std::fs::read(&p.log)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0);
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", p.pid))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(-1);
    Figures {
        alive: alive(p),
        log_lines,
        rss_kb,
    }
}

/// The UPF counters the report shows the flood's growth of: (name in the
/// report, metric).
const UPF_COUNTERS: [(&str, &str); 4] = [
    ("malformed_drops", "upf_drops_total{reason=\"malformed\"}"),
    ("n3_log_lines", "upf_n3_log_lines_total"),
    ("n3_log_suppressed", "upf_n3_log_suppressed_total"),
    (
        "error_indications_suppressed",
        "upf_error_indications_suppressed_total",
    ),
];

/// A UPF's [`UPF_COUNTERS`] now (0 when unreadable).
fn upf_figures(ctx: &Ctx<'_>, u: &crate::plan::UpfPlan) -> Vec<f64> {
    let c = ctx.upf_counters(u).unwrap_or_default();
    UPF_COUNTERS
        .iter()
        .map(|(_, m)| c.get(*m).copied().unwrap_or(0.0))
        .collect()
}

/// xorshift64*: the same datagrams every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize, out: &mut Vec<u8>) {
        out.extend((0..n).map(|_| self.next() as u8));
    }
}

/// A malformed GTP-U datagram of kind `k`.
fn bad_gtpu(r: &mut Rng, k: u64, out: &mut Vec<u8>) {
    out.clear();
    let teid = (r.next() as u32).to_be_bytes();
    match k % 7 {
        // Shorter than the mandatory header.
        0 => r.bytes(1 + (r.0 % 7) as usize, out),
        // Version 2.
        1 => {
            out.extend_from_slice(&[0x50, 0xff, 0, 8]);
            out.extend_from_slice(&teid);
            r.bytes(8, out);
        }
        // Length beyond the datagram.
        2 => {
            out.extend_from_slice(&[0x30, 0xff, 0x05, 0xdc]);
            out.extend_from_slice(&teid);
            r.bytes(20, out);
        }
        // A G-PDU for an unknown TEID with a garbage inner packet.
        3 => {
            out.extend_from_slice(&[0x30, 0xff, 0, 24]);
            out.extend_from_slice(&teid);
            r.bytes(24, out);
        }
        // E flag with an extension header whose length runs off the end.
        4 => {
            out.extend_from_slice(&[0x34, 0xff, 0, 8]);
            out.extend_from_slice(&teid);
            out.extend_from_slice(&[0, 0, 0, 0x85, 0xff, 0, 1, 2]);
        }
        // An unknown message type.
        5 => {
            out.extend_from_slice(&[0x30, 0x77, 0, 4]);
            out.extend_from_slice(&teid);
            r.bytes(4, out);
        }
        // Noise.
        _ => r.bytes(1 + (r.0 % 200) as usize, out),
    }
}

/// A malformed PFCP datagram of kind `k`.
fn bad_pfcp(r: &mut Rng, k: u64, out: &mut Vec<u8>) {
    out.clear();
    match k % 7 {
        // Shorter than a header.
        0 => r.bytes(1 + (r.0 % 3) as usize, out),
        // Version 2 Heartbeat.
        1 => out.extend_from_slice(&[0x40, 1, 0, 12, 0, 0, 1, 0, 0, 96, 0, 4, 1, 2, 3, 4]),
        // Length beyond the datagram.
        2 => out.extend_from_slice(&[0x20, 1, 0x0f, 0xff, 0, 0, 1, 0]),
        // A Heartbeat whose IE runs off the end.
        3 => out.extend_from_slice(&[0x20, 1, 0, 12, 0, 0, 2, 0, 0, 96, 0x40, 0, 1, 2]),
        // A session message for a random SEID with garbage IEs.
        4 => {
            out.extend_from_slice(&[0x21, 52, 0, 20]);
            out.extend_from_slice(&r.next().to_be_bytes());
            out.extend_from_slice(&[0, 0, 3, 0]);
            r.bytes(8, out);
        }
        // An unknown message type.
        5 => out.extend_from_slice(&[0x20, 99, 0, 4, 0, 0, 4, 0]),
        // Association Setup with a truncated Node ID.
        _ => out.extend_from_slice(&[0x20, 5, 0, 9, 0, 0, 5, 0, 0, 60, 0, 5, 0]),
    }
}

/// The flood's targets: (what, from the rogue's cp side, address, PFCP).
fn targets(ctx: &Ctx<'_>) -> Vec<(String, bool, SocketAddr, bool)> {
    let plan = &ctx.st.plan;
    let mut v = Vec::new();
    for u in &plan.upfs {
        v.push((
            format!("{} N3", u.name),
            false,
            SocketAddr::from((u.n3, 2152)),
            false,
        ));
        v.push((format!("{} N4", u.name), true, u.n4, true));
    }
    v.push((
        "smf N4".into(),
        true,
        SocketAddr::new(plan.smf_api.ip(), PFCP_PORT),
        true,
    ));
    for g in &plan.gnbs {
        v.push((
            format!("{} N3", g.name),
            false,
            SocketAddr::from((g.n3, 2152)),
            false,
        ));
    }
    v
}

/// Sends `total` datagrams round-robin to the targets, at most `rate` a
/// second; the count sent to each.
fn send(
    rogue: &Rogue,
    ctx: &Ctx<'_>,
    total: u64,
    rate: u64,
) -> Result<Vec<(String, u64)>, BedError> {
    let t = targets(ctx);
    let cp = rogue.socket(rogue.cp)?;
    let n3 = rogue.socket(rogue.n3)?;
    let mut sent = vec![0u64; t.len()];
    let mut r = Rng(0x5eed_cafe_f00d_0001);
    let mut buf = Vec::with_capacity(256);
    let start = Instant::now();
    for i in 0..total {
        let j = (i % t.len() as u64) as usize;
        let (_, on_cp, to, pfcp) = &t[j];
        let k = r.next();
        if *pfcp {
            bad_pfcp(&mut r, k, &mut buf);
        } else {
            bad_gtpu(&mut r, k, &mut buf);
        }
        let s: &UdpSocket = if *on_cp { &cp } else { &n3 };
        if s.send_to(&buf, to).is_ok() {
            sent[j] += 1;
        }
        if i % 100 == 99 {
            let due = Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(d) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(d);
            }
        }
    }
    Ok(t.into_iter().map(|x| x.0).zip(sent).collect())
}

/// The checks.
pub fn run(
    ctx: &Ctx<'_>,
    session: &Session,
    rogue: &Rogue,
    _echo: &Echo,
    effort: &Effort,
) -> Result<Vec<Check>, BedError> {
    let procs: Vec<&ProcRec> = ctx
        .st
        .procs
        .iter()
        .filter(|p| matches!(p.role, Role::Upf | Role::Smf | Role::Gnb))
        .collect();
    let before: Vec<Figures> = procs.iter().map(|p| figures(p)).collect();
    let upf_before: Vec<Vec<f64>> = ctx
        .st
        .plan
        .upfs
        .iter()
        .map(|u| upf_figures(ctx, u))
        .collect();
    let t0 = Instant::now();
    let sent = send(rogue, ctx, effort.datagrams, effort.rate)?;
    let took = t0.elapsed().as_secs_f64();
    // The daemons are done once their logs stay the same for a second
    // (rate-limited logs write their "N suppressed" lines late).
    let mut last: Vec<u64> = Vec::new();
    let mut since = Instant::now();
    super::wait_until(Duration::from_secs(6), || {
        let now: Vec<u64> = procs.iter().map(|p| figures(p).log_lines).collect();
        if now != last {
            last = now;
            since = Instant::now();
        }
        (since.elapsed() >= Duration::from_secs(1)).then_some(())
    });
    let after: Vec<Figures> = procs.iter().map(|p| figures(p)).collect();
    let upf_seen: Vec<serde_json::Value> = ctx
        .st
        .plan
        .upfs
        .iter()
        .zip(&upf_before)
        .map(|(u, b)| {
            let a = upf_figures(ctx, u);
            let mut m = serde_json::Map::new();
            m.insert("upf".into(), json!(u.name));
            for ((name, _), (a, b)) in UPF_COUNTERS.iter().zip(a.iter().zip(b)) {
                m.insert(name.to_string(), json!(a - b));
            }
            serde_json::Value::Object(m)
        })
        .collect();
    let echoes = 20;
    let forwards = ctx.forwards(session.addr, echoes)?;

    let mut per = Vec::new();
    let (mut dead, mut max_lines, mut max_rss) =
        (Vec::new(), (0u64, String::new()), (0i64, String::new()));
    for ((p, b), a) in procs.iter().zip(&before).zip(&after) {
        let lines = a.log_lines.saturating_sub(b.log_lines);
        let rss = a.rss_kb - b.rss_kb;
        if !a.alive {
            dead.push(p.name.clone());
        }
        if lines >= max_lines.0 {
            max_lines = (lines, p.name.clone());
        }
        if rss >= max_rss.0 {
            max_rss = (rss, p.name.clone());
        }
        per.push(
            json!({"daemon": p.name, "alive": a.alive, "log_lines": lines,
            "rss_kb_before": b.rss_kb, "rss_kb_after": a.rss_kb}),
        );
    }
    let total: u64 = sent.iter().map(|(_, n)| n).sum();
    // That the flood arrived: every UPF counted malformed datagrams.
    let arrived = upf_seen
        .iter()
        .all(|u| u["malformed_drops"].as_f64().unwrap_or(0.0) > 0.0);
    let details = json!({
        "sent": sent.iter().map(|(w, n)| json!({"to": w, "datagrams": n})).collect::<Vec<_>>(),
        "seconds": took,
        "rate_per_s": total as f64 / took.max(1e-9),
        "daemons": per,
        "upfs": upf_seen,
    });
    let how = format!(
        "{total} datagrams in {took:.1} s ({:.0}/s)",
        total as f64 / took.max(1e-9)
    );
    Ok(vec![
        Check::new(
            "flood-no-crash",
            dead.is_empty() && total == effort.datagrams && arrived,
            format!(
                "{} of {} daemons died after {how}{}{}",
                dead.len(),
                procs.len(),
                if arrived {
                    ""
                } else {
                    " (a UPF counted none of them as malformed: did the flood arrive?)"
                },
                if dead.is_empty() {
                    String::new()
                } else {
                    format!(": {}", dead.join(", "))
                }
            ),
            details,
        ),
        Check::new(
            "flood-log-lines",
            max_lines.0 < MAX_LOG_LINES,
            format!(
                "at most {} new log lines per daemon ({}); limit {MAX_LOG_LINES}",
                max_lines.0, max_lines.1
            ),
            json!({}),
        ),
        Check::new(
            "flood-memory",
            max_rss.0 < MAX_RSS_GROWTH_KB,
            format!(
                "resident memory grew by at most {:.1} MB ({}); limit 10 MB",
                max_rss.0 as f64 / 1024.0,
                max_rss.1
            ),
            json!({}),
        ),
        Check::new(
            "flood-still-forwards",
            forwards == echoes,
            format!("{forwards}/{echoes} echoes through the session after the flood"),
            json!({"sent": echoes, "answered": forwards}),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_datagrams_are_not_valid_messages() {
        let mut r = Rng(1);
        let mut b = Vec::new();
        for k in 0..7 {
            bad_pfcp(&mut r, k, &mut b);
            // An unknown message type parses (as `Unknown`, which a node
            // must answer or ignore by the spec); the rest must not.
            let m = wire::pfcp::Message::parse(&b);
            let unknown = matches!(
                &m,
                Ok(m) if matches!(m.body, wire::pfcp::MessageBody::Unknown { .. })
            );
            assert!(m.is_err() || (k == 5 && unknown), "pfcp kind {k}: {b:?}");
            bad_gtpu(&mut r, k, &mut b);
            assert!(!b.is_empty());
        }
    }

    #[test]
    fn the_same_datagrams_every_run() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for k in 0..50 {
            bad_gtpu(&mut a, k, &mut x);
            bad_gtpu(&mut b, k, &mut y);
            assert_eq!(x, y);
        }
    }
}
