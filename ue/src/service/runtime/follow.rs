//! `POST /follow`: the UE shows another edge's stream as soon as it shows
//! frames, without the SMF (the state-copy baselines; see
//! [`FollowRequest`]). The selector is the play's: the testbed starts such
//! plays with the threshold and the slide off (the first destination frame
//! is shown at once) and a give-up longer than the copy.

use std::time::Instant;

use tracing::info;

use super::{bad, migration, Service, State};
use crate::service::api::{FollowRequest, UeMigration, UeMigrationState};
use crate::service::ServiceError;
use crate::stream::realtime_ns;
use crate::stream::screen::ScreenCmd;

/// Follows' ids start here (the SMF's are small counters).
const LOCAL_ID_BASE: u64 = 1 << 40;

impl Service {
    /// Whether migration `id` is a follow.
    pub(super) fn is_local(&self, id: u64) -> bool {
        self.state()
            .migrations
            .iter()
            .any(|m| m.id == id && m.local)
    }

    /// Begins following `req.edge`, or gives a follow begun before its
    /// destination's input.
    pub async fn follow(&self, req: FollowRequest) -> Result<UeMigration, ServiceError> {
        if let Some(input) = req.input {
            let mut st = self.state();
            if let Some(id) = st.awaiting_input {
                let to = st
                    .migrations
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| m.to.clone());
                if to.as_deref() == Some(req.edge.as_str()) {
                    st.awaiting_input = None;
                    set_input(&mut st, id, &req.edge, input, self.req.selector.resend);
                    info!(id, edge = %req.edge, %input, "follow: destination input known");
                    return Ok(migration(&mut st, id, || unreachable_blank(id)).clone());
                }
            }
        }
        {
            let st = self.state();
            if let Some(id) = st.current {
                return Err(ServiceError::Refused {
                    status: 409,
                    reason: format!("migration {id} is in progress"),
                    field: None,
                });
            }
            if st.serving == req.edge {
                return Err(bad("edge", format!("{} is shown already", req.edge)));
            }
        }
        let session = self
            .sm
            .get(req.psi)
            .await
            .ok_or_else(|| bad("psi", format!("the UE has no session {}", req.psi)))?;
        // A stream left from an earlier stay there holds that instance's
        // last frame: a fresh one.
        if self.state().streams.contains_key(&req.edge) {
            self.drop_stream(&req.edge);
        }
        self.open_stream(&req.edge, req.psi, session.ue_addr)?;
        let (t0, ns) = (Instant::now(), realtime_ns());
        let m = {
            let mut st = self.state();
            let id = LOCAL_ID_BASE + st.migrations.len() as u64;
            let from = st.serving.clone();
            st.current = Some(id);
            st.requested_at.insert(id, t0);
            let m = migration(&mut st, id, || UeMigration {
                from,
                to: req.edge.clone(),
                local: true,
                requested_ns: ns,
                ..super::blank(id)
            })
            .clone();
            match req.input {
                Some(input) => set_input(&mut st, id, &req.edge, input, self.req.selector.resend),
                None => st.awaiting_input = Some(id),
            }
            m
        };
        self.screen(ScreenCmd::Begin(req.edge.as_str().into()));
        info!(id = m.id, from = %m.from, to = %m.to, psi = req.psi, "following another edge's stream");
        Ok(m)
    }

    /// The screen shows the followed stream alone: the one left (a stopped
    /// source) goes, the follow is complete.
    pub(super) fn followed(&self, id: u64, chief: &str, frames: u32) {
        let old = {
            let mut st = self.state();
            let old = std::mem::replace(&mut st.serving, chief.to_string());
            let m = migration(&mut st, id, || unreachable_blank(id));
            m.frames_blended = frames;
            m.state = UeMigrationState::Completed;
            if st.current == Some(id) {
                st.current = None;
            }
            old
        };
        info!(id, from = %old, to = %chief, "follow complete");
        self.drop_stream(&old);
    }
}

/// Sets the input of the followed stream; if the switch was decided, the
/// bot's input moves there now.
fn set_input(st: &mut State, id: u64, edge: &str, input: std::net::SocketAddr, resend: usize) {
    let Some(s) = st.streams.get_mut(edge) else {
        return;
    };
    s.input = Some(input);
    let sock = s.sock.clone();
    let decided = st
        .migrations
        .iter()
        .any(|m| m.id == id && m.decided_ns.is_some());
    if decided && !st.input_switch.contains_key(&id) {
        if let Some(bot) = &st.bot {
            let g = bot.target().switch_to(input, sock, resend);
            st.input_switch.insert(id, g);
        }
    }
}

/// The record of a follow always exists when these run.
fn unreachable_blank(id: u64) -> UeMigration {
    UeMigration {
        local: true,
        ..super::blank(id)
    }
}
