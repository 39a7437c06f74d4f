//! Deterministic tests of the SMF state machine: virtual time, fake UPFs
//! (wire::pfcp) and a fake gNB, no sockets.

mod common;

use common::sim::*;
use smf_lite::core::{AssocState, SessionState};
use smf_lite::{Action, SmfError};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use wire::ctl::SessionInfo;
use wire::pfcp::{self, msg_type as mt, Message, MessageBody};

#[test]
fn association_carries_node_id_rts_and_cp_features() {
    let s = Sim::associated();
    let MessageBody::AssociationSetupRequest(a) = &s.upfs[0].fake.log[0].body else {
        panic!("first message is not an Association Setup Request");
    };
    assert_eq!(a.node_id, pfcp::NodeId::Ipv4(Ipv4Addr::new(10, 100, 0, 1)));
    assert_eq!(a.recovery_time_stamp, 1000);
    assert!(a.cp_function_features.is_some());
    let u = &s.smf.upfs()[0];
    assert_eq!(u.recovery_time_stamp, Some(5000));
    assert_eq!(u.node_id.as_deref(), Some("upf1"));
}

#[test]
fn full_flow_establish_modify_release() {
    let mut s = Sim::associated();
    let info = s.create_ok("imsi-1", 1, "edge1", None);
    assert_eq!(info.upf, "upf1");
    assert_eq!(info.ue_addr, Ipv4Addr::new(10, 60, 0, 1));
    assert_eq!(info.qfi, 7);
    assert_eq!(info.ul_teid, 0x100);
    assert_eq!(info.ul_addr, IpAddr::V4(Ipv4Addr::new(10, 3, 0, 2)));
    assert_eq!(info.dl_teid, 0x9000);
    assert_eq!(info.gnb, "gnb1");

    // What the gNB was told.
    let t = &s.gnb.tunnels[&0x9000];
    assert_eq!((t.ul_teid, t.qfi, t.ue_addr), (0x100, 7, info.ue_addr));

    // What the UPF got.
    let up = &s.upf("upf1").fake;
    assert_eq!(up.sessions.len(), 1);
    let fs = up.sessions.values().next().expect("one session");
    assert_eq!(fs.cp_seid, info.cp_seid);
    let est = &fs.est;
    // n4_bind's address (127.0.0.1) wins over node_id when cp_addr is unset.
    assert_eq!(est.cp_f_seid.ipv4, Some(Ipv4Addr::LOCALHOST));
    let ul = est
        .create_pdrs
        .iter()
        .find(|p| p.pdr_id == 1)
        .expect("UL PDR");
    assert_eq!(ul.pdi.source_interface, pfcp::SourceInterface::Access);
    assert!(matches!(
        ul.pdi.local_f_teid,
        Some(pfcp::FTeid::Choose { v4: true, .. })
    ));
    assert_eq!(
        ul.pdi.network_instance.as_ref().map(|n| n.name()),
        Some("internet".into())
    );
    assert_eq!(ul.pdi.ue_ip_addresses[0].ipv4, Some(info.ue_addr));
    assert!(!ul.pdi.ue_ip_addresses[0].is_destination);
    assert_eq!(ul.pdi.qfis, vec![pfcp::Qfi(7)]);
    assert_eq!(
        ul.pdi.source_interface_type,
        Some(pfcp::InterfaceType::N3ThreeGppAccess)
    );
    assert_eq!(
        ul.outer_header_removal.map(|o| o.description),
        Some(pfcp::OuterHeaderRemovalDescription::GtpuUdpIpv4)
    );
    let dl = est
        .create_pdrs
        .iter()
        .find(|p| p.pdr_id == 2)
        .expect("DL PDR");
    assert_eq!(dl.pdi.source_interface, pfcp::SourceInterface::Core);
    assert!(dl.pdi.ue_ip_addresses[0].is_destination);
    assert_eq!(dl.pdi.source_interface_type, Some(pfcp::InterfaceType::N6));
    let far_ul = est
        .create_fars
        .iter()
        .find(|f| Some(f.far_id) == ul.far_id)
        .expect("UL FAR");
    assert_eq!(far_ul.apply_action, pfcp::ApplyAction::FORW);
    let fp = far_ul
        .forwarding_parameters
        .as_ref()
        .expect("forwarding parameters");
    assert_eq!(fp.destination_interface, pfcp::DestinationInterface::Core);
    assert_eq!(fp.destination_interface_type, Some(pfcp::InterfaceType::N6));
    let far_dl = est
        .create_fars
        .iter()
        .find(|f| Some(f.far_id) == dl.far_id)
        .expect("DL FAR");
    assert_eq!(far_dl.apply_action, pfcp::ApplyAction::BUFF);
    assert_eq!(est.create_qers[0].gate_status, pfcp::GateStatus::OPEN);
    assert_eq!(
        est.create_qers[0].mbr,
        Some(pfcp::BitRate {
            ul_kbps: 5000,
            dl_kbps: 10000
        })
    );
    assert_eq!(
        est.create_urrs[0].measurement_method,
        pfcp::MeasurementMethod::VOLUM
    );

    // The modification pointed the downlink FAR at the gNB.
    assert_eq!(fs.modifications.len(), 1);
    let u = &fs.modifications[0].update_fars[0];
    let ufp = u
        .update_forwarding_parameters
        .as_ref()
        .expect("update forwarding parameters");
    assert_eq!(
        ufp.destination_interface_type,
        Some(pfcp::InterfaceType::N3ThreeGppAccess)
    );
    let (act, ohc) = fs.fars[&far_dl.far_id];
    assert_eq!(act, pfcp::ApplyAction::FORW);
    assert_eq!(
        ohc,
        Some(pfcp::OuterHeaderCreation::gtpu_ipv4(
            0x9000,
            Ipv4Addr::new(10, 3, 0, 1)
        ))
    );
    let up_seid = *s.upf("upf1").fake.sessions.keys().next().expect("one");
    assert_eq!(info.up_seid, up_seid);

    // Session Modification went to the UP SEID.
    let last_mod = s
        .upf("upf1")
        .fake
        .log
        .iter()
        .find(|m| m.msg_type() == mt::SessionModificationRequest)
        .cloned()
        .expect("sent");
    assert_eq!(last_mod.header.seid, Some(up_seid));

    let v = s.smf.session("imsi-1", 1).expect("listed");
    assert_eq!(v.state, SessionState::Active);
    assert_eq!(s.in_use("upf1"), 1);

    let r = s.release("imsi-1", 1);
    assert_eq!(s.released.remove(&r), Some(Ok(())));
    assert!(s.upf("upf1").fake.sessions.is_empty());
    assert!(s.gnb.tunnels.is_empty());
    assert_eq!(s.in_use("upf1"), 0);
    assert!(s.smf.sessions().is_empty());
    assert_eq!(s.smf.metrics().sessions_released, 1);
    // Releasing again: 404.
    let r = s.release("imsi-1", 1);
    assert!(matches!(
        s.released.remove(&r),
        Some(Err(SmfError::NotFound { .. }))
    ));
}

