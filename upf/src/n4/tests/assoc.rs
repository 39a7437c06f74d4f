//! Associations the UPF sets up itself (resent, retried, then up) and one
//! the SMF sets up meanwhile.

use super::*;

fn setup_response(seq: u32, i: u8, cause: pfcp::Cause, recovery: u32) -> Vec<u8> {
    Message::node(
        seq,
        pfcp::AssociationSetupResponse {
            node_id: smf_node(i),
            cause,
            recovery_time_stamp: recovery,
            ..Default::default()
        },
    )
    .to_vec()
    .expect("encode")
}

#[test]
fn upf_initiated_association_resent_retried_then_up() {
    let mut sim = Sim::new(N4Params {
        data_poll_interval: Duration::from_secs(3600),
        associate_with: vec![smf_addr(1)],
        ..params()
    });
    sim.pump();
    // Sent at start, resent every T1 (3 s) N1 (3) times; given up one T1
    // after the last resend, then after ASSOC_RETRY a new request with a
    // new sequence number.
    sim.advance(Duration::from_secs(12) + ASSOC_RETRY + Duration::from_secs(1));
    let reqs = sim.take_requests(pfcp::msg_type::AssociationSetupRequest);
    let times: Vec<u64> = reqs.iter().map(|s| (s.at - sim.t0).as_secs()).collect();
    assert_eq!(times, vec![0, 3, 6, 9, 12 + ASSOC_RETRY.as_secs()]);
    assert!(reqs.iter().all(|s| s.to == smf_addr(1)));
    let seqs: Vec<u32> = reqs.iter().map(|s| s.msg.header.seq).collect();
    assert!(
        seqs[..4].iter().all(|&q| q == seqs[0]),
        "resends keep the seq"
    );
    assert_ne!(seqs[4], seqs[0], "a new attempt, a new seq");
    let MessageBody::AssociationSetupRequest(r) = &reqs[4].msg.body else {
        panic!()
    };
    assert_eq!(r.node_id, pfcp::NodeId::Ipv4(UPF_N4));
    assert_eq!(r.recovery_time_stamp, RECOVERY);
    assert!(!sim.node.is_associated(&smf_node(1)));
    // A late answer to the first attempt is not taken for the current one.
    sim.deliver(
        smf_addr(1),
        &setup_response(seqs[0], 1, pfcp::Cause::RequestAccepted, 7),
    );
    assert!(!sim.node.is_associated(&smf_node(1)));
    // A refusal: try again later.
    sim.deliver(
        smf_addr(1),
        &setup_response(seqs[4], 1, pfcp::Cause::RequestRejected, 7),
    );
    assert!(!sim.node.is_associated(&smf_node(1)));
    sim.advance(ASSOC_RETRY);
    let reqs = sim.take_requests(pfcp::msg_type::AssociationSetupRequest);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    sim.deliver(
        smf_addr(1),
        &setup_response(reqs[0].msg.header.seq, 1, pfcp::Cause::RequestAccepted, 7),
    );
    assert!(sim.node.is_associated(&smf_node(1)));
    // Up: no more setup requests; heartbeats towards the SMF instead.
    sim.answer_heartbeats = true;
    sim.advance(Duration::from_secs(30));
    assert!(sim
        .take_requests(pfcp::msg_type::AssociationSetupRequest)
        .is_empty());
    assert!(!sim
        .take_requests(pfcp::msg_type::HeartbeatRequest)
        .is_empty());
}

#[test]
fn smf_initiated_association_ends_our_own_attempt() {
    let mut sim = Sim::new(N4Params {
        data_poll_interval: Duration::from_secs(3600),
        heartbeat_interval: None,
        associate_with: vec![smf_addr(1)],
        ..params()
    });
    sim.pump();
    assert_eq!(
        sim.take_requests(pfcp::msg_type::AssociationSetupRequest)
            .len(),
        1
    );
    let a = sim.associate(1, 100);
    assert_eq!(a.cause, pfcp::Cause::RequestAccepted);
    sim.advance(Duration::from_secs(60));
    assert!(
        sim.take_requests(pfcp::msg_type::AssociationSetupRequest)
            .is_empty(),
        "no resends once the SMF set the association up"
    );
    assert!(sim.node.is_associated(&smf_node(1)));
}
