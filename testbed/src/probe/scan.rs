//! (a) The port scan: from the UE's namespace, TCP connects and UDP
//! datagrams to every core address, bound once to the session's address
//! (through the tunnel) and once to the UE's radio address (on the radio
//! link, to the gNB's kernel). A port is *reached* when the target answered
//! at all: a TCP connection or reset, a UDP answer or an ICMP port
//! unreachable (the packet was delivered to a core host). Filtered ports
//! stay silent. Positive controls: the echo on the edge's N6 answers
//! through the session, and the gNB's N1 relay on the radio link.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::net::{Ctx, Echo, Session};
use super::{Check, Effort};
use crate::bed::BedError;
use crate::plan::{AGENT_PORT, CLOUD_STATS_PORT, CLOUD_SYNC_PORT, REPO_PORT, UE_API_PORT};

/// Ports every scan covers: the testbed's own services and a few classics.
const KNOWN_PORTS: [u16; 16] = [
    22,
    53,
    80,
    443,
    wire::ctl::SMF_PORT,
    wire::ctl::GNB_N1_PORT,
    wire::ctl::GNB_N2_PORT,
    UE_API_PORT,
    CLOUD_SYNC_PORT,
    CLOUD_STATS_PORT,
    REPO_PORT,
    AGENT_PORT,
    crate::plan::COPY_PORT,
    crate::plan::PFCP_PORT,
    crate::plan::UPF_METRICS_PORT,
    2152,
];
/// How long a silent port is waited for.
const PORT_TIMEOUT: Duration = Duration::from_millis(250);
/// Probes in flight at once.
const IN_FLIGHT: usize = 256;

/// A port's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A connection, or a UDP answer.
    Open,
    /// A reset or an ICMP port unreachable: delivered, nothing listens.
    Refused,
    /// Nothing, or an ICMP error from a router on the way.
    Silent,
}

/// One probe's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    tcp: bool,
    addr: SocketAddrV4,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", if self.tcp { "tcp" } else { "udp" }, self.addr)
    }
}

/// The core's addresses (all ports scanned) and the data networks'
/// addresses (only the control ports scanned).
fn addresses(ctx: &Ctx<'_>) -> (BTreeSet<Ipv4Addr>, BTreeSet<Ipv4Addr>) {
    let p = &ctx.st.plan;
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    let mut core = BTreeSet::new();
    let mut dn = BTreeSet::new();
    core.extend(v4(p.smf_api.ip()));
    for u in &p.upfs {
        core.extend([u.n3, u.n6]);
        core.extend(v4(u.n4.ip()));
        dn.insert(u.edge_n6);
    }
    for g in &p.gnbs {
        core.extend([g.radio, g.n3, g.cp]);
    }
    for e in p.app.iter().flat_map(|a| &a.edges) {
        core.insert(e.cloud_addr);
        core.extend(e.smf_agent.and_then(|a| v4(a.ip())));
        core.extend(e.copy.and_then(|a| v4(a.ip())));
    }
    (core, dn)
}

/// The ports scanned on core addresses.
fn ports(quick: bool) -> BTreeSet<u16> {
    let mut s: BTreeSet<u16> = KNOWN_PORTS.into_iter().collect();
    if quick {
        s.extend(7000..=7020);
        s.extend(7300..=7310);
        s.extend(7400..=7410);
    } else {
        s.extend(1..=1024);
        s.extend(7000..=7700);
        s.extend(8800..=8810);
        s.extend(9000..=9200);
    }
    s
}

/// Every target of one scan: all the ports on core addresses, the known
/// ports on the data networks' addresses, over TCP and UDP.
fn targets(ctx: &Ctx<'_>, quick: bool) -> Vec<Target> {
    let (core, dn) = addresses(ctx);
    let all = ports(quick);
    let mut v = Vec::new();
    for tcp in [true, false] {
        for a in &core {
            v.extend(all.iter().map(|p| Target {
                tcp,
                addr: SocketAddrV4::new(*a, *p),
            }));
        }
        for a in &dn {
            v.extend(KNOWN_PORTS.iter().map(|p| Target {
                tcp,
                addr: SocketAddrV4::new(*a, *p),
            }));
        }
    }
    v
}

/// What a UDP probe carries: a PFCP Heartbeat Request on 8805, a GTP-U
/// Echo Request on 2152, else a few bytes.
fn udp_payload(port: u16) -> Vec<u8> {
    match port {
        crate::plan::PFCP_PORT => wire::pfcp::Message::node(
            1,
            wire::pfcp::HeartbeatRequest {
                recovery_time_stamp: 1,
                ..Default::default()
            },
        )
        .to_vec()
        .unwrap_or_default(),
        // Version 1, PT, S; Echo Request; length 4; TEID 0; sequence 1.
        2152 => vec![0x32, 1, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0],
        _ => b"testbed probe".to_vec(),
    }
}

