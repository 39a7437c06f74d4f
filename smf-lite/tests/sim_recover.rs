//! Crash consistency of the SMF state machine (issue 13 item 7), in
//! virtual time with fake UPFs and a fake gNB: the gNB audit after the
//! SMF's restart, tunnels again after the gNB's, and a Recovery Time Stamp
//! no earlier life announced.

mod common;

use common::sim::*;
use common::FakeUpf;
use smf_lite::core::{recovery_stamp, AssocState, SessionState};
use smf_lite::{Config, Smf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wire::pfcp::{msg_type as mt, MessageBody};

/// The simulation's configuration with the fake gNB as the default one
/// (the gNB the SMF audits after its start).
fn cfg_with_gnb() -> String {
    let g = gnb_ref();
    format!(
        "{CFG}\n[default_gnb]\nname = \"{}\"\nn2_api = \"{}\"\n",
        g.name, g.n2_api
    )
}

/// Kills the simulation's SMF and starts a new one (new Recovery Time
/// Stamp, nothing remembered); the UPFs and the gNB keep what they hold.
fn restart_smf(s: &mut Sim, cfg: &str, rts: u32) {
    let cfg = Config::parse(cfg).expect("valid config");
    s.smf = Smf::new(&cfg, rts, s.now);
    s.q.clear();
}

#[test]
fn after_its_restart_the_smf_deletes_the_tunnels_no_session_accounts_for() {
    let cfg = cfg_with_gnb();
    let mut s = Sim::new(&cfg);
    s.advance(Duration::ZERO);
    for i in 0..3 {
        s.create_ok(&format!("imsi-{i}"), 1, "edge2", None);
    }
    assert_eq!(s.gnb.tunnels.len(), 3);
    assert_eq!(
        s.smf.metrics().n2_audit_deleted,
        0,
        "the first life's audit found nothing to delete"
    );

    restart_smf(&mut s, &cfg, 2000);
    // The gNB does not answer the first audit: retried a heartbeat later.
    s.gnb.fail = Some("connection refused".into());
    s.advance(Duration::ZERO);
    assert_eq!(s.gnb.tunnels.len(), 3);
    s.gnb.fail = None;
    // A session of the new life, set up before the audit's retry, keeps
    // its tunnel.
    let new = s.create_ok("imsi-new", 1, "edge2", None);
    assert_eq!(s.gnb.tunnels.len(), 4);
    s.advance(Duration::from_millis(1000));
    assert_eq!(s.smf.metrics().n2_audit_deleted, 3);
    let left: Vec<_> = s.gnb.tunnels.keys().copied().collect();
    assert_eq!(left, vec![new.dl_teid], "only the new life's tunnel stays");
    assert_eq!(s.smf.sessions().len(), 1);
}

/// The gNB restarts (no tunnel, and TEIDs handed out from the start again)
/// and announces it to the SMF.
fn gnb_restarts(s: &mut Sim) {
    s.gnb.tunnels.clear();
    s.gnb.deleted.clear();
    s.gnb.next_teid = 0x9000;
    let now = s.now;
    s.smf.gnb_up(now, &gnb_ref());
    s.pump();
}

#[test]
fn after_a_gnb_restart_every_session_gets_its_tunnel_again() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    let b = s.create_ok("imsi-2", 1, "edge2", None);
    gnb_restarts(&mut s);
    assert!(
        s.gnb.deleted.is_empty(),
        "nothing of the gNB's previous life is deleted (its TEIDs may be new tunnels' now): {:?}",
        s.gnb.deleted
    );
    for old in [&a, &b] {
        let v = s.smf.session(&old.ue_id, 1).expect("still there");
        assert_eq!(v.state, SessionState::Active, "{}", old.ue_id);
        assert_eq!(v.info.ue_addr, old.ue_addr, "same address");
        assert_eq!(v.info.ul_teid, old.ul_teid, "same uplink F-TEID");
        let t = &s.gnb.tunnels[&v.info.dl_teid];
        assert_eq!(
            (t.ue_id.as_str(), t.ul_teid, t.ue_addr),
            (old.ue_id.as_str(), old.ul_teid, old.ue_addr)
        );
        let fake = &s.upf(&old.upf).fake;
        let fs = fake
            .sessions
            .values()
            .find(|f| f.cp_seid == old.cp_seid)
            .expect("the UPF session stays");
        assert_eq!(
            fs.fars[&2].1.and_then(|o| o.teid),
            Some(v.info.dl_teid),
            "downlink forwards to the new tunnel"
        );
    }
    assert_eq!(s.gnb.tunnels.len(), 2);
    assert_eq!(s.smf.metrics().gnb_restarts, 1);
}

