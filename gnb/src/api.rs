//! The gNB's HTTP APIs: N2-lite (from the SMF, on the cp address, with
//! `/tunnels` and `/metrics`) and the N1 relay (from UEs, on the radio
//! address). Every error is a 4xx/5xx with a [`wire::ctl::ApiError`] body.
//!
//! The N1 relay acts for the UE a request comes from and for no other
//! ([`crate::radio`]): each request names a UE (in its path or body), and
//! the peer it comes from on the radio link (address and MAC) must be the
//! one that UE attached from (the first request naming it attaches it);
//! otherwise 403. `GET /n1/sessions` lists the asking UE's own sessions
//! (no TEIDs, no core addresses). The radio side has no `/tunnels`, no
//! `/metrics` and no N2-lite: those listen on the cp address only, and the
//! packet filter ([`crate::firewall`]) drops everything from the radio side
//! that is not for the N1 relay.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use wire::ctl::migration::{
    AbandonReport, EventsQuery, MigrationRequest, ServiceRegistration, SwitchReport,
    EVENTS_MAX_WAIT_MS,
};
use wire::ctl::{GnbRef, SessionRequest, TunnelSetup, TunnelSetupResponse};

use ctlhttp::metrics::{Collector, DescriptorEncoder, Families, Timed};
use ctlhttp::server::{parse_json, ApiErr};

use crate::daemon::Gnb;
use crate::radio::{Mac, RadioPeer};
use crate::tunnels::TunnelError;

/// Where the gNB's control-plane time goes.
#[derive(Debug, Default)]
pub struct ApiTiming {
    /// N1 session requests relayed to the SMF and answered 2xx.
    pub n1_establish: Timed,
    /// N2-lite tunnel setups done (table and host route).
    pub n2_setup: Timed,
}

/// The N2-lite router (plus `/tunnels` and `/metrics`).
pub fn n2_router(gnb: Arc<Gnb>) -> Router {
    Router::new()
        .route("/n2/tunnels", post(n2_setup).get(tunnels))
        .route("/n2/tunnels/{dl_teid}", delete(n2_release))
        .route("/tunnels", get(tunnels))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(gnb)
}

/// The N1 relay router (serve it with `ConnectInfo<SocketAddr>`).
pub fn n1_router(gnb: Arc<Gnb>) -> Router {
    Router::new()
        .route("/n1/sessions", post(n1_establish).get(n1_sessions))
        .route("/n1/sessions/{ue_id}/{psi}", delete(n1_release))
        .route("/n1/services", post(n1_relay::<ServiceRegistration>))
        .route("/n1/migrations", post(n1_relay::<MigrationRequest>))
        .route("/n1/migrations/{id}/{report}", post(n1_migration_report))
        .route("/n1/events/{ue_id}", get(n1_events))
        .fallback(not_found)
        .with_state(gnb)
}

/// The peer of a request: its address on the radio link and the MAC behind it.
/// One netlink lookup in the kernel's neighbour table per request (a dump
/// of it, or `/proc/net/arp`, grows with every session address the gNB
/// has sent to: 268 us per request with 1000 of them).
async fn radio_peer(gnb: &Gnb, from: SocketAddr) -> Result<RadioPeer, ApiErr> {
    let forbidden = |why: String| ApiErr::new(StatusCode::FORBIDDEN, why, None);
    let IpAddr::V4(ip) = from.ip() else {
        return Err(forbidden(format!(
            "{from}: N1 requests come over IPv4 on the radio link"
        )));
    };
    match gnb.net.neigh_mac(gnb.radio_index, ip).await {
        Ok(Some(mac)) => Ok(RadioPeer { ip, mac: Mac(mac) }),
        Ok(None) => Err(forbidden(format!(
            "{ip} is not a neighbour on the radio link `{}`: N1 requests come from a UE on it",
            gnb.cfg.radio_iface
        ))),
        Err(e) => Err(ApiErr::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the neighbour table: {e}"),
            None,
        )),
    }
}

/// Checks that the request from `from` may act as UE `ue` (attaching it on
/// first contact); 403 naming who it is otherwise.
async fn act_as(gnb: &Gnb, from: SocketAddr, ue: &str) -> Result<(), ApiErr> {
    let peer = radio_peer(gnb, from).await?;
    match gnb.attached.bind(ue, peer) {
        Ok(true) => {
            gnb.attached_now(ue, peer).await;
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            gnb.counters.n1_refused.fetch_add(1, Ordering::Relaxed);
            warn!(%peer, ue, reason = %e, "N1 request for another UE refused");
            Err(ApiErr::new(
                StatusCode::FORBIDDEN,
                e.to_string(),
                Some("ue_id"),
            ))
        }
    }
}

