//! The session registry and the flow of a PDU session: API requests, the
//! gNB's N2 answers, the PFCP answers that move a session on, and the undo
//! of a failed setup. SEIDs are allocated here; UE addresses come from the
//! pools of the UPFs (`peer`).

use super::peer::select_upf;
use super::rules::PDR_UL;
use super::txn::TxnKind;
use super::{Action, AssocState, N2Request, ReqId, SessionKey, Smf, SmfError};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;
use tracing::{debug, info, warn};
use wire::ctl::{GnbRef, SessionInfo, SessionRequest, TunnelSetup, TunnelSetupResponse};
use wire::pfcp::{self, Cause, Message};

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Establishing,
    WaitN2,
    Modifying,
    Active,
    Releasing,
    /// Its UPF restarted or went away; it is restored at the next association.
    Lost,
}

impl SessionState {
    /// Every state, in flow order.
    pub const ALL: [SessionState; 6] = [
        SessionState::Establishing,
        SessionState::WaitN2,
        SessionState::Modifying,
        SessionState::Active,
        SessionState::Releasing,
        SessionState::Lost,
    ];

    fn name(self) -> &'static str {
        match self {
            SessionState::Establishing => "establishing",
            SessionState::WaitN2 => "waiting for the gNB",
            SessionState::Modifying => "modifying",
            SessionState::Active => "active",
            SessionState::Releasing => "releasing",
            SessionState::Lost => "lost",
        }
    }
}

/// Usage the UPF reported for a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub reports: u64,
    pub ul_bytes: u64,
    pub dl_bytes: u64,
}

impl Usage {
    /// Adds the UPF's usage reports.
    pub(super) fn add(&mut self, reports: &[pfcp::UsageReport]) {
        for u in reports {
            self.reports += 1;
            if let Some(v) = u.volume_measurement {
                self.ul_bytes += v.uplink_volume.unwrap_or(0);
                self.dl_bytes += v.downlink_volume.unwrap_or(0);
            }
        }
    }
}

/// A PDU session.
pub(super) struct Session {
    pub(super) info: SessionInfo,
    /// Index of its UPF in `Smf::peers`.
    pub(super) upf: usize,
    /// Index of its DNN in the UPF's.
    pub(super) dnn: usize,
    pub(super) gnb: GnbRef,
    pub(super) state: SessionState,
    /// Restoring after a UPF restart: no API request waits.
    pub(super) restoring: bool,
    /// Its gNB restarted after its tunnel was asked for: ask again once
    /// the UPF answered (`recover`).
    pub(super) n2_again: bool,
    /// Bumped at every new attempt so late answers of older ones are ignored.
    pub(super) gen: u64,
    pub(super) pending: Option<ReqId>,
    pub(super) started: Instant,
    pub(super) usage: Usage,
}

impl Smf {
    // ----- API inputs -----

    /// Starts a PDU session. Refusals before anything is sent are answered
    /// at once with [`Action::CreateDone`].
    pub fn create_session(&mut self, now: Instant, req: ReqId, r: SessionRequest) {
        if let Err(e) = self.try_create(now, req, r) {
            self.metrics.sessions_failed += 1;
            self.actions.push_back(Action::CreateDone {
                req,
                result: Err(e),
            });
        }
    }

