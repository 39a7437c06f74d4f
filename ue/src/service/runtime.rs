//! The running service: streams, screen, bot, and the migration agent's
//! two loops (the SMF's events over N1, the screen's notes).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use wire::ctl::migration::{
    AbandonReport, MigrationAccepted, MigrationKind, MigrationRequest, ServiceRegistration,
    SwitchReport, UeEvent, UeEventKind, UeEvents, EVENTS_MAX_WAIT_MS,
};
use wire::ctl::ApiError;
use wire::input::Input;

use super::api::{
    ControlWindow, MigrateRequest, PlayOutcome, PlayStart, UeMigration, UeMigrationState, UeStatus,
};

mod follow;
mod latency;
use super::{figures, ServiceError};
use crate::session::SessionManager;
use crate::stream::buffer::{frame_buffer, BufferMode, Wake};
use crate::stream::pacer::PacingConfig;
use crate::stream::screen::{Screen, ScreenCmd, ScreenNote};
use crate::stream::selector::{Selector, SelectorConfig};
use crate::stream::{
    realtime_ns, BotConfig, DisplayHandle, InputBot, PlayReport, StreamClient, StreamError,
    StreamStats,
};

/// How long one event long poll waits at the SMF.
const POLL_WAIT_MS: u64 = 20_000;

/// One stream the UE receives: an edge's, over that edge's session.
#[derive(Debug)]
struct Stream {
    psi: u8,
    client: StreamClient,
    /// Bound to the session's address: inputs and key-frame requests to
    /// that edge's instance leave from it.
    sock: Arc<UdpSocket>,
    /// The instance's input address, once known.
    input: Option<SocketAddr>,
}

#[derive(Debug)]
struct State {
    streams: HashMap<String, Stream>,
    /// Stats of streams already stopped (for the report).
    stopped: Vec<StreamStats>,
    serving: String,
    copilot: Option<String>,
    /// The migration in progress (its destination is the selector's).
    current: Option<u64>,
    /// The migration whose switch the screen is carrying out (from the
    /// decision to the end of the slide, which may outlast `current`).
    switching: Option<u64>,
    migrations: Vec<UeMigration>,
    /// Monotonic time of each migration's request.
    requested_at: HashMap<u64, Instant>,
    /// The bot's number of each migration's input switch (for the count
    /// of inputs resent there).
    input_switch: HashMap<u64, u64>,
    /// The follow (`POST /follow`) whose destination input is not known yet.
    awaiting_input: Option<u64>,
    registered: bool,
    registration_error: Option<String>,
    screen: Option<DisplayHandle>,
    bot: Option<InputBot>,
}