#[test]
fn retransmits_with_same_bytes_then_succeeds() {
    let mut s = Sim::associated();
    s.upf("upf1").drop_next = 2;
    let before = s.sent.len();
    let id = s.create("imsi-1", 1, "edge1", None);
    assert!(s.created.is_empty(), "no answer before T1");
    s.advance(Duration::from_millis(250));
    let info = match s.created.remove(&id) {
        Some(Ok(i)) => i,
        other => panic!("{other:?}"),
    };
    let ests: Vec<_> = s.sent[before..]
        .iter()
        .filter(|(_, d)| d[1] == mt::SessionEstablishmentRequest)
        .collect();
    assert_eq!(ests.len(), 3, "original + 2 retransmissions");
    assert!(
        ests.iter().all(|(_, d)| *d == ests[0].1),
        "retransmissions are identical (same seq)"
    );
    assert_eq!(s.upf("upf1").fake.sessions.len(), 1);
    assert_eq!(s.smf.metrics().pfcp_retransmissions, 2);
    assert_eq!(info.ul_teid, 0x100);
}

#[test]
fn gives_up_after_n1_and_leaves_nothing() {
    let mut s = Sim::associated();
    s.upf("upf1").dead = true;
    let before = s.sent.len();
    let id = s.create("imsi-1", 1, "edge1", None);
    s.advance(Duration::from_millis(99));
    assert!(s.created.is_empty());
    s.advance(Duration::from_millis(400));
    match s.created.remove(&id) {
        Some(Err(e @ SmfError::UpfTimeout { .. })) => assert_eq!(e.status(), 504),
        other => panic!("{other:?}"),
    }
    let n = s.sent[before..]
        .iter()
        .filter(|(_, d)| d[1] == mt::SessionEstablishmentRequest)
        .count();
    assert_eq!(n, 1 + 3, "original + N1 retransmissions");
    assert!(s.smf.sessions().is_empty());
    assert_eq!(s.in_use("upf1"), 0);
    assert!(s.gnb.tunnels.is_empty());
}