    fn try_create(&mut self, now: Instant, req: ReqId, r: SessionRequest) -> Result<(), SmfError> {
        if r.ue_id.is_empty() {
            return Err(SmfError::BadRequest {
                field: "ue_id",
                msg: "must not be empty".into(),
            });
        }
        if !(1..=15).contains(&r.pdu_session_id) {
            return Err(SmfError::BadRequest {
                field: "pdu_session_id",
                msg: format!("{} is not in 1..=15", r.pdu_session_id),
            });
        }
        if r.dnn.is_empty() {
            return Err(SmfError::BadRequest {
                field: "dnn",
                msg: "must not be empty".into(),
            });
        }
        let key = (r.ue_id.clone(), r.pdu_session_id);
        if self.sessions.contains_key(&key) {
            return Err(SmfError::Duplicate {
                ue_id: r.ue_id,
                psi: r.pdu_session_id,
            });
        }
        let (upf, dnn) = select_upf(&self.peers, &r)?;
        let gnb =
            r.gnb
                .clone()
                .or_else(|| self.default_gnb.clone())
                .ok_or(SmfError::BadRequest {
                    field: "gnb",
                    msg: "no gNB in the request and no default_gnb configured".into(),
                })?;
        if gnb.n2_api.parse::<SocketAddr>().is_err() {
            return Err(SmfError::BadRequest {
                field: "gnb.n2_api",
                msg: format!("`{}` is not IP:PORT", gnb.n2_api),
            });
        }
        if self.peers[upf].state != AssocState::Associated {
            return Err(SmfError::NotAssociated(self.peers[upf].name.clone()));
        }
        let peer = &mut self.peers[upf];
        let ue_addr = peer.dnns[dnn]
            .pool
            .allocate()
            .ok_or_else(|| SmfError::PoolExhausted {
                upf: peer.name.clone(),
                dnn: r.dnn.clone(),
            })?;
        let cp_seid = self.alloc_seid();
        let gen = self.gen();
        let info = SessionInfo {
            ue_id: r.ue_id,
            pdu_session_id: r.pdu_session_id,
            dnn: r.dnn,
            upf: self.peers[upf].name.clone(),
            ue_addr,
            qfi: self.qfi,
            ul_teid: 0,
            ul_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dl_teid: 0,
            dl_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            cp_seid,
            up_seid: 0,
            gnb: gnb.name.clone(),
        };
        debug!(ue = %info.ue_id, psi = info.pdu_session_id, upf = %info.upf, %ue_addr, "session establishment");
        let s = Session {
            info,
            upf,
            dnn,
            gnb,
            state: SessionState::Establishing,
            restoring: false,
            n2_again: false,
            gen,
            pending: Some(req),
            started: now,
            usage: Usage::default(),
        };
        let msg = self.establishment(&s, None);
        self.by_seid.insert(cp_seid, key.clone());
        self.sessions.insert(key.clone(), s);
        self.send_request(
            now,
            upf,
            Message::session(0, 0, msg),
            TxnKind::Establish { key, gen },
        );
        Ok(())
    }

    /// Releases a session; answered with [`Action::ReleaseDone`].
    pub fn release_session(&mut self, now: Instant, req: ReqId, ue_id: &str, psi: u8) {
        let key = (ue_id.to_owned(), psi);
        let Some(s) = self.sessions.get_mut(&key) else {
            self.actions.push_back(Action::ReleaseDone {
                req,
                result: Err(SmfError::NotFound {
                    ue_id: ue_id.to_owned(),
                    psi,
                }),
            });
            return;
        };
        match s.state {
            SessionState::Active => {}
            SessionState::Lost => {
                // The UPF is unreachable or restarted: answer now, and ask it
                // (best effort) to delete what it may still hold.
                if let Some(s) = self.remove(&key) {
                    self.n2_delete(&s);
                    if s.info.up_seid != 0 {
                        self.send_cleanup(now, s.upf, s.info.up_seid);
                    }
                }
                self.metrics.sessions_released += 1;
                self.actions.push_back(Action::ReleaseDone {
                    req,
                    result: Ok(()),
                });
                return;
            }
            st => {
                self.actions.push_back(Action::ReleaseDone {
                    req,
                    result: Err(SmfError::Busy {
                        ue_id: ue_id.to_owned(),
                        psi,
                        state: st.name(),
                    }),
                });
                return;
            }
        }
        let gen = self.gen();
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.state = SessionState::Releasing;
        s.pending = Some(req);
        s.gen = gen;
        let (upf, up_seid) = (s.upf, s.info.up_seid);
        let snapshot = (s.gnb.clone(), s.info.dl_teid);
        self.actions.push_back(Action::N2Delete {
            gnb: snapshot.0,
            dl_teid: snapshot.1,
        });
        self.send_request(
            now,
            upf,
            Message::session(up_seid, 0, pfcp::SessionDeletionRequest::default()),
            TxnKind::Delete { key, gen },
        );
    }

    // ----- N2 input -----