/// A service being played.
#[derive(Debug)]
pub struct Service {
    sm: Arc<SessionManager>,
    req: PlayStart,
    started: Instant,
    wake: Arc<Wake>,
    mode: BufferMode,
    cmds: Mutex<std::sync::mpsc::Sender<ScreenCmd>>,
    state: Mutex<State>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn bad(field: &'static str, msg: impl Into<String>) -> ServiceError {
    ServiceError::Bad {
        field,
        msg: msg.into(),
    }
}

fn bind(addr: Ipv4Addr) -> Result<Arc<UdpSocket>, ServiceError> {
    let a = SocketAddr::from((addr, 0));
    UdpSocket::bind(a)
        .map(Arc::new)
        .map_err(|source| StreamError::Bind { addr: a, source }.into())
}

impl Service {
    /// Starts playing `req` over the UE's session `req.psi`.
    pub async fn start(
        sm: Arc<SessionManager>,
        req: PlayStart,
    ) -> Result<Arc<Service>, ServiceError> {
        let session = sm
            .get(req.psi)
            .await
            .ok_or_else(|| bad("psi", format!("the UE has no session {}", req.psi)))?;
        let fps = req.params.fps.unwrap_or(60);
        let sel = &req.selector;
        let range = crate::stream::pacer::WINDOW_RANGE_MS;
        if sel.use_pacing && !range.contains(&sel.pacing_window_ms) {
            return Err(bad(
                "selector.pacing_window_ms",
                format!(
                    "{}: must be {} to {}",
                    sel.pacing_window_ms,
                    range.start(),
                    range.end()
                ),
            ));
        }
        let mut cfg = SelectorConfig::at_fps(fps);
        cfg.threshold = sel.threshold;
        cfg.blend_frames = ((u64::from(fps) * sel.blend_ms) / 1000).max(1) as u32;
        cfg.give_up_after = Duration::from_millis(sel.give_up_ms);
        cfg.use_threshold = sel.use_threshold;
        cfg.use_sliding = sel.use_sliding;
        let selector =
            Selector::new(cfg, req.edge.as_str()).map_err(|e| bad("selector", e.to_string()))?;
        let mode = if sel.use_one_frame_buffer {
            BufferMode::OneFrame
        } else {
            crate::stream::selector::Ablation::NoOpt.buffer_mode()
        };
        let wake = Wake::new();
        let (w, r) = frame_buffer(req.edge.as_str(), mode, Some(wake.clone()));
        let client = StreamClient::spawn(SocketAddr::from((session.ue_addr, req.stream_port)), w)?;
        let sock = bind(session.ue_addr)?;
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
        let (note_tx, note_rx) = unbounded_channel();
        let mut screen = Screen::new(selector, r, cmd_rx, note_tx);
        if sel.use_pacing {
            screen = screen.with_pacing(PacingConfig {
                window: std::time::Duration::from_millis(sel.pacing_window_ms),
                ..PacingConfig::default()
            });
        }
        if let Some(v) = &req.video {
            screen = screen.with_video(std::path::Path::new(v), fps)?;
        }
        let screen = screen.spawn(wake.clone())?;
        let bot = InputBot::spawn(BotConfig {
            bind: SocketAddr::from((session.ue_addr, 0)),
            to: req.input,
            rate: req.input_rate.unwrap_or(crate::stream::bot::DEFAULT_RATE),
            seed: 1,
            initial: None,
        })?;
        let mut streams = HashMap::new();
        streams.insert(
            req.edge.clone(),
            Stream {
                psi: req.psi,
                client,
                sock,
                input: Some(req.input),
            },
        );
        let svc = Arc::new(Service {
            sm,
            started: Instant::now(),
            wake,
            mode,
            cmds: Mutex::new(cmd_tx),
            state: Mutex::new(State {
                streams,
                stopped: Vec::new(),
                serving: req.edge.clone(),
                copilot: None,
                current: None,
                switching: None,
                migrations: Vec::new(),
                requested_at: HashMap::new(),
                input_switch: HashMap::new(),
                awaiting_input: None,
                registered: false,
                registration_error: None,
                screen: Some(screen),
                bot: Some(bot),
            }),
            tasks: Mutex::new(Vec::new()),
            req,
        });
        svc.register().await;
        let events = tokio::spawn(svc.clone().follow_events());
        let notes = tokio::spawn(svc.clone().follow_notes(note_rx));
        let mut tasks = vec![events, notes];
        if let Some(t) = svc.req.trigger.clone() {
            tasks.push(tokio::spawn(svc.clone().watch_latency(t)));
        }
        *lock(&svc.tasks) = tasks;
        info!(ue = %svc.sm.config().ue_id, edge = %svc.req.edge, "playing");
        Ok(svc)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn ue_id(&self) -> &str {
        &self.sm.config().ue_id
    }

    fn screen(&self, c: ScreenCmd) {
        // The screen lives as long as the service.
        let _ = lock(&self.cmds).send(c);
        self.wake.notify();
    }

    /// Registers the service with the SMF's migration manager; a refusal is
    /// kept (the UE plays on; migrations are refused with that reason).
    async fn register(&self) {
        let r = &self.req;
        let reg = ServiceRegistration {
            ue_id: self.ue_id().to_string(),
            app: r.app.clone(),
            account: r.account.clone(),
            token: r.token.clone(),
            edge: r.edge.clone(),
            pdu_session_id: r.psi,
            instance: r.instance.clone(),
            stream_port: r.stream_port,
            input_port: r.input.port(),
            params: r.params.clone(),
        };
        let out = self.call("/n1/services".into(), &reg).await;
        let mut st = self.state();
        match out {
            Ok(_) => st.registered = true,
            Err(e) => {
                warn!(error = %e, "service not registered with the SMF: migrations will be refused");
                st.registration_error = Some(e.to_string());
            }
        }
    }

    /// A POST over N1; the body of a 2xx answer.
    async fn call(
        &self,
        path: String,
        body: &impl serde::Serialize,
    ) -> Result<String, ServiceError> {
        let b = serde_json::to_string(body).map_err(|e| bad("body", e.to_string()))?;
        let (status, text) = self.sm.n1("POST", path, Some(b)).await?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let e = serde_json::from_str::<ApiError>(&text).unwrap_or(ApiError {
            error: format!("HTTP {status}: {text}"),
            field: None,
        });
        Err(ServiceError::Refused {
            status,
            reason: e.error,
            field: e.field,
        })
    }

    /// Asks for a migration (`to`: the destination; none: the SMF picks).
    pub async fn migrate(
        &self,
        req: MigrateRequest,
        triggered: bool,
    ) -> Result<MigrationAccepted, ServiceError> {
        if let Some(e) = self.state().registration_error.clone() {
            return Err(ServiceError::Refused {
                status: 409,
                reason: format!("the service is not registered with the SMF: {e}"),
                field: None,
            });
        }
        let (t0, ns) = (Instant::now(), realtime_ns());
        let body = MigrationRequest {
            ue_id: self.ue_id().to_string(),
            to: req.to,
        };
        let text = self.call("/n1/migrations".into(), &body).await?;
        let acc: MigrationAccepted = serde_json::from_str(&text)
            .map_err(|e| bad("answer", format!("not a MigrationAccepted: {e}: {text}")))?;
        info!(id = acc.id, from = %acc.from, to = %acc.to, kind = ?acc.kind, "migration accepted");
        let mut st = self.state();
        st.requested_at.insert(acc.id, t0);
        let m = migration(&mut st, acc.id, || fresh(&acc, ns));
        (m.from, m.to, m.kind) = (acc.from.clone(), acc.to.clone(), acc.kind);
        m.triggered = triggered;
        m.requested_ns = ns;
        Ok(acc)
    }

    /// Where the service is.
    pub fn status(&self) -> UeStatus {
        let mut guard = self.state();
        let st = &mut *guard;
        if let Some(bot) = &st.bot {
            take_resent(&mut st.migrations, &st.input_switch, |g| bot.resent_at(g));
        }
        UeStatus {
            ue_id: self.ue_id().to_string(),
            serving: st.serving.clone(),
            copilot: st.copilot.clone(),
            migrating: st.current,
            registered: st.registered,
            registration_error: st.registration_error.clone(),
            frames_displayed: st.screen.as_ref().map_or(0, |s| s.displayed()),
            inputs_sent: st.bot.as_ref().map_or(0, |b| b.sent()),
            migrations: st.migrations.clone(),
        }
    }

    async fn follow_events(self: Arc<Service>) {
        let http = self
            .sm
            .http()
            .with_timeout(Duration::from_millis(EVENTS_MAX_WAIT_MS + 10_000));
        let mut after = 0u64;
        loop {
            let path = format!(
                "/n1/events/{}?after={after}&wait_ms={POLL_WAIT_MS}",
                self.ue_id()
            );
            let got = match self.sm.n1_with(&http, "GET", path, None).await {
                Ok((200, text)) => {
                    serde_json::from_str::<UeEvents>(&text).map_err(|e| e.to_string())
                }
                Ok((s, text)) => Err(format!("HTTP {s}: {text}")),
                Err(e) => Err(e.to_string()),
            };
            match got {
                Ok(evs) => {
                    for e in evs.events {
                        after = after.max(e.seq);
                        self.on_event(e).await;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "event poll failed; retrying");
                    // Pacing of retries against an SMF that is down.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn on_event(&self, e: UeEvent) {
        info!(migration = e.migration, event = ?e.kind, "N1 event");
        match e.kind {
            UeEventKind::SessionReady { edge, session } => {
                let psi = session.pdu_session_id;
                let addr = session.ue_addr;
                if let Err(err) = self.sm.adopt(session).await {
                    warn!(%edge, error = %err, "parallel session not installed");
                    return self
                        .abandon(e.migration, format!("session install: {err}"))
                        .await;
                }
                if let Err(err) = self.open_stream(&edge, psi, addr) {
                    warn!(%edge, error = %err, "destination stream not opened");
                    return self.abandon(e.migration, format!("stream: {err}")).await;
                }
            }
            UeEventKind::StreamReady { edge, input, .. } => {
                let stream = {
                    let mut st = self.state();
                    st.current = Some(e.migration);
                    let m = migration(&mut st, e.migration, || UeMigration {
                        to: edge.clone(),
                        ..blank(e.migration)
                    });
                    m.stream_ready_ns = Some(e.at_ns);
                    st.streams.get_mut(&edge).map(|s| {
                        s.input = Some(input);
                        (s.sock.clone(), s.client.stats().frames)
                    })
                };
                let Some((sock, decoded)) = stream else {
                    return self
                        .abandon(e.migration, format!("no stream from {edge}"))
                        .await;
                };
                // The stream must be decodable at once: a key frame is asked
                // for unless frames of it were decoded already (a new
                // instance's first frame is one; a copilot's stream went on
                // through the countdown). An unneeded key frame is large and
                // slow to encode and decode, and it would come right at the
                // switch.
                if decoded == 0 {
                    let k = Input::key_frame_request(realtime_ns()).emit();
                    if let Err(err) = sock.send_to(&k, input) {
                        warn!(%input, error = %err, "key-frame request not sent");
                    }
                } else {
                    debug!(%edge, decoded, "stream already decoded: no key frame asked");
                }
                self.screen(ScreenCmd::Begin(edge.into()));
            }
            UeEventKind::Completed { .. } => {
                let mut st = self.state();
                let m = migration(&mut st, e.migration, || blank(e.migration));
                m.state = UeMigrationState::Completed;
                if st.current == Some(e.migration) {
                    st.current = None;
                }
            }
            UeEventKind::Released {
                edge,
                pdu_session_id,
            } => {
                self.close_stream(&edge, pdu_session_id).await;
                let mut st = self.state();
                if st.copilot.as_deref() == Some(edge.as_str()) {
                    st.copilot = None;
                }
            }
            UeEventKind::Abandoned { reason } => self.abandoned(e.migration, reason).await,
        }
    }

    /// A streaming client (and input socket) on a new session's address.
    fn open_stream(&self, edge: &str, psi: u8, addr: Ipv4Addr) -> Result<(), ServiceError> {
        if self.state().streams.contains_key(edge) {
            return Ok(());
        }
        let (w, r) = frame_buffer(edge, self.mode, Some(self.wake.clone()));
        let client = StreamClient::spawn(SocketAddr::from((addr, self.req.stream_port)), w)?;
        let sock = bind(addr)?;
        self.state().streams.insert(
            edge.to_string(),
            Stream {
                psi,
                client,
                sock,
                input: None,
            },
        );
        self.screen(ScreenCmd::Add(r));
        Ok(())
    }

    /// Stops the stream of `edge` and removes session `psi` (the network
    /// released it).
    async fn close_stream(&self, edge: &str, psi: u8) {
        self.drop_stream(edge);
        if let Err(e) = self.sm.forget(psi).await {
            warn!(psi, error = %e, "released session not removed");
        }
    }

    /// Stops the stream of `edge` (its session stays).
    fn drop_stream(&self, edge: &str) {
        let s = self.state().streams.remove(edge);
        self.screen(ScreenCmd::Remove(edge.into()));
        if let Some(s) = s {
            match s.client.stop() {
                Ok(stats) => self.state().stopped.push(stats),
                Err(e) => warn!(%edge, error = %e, "stream did not stop cleanly"),
            }
        }
    }

    /// The network gave the migration up: what was made for the
    /// destination goes; the source was never touched.
    async fn abandoned(&self, id: u64, reason: String) {
        let dest = {
            let mut st = self.state();
            let m = migration(&mut st, id, || blank(id));
            m.state = UeMigrationState::Abandoned;
            m.reason = Some(reason.clone());
            let to = m.to.clone();
            if st.current == Some(id) {
                st.current = None;
            }
            let keep = st.serving == to || st.copilot.as_deref() == Some(to.as_str());
            (!keep)
                .then(|| st.streams.get(&to).map(|s| (to.clone(), s.psi)))
                .flatten()
        };
        warn!(id, %reason, "migration abandoned");
        if let Some((edge, psi)) = dest {
            self.close_stream(&edge, psi).await;
        }
    }

    /// The UE gives the migration up: tells the SMF (which rolls back).
    async fn abandon(&self, id: u64, reason: String) {
        if self.is_local(id) {
            return self.abandoned(id, reason).await;
        }
        let body = AbandonReport {
            ue_id: self.ue_id().to_string(),
            reason: reason.clone(),
        };
        if let Err(e) = self
            .call(format!("/n1/migrations/{id}/abandon"), &body)
            .await
        {
            warn!(id, error = %e, "abandon not taken by the SMF");
        }
        self.abandoned(id, reason).await;
    }

    async fn follow_notes(self: Arc<Service>, mut rx: UnboundedReceiver<ScreenNote>) {
        while let Some(n) = rx.recv().await {
            self.on_note(n).await;
        }
    }

    async fn on_note(&self, n: ScreenNote) {
        let id = {
            let mut st = self.state();
            if matches!(n, ScreenNote::Decision { .. }) {
                st.switching = st.current;
            }
            match n {
                ScreenNote::FirstDestFrame { .. } => st.switching,
                ScreenNote::Switched { .. } => st.switching.take(),
                _ => st.current,
            }
        };
        let Some(id) = id else {
            warn!(note = ?n, "selector note without a migration");
            return;
        };
        match n {
            ScreenNote::Decision { dest, at, ssim } => {
                let resend = self.req.selector.resend;
                let ssim = {
                    let mut st = self.state();
                    let route = st
                        .streams
                        .get(&*dest)
                        .and_then(|s| Some((s.input?, s.sock.clone())));
                    if let (Some((to, sock)), Some(bot)) = (route, &st.bot) {
                        let g = bot.target().switch_to(to, sock, resend);
                        st.input_switch.insert(id, g);
                    }
                    let t0 = st.requested_at.get(&id).copied();
                    let m = migration(&mut st, id, || blank(id));
                    m.decided_ns = Some(at);
                    m.ssim_at_switch = self.req.selector.use_threshold.then_some(ssim);
                    // The decision on the monotonic clock: now, less the
                    // time since `at`.
                    let since = Duration::from_nanos(realtime_ns().saturating_sub(at));
                    m.migration_ms = t0.map(|t0| {
                        Instant::now()
                            .saturating_duration_since(t0)
                            .saturating_sub(since)
                            .as_secs_f64()
                            * 1e3
                    });
                    m.ssim_at_switch
                };
                if self.is_local(id) {
                    return;
                }
                let body = SwitchReport {
                    ue_id: self.ue_id().to_string(),
                    ssim,
                };
                if let Err(e) = self
                    .call(format!("/n1/migrations/{id}/switched"), &body)
                    .await
                {
                    warn!(id, error = %e, "switch report not taken by the SMF");
                }
            }
            ScreenNote::FirstDestFrame { at } => {
                let mut st = self.state();
                let m = migration(&mut st, id, || blank(id));
                m.first_dest_frame_ns = Some(at);
                m.downtime_ms = m.decided_ns.map(|d| at.saturating_sub(d) as f64 / 1e6);
            }
            ScreenNote::Switched { chief, frames, .. } if self.is_local(id) => {
                self.followed(id, &chief, frames);
            }
            ScreenNote::Switched { chief, frames, .. } => {
                let mut st = self.state();
                let old = std::mem::replace(&mut st.serving, chief.to_string());
                st.copilot = Some(old);
                let m = migration(&mut st, id, || blank(id));
                m.frames_blended = frames;
                if m.state == UeMigrationState::Running {
                    m.state = UeMigrationState::Switched;
                }
            }
            ScreenNote::GaveUp { dest, .. } => {
                let secs = self.req.selector.give_up_ms as f64 / 1e3;
                let why = format!(
                    "the streams of {dest} and the source never became similar within {secs} s"
                );
                self.abandon(id, why).await;
            }
            ScreenNote::Refused { dest, reason } => {
                self.abandon(id, format!("selector refused {dest}: {reason}"))
                    .await;
            }
        }
    }

    /// Stops everything and reports (the sessions stay; the daemon owns them).
    pub async fn stop(&self) -> Result<PlayOutcome, ServiceError> {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        let (bot, screen, streams) = {
            let mut st = self.state();
            (
                st.bot.take(),
                st.screen.take(),
                std::mem::take(&mut st.streams),
            )
        };
        let bot = match bot {
            Some(b) => Some(b.stop()?),
            None => None,
        };
        // Let the last inputs show (pacing, not synchronisation).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shown = match screen {
            Some(s) => s.stop()?,
            None => Default::default(),
        };
        let mut stats = std::mem::take(&mut self.state().stopped);
        for (_, s) in streams {
            stats.push(s.client.stop()?);
        }
        let (sent, errs, resent_at) = bot
            .map(|b| (b.sent, b.send_errors, b.resent_at))
            .unwrap_or_default();
        {
            let mut guard = self.state();
            let st = &mut *guard;
            take_resent(&mut st.migrations, &st.input_switch, |g| {
                resent_at.iter().find(|r| r.0 == g).map(|r| r.1)
            });
        }
        let report = PlayReport::compute(
            self.started.elapsed().as_secs_f64(),
            &shown.records,
            &sent,
            errs,
            &stats,
            self.req.video.is_some().then_some(shown.video_frames),
        );
        if let Some(path) = &self.req.display_log {
            write_display_log(path, &shown.records);
        }
        let mut migrations = self.state().migrations.clone();
        let switches: Vec<u64> = migrations.iter().filter_map(|m| m.decided_ns).collect();
        let base = figures::baselines(&shown.records, &switches);
        for m in &mut migrations {
            m.freeze_ms = figures::freeze(&shown.records, m.requested_ns, m.first_dest_frame_ns);
            if let Some(at) = m.decided_ns {
                let a = figures::around(&shown.records, at, &base);
                m.stall_ms = a.stall_ms;
                m.stall_display_late_ms = a.display_late_ms;
                // Exact in integers, then to ms (signed: the gap may end
                // before the decision).
                m.stall_offset_ms = a
                    .stall_at_ns
                    .map(|t| (i128::from(t) - i128::from(at)) as f64 / 1e6);
                m.min_displayed_ssim = a.min_ssim;
            }
        }
        info!(
            frames = report.frames_displayed,
            migrations = migrations.len(),
            "play stopped"
        );
        Ok(PlayOutcome {
            report,
            migrations,
            stall_baseline_ms: base.gap_p99_ms,
            smoothness_baseline: base.ssim_p1,
            controls: figures::control_instants(&shown.records, &switches)
                .into_iter()
                .map(|at_ns| {
                    let a = figures::around(&shown.records, at_ns, &base);
                    ControlWindow {
                        at_ns,
                        stall_ms: a.stall_ms,
                        min_ssim: a.min_ssim,
                    }
                })
                .collect(),
        })
    }
}

/// Writes `records` as JSON lines to `path`; a failure is logged (the
/// play's report does not depend on it).
fn write_display_log(path: &str, records: &[crate::stream::DisplayRecord]) {
    let mut out = String::with_capacity(records.len() * 256);
    for r in records {
        match serde_json::to_string(r) {
            Ok(line) => out.push_str(&line),
            Err(e) => {
                warn!(path, error = %e, "display log not written");
                return;
            }
        }
        out.push('\n');
    }
    match std::fs::write(path, out) {
        Ok(()) => info!(path, frames = records.len(), "display log written"),
        Err(e) => warn!(path, error = %e, "display log not written"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere mid-update of plain data;
    // the service goes on with what is there.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets each migration's count of inputs resent at its input switch
/// (`switches`: migration -> the bot's switch number), once the bot took
/// the switch up (`count` of a switch number).
fn take_resent(
    migrations: &mut [UeMigration],
    switches: &HashMap<u64, u64>,
    count: impl Fn(u64) -> Option<u64>,
) {
    for m in migrations.iter_mut() {
        if let Some(n) = switches.get(&m.id).and_then(|&g| count(g)) {
            m.inputs_resent = n;
        }
    }
}

fn blank(id: u64) -> UeMigration {
    UeMigration {
        id,
        from: String::new(),
        to: String::new(),
        kind: MigrationKind::Full,
        state: UeMigrationState::Running,
        reason: None,
        triggered: false,
        local: false,
        requested_ns: 0,
        stream_ready_ns: None,
        decided_ns: None,
        first_dest_frame_ns: None,
        downtime_ms: None,
        migration_ms: None,
        ssim_at_switch: None,
        frames_blended: 0,
        inputs_resent: 0,
        stall_ms: None,
        stall_display_late_ms: None,
        stall_offset_ms: None,
        freeze_ms: None,
        min_displayed_ssim: None,
    }
}

fn fresh(acc: &MigrationAccepted, ns: u64) -> UeMigration {
    UeMigration {
        from: acc.from.clone(),
        to: acc.to.clone(),
        kind: acc.kind,
        requested_ns: ns,
        ..blank(acc.id)
    }
}

/// The record of migration `id`, made by `make` if new (events may come
/// before the answer to the request).
fn migration(st: &mut State, id: u64, make: impl FnOnce() -> UeMigration) -> &mut UeMigration {
    let i = match st.migrations.iter().position(|m| m.id == id) {
        Some(i) => i,
        None => {
            st.migrations.push(make());
            st.migrations.len() - 1
        }
    };
    &mut st.migrations[i]
}
