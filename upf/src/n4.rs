//! N4: the PFCP server (TS 29.244) on the control thread.
//!
//! - Heartbeat Requests are answered before and after an association; the
//!   UPF sends its own to every associated SMF and drops an association
//!   (and its sessions) after `heartbeat_retries` unanswered intervals.
//! - Association Setup/Update/Release from any Node ID form (IPv4, IPv6,
//!   FQDN); a Setup from a node whose Recovery Time Stamp changed (the SMF
//!   restarted) removes the sessions of its previous life.
//! - Session requests from a node without an association: cause 72. A
//!   session answers only to the address that established it (another peer
//!   gets 65, Session context not found).
//! - Retransmitted requests (same peer, same sequence number) get the cached
//!   response, not a second execution (cache kept 60 s).
//! - Malformed requests whose header parsed get the matching response with
//!   the codec's cause (66/68/69) and Offending IE; others are counted and
//!   dropped. Nothing a peer sends can stop the thread.
//! - Usage reports (threshold, period) go out as Session Report Requests to
//!   the session's SMF and are also queued for the in-process API; the
//!   first packet buffered by a FAR with NOCP sends a Session Report
//!   Request with a Downlink Data Report (report type DLDR).
//! - Session Report Requests are resent every T1 until answered, at most N1
//!   times (`n4.t1_ms`, `n4.n1`).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};
use wire::pfcp::{self, Message, MessageBody};

use crate::config::NodeId as CfgNodeId;
use crate::daemon::Inner;
use crate::pfcp_map::{self, cause_to_wire};
use crate::rules::Cause;
use crate::session::{SessionError, UsageReport};

/// PFCP message counters.
#[derive(Debug, Default)]
pub struct PfcpStats {
    /// Messages received.
    pub rx: AtomicU64,
    /// Messages sent.
    pub tx: AtomicU64,
    /// Undecodable messages.
    pub malformed: AtomicU64,
    /// Retransmitted requests answered from the cache.
    pub retransmissions: AtomicU64,
    /// Requests answered with a rejection cause.
    pub rejected: AtomicU64,
    /// Session Report Requests sent.
    pub reports_sent: AtomicU64,
}

impl PfcpStats {
    /// (label, value) pairs.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rx", self.rx.load(Ordering::Relaxed)),
            ("tx", self.tx.load(Ordering::Relaxed)),
            ("malformed", self.malformed.load(Ordering::Relaxed)),
            (
                "retransmission",
                self.retransmissions.load(Ordering::Relaxed),
            ),
            ("rejected", self.rejected.load(Ordering::Relaxed)),
            ("session_report", self.reports_sent.load(Ordering::Relaxed)),
        ]
    }
}

const CACHE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Assoc {
    peer: SocketAddr,
    recovery_ts: u32,
    hb_outstanding: Option<u32>,
    missed: u32,
    next_hb: Instant,
}

#[derive(Debug, Clone)]
struct SessPeer {
    node: pfcp::NodeId,
    peer: SocketAddr,
    remote_seid: u64,
    /// Data-path state of the session (for Downlink Data Reports).
    shared: std::sync::Arc<crate::datapath::SessionShared>,
    /// FARs whose Apply Action has NOCP (notify the CP of buffered data).
    nocp: std::collections::HashSet<u32>,
}

/// The PFCP server state.
struct N4<'a> {
    inner: &'a Inner,
    sock: UdpSocket,
    node_id: pfcp::NodeId,
    f_seid_addr: Ipv4Addr,
    assocs: HashMap<pfcp::NodeId, Assoc>,
    sessions: HashMap<u64, SessPeer>,
    cache: HashMap<(SocketAddr, u32), Vec<u8>>,
    cache_order: VecDeque<(Instant, (SocketAddr, u32))>,
    next_seq: u32,
    hb_interval: Option<Duration>,
    hb_retries: u32,
    /// Our unanswered requests (Session Report Requests) by sequence number:
    /// (bytes, peer, last sent, resends so far).
    pending: HashMap<u32, (Vec<u8>, SocketAddr, Instant, u32)>,
    t1: Duration,
    n1: u32,
}

fn wire_node_id(s: &str) -> pfcp::NodeId {
    match CfgNodeId::parse(s) {
        Some(CfgNodeId::V4(a)) => pfcp::NodeId::Ipv4(a),
        Some(CfgNodeId::V6(a)) => pfcp::NodeId::Ipv6(a),
        Some(CfgNodeId::Fqdn(f)) => pfcp::NodeId::fqdn(&f),
        // validate() refused anything else; fall back to the raw text.
        None => pfcp::NodeId::fqdn(s),
    }
}

