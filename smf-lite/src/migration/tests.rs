//! The migration manager on a virtual clock. Every test ends with
//! [`Bed::check`]: every session and instance the bed made for the manager
//! (and the registered ones) is either released/stopped by an action or is
//! still a serving or copilot endpoint of a service, and nothing was
//! released or stopped twice or without being made.

use super::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::UNIX_EPOCH;
use wire::ctl::migration::StreamParams;

const UE: &str = "imsi-001010000000001";

fn edge(n: u8) -> EdgeConfig {
    EdgeConfig {
        name: format!("edge{n}"),
        upf: format!("upf{n}"),
        dnn: None,
        agent: SocketAddr::from(([10, 100, 0, 20 + n], 7100)),
        app_server: Ipv4Addr::new(10, 60 + n, 0, 2).into(),
        token: None,
    }
}

fn gnb() -> GnbRef {
    GnbRef {
        name: "gnb1".into(),
        n2_api: "10.100.0.5:7002".into(),
    }
}

fn registration(ue_id: &str) -> ServiceRegistration {
    ServiceRegistration {
        ue_id: ue_id.into(),
        app: "snake".into(),
        account: "alice".into(),
        token: "t0k".into(),
        edge: "edge1".into(),
        pdu_session_id: 1,
        instance: "edge1-i1".into(),
        input_port: 5000,
        stream_port: 6000,
        params: StreamParams {
            fps: Some(30),
            ..StreamParams::default()
        },
    }
}

fn req(to: Option<&str>) -> MigrationRequest {
    MigrationRequest {
        ue_id: UE.into(),
        to: to.map(String::from),
    }
}

fn switch() -> SwitchReport {
    SwitchReport {
        ue_id: UE.into(),
        ssim: Some(0.91),
    }
}

/// An action as a line a user would read.
fn show(a: &Action) -> String {
    match a {
        Action::SetupSession {
            ue_id,
            pdu_session_id,
            upf,
            dnn,
            gnb,
            ..
        } => format!(
            "setup {ue_id}/{pdu_session_id} at {upf} dnn {dnn} via {}",
            gnb.name
        ),
        Action::Pull { edge, app, .. } => format!("pull {app} at {edge}"),
        Action::StartInstance {
            edge,
            app,
            account,
            ue,
            ..
        } => format!("start {app} at {edge} for {account} -> {ue}"),
        Action::StopInstance { edge, instance, .. } => format!("stop {edge}/{instance}"),
        Action::ReleaseSession {
            ue_id,
            pdu_session_id,
        } => format!("release {ue_id}/{pdu_session_id}"),
        Action::Notify {
            migration, event, ..
        } => {
            let e = match event {
                UeEventKind::SessionReady { edge, session } => {
                    format!("session_ready {edge} {}", session.ue_addr)
                }
                UeEventKind::StreamReady {
                    edge,
                    instance,
                    input,
                    ..
                } => format!("stream_ready {edge} {instance} {input}"),
                UeEventKind::Completed { edge, countdown_ms } => {
                    format!("completed {edge} {countdown_ms}")
                }
                UeEventKind::Released {
                    edge,
                    pdu_session_id,
                } => format!("released {edge}/{pdu_session_id}"),
                UeEventKind::Abandoned { reason } => format!("abandoned: {reason}"),
            };
            format!("notify #{migration} {e}")
        }
    }
}

/// A manager, a virtual clock, and what the driver made for it.
struct Bed {
    m: Manager,
    now: Instant,
    log: Vec<Action>,
    sessions: BTreeSet<(String, u8)>,
    instances: BTreeSet<(String, String)>,
    started: u32,
}

impl Bed {
    fn with(cfg: MigrationConfig) -> Bed {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let m = Manager::new(cfg, (1..=3).map(edge).collect(), t0, wall).expect("manager");
        let mut b = Bed {
            m,
            now: t0,
            log: Vec::new(),
            sessions: BTreeSet::new(),
            instances: BTreeSet::new(),
            started: 0,
        };
        b.m.register(t0, registration(UE), gnb(), 5000)
            .expect("register");
        b.sessions.insert((UE.into(), 1));
        b.instances.insert(("edge1".into(), "edge1-i1".into()));
        b
    }

