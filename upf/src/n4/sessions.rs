//! Session requests (establishment, modification, deletion) and our own
//! Session Report Requests with T1/N1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::{debug, info, warn};
use wire::pfcp::{self, Message};

use super::{
    bump, session_error, Deferred, LogCause, N4Event, N4Node, Pending, SessPeer, Transmit,
};
use crate::pfcp_map;
use crate::rules::Cause;
use crate::session::{SessionError, SessionTable, UsageReport};

impl N4Node {
    /// A request whose header parsed but whose body did not: the matching
    /// response with the codec's cause and Offending IE.
    pub(super) fn reject_malformed(
        &mut self,
        ctx: pfcp::MsgContext,
        e: &pfcp::PfcpError,
        (from, digest): (SocketAddr, u64),
        now: Instant,
    ) {
        let cause = e.cause();
        let offending_ie = e.offending_ie();
        let seq = ctx.seq;
        let remote = ctx
            .seid
            .and_then(|l| self.sessions.get(&l))
            .filter(|p| p.peer.ip() == from.ip())
            .map_or(0, |p| p.remote_seid);
        let node_id = self.p.node_id.clone();
        let msg = match ctx.msg_type {
            1 => Message::node(
                seq,
                pfcp::HeartbeatResponse {
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            ),
            5 => Message::node(
                seq,
                pfcp::AssociationSetupResponse {
                    node_id,
                    cause,
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            ),
            7 => Message::node(
                seq,
                pfcp::AssociationUpdateResponse {
                    node_id,
                    cause,
                    ..Default::default()
                },
            ),
            9 => Message::node(
                seq,
                pfcp::AssociationReleaseResponse {
                    node_id,
                    cause,
                    ..Default::default()
                },
            ),
            50 => Message::session(
                0,
                seq,
                pfcp::SessionEstablishmentResponse {
                    node_id,
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            52 => Message::session(
                remote,
                seq,
                pfcp::SessionModificationResponse {
                    cause,
                    offending_ie,
                    ..Default::default()
                },
            ),
            54 => Message::session(
                remote,
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
        self.respond((seq, digest), msg, from, now);
    }

    fn est_reject(&mut self, now: Instant, seid: u64, seq: u32, e: &SessionError) -> Message {
        if let Some(s) = self.may_log(now, LogCause::EstablishmentRefused) {
            warn!(cause = ?e.cause, offending_ie = ?e.offending_ie, reason = %e.message, "session establishment refused{s}");
        }
        Message::session(
            seid,
            seq,
            pfcp::SessionEstablishmentResponse {
                node_id: self.p.node_id.clone(),
                cause: e.cause,
                offending_ie: e.offending_ie,
                ..Default::default()
            },
        )
    }

    pub(super) fn establish(
        &mut self,
        r: pfcp::SessionEstablishmentRequest,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Message {
        let cp_seid = r.cp_f_seid.seid;
        // The Node ID's association, and from its address (§6.2.6.1: no
        // association for this peer, 72).
        match self.assoc(&r.node_id).map(|a| a.peer) {
            Some(p) if p.ip() == from.ip() => {}
            other => {
                if let Some(p) = other {
                    self.wrong_peer(now, from, &r.node_id, "Session Establishment", Some(p));
                }
                let e = session_error(
                    Cause::NoEstablishedPfcpAssociation,
                    None,
                    format!("no association with {} at {}", r.node_id, from.ip()),
                );
                return self.est_reject(now, cp_seid, seq, &e);
            }
        }
        // The same CP F-SEID again from this peer: the SMF did not get our
        // answer to its establishment (or gave up on it) and sets the
        // session up anew; the first one goes, or it would stay orphaned.
        if let Some(old) = self.by_cp.get(&(r.node_id.clone(), cp_seid)).copied() {
            bump(&self.stats.replaced);
            warn!(node = %r.node_id, remote_seid = cp_seid, old_seid = old,
                "Session Establishment for a CP F-SEID in use: the old session is deleted");
            self.table_delete(table, old, now);
            self.rules_changed = true;
        }
        let of_peer = self.per_node.get(&r.node_id).copied().unwrap_or(0);
        if of_peer >= self.max_sessions_per_peer {
            bump(&self.stats.over_limit);
            let e = session_error(
                Cause::NoResourcesAvailable,
                None,
                format!("{} has {of_peer} sessions, the limit per peer", r.node_id),
            );
            return self.est_reject(now, cp_seid, seq, &e);
        }
        let rules = match pfcp_map::establishment(&r) {
            Ok(x) => x,
            Err(e) => return self.est_reject(now, cp_seid, seq, &e),
        };
        let est = match table.establish(cp_seid, rules, now) {
            Ok(est) => est,
            Err(e) => {
                if e.cause == Cause::NoResourcesAvailable {
                    bump(&self.stats.over_limit);
                }
                return self.est_reject(now, cp_seid, seq, &e);
            }
        };
        *self.per_node.entry(r.node_id.clone()).or_default() += 1;
        self.by_cp
            .insert((r.node_id.clone(), cp_seid), est.local_seid);
        self.rules_changed = true;
        info!(seid = est.local_seid, remote_seid = cp_seid, node = %r.node_id, "session established");
        self.sessions.insert(
            est.local_seid,
            SessPeer {
                node: r.node_id.clone(),
                peer: from,
                remote_seid: cp_seid,
                nocp: r
                    .create_fars
                    .iter()
                    .filter(|f| f.apply_action.intersects(pfcp::ApplyAction::NOCP))
                    .map(|f| f.far_id)
                    .collect(),
                bar: r.create_bar.as_ref().map(|b| b.bar_id),
            },
        );
        Message::session(
            cp_seid,
            seq,
            pfcp::SessionEstablishmentResponse {
                node_id: self.p.node_id.clone(),
                cause: pfcp::Cause::RequestAccepted,
                up_f_seid: Some(pfcp::FSeid {
                    seid: est.local_seid,
                    ipv4: Some(self.p.f_seid_addr),
                    ipv6: None,
                }),
                created_pdrs: pfcp_map::created_pdrs(&est.created),
                ..Default::default()
            },
        )
    }

    fn mod_reject(
        &mut self,
        now: Instant,
        seid: u64,
        remote: u64,
        seq: u32,
        e: SessionError,
    ) -> Message {
        if let Some(s) = self.may_log(now, LogCause::ModificationRefused) {
            warn!(seid, cause = ?e.cause, offending_ie = ?e.offending_ie, reason = %e.message, "session modification refused{s}");
        }
        bump(&self.stats.rejected);
        Message::session(
            remote,
            seq,
            pfcp::SessionModificationResponse {
                cause: e.cause,
                offending_ie: e.offending_ie,
                ..Default::default()
            },
        )
    }

    pub(super) fn modify(
        &mut self,
        seid: u64,
        r: pfcp::SessionModificationRequest,
        req: (u32, u64),
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Option<Message> {
        let seq = req.0;
        let peer = match self.session_peer(seid, from, now, "Session Modification") {
            Ok(p) => p,
            Err(e) => return Some(self.mod_reject(now, seid, 0, seq, e)),
        };
        // Every IE is checked (here, in the mapping and in the table)
        // before anything changes.
        let bar = match pfcp_map::bar_after(&r, peer.bar) {
            Ok(b) => b,
            Err(e) => return Some(self.mod_reject(now, seid, peer.remote_seid, seq, e)),
        };
        let m = match table.session(seid) {
            Some(s) => pfcp_map::modification(&r, s),
            None => Err(session_error(
                Cause::SessionContextNotFound,
                None,
                format!("no session {seid:#x}"),
            )),
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => return Some(self.mod_reject(now, seid, peer.remote_seid, seq, e)),
        };
        let done = match table.modify(seid, m, now) {
            Ok(done) => done,
            Err(e) => {
                if e.cause == Cause::NoResourcesAvailable {
                    bump(&self.stats.over_limit);
                }
                return Some(self.mod_reject(now, seid, peer.remote_seid, seq, e));
            }
        };
        self.rules_changed = true;
        debug!(seid, "session modified");
        let mut remote = peer.remote_seid;
        if let Some(p) = self.sessions.get_mut(&seid) {
            p.bar = bar;
            if let Some(f) = r.cp_f_seid {
                if self.by_cp.get(&(p.node.clone(), p.remote_seid)) == Some(&seid) {
                    self.by_cp.remove(&(p.node.clone(), p.remote_seid));
                }
                self.by_cp.insert((p.node.clone(), f.seid), seid);
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
        let mut msg = Message::session(
            remote,
            seq,
            pfcp::SessionModificationResponse {
                cause: pfcp::Cause::RequestAccepted,
                created_pdrs: pfcp_map::created_pdrs(&done.created),
                ..Default::default()
            },
        );
        if done.removed_urrs.is_empty() {
            self.set_usage(&mut msg, &done.reports, now);
            return Some(msg);
        }
        // Made once no packet thread counts into the removed URRs: their
        // reports then hold every packet forwarded with them.
        self.deferred.push(Deferred {
            req,
            to: from,
            at: now,
            msg,
            reports: done.reports,
            late: done.removed_urrs,
        });
        None
    }

    /// The session `seid` as its owner sees it, if `from` is that owner:
    /// the address of the association that established it, and that
    /// association still there. Otherwise the refusal: 72 when `from` has
    /// no association at all (§6.2.6.1), 65 when the session is not one of
    /// its own (whether it exists or belongs to another peer: it learns
    /// nothing about other peers' sessions).
    fn session_peer(
        &mut self,
        seid: u64,
        from: SocketAddr,
        now: Instant,
        what: &str,
    ) -> Result<SessPeer, SessionError> {
        let Some(node) = self
            .assocs
            .iter()
            .find(|a| a.peer.ip() == from.ip())
            .map(|a| a.node.clone())
        else {
            if let Some(owner) = self.sessions.get(&seid).map(|p| (p.node.clone(), p.peer)) {
                self.wrong_peer(now, from, &owner.0, what, Some(owner.1));
            }
            return Err(session_error(
                Cause::NoEstablishedPfcpAssociation,
                None,
                format!("{what}: no association with {}", from.ip()),
            ));
        };
        let owned = self.sessions.get(&seid).filter(|p| {
            p.peer.ip() == from.ip()
                && self
                    .assoc(&p.node)
                    .is_some_and(|a| a.peer.ip() == from.ip())
        });
        if let Some(p) = owned {
            return Ok(p.clone());
        }
        if let Some(owner) = self.sessions.get(&seid).map(|p| p.peer) {
            self.wrong_peer(now, from, &node, what, Some(owner));
        }
        Err(session_error(
            Cause::SessionContextNotFound,
            None,
            format!("{what}: no session {seid:#x} of {node}"),
        ))
    }

    /// Session Deletion of `seid`, request `req` (sequence number, digest)
    /// from `from`. A refusal is answered at once; an accepted deletion
    /// removes the session and takes its final usage reports here, and is
    /// answered by [`N4Node::poll_transmit`] with what the packet threads
    /// counted into it until then added: the driver waits between the
    /// events and the transmits for them to stop counting into it
    /// ([`N4Node::removals_pending`]).
    pub(super) fn delete(
        &mut self,
        seid: u64,
        req: (u32, u64),
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Option<Message> {
        let refused = |remote_seid, cause| {
            Some(Message::session(
                remote_seid,
                req.0,
                pfcp::SessionDeletionResponse {
                    cause,
                    ..Default::default()
                },
            ))
        };
        let peer = match self.session_peer(seid, from, now, "Session Deletion") {
            Ok(p) => p,
            Err(e) => {
                bump(&self.stats.rejected);
                return refused(0, e.cause);
            }
        };
        let removed = table.remove(seid);
        self.forget(seid);
        match removed {
            Ok(mut session) => {
                info!(seid, "session deleted");
                let late = session.urr_states();
                let reports = session.final_reports(now);
                self.deferred.push(Deferred {
                    req,
                    to: from,
                    at: now,
                    msg: Message::session(
                        peer.remote_seid,
                        req.0,
                        pfcp::SessionDeletionResponse {
                            cause: pfcp::Cause::RequestAccepted,
                            ..Default::default()
                        },
                    ),
                    reports,
                    late,
                });
                None
            }
            Err(e) => refused(peer.remote_seid, e.cause),
        }
    }

    /// A Session Report Response from `from`.
    pub(super) fn report_answered(
        &mut self,
        seid: Option<u64>,
        r: &pfcp::SessionReportResponse,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) {
        if self.pending.get(&seq).is_some_and(|p| p.peer == from) {
            self.pending_remove(seq);
        }
        if r.cause != pfcp::Cause::SessionContextNotFound {
            return;
        }
        let Some(seid) = seid else {
            return;
        };
        // The SMF no longer knows the session: remove ours.
        let local = self
            .sessions
            .iter()
            .find(|(_, p)| p.remote_seid == seid && p.peer == from)
            .map(|(l, _)| *l);
        if let Some(local) = local {
            info!(seid = local, "SMF lost the session: removed");
            self.table_delete(table, local, now);
        }
    }

    /// Send a request of ours and keep it for T1/N1.
    fn request(&mut self, seid: u64, p: &SessPeer, body: pfcp::SessionReportRequest, now: Instant) {
        let seq = self.seq();
        let msg = Message::session(p.remote_seid, seq, body);
        if let Some(bytes) = self.queue(&msg, p.peer) {
            self.pending_insert(
                seq,
                Pending {
                    bytes,
                    peer: p.peer,
                    seid,
                    sent: now,
                    resends: 0,
                },
            );
            bump(&self.stats.reports_sent);
        }
    }

    /// Downlink Data Reports: a packet reached an empty buffer of a FAR that
    /// has NOCP. Only the sessions the data path queued are looked at.
    pub(super) fn poll_dl_data(&mut self, now: Instant, table: &SessionTable) {
        let mut queued = table.take_dl_data();
        if queued.is_empty() {
            return;
        }
        queued.sort_unstable();
        queued.dedup();
        let mut due = Vec::new();
        for seid in &queued {
            let Some(p) = self.sessions.get(seid) else {
                continue; // a session of the in-process API, or gone
            };
            let Some(s) = table.session(*seid) else {
                continue;
            };
            if !s.shared.dl_data_pending.swap(false, Ordering::AcqRel) {
                continue;
            }
            let pdr_id = s.shared.buffering_pdr.load(Ordering::Relaxed) as u16;
            let far = s.pdr(pdr_id).map(|p| p.far_id);
            if far.is_some_and(|f| p.nocp.contains(&f)) {
                due.push((*seid, pdr_id, p.clone()));
            }
        }
        for (seid, pdr_id, p) in due {
            let body = pfcp::SessionReportRequest {
                report_type: pfcp::ReportType::DLDR,
                downlink_data_report: Some(pfcp::DownlinkDataReport {
                    pdr_ids: vec![pdr_id],
                    ..Default::default()
                }),
                ..Default::default()
            };
            self.request(seid, &p, body, now);
            debug!(seid, pdr_id, "downlink data report sent");
        }
    }

    pub(super) fn poll_reports(&mut self, now: Instant, table: &mut SessionTable) {
        let reports = table.poll_reports(now);
        if reports.is_empty() {
            return;
        }
        let wall = self.wall(now);
        let mut by_session: BTreeMap<u64, Vec<&UsageReport>> = BTreeMap::new();
        for r in &reports {
            by_session.entry(r.seid).or_default().push(r);
        }
        for (seid, rs) in by_session {
            let Some(p) = self.sessions.get(&seid).cloned() else {
                continue; // a session made through the in-process API
            };
            let body = pfcp::SessionReportRequest {
                report_type: pfcp::ReportType::USAR,
                usage_reports: rs
                    .iter()
                    .map(|u| pfcp_map::usage_report(u, now, wall))
                    .collect(),
                ..Default::default()
            };
            self.request(seid, &p, body, now);
        }
        self.events.push_back(N4Event::UsageReports(reports));
    }

    /// Resend unanswered requests after T1, give up after N1 resends. Only
    /// the requests whose T1 ran out are looked at.
    pub(super) fn resend(&mut self, now: Instant) {
        let (t1, n1) = (self.p.t1, self.p.n1);
        let mut gave_up = Vec::new();
        let mut resent = Vec::new();
        while let Some(&(sent, seq)) = self.pending_by_time.first() {
            if now.saturating_duration_since(sent) < t1 {
                break;
            }
            self.pending_by_time.pop_first();
            let Some(p) = self.pending.get_mut(&seq) else {
                debug_assert!(false, "resend index names no request");
                continue;
            };
            if p.resends >= n1 {
                gave_up.push(seq);
                continue;
            }
            p.resends += 1;
            p.sent = now;
            resent.push((now, seq));
            self.transmits.push_back(Transmit {
                destination: p.peer,
                contents: p.bytes.clone(),
            });
        }
        // Back in the index with their new send time (after the loop, so
        // that one call resends a request at most once).
        self.pending_by_time.extend(resent);
        gave_up.sort_unstable();
        for seq in gave_up {
            // Its time entry is already out of the index.
            if let Some(p) = self.pending.remove(&seq) {
                self.pending_by_seid.remove(&(p.seid, seq));
                warn!(peer = %p.peer, seq, seid = p.seid, "Session Report Request unanswered after N1 resends");
                bump(&self.stats.reports_unanswered);
                self.events.push_back(N4Event::ReportUnanswered {
                    peer: p.peer,
                    seid: p.seid,
                    seq,
                });
            }
        }
    }
}
