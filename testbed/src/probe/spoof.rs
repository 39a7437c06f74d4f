//! (c) Another UE's identity: the probe gives a second UE (a SUPI no
//! namespace has, through the SMF's API, so its tunnel and UPF session are
//! real) a session on the same UPF, then from the first UE's namespace
//! sends UDP to the edge's echo (1) with the other UE's address as source
//! on the radio link, and (2) inside G-PDUs with the other UE's uplink TEID
//! to the UPF's N3, through the UE's own session, on the radio link, and
//! from the rogue on the n3 switch (a wrong GTP-U sender). The echo counts
//! what arrives from the other UE's address: it must be nothing.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use serde_json::json;
use wire::ctl::SessionInfo;
use wire::gtpu::GpduHeader;

use super::net::{udp_in, Ctx, Echo, RadioRoute, Rogue, Session, Undo, ECHO_PORT};
use super::Check;
use crate::bed::{http_in, BedError};

/// The other UE's SUPI.
const OTHER_UE: &str = "imsi-001019999999999";
/// Datagrams per attempt.
const PER_TRY: u32 = 100;
/// How long the echo is watched after the last datagram.
const LINGER: Duration = Duration::from_millis(500);

fn req(e: impl std::fmt::Display) -> BedError {
    BedError::Request(e.to_string())
}

/// The other UE and its session: another UE of the plan on the same gNB
/// (its daemon asks through the N1 relay, as a neighbour on a shared cell
/// would), else a UE without a namespace whose session the SMF sets up
/// through its API (no N1 attachment: as the SMF sets up CSM's parallel
/// sessions). Released by `undo`.
fn other_session(ctx: &Ctx<'_>, undo: &mut Undo) -> Result<(String, SessionInfo), BedError> {
    let plan = &ctx.st.plan;
    if let Some(ue) = plan
        .ues
        .iter()
        .find(|u| u.name != ctx.ue.name && u.gnb == ctx.ue.gnb)
    {
        let s = Session::add_for(ctx, ue)?;
        let info = s.info.clone();
        undo.push(format!("release {}'s session", ue.name), move || {
            s.release().map_err(|e| e.to_string())
        });
        return Ok((format!("{} ({})", ue.name, ue.ue_id), info));
    }
    let ns = ctx.st.ns(&plan.smf_node);
    let url = format!("http://{}/sessions", plan.smf_api);
    let body =
        json!({"ue_id": OTHER_UE, "pdu_session_id": 1, "dnn": ctx.upf.dnn, "upf": ctx.upf.name})
            .to_string();
    let (code, text) =
        http_in(&ns, "POST", &url, Some(body), Duration::from_secs(10)).map_err(req)?;
    if !(200..300).contains(&code) {
        return Err(req(format!(
            "the other UE's session ({OTHER_UE}): HTTP {code}: {}",
            text.trim()
        )));
    }
    let del = format!("{url}/{OTHER_UE}/1");
    undo.push(format!("DELETE {del}"), move || {
        http_in(&ns, "DELETE", &del, None, Duration::from_secs(10)).map(|_| ())
    });
    let info =
        serde_json::from_str(&text).map_err(|e| req(format!("session answer {text}: {e}")))?;
    Ok((
        format!("{OTHER_UE} (set up by the SMF, no N1 attachment)"),
        info,
    ))
}

/// An IPv4/UDP packet (header checksum set, UDP checksum 0).
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let mut sum: u32 = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    let ulen = 8 + payload.len();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[(ulen >> 8) as u8, ulen as u8, 0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A G-PDU with an UL PDU Session Container for `teid` around `inner`.
pub fn gpdu(teid: u32, qfi: u8, inner: &[u8]) -> Vec<u8> {
    let h = GpduHeader::ul(teid, qfi);
    let mut b = vec![0u8; h.header_len() + inner.len()];
    let n = h.emit(&mut b, inner.len()).unwrap_or(0);
    b.truncate(n);
    b.extend_from_slice(inner);
    b
}

/// Sends `bytes` `PER_TRY` times from `sock` to `to`; how many went out.
fn send_n(sock: &UdpSocket, bytes: &[u8], to: SocketAddr) -> u32 {
    (0..PER_TRY)
        .filter(|_| sock.send_to(bytes, to).is_ok())
        .count() as u32
}

/// What arrives at the echo from `src` while `f` runs and shortly after.
fn arrivals(
    echo: &Echo,
    src: Ipv4Addr,
    f: impl FnOnce() -> Result<u32, BedError>,
) -> Result<(u32, u64), BedError> {
    let before = echo.from(src);
    let sent = f()?;
    super::wait_until(LINGER, || (echo.from(src) > before).then_some(()));
    Ok((sent, echo.from(src) - before))
}

/// The checks.
pub fn run(
    ctx: &Ctx<'_>,
    session: &Session,
    rogue: &Rogue,
    echo: &Echo,
) -> Result<Vec<Check>, BedError> {
    let mut undo = Undo::default();
    let (who, other) = other_session(ctx, &mut undo)?;
    let dst = SocketAddrV4::new(ctx.upf.edge_n6, ECHO_PORT);

    // (1) The other UE's address as source on the radio link.
    let a = format!("{}/32", other.ue_addr);
    undo.ip_add(&ctx.ue_ns, &["addr", "add", &a, "dev", "radio"])?;
    RadioRoute::route_from(&mut undo, ctx, other.ue_addr)?;
    let (sent, got) = arrivals(echo, other.ue_addr, || {
        let s = udp_in(&ctx.ue_ns, other.ue_addr)?;
        Ok(send_n(&s, b"as another UE", SocketAddr::V4(dst)))
    })?;
    let c1 = Check::new(
        "other-ue-source-on-radio",
        got == 0,
        format!(
            "{got} of {sent} datagrams with {who}'s address {} as source arrived at the edge",
            other.ue_addr
        ),
        json!({"other_ue": who, "other_addr": other.ue_addr.to_string(), "sent": sent, "arrived": got}),
    );

    // (2) The other UE's uplink TEID in G-PDUs to its UPF's N3.
    let n3 = SocketAddr::new(other.ul_addr, 2152);
    let inner = ipv4_udp(
        other.ue_addr,
        ctx.upf.edge_n6,
        40000,
        ECHO_PORT,
        b"in another UE's tunnel",
    );
    let pdu = gpdu(other.ul_teid, other.qfi, &inner);
    let mut rows = Vec::new();
    let tries = [
        ("through the session", ctx.ue_ns.as_str(), session.addr),
        ("on the radio link", ctx.ue_ns.as_str(), ctx.ue.radio),
        ("from the rogue on n3", rogue.ns.as_str(), rogue.n3),
    ];
    let mut total = 0;
    for (what, ns, src) in tries {
        let (sent, got) = arrivals(echo, other.ue_addr, || {
            let s = udp_in(ns, src)?;
            Ok(send_n(&s, &pdu, n3))
        })?;
        total += got;
        rows.push(json!({"from": format!("{what} ({src})"), "sent": sent, "arrived": got}));
    }
    let c2 = Check::new(
        "other-ue-teid",
        total == 0,
        format!(
            "{total} of {} G-PDUs with {who}'s uplink TEID {} forwarded (session, radio link, rogue on n3)",
            PER_TRY as usize * tries.len(),
            other.ul_teid
        ),
        json!({"ul_teid": other.ul_teid, "n3": n3.to_string(), "tries": rows}),
    );
    drop(undo);
    Ok(vec![c1, c2])
}
