//! The manager's records: services, running migrations, answers still owed
//! for migrations already rolled back, and the wall clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wire::ctl::migration::{
    Endpoint, MigrationKind, MigrationRecord, Phase, ServiceInfo, StreamParams,
};
use wire::ctl::{GnbRef, SessionInfo};

/// One edge's side of a service, with what the UE needs to play it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Side {
    pub edge: String,
    pub psi: u8,
    pub instance: String,
    pub input: SocketAddr,
    pub sdp: Option<String>,
}

impl Side {
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            edge: self.edge.clone(),
            pdu_session_id: self.psi,
            instance: self.instance.clone(),
        }
    }
}

/// The old source, kept until its countdown ends.
#[derive(Clone, Debug)]
pub(super) struct Copilot {
    pub side: Side,
    pub deadline: Instant,
    /// The migration that made it copilot (its events and record).
    pub mig: u64,
}

/// The service record of one UE.
#[derive(Clone, Debug)]
pub(super) struct Service {
    pub ue_id: String,
    pub app: String,
    pub account: String,
    pub token: String,
    pub params: StreamParams,
    pub stream_port: u16,
    pub gnb: GnbRef,
    pub serving: Side,
    pub copilot: Option<Copilot>,
    pub migrating: Option<u64>,
}

impl Service {
    pub fn info(&self, now: Instant) -> ServiceInfo {
        ServiceInfo {
            ue_id: self.ue_id.clone(),
            app: self.app.clone(),
            account: self.account.clone(),
            serving: self.serving.endpoint(),
            copilot: self.copilot.as_ref().map(|c| c.side.endpoint()),
            countdown_ms: self
                .copilot
                .as_ref()
                .map(|c| c.deadline.saturating_duration_since(now).as_millis() as u64),
            migrating: self.migrating,
        }
    }
}

/// Where a running migration stands.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// Full: the session and the pull run in parallel.
    Preparing {
        session: Option<SessionInfo>,
        pulled: bool,
    },
    /// Full: the instance is being started.
    Starting { session: SessionInfo },
    /// The UE was told `StreamReady` for `dest`; it has to switch.
    Switching { dest: Side },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Preparing { .. } => "preparing",
            Step::Starting { .. } => "starting",
            Step::Switching { .. } => "switching",
        }
    }

    /// What a timeout of this step waited for.
    pub fn waiting_for(&self) -> String {
        match self {
            Step::Preparing { session, pulled } => {
                let mut w = Vec::new();
                if session.is_none() {
                    w.push("the session");
                }
                if !pulled {
                    w.push("the pull");
                }
                w.join(" and ")
            }
            Step::Starting { .. } => "the instance".into(),
            Step::Switching { .. } => "the UE's switch".into(),
        }
    }
}

/// A migration in progress.
#[derive(Clone, Debug)]
pub(super) struct Running {
    pub rec: MigrationRecord,
    pub started: Instant,
    /// The destination's PDU session id (the copilot's for a switch-only).
    pub psi: u8,
    pub step: Step,
    pub deadline: Instant,
}

impl Running {
    pub fn kind(&self) -> MigrationKind {
        self.rec.kind
    }

    /// Record a phase reached at `now`.
    pub fn phase(&mut self, now: Instant, name: &str) -> f64 {
        let ms = ms(now.saturating_duration_since(self.started));
        push_phase(&mut self.rec, name, ms);
        ms
    }
}

pub(super) fn push_phase(rec: &mut MigrationRecord, name: &str, ms: f64) {
    rec.phases.push(Phase {
        phase: name.into(),
        ms,
    });
}

/// Answers still owed to a migration that was rolled back: whatever they
/// bring is undone.
#[derive(Clone, Debug)]
pub(super) struct Owed {
    pub ue_id: String,
    pub edge: String,
    pub psi: u8,
    pub session: bool,
    pub instance: bool,
}

/// Monotonic to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    epoch: Instant,
    wall_ns: u64,
}

impl Clock {
    pub fn new(now: Instant, wall: SystemTime) -> Clock {
        let wall_ns = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock {
            epoch: now,
            wall_ns,
        }
    }

    /// `now` as ns of CLOCK_REALTIME.
    pub fn ns(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.epoch) {
            Some(d) => self.wall_ns.saturating_add(d.as_nanos() as u64),
            None => self
                .wall_ns
                .saturating_sub((self.epoch - now).as_nanos() as u64),
        }
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}