#[test]
fn a_gnb_restart_while_the_upf_is_away_is_not_forgotten() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    // upf1 stops answering: its session is lost (to be restored).
    s.upf("upf1").dead = true;
    s.advance(Duration::from_secs(5));
    assert_eq!(s.smf.upfs()[0].state, AssocState::Down);
    assert_eq!(
        s.smf.session("imsi-1", 1).expect("kept").state,
        SessionState::Lost
    );
    // Meanwhile the gNB restarts and announces it.
    gnb_restarts(&mut s);
    // upf1 is back: the session is restored with a tunnel at the new gNB.
    s.upf("upf1").dead = false;
    s.advance(Duration::from_secs(3));
    let v = s.smf.session("imsi-1", 1).expect("restored");
    assert_eq!(v.state, SessionState::Active);
    assert_eq!(v.info.ue_addr, a.ue_addr);
    let t = &s.gnb.tunnels[&v.info.dl_teid];
    assert_eq!((t.ue_id.as_str(), t.ul_teid), ("imsi-1", v.info.ul_teid));
    assert!(s.gnb.deleted.is_empty(), "{:?}", s.gnb.deleted);
    assert_eq!(s.gnb.tunnels.len(), 1);
}

#[test]
fn the_recovery_time_stamp_is_the_next_second_and_n4_waits_for_it() {
    let wall = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
    let (rts, wait) = recovery_stamp(wall);
    assert_eq!(wait, Duration::from_millis(750));
    assert_eq!(
        rts,
        wire::pfcp::ntp_seconds(UNIX_EPOCH + Duration::from_secs(1_700_000_001))
    );
    // Killed 300 ms after its start, started again: a larger stamp.
    let (again, _) = recovery_stamp(wall + wait + Duration::from_millis(300));
    assert!(again > rts);
    let (now_rts, now_wait) = recovery_stamp(SystemTime::now());
    assert!(now_rts > 0 && now_wait <= Duration::from_secs(1));

    // Nothing on N4 before the stamp's second began.
    let mut s = Sim::new(CFG);
    let (t0, until) = (s.now, s.now + wait);
    s.smf.hold_until(until);
    s.advance(Duration::from_millis(700));
    assert!(
        s.upfs
            .iter()
            .all(|u| u.fake.count(mt::AssociationSetupRequest) == 0),
        "no Association Setup before the stamp's second"
    );
    let hb = s.upf("upf1").fake.heartbeat_request();
    let from = s.upfs[0].addr;
    s.smf
        .handle_pfcp(t0 + Duration::from_millis(700), from, &hb);
    assert!(
        s.smf.poll_action().is_none(),
        "a request before the stamp's second is not answered (the peer retransmits)"
    );
    s.advance(Duration::from_millis(100));
    for u in &s.upfs {
        assert!(
            matches!(u.fake.log[0].body, MessageBody::AssociationSetupRequest(_)),
            "{}: no Association Setup first",
            u.fake.name
        );
    }
    assert!(s
        .smf
        .upfs()
        .iter()
        .all(|u| u.state == AssocState::Associated));
}

/// upf2 restarts and hands out its UP SEIDs from the start again, as a
/// real UPF does; the SMF hears of it in the `notice` upf2 sends. Every
/// session is restored, and nothing the SMF sends with an old UP SEID
/// reaches a restored session of the UPF's new life.
fn restart_with_seids_reused(notice: fn(&mut FakeUpf) -> Vec<u8>) {
    let mut s = Sim::associated();
    let first_seid = s.upf("upf2").fake.next_seid;
    let old: Vec<_> = (0..3)
        .map(|i| s.create_ok(&format!("imsi-{i}"), 1, "edge2", None))
        .collect();
    let fake = &mut s.upf("upf2").fake;
    let (rts, logged) = (fake.rts, fake.log.len());
    fake.restart(rts + 1, 0x700);
    fake.next_seid = first_seid;
    let req = notice(&mut s.upf("upf2").fake);
    let (addr, now) = (s.upf("upf2").addr, s.now);
    s.smf.handle_pfcp(now, addr, &req);
    s.pump();
    let fake = &s.upf("upf2").fake;
    let deletions = fake.log[logged..]
        .iter()
        .filter(|m| matches!(m.body, MessageBody::SessionDeletionRequest(_)))
        .count();
    let kinds: Vec<u8> = fake.log[logged..].iter().map(|m| m.msg_type()).collect();
    assert_eq!(
        deletions, 0,
        "no Session Deletion with an old UP SEID: {kinds:?}"
    );
    assert_eq!(fake.sessions.len(), 3, "every session at the new UPF life");
    for o in &old {
        let v = s.smf.session(&o.ue_id, 1).expect("restored");
        assert_eq!(v.state, SessionState::Active, "{}", o.ue_id);
        let fs = &s.upf("upf2").fake.sessions[&v.info.up_seid];
        assert_eq!(fs.cp_seid, o.cp_seid, "its UP SEID is its own session");
    }
    assert_eq!(s.smf.metrics().sessions_restored, 3);
}