fn is_request(t: u8) -> bool {
    matches!(t, 1 | 3 | 5 | 7 | 9 | 50 | 52 | 54)
}

/// Run until `inner.stop`: serve PFCP on `sock`, poll usage reports, send
/// heartbeats.
pub fn control_loop(inner: &Inner, sock: UdpSocket) {
    let cfg = &inner.config;
    let f_seid_addr = match cfg.n4.addr.ip() {
        IpAddr::V4(a) if !a.is_unspecified() => a,
        _ => match CfgNodeId::parse(&cfg.node_id) {
            Some(CfgNodeId::V4(a)) => a,
            _ => inner.n3_addr,
        },
    };
    let mut n4 = N4 {
        inner,
        sock,
        node_id: wire_node_id(&cfg.node_id),
        f_seid_addr,
        assocs: HashMap::new(),
        sessions: HashMap::new(),
        cache: HashMap::new(),
        cache_order: VecDeque::new(),
        next_seq: 1,
        hb_interval: (cfg.n4.heartbeat_interval_ms > 0)
            .then(|| Duration::from_millis(cfg.n4.heartbeat_interval_ms)),
        hb_retries: cfg.n4.heartbeat_retries,
        pending: HashMap::new(),
        t1: Duration::from_millis(cfg.n4.t1_ms.max(1)),
        n1: cfg.n4.n1,
    };
    let mut buf = vec![0u8; 65536];
    while !inner.stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = n4.sock.recv_from(&mut buf) {
            inner.pfcp_stats.rx.fetch_add(1, Ordering::Relaxed);
            n4.handle(&buf[..n], from, Instant::now());
        }
        let now = Instant::now();
        n4.poll_reports(now);
        n4.heartbeats(now);
        n4.resend(now);
        n4.expire_cache(now);
    }
}