    fn new() -> Bed {
        Bed::with(MigrationConfig::default())
    }

    /// Pull every action, carry out releases and stops on the bed's books.
    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(a) = self.m.poll_action() {
            match &a {
                Action::ReleaseSession {
                    ue_id,
                    pdu_session_id,
                } => assert!(
                    self.sessions.remove(&(ue_id.clone(), *pdu_session_id)),
                    "released {ue_id}/{pdu_session_id}, which is not up"
                ),
                Action::StopInstance { edge, instance, .. } => assert!(
                    self.instances.remove(&(edge.clone(), instance.clone())),
                    "stopped {edge}/{instance}, which does not run"
                ),
                _ => {}
            }
            out.push(show(&a));
            self.log.push(a);
        }
        out
    }

    /// Move the clock to `t`, running every timeout due on the way.
    fn advance_to(&mut self, t: Instant) -> Vec<String> {
        while let Some(due) = self.m.poll_timeout().filter(|&d| d <= t) {
            self.now = self.now.max(due);
            self.m.handle_timeout(self.now);
        }
        self.now = t;
        self.drain()
    }

    fn advance(&mut self, ms: u64) -> Vec<String> {
        self.advance_to(self.now + Duration::from_millis(ms))
    }

    fn request(&mut self, to: Option<&str>) -> (MigrationAccepted, Vec<String>) {
        let acc = self.m.request(self.now, req(to)).expect("request accepted");
        (acc, self.drain())
    }

    fn setup_of(&self, mig: u64) -> (String, u8, String) {
        self.log
            .iter()
            .find_map(|a| match a {
                Action::SetupSession {
                    mig: m,
                    ue_id,
                    pdu_session_id,
                    upf,
                    ..
                } if *m == mig => Some((ue_id.clone(), *pdu_session_id, upf.clone())),
                _ => None,
            })
            .expect("a SetupSession for the migration")
    }

    /// The session the core makes for the SetupSession of `mig`.
    fn session_info(&self, mig: u64) -> SessionInfo {
        let (ue_id, psi, upf) = self.setup_of(mig);
        SessionInfo {
            ue_id,
            pdu_session_id: psi,
            dnn: "dnn".into(),
            upf,
            ue_addr: Ipv4Addr::new(10, 45, 0, psi),
            qfi: 9,
            ul_teid: 1,
            ul_addr: Ipv4Addr::new(10, 200, 0, 11).into(),
            dl_teid: 2,
            dl_addr: Ipv4Addr::new(10, 200, 0, 1).into(),
            cp_seid: 3,
            up_seid: 4,
            gnb: "gnb1".into(),
        }
    }

    /// The core answers the SetupSession of `mig` with a session.
    fn session_ready(&mut self, mig: u64) -> Vec<String> {
        let session = self.session_info(mig);
        let (ue_id, psi) = (session.ue_id.clone(), session.pdu_session_id);
        assert!(self.sessions.insert((ue_id, psi)), "session made twice");
        self.m.session_ready(self.now, mig, session);
        self.drain()
    }

    /// The agent answers the StartInstance of `mig`.
    fn instance_started(&mut self, mig: u64) -> Vec<String> {
        let edge = self
            .log
            .iter()
            .find_map(|a| match a {
                Action::StartInstance { mig: m, edge, .. } if *m == mig => Some(edge.clone()),
                _ => None,
            })
            .expect("a StartInstance for the migration");
        self.started += 1;
        let instance = format!("{edge}-n{}", self.started);
        self.instances.insert((edge, instance.clone()));
        let started = StartedInstance {
            instance,
            input_port: 5000 + self.started as u16,
            sdp: Some("v=0".into()),
            start_ms: Some(120.0),
        };
        self.m.instance_started(self.now, mig, started);
        self.drain()
    }

    /// A full migration to `to` up to the StreamReady, 100 ms a step.
    fn up_to_stream_ready(&mut self, to: &str) -> u64 {
        let (acc, _) = self.request(Some(to));
        self.advance(100);
        self.session_ready(acc.id);
        self.advance(100);
        self.m.pulled(self.now, acc.id);
        self.drain();
        self.advance(100);
        self.instance_started(acc.id);
        acc.id
    }

    /// A full migration to `to`, completed.
    fn full_migration(&mut self, to: &str) -> u64 {
        let id = self.up_to_stream_ready(to);
        self.advance(100);
        self.m.switched(self.now, id, switch()).expect("switched");
        self.drain();
        id
    }

    /// The invariant: what was made and not undone is exactly what the
    /// services use.
    fn check(&self) {
        let infos = self.m.services(self.now);
        let mut sessions = BTreeSet::new();
        let mut instances = BTreeSet::new();
        for s in &infos {
            for e in std::iter::once(&s.serving).chain(s.copilot.as_ref()) {
                sessions.insert((s.ue_id.clone(), e.pdu_session_id));
                instances.insert((e.edge.clone(), e.instance.clone()));
            }
        }
        assert_eq!(self.sessions, sessions, "sessions up vs. in use");
        assert_eq!(self.instances, instances, "instances running vs. in use");
        assert!(self.m.actions.is_empty(), "actions left undrained");
    }

    fn service(&self) -> ServiceInfo {
        self.m.service(self.now, UE).expect("service")
    }

    fn phases(&self, id: u64) -> Vec<String> {
        let rec = self.m.migration(id).expect("record");
        rec.phases.iter().map(|p| p.phase.clone()).collect()
    }
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn full_migration_goes_through_every_phase_in_order() {
    let mut b = Bed::new();
    b.advance(1000);
    let (acc, out) = b.request(Some("edge2"));
    assert_eq!(
        (acc.id, acc.from.as_str(), acc.to.as_str()),
        (1, "edge1", "edge2")
    );
    assert_eq!(acc.kind, MigrationKind::Full);
    assert_eq!(
        out,
        lines(&[
            &format!("setup {UE}/15 at upf2 dnn edge2 via gnb1"),
            "pull snake at edge2"
        ])
    );
    assert_eq!(b.service().migrating, Some(1));
    b.advance(40);
    assert_eq!(
        b.session_ready(1),
        lines(&["notify #1 session_ready edge2 10.45.0.15"])
    );
    b.advance(60);
    b.m.pulled(b.now, 1);
    assert_eq!(
        b.drain(),
        lines(&["start snake at edge2 for alice -> 10.45.0.15:6000"])
    );
    match b.log.last() {
        Some(Action::StartInstance { params, token, .. }) => {
            assert_eq!(params.fps, Some(30));
            assert_eq!(token, "t0k");
        }
        other => panic!("not a start: {other:?}"),
    }
    b.advance(200);
    assert_eq!(
        b.instance_started(1),
        lines(&["notify #1 stream_ready edge2 edge2-n1 10.62.0.2:5001"])
    );
    b.advance(300);
    b.m.switched(b.now, 1, switch()).expect("switched");
    assert_eq!(b.drain(), lines(&["notify #1 completed edge2 10000"]));
    let s = b.service();
    assert_eq!(
        (s.serving.edge.as_str(), s.serving.pdu_session_id),
        ("edge2", 15)
    );
    assert_eq!(s.serving.instance, "edge2-n1");
    let c = s.copilot.expect("copilot");
    assert_eq!(
        (c.edge.as_str(), c.pdu_session_id, c.instance.as_str()),
        ("edge1", 1, "edge1-i1")
    );
    assert_eq!((s.countdown_ms, s.migrating), (Some(10_000), None));
    b.check();

    assert_eq!(
        b.advance(10_000),
        lines(&[
            &format!("release {UE}/1"),
            "stop edge1/edge1-i1",
            "notify #1 released edge1/1"
        ])
    );
    let rec = b.m.migration(1).expect("record");
    assert_eq!(rec.state, "completed");
    assert_eq!(rec.requested_ns, 1_700_000_001_000_000_000);
    assert_eq!(
        (rec.setup_ms, rec.instance_start_ms, rec.ssim),
        (Some(40.0), Some(120.0), Some(0.91))
    );
    let got: Vec<(&str, f64)> = rec
        .phases
        .iter()
        .map(|p| (p.phase.as_str(), p.ms))
        .collect();
    assert_eq!(
        got,
        [
            ("requested", 0.0),
            ("session_ready", 40.0),
            ("pulled", 100.0),
            ("instance_ready", 300.0),
            ("stream_ready", 300.0),
            ("switched", 600.0),
            ("completed", 600.0),
            ("released", 10_600.0)
        ]
    );
    assert!(b.service().copilot.is_none());
    b.check();
}

