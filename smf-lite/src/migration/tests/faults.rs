//! Failures and refusals (a destination that fails, a dead agent, a UPF
//! that refuses, a second request, a UE that goes away, bad input, late
//! answers) and the manager's bookkeeping (countdown deadlines, reports,
//! history, repeated answers), on the bed of the parent module.

use super::*;

#[test]
fn destination_instance_that_fails_to_start_or_dies_is_rolled_back() {
    // The agent refuses the start.
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge2"));
    b.session_ready(acc.id);
    b.m.pulled(b.now, acc.id);
    b.drain();
    b.m.instance_failed(b.now, acc.id, "agent: 503 no free port");
    assert_eq!(
        b.drain(),
        lines(&[
            &format!("release {UE}/15"),
            "notify #1 abandoned: instance start at edge2 failed: agent: 503 no free port"
        ])
    );
    b.check();

    // The instance dies after StreamReady.
    let id = b.up_to_stream_ready("edge2");
    b.m.instance_failed(b.now, id, "exited with 1");
    assert_eq!(
        b.drain(),
        lines(&[
            &format!("release {UE}/15"),
            "stop edge2/edge2-n1",
            "notify #2 abandoned: instance at edge2 failed: exited with 1"
        ])
    );
    assert_eq!(b.service().serving.edge, "edge1");
    b.check();
}

#[test]
fn dead_agent_fails_the_pull_and_a_late_session_is_released() {
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge2"));
    b.m.pull_failed(b.now, acc.id, "connection refused");
    assert_eq!(
        b.drain(),
        lines(&["notify #1 abandoned: pull at edge2 failed: connection refused"])
    );
    // The session was under way: a new migration does not reuse its id.
    let (acc2, out) = b.request(Some("edge3"));
    assert_eq!(out[0], format!("setup {UE}/14 at upf3 dnn edge3 via gnb1"));
    assert_eq!(
        b.session_ready(acc.id),
        lines(&[&format!("release {UE}/15")])
    );
    b.m.session_failed(b.now, acc2.id, "UPF upf3 is not associated");
    assert_eq!(
        b.drain(),
        lines(&["notify #2 abandoned: session at upf3 failed: UPF upf3 is not associated"])
    );
    // The pull of the second answers late: nothing to do.
    b.m.pulled(b.now, acc2.id);
    assert_eq!(b.drain(), Vec::<String>::new());
    b.check();
}

#[test]
fn upf_refusing_the_parallel_session_abandons() {
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge2"));
    b.m.pulled(b.now, acc.id);
    b.m.session_failed(
        b.now,
        acc.id,
        "UPF upf2 rejected the establishment: cause 73",
    );
    assert_eq!(
        b.drain(),
        lines(&["notify #1 abandoned: session at upf2 failed: UPF upf2 rejected the establishment: cause 73"])
    );
    assert_eq!(b.phases(acc.id), ["requested", "pulled", "abandoned"]);
    assert!(b.m.owed.is_empty(), "nothing owed after a refusal");
    b.check();
}

#[test]
fn second_request_while_one_runs_is_refused() {
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge2"));
    let err = b.m.request(b.now, req(Some("edge3"))).expect_err("busy");
    assert_eq!(
        err,
        MigrationError::InProgress {
            ue_id: UE.into(),
            id: acc.id
        }
    );
    assert_eq!((err.status(), err.field()), (409, Some("ue_id")));
    assert!(err.to_string().contains("migration 1 in progress"), "{err}");
    let err =
        b.m.register(b.now, registration(UE), gnb(), 5000)
            .expect_err("busy");
    assert_eq!(err.status(), 409);
    assert_eq!(b.drain(), Vec::<String>::new());
    b.check_after_abandon(acc.id);
    // Once it ended, a new one is taken.
    let (acc2, _) = b.request(Some("edge3"));
    assert_eq!(acc2.id, 2);
    b.check_after_abandon(acc2.id);
}

