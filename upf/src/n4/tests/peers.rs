//! A PFCP peer is its Node ID and its address: requests from another
//! address, for another peer's sessions, and a peer's restart announced by
//! Heartbeat; the retransmission store across a restart.

use super::*;

/// Not an SMF: an address on the N4 subnet without an association.
fn rogue() -> SocketAddr {
    SocketAddr::from(([10, 0, 4, 99], 8805))
}

fn stat(sim: &Sim, f: fn(&PfcpStats) -> &AtomicU64) -> u64 {
    f(sim.node.stats()).load(Ordering::Relaxed)
}

fn node_cause(m: &Message) -> pfcp::Cause {
    match &m.body {
        MessageBody::AssociationSetupResponse(r) => r.cause,
        MessageBody::AssociationUpdateResponse(r) => r.cause,
        MessageBody::AssociationReleaseResponse(r) => r.cause,
        MessageBody::SessionEstablishmentResponse(r) => r.cause,
        MessageBody::SessionModificationResponse(r) => r.cause,
        MessageBody::SessionDeletionResponse(r) => r.cause,
        b => panic!("not a response with a cause: {b:?}"),
    }
}

fn heartbeat(ts: u32) -> pfcp::HeartbeatRequest {
    pfcp::HeartbeatRequest {
        recovery_time_stamp: ts,
        ..Default::default()
    }
}

#[test]
fn requests_from_another_address_or_for_another_peer_are_refused_and_counted() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.associate(2, 200);
    let (seid, _) = sim.establish(1, 0x10);
    sim.take_events();
    let smf1 = smf_node(1);
    use pfcp::Cause::SessionContextNotFound as C65;
    use pfcp::Cause::{NoEstablishedPfcpAssociation as C72, RequestRejected as C64};

    // From an address without an association, with SMF 1's Node ID.
    let release = pfcp::AssociationReleaseRequest {
        node_id: smf1.clone(),
        ..Default::default()
    };
    let update = pfcp::AssociationUpdateRequest {
        node_id: smf1.clone(),
        ..Default::default()
    };
    let setup = pfcp::AssociationSetupRequest {
        node_id: smf1.clone(),
        recovery_time_stamp: 999,
        ..Default::default()
    };
    let causes = vec![
        node_cause(&sim.node_req(rogue(), release.clone())),
        node_cause(&sim.node_req(rogue(), update.clone())),
        node_cause(&sim.node_req(rogue(), setup)),
        node_cause(&sim.session_req(rogue(), 0, est_request(1, 0x11))),
        node_cause(&sim.session_req(rogue(), seid, pfcp::SessionModificationRequest::default())),
        node_cause(&sim.session_req(rogue(), seid, pfcp::SessionDeletionRequest::default())),
    ];
    assert_eq!(causes, vec![C72, C72, C64, C72, C72, C72]);
    // A heartbeat from there is answered, and its stamp means nothing.
    let r = sim.node_req(rogue(), heartbeat(12345));
    assert!(matches!(r.body, MessageBody::HeartbeatResponse(_)));

    // SMF 2, associated, acting for SMF 1 or on SMF 1's session.
    let causes = vec![
        node_cause(&sim.node_req(smf_addr(2), release.clone())),
        node_cause(&sim.session_req(smf_addr(2), 0, est_request(1, 0x12))),
        node_cause(&sim.session_req(
            smf_addr(2),
            seid,
            pfcp::SessionModificationRequest::default(),
        )),
        node_cause(&sim.session_req(smf_addr(2), seid, pfcp::SessionDeletionRequest::default())),
    ];
    assert_eq!(causes, vec![C72, C72, C65, C65]);

    // Nothing changed.
    assert!(sim.node.is_associated(&smf1) && sim.node.is_associated(&smf_node(2)));
    let a1 = sim
        .node
        .associations()
        .find(|(n, _)| **n == smf1)
        .map(|(_, a)| a);
    assert_eq!(a1, Some(smf_addr(1)), "the association keeps its address");
    assert_eq!(sim.table.len(), 1);
    assert_eq!(sim.node.sessions().collect::<Vec<_>>(), vec![(seid, 0x10)]);
    assert!(sim.take_events().is_empty(), "no rule changed");
    // Counted: every refusal that named SMF 1 or its session from
    // elsewhere (the rogue's 6, SMF 2's 4).
    assert_eq!(stat(&sim, |s| &s.wrong_peer), 10);
    assert_eq!(stat(&sim, |s| &s.rejected), 10);
    let metric = sim.node.stats().snapshot();
    assert!(metric.contains(&("wrong_peer", 10)), "{metric:?}");

    // SMF 1 from another port of its address is still SMF 1.
    let other_port = SocketAddr::from((smf_addr(1).ip(), 40000));
    let r = sim.node_req(other_port, update);
    assert_eq!(node_cause(&r), pfcp::Cause::RequestAccepted);
    let r = sim.session_req(other_port, seid, pfcp::SessionDeletionRequest::default());
    assert_eq!(node_cause(&r), pfcp::Cause::RequestAccepted);
    assert!(sim.table.is_empty());
    let r = sim.node_req(smf_addr(1), release);
    assert_eq!(node_cause(&r), pfcp::Cause::RequestAccepted);
    assert!(!sim.node.is_associated(&smf1));
    assert_eq!(stat(&sim, |s| &s.wrong_peer), 10);
}

