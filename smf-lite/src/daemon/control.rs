//! The control thread: the SMF core and the migration manager side by side,
//! their timers, and what their actions turn into (PFCP datagrams, N2 and
//! agent calls, core requests made for the manager, UE events).

use super::agent::{Agents, StartBody};
use super::events::Events;
use super::n2::{N2Job, N2};
use super::{AgentDone, Cmd, ReqIds};
use crate::config::Config;
use crate::core::{Action, ReqId, Smf, SmfError};
use crate::migration::{self, Manager};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use wire::ctl::migration::UeEventKind;
use wire::ctl::{GnbRef, SessionInfo, SessionRequest};

/// What a [`super::Call`] gets: both machines, at `now`.
pub(super) struct Ctx<'a> {
    pub now: Instant,
    pub smf: &'a Smf,
    pub mgr: &'a mut Manager,
    /// The gNBs seen in session requests, by name (a registration's session
    /// names its gNB; the manager needs its N2 API too).
    pub gnbs: &'a HashMap<String, GnbRef>,
    /// PFCP datagrams dropped because they came from no UPF's address.
    pub pfcp_foreign: u64,
}

type CreateReply = oneshot::Sender<Result<SessionInfo, SmfError>>;

/// Who waits for a core request's answer.
enum Waiter {
    /// An API create; the gNB it named is learnt once the session is up.
    Create(Option<GnbRef>, CreateReply),
    /// An API release of (UE, PSI).
    Release(String, u8, oneshot::Sender<Result<(), SmfError>>),
    /// The manager's parallel session for migration `mig`.
    MigSetup(u64),
    /// A release the manager asked for.
    MigRelease(String, u8),
}

pub(super) struct Control {
    smf: Smf,
    mgr: Manager,
    sock: Arc<UdpSocket>,
    n2: N2,
    agents: Agents,
    events: Events,
    waiting: HashMap<ReqId, Waiter>,
    gnbs: HashMap<String, GnbRef>,
    default_gnb: Option<GnbRef>,
    ids: ReqIds,
    /// The configured UPFs' N4 addresses: PFCP is taken only from these
    /// (any port: a UPF may send from another socket than the one it
    /// listens on); whatever else arrives is dropped and counted.
    upf_ips: HashSet<IpAddr>,
    pfcp_foreign: u64,
}

impl Control {
    pub fn new(
        cfg: &Config,
        smf: Smf,
        mgr: Manager,
        sock: Arc<UdpSocket>,
        tx: mpsc::Sender<Cmd>,
        events: Events,
    ) -> Control {
        // An agent's pull or start may take the whole setup budget; the
        // manager's own timeout gives up first.
        let agent_timeout = cfg.migration.manager().setup_timeout() + Duration::from_secs(1);
        Control {
            smf,
            mgr,
            sock,
            n2: N2::new(Duration::from_secs(5), tx.clone()),
            agents: Agents::new(agent_timeout, &cfg.edge, tx),
            events,
            waiting: HashMap::new(),
            gnbs: cfg
                .known_gnbs()
                .into_iter()
                .map(|g| (g.name.clone(), g))
                .collect(),
            default_gnb: cfg.default_gnb.clone(),
            ids: ReqIds::default(),
            upf_ips: cfg.upf.iter().map(|u| u.n4.ip()).collect(),
            pfcp_foreign: 0,
        }
    }