#[test]
fn ue_gone_mid_migration_rolls_back_and_drops_the_record() {
    let mut b = Bed::new();
    let id = b.up_to_stream_ready("edge2");
    b.m.ue_gone(b.now, UE);
    assert_eq!(
        b.drain(),
        lines(&[
            &format!("release {UE}/15"),
            "stop edge2/edge2-n1",
            "notify #1 abandoned: UE gone"
        ])
    );
    assert_eq!(b.m.service(b.now, UE), None);
    assert_eq!(b.m.migration(id).map(|r| r.state), Some("abandoned".into()));
    // The serving side is the UE's own: the bed drops it with the UE.
    b.sessions.remove(&(UE.into(), 1));
    b.instances.remove(&("edge1".into(), "edge1-i1".into()));
    b.check();
    let err = b.m.request(b.now, req(Some("edge2"))).expect_err("gone");
    assert_eq!((err.status(), err.field()), (404, Some("ue_id")));
}

#[test]
fn ue_gone_with_a_copilot_and_a_session_under_way() {
    let mut b = Bed::new();
    b.full_migration("edge2");
    let (acc, _) = b.request(Some("edge3"));
    b.m.ue_gone(b.now, UE);
    // The copilot went at the request; the session under way is owed.
    assert_eq!(b.drain(), lines(&["notify #2 abandoned: UE gone"]));
    assert_eq!(
        b.session_ready(acc.id),
        lines(&[&format!("release {UE}/14")])
    );
    b.m.pulled(b.now, acc.id);
    assert_eq!(b.m.poll_timeout(), None);
    b.sessions.remove(&(UE.into(), 15));
    b.instances.remove(&("edge2".into(), "edge2-n1".into()));
    b.check();

    // Gone while a copilot is kept: the copilot goes with it.
    let mut b = Bed::new();
    b.full_migration("edge2");
    b.m.ue_gone(b.now, UE);
    assert_eq!(
        b.drain(),
        lines(&[&format!("release {UE}/1"), "stop edge1/edge1-i1"])
    );
    assert_eq!(b.m.poll_timeout(), None);
    b.sessions.remove(&(UE.into(), 15));
    b.instances.remove(&("edge2".into(), "edge2-n1".into()));
    b.check();
}

#[test]
fn unknown_ue_edge_and_bad_registrations_are_refused_by_field() {
    let mut b = Bed::new();
    let err = b.m.request(
        b.now,
        MigrationRequest {
            ue_id: "imsi-9".into(),
            to: None,
        },
    );
    let err = err.expect_err("unknown UE");
    assert_eq!((err.status(), err.field()), (404, Some("ue_id")));
    assert!(err.to_string().contains("imsi-9"), "{err}");
    let err =
        b.m.request(b.now, req(Some("edge9")))
            .expect_err("unknown edge");
    assert_eq!((err.status(), err.field()), (400, Some("to")));
    assert_eq!(err.to_string(), "to: no edge named `edge9` is configured");
    let err = b.m.request(b.now, req(Some("edge1"))).expect_err("serving");
    assert_eq!(
        err.to_string(),
        format!("to: `edge1` already serves UE `{UE}`")
    );

    type Spoil = fn(&mut ServiceRegistration);
    let cases: [(Spoil, &str); 5] = [
        (|r| r.edge = "edge9".into(), "edge"),
        (|r| r.pdu_session_id = 16, "pdu_session_id"),
        (|r| r.stream_port = 0, "stream_port"),
        (|r| r.app.clear(), "app"),
        (|r| r.ue_id.clear(), "ue_id"),
    ];
    for (spoil, field) in cases {
        let mut r = registration("imsi-2");
        spoil(&mut r);
        let err = b.m.register(b.now, r, gnb(), 5000).expect_err(field);
        assert_eq!(err.field(), Some(field), "{err}");
    }
    assert_eq!(b.m.services(b.now).len(), 1);
    let err = b.m.set_latency("edge9", None).expect_err("unknown edge");
    assert_eq!(err.field(), Some("edge"));
    b.check();

    let dup = Manager::new(
        MigrationConfig::default(),
        vec![edge(1), edge(1)],
        b.now,
        UNIX_EPOCH,
    );
    assert!(dup.is_err());
}