impl N4<'_> {
    fn send(&self, msg: &Message, to: SocketAddr) -> Option<Vec<u8>> {
        match msg.to_vec() {
            Ok(bytes) => {
                if self.sock.send_to(&bytes, to).is_ok() {
                    self.inner.pfcp_stats.tx.fetch_add(1, Ordering::Relaxed);
                }
                Some(bytes)
            }
            Err(e) => {
                warn!(error = %e, "cannot encode PFCP message");
                None
            }
        }
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = (self.next_seq + 1) & 0x00ff_ffff;
        if self.next_seq == 0 {
            self.next_seq = 1;
        }
        s
    }

    fn respond(&mut self, req_seq: u32, msg: Message, to: SocketAddr, now: Instant) {
        if let Some(bytes) = self.send(&msg, to) {
            let key = (to, req_seq);
            self.cache.insert(key, bytes);
            self.cache_order.push_back((now, key));
        }
    }

    fn expire_cache(&mut self, now: Instant) {
        while let Some((t, key)) = self.cache_order.front().copied() {
            if now.saturating_duration_since(t) < CACHE_TTL {
                break;
            }
            self.cache_order.pop_front();
            self.cache.remove(&key);
        }
    }

    fn handle(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        // Retransmission: answer from the cache before parsing.
        if let Ok(raw) = pfcp::RawHeader::parse(bytes) {
            if is_request(raw.msg_type) {
                if let Some(resp) = self.cache.get(&(from, raw.header.seq)) {
                    self.inner
                        .pfcp_stats
                        .retransmissions
                        .fetch_add(1, Ordering::Relaxed);
                    self.inner.pfcp_stats.tx.fetch_add(1, Ordering::Relaxed);
                    let _ = self.sock.send_to(resp, from);
                    debug!(%from, seq = raw.header.seq, "retransmitted request answered from cache");
                    return;
                }
            }
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.inner
                    .pfcp_stats
                    .malformed
                    .fetch_add(1, Ordering::Relaxed);
                warn!(%from, error = %e, "malformed PFCP message");
                if let Some(ctx) = e.context() {
                    self.reject_malformed(ctx, &e, from, now);
                }
                return;
            }
        };
        let seq = msg.header.seq;
        let resp = match msg.body {
            MessageBody::HeartbeatRequest(_) => Some(Message::node(
                seq,
                pfcp::HeartbeatResponse {
                    recovery_time_stamp: self.inner.recovery_ts,
                    ..Default::default()
                },
            )),
            MessageBody::HeartbeatResponse(_) => {
                for a in self.assocs.values_mut() {
                    if a.peer == from && a.hb_outstanding == Some(seq) {
                        a.hb_outstanding = None;
                        a.missed = 0;
                    }
                }
                None
            }
            MessageBody::AssociationSetupRequest(r) => Some(self.association_setup(r, seq, from)),
            MessageBody::AssociationUpdateRequest(r) => {
                let cause = if self.assocs.contains_key(&r.node_id) {
                    pfcp::Cause::RequestAccepted
                } else {
                    pfcp::Cause::NoEstablishedPfcpAssociation
                };
                Some(Message::node(
                    seq,
                    pfcp::AssociationUpdateResponse {
                        node_id: self.node_id.clone(),
                        cause,
                        ..Default::default()
                    },
                ))
            }
            MessageBody::AssociationReleaseRequest(r) => {
                let cause = if self.assocs.remove(&r.node_id).is_some() {
                    self.drop_sessions_of(&r.node_id);
                    info!(node = %r.node_id, "association released");
                    pfcp::Cause::RequestAccepted
                } else {
                    pfcp::Cause::NoEstablishedPfcpAssociation
                };
                Some(Message::node(
                    seq,
                    pfcp::AssociationReleaseResponse {
                        node_id: self.node_id.clone(),
                        cause,
                        ..Default::default()
                    },
                ))
            }
            MessageBody::SessionEstablishmentRequest(r) => Some(self.establish(r, seq, from)),
            MessageBody::SessionModificationRequest(r) => {
                Some(self.modify(msg.header.seid.unwrap_or(0), r, seq, from))
            }
            MessageBody::SessionDeletionRequest(_) => {
                Some(self.delete(msg.header.seid.unwrap_or(0), seq, from))
            }
            MessageBody::SessionReportResponse(r) => {
                self.pending.remove(&seq);
                if r.cause == pfcp::Cause::SessionContextNotFound {
                    if let Some(seid) = msg.header.seid {
                        // The SMF no longer knows the session: remove ours.
                        if let Some((local, _)) = self
                            .sessions
                            .iter()
                            .find(|(_, p)| p.remote_seid == seid && p.peer == from)
                            .map(|(l, p)| (*l, p.clone()))
                        {
                            let _ = self.inner.delete(local);
                            self.sessions.remove(&local);
                        }
                    }
                }
                None
            }
            other => {
                debug!(%from, msg_type = other.msg_type(), "PFCP message not handled");
                None
            }
        };
        if let Some(r) = resp {
            if let MessageBody::SessionEstablishmentResponse(x) = &r.body {
                self.count_reject(x.cause);
            }
            self.respond(seq, r, from, now);
        }
    }

    fn count_reject(&self, c: pfcp::Cause) {
        if !c.is_accepted() {
            self.inner
                .pfcp_stats
                .rejected
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reject_malformed(
        &mut self,
        ctx: pfcp::MsgContext,
        e: &pfcp::PfcpError,
        from: SocketAddr,
        now: Instant,
    ) {
        let cause = e.cause();
        let offending_ie = e.offending_ie();
        let seq = ctx.seq;
        let remote = |s: &Self| {
            ctx.seid
                .and_then(|l| s.sessions.get(&l))
                .map_or(0, |p| p.remote_seid)
        };
        let msg = match ctx.msg_type {
            1 => Message::node(
                seq,
                pfcp::HeartbeatResponse {
                    recovery_time_stamp: self.inner.recovery_ts,
                    ..Default::default()
                },
            ),
            5 => Message::node(
                seq,
                pfcp::AssociationSetupResponse {
                    node_id: self.node_id.clone(),
                    cause,
                    recovery_time_stamp: self.inner.recovery_ts,
                    ..Default::default()
                },
            ),
            7 => Message::node(
                seq,
                pfcp::AssociationUpdateResponse {
                    node_id: self.node_id.clone(),
                    cause,
                    ..Default::default()
                },
            ),
            9 => Message::node(
                seq,
                pfcp::AssociationReleaseResponse {
                    node_id: self.node_id.clone(),
                    cause,
                    ..Default::default()
                },
            ),
            50 => Message::session(
                0,
                seq,
                pfcp::SessionEstablishmentResponse {
                    node_id: self.node_id.clone(),
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            52 => Message::session(
                remote(self),
                seq,
                pfcp::SessionModificationResponse {
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            54 => Message::session(
                remote(self),
                seq,
                pfcp::SessionDeletionResponse {
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            _ => return,
        };
        self.count_reject(cause);
        self.respond(seq, msg, from, now);
    }

    fn association_setup(
        &mut self,
        r: pfcp::AssociationSetupRequest,
        seq: u32,
        from: SocketAddr,
    ) -> Message {
        let now = Instant::now();
        if let Some(old) = self.assocs.get(&r.node_id) {
            if old.recovery_ts != r.recovery_time_stamp {
                info!(node = %r.node_id, "SMF restarted: its old sessions are removed");
                self.drop_sessions_of(&r.node_id);
            }
        }
        info!(node = %r.node_id, %from, "association set up");
        self.assocs.insert(
            r.node_id.clone(),
            Assoc {
                peer: from,
                recovery_ts: r.recovery_time_stamp,
                hb_outstanding: None,
                missed: 0,
                next_hb: now + self.hb_interval.unwrap_or(Duration::ZERO),
            },
        );
        Message::node(
            seq,
            pfcp::AssociationSetupResponse {
                node_id: self.node_id.clone(),
                cause: pfcp::Cause::RequestAccepted,
                recovery_time_stamp: self.inner.recovery_ts,
                up_function_features: Some(pfcp::FunctionFeatures::with(&[
                    pfcp::up_features::FTUP,
                ])),
                ..Default::default()
            },
        )
    }

    fn drop_sessions_of(&mut self, node: &pfcp::NodeId) {
        let gone: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, p)| &p.node == node)
            .map(|(l, _)| *l)
            .collect();
        for l in gone {
            let _ = self.inner.delete(l);
            self.sessions.remove(&l);
        }
    }

    fn est_reject(&self, seid: u64, seq: u32, e: &SessionError) -> Message {
        warn!(cause = ?e.cause, offending_ie = ?e.offending_ie, reason = %e.message, "session establishment refused");
        Message::session(
            seid,
            seq,
            pfcp::SessionEstablishmentResponse {
                node_id: self.node_id.clone(),
                cause: cause_to_wire(e.cause),
                offending_ie: e.offending_ie,
                ..Default::default()
            },
        )
    }

    fn establish(
        &mut self,
        r: pfcp::SessionEstablishmentRequest,
        seq: u32,
        from: SocketAddr,
    ) -> Message {
        let cp_seid = r.cp_f_seid.seid;
        if !self.assocs.contains_key(&r.node_id) {
            return self.est_reject(
                cp_seid,
                seq,
                &SessionError {
                    cause: Cause::NoEstablishedPfcpAssociation,
                    offending_ie: None,
                    message: format!("no association with {}", r.node_id),
                },
            );
        }
        let rules = match pfcp_map::establishment(&r) {
            Ok(x) => x,
            Err(e) => return self.est_reject(cp_seid, seq, &e),
        };
        match self.inner.establish(cp_seid, rules) {
            Ok(est) => {
                let shared = self
                    .inner
                    .table()
                    .session(est.local_seid)
                    .map(|s| s.shared.clone());
                if let Some(shared) = shared {
                    self.sessions.insert(
                        est.local_seid,
                        SessPeer {
                            node: r.node_id.clone(),
                            peer: from,
                            remote_seid: cp_seid,
                            shared,
                            nocp: r
                                .create_fars
                                .iter()
                                .filter(|f| f.apply_action.intersects(pfcp::ApplyAction::NOCP))
                                .map(|f| f.far_id)
                                .collect(),
                        },
                    );
                }
                Message::session(
                    cp_seid,
                    seq,
                    pfcp::SessionEstablishmentResponse {
                        node_id: self.node_id.clone(),
                        cause: pfcp::Cause::RequestAccepted,
                        up_f_seid: Some(pfcp::FSeid {
                            seid: est.local_seid,
                            ipv4: Some(self.f_seid_addr),
                            ipv6: None,
                        }),
                        created_pdrs: est
                            .created
                            .iter()
                            .map(|c| pfcp::CreatedPdr {
                                pdr_id: c.pdr_id,
                                local_f_teid: Some(pfcp::FTeid::ipv4(c.teid, c.addr)),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    },
                )
            }
            Err(e) => self.est_reject(cp_seid, seq, &e),
        }
    }

    fn modify(
        &mut self,
        seid: u64,
        r: pfcp::SessionModificationRequest,
        seq: u32,
        from: SocketAddr,
    ) -> Message {
        let reject = |s: &Self, remote: u64, e: SessionError| {
            warn!(seid, cause = ?e.cause, offending_ie = ?e.offending_ie, reason = %e.message, "session modification refused");
            s.inner.pfcp_stats.rejected.fetch_add(1, Ordering::Relaxed);
            Message::session(
                remote,
                seq,
                pfcp::SessionModificationResponse {
                    cause: cause_to_wire(e.cause),
                    offending_ie: e.offending_ie,
                    ..Default::default()
                },
            )
        };
        // A session is only visible to the node that made it: another peer
        // gets "not found" and cannot touch it.
        let Some(peer) = self.owned(seid, from) else {
            return reject(
                self,
                0,
                SessionError {
                    cause: Cause::SessionContextNotFound,
                    offending_ie: None,
                    message: format!("no session {seid:#x}"),
                },
            );
        };
        if !self.assocs.contains_key(&peer.node) {
            return reject(
                self,
                peer.remote_seid,
                SessionError {
                    cause: Cause::NoEstablishedPfcpAssociation,
                    offending_ie: None,
                    message: format!("association with {} gone", peer.node),
                },
            );
        }
        let m = {
            let t = self.inner.table();
            let Some(s) = t.session(seid) else {
                drop(t);
                return reject(
                    self,
                    peer.remote_seid,
                    SessionError {
                        cause: Cause::SessionContextNotFound,
                        offending_ie: None,
                        message: format!("no session {seid:#x}"),
                    },
                );
            };
            pfcp_map::modification(&r, s)
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => return reject(self, peer.remote_seid, e),
        };
        let mut remote = peer.remote_seid;
        match self.inner.modify(seid, m) {
            Ok(done) => {
                if let Some(p) = self.sessions.get_mut(&seid) {
                    if let Some(f) = r.cp_f_seid {
                        remote = f.seid;
                        p.remote_seid = f.seid;
                    }
                    let aas = r
                        .create_fars
                        .iter()
                        .map(|f| (f.far_id, Some(f.apply_action)))
                        .chain(r.update_fars.iter().map(|f| (f.far_id, f.apply_action)));
                    for (id, aa) in aas {
                        match aa {
                            Some(a) if a.intersects(pfcp::ApplyAction::NOCP) => {
                                p.nocp.insert(id);
                            }
                            Some(_) => {
                                p.nocp.remove(&id);
                            }
                            None => {}
                        }
                    }
                    for f in &r.remove_fars {
                        p.nocp.remove(&f.far_id);
                    }
                }
                let (now, wall) = (Instant::now(), SystemTime::now());
                Message::session(
                    remote,
                    seq,
                    pfcp::SessionModificationResponse {
                        cause: pfcp::Cause::RequestAccepted,
                        created_pdrs: done
                            .created
                            .iter()
                            .map(|c| pfcp::CreatedPdr {
                                pdr_id: c.pdr_id,
                                local_f_teid: Some(pfcp::FTeid::ipv4(c.teid, c.addr)),
                                ..Default::default()
                            })
                            .collect(),
                        usage_reports: done
                            .reports
                            .iter()
                            .map(|u| pfcp_map::usage_report(u, now, wall))
                            .collect(),
                        ..Default::default()
                    },
                )
            }
            Err(e) => reject(self, remote, e),
        }
    }

    fn owned(&self, seid: u64, from: SocketAddr) -> Option<SessPeer> {
        self.sessions
            .get(&seid)
            .filter(|p| p.peer.ip() == from.ip())
            .cloned()
    }

    fn delete(&mut self, seid: u64, seq: u32, from: SocketAddr) -> Message {
        let Some(peer) = self.owned(seid, from) else {
            self.inner
                .pfcp_stats
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            return Message::session(
                0,
                seq,
                pfcp::SessionDeletionResponse {
                    cause: pfcp::Cause::SessionContextNotFound,
                    ..Default::default()
                },
            );
        };
        let (cause, reports) = match self.inner.delete(seid) {
            Ok(r) => (pfcp::Cause::RequestAccepted, r),
            Err(e) => (cause_to_wire(e.cause), Vec::new()),
        };
        self.sessions.remove(&seid);
        let (now, wall) = (Instant::now(), SystemTime::now());
        Message::session(
            peer.remote_seid,
            seq,
            pfcp::SessionDeletionResponse {
                cause,
                usage_reports: reports
                    .iter()
                    .map(|u| pfcp_map::usage_report(u, now, wall))
                    .collect(),
                ..Default::default()
            },
        )
    }

    /// Downlink Data Reports: a packet reached an empty buffer of a FAR that
    /// has NOCP.
    fn poll_dl_data(&mut self) {
        let pending: Vec<(u64, u16)> = self
            .sessions
            .iter()
            .filter(|(_, p)| p.shared.dl_data_pending.swap(false, Ordering::AcqRel))
            .map(|(s, p)| (*s, p.shared.buffering_pdr.load(Ordering::Relaxed) as u16))
            .collect();
        for (seid, pdr_id) in pending {
            let far = self
                .inner
                .table()
                .session(seid)
                .and_then(|s| s.pdr(pdr_id).map(|p| p.far_id));
            let Some(p) = self.sessions.get(&seid).cloned() else {
                continue;
            };
            if !far.is_some_and(|f| p.nocp.contains(&f)) {
                continue;
            }
            let seq = self.seq();
            let msg = Message::session(
                p.remote_seid,
                seq,
                pfcp::SessionReportRequest {
                    report_type: pfcp::ReportType::DLDR,
                    downlink_data_report: Some(pfcp::DownlinkDataReport {
                        pdr_ids: vec![pdr_id],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            );
            if let Some(b) = self.send(&msg, p.peer) {
                self.pending.insert(seq, (b, p.peer, Instant::now(), 0));
                self.inner
                    .pfcp_stats
                    .reports_sent
                    .fetch_add(1, Ordering::Relaxed);
                debug!(seid, pdr_id, "downlink data report sent");
            }
        }
    }

    fn poll_reports(&mut self, now: Instant) {
        self.poll_dl_data();
        let reports = self.inner.table().poll_reports(now);
        if reports.is_empty() {
            return;
        }
        let wall = SystemTime::now();
        let mut by_session: HashMap<u64, Vec<&UsageReport>> = HashMap::new();
        for r in &reports {
            by_session.entry(r.seid).or_default().push(r);
        }
        for (seid, rs) in by_session {
            let Some(p) = self.sessions.get(&seid).cloned() else {
                continue; // a session made through the in-process API
            };
            let seq = self.seq();
            let msg = Message::session(
                p.remote_seid,
                seq,
                pfcp::SessionReportRequest {
                    report_type: pfcp::ReportType::USAR,
                    usage_reports: rs
                        .iter()
                        .map(|u| pfcp_map::usage_report(u, now, wall))
                        .collect(),
                    ..Default::default()
                },
            );
            if let Some(b) = self.send(&msg, p.peer) {
                self.pending.insert(seq, (b, p.peer, now, 0));
                self.inner
                    .pfcp_stats
                    .reports_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.inner.queue_reports(reports);
    }

    /// Resend unanswered requests after T1, give up after N1 resends.
    fn resend(&mut self, now: Instant) {
        let (t1, n1) = (self.t1, self.n1);
        let mut gave_up = Vec::new();
        for (seq, (bytes, peer, sent, tries)) in self.pending.iter_mut() {
            if now.saturating_duration_since(*sent) < t1 {
                continue;
            }
            if *tries >= n1 {
                gave_up.push(*seq);
                continue;
            }
            *tries += 1;
            *sent = now;
            if self.sock.send_to(bytes, *peer).is_ok() {
                self.inner.pfcp_stats.tx.fetch_add(1, Ordering::Relaxed);
            }
        }
        for seq in gave_up {
            if let Some((_, peer, _, _)) = self.pending.remove(&seq) {
                warn!(%peer, seq, "Session Report Request unanswered after N1 resends");
            }
        }
    }

    fn heartbeats(&mut self, now: Instant) {
        let Some(iv) = self.hb_interval else { return };
        let mut dead = Vec::new();
        let mut to_send = Vec::new();
        for (node, a) in self.assocs.iter_mut() {
            if now < a.next_hb {
                continue;
            }
            a.next_hb = now + iv;
            if a.hb_outstanding.is_some() {
                a.missed += 1;
                if a.missed > self.hb_retries {
                    dead.push(node.clone());
                    continue;
                }
            }
            to_send.push((node.clone(), a.peer));
        }
        for (node, peer) in to_send {
            let seq = self.seq();
            let msg = Message::node(
                seq,
                pfcp::HeartbeatRequest {
                    recovery_time_stamp: self.inner.recovery_ts,
                    ..Default::default()
                },
            );
            self.send(&msg, peer);
            if let Some(a) = self.assocs.get_mut(&node) {
                a.hb_outstanding = Some(seq);
            }
        }
        for node in dead {
            warn!(%node, "SMF stopped answering heartbeats: association and sessions dropped");
            self.assocs.remove(&node);
            self.drop_sessions_of(&node);
        }
    }
}
