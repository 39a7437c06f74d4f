//! CSM's migration manager (DESIGN.md section 5, paper section III-C) as an
//! I/O-free state machine, composed with the SMF core by the daemon.
//!
//! [`Manager`] holds the edges and one service record per UE (serving edge,
//! copilot edge and its countdown, the migration in progress). It reads no
//! clock and opens no socket: every input takes `now`, what it wants done
//! comes out of [`Manager::poll_action`] ([`Action`]: set up or release a
//! PDU session through the core, pull, start or stop at an edge agent,
//! notify the UE), and [`Manager::poll_timeout`] says when
//! [`Manager::handle_timeout`] is due.
//!
//! A full migration: `SetupSession` and `Pull` in parallel; the UE is told
//! `SessionReady` as soon as the session is up; with both done,
//! `StartInstance` streaming to the new session's address; once started,
//! `StreamReady`; the UE reports its switch; the old serving edge becomes
//! copilot for the countdown (`Completed`); at zero its session is released
//! and its instance stopped (`Released`). A migration back to a copilot
//! still inside its countdown is only a stream switch (`StreamReady` for the
//! copilot at once) and restarts the countdown. A full migration to a third
//! edge releases an older copilot first.
//!
//! Any failure (session, pull or instance refused, setup or switch timeout,
//! the UE abandoning or leaving) rolls back what was made for the
//! destination, tells the UE `Abandoned`, and leaves the source untouched.
//! Answers that arrive for a migration already rolled back are undone too
//! (a late session is released, a late instance stopped).

mod state;
mod types;
mod undo;

#[cfg(test)]
mod tests;

pub use types::{Action, EdgeConfig, MigrationConfig, MigrationError, StartedInstance};

use state::{ms, Clock, Copilot, Owed, Running, Service, Side, Step};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};
use undo::Answer;
use wire::ctl::migration::{
    AbandonReport, MigrationAccepted, MigrationKind, MigrationRecord, MigrationRequest,
    ServiceInfo, ServiceRegistration, SwitchReport, UeEventKind,
};
use wire::ctl::{GnbRef, SessionInfo};

/// Highest PDU session id (TS 24.007).
const MAX_PSI: u8 = 15;

struct Edge {
    cfg: EdgeConfig,
    latency: Option<Duration>,
}

/// The migration manager.
pub struct Manager {
    cfg: MigrationConfig,
    edges: Vec<Edge>,
    services: BTreeMap<String, Service>,
    running: BTreeMap<u64, Running>,
    owed: BTreeMap<u64, Owed>,
    history: VecDeque<MigrationRecord>,
    actions: VecDeque<Action>,
    next_id: u64,
    clock: Clock,
}