#[test]
fn destination_is_picked_by_the_lowest_latency_measured() {
    let mut b = Bed::new();
    let err = b.m.request(b.now, req(None)).expect_err("nothing measured");
    assert_eq!((err.status(), err.field()), (503, Some("to")));
    let ms = Duration::from_millis;
    b.m.set_latency("edge1", Some(ms(1))).expect("edge1");
    b.m.set_latency("edge2", Some(ms(30))).expect("edge2");
    b.m.set_latency("edge3", Some(ms(10))).expect("edge3");
    let (acc, out) = b.request(None);
    assert_eq!(acc.to, "edge3", "the serving edge is never picked");
    assert_eq!(out[0], format!("setup {UE}/15 at upf3 dnn edge3 via gnb1"));
    b.check_after_abandon(acc.id);
    b.m.set_latency("edge3", None).expect("edge3");
    let (acc, _) = b.request(None);
    assert_eq!(acc.to, "edge2");
    b.check_after_abandon(acc.id);
}

#[test]
fn late_answers_after_a_setup_timeout_are_undone() {
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge2"));
    assert_eq!(b.m.poll_timeout(), Some(b.now + Duration::from_secs(10)));
    assert_eq!(
        b.advance(10_000),
        lines(&["notify #1 abandoned: setup timed out after 10000 ms waiting for the session and the pull"])
    );
    assert_eq!(
        b.session_ready(acc.id),
        lines(&[&format!("release {UE}/15")])
    );
    b.m.pulled(b.now, acc.id);
    assert_eq!(b.drain(), Vec::<String>::new());
    assert!(b.m.owed.is_empty());
    b.check();

    // Timed out while the instance starts: the late instance is stopped.
    let (acc, _) = b.request(Some("edge2"));
    b.session_ready(acc.id);
    b.m.pulled(b.now, acc.id);
    b.drain();
    assert_eq!(
        b.advance(10_000),
        lines(&[
            &format!("release {UE}/15"),
            "notify #2 abandoned: setup timed out after 10000 ms waiting for the instance"
        ])
    );
    assert_eq!(b.instance_started(acc.id), lines(&["stop edge2/edge2-n1"]));
    // A failure answered late changes nothing.
    b.m.instance_failed(b.now, acc.id, "late");
    b.m.session_failed(b.now, acc.id, "late");
    assert_eq!(b.drain(), Vec::<String>::new());
    b.check();
}

#[test]
fn countdown_releases_exactly_at_its_deadline() {
    let mut b = Bed::new();
    b.full_migration("edge2");
    let deadline = b.now + Duration::from_secs(10);
    assert_eq!(b.m.poll_timeout(), Some(deadline));
    b.now = deadline - Duration::from_nanos(1);
    b.m.handle_timeout(b.now);
    assert_eq!(b.drain(), Vec::<String>::new());
    assert_eq!(b.service().countdown_ms, Some(0));
    b.now = deadline;
    b.m.handle_timeout(deadline);
    assert_eq!(
        b.drain(),
        lines(&[
            &format!("release {UE}/1"),
            "stop edge1/edge1-i1",
            "notify #1 released edge1/1"
        ])
    );
    assert_eq!(b.m.poll_timeout(), None);
    b.check();
}