/// A session as its UE sees it through the N1 relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnSession {
    /// PDU session id.
    pub pdu_session_id: u8,
    /// The UE's address in the session.
    pub ue_addr: std::net::Ipv4Addr,
    /// QFI.
    pub qfi: u8,
    /// Replaced by a newer tunnel (path switch), until its End Marker.
    pub draining: bool,
    /// Uplink packets.
    pub ul_packets: u64,
    /// Downlink packets.
    pub dl_packets: u64,
}

/// `GET /n1/sessions`: the asking UE's own sessions (none before it attached).
async fn n1_sessions(
    State(gnb): State<Arc<Gnb>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiErr> {
    let peer = radio_peer(&gnb, from).await?;
    let me = gnb.attached.ue_of(peer);
    let v: Vec<OwnSession> = gnb
        .table
        .list()
        .iter()
        .filter(|t| Some(&t.ue_id) == me.as_ref())
        .map(|t| OwnSession {
            pdu_session_id: t.psi,
            ue_addr: t.ue_addr,
            qfi: t.qfi,
            draining: t.draining.load(Ordering::Relaxed),
            ul_packets: t.counters.ul_packets.load(Ordering::Relaxed),
            dl_packets: t.counters.dl_packets.load(Ordering::Relaxed),
        })
        .collect();
    Ok(Json(v).into_response())
}

async fn not_found() -> ApiErr {
    ApiErr::new(StatusCode::NOT_FOUND, "no such endpoint", None)
}

async fn n2_setup(State(gnb): State<Arc<Gnb>>, body: Bytes) -> Result<Response, ApiErr> {
    let t0 = std::time::Instant::now();
    let req: TunnelSetup = parse_json(&body)?;
    let bad = |field: &str, msg: &str| Err(ApiErr::new(StatusCode::BAD_REQUEST, msg, Some(field)));
    if !(1..=15).contains(&req.pdu_session_id) {
        return bad("pdu_session_id", "PDU session id must be 1..=15");
    }
    if req.qfi > 63 {
        return bad("qfi", "QFI must be 0..=63");
    }
    if req.ue_id.is_empty() {
        return bad("ue_id", "must not be empty");
    }
    if req.ue_addr.is_unspecified() || req.ue_addr.is_broadcast() || req.ue_addr.is_multicast() {
        return bad("ue_addr", "must be a unicast address");
    }
    let IpAddr::V4(ul_ip) = req.ul_addr else {
        return bad(
            "ul_addr",
            "N3 is IPv4 here; an IPv6 F-TEID is not supported",
        );
    };
    if ul_ip.is_unspecified() {
        return bad("ul_addr", "must be the UPF's N3 address");
    }
    let peer = std::net::SocketAddr::from((ul_ip, gnb.cfg.gtpu_port));
    let change = gnb
        .table
        .add(
            &req.ue_id,
            req.pdu_session_id,
            req.ue_addr,
            req.ul_teid,
            peer,
            req.qfi,
        )
        .map_err(|e| match e {
            TunnelError::AddressInUse { .. } => {
                ApiErr::new(StatusCode::CONFLICT, e.to_string(), Some("ue_addr"))
            }
            _ => ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None),
        })?;
    let t = &change.tunnel;
    if let Err(why) = gnb.open_addr(&req.ue_id, req.ue_addr).await {
        // Nothing half made: take the tunnel (and its route) back out.
        if let Ok(c) = gnb.table.remove(t.dl_teid) {
            if c.addr_freed {
                gnb.close_addr(req.ue_addr).await;
            }
        }
        warn!(error = %why, "tunnel not set up");
        return Err(ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, why, None));
    }
    info!(
        ue = %req.ue_id, psi = req.pdu_session_id, ue_addr = %req.ue_addr,
        dl_teid = t.dl_teid, ul_teid = req.ul_teid, upf = %ul_ip, qfi = req.qfi,
        replaced = ?change.replaced, "tunnel set up"
    );
    let resp = TunnelSetupResponse {
        dl_teid: t.dl_teid,
        dl_addr: IpAddr::V4(gnb.cfg.n3_addr),
    };
    gnb.timing.n2_setup.observe(t0);
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