#[test]
fn heartbeat_with_a_new_recovery_time_stamp_deletes_that_peers_sessions() {
    let mut sim = Sim::new(params());
    let (a, b, c) = two_smfs_three_sessions(&mut sim);
    // The same stamp, and an older one (a stale message): nothing.
    sim.node_req(smf_addr(1), heartbeat(100));
    sim.node_req(smf_addr(1), heartbeat(99));
    assert_eq!(sim.table.len(), 3);
    assert_eq!(stat(&sim, |s| &s.peer_restarts), 0);
    assert!(sim.node.replay_store().len_of(smf_addr(1).ip()) > 0);

    // SMF 1 restarted: its Heartbeat Request says so.
    let r = sim.node_req(smf_addr(1), heartbeat(101));
    let MessageBody::HeartbeatResponse(h) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(h.recovery_time_stamp, RECOVERY, "answered");
    assert!(sim.table.session(a).is_none() && sim.table.session(b).is_none());
    assert!(sim.table.session(c).is_some(), "SMF 2's session stays");
    assert!(
        !sim.node.is_associated(&smf_node(1)),
        "its association is gone"
    );
    assert!(sim.node.is_associated(&smf_node(2)));
    assert_eq!(
        sim.take_events(),
        vec![
            N4Event::RulesChanged,
            N4Event::AssociationLost { node: smf_node(1) }
        ]
    );
    assert_eq!(stat(&sim, |s| &s.peer_restarts), 1);
    assert_eq!(
        sim.node.replay_store().len_of(smf_addr(1).ip()),
        0,
        "no answer of its previous life is kept"
    );
    // Its sessions are refused until it associates again.
    let r = sim.session_req(smf_addr(1), a, pfcp::SessionDeletionRequest::default());
    assert_eq!(node_cause(&r), pfcp::Cause::NoEstablishedPfcpAssociation);

    // SMF 2 restarts too, seen in the answer to our Heartbeat Request.
    sim.recovery.insert(smf_addr(2), 201);
    sim.answer_heartbeats = true;
    sim.advance(Duration::from_secs(5));
    assert!(sim.table.is_empty());
    assert!(!sim.node.is_associated(&smf_node(2)));
    assert_eq!(stat(&sim, |s| &s.peer_restarts), 2);
}