#[test]
fn heartbeats_both_ways_and_peer_down_after_misses() {
    let mut s = Sim::associated();
    s.create_ok("imsi-1", 1, "edge1", None);
    s.advance(Duration::from_millis(1000));
    assert_eq!(s.upf("upf1").fake.count(mt::HeartbeatRequest), 1);
    s.advance(Duration::from_millis(1000));
    assert_eq!(s.upf("upf1").fake.count(mt::HeartbeatRequest), 2);

    // The UPF's heartbeat is answered with our Recovery Time Stamp.
    let hb = s.upf("upf1").fake.heartbeat_request();
    let addr = s.upf("upf1").addr;
    s.smf.handle_pfcp(s.now, addr, &hb);
    let Some(Action::SendPfcp { to, data }) = s.smf.poll_action() else {
        panic!("no answer to the heartbeat");
    };
    assert_eq!(to, addr);
    let m = Message::parse(&data).expect("valid");
    assert_eq!(m.header.seq, Message::parse(&hb).expect("valid").header.seq);
    let MessageBody::HeartbeatResponse(h) = m.body else {
        panic!("not a heartbeat response");
    };
    assert_eq!(h.recovery_time_stamp, 1000);

    // It stops answering: down after the heartbeat's N1 retransmissions.
    s.upf("upf1").dead = true;
    // Heartbeat, N1 retransmissions T1 apart, give-up T1 after the last.
    s.advance(Duration::from_millis(1000 + 3 * 100 + 50));
    assert_eq!(
        s.smf.upfs()[0].state,
        AssocState::Associated,
        "not before the last T1"
    );
    s.advance(Duration::from_millis(100));
    assert_eq!(s.smf.upfs()[0].state, AssocState::Down);
    assert_eq!(s.smf.upfs()[1].state, AssocState::Associated);
    assert_eq!(
        s.smf.session("imsi-1", 1).map(|v| v.state),
        Some(SessionState::Lost)
    );
    // New sessions on it are refused cleanly.
    let id = s.create("imsi-2", 1, "edge1", Some("upf1"));
    assert!(matches!(
        s.created.remove(&id),
        Some(Err(SmfError::NotAssociated(_)))
    ));

    // It comes back with the same Recovery Time Stamp (it did not restart
    // and still holds the session): the old session is deleted and a new
    // one made, so nothing is duplicated whether or not it kept it.
    s.upf("upf1").dead = false;
    let old_up_seid = s.smf.session("imsi-1", 1).map(|v| v.info.up_seid);
    s.advance(Duration::from_millis(1500));
    assert_eq!(s.smf.upfs()[0].state, AssocState::Associated);
    assert_eq!(s.smf.upfs()[0].restarts, 0);
    let v = s.smf.session("imsi-1", 1).expect("kept");
    assert_eq!(v.state, SessionState::Active);
    assert_ne!(Some(v.info.up_seid), old_up_seid);
    let fake = &s.upf("upf1").fake;
    assert_eq!(fake.sessions.len(), 1);
    assert!(fake.sessions.contains_key(&v.info.up_seid));
}