    /// The gNB's answer to [`Action::N2Setup`].
    pub fn n2_setup_done(
        &mut self,
        now: Instant,
        key: &SessionKey,
        gen: u64,
        gnb: &GnbRef,
        result: Result<TunnelSetupResponse, String>,
    ) {
        let current = self
            .sessions
            .get(key)
            .is_some_and(|s| s.gen == gen && s.state == SessionState::WaitN2);
        if !current {
            if let Ok(r) = result {
                // The session went away (or moved on) meanwhile: the gNB's
                // tunnel is orphaned.
                debug!(?key, "stale N2 answer; deleting its tunnel");
                self.actions.push_back(Action::N2Delete {
                    gnb: gnb.clone(),
                    dl_teid: r.dl_teid,
                });
            }
            return;
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        match result {
            Ok(r) => {
                let changed = (s.info.dl_teid, s.info.dl_addr) != (r.dl_teid, r.dl_addr);
                s.info.dl_teid = r.dl_teid;
                s.info.dl_addr = r.dl_addr;
                if s.restoring && !changed {
                    // The establishment already forwarded to this F-TEID.
                    self.restored(key);
                    return;
                }
                s.state = SessionState::Modifying;
                let (upf, up_seid, gen) = (s.upf, s.info.up_seid, s.gen);
                let m = self.modification(key);
                self.send_request(
                    now,
                    upf,
                    Message::session(up_seid, 0, m),
                    TxnKind::Modify {
                        key: key.clone(),
                        gen,
                    },
                );
            }
            Err(msg) => {
                let e = SmfError::N2Failed {
                    gnb: s.gnb.name.clone(),
                    msg,
                };
                self.fail(now, key, e, false);
            }
        }
    }

    pub(super) fn on_established(
        &mut self,
        now: Instant,
        upf: usize,
        key: &SessionKey,
        gen: u64,
        r: pfcp::SessionEstablishmentResponse,
    ) {
        let stale = self
            .sessions
            .get(key)
            .is_none_or(|s| s.gen != gen || s.state != SessionState::Establishing);
        if stale {
            self.delete_if_orphan(now, upf, &r);
            return;
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let upf_name = self.peers[s.upf].name.clone();
        if !r.cause.is_accepted() {
            if r.cause == Cause::NoEstablishedPfcpAssociation {
                // It forgot us (restarted before we noticed): the UP
                // SEIDs we knew are not its any more.
                let upf = s.upf;
                self.peers[upf].lost_all = true;
                self.start_association(now, upf);
                let Some(s) = self.sessions.get_mut(key) else {
                    return;
                };
                if s.restoring {
                    s.state = SessionState::Lost;
                    return;
                }
            }
            let e = SmfError::UpfRejected {
                upf: upf_name,
                what: "Session Establishment",
                cause: r.cause.into(),
                offending_ie: r.offending_ie,
            };
            self.fail(now, key, e, false);
            return;
        }
        if let Some(f) = r.up_f_seid {
            s.info.up_seid = f.seid;
        }
        let ul = r
            .created_pdrs
            .iter()
            .find(|c| c.pdr_id == PDR_UL)
            .and_then(|c| c.local_f_teid);
        let ul = match ul {
            Some(pfcp::FTeid::Assigned {
                teid,
                ipv4: Some(a),
                ..
            }) => Some((teid, IpAddr::V4(a))),
            Some(pfcp::FTeid::Assigned {
                teid,
                ipv6: Some(a),
                ..
            }) => Some((teid, IpAddr::V6(a))),
            _ => None,
        };
        let (Some(_), Some((ul_teid, ul_addr))) = (r.up_f_seid, ul) else {
            let e = SmfError::UpfBadAnswer {
                upf: upf_name,
                msg: "Session Establishment Response without UP F-SEID or Created PDR F-TEID"
                    .into(),
            };
            self.fail(now, key, e, true);
            return;
        };
        let same_ul = (s.info.ul_teid, s.info.ul_addr) == (ul_teid, ul_addr);
        s.info.ul_teid = ul_teid;
        s.info.ul_addr = ul_addr;
        if s.restoring && same_ul && !s.n2_again {
            self.restored(key);
            return;
        }
        s.state = SessionState::WaitN2;
        // A gNB that restarted lost the old tunnel (and may have given its
        // TEID to another one): nothing to replace then.
        let replace = (s.restoring && !s.n2_again).then_some(s.info.dl_teid);
        s.n2_again = false;
        self.actions.push_back(Action::N2Setup(N2Request {
            key: key.clone(),
            gen,
            gnb: s.gnb.clone(),
            setup: TunnelSetup {
                ue_id: s.info.ue_id.clone(),
                pdu_session_id: s.info.pdu_session_id,
                ue_addr: s.info.ue_addr,
                ul_teid,
                ul_addr,
                qfi: s.info.qfi,
            },
            replace_dl_teid: replace,
        }));
    }

    pub(super) fn activated(&mut self, now: Instant, key: &SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.state = SessionState::Active;
        let secs = now.saturating_duration_since(s.started).as_secs_f64();
        self.metrics.record_setup(secs);
        info!(ue = %s.info.ue_id, psi = s.info.pdu_session_id, upf = %s.info.upf, ue_addr = %s.info.ue_addr,
              ul_teid = s.info.ul_teid, dl_teid = s.info.dl_teid, "session up");
        if let Some(req) = s.pending.take() {
            self.actions.push_back(Action::CreateDone {
                req,
                result: Ok(s.info.clone()),
            });
        }
    }

    pub(super) fn restored(&mut self, key: &SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.state = SessionState::Active;
        s.restoring = false;
        self.metrics.sessions_restored += 1;
        info!(ue = %s.info.ue_id, psi = s.info.pdu_session_id, upf = %s.info.upf, "session restored");
    }

    pub(super) fn released(&mut self, key: &SessionKey, gen: u64, reports: &[pfcp::UsageReport]) {
        if self.sessions.get(key).is_none_or(|s| s.gen != gen) {
            return;
        }
        if let Some(mut s) = self.remove(key) {
            s.usage.add(reports);
            self.metrics.sessions_released += 1;
            info!(ue = %s.info.ue_id, psi = s.info.pdu_session_id, ul_bytes = s.usage.ul_bytes,
                  dl_bytes = s.usage.dl_bytes, "session released");
            if let Some(req) = s.pending {
                self.actions.push_back(Action::ReleaseDone {
                    req,
                    result: Ok(()),
                });
            }
        }
    }

    /// A setup step failed: undo everything and answer the API.
    /// `pfcp_made`: the UPF holds the session (delete it); the gNB's tunnel
    /// exists when we are past WaitN2.
    pub(super) fn fail(&mut self, now: Instant, key: &SessionKey, e: SmfError, pfcp_made: bool) {
        let Some(s) = self.sessions.get(key) else {
            return;
        };
        let gnb_made = s.state == SessionState::Modifying;
        let (upf, up_seid, restoring) = (s.upf, s.info.up_seid, s.restoring);
        warn!(?key, "session setup failed: {e}");
        let Some(s) = self.remove(key) else {
            return;
        };
        if gnb_made || (restoring && s.info.dl_teid != 0) {
            self.n2_delete(&s);
        }
        if (pfcp_made || s.state == SessionState::WaitN2 || gnb_made) && up_seid != 0 {
            self.send_cleanup(now, upf, up_seid);
        }
        self.metrics.sessions_failed += 1;
        if let Some(req) = s.pending {
            self.actions.push_back(Action::CreateDone {
                req,
                result: Err(e),
            });
        }
    }

    pub(super) fn n2_delete(&mut self, s: &Session) {
        if s.info.dl_teid != 0 {
            self.actions.push_back(Action::N2Delete {
                gnb: s.gnb.clone(),
                dl_teid: s.info.dl_teid,
            });
        }
    }

    /// Takes a session out of the registry and frees its address and SEID.
    fn remove(&mut self, key: &SessionKey) -> Option<Session> {
        let s = self.sessions.remove(key)?;
        self.by_seid.remove(&s.info.cp_seid);
        self.peers[s.upf].dnns[s.dnn].pool.free(s.info.ue_addr);
        Some(s)
    }

    pub(super) fn gen(&mut self) -> u64 {
        let g = self.next_gen;
        self.next_gen += 1;
        g
    }

    fn alloc_seid(&mut self) -> u64 {
        loop {
            let s = self.next_seid;
            self.next_seid = self.next_seid.wrapping_add(1).max(1);
            if !self.by_seid.contains_key(&s) {
                return s;
            }
        }
    }
}