#[test]
fn retransmissions_are_answered_once_and_never_across_a_restart() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    let seq = sim.next_seq();
    let req = Message::session(0, seq, est_request(1, 0x40))
        .to_vec()
        .expect("encode");
    sim.deliver(smf_addr(1), &req);
    let (_, first) = sim.response_to(smf_addr(1), seq);
    // Same peer, same sequence number, other contents: a new request.
    let other = Message::session(0, seq, est_request(1, 0x41))
        .to_vec()
        .expect("encode");
    sim.deliver(smf_addr(1), &other);
    let (_, second) = sim.response_to(smf_addr(1), seq);
    assert_ne!(first, second);
    assert_eq!(sim.table.len(), 2, "both executed");
    assert_eq!(stat(&sim, |s| &s.retransmissions), 0);
    // The second again: its slot's answer, not executed again.
    sim.deliver(smf_addr(1), &other);
    let (_, again) = sim.response_to(smf_addr(1), seq);
    assert_eq!(again, second, "the second, replayed");
    assert_eq!(sim.table.len(), 2);
    assert_eq!(stat(&sim, |s| &s.retransmissions), 1);

    // The SMF restarts (Heartbeat), associates anew and happens to send
    // the very same bytes: executed, not answered from its previous life.
    sim.node_req(smf_addr(1), heartbeat(101));
    assert!(sim.table.is_empty());
    sim.associate(1, 101);
    sim.deliver(smf_addr(1), &other);
    let (m, fresh) = sim.response_to(smf_addr(1), seq);
    assert_ne!(fresh, second, "a new UP SEID");
    assert_eq!(node_cause(&m), pfcp::Cause::RequestAccepted);
    assert_eq!(sim.table.len(), 1);

    // Bounded per peer and in total; nothing stored for strangers.
    sim.node.set_replay_bounds(50, 20);
    for _ in 0..200 {
        sim.node_req(smf_addr(1), heartbeat(101));
        sim.node_req(rogue(), heartbeat(7));
    }
    assert_eq!(sim.node.replay_store().len_of(smf_addr(1).ip()), 20);
    assert_eq!(sim.node.replay_store().len_of(rogue().ip()), 0);
    assert_eq!(sim.node.replay_store().len(), 20);
}

#[test]
fn sessions_per_peer_are_bounded_and_a_deletion_frees_a_place() {
    let mut sim = Sim::new(params());
    sim.node.set_max_sessions_per_peer(2);
    sim.associate(1, 100);
    sim.associate(2, 200);
    let (first, _) = sim.establish(1, 0x10);
    sim.establish(1, 0x11);
    // The third of SMF 1: No resources available (74), counted; the
    // table is unchanged.
    let m = sim.session_req(smf_addr(1), 0, est_request(1, 0x12));
    assert_eq!(node_cause(&m), pfcp::Cause::NoResourcesAvailable);
    assert_eq!(stat(&sim, |s| &s.over_limit), 1);
    assert_eq!(sim.table.len(), 2);
    // Another peer has its own bound.
    sim.establish(2, 0x20);
    // A deletion frees a place.
    let m = sim.session_req(smf_addr(1), first, pfcp::SessionDeletionRequest::default());
    assert_eq!(node_cause(&m), pfcp::Cause::RequestAccepted);
    sim.establish(1, 0x12);
    assert_eq!(sim.table.len(), 3);
}

#[test]
fn an_establishment_repeated_for_the_same_cp_f_seid_replaces_the_session() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.associate(2, 200);
    // The SMF's first try: its response is lost, the SMF tries again with
    // a new sequence number (a new request, not a retransmission).
    let (first, _) = sim.establish(1, 0x10);
    // SMF 2 uses the same SEID value (for another UE).
    let mut r = est_request(2, 0x10);
    for p in &mut r.create_pdrs {
        p.pdi.ue_ip_addresses[0].ipv4 = Some(ue(0x99));
    }
    let other = established_seid(sim.session_req(smf_addr(2), 0, r));
    let (second, _) = sim.establish(1, 0x10);
    assert_ne!(first, second);
    assert!(sim.table.session(first).is_none(), "no orphan left");
    assert!(sim.table.session(second).is_some());
    assert!(sim.table.session(other).is_some(), "same SEID, other peer");
    assert_eq!(sim.table.len(), 2);
    assert_eq!(stat(&sim, |s| &s.replaced), 1);
    // The replacement is the session the SMF's SEID names from now on.
    let m = sim.session_req(smf_addr(1), second, pfcp::SessionDeletionRequest::default());
    assert_eq!(node_cause(&m), pfcp::Cause::RequestAccepted);
    assert_eq!(sim.table.len(), 1);
}