#[test]
fn instance_starts_only_when_both_session_and_pull_are_done() {
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge3"));
    b.m.pulled(b.now, acc.id);
    assert_eq!(b.drain(), Vec::<String>::new());
    let out = b.session_ready(acc.id);
    assert_eq!(
        out,
        lines(&[
            "notify #1 session_ready edge3 10.45.0.15",
            "start snake at edge3 for alice -> 10.45.0.15:6000"
        ])
    );
    assert_eq!(b.phases(acc.id), ["requested", "pulled", "session_ready"]);
    b.check_after_abandon(acc.id);
}

impl Bed {
    /// Abandon a running migration by the UE and check the books.
    fn check_after_abandon(&mut self, id: u64) {
        let report = AbandonReport {
            ue_id: UE.into(),
            reason: "test over".into(),
        };
        self.m.abandon(self.now, id, report).expect("abandon");
        self.drain();
        // An instance owed is stopped when it comes.
        if self.m.owed.get(&id).is_some_and(|o| o.instance) {
            self.instance_started(id);
        }
        self.check();
    }
}

#[test]
fn migration_back_inside_the_countdown_is_a_switch_only() {
    let mut b = Bed::new();
    b.full_migration("edge2");
    b.advance(4000);
    let (acc, out) = b.request(Some("edge1"));
    assert_eq!(acc.kind, MigrationKind::SwitchOnly);
    assert_eq!(
        out,
        lines(&["notify #2 stream_ready edge1 edge1-i1 10.61.0.2:5000"])
    );
    // The countdown waits for the switch: only the switch timeout is due.
    assert_eq!(b.m.poll_timeout(), Some(b.now + Duration::from_secs(15)));
    assert_eq!(b.advance(8000), Vec::<String>::new());
    b.m.switched(b.now, acc.id, switch()).expect("switched");
    assert_eq!(b.drain(), lines(&["notify #2 completed edge1 10000"]));
    let s = b.service();
    assert_eq!(
        (s.serving.edge.as_str(), s.serving.instance.as_str()),
        ("edge1", "edge1-i1")
    );
    let c = s.copilot.expect("copilot");
    assert_eq!((c.edge.as_str(), c.pdu_session_id), ("edge2", 15));
    assert_eq!(s.countdown_ms, Some(10_000), "countdown restarted");
    assert_eq!(
        b.phases(acc.id),
        ["requested", "stream_ready", "switched", "completed"]
    );
    let setups = b
        .log
        .iter()
        .filter(|a| matches!(a, Action::SetupSession { .. }))
        .count();
    let starts = b
        .log
        .iter()
        .filter(|a| matches!(a, Action::StartInstance { .. }))
        .count();
    assert_eq!((setups, starts), (1, 1), "the switch-only made nothing");
    b.check();
    assert_eq!(
        b.advance(10_000),
        lines(&[
            &format!("release {UE}/15"),
            "stop edge2/edge2-n1",
            "notify #2 released edge2/15"
        ])
    );
    b.check();
}