async fn n2_release(
    State(gnb): State<Arc<Gnb>>,
    Path(dl_teid): Path<String>,
) -> Result<StatusCode, ApiErr> {
    let teid: u32 = dl_teid.parse().map_err(|_| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            format!("`{dl_teid}` is not a TEID (a decimal u32)"),
            Some("dl_teid"),
        )
    })?;
    let change = gnb
        .table
        .remove(teid)
        .map_err(|e| ApiErr::new(StatusCode::NOT_FOUND, e.to_string(), Some("dl_teid")))?;
    if change.addr_freed {
        gnb.close_addr(change.tunnel.ue_addr).await;
    }
    info!(dl_teid = teid, ue = %change.tunnel.ue_id, psi = change.tunnel.psi, "tunnel released");
    Ok(StatusCode::NO_CONTENT)
}

async fn tunnels(State(gnb): State<Arc<Gnb>>) -> Response {
    let v: Vec<_> = gnb.table.list().iter().map(|t| t.view()).collect();
    Json(v).into_response()
}

async fn metrics(State(gnb): State<Arc<Gnb>>) -> Response {
    let firewall = match gnb.firewall.as_ref().map(|fw| fw.counters()) {
        None => Vec::new(),
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            warn!(error = %e, "packet filter counters unavailable");
            Vec::new()
        }
    };
    let links = gnb.net.link_stats().await.unwrap_or_else(|e| {
        warn!(error = %e, "interface counters unavailable");
        Vec::new()
    });
    ctlhttp::metrics::response(ctlhttp::metrics::encode(GnbCollector {
        gnb,
        firewall,
        links,
    }))
}

/// The gNB's `/metrics` families. The gNB-wide and per-tunnel counters
/// (written per batch by the data-path workers) are read when a scrape
/// encodes them; the packet filter's and the interfaces' counters, which
/// need a netlink or nft query, are fetched for that scrape before.
struct GnbCollector {
    gnb: Arc<Gnb>,
    firewall: Vec<(&'static str, u64)>,
    links: Vec<topo::netcfg::LinkStats>,
}

impl std::fmt::Debug for GnbCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GnbCollector")
    }
}

