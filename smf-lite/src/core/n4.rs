//! PFCP input: the UPF's requests (heartbeats, association setup, update
//! and release, session reports), answered and cached for retransmissions,
//! and the responses to our requests, matched to their transaction.

use super::txn::TxnKind;
use super::{AssocState, SessionState, Smf, SmfError};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info, warn};
use wire::pfcp::{self, msg_type as mt, Cause, Message, MessageBody};

impl Smf {
    /// A datagram from N4.
    pub fn handle_pfcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.metrics.pfcp_rx += 1;
        if self.quiet(now) {
            // Before our Recovery Time Stamp's second: the peer retransmits.
            debug!(%from, "PFCP before our Recovery Time Stamp began: ignored");
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.pfcp_rx_errors += 1;
                debug!(%from, "undecodable PFCP: {e}");
                return;
            }
        };
        let peer = self.peers.iter().position(|p| p.addr == from);
        let Some(upf) = peer else {
            if let MessageBody::HeartbeatRequest(_) = msg.body {
                // Heartbeats are answered whoever asks (TS 29.244 §6.2.2).
                let rsp = Message::node(
                    msg.header.seq,
                    pfcp::HeartbeatResponse {
                        recovery_time_stamp: self.recovery_ts,
                        ..Default::default()
                    },
                );
                self.emit(from, &rsp);
                self.metrics.heartbeats_rx += 1;
            } else {
                self.metrics.pfcp_rx_errors += 1;
                debug!(%from, "PFCP from an unknown peer ignored");
            }
            return;
        };
        let ty = msg.msg_type();
        let is_request = matches!(
            ty,
            mt::HeartbeatRequest
                | mt::AssociationSetupRequest
                | mt::AssociationUpdateRequest
                | mt::AssociationReleaseRequest
                | mt::SessionReportRequest
        );
        if is_request {
            let seq = msg.header.seq;
            if let Some(data) = self.peers[upf].answered(seq, ty) {
                let data = data.to_vec();
                self.push_send(from, data);
                return;
            }
            self.handle_request(now, upf, msg);
            return;
        }
        let seq = msg.header.seq;
        let matches = self
            .txns
            .get((upf, seq))
            .is_some_and(|t| t.response_type() == Some(ty));
        if !matches {
            self.metrics.pfcp_rx_errors += 1;
            debug!(upf = %self.peers[upf].name, seq, ty, "PFCP response to no outstanding request");
            if let MessageBody::SessionEstablishmentResponse(r) = &msg.body {
                // A setup we gave up on (timed out, or dropped when the
                // UPF restarted) that the UPF did make.
                self.delete_if_orphan(now, upf, r);
            }
            return;
        }
        let Some(txn) = self.txns.remove((upf, seq)) else {
            return;
        };
        self.handle_response(now, upf, txn.kind, msg.body);
    }

    fn handle_request(&mut self, now: Instant, upf: usize, msg: Message) {
        let seq = msg.header.seq;
        let ty = msg.msg_type();
        // A UPF-initiated association is up when it has our answer: what
        // the setup sets off (restored sessions) goes out after it.
        let mut setup_ts = None;
        let rsp = match msg.body {
            MessageBody::HeartbeatRequest(h) => {
                self.metrics.heartbeats_rx += 1;
                self.peer_recovery(now, upf, h.recovery_time_stamp, false);
                Message::node(
                    seq,
                    pfcp::HeartbeatResponse {
                        recovery_time_stamp: self.recovery_ts,
                        ..Default::default()
                    },
                )
            }
            MessageBody::AssociationSetupRequest(a) => {
                info!(upf = %self.peers[upf].name, node = %a.node_id, "association set up by the UPF");
                // TS 29.244 §6.2.6.2.2: a setup from a UPF we are associated
                // with replaces the association whatever its Recovery Time
                // Stamp; the UPF restarted and lost its sessions (a restart
                // within the same second keeps the time stamp).
                if self.peers[upf].state == AssocState::Associated {
                    warn!(upf = %self.peers[upf].name, "UPF set up the association again: restarted");
                    self.peers[upf].recovery_ts = None;
                    self.peers[upf].restarts += 1;
                    self.metrics.upf_restarts += 1;
                    self.upf_lost_all(now, upf);
                }
                self.peers[upf].node_id = Some(a.node_id.to_string());
                setup_ts = Some(a.recovery_time_stamp);
                Message::node(
                    seq,
                    pfcp::AssociationSetupResponse {
                        node_id: self.node_id.clone(),
                        cause: Cause::RequestAccepted,
                        recovery_time_stamp: self.recovery_ts,
                        cp_function_features: Some(pfcp::FunctionFeatures(vec![0])),
                        ..Default::default()
                    },
                )
            }
            MessageBody::AssociationUpdateRequest(_) => Message::node(
                seq,
                pfcp::AssociationUpdateResponse {
                    node_id: self.node_id.clone(),
                    cause: Cause::RequestAccepted,
                    ..Default::default()
                },
            ),
            MessageBody::AssociationReleaseRequest(_) => {
                warn!(upf = %self.peers[upf].name, "UPF released the association");
                self.peer_down(now, upf);
                Message::node(
                    seq,
                    pfcp::AssociationReleaseResponse {
                        node_id: self.node_id.clone(),
                        cause: Cause::RequestAccepted,
                        ..Default::default()
                    },
                )
            }
            MessageBody::SessionReportRequest(r) => {
                self.metrics.session_reports_rx += 1;
                let seid = msg.header.seid.unwrap_or(0);
                let key = self.by_seid.get(&seid).cloned();
                match key.and_then(|k| self.sessions.get_mut(&k)) {
                    Some(s) => {
                        s.usage.add(&r.usage_reports);
                        Message::session(
                            s.info.up_seid,
                            seq,
                            pfcp::SessionReportResponse {
                                cause: Cause::RequestAccepted,
                                ..Default::default()
                            },
                        )
                    }
                    None => Message::session(
                        0,
                        seq,
                        pfcp::SessionReportResponse {
                            cause: Cause::SessionContextNotFound,
                            ..Default::default()
                        },
                    ),
                }
            }
            _ => return,
        };
        let to = self.peers[upf].addr;
        if let Some(data) = self.emit(to, &rsp) {
            self.peers[upf].remember_answer(seq, ty, data);
        }
        if let Some(ts) = setup_ts {
            self.peer_recovery(now, upf, ts, true);
        }
    }

    /// An accepted Session Establishment that no session of ours holds
    /// (its request was given up, or a newer attempt replaced it): the UPF
    /// keeps the session and its rules for good unless we delete it. A UP
    /// SEID one of our sessions holds is never touched.
    pub(super) fn delete_if_orphan(
        &mut self,
        now: Instant,
        upf: usize,
        r: &pfcp::SessionEstablishmentResponse,
    ) {
        let Some(f) = r.up_f_seid.filter(|_| r.cause.is_accepted()) else {
            return;
        };
        let held = self
            .sessions
            .values()
            .any(|s| s.upf == upf && s.info.up_seid == f.seid);
        if held || self.peers[upf].state != AssocState::Associated {
            return;
        }
        warn!(upf = %self.peers[upf].name, up_seid = f.seid, "a session the UPF set up for a request we gave up: deleting it");
        self.send_cleanup(now, upf, f.seid);
    }

    fn handle_response(&mut self, now: Instant, upf: usize, kind: TxnKind, body: MessageBody) {
        match (kind, body) {
            (TxnKind::Association, MessageBody::AssociationSetupResponse(a)) => {
                let p = &mut self.peers[upf];
                if !a.cause.is_accepted() {
                    warn!(upf = %p.name, cause = ?a.cause, "association refused");
                    p.state = AssocState::Down;
                    p.next_timer = now + self.hb;
                    return;
                }
                info!(upf = %p.name, node = %a.node_id, rts = a.recovery_time_stamp, "PFCP association up");
                p.node_id = Some(a.node_id.to_string());
                self.peer_recovery(now, upf, a.recovery_time_stamp, true);
            }
            (TxnKind::Heartbeat, MessageBody::HeartbeatResponse(h)) => {
                self.peers[upf].hb_outstanding = false;
                self.peers[upf].next_timer = now + self.hb;
                self.peer_recovery(now, upf, h.recovery_time_stamp, false);
            }
            (TxnKind::Establish { key, gen }, MessageBody::SessionEstablishmentResponse(r)) => {
                self.on_established(now, upf, &key, gen, r)
            }
            (TxnKind::Modify { key, gen }, MessageBody::SessionModificationResponse(r)) => {
                let Some(s) = self.sessions.get(&key) else {
                    return;
                };
                if s.gen != gen || s.state != SessionState::Modifying {
                    return;
                }
                if r.cause.is_accepted() {
                    if s.n2_again {
                        // Its gNB restarted meanwhile: a tunnel again.
                        self.n2_again(&key);
                    } else if s.restoring {
                        self.restored(&key);
                    } else {
                        self.activated(now, &key);
                    }
                } else {
                    let e = SmfError::UpfRejected {
                        upf: self.peers[upf].name.clone(),
                        what: "Session Modification",
                        cause: r.cause.into(),
                        offending_ie: r.offending_ie,
                    };
                    self.fail(now, &key, e, true);
                }
            }
            (TxnKind::Delete { key, gen }, MessageBody::SessionDeletionResponse(r)) => {
                if !r.cause.is_accepted() {
                    warn!(?key, cause = ?r.cause, "UPF refused the Session Deletion; released anyway");
                }
                self.released(&key, gen, &r.usage_reports);
            }
            (TxnKind::Cleanup, MessageBody::SessionDeletionResponse(_)) => {}
            (kind, body) => {
                self.metrics.pfcp_rx_errors += 1;
                debug!(?kind, ty = body.msg_type(), "unexpected response type");
            }
        }
    }
}
