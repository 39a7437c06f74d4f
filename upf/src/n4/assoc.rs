//! Associations: setup (either side first), update, release, heartbeats
//! both ways, and what a peer's restart does (TS 29.244 §6.2, §19A; TS
//! 23.527 §4.4). A peer is its Node ID and its address together.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use wire::pfcp::{self, Message};

use super::{bump, Assoc, AssocSetup, LogCause, N4Event, N4Node, Transmit, ASSOC_RETRY};
use crate::session::SessionTable;

impl N4Node {
    pub(super) fn association_setup(
        &mut self,
        r: pfcp::AssociationSetupRequest,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) -> Message {
        if let Some(other) = self
            .assoc(&r.node_id)
            .map(|a| a.peer)
            .filter(|p| p.ip() != from.ip())
        {
            // The Node ID is associated from another address: whoever asks
            // here is not that peer (a peer that moved waits until its old
            // association is released or lost).
            self.wrong_peer(now, from, &r.node_id, "Association Setup", Some(other));
            bump(&self.stats.rejected);
            return Message::node(
                seq,
                pfcp::AssociationSetupResponse {
                    node_id: self.p.node_id.clone(),
                    cause: pfcp::Cause::RequestRejected,
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            );
        }
        let restarted = self
            .assoc(&r.node_id)
            .is_some_and(|old| old.recovery_ts != r.recovery_time_stamp);
        if restarted {
            info!(node = %r.node_id, "SMF restarted: its old sessions are removed");
            self.drop_sessions_of(&r.node_id, now, table);
            self.replay.drop_peer(from.ip());
        }
        // The SMF was first: our own attempt towards it is moot.
        self.setups.retain(|s| s.peer != from);
        info!(node = %r.node_id, %from, "association set up");
        self.set_assoc(&r.node_id, from, r.recovery_time_stamp, now);
        Message::node(
            seq,
            pfcp::AssociationSetupResponse {
                node_id: self.p.node_id.clone(),
                cause: pfcp::Cause::RequestAccepted,
                recovery_time_stamp: self.p.recovery_ts,
                up_function_features: Some(pfcp::FunctionFeatures::with(&[
                    pfcp::up_features::FTUP,
                ])),
                ..Default::default()
            },
        )
    }

    pub(super) fn drop_sessions_of(
        &mut self,
        node: &pfcp::NodeId,
        now: Instant,
        table: &mut SessionTable,
    ) {
        let gone: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, p)| &p.node == node)
            .map(|(l, _)| *l)
            .collect();
        for l in gone {
            self.table_delete(table, l, now);
        }
    }

    /// Sends, resends and restarts our own Association Setup Requests.
    pub(super) fn association_setups(&mut self, now: Instant) {
        for i in 0..self.setups.len() {
            let s = &self.setups[i];
            match s.seq {
                None if now >= s.at => {}
                Some(_) if now.saturating_duration_since(s.at) >= self.p.t1 => {
                    if s.resends < self.p.n1 {
                        let s = &mut self.setups[i];
                        s.resends += 1;
                        s.at = now;
                        self.transmits.push_back(Transmit {
                            destination: s.peer,
                            contents: s.bytes.clone(),
                        });
                        continue;
                    }
                    warn!(smf = %s.peer, "Association Setup Request unanswered; trying again later");
                    let s = &mut self.setups[i];
                    s.seq = None;
                    s.at = now + ASSOC_RETRY;
                    continue;
                }
                _ => continue,
            }
            let seq = self.seq();
            let msg = Message::node(
                seq,
                pfcp::AssociationSetupRequest {
                    node_id: self.p.node_id.clone(),
                    recovery_time_stamp: self.p.recovery_ts,
                    up_function_features: Some(pfcp::FunctionFeatures::with(&[
                        pfcp::up_features::FTUP,
                    ])),
                    ..Default::default()
                },
            );
            let peer = self.setups[i].peer;
            if let Some(bytes) = self.queue(&msg, peer) {
                info!(smf = %peer, "setting up the PFCP association (UPF-initiated)");
                let s = &mut self.setups[i];
                s.seq = Some(seq);
                s.at = now;
                s.resends = 0;
                s.bytes = bytes;
            }
        }
    }

    pub(super) fn association_setup_answered(
        &mut self,
        r: pfcp::AssociationSetupResponse,
        seq: u32,
        from: SocketAddr,
        now: Instant,
        table: &mut SessionTable,
    ) {
        let Some(i) = self
            .setups
            .iter()
            .position(|s| s.peer == from && s.seq == Some(seq))
        else {
            debug!(%from, seq, "Association Setup Response to no request of ours");
            return;
        };
        if !r.cause.is_accepted() {
            warn!(smf = %from, cause = ?r.cause, "SMF refused the association; trying again later");
            let s = &mut self.setups[i];
            s.seq = None;
            s.at = now + ASSOC_RETRY;
            return;
        }
        self.setups.remove(i);
        if self
            .assoc(&r.node_id)
            .is_some_and(|old| old.recovery_ts != r.recovery_time_stamp)
        {
            info!(node = %r.node_id, "SMF restarted: its old sessions are removed");
            self.drop_sessions_of(&r.node_id, now, table);
        }
        info!(node = %r.node_id, smf = %from, "association set up (UPF-initiated)");
        self.set_assoc(&r.node_id, from, r.recovery_time_stamp, now);
    }

    /// Record the association with `node` at `peer` (new, or replacing
    /// the one with that Node ID).
    fn set_assoc(&mut self, node: &pfcp::NodeId, peer: SocketAddr, recovery_ts: u32, now: Instant) {
        let a = Assoc {
            node: node.clone(),
            peer,
            recovery_ts,
            hb_outstanding: Vec::new(),
            next_hb: now + self.p.heartbeat_interval.unwrap_or(Duration::ZERO),
        };
        match self.assocs.iter_mut().find(|x| &x.node == node) {
            Some(old) => *old = a,
            None => self.assocs.push(a),
        }
    }

    pub(super) fn heartbeats(&mut self, now: Instant, table: &mut SessionTable) {
        let Some(iv) = self.p.heartbeat_interval else {
            return;
        };
        let mut dead = Vec::new();
        let mut to_send = Vec::new();
        for (i, a) in self.assocs.iter_mut().enumerate() {
            if now < a.next_hb {
                continue;
            }
            a.next_hb = now + iv;
            // The first unanswered heartbeat is tolerated; then `retries`
            // more intervals.
            if a.hb_outstanding.len() as u64 > u64::from(self.p.heartbeat_retries) {
                dead.push(a.node.clone());
                continue;
            }
            to_send.push((i, a.peer));
        }
        for (i, peer) in to_send {
            let seq = self.seq();
            let msg = Message::node(
                seq,
                pfcp::HeartbeatRequest {
                    recovery_time_stamp: self.p.recovery_ts,
                    ..Default::default()
                },
            );
            if self.queue(&msg, peer).is_some() {
                self.assocs[i].hb_outstanding.push(seq);
            }
        }
        for node in dead {
            warn!(%node, "SMF stopped answering heartbeats: association and sessions dropped");
            self.lose_association(&node, now, table);
        }
    }

    /// The association with `node` is gone (heartbeats unanswered, or the
    /// peer restarted): its sessions and stored answers go with it, and if
    /// the UPF is configured to associate with that address it starts over.
    fn lose_association(&mut self, node: &pfcp::NodeId, now: Instant, table: &mut SessionTable) {
        let Some(i) = self.assocs.iter().position(|a| &a.node == node) else {
            return;
        };
        let a = self.assocs.remove(i);
        self.drop_sessions_of(node, now, table);
        self.replay.drop_peer(a.peer.ip());
        if self.p.associate_with.contains(&a.peer) && !self.setups.iter().any(|s| s.peer == a.peer)
        {
            self.setups.push(AssocSetup {
                peer: a.peer,
                seq: None,
                at: now,
                resends: 0,
                bytes: Vec::new(),
            });
        }
        self.events
            .push_back(N4Event::AssociationLost { node: node.clone() });
    }

    /// An Association Release accepted: the association and its sessions
    /// go.
    pub(super) fn release(&mut self, node: &pfcp::NodeId, now: Instant, table: &mut SessionTable) {
        self.assocs.retain(|a| &a.node != node);
        self.drop_sessions_of(node, now, table);
        info!(%node, "association released");
    }

    /// The cause for a node-related request (Update, Release) about
    /// `node` from `from`: accepted only from the association's address;
    /// otherwise 72, as for a node without an association (§6.2.7, §6.2.8:
    /// for this peer, Node ID and address, there is none).
    pub(super) fn node_request_cause(
        &mut self,
        node: &pfcp::NodeId,
        from: SocketAddr,
        now: Instant,
        what: &str,
    ) -> pfcp::Cause {
        match self.assoc(node).map(|a| a.peer) {
            Some(p) if p.ip() == from.ip() => pfcp::Cause::RequestAccepted,
            Some(p) => {
                self.wrong_peer(now, from, node, what, Some(p));
                bump(&self.stats.rejected);
                pfcp::Cause::NoEstablishedPfcpAssociation
            }
            None => {
                bump(&self.stats.rejected);
                pfcp::Cause::NoEstablishedPfcpAssociation
            }
        }
    }

    /// Count (and log, rate-limited) a request refused for its sender (the
    /// caller counts the rejection).
    pub(super) fn wrong_peer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        node: &pfcp::NodeId,
        what: &str,
        associated: Option<SocketAddr>,
    ) {
        bump(&self.stats.wrong_peer);
        if let Some(s) = self.may_log(now, LogCause::WrongPeer) {
            warn!(%from, %node, associated = ?associated, "{what} refused: not from the peer that holds the association or session{s}");
        }
    }

    /// A Heartbeat Request (`seq` None) or Response (`seq`, to one of our
    /// requests) from `from` carried `ts`. From an associated peer's
    /// address, a newer Recovery Time Stamp than the association's means
    /// the peer restarted: TS 23.527 §4.4 (and TS 29.244 §19A, TS 23.007
    /// §19A): without a restoration feature (the UPF advertises none: no
    /// MPAS/SSET, no PFCP Session Retention), the UPF deletes the sessions
    /// of the peer's previous life, and the association with it (the new
    /// life sets up its own). An older stamp is a stale message: ignored.
    pub(super) fn peer_recovery(
        &mut self,
        from: SocketAddr,
        seq: Option<u32>,
        ts: u32,
        now: Instant,
        table: &mut SessionTable,
    ) {
        let restarted: Vec<(pfcp::NodeId, SocketAddr, u32)> = self
            .assocs
            .iter()
            .filter(|a| match seq {
                None => a.peer.ip() == from.ip(),
                Some(q) => a.peer == from && a.hb_outstanding.contains(&q),
            })
            .filter(|a| a.recovery_ts != ts)
            .map(|a| (a.node.clone(), a.peer, a.recovery_ts))
            .collect();
        for (node, peer, old) in restarted {
            // Serial-number order: the NTP seconds wrap in 2036.
            if (ts.wrapping_sub(old) as i32) <= 0 {
                debug!(%node, %peer, old, ts, "older Recovery Time Stamp in a Heartbeat ignored");
                continue;
            }
            bump(&self.stats.peer_restarts);
            let n = self.sessions.values().filter(|p| p.node == node).count();
            warn!(%node, smf = %peer, old, new = ts, sessions = n, "SMF restarted (new Recovery Time Stamp in a Heartbeat): its sessions and the association are deleted");
            self.lose_association(&node, now, table);
        }
    }

    /// A Heartbeat Response: the peer that we asked is alive (and may have
    /// restarted).
    pub(super) fn heartbeat_answered(
        &mut self,
        from: SocketAddr,
        seq: u32,
        ts: u32,
        now: Instant,
        table: &mut SessionTable,
    ) {
        self.peer_recovery(from, Some(seq), ts, now, table);
        for a in self.assocs.iter_mut() {
            if a.peer == from && a.hb_outstanding.contains(&seq) {
                a.hb_outstanding.clear();
            }
        }
    }
}