#[test]
fn upf_restart_seen_in_its_association_setup_restores_without_stale_seids() {
    restart_with_seids_reused(FakeUpf::association_setup_request);
}

#[test]
fn upf_restart_seen_in_a_heartbeat_restores_without_stale_seids() {
    restart_with_seids_reused(FakeUpf::heartbeat_request);
}

#[test]
fn after_its_restart_the_smf_audits_every_gnb_it_serves_not_only_the_default() {
    let cfg = format!(
        "{}[[gnb]]\nname = \"gnb2\"\nn2_api = \"10.100.0.6:7002\"\n\
         [[gnb]]\nname = \"gnb1\"\nn2_api = \"{}\"\n",
        cfg_with_gnb(),
        gnb_ref().n2_api
    );
    let cfg = Config::parse(&cfg).expect("valid config");
    let now = std::time::Instant::now();
    let mut smf = Smf::new(&cfg, 1000, now);
    smf.handle_timeout(now);
    let mut audited = Vec::new();
    while let Some(a) = smf.poll_action() {
        if let smf_lite::Action::N2Audit { gnb } = a {
            audited.push((gnb.name, gnb.n2_api));
        }
    }
    audited.sort();
    assert_eq!(
        audited,
        [
            ("gnb1".to_string(), gnb_ref().n2_api),
            ("gnb2".to_string(), "10.100.0.6:7002".to_string())
        ],
        "one audit per gNB, the default one once"
    );
}

/// The Session Establishment Response among what the SMF received.
fn establishment_response(s: &Sim) -> Vec<u8> {
    s.received
        .iter()
        .rev()
        .find(|(_, d)| d.get(1) == Some(&mt::SessionEstablishmentResponse))
        .map(|(_, d)| d.clone())
        .expect("an establishment response")
}

#[test]
fn a_session_the_upf_made_for_a_setup_the_smf_gave_up_is_deleted_when_its_answer_comes_late() {
    let mut s = Sim::associated();
    let id = s.next_req;
    s.next_req += 1;
    s.smf.create_session(
        s.now,
        id,
        wire::ctl::SessionRequest {
            ue_id: "imsi-late".into(),
            pdu_session_id: 1,
            dnn: "edge1".into(),
            upf: None,
            gnb: Some(gnb_ref()),
        },
    );
    // upf1 makes the session; its answer is held back and it hears no
    // retransmission, so the SMF gives up after T1 x N1.
    let mut late = None;
    while let Some(a) = s.smf.poll_action() {
        if let smf_lite::Action::SendPfcp { data, .. } = a {
            late = s.upf("upf1").fake.handle(&data);
        }
    }
    let late = late.expect("upf1 answered");
    s.upf("upf1").dead = true;
    s.advance(Duration::from_millis(500));
    assert!(
        matches!(s.created.remove(&id), Some(Err(_))),
        "the setup failed"
    );
    assert_eq!(s.upf("upf1").fake.sessions.len(), 1, "the UPF holds it");
    s.upf("upf1").dead = false;
    let from = s.upf("upf1").addr;
    s.smf.handle_pfcp(s.now, from, &late);
    s.pump();
    assert!(
        s.upf("upf1").fake.sessions.is_empty(),
        "the late answer's session is deleted at the UPF"
    );

    // A repeated answer for a session the SMF holds deletes nothing.
    s.create_ok("imsi-live", 1, "edge1", None);
    let again = establishment_response(&s);
    s.smf.handle_pfcp(s.now, from, &again);
    s.pump();
    assert_eq!(
        s.upf("upf1").fake.sessions.len(),
        1,
        "the live session stays"
    );
    assert_eq!(s.smf.sessions().len(), 1);
}