impl Manager {
    /// A manager for these edges. `now` and `wall` are the same moment on
    /// the monotonic and the wall clock (record and event times derive
    /// from them). Edge names must be unique and non-empty.
    pub fn new(
        cfg: MigrationConfig,
        edges: Vec<EdgeConfig>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Manager, MigrationError> {
        for (i, e) in edges.iter().enumerate() {
            if e.name.is_empty() {
                return Err(MigrationError::Config {
                    field: format!("edge[{i}].name"),
                    msg: "empty".into(),
                });
            }
            if edges[..i].iter().any(|o| o.name == e.name) {
                return Err(MigrationError::Config {
                    field: format!("edge[{i}].name"),
                    msg: format!("`{}` is configured twice", e.name),
                });
            }
        }
        Ok(Manager {
            cfg,
            edges: edges
                .into_iter()
                .map(|cfg| Edge { cfg, latency: None })
                .collect(),
            services: BTreeMap::new(),
            running: BTreeMap::new(),
            owed: BTreeMap::new(),
            history: VecDeque::new(),
            actions: VecDeque::new(),
            next_id: 1,
            clock: Clock::new(now, wall),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &MigrationConfig {
        &self.cfg
    }

    /// A configured edge.
    pub fn edge(&self, name: &str) -> Option<&EdgeConfig> {
        self.edges
            .iter()
            .find(|e| e.cfg.name == name)
            .map(|e| &e.cfg)
    }

    /// The configured edges with their latency measure, in configuration order.
    pub fn edges(&self) -> impl Iterator<Item = (&EdgeConfig, Option<Duration>)> {
        self.edges.iter().map(|e| (&e.cfg, e.latency))
    }

    /// The latency from the core to an edge (`None`: unreachable or not
    /// measured); a request without destination picks the lowest.
    pub fn set_latency(
        &mut self,
        edge: &str,
        latency: Option<Duration>,
    ) -> Result<(), MigrationError> {
        let e = self
            .edges
            .iter_mut()
            .find(|e| e.cfg.name == edge)
            .ok_or_else(|| MigrationError::UnknownEdge {
                field: "edge",
                edge: edge.into(),
            })?;
        e.latency = latency;
        Ok(())
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Manager::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let migs = self.running.values().map(|r| r.deadline);
        let copilots = self
            .services
            .values()
            .filter(|s| !self.copilot_held(s))
            .filter_map(|s| s.copilot.as_ref().map(|c| c.deadline));
        migs.chain(copilots).min()
    }

    /// The service records, by UE id.
    pub fn services(&self, now: Instant) -> Vec<ServiceInfo> {
        self.services.values().map(|s| s.info(now)).collect()
    }

    /// One UE's service record.
    pub fn service(&self, now: Instant, ue_id: &str) -> Option<ServiceInfo> {
        self.services.get(ue_id).map(|s| s.info(now))
    }

    /// The finished migrations kept (oldest first), then the running ones.
    pub fn migrations(&self) -> Vec<MigrationRecord> {
        let running = self.running.values().map(|r| r.rec.clone());
        self.history.iter().cloned().chain(running).collect()
    }

    /// One migration's record, if running or still kept.
    pub fn migration(&self, id: u64) -> Option<MigrationRecord> {
        match self.running.get(&id) {
            Some(r) => Some(r.rec.clone()),
            None => self.history.iter().find(|r| r.id == id).cloned(),
        }
    }

    /// A UE registers the service it plays: the serving edge's session and
    /// instance (whose input port is `input_port` at the edge's
    /// `app_server`), reached through `gnb`. A registration again replaces
    /// the record, unless a migration runs or a copilot is kept.
    pub fn register(
        &mut self,
        now: Instant,
        reg: ServiceRegistration,
        gnb: GnbRef,
        input_port: u16,
    ) -> Result<ServiceInfo, MigrationError> {
        let bad = |field, msg: &str| {
            Err(MigrationError::BadRequest {
                field,
                msg: msg.into(),
            })
        };
        if reg.ue_id.is_empty() {
            return bad("ue_id", "empty");
        }
        if reg.app.is_empty() {
            return bad("app", "empty");
        }
        if reg.instance.is_empty() {
            return bad("instance", "empty");
        }
        if !(1..=MAX_PSI).contains(&reg.pdu_session_id) {
            return bad("pdu_session_id", "must be 1..=15");
        }
        if reg.stream_port == 0 {
            return bad("stream_port", "must not be 0");
        }
        let edge = self
            .edge(&reg.edge)
            .ok_or_else(|| MigrationError::UnknownEdge {
                field: "edge",
                edge: reg.edge.clone(),
            })?;
        let input = SocketAddr::new(edge.app_server, input_port);
        if let Some(old) = self.services.get(&reg.ue_id) {
            if let Some(id) = old.migrating {
                return Err(MigrationError::InProgress {
                    ue_id: reg.ue_id,
                    id,
                });
            }
            if let Some(c) = &old.copilot {
                return Err(MigrationError::HasCopilot {
                    ue_id: reg.ue_id,
                    edge: c.side.edge.clone(),
                    left_ms: c.deadline.saturating_duration_since(now).as_millis() as u64,
                });
            }
        }
        let svc = Service {
            serving: Side {
                edge: reg.edge,
                psi: reg.pdu_session_id,
                instance: reg.instance,
                input,
                sdp: None,
            },
            ue_id: reg.ue_id,
            app: reg.app,
            account: reg.account,
            token: reg.token,
            params: reg.params,
            stream_port: reg.stream_port,
            gnb,
            copilot: None,
            migrating: None,
        };
        info!(ue = %svc.ue_id, app = %svc.app, edge = %svc.serving.edge,
            psi = svc.serving.psi, instance = %svc.serving.instance, "service registered");
        let info = svc.info(now);
        self.services.insert(svc.ue_id.clone(), svc);
        Ok(info)
    }

    /// A UE asks to migrate.
    pub fn request(
        &mut self,
        now: Instant,
        req: MigrationRequest,
    ) -> Result<MigrationAccepted, MigrationError> {
        let svc = self.service_of(&req.ue_id)?;
        if let Some(id) = svc.migrating {
            return Err(MigrationError::InProgress {
                ue_id: req.ue_id,
                id,
            });
        }
        let from = svc.serving.edge.clone();
        let to = match req.to {
            Some(to) => {
                if self.edge(&to).is_none() {
                    return Err(MigrationError::UnknownEdge {
                        field: "to",
                        edge: to,
                    });
                }
                if to == from {
                    return Err(MigrationError::SameEdge {
                        ue_id: req.ue_id,
                        edge: to,
                    });
                }
                to
            }
            None => self.pick(&from)?,
        };
        // A copilot whose countdown has run out is released first, as its
        // timeout would have done.
        if svc.copilot.as_ref().is_some_and(|c| c.deadline <= now) {
            self.release_copilot(now, &req.ue_id);
        }
        let svc = self.service_of(&req.ue_id)?;
        let back = svc.copilot.as_ref().filter(|c| c.side.edge == to);
        let kind = match back {
            Some(_) => MigrationKind::SwitchOnly,
            None => MigrationKind::Full,
        };
        let psi = match back {
            Some(c) => c.side.psi,
            None => self
                .free_psi(svc)
                .ok_or_else(|| MigrationError::NoSessionId {
                    ue_id: req.ue_id.clone(),
                })?,
        };
        if kind == MigrationKind::Full && svc.copilot.is_some() {
            self.release_copilot(now, &req.ue_id);
        }
        let id = self.next_id;
        self.next_id += 1;
        let rec = MigrationRecord {
            id,
            ue_id: req.ue_id.clone(),
            from: from.clone(),
            to: to.clone(),
            kind,
            state: "running".into(),
            reason: None,
            requested_ns: self.clock.ns(now),
            phases: Vec::new(),
            ssim: None,
            setup_ms: None,
            instance_start_ms: None,
        };
        let mut run = Running {
            rec,
            started: now,
            psi,
            step: Step::Preparing {
                session: None,
                pulled: false,
            },
            deadline: now + self.cfg.setup_timeout(),
        };
        run.phase(now, "requested");
        info!(mig = id, ue = %req.ue_id, %from, %to, ?kind, psi, "migration requested");
        if let Some(s) = self.services.get_mut(&req.ue_id) {
            s.migrating = Some(id);
        }
        self.running.insert(id, run);
        match kind {
            MigrationKind::Full => self.start_full(id, &req.ue_id, &to, psi),
            MigrationKind::SwitchOnly => {
                let dest = self
                    .services
                    .get(&req.ue_id)
                    .and_then(|s| s.copilot.as_ref())
                    .map(|c| c.side.clone());
                if let Some(dest) = dest {
                    self.stream_ready(now, id, dest);
                }
            }
        }
        Ok(MigrationAccepted { id, from, to, kind })
    }

    /// The parallel session of `mig` is up.
    pub fn session_ready(&mut self, now: Instant, mig: u64, session: SessionInfo) {
        let Some(run) = self.running.get_mut(&mig) else {
            self.late_session(mig, &session);
            return;
        };
        let Step::Preparing {
            session: s @ None, ..
        } = &mut run.step
        else {
            // A repeated answer: the session is this migration's already.
            warn!(
                mig,
                step = run.step.name(),
                psi = session.pdu_session_id,
                "session ready out of turn: ignored"
            );
            return;
        };
        *s = Some(session.clone());
        let setup = run.phase(now, "session_ready");
        run.rec.setup_ms = Some(setup);
        let (ue_id, to) = (run.rec.ue_id.clone(), run.rec.to.clone());
        info!(mig, ue = %ue_id, addr = %session.ue_addr, setup_ms = setup, "parallel session up");
        self.notify(
            now,
            &ue_id,
            mig,
            UeEventKind::SessionReady { edge: to, session },
        );
        self.maybe_start(mig);
    }

    /// The parallel session of `mig` could not be set up.
    pub fn session_failed(&mut self, now: Instant, mig: u64, reason: &str) {
        if let Some(Step::Preparing { session: None, .. }) = self.running.get(&mig).map(|r| &r.step)
        {
            let upf = self.upf_of(mig);
            self.fail(now, mig, format!("session at {upf} failed: {reason}"));
        }
        self.settle(mig, Answer::Session);
    }

    /// The destination edge of `mig` has the application.
    pub fn pulled(&mut self, now: Instant, mig: u64) {
        if let Some(run) = self.running.get_mut(&mig) {
            if let Step::Preparing {
                pulled: p @ false, ..
            } = &mut run.step
            {
                *p = true;
                let t = run.phase(now, "pulled");
                info!(mig, edge = %run.rec.to, ms = t, "application pulled");
                self.maybe_start(mig);
            }
        }
    }

    /// The destination edge of `mig` could not get the application.
    pub fn pull_failed(&mut self, now: Instant, mig: u64, reason: &str) {
        let Some(run) = self.running.get(&mig) else {
            return;
        };
        if let Step::Preparing { pulled: false, .. } = run.step {
            let to = run.rec.to.clone();
            self.fail(now, mig, format!("pull at {to} failed: {reason}"));
        }
    }

    /// The destination instance of `mig` runs and streams.
    pub fn instance_started(&mut self, now: Instant, mig: u64, started: StartedInstance) {
        let Some(run) = self.running.get_mut(&mig) else {
            self.late_instance(mig, started.instance);
            return;
        };
        let Step::Starting { session } = &run.step else {
            let repeated = matches!(&run.step, Step::Switching { dest }
                if dest.instance == started.instance && dest.edge == run.rec.to);
            warn!(mig, step = run.step.name(), instance = %started.instance, repeated,
                "instance started out of turn");
            if !repeated {
                let edge = run.rec.to.clone();
                self.stop_instance(&edge, started.instance);
            }
            return;
        };
        let psi = session.pdu_session_id;
        run.phase(now, "instance_ready");
        run.rec.instance_start_ms = started.start_ms;
        let edge = run.rec.to.clone();
        let Some(ec) = self.edge(&edge) else {
            return; // edges are never removed: the request checked it
        };
        let dest = Side {
            input: SocketAddr::new(ec.app_server, started.input_port),
            edge,
            psi,
            instance: started.instance,
            sdp: started.sdp,
        };
        info!(mig, edge = %dest.edge, instance = %dest.instance, input = %dest.input,
            start_ms = ?started.start_ms, "destination instance started");
        self.stream_ready(now, mig, dest);
    }

    /// The destination instance of `mig` failed to start, or died before
    /// the switch (its agent answered an error or is gone).
    pub fn instance_failed(&mut self, now: Instant, mig: u64, reason: &str) {
        if let Some(run) = self.running.get(&mig) {
            let to = run.rec.to.clone();
            match (&run.step, run.kind()) {
                (Step::Starting { .. }, _) => {
                    self.fail(now, mig, format!("instance start at {to} failed: {reason}"))
                }
                (Step::Switching { .. }, MigrationKind::Full) => {
                    self.fail(now, mig, format!("instance at {to} failed: {reason}"))
                }
                _ => {
                    warn!(mig, step = run.step.name(), %reason, "instance failure out of turn: ignored")
                }
            }
        }
        self.settle(mig, Answer::Instance);
    }

    /// The UE switched to the destination of `mig`.
    pub fn switched(
        &mut self,
        now: Instant,
        mig: u64,
        report: SwitchReport,
    ) -> Result<(), MigrationError> {
        let run = self.running_for(mig, &report.ue_id)?;
        let Step::Switching { dest } = &run.step else {
            return Err(MigrationError::NotReady {
                id: mig,
                step: run.step.name(),
            });
        };
        let dest = dest.clone();
        let Some(mut run) = self.running.remove(&mig) else {
            return Ok(()); // running_for found it just above
        };
        run.rec.ssim = report.ssim;
        let t = run.phase(now, "switched");
        run.phase(now, "completed");
        run.rec.state = "completed".into();
        info!(mig, ue = %report.ue_id, to = %dest.edge, ms = t, ssim = ?report.ssim, "migration completed");
        let countdown = self.cfg.countdown();
        let ue_id = run.rec.ue_id.clone();
        let mut stale = None;
        if let Some(svc) = self.services.get_mut(&ue_id) {
            svc.migrating = None;
            let old = std::mem::replace(&mut svc.serving, dest.clone());
            if run.kind() == MigrationKind::Full {
                stale = svc.copilot.take();
            }
            svc.copilot = Some(Copilot {
                side: old,
                deadline: now + countdown,
                mig,
            });
        }
        if let Some(c) = stale {
            // A full migration released the copilot at its request.
            warn!(mig, edge = %c.side.edge, "copilot still kept at completion: released");
            self.release_side(&ue_id, &c.side);
        }
        self.finish(run);
        self.notify(
            now,
            &ue_id,
            mig,
            UeEventKind::Completed {
                edge: dest.edge,
                countdown_ms: countdown.as_millis() as u64,
            },
        );
        Ok(())
    }

    /// The UE gave the switch of `mig` up.
    pub fn abandon(
        &mut self,
        now: Instant,
        mig: u64,
        report: AbandonReport,
    ) -> Result<(), MigrationError> {
        self.running_for(mig, &report.ue_id)?;
        self.fail(now, mig, format!("UE gave up: {}", report.reason));
        Ok(())
    }

    /// The UE is gone: its migration in progress is rolled back, its copilot
    /// released, its record dropped.
    pub fn ue_gone(&mut self, now: Instant, ue_id: &str) {
        let Some(id) = self.services.get(ue_id).map(|s| s.migrating) else {
            return;
        };
        if let Some(id) = id {
            self.fail(now, id, "UE gone".into());
        }
        if let Some(svc) = self.services.remove(ue_id) {
            if let Some(c) = svc.copilot {
                self.release_side(ue_id, &c.side);
                self.history_phase(now, c.mig, "released");
            }
            info!(ue = %ue_id, "service dropped: UE gone");
        }
    }

    /// Timeouts: setup and switch deadlines of migrations, copilot countdowns.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(run) = self.running.get(&id) else {
                continue;
            };
            let waited = ms(now.saturating_duration_since(run.started));
            let what = run.step.waiting_for();
            let reason = match run.step {
                Step::Switching { .. } => format!(
                    "switch timed out: no report {} ms after stream_ready",
                    self.cfg.switch_timeout_ms
                ),
                _ => format!("setup timed out after {waited:.0} ms waiting for {what}"),
            };
            self.fail(now, id, reason);
        }
        let ended: Vec<String> = self
            .services
            .values()
            .filter(|s| !self.copilot_held(s))
            .filter(|s| s.copilot.as_ref().is_some_and(|c| c.deadline <= now))
            .map(|s| s.ue_id.clone())
            .collect();
        for ue_id in ended {
            self.release_copilot(now, &ue_id);
        }
    }

    // ---- internals ----

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn notify(&mut self, now: Instant, ue_id: &str, migration: u64, event: UeEventKind) {
        let at_ns = self.clock.ns(now);
        self.push(Action::Notify {
            ue_id: ue_id.into(),
            migration,
            at_ns,
            event,
        });
    }

    fn service_of(&self, ue_id: &str) -> Result<&Service, MigrationError> {
        self.services
            .get(ue_id)
            .ok_or_else(|| MigrationError::UnknownUe {
                ue_id: ue_id.into(),
            })
    }

    fn agent(&self, edge: &str) -> Option<SocketAddr> {
        self.edge(edge).map(|e| e.agent)
    }

    fn upf_of(&self, mig: u64) -> String {
        self.running
            .get(&mig)
            .and_then(|r| self.edge(&r.rec.to))
            .map(|e| e.upf.clone())
            .unwrap_or_default()
    }

    /// The edge other than `serving` with the lowest latency measured.
    fn pick(&self, serving: &str) -> Result<String, MigrationError> {
        self.edges
            .iter()
            .filter(|e| e.cfg.name != serving)
            .filter_map(|e| e.latency.map(|l| (l, &e.cfg.name)))
            .min_by_key(|&(l, _)| l)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| MigrationError::NoDestination {
                serving: serving.into(),
            })
    }