#[test]
fn upf_restart_re_establishes_sessions_without_the_user() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    let b = s.create_ok("imsi-2", 1, "edge1", None);
    let other = s.create_ok("imsi-1", 2, "edge2", None);
    assert_eq!(other.upf, "upf2");

    s.upf("upf1").fake.restart(7777, 0x500);
    s.advance(Duration::from_millis(1100)); // next heartbeat shows the new Recovery Time Stamp
    let u = &s.smf.upfs()[0];
    assert_eq!(
        (u.state, u.recovery_time_stamp, u.restarts),
        (AssocState::Associated, Some(7777), 1)
    );
    let fake = &s.upf("upf1").fake;
    assert_eq!(fake.sessions.len(), 2, "both sessions re-established");
    for old in [&a, &b] {
        let fs = fake
            .sessions
            .values()
            .find(|f| f.cp_seid == old.cp_seid)
            .expect("same CP SEID");
        let ue = fs.est.create_pdrs[0].pdi.ue_ip_addresses[0].ipv4;
        assert_eq!(ue, Some(old.ue_addr), "same UE address");
    }
    for old in [a, b] {
        let v = s.smf.session(&old.ue_id, 1).expect("still there");
        assert_eq!(v.state, SessionState::Active);
        assert_ne!(
            v.info.ul_teid, old.ul_teid,
            "the restarted UPF chose a new TEID"
        );
        assert!(v.info.ul_teid >= 0x500);
        // The gNB's old tunnel went, a new one carries the new UL TEID,
        // and the UPF forwards downlink to it.
        assert!(s.gnb.deleted.contains(&old.dl_teid));
        let t = &s.gnb.tunnels[&v.info.dl_teid];
        assert_eq!(t.ul_teid, v.info.ul_teid);
        let fs = s
            .upf("upf1")
            .fake
            .sessions
            .values()
            .find(|f| f.cp_seid == old.cp_seid)
            .cloned()
            .expect("there");
        assert_eq!(
            fs.fars[&2].1.and_then(|o| o.teid),
            Some(v.info.dl_teid),
            "downlink FAR forwards to the gNB's current tunnel"
        );
    }
    // upf2 untouched.
    let v = s.smf.session("imsi-1", 2).expect("there");
    assert_eq!(v.info.ul_teid, other.ul_teid);
    assert_eq!(s.smf.metrics().sessions_restored, 2);
    assert_eq!(s.in_use("upf1"), 2);
}

#[test]
fn restart_seen_in_the_upfs_own_heartbeat() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    s.upf("upf1").fake.restart(8888, 0x700);
    let hb = s.upf("upf1").fake.heartbeat_request();
    let addr = s.upf("upf1").addr;
    s.smf.handle_pfcp(s.now, addr, &hb);
    s.pump();
    let v = s.smf.session("imsi-1", 1).expect("there");
    assert_eq!(v.state, SessionState::Active);
    assert_eq!(v.info.ul_teid, 0x700);
    assert_eq!(v.info.cp_seid, a.cp_seid);
    assert_eq!(s.upf("upf1").fake.sessions.len(), 1);
}

#[test]
fn restart_within_the_same_second_seen_in_the_upfs_association_setup() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    let rts = s.upf("upf1").fake.rts;
    // Same Recovery Time Stamp: heartbeats cannot tell.
    s.upf("upf1").fake.restart(rts, 0x900);
    s.advance(Duration::from_millis(1100));
    assert_eq!(s.upf("upf1").fake.sessions.len(), 0, "not noticed yet");
    let req = s.upf("upf1").fake.association_setup_request();
    let addr = s.upf("upf1").addr;
    s.smf.handle_pfcp(s.now, addr, &req);
    s.pump();
    let u = &s.smf.upfs()[0];
    assert_eq!((u.state, u.restarts), (AssocState::Associated, 1));
    let v = s.smf.session("imsi-1", 1).expect("there");
    assert_eq!(v.state, SessionState::Active);
    assert_eq!(v.info.ul_teid, 0x900, "re-established at the restarted UPF");
    assert_eq!(v.info.cp_seid, a.cp_seid);
    assert_eq!(v.info.ue_addr, a.ue_addr);
    assert_eq!(s.upf("upf1").fake.sessions.len(), 1);
    assert_eq!(s.smf.metrics().sessions_restored, 1);
}