#[test]
fn migration_back_after_the_release_is_full_again() {
    let mut b = Bed::new();
    b.full_migration("edge2");
    let released = b.advance(10_000);
    assert_eq!(
        released.last().map(String::as_str),
        Some("notify #1 released edge1/1")
    );
    let (acc, out) = b.request(Some("edge1"));
    assert_eq!(acc.kind, MigrationKind::Full);
    assert_eq!(
        out,
        lines(&[
            &format!("setup {UE}/14 at upf1 dnn edge1 via gnb1"),
            "pull snake at edge1"
        ])
    );
    b.check_after_abandon(acc.id);
}

#[test]
fn full_migration_to_a_third_edge_releases_the_copilot_first() {
    let mut b = Bed::new();
    b.full_migration("edge2");
    b.advance(2000);
    let (acc, out) = b.request(Some("edge3"));
    assert_eq!(acc.kind, MigrationKind::Full);
    assert_eq!(
        out,
        lines(&[
            &format!("release {UE}/1"),
            "stop edge1/edge1-i1",
            "notify #1 released edge1/1",
            &format!("setup {UE}/14 at upf3 dnn edge3 via gnb1"),
            "pull snake at edge3"
        ])
    );
    b.check();
    b.session_ready(acc.id);
    b.m.pulled(b.now, acc.id);
    b.drain();
    b.instance_started(acc.id);
    b.m.switched(b.now, acc.id, switch()).expect("switched");
    assert_eq!(b.drain(), lines(&["notify #2 completed edge3 10000"]));
    let s = b.service();
    assert_eq!(
        (s.serving.edge.as_str(), s.serving.pdu_session_id),
        ("edge3", 14)
    );
    assert_eq!(s.copilot.map(|c| c.edge), Some("edge2".into()));
    b.check();
}