    /// A PDU session id this service does not use, nor an owed answer of a
    /// rolled-back migration. The highest free one is taken: sessions the
    /// UE sets up itself tend to start at 1.
    fn free_psi(&self, svc: &Service) -> Option<u8> {
        let used = |p: u8| {
            svc.serving.psi == p
                || svc.copilot.as_ref().is_some_and(|c| c.side.psi == p)
                || self
                    .owed
                    .values()
                    .any(|o| o.session && o.psi == p && o.ue_id == svc.ue_id)
        };
        (1..=MAX_PSI).rev().find(|&p| !used(p))
    }

    /// Whether a switch-only migration runs to this service's copilot (its
    /// countdown waits for it).
    fn copilot_held(&self, svc: &Service) -> bool {
        svc.migrating
            .and_then(|id| self.running.get(&id))
            .is_some_and(|r| r.kind() == MigrationKind::SwitchOnly)
    }

    fn start_full(&mut self, mig: u64, ue_id: &str, to: &str, psi: u8) {
        let (Some(svc), Some(edge)) = (self.services.get(ue_id), self.edge(to)) else {
            return; // the request checked both
        };
        let setup = Action::SetupSession {
            mig,
            ue_id: ue_id.into(),
            pdu_session_id: psi,
            upf: edge.upf.clone(),
            dnn: edge.dnn().into(),
            gnb: svc.gnb.clone(),
        };
        let pull = Action::Pull {
            mig,
            edge: to.into(),
            agent: edge.agent,
            app: svc.app.clone(),
        };
        self.push(setup);
        self.push(pull);
    }