impl Collector for GnbCollector {
    fn encode(&self, enc: DescriptorEncoder) -> std::fmt::Result {
        let f = &mut Families::new(enc);
        let gnb = &self.gnb;
        let me = [("gnb", gnb.cfg.name.as_str())];
        for (m, help, v) in gnb.counters.all() {
            f.counter(m, help, [(me, v)])?;
        }
        let c = &gnb.counters;
        for (m, help, per) in [
            (
                "gnb_worker_tun_rx_packets_total",
                "packets read from the TUN, by data-path worker (its TUN queue)",
                &c.worker_tun_rx,
            ),
            (
                "gnb_worker_n3_rx_packets_total",
                "GTP-U datagrams received on N3, by data-path worker",
                &c.worker_n3_rx,
            ),
        ] {
            let name = gnb.cfg.name.as_str();
            f.counter(
                m,
                help,
                per.counts()
                    .into_iter()
                    .enumerate()
                    .map(|(k, v)| ([("gnb", name.to_string()), ("worker", k.to_string())], v)),
            )?;
        }
        f.histogram(
            "gnb_n1_establish_seconds",
            "N1 session requests relayed to the SMF and answered 2xx",
            [(me, gnb.timing.n1_establish.histogram())],
        )?;
        f.histogram(
            "gnb_n2_setup_seconds",
            "N2-lite tunnel setups (tunnel table and host route)",
            [(me, gnb.timing.n2_setup.histogram())],
        )?;
        let tunnels = gnb.table.list();
        f.gauge("gnb_tunnels", "tunnels set up", [(me, tunnels.len())])?;
        let labels: Vec<[(&str, String); 5]> = tunnels
            .iter()
            .map(|t| {
                [
                    ("gnb", gnb.cfg.name.clone()),
                    ("dl_teid", t.dl_teid.to_string()),
                    ("ue_id", t.ue_id.clone()),
                    ("psi", t.psi.to_string()),
                    ("ue_addr", t.ue_addr.to_string()),
                ]
            })
            .collect();
        type Get = fn(&crate::tunnels::TunnelCounters) -> u64;
        let per: [(&str, &str, Get); 7] = [
            ("gnb_tunnel_ul_packets_total", "uplink packets", |c| {
                c.ul_packets.load(Ordering::Relaxed)
            }),
            (
                "gnb_tunnel_ul_bytes_total",
                "uplink bytes (inner; TS 28.552 DRB.PdcpSduVolumeUL counts this volume per cell)",
                |c| c.ul_bytes.load(Ordering::Relaxed),
            ),
            ("gnb_tunnel_ul_drops_total", "uplink drops", |c| {
                c.ul_drops.load(Ordering::Relaxed)
            }),
            ("gnb_tunnel_dl_packets_total", "downlink packets", |c| {
                c.dl_packets.load(Ordering::Relaxed)
            }),
            (
                "gnb_tunnel_dl_bytes_total",
                "downlink bytes (inner; TS 28.552 DRB.PdcpSduVolumeDL counts this volume per cell)",
                |c| c.dl_bytes.load(Ordering::Relaxed),
            ),
            ("gnb_tunnel_dl_drops_total", "downlink drops", |c| {
                c.dl_drops.load(Ordering::Relaxed)
            }),
            (
                "gnb_tunnel_end_markers_total",
                "End Markers received",
                |c| c.end_markers.load(Ordering::Relaxed),
            ),
        ];
        for (m, help, get) in per {
            let samples = labels.iter().zip(&tunnels);
            f.counter(m, help, samples.map(|(l, t)| (&l[..], get(&t.counters))))?;
        }
        for ((c, n), (_, help)) in self.firewall.iter().zip(crate::firewall::COUNTERS) {
            f.counter(&format!("gnb_fw_{c}_packets_total"), help, [(me, *n)])?;
        }
        if self.links.is_empty() {
            return Ok(());
        }
        type F = fn(&topo::netcfg::LinkStats) -> u64;
        let iface: [(&str, F); 6] = [
            ("gnb_iface_rx_packets_total", |s| s.rx_packets),
            ("gnb_iface_rx_bytes_total", |s| s.rx_bytes),
            ("gnb_iface_rx_dropped_total", |s| s.rx_dropped),
            ("gnb_iface_tx_packets_total", |s| s.tx_packets),
            ("gnb_iface_tx_bytes_total", |s| s.tx_bytes),
            ("gnb_iface_tx_dropped_total", |s| s.tx_dropped),
        ];
        for (m, get) in iface {
            let samples = self.links.iter().map(|l| {
                let labels = [("gnb", gnb.cfg.name.as_str()), ("iface", l.name.as_str())];
                (labels, get(l))
            });
            f.counter(m, "kernel interface counter", samples)?;
        }
        Ok(())
    }
}

/// Relays one HTTP call to the SMF, answering with the SMF's status and
/// body (502 with a [`wire::ctl::ApiError`] when the SMF cannot be reached).
async fn relay(gnb: &Gnb, method: &'static str, path: String, body: Option<String>) -> Response {
    relay_with(gnb, &gnb.http, method, path, body).await
}

async fn relay_with(
    gnb: &Gnb,
    http: &ctlhttp::Client,
    method: &'static str,
    path: String,
    body: Option<String>,
) -> Response {
    let url = format!("http://{}{}", gnb.cfg.smf_api, path);
    let r = match (method, body) {
        ("POST", Some(b)) => http.post_json(&url, b).await,
        ("GET", _) => http.get(&url).await,
        _ => http.delete(&url).await,
    };
    match r {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
            if r.body.is_empty() {
                status.into_response()
            } else {
                (status, [(header::CONTENT_TYPE, "application/json")], r.body).into_response()
            }
        }
        Err(e) => ApiErr::new(
            StatusCode::BAD_GATEWAY,
            format!("SMF unreachable: {e}"),
            None,
        )
        .into_response(),
    }
}

async fn n1_establish(
    State(gnb): State<Arc<Gnb>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiErr> {
    let t0 = std::time::Instant::now();
    let mut req: SessionRequest = parse_json(&body)?;
    check_ue_id(&req.ue_id)?;
    act_as(&gnb, from, &req.ue_id).await?;
    if !(1..=15).contains(&req.pdu_session_id) {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "PDU session id must be 1..=15",
            Some("pdu_session_id"),
        ));
    }
    req.gnb = Some(GnbRef {
        name: gnb.cfg.name.clone(),
        n2_api: gnb.cfg.n2_api().to_string(),
    });
    let body = serde_json::to_string(&req)
        .map_err(|e| ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    let r = relay(&gnb, "POST", "/sessions".into(), Some(body)).await;
    info!(ue = %req.ue_id, psi = req.pdu_session_id, dnn = %req.dnn, status = r.status().as_u16(), "N1 session request relayed");
    if r.status().is_success() {
        gnb.timing.n1_establish.observe(t0);
    }
    Ok(r)
}