#[test]
fn ue_abandons_when_the_streams_never_become_similar() {
    let mut b = Bed::new();
    let id = b.up_to_stream_ready("edge2");
    b.advance(5000);
    let report = AbandonReport {
        ue_id: UE.into(),
        reason: "SSIM stayed below 0.85".into(),
    };
    b.m.abandon(b.now, id, report).expect("abandon");
    assert_eq!(
        b.drain(),
        lines(&[
            &format!("release {UE}/15"),
            "stop edge2/edge2-n1",
            "notify #1 abandoned: UE gave up: SSIM stayed below 0.85"
        ])
    );
    let s = b.service();
    assert_eq!(
        (s.serving.edge.as_str(), s.serving.pdu_session_id),
        ("edge1", 1)
    );
    assert_eq!((s.copilot, s.migrating), (None, None));
    let rec = b.m.migration(id).expect("record");
    assert_eq!(rec.state, "abandoned");
    assert_eq!(
        rec.reason.as_deref(),
        Some("UE gave up: SSIM stayed below 0.85")
    );
    assert_eq!(
        rec.phases.last().map(|p| p.phase.as_str()),
        Some("abandoned")
    );
    // A report for it now is refused.
    let err = b.m.switched(b.now, id, switch()).expect_err("ended");
    assert_eq!((err.status(), err.field()), (409, Some("id")));
    assert_eq!(b.m.poll_timeout(), None);
    b.check();
}

#[test]
fn switch_timeout_abandons_exactly_at_its_deadline() {
    let mut b = Bed::new();
    let id = b.up_to_stream_ready("edge2");
    let deadline = b.now + Duration::from_secs(15);
    assert_eq!(b.m.poll_timeout(), Some(deadline));
    assert_eq!(
        b.advance_to(deadline - Duration::from_nanos(1)),
        Vec::<String>::new()
    );
    assert_eq!(
        b.advance_to(deadline),
        lines(&[
            &format!("release {UE}/15"),
            "stop edge2/edge2-n1",
            "notify #1 abandoned: switch timed out: no report 15000 ms after stream_ready"
        ])
    );
    assert_eq!(b.m.migration(id).map(|r| r.state), Some("abandoned".into()));
    b.check();
}

#[test]
fn switch_only_that_times_out_leaves_the_copilot_and_its_countdown() {
    let mut b = Bed::new();
    b.full_migration("edge2");
    let copilot_deadline = b.now + Duration::from_secs(10);
    b.advance(1000);
    let (acc, _) = b.request(Some("edge1"));
    // The switch deadline (t+15 s) is past the copilot's: when the switch
    // times out, the copilot's countdown has ended, and it goes at once.
    assert_eq!(
        b.advance(15_000),
        lines(&[
            "notify #2 abandoned: switch timed out: no report 15000 ms after stream_ready",
            &format!("release {UE}/1"),
            "stop edge1/edge1-i1",
            "notify #1 released edge1/1"
        ])
    );
    assert!(b.now > copilot_deadline);
    assert_eq!(
        b.m.migration(acc.id).map(|r| r.state),
        Some("abandoned".into())
    );
    assert_eq!(b.service().serving.edge, "edge2");
    b.check();
}

mod faults;