    /// With the session up and the application pulled, start the instance.
    fn maybe_start(&mut self, mig: u64) {
        let Some(run) = self.running.get_mut(&mig) else {
            return;
        };
        let Step::Preparing {
            session: Some(session),
            pulled: true,
        } = &run.step
        else {
            return;
        };
        let session = session.clone();
        run.step = Step::Starting {
            session: session.clone(),
        };
        let (ue_id, to) = (run.rec.ue_id.clone(), run.rec.to.clone());
        let (Some(svc), Some(agent)) = (self.services.get(&ue_id), self.agent(&to)) else {
            return; // a running migration's service and edge exist
        };
        let start = Action::StartInstance {
            mig,
            edge: to,
            agent,
            app: svc.app.clone(),
            account: svc.account.clone(),
            token: svc.token.clone(),
            ue: SocketAddr::new(session.ue_addr.into(), svc.stream_port),
            params: svc.params.clone(),
        };
        self.push(start);
    }

    /// Tell the UE to switch to `dest`; the switch timeout starts.
    fn stream_ready(&mut self, now: Instant, mig: u64, dest: Side) {
        let Some(run) = self.running.get_mut(&mig) else {
            return;
        };
        run.phase(now, "stream_ready");
        run.deadline = now + self.cfg.switch_timeout();
        run.step = Step::Switching { dest: dest.clone() };
        let ue_id = run.rec.ue_id.clone();
        let event = UeEventKind::StreamReady {
            edge: dest.edge,
            instance: dest.instance,
            input: dest.input,
            sdp: dest.sdp,
        };
        self.notify(now, &ue_id, mig, event);
    }

    /// The running migration `mig` of `ue_id` (a report from the UE).
    fn running_for(&self, mig: u64, ue_id: &str) -> Result<&Running, MigrationError> {
        let Some(run) = self.running.get(&mig) else {
            return Err(match self.history.iter().find(|r| r.id == mig) {
                Some(r) if r.ue_id == ue_id => MigrationError::Ended {
                    id: mig,
                    state: r.state.clone(),
                },
                _ => MigrationError::UnknownMigration { id: mig },
            });
        };
        if run.rec.ue_id != ue_id {
            return Err(MigrationError::WrongUe {
                id: mig,
                owner: run.rec.ue_id.clone(),
                ue_id: ue_id.into(),
            });
        }
        Ok(run)
    }
}