#[test]
fn two_sessions_of_one_ue_to_two_upfs_release_one_keeps_the_other() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", Some("upf1"));
    let b = s.create_ok("imsi-1", 2, "edge2", Some("upf2"));
    assert_eq!((a.upf.as_str(), b.upf.as_str()), ("upf1", "upf2"));
    assert_ne!(a.ue_addr, b.ue_addr);
    assert_ne!(a.cp_seid, b.cp_seid);
    assert_eq!(s.gnb.tunnels.len(), 2);
    let r = s.release("imsi-1", 1);
    assert_eq!(s.released.remove(&r), Some(Ok(())));
    assert!(s.upf("upf1").fake.sessions.is_empty());
    assert_eq!(s.upf("upf2").fake.sessions.len(), 1);
    assert_eq!(
        s.gnb.tunnels.keys().copied().collect::<Vec<_>>(),
        vec![b.dl_teid]
    );
    let v = s.smf.session("imsi-1", 2).expect("kept");
    assert_eq!(v.state, SessionState::Active);
    assert_eq!(s.upf("upf2").fake.count(mt::SessionDeletionRequest), 0);
}

#[test]
fn pool_exhaustion_is_a_clean_error() {
    let mut s = Sim::associated();
    // 10.60.0.0/30: two usable addresses.
    s.create_ok("imsi-1", 1, "edge1", None);
    s.create_ok("imsi-2", 1, "edge1", None);
    let ests = s.upf("upf1").fake.count(mt::SessionEstablishmentRequest);
    let id = s.create("imsi-3", 1, "edge1", None);
    match s.created.remove(&id) {
        Some(Err(e @ SmfError::PoolExhausted { .. })) => {
            assert_eq!(e.status(), 503);
            assert_eq!(e.field(), Some("dnn"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.upf("upf1").fake.count(mt::SessionEstablishmentRequest),
        ests
    );
    assert_eq!(s.gnb.tunnels.len(), 2);
    assert!(s.smf.session("imsi-3", 1).is_none());
    // Freeing one makes room again.
    let r = s.release("imsi-1", 1);
    assert_eq!(s.released.remove(&r), Some(Ok(())));
    s.create_ok("imsi-3", 1, "edge1", None);
}

#[test]
fn duplicate_and_bad_requests_are_refused() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    let id = s.create("imsi-1", 1, "edge1", None);
    match s.created.remove(&id) {
        Some(Err(e @ SmfError::Duplicate { .. })) => assert_eq!(e.status(), 409),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.smf.session("imsi-1", 1).map(|v| v.info), Some(a));
    assert_eq!(s.in_use("upf1"), 1);
    for (ue, psi, dnn, upf, field) in [
        ("", 1, "edge1", None, "ue_id"),
        ("imsi-9", 0, "edge1", None, "pdu_session_id"),
        ("imsi-9", 16, "edge1", None, "pdu_session_id"),
        ("imsi-9", 1, "nowhere", None, "dnn"),
        ("imsi-9", 1, "edge1", Some("upf9"), "upf"),
        ("imsi-9", 1, "edge2", Some("upf1"), "dnn"),
    ] {
        let id = s.create(ue, psi, dnn, upf);
        match s.created.remove(&id) {
            Some(Err(e)) => {
                assert_eq!(e.status(), 400, "{e}");
                assert_eq!(e.field(), Some(field), "{e}");
            }
            other => panic!("{ue}/{psi}/{dnn}: {other:?}"),
        }
    }
    assert_eq!(s.smf.sessions().len(), 1);
}

#[test]
fn n2_failure_rolls_back_the_pfcp_session_and_address() {
    let mut s = Sim::associated();
    s.gnb.fail = Some("connection refused".into());
    let id = s.create("imsi-1", 1, "edge1", None);
    match s.created.remove(&id) {
        Some(Err(e @ SmfError::N2Failed { .. })) => assert_eq!(e.field(), Some("gnb")),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.upf("upf1").fake.count(mt::SessionDeletionRequest), 1);
    assert!(s.upf("upf1").fake.sessions.is_empty());
    assert_eq!(s.in_use("upf1"), 0);
    assert!(s.smf.sessions().is_empty());
    // The same key works afterwards.
    s.gnb.fail = None;
    s.create_ok("imsi-1", 1, "edge1", None);
}

#[test]
fn modification_rejected_rolls_back_everything() {
    let mut s = Sim::associated();
    s.upf("upf1").fake.reject_modification = Some(pfcp::Cause::RuleCreationModificationFailure);
    let id = s.create("imsi-1", 1, "edge1", None);
    match s.created.remove(&id) {
        Some(Err(SmfError::UpfRejected { cause, .. })) => assert_eq!(cause, 73),
        other => panic!("{other:?}"),
    }
    assert!(s.upf("upf1").fake.sessions.is_empty());
    assert!(s.gnb.tunnels.is_empty(), "gNB tunnel deleted");
    assert_eq!(s.in_use("upf1"), 0);
}

#[test]
fn establishment_rejected_frees_the_address() {
    let mut s = Sim::associated();
    s.upf("upf1").fake.reject_establishment = Some(pfcp::Cause::NoResourcesAvailable);
    let id = s.create("imsi-1", 1, "edge1", None);
    match s.created.remove(&id) {
        Some(Err(SmfError::UpfRejected { cause, .. })) => assert_eq!(cause, 75),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.in_use("upf1"), 0);
    assert!(s.gnb.tunnels.is_empty());
    assert_eq!(s.smf.metrics().sessions_failed, 1);
}

#[test]
fn session_reports_are_answered_once_and_counted_once() {
    let mut s = Sim::associated();
    let a = s.create_ok("imsi-1", 1, "edge1", None);
    let rep = s.upf("upf1").fake.report_request(a.cp_seid, 1000, 3000);
    let addr = s.upf("upf1").addr;
    for _ in 0..2 {
        // The second one is a retransmission (same sequence number).
        s.smf.handle_pfcp(s.now, addr, &rep);
        let Some(Action::SendPfcp { to, data }) = s.smf.poll_action() else {
            panic!("no Session Report Response");
        };
        assert_eq!(to, addr);
        let m = Message::parse(&data).expect("valid");
        assert_eq!(m.header.seid, Some(a.up_seid));
        let MessageBody::SessionReportResponse(r) = m.body else {
            panic!("wrong type");
        };
        assert_eq!(r.cause, pfcp::Cause::RequestAccepted);
    }
    let v = s.smf.session("imsi-1", 1).expect("there");
    assert_eq!(
        (v.usage.reports, v.usage.ul_bytes, v.usage.dl_bytes),
        (1, 1000, 3000)
    );
    // Unknown SEID: Session context not found.
    let rep = s.upf("upf1").fake.report_request(999_999, 1, 1);
    s.smf.handle_pfcp(s.now, addr, &rep);
    let Some(Action::SendPfcp { data, .. }) = s.smf.poll_action() else {
        panic!("no answer");
    };
    let MessageBody::SessionReportResponse(r) = Message::parse(&data).expect("valid").body else {
        panic!("wrong type");
    };
    assert_eq!(r.cause, pfcp::Cause::SessionContextNotFound);
}

#[test]
fn release_while_setting_up_is_busy_and_metrics_render() {
    let mut s = Sim::associated();
    s.upf("upf1").dead = true;
    s.create("imsi-1", 1, "edge1", None);
    let r = s.release("imsi-1", 1);
    assert!(matches!(
        s.released.remove(&r),
        Some(Err(SmfError::Busy { .. }))
    ));
    s.upf("upf1").dead = false;
    s.advance(Duration::from_millis(150));
    assert_eq!(
        s.smf.session("imsi-1", 1).map(|v| v.state),
        Some(SessionState::Active)
    );
    let text = s.smf.metrics_text();
    assert!(text.contains("smf_sessions_created_total 1"), "{text}");
    assert!(
        text.contains("smf_upf_associated{upf=\"upf1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("smf_pool_addresses_in_use{upf=\"upf1\",dnn=\"edge1\"} 1"),
        "{text}"
    );
    assert!(text.contains("smf_session_setup_seconds_count 1"), "{text}");
}

/// An IPv4/UDP datagram around `payload` (LINKTYPE_IPV4 pcap record body).
fn ipv4_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only");
    };
    upf::packet::build_udp(s, src.port(), d, dst.port(), payload)
}

fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&228u32.to_le_bytes()); // LINKTYPE_IPV4
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    std::fs::write(path, f).expect("write pcap");
}

