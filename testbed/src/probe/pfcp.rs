//! (b) PFCP from the wrong address: requests that speak for the SMF (to
//! the UPFs) or for a UPF (to the SMF), sent from the UE's session
//! address, its radio address and the rogue's cp address. They must change
//! nothing: the SMF's view of each association (state, Recovery Time
//! Stamp, restarts, sessions) and of its sessions, and each UPF's session
//! count stay as they were for two heartbeat intervals, and the UE's
//! session still forwards. An answer with cause "Request accepted" to a
//! request other than a Heartbeat counts as honoured.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use serde_json::json;
use wire::pfcp::{self, Message, NodeId};

use super::net::{udp_in, Ctx, Rogue, Session};
use super::Check;
use crate::bed::BedError;
use crate::plan::{PFCP_PORT, SMF_HEARTBEAT_MS};

/// What the SMF and the UPFs hold, as compared before and after.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    /// Per UPF at the SMF: name, state, Recovery Time Stamp, restarts, sessions.
    assoc: Vec<(String, String, u64, u64, u64)>,
    /// The SMF's sessions: UE, PSI, state, UP SEID.
    sessions: Vec<(String, u8, String, u64)>,
    /// Each UPF's `upf_sessions`.
    upf_sessions: Vec<(String, f64)>,
}

fn held(ctx: &Ctx<'_>) -> Result<Held, BedError> {
    let upfs = ctx.smf_json("/upfs")?;
    let mut assoc = Vec::new();
    for u in upfs.as_array().into_iter().flatten() {
        assoc.push((
            u["name"].as_str().unwrap_or("?").to_string(),
            u["state"].as_str().unwrap_or("?").to_string(),
            u["recovery_time_stamp"].as_u64().unwrap_or(0),
            u["restarts"].as_u64().unwrap_or(0),
            u["sessions"].as_u64().unwrap_or(0),
        ));
    }
    let list = ctx.smf_json("/sessions")?;
    let mut sessions = Vec::new();
    for s in list.as_array().into_iter().flatten() {
        sessions.push((
            s["ue_id"].as_str().unwrap_or("?").to_string(),
            s["pdu_session_id"].as_u64().unwrap_or(0) as u8,
            s["state"].as_str().unwrap_or("?").to_string(),
            s["up_seid"].as_u64().unwrap_or(0),
        ));
    }
    sessions.sort();
    let mut upf_sessions = Vec::new();
    for u in &ctx.st.plan.upfs {
        let c = ctx.upf_counters(u)?;
        upf_sessions.push((
            u.name.clone(),
            c.get("upf_sessions").copied().unwrap_or(-1.0),
        ));
    }
    Ok(Held {
        assoc,
        sessions,
        upf_sessions,
    })
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// The requests: (target, what, bytes).
fn requests(ctx: &Ctx<'_>, session: &Session) -> Vec<(SocketAddr, String, Vec<u8>)> {
    let plan = &ctx.st.plan;
    let smf_id = NodeId::Ipv4(v4(plan.smf_api.ip()));
    let smf_n4 = SocketAddr::from((v4(plan.smf_api.ip()), PFCP_PORT));
    let mut v = Vec::new();
    let mut push = |to: SocketAddr, what: &str, m: Message| {
        if let Ok(b) = m.to_vec() {
            v.push((to, what.to_string(), b));
        }
    };
    for (i, u) in plan.upfs.iter().enumerate() {
        let seq = 0x7000 + 16 * i as u32;
        let seid = if u.name == session.info.upf {
            session.info.up_seid
        } else {
            1
        };
        push(
            u.n4,
            "Session Deletion (the UE's session)",
            Message::session(seid, seq, pfcp::SessionDeletionRequest::default()),
        );
        push(
            u.n4,
            "Heartbeat with a new Recovery Time Stamp",
            Message::node(
                seq + 1,
                pfcp::HeartbeatRequest {
                    recovery_time_stamp: 7,
                    ..Default::default()
                },
            ),
        );
        push(
            u.n4,
            "Association Setup with the SMF's Node ID",
            Message::node(
                seq + 2,
                pfcp::AssociationSetupRequest {
                    node_id: smf_id.clone(),
                    recovery_time_stamp: 7,
                    ..Default::default()
                },
            ),
        );
        push(
            u.n4,
            "Association Release with the SMF's Node ID",
            Message::node(
                seq + 3,
                pfcp::AssociationReleaseRequest {
                    node_id: smf_id.clone(),
                    ..Default::default()
                },
            ),
        );
        push(
            smf_n4,
            "Association Release to the SMF with a UPF's Node ID",
            Message::node(
                seq + 4,
                pfcp::AssociationReleaseRequest {
                    node_id: NodeId::Ipv4(v4(u.n4.ip())),
                    ..Default::default()
                },
            ),
        );
    }
    v
}

/// Sends every request from `sock`; the answers that accepted one.
fn send_all(sock: &UdpSocket, reqs: &[(SocketAddr, String, Vec<u8>)]) -> Vec<String> {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut accepted = Vec::new();
    let mut buf = [0u8; 4096];
    for (to, what, bytes) in reqs {
        if sock.send_to(bytes, to).is_err() {
            continue;
        }
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let cause = Message::peek_ie(&buf[..n], pfcp::ie_type::CAUSE).and_then(|c| c.first());
        if cause == Some(&1) {
            accepted.push(format!("{what} to {to}: accepted by {from}"));
        }
    }
    accepted
}

/// The check.
pub fn run(ctx: &Ctx<'_>, session: &Session, rogue: &Rogue) -> Result<Check, BedError> {
    let before = held(ctx)?;
    let reqs = requests(ctx, session);
    let mut accepted = Vec::new();
    let sources = [
        ("session", ctx.ue_ns.as_str(), session.addr),
        ("radio", ctx.ue_ns.as_str(), ctx.ue.radio),
        ("rogue on cp", rogue.ns.as_str(), rogue.cp),
    ];
    for (_, ns, src) in sources {
        let sock = udp_in(ns, src)?;
        accepted.extend(send_all(&sock, &reqs));
    }
    let sent = reqs.len() * sources.len();
    // Two heartbeat intervals: a released association or a lost session
    // would show at the SMF by then.
    let window = Duration::from_millis(2 * SMF_HEARTBEAT_MS + 500);
    let changed = super::wait_until(window, || {
        held(ctx)
            .ok()
            .filter(|h| *h != before)
            .map(|h| format!("{h:?}"))
    });
    let sent_echo = 10;
    let forwards = ctx.forwards(session.addr, sent_echo)?;
    let pass = accepted.is_empty() && changed.is_none() && forwards == sent_echo;
    let figure = format!(
        "{} of {sent} requests from 3 wrong addresses honoured; associations and sessions {}; {forwards}/{sent_echo} echoes after",
        accepted.len(),
        if changed.is_some() { "CHANGED" } else { "unchanged" }
    );
    Ok(Check::new(
        "pfcp-wrong-address",
        pass,
        figure,
        json!({
            "sent": sent,
            "sources": sources.iter().map(|(w, _, a)| format!("{w} {a}")).collect::<Vec<_>>(),
            "accepted": accepted,
            "before": format!("{before:?}"),
            "changed_to": changed,
            "echoes_after": forwards,
        }),
    ))
}