    /// Runs until `stop` fires or every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Cmd>, mut stop: oneshot::Receiver<()>) {
        let sock = self.sock.clone();
        let mut buf = vec![0u8; 65536];
        let now = Instant::now();
        self.smf.handle_timeout(now);
        self.mgr.handle_timeout(now);
        loop {
            self.drain().await;
            let deadline = [self.smf.poll_timeout(), self.mgr.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut stop => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) if self.upf_ips.contains(&from.ip()) => {
                        self.smf.handle_pfcp(Instant::now(), from, &buf[..n])
                    }
                    Ok((_, from)) => {
                        self.pfcp_foreign += 1;
                        debug!(%from, "PFCP from no UPF's address dropped");
                    }
                    Err(e) => debug!("N4 recv: {e}"),
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    let now = Instant::now();
                    self.smf.handle_timeout(now);
                    self.mgr.handle_timeout(now);
                }
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Create(r, reply) => {
                let id = self.ids.next();
                let gnb = r.gnb.clone().or_else(|| self.default_gnb.clone());
                self.waiting.insert(id, Waiter::Create(gnb, reply));
                self.smf.create_session(now, id, r);
            }
            Cmd::Release(ue, psi, reply) => {
                let id = self.ids.next();
                self.smf.release_session(now, id, &ue, psi);
                // Its answer is an action, carried out after this command.
                self.waiting.insert(id, Waiter::Release(ue, psi, reply));
            }
            Cmd::Call(f) => f(&mut Ctx {
                now,
                smf: &self.smf,
                mgr: &mut self.mgr,
                gnbs: &self.gnbs,
                pfcp_foreign: self.pfcp_foreign,
            }),
            Cmd::N2Done {
                key,
                gen,
                gnb,
                result,
            } => self.smf.n2_setup_done(now, &key, gen, &gnb, result),
            Cmd::N2Audit { gnb, result } => self.smf.n2_audit_done(now, &gnb, result),
            Cmd::GnbUp(gnb, reply) => {
                self.smf.gnb_up(now, &gnb);
                let _ = reply.send(());
            }
            Cmd::Agent(AgentDone::Pulled { mig, result }) => match result {
                Ok(()) => self.mgr.pulled(now, mig),
                Err(e) => self.mgr.pull_failed(now, mig, &e),
            },
            Cmd::Agent(AgentDone::Started { mig, result }) => match result {
                Ok(s) => self.mgr.instance_started(now, mig, s),
                Err(e) => self.mgr.instance_failed(now, mig, &e),
            },
            Cmd::Latency(round) => self.latency(round),
        }
    }

    fn latency(&mut self, round: Vec<(String, Option<Duration>)>) {
        for (edge, latency) in round {
            let before = self
                .mgr
                .edges()
                .find(|(e, _)| e.name == edge)
                .and_then(|(_, l)| l);
            match (before, latency) {
                (Some(_), None) => warn!(%edge, "edge agent unreachable"),
                (None, Some(l)) => info!(%edge, latency_ms = ms(l), "edge agent reachable"),
                _ => debug!(%edge, latency = ?latency, "edge latency"),
            }
            if let Err(e) = self.mgr.set_latency(&edge, latency) {
                warn!("latency of {edge}: {e}");
            }
        }
    }

    /// Carries out what both machines want, until neither wants more (an
    /// answer of one may make the other act).
    async fn drain(&mut self) {
        loop {
            let mut any = false;
            while let Some(a) = self.smf.poll_action() {
                any = true;
                self.core_action(a).await;
            }
            while let Some(a) = self.mgr.poll_action() {
                any = true;
                self.mig_action(a);
            }
            if !any {
                return;
            }
        }
    }

    async fn core_action(&mut self, a: Action) {
        match a {
            Action::SendPfcp { to, data } => {
                if let Err(e) = self.sock.send_to(&data, to).await {
                    debug!(%to, "N4 send: {e}");
                }
            }
            Action::N2Setup(r) => self.n2.submit(N2Job::Setup(r)),
            Action::N2Delete { gnb, dl_teid } => self.n2.submit(N2Job::Delete { gnb, dl_teid }),
            Action::N2Audit { gnb } => self.n2.submit(N2Job::Audit(gnb)),
            Action::CreateDone { req, result } => self.create_done(req, result),
            Action::ReleaseDone { req, result } => self.release_done(req, result),
        }
    }

    fn create_done(&mut self, req: ReqId, result: Result<SessionInfo, SmfError>) {
        let now = Instant::now();
        match self.waiting.remove(&req) {
            Some(Waiter::Create(gnb, reply)) => {
                if let (Ok(info), Some(g)) = (&result, gnb) {
                    if info.gnb == g.name {
                        self.gnbs.insert(g.name.clone(), g);
                    }
                }
                let _ = reply.send(result);
            }
            Some(Waiter::MigSetup(mig)) => match result {
                Ok(info) => self.mgr.session_ready(now, mig, info),
                Err(e) => self.mgr.session_failed(now, mig, &e.to_string()),
            },
            Some(_) | None => warn!(req, "create answer nobody waits for"),
        }
    }

    fn release_done(&mut self, req: ReqId, result: Result<(), SmfError>) {
        match self.waiting.remove(&req) {
            Some(Waiter::Release(ue, psi, reply)) => {
                if result.is_ok() {
                    self.maybe_ue_gone(&ue, psi);
                }
                let _ = reply.send(result);
            }
            Some(Waiter::MigRelease(ue, psi)) => match result {
                Ok(()) => info!(ue = %ue, psi, "migration session released"),
                Err(e) => warn!(ue = %ue, psi, "migration session release failed: {e}"),
            },
            Some(_) | None => warn!(req, "release answer nobody waits for"),
        }
    }

    /// The serving session of a registered service went through the
    /// session API: the UE is gone for the manager.
    fn maybe_ue_gone(&mut self, ue: &str, psi: u8) {
        let now = Instant::now();
        let serving = self
            .mgr
            .service(now, ue)
            .is_some_and(|s| s.serving.pdu_session_id == psi);
        if serving {
            info!(ue = %ue, psi, "serving session released: UE gone for the migration manager");
            self.mgr.ue_gone(now, ue);
        }
    }

    fn mig_action(&mut self, a: migration::Action) {
        use migration::Action as A;
        let now = Instant::now();
        match a {
            A::SetupSession {
                mig,
                ue_id,
                pdu_session_id,
                upf,
                dnn,
                gnb,
            } => {
                info!(mig, ue = %ue_id, psi = pdu_session_id, %upf, gnb = %gnb.name, "parallel session requested");
                let id = self.ids.next();
                self.waiting.insert(id, Waiter::MigSetup(mig));
                let req = SessionRequest {
                    ue_id,
                    pdu_session_id,
                    dnn,
                    upf: Some(upf),
                    gnb: Some(gnb),
                };
                self.smf.create_session(now, id, req);
            }
            A::Pull {
                mig,
                edge,
                agent,
                app,
            } => self.agents.pull(mig, edge, agent, app),
            A::StartInstance {
                mig,
                edge,
                agent,
                app,
                account,
                token,
                ue,
                params,
            } => {
                let body = StartBody {
                    app,
                    account,
                    token,
                    ue,
                    params,
                };
                self.agents.start(mig, edge, agent, body);
            }
            A::StopInstance {
                edge,
                agent,
                instance,
            } => self.agents.stop(edge, agent, instance),
            A::ReleaseSession {
                ue_id,
                pdu_session_id,
            } => {
                info!(ue = %ue_id, psi = pdu_session_id, "migration session release requested");
                let id = self.ids.next();
                self.smf.release_session(now, id, &ue_id, pdu_session_id);
                self.waiting
                    .insert(id, Waiter::MigRelease(ue_id, pdu_session_id));
            }
            A::Notify {
                ue_id,
                migration,
                at_ns,
                event,
            } => {
                info!(mig = migration, ue = %ue_id, event = event_name(&event), "UE notified");
                self.events.push(&ue_id, migration, at_ns, event);
            }
        }
    }
}

fn event_name(e: &UeEventKind) -> &'static str {
    match e {
        UeEventKind::SessionReady { .. } => "session_ready",
        UeEventKind::StreamReady { .. } => "stream_ready",
        UeEventKind::Completed { .. } => "completed",
        UeEventKind::Released { .. } => "released",
        UeEventKind::Abandoned { .. } => "abandoned",
    }
}

/// A duration in ms, for logs and views.
pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