fn tshark(pcap: &std::path::Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every PFCP message of a session's life (association, heartbeat,
/// establishment, modification, report, deletion, both ways) decodes in
/// tshark without a malformed-packet or error-level expert note, with the
/// intended values.
#[test]
fn pfcp_decodes_in_tshark() {
    testkit::require_tool("tshark");
    let mut s = Sim::associated();
    let info = s.create_ok("imsi-1", 1, "edge1", None);
    s.advance(Duration::from_millis(1000)); // a heartbeat
    let rep = s.upf("upf1").fake.report_request(info.cp_seid, 10, 20);
    let addr = s.upf("upf1").addr;
    s.received.push((addr, rep.clone()));
    s.smf.handle_pfcp(s.now, addr, &rep);
    s.pump();
    let r = s.release("imsi-1", 1);
    assert_eq!(s.released.remove(&r), Some(Ok(())));

    let me: SocketAddr = "10.100.0.1:8805".parse().expect("addr");
    let mut pkts: Vec<Vec<u8>> = s.sent.iter().map(|(to, d)| ipv4_udp(me, *to, d)).collect();
    pkts.extend(s.received.iter().map(|(from, d)| ipv4_udp(*from, me, d)));
    let dir = std::env::temp_dir().join(format!("smf-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let pcap = dir.join("n4.pcap");
    write_pcap(&pcap, &pkts);

    let all = tshark(&pcap, "pfcp", &["pfcp.msg_type"]);
    let bad = tshark(
        &pcap,
        "_ws.malformed || _ws.expert.severity >= 8388608",
        &["frame.number"],
    );
    let est = tshark(
        &pcap,
        "pfcp.msg_type == 50",
        &[
            "pfcp.f_teid_flags.ch",
            "pfcp.ue_ip_addr_ipv4",
            "pfcp.tgpp_interface_type",
            "pfcp.qfi_value",
            "pfcp.f_seid.ipv4",
        ],
    );
    let md = tshark(
        &pcap,
        "pfcp.msg_type == 52",
        &[
            "pfcp.seid",
            "pfcp.outer_hdr_creation.teid",
            "pfcp.outer_hdr_creation.ipv4",
            "pfcp.tgpp_interface_type",
            "pfcp.apply_action.forw",
        ],
    );
    let est_rsp = tshark(
        &pcap,
        "pfcp.msg_type == 51",
        &["pfcp.f_teid.teid", "pfcp.cause"],
    );
    let rep_rsp = tshark(&pcap, "pfcp.msg_type == 57", &["pfcp.seid", "pfcp.cause"]);
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(all.len(), pkts.len(), "every datagram is PFCP: {all:?}");
    assert!(bad.is_empty(), "malformed/error frames: {bad:?}");
    for ty in [1, 2, 5, 6, 50, 51, 52, 53, 54, 55, 56, 57] {
        assert!(
            all.iter().any(|l| l == &ty.to_string()),
            "no message type {ty} in {all:?}"
        );
    }
    assert_eq!(est.len(), 1, "{est:?}");
    let e = &est[0];
    assert!(e.starts_with("1|"), "CHOOSE flag: {e}");
    assert!(e.contains(&info.ue_addr.to_string()), "{e}");
    // 11 = N3 3GPP Access, 17 = N6.
    assert!(e.contains("11") && e.contains("17"), "{e}");
    assert!(e.contains("0x07"), "QFI 7: {e}");
    let m = &md[0];
    let fields: Vec<&str> = m.split('|').collect();
    assert_eq!(fields[0], format!("0x{:016x}", info.up_seid), "{m}");
    assert_eq!(fields[1], format!("0x{:08x}", info.dl_teid), "{m}");
    assert_eq!(fields[2], "10.3.0.1", "{m}");
    assert_eq!(fields[3], "11", "{m}");
    assert!(
        est_rsp
            .iter()
            .any(|l| l.starts_with(&format!("0x{:08x}", info.ul_teid))),
        "{est_rsp:?}"
    );
    assert!(rep_rsp[0].ends_with("|1"), "{rep_rsp:?}");
}

/// Seeded loss on N4 in both directions (turmoil style): whatever happens,
/// every request is answered exactly once, nothing leaks (addresses, gNB
/// tunnels), every active session is complete at the UPF, and the UPF keeps
/// an orphan only where the SMF gave up on a request.
#[test]
fn random_loss_keeps_the_books_straight() {
    let (mut retx, mut gave_up, mut ok) = (0, 0, 0);
    for seed in 1..=30u64 {
        let mut s = Sim::associated();
        for u in &mut s.upfs {
            u.loss = Some((Lcg(seed * 7919 + u.addr.port() as u64), 25));
        }
        let mut ids = Vec::new();
        for i in 0..12u8 {
            let (dnn, upf) = if i % 2 == 0 {
                ("edge2", "upf2")
            } else {
                ("edge1", "upf1")
            };
            if upf == "upf1" && i > 3 {
                continue; // its /30 pool holds two
            }
            ids.push(s.create(&format!("imsi-{i}"), 1 + i % 3, dnn, Some(upf)));
            s.advance(Duration::from_millis(7));
        }
        s.advance(Duration::from_secs(3));
        let created: Vec<SessionInfo> = ids
            .iter()
            .filter_map(|id| match s.created.get(id) {
                Some(Ok(i)) => Some(i.clone()),
                Some(Err(_)) => None,
                None => panic!("seed {seed}: request {id} never answered"),
            })
            .collect();
        let mut rel = Vec::new();
        for i in created.iter().step_by(2) {
            rel.push(s.release(&i.ue_id, i.pdu_session_id));
            s.advance(Duration::from_millis(5));
        }
        s.advance(Duration::from_secs(3));
        for r in &rel {
            assert!(
                s.released.contains_key(r),
                "seed {seed}: release {r} never answered"
            );
        }
        let sessions = s.smf.sessions();
        let in_use: usize = s.smf.upfs().iter().map(|u| u.pools[0].in_use).sum();
        assert_eq!(in_use, sessions.len(), "seed {seed}: address leak");
        let mut dl: Vec<u32> = sessions.iter().map(|v| v.info.dl_teid).collect();
        let mut tunnels: Vec<u32> = s.gnb.tunnels.keys().copied().collect();
        dl.sort_unstable();
        tunnels.sort_unstable();
        assert_eq!(dl, tunnels, "seed {seed}: gNB tunnels differ from sessions");
        let timeouts = s.smf.metrics().pfcp_timeouts;
        retx += s.smf.metrics().pfcp_retransmissions;
        gave_up += timeouts;
        ok += created.len();
        let mut orphans = 0;
        for u in &s.upfs {
            for (seid, f) in &u.fake.sessions {
                // An old UP session of a re-made one (its deletion given up)
                // shares the CP SEID but not the UP SEID: an orphan too.
                match sessions
                    .iter()
                    .find(|v| v.info.cp_seid == f.cp_seid && v.info.up_seid == *seid)
                {
                    Some(v) => {
                        // It may be mid-restore after a heartbeat loss; if
                        // active, the downlink must point at its tunnel.
                        if v.state == SessionState::Active {
                            assert_eq!(f.fars[&2].1.and_then(|o| o.teid), Some(v.info.dl_teid));
                        }
                    }
                    None => orphans += 1,
                }
            }
        }
        assert!(
            orphans as u64 <= timeouts,
            "seed {seed}: {orphans} orphans, {timeouts} give-ups"
        );
        for v in &sessions {
            if v.state == SessionState::Active {
                let u = s
                    .upfs
                    .iter()
                    .find(|u| u.fake.name == v.info.upf)
                    .expect("upf");
                assert!(
                    u.fake.sessions.contains_key(&v.info.up_seid),
                    "seed {seed}: {v:?} missing at UPF"
                );
            }
        }
    }
    // The loss did bite: retransmissions, some give-ups, mostly successes.
    assert!(
        retx > 100 && gave_up > 0 && ok > 100,
        "retx {retx}, gave up {gave_up}, ok {ok}"
    );
}