async fn n1_release(
    State(gnb): State<Arc<Gnb>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path((ue_id, psi)): Path<(String, String)>,
) -> Result<Response, ApiErr> {
    let psi: u8 = psi
        .parse()
        .ok()
        .filter(|p| (1..=15).contains(p))
        .ok_or_else(|| {
            ApiErr::new(
                StatusCode::BAD_REQUEST,
                "PDU session id must be 1..=15",
                Some("psi"),
            )
        })?;
    check_ue_id(&ue_id)?;
    act_as(&gnb, from, &ue_id).await?;
    info!(ue = %ue_id, psi, "N1 session release relayed");
    Ok(relay(&gnb, "DELETE", format!("/sessions/{ue_id}/{psi}"), None).await)
}

/// A UE id as it may appear in a path: non-empty, no `/`, `?` or `%`.
fn check_ue_id(ue_id: &str) -> Result<(), ApiErr> {
    if ue_id.is_empty() || ue_id.len() > 64 || ue_id.contains(['/', '?', '%', '#']) {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "bad UE id",
            Some("ue_id"),
        ));
    }
    Ok(())
}

/// A migration N1 body: the gNB reads the UE it is for, the SMF the rest.
trait N1Body: DeserializeOwned + Serialize {
    fn ue_id(&self) -> &str;
}

macro_rules! n1_body {
    ($($t:ty),*) => {
        $(impl N1Body for $t {
            fn ue_id(&self) -> &str {
                &self.ue_id
            }
        })*
    };
}
n1_body!(
    ServiceRegistration,
    MigrationRequest,
    SwitchReport,
    AbandonReport
);

/// Parses a migration N1 body far enough to log who it is for, and relays
/// it unchanged (the SMF checks the rest).
async fn relay_n1_json<T: N1Body>(
    gnb: &Gnb,
    from: SocketAddr,
    path: String,
    body: &[u8],
) -> Result<Response, ApiErr> {
    let req: T = parse_json(body)?;
    let ue = req.ue_id().to_string();
    check_ue_id(&ue)?;
    act_as(gnb, from, &ue).await?;
    let body = serde_json::to_string(&req)
        .map_err(|e| ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    let r = relay(gnb, "POST", path.clone(), Some(body)).await;
    info!(%ue, %path, status = r.status().as_u16(), "N1 migration call relayed");
    Ok(r)
}

/// A migration N1 body `T` posted to the gNB, relayed to the same path of
/// the SMF.
async fn n1_relay<T: N1Body>(
    State(gnb): State<Arc<Gnb>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiErr> {
    relay_n1_json::<T>(&gnb, from, uri.path().to_string(), &body).await
}

async fn n1_migration_report(
    State(gnb): State<Arc<Gnb>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path((id, report)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiErr> {
    let id: u64 = id.parse().map_err(|_| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            "migration id must be a number",
            Some("id"),
        )
    })?;
    let path = format!("/n1/migrations/{id}/{report}");
    match report.as_str() {
        "switched" => relay_n1_json::<SwitchReport>(&gnb, from, path, &body).await,
        "abandon" => relay_n1_json::<AbandonReport>(&gnb, from, path, &body).await,
        _ => Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "no such endpoint (switched or abandon)",
            None,
        )),
    }
}

async fn n1_events(
    State(gnb): State<Arc<Gnb>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(ue_id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiErr> {
    check_ue_id(&ue_id)?;
    act_as(&gnb, from, &ue_id).await?;
    let wait_ms = q.wait_ms.min(EVENTS_MAX_WAIT_MS);
    // The SMF holds the call up to wait_ms: wait a little longer for it.
    let http = gnb
        .http
        .with_timeout(std::time::Duration::from_millis(wait_ms + 5_000));
    let path = format!("/n1/events/{ue_id}?after={}&wait_ms={wait_ms}", q.after);
    Ok(relay_with(&gnb, &http, "GET", path, None).await)
}