async fn probe_one(src: Ipv4Addr, t: Target) -> Answer {
    let target = SocketAddr::V4(t.addr);
    let local = SocketAddr::from((src, 0));
    let kind = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => Answer::Refused,
        _ => Answer::Silent,
    };
    if t.tcp {
        let Ok(s) = tokio::net::TcpSocket::new_v4() else {
            return Answer::Silent;
        };
        if s.bind(local).is_err() {
            return Answer::Silent;
        }
        return match tokio::time::timeout(PORT_TIMEOUT, s.connect(target)).await {
            Ok(Ok(_)) => Answer::Open,
            Ok(Err(e)) => kind(e),
            Err(_) => Answer::Silent,
        };
    }
    let Ok(s) = tokio::net::UdpSocket::bind(local).await else {
        return Answer::Silent;
    };
    if s.connect(target).await.is_err() || s.send(&udp_payload(t.addr.port())).await.is_err() {
        return Answer::Silent;
    }
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(PORT_TIMEOUT, s.recv(&mut buf)).await {
        Ok(Ok(_)) => Answer::Open,
        Ok(Err(e)) => kind(e),
        Err(_) => Answer::Silent,
    }
}

/// Probes every target from `src` in namespace `ns`; the targets that
/// answered, with their answer.
fn scan(ns: &str, src: Ipv4Addr, targets: Vec<Target>) -> Result<Vec<(Target, Answer)>, BedError> {
    let r = topo::netns::run_in_netns(ns, move || -> Result<Vec<(Target, Answer)>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            let mut set = tokio::task::JoinSet::new();
            for t in targets {
                let permit = sem
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| e.to_string())?;
                set.spawn(async move {
                    let a = probe_one(src, t).await;
                    drop(permit);
                    (t, a)
                });
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                let (t, a) = r.map_err(|e| e.to_string())?;
                if a != Answer::Silent {
                    out.push((t, a));
                }
            }
            out.sort_by_key(|(t, _)| *t);
            Ok(out)
        })
    })
    .map_err(|e| BedError::Request(format!("scan from {src} in {ns}: {e}")))?;
    r.map_err(|e| BedError::Request(format!("scan from {src} in {ns}: {e}")))
}

/// What counts as reached: on the data networks' addresses only an open
/// control port (the data network itself may answer), elsewhere any
/// answer; the gNB's N1 relay is the one service the radio side may reach.
fn counts(t: &Target, a: Answer, dn: &BTreeSet<Ipv4Addr>, n1: &Target) -> bool {
    t != n1 && (a == Answer::Open || !dn.contains(t.addr.ip()))
}

/// The reached targets as a check.
fn verdict(property: &str, probed: usize, reached: &[(Target, Answer)]) -> Check {
    let open = reached.iter().filter(|(_, a)| *a == Answer::Open).count();
    let list: Vec<String> = reached
        .iter()
        .take(100)
        .map(|(t, a)| {
            let a = if *a == Answer::Open {
                "open"
            } else {
                "refused"
            };
            format!("{t} {a}")
        })
        .collect();
    let mut figure = format!(
        "{} of {probed} core ports reached ({open} open)",
        reached.len()
    );
    if let Some(first) = list.first() {
        figure.push_str(&format!(": {first}"));
        if list.len() > 1 {
            figure.push_str(", ...");
        }
    }
    Check::new(
        property,
        reached.is_empty(),
        figure,
        json!({"probed": probed, "reached": reached.len(), "open": open, "list": list}),
    )
}

/// The scans and their positive controls.
pub fn run(
    ctx: &Ctx<'_>,
    session: &Session,
    _echo: &Echo,
    effort: &Effort,
) -> Result<Vec<Check>, BedError> {
    let mut checks = Vec::new();
    let sent = 20;
    let got = ctx.forwards(session.addr, sent)?;
    checks.push(Check::new(
        "data-network-via-session",
        got == sent,
        format!(
            "{got}/{sent} UDP echoes from {}:{} through the session",
            ctx.upf.edge_n6,
            super::net::ECHO_PORT
        ),
        json!({"sent": sent, "answered": got}),
    ));
    let n1 = Target {
        tcp: true,
        addr: match ctx.gnb.n1_api {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err(BedError::Request("the N1 relay is not IPv4".into())),
        },
    };
    let (_, dn) = addresses(ctx);
    let all = targets(ctx, effort.quick);
    let probed = all.iter().filter(|t| **t != n1).count();
    let keep = |r: Vec<(Target, Answer)>| -> Vec<(Target, Answer)> {
        r.into_iter()
            .filter(|(t, a)| counts(t, *a, &dn, &n1))
            .collect()
    };
    let reached = scan(&ctx.ue_ns, session.addr, all.clone())?;
    checks.push(verdict("ports-via-session", probed, &keep(reached)));

    let reached = scan(&ctx.ue_ns, ctx.ue.radio, all)?;
    let n1_ok = reached.iter().any(|(t, a)| *t == n1 && *a == Answer::Open);
    checks.push(Check::new(
        "n1-relay-on-radio",
        n1_ok,
        format!("{n1} {}", if n1_ok { "answers" } else { "does not answer" }),
        json!({"target": n1.to_string(), "open": n1_ok}),
    ));
    checks.push(verdict("ports-on-radio", probed, &keep(reached)));
    Ok(checks)
}
