//! Crash consistency with the gNBs and across the SMF's own restarts
//! (issue 13 item 7).
//!
//! - **Our Recovery Time Stamp is never one of a previous life.** It has
//!   the resolution of a second; an SMF killed and started again within
//!   the same second would announce the same stamp, and the UPF would
//!   keep the sessions of the dead life. [`recovery_stamp`] takes the next
//!   second, and [`Smf::hold_until`] keeps the SMF silent on N4 (no
//!   association, PFCP input ignored; peers retransmit) until that second
//!   has begun: a life only speaks once the wall clock reached its stamp,
//!   and the next life starts later, so its stamp is larger.
//! - **After our restart, the gNBs hold tunnels nobody knows.** The first
//!   time the SMF runs its timers it audits each gNB it knows
//!   ([`Action::N2Audit`]: the driver lists the gNB's tunnels); every
//!   tunnel that no session of ours accounts for is deleted
//!   ([`Smf::n2_audit_done`]). An audit that fails is retried every
//!   heartbeat interval.
//! - **After a gNB's restart, our sessions have no tunnel.** A gNB tells
//!   the SMF when it starts ([`Smf::gnb_up`], `POST /n2/gnbs`); every
//!   session through it gets its tunnel again (N2 setup with the same
//!   uplink F-TEID; a new downlink F-TEID goes to the UPF by Session
//!   Modification), so the sessions stay and carry traffic again.

use super::session::Session;
use super::{Action, N2Request, SessionKey, SessionState, Smf};
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};
use wire::ctl::{GnbRef, TunnelSetup};

/// The Recovery Time Stamp (NTP seconds) of an SMF started at `wall`: the
/// next whole second, and how long until it begins.
pub fn recovery_stamp(wall: SystemTime) -> (u32, Duration) {
    let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let wait = Duration::from_secs(1) - Duration::from_nanos(u64::from(since.subsec_nanos()));
    (wire::pfcp::ntp_seconds(wall + wait), wait)
}

/// A tunnel as a gNB's `GET /tunnels` lists it (the fields the audit uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GnbTunnel {
    pub ue_id: String,
    pub pdu_session_id: u8,
    pub dl_teid: u32,
    /// Replaced by a newer tunnel of the session, until its End Marker.
    #[serde(default)]
    pub draining: bool,
}

/// A gNB audit waiting for its time.
#[derive(Debug, Clone)]
pub(super) struct Audit {
    pub(super) gnb: GnbRef,
    pub(super) due: Instant,
}

impl Smf {
    /// Nothing on N4 before `t` (see the module documentation).
    pub fn hold_until(&mut self, t: Instant) {
        self.quiet_until = Some(t);
        for p in &mut self.peers {
            p.next_timer = p.next_timer.max(t);
        }
        for a in &mut self.audits {
            a.due = a.due.max(t);
        }
    }

    /// Whether N4 must stay silent at `now`.
    pub(super) fn quiet(&self, now: Instant) -> bool {
        self.quiet_until.is_some_and(|t| now < t)
    }

    /// Emits the audits due at `now`.
    pub(super) fn audits_due(&mut self, now: Instant) {
        let (due, later): (Vec<Audit>, Vec<Audit>) =
            self.audits.drain(..).partition(|a| a.due <= now);
        self.audits = later;
        for a in due {
            self.actions.push_back(Action::N2Audit { gnb: a.gnb });
        }
    }

    /// The tunnels gNB `gnb` listed for [`Action::N2Audit`] (or why it
    /// could not): those no session accounts for are deleted.
    pub fn n2_audit_done(
        &mut self,
        now: Instant,
        gnb: &GnbRef,
        result: Result<Vec<GnbTunnel>, String>,
    ) {
        let tunnels = match result {
            Ok(t) => t,
            Err(e) => {
                warn!(gnb = %gnb.name, "cannot list the gNB's tunnels ({e}); retrying in {:?}", self.hb);
                self.audits.push(Audit {
                    gnb: gnb.clone(),
                    due: now + self.hb,
                });
                return;
            }
        };
        let mut deleted = 0;
        for t in &tunnels {
            let key = (t.ue_id.clone(), t.pdu_session_id);
            let known = t.draining
                || self.sessions.get(&key).is_some_and(|s| {
                    s.gnb.name == gnb.name
                        && (s.info.dl_teid == t.dl_teid || s.state == SessionState::WaitN2)
                });
            if !known {
                deleted += 1;
                self.actions.push_back(Action::N2Delete {
                    gnb: gnb.clone(),
                    dl_teid: t.dl_teid,
                });
            }
        }
        self.metrics.n2_audit_deleted += deleted;
        info!(gnb = %gnb.name, tunnels = tunnels.len(), deleted, "gNB audited: tunnels no session accounts for deleted");
    }

    /// gNB `gnb` (re)started and holds no tunnel: every session through it
    /// gets its tunnel again.
    pub fn gnb_up(&mut self, _now: Instant, gnb: &GnbRef) {
        let keys: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.gnb.name == gnb.name)
            .map(|(k, _)| k.clone())
            .collect();
        let mut again = 0;
        for key in keys {
            let gen = self.gen();
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            s.gnb = gnb.clone();
            match s.state {
                SessionState::Active => {
                    s.gen = gen;
                    s.restoring = true;
                    again += 1;
                    self.n2_again(&key);
                }
                SessionState::WaitN2 => {
                    // The answer of the call in flight is stale now (a
                    // tunnel it made at the new gNB is deleted then).
                    s.gen = gen;
                    again += 1;
                    self.n2_again(&key);
                }
                // Their tunnel is set up (again) when the UPF answers.
                SessionState::Modifying | SessionState::Lost => s.n2_again = true,
                SessionState::Establishing => s.n2_again = s.restoring,
                SessionState::Releasing => {}
            }
        }
        self.metrics.gnb_restarts += 1;
        info!(gnb = %gnb.name, n2_api = %gnb.n2_api, sessions = again, "gNB up: its sessions get their tunnels again");
    }

    /// Asks session `key`'s gNB for a tunnel again (state WaitN2).
    pub(super) fn n2_again(&mut self, key: &SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.n2_again = false;
        s.state = SessionState::WaitN2;
        // Its old downlink TEID is gone with the gNB's previous life (and
        // may be another tunnel's now): never deleted, never kept.
        s.info.dl_teid = 0;
        let r = n2_request(key, s);
        self.actions.push_back(Action::N2Setup(r));
    }
}

/// The N2 setup of session `s` (no old tunnel to replace: its gNB lost it).
fn n2_request(key: &SessionKey, s: &Session) -> N2Request {
    N2Request {
        key: key.clone(),
        gen: s.gen,
        gnb: s.gnb.clone(),
        setup: TunnelSetup {
            ue_id: s.info.ue_id.clone(),
            pdu_session_id: s.info.pdu_session_id,
            ue_addr: s.info.ue_addr,
            ul_teid: s.info.ul_teid,
            ul_addr: s.info.ul_addr,
            qfi: s.info.qfi,
        },
        replace_dl_teid: None,
    }
}