#[test]
fn countdown_zero_releases_the_source_right_after_the_switch() {
    let mut b = Bed::with(MigrationConfig {
        countdown_ms: 0,
        ..MigrationConfig::default()
    });
    let id = b.up_to_stream_ready("edge2");
    b.advance(100);
    b.m.switched(b.now, id, switch()).expect("switched");
    assert_eq!(b.drain(), lines(&["notify #1 completed edge2 0"]));
    // Due at once, on the same instant: no time passes on the clock.
    assert_eq!(b.m.poll_timeout(), Some(b.now));
    assert_eq!(
        b.advance(0),
        lines(&[
            &format!("release {UE}/1"),
            "stop edge1/edge1-i1",
            "notify #1 released edge1/1"
        ])
    );
    assert_eq!(b.m.poll_timeout(), None);
    assert_eq!(b.service().copilot, None);
    b.check();
    // The way back is a full migration again.
    let (acc, _) = b.request(Some("edge1"));
    assert_eq!(acc.kind, MigrationKind::Full);
    b.check_after_abandon(acc.id);
}

#[test]
fn reports_are_checked_against_the_migration() {
    let mut b = Bed::new();
    let (acc, _) = b.request(Some("edge2"));
    let err =
        b.m.switched(b.now, acc.id, switch())
            .expect_err("too early");
    assert_eq!(
        err,
        MigrationError::NotReady {
            id: acc.id,
            step: "preparing"
        }
    );
    let other = SwitchReport {
        ue_id: "imsi-2".into(),
        ssim: None,
    };
    let err = b.m.switched(b.now, acc.id, other).expect_err("not its own");
    assert_eq!((err.status(), err.field()), (403, Some("ue_id")));
    let err = b.m.switched(b.now, 99, switch()).expect_err("unknown");
    assert_eq!(err.status(), 404);
    b.check_after_abandon(acc.id);

    // A registration again while a copilot is kept is refused.
    b.full_migration("edge2");
    let err =
        b.m.register(b.now, registration(UE), gnb(), 5000)
            .expect_err("copilot");
    assert!(
        matches!(err, MigrationError::HasCopilot { ref edge, .. } if edge == "edge1"),
        "{err}"
    );
    b.check();
}

#[test]
fn history_is_bounded_and_records_are_listed() {
    let cfg = MigrationConfig {
        history: 2,
        ..MigrationConfig::default()
    };
    let mut b = Bed::with(cfg);
    for _ in 0..3 {
        let (acc, _) = b.request(Some("edge2"));
        b.m.session_failed(b.now, acc.id, "refused");
        b.drain();
    }
    let (running, _) = b.request(Some("edge3"));
    let ids: Vec<(u64, String)> =
        b.m.migrations()
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
    assert_eq!(
        ids,
        [
            (2, "abandoned".into()),
            (3, "abandoned".into()),
            (running.id, "running".into())
        ]
    );
    b.check_after_abandon(running.id);
}

#[test]
fn repeated_answers_change_nothing_and_stray_instances_are_stopped() {
    let mut b = Bed::new();
    let id = b.up_to_stream_ready("edge2");
    let session = b.session_info(id);
    b.m.session_ready(b.now, id, session);
    b.m.pulled(b.now, id);
    let again = |instance: &str| StartedInstance {
        instance: instance.into(),
        input_port: 5001,
        sdp: None,
        start_ms: None,
    };
    b.m.instance_started(b.now, id, again("edge2-n1"));
    assert_eq!(b.drain(), Vec::<String>::new());
    // Another instance for the same migration is not ours to keep.
    b.instances.insert(("edge2".into(), "edge2-x".into()));
    b.m.instance_started(b.now, id, again("edge2-x"));
    assert_eq!(b.drain(), lines(&["stop edge2/edge2-x"]));
    // An instance for a migration never heard of cannot be placed: left alone.
    b.m.instance_started(b.now, 77, again("edge3-y"));
    assert_eq!(b.drain(), Vec::<String>::new());
    b.m.switched(b.now, id, switch()).expect("switched");
    assert_eq!(b.drain(), lines(&["notify #1 completed edge2 10000"]));
    // A session for no migration is released, unless a service uses it.
    b.m.session_ready(b.now, 77, b.session_info(id));
    assert_eq!(b.drain(), Vec::<String>::new());
    b.check();
}
