//! Session Report Requests among many sessions: downlink data reports once
//! per buffering episode, volume thresholds, measurement periods that
//! follow URR changes and stop with the session.

use super::*;

/// Session Report Requests of the given report type the UPF sent, taken
/// from `out`.
fn take_reports(sim: &mut Sim, rt: pfcp::ReportType) -> Vec<Sent> {
    sim.take_requests(56)
        .into_iter()
        .filter(|s| {
            matches!(&s.msg.body, MessageBody::SessionReportRequest(r) if r.report_type.contains(rt))
        })
        .collect()
}

/// The usage reports of Session Report Requests, with the SMF SEID.
fn usage_reports(sent: &[Sent]) -> Vec<(u64, pfcp::UsageReport)> {
    sent.iter()
        .flat_map(|s| match &s.msg.body {
            MessageBody::SessionReportRequest(r) => r
                .usage_reports
                .iter()
                .map(|u| (s.msg.header.seid.unwrap_or(0), u.clone()))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// A session whose URR 1 has only a measurement period of `secs`.
fn est_with_period(i: u8, cp_seid: u64, secs: u32) -> pfcp::SessionEstablishmentRequest {
    let mut r = est_request(i, cp_seid);
    r.create_urrs[0].reporting_triggers = pfcp::ReportingTriggers::PERIO;
    r.create_urrs[0].measurement_period = Some(secs);
    r.create_urrs[0].volume_threshold = None;
    r
}

#[test]
fn dl_data_report_reaches_the_smf_once_per_buffering_episode_among_many_sessions() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    let mut seids = Vec::new();
    for cp in 0x100..0x140u64 {
        seids.push(sim.establish(1, cp).0);
    }
    sim.advance(Duration::from_millis(100));
    assert!(take_reports(&mut sim, pfcp::ReportType::DLDR).is_empty());
    // A first downlink packet for one UE in the middle of the table.
    let cp = 0x123;
    downlink_packet(&sim, cp);
    downlink_packet(&sim, cp); // same episode: the buffer is not empty
    let start = sim.now;
    sim.advance(Duration::from_millis(20));
    let dldr = take_reports(&mut sim, pfcp::ReportType::DLDR);
    assert_eq!(dldr.len(), 1, "one report for one episode: {dldr:?}");
    assert_eq!(dldr[0].msg.header.seid, Some(cp), "to that session's SEID");
    assert!(dldr[0].at - start <= Duration::from_millis(20), "next poll");
    let seq = dldr[0].msg.header.seq;
    let resp = Message::session(
        cp,
        seq,
        pfcp::SessionReportResponse {
            cause: pfcp::Cause::RequestAccepted,
            ..Default::default()
        },
    );
    sim.deliver(smf_addr(1), &resp.to_vec().expect("encode"));
    // Still buffering: more packets make no new report.
    downlink_packet(&sim, cp);
    sim.advance(Duration::from_secs(1));
    assert!(take_reports(&mut sim, pfcp::ReportType::DLDR).is_empty());
    // The buffer is emptied (as a flush does); the next packet starts a
    // new episode and a new report, for this session only.
    let local = seids[(cp - 0x100) as usize];
    let shared = sim.table.session(local).expect("session").shared.clone();
    assert_eq!(shared.drain_buffer(|_| {}), 3);
    downlink_packet(&sim, cp);
    sim.advance(Duration::from_millis(20));
    let dldr = take_reports(&mut sim, pfcp::ReportType::DLDR);
    assert_eq!(dldr.len(), 1, "{dldr:?}");
    assert_eq!(dldr[0].msg.header.seid, Some(cp));
}

#[test]
fn volume_threshold_report_reaches_the_smf_among_many_sessions() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    sim.answer_reports = true;
    for cp in 0x200..0x220u64 {
        sim.establish(1, cp);
    }
    let cp = 0x2ab;
    let mut r = est_request(1, cp);
    r.create_urrs[0].volume_threshold = Some(pfcp::Volume {
        total: Some(1000),
        ..Default::default()
    });
    // The downlink goes to the gNB the uplink comes from.
    r.create_fars[1] = pfcp::CreateFar {
        far_id: 2,
        apply_action: pfcp::ApplyAction::FORW,
        forwarding_parameters: Some(pfcp::ForwardingParameters {
            destination_interface: pfcp::DestinationInterface::Access,
            outer_header_creation: Some(pfcp::OuterHeaderCreation::gtpu_ipv4(1, GNB)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = sim.session_req(smf_addr(1), 0, r);
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    let Some(pfcp::FTeid::Assigned { teid, .. }) = e.created_pdrs[0].local_f_teid else {
        panic!("{e:?}")
    };
    let uplink = |sim: &Sim, payload: usize| {
        let pkt = build_udp(ue(cp), 6000, SRV, 5000, &vec![0u8; payload]);
        let snap = sim.table.snapshot();
        assert!(matches!(
            snap.uplink(GNB, teid, None, &pkt, sim.now),
            Verdict::ToN6
        ));
        pkt.len() as u64
    };
    // Below the threshold: nothing.
    let mut sent = uplink(&sim, 400);
    sim.advance(Duration::from_millis(100));
    assert!(take_reports(&mut sim, pfcp::ReportType::USAR).is_empty());
    // Crossing it: one report at the next poll, with the volume.
    sent += uplink(&sim, 700);
    sent += uplink(&sim, 10); // still over: no second signal
    sim.advance(Duration::from_millis(20));
    let usar = take_reports(&mut sim, pfcp::ReportType::USAR);
    assert_eq!(usar.len(), 1, "{usar:?}");
    let reps = usage_reports(&usar);
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].0, cp, "to that session's SEID");
    let u = &reps[0].1;
    assert_eq!(u.usage_report_trigger, pfcp::UsageReportTrigger::VOLTH);
    assert_eq!(
        u.volume_measurement.and_then(|v| v.uplink_volume),
        Some(sent)
    );
    sim.advance(Duration::from_secs(1));
    assert!(
        take_reports(&mut sim, pfcp::ReportType::USAR).is_empty(),
        "counters reset, no traffic"
    );
    // Crossing it again reports again.
    uplink(&sim, 1200);
    sim.advance(Duration::from_millis(20));
    let usar = take_reports(&mut sim, pfcp::ReportType::USAR);
    assert_eq!(usar.len(), 1, "{usar:?}");
    assert_eq!(
        usage_reports(&usar)[0].1.usage_report_trigger,
        pfcp::UsageReportTrigger::VOLTH
    );
}

#[test]
fn period_report_follows_a_urr_modification_not_the_old_period() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    sim.answer_reports = true;
    let cp = 0x300;
    let seid = established_seid(sim.session_req(smf_addr(1), 0, est_with_period(1, cp, 10)));
    let t_est = sim.now;
    sim.advance(Duration::from_secs(5));
    // Period 10 s -> 30 s, counted from the modification.
    let r = sim.modify(
        1,
        seid,
        pfcp::SessionModificationRequest {
            update_urrs: vec![pfcp::UpdateUrr {
                urr_id: 1,
                measurement_period: Some(30),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(r.cause, pfcp::Cause::RequestAccepted);
    let t_mod = sim.now;
    assert!(sim.table.periods_consistent());
    // The old due times (10 s, 20 s, 30 s after establishment) pass.
    sim.advance(t_mod + Duration::from_secs(30) - Duration::from_millis(40) - sim.now);
    assert!(sim.now > t_est + Duration::from_secs(30));
    let early = take_reports(&mut sim, pfcp::ReportType::USAR);
    assert!(early.is_empty(), "no report at the old period: {early:?}");
    // The new one: 30 s after the modification, at the next poll.
    sim.advance(Duration::from_millis(60));
    let usar = take_reports(&mut sim, pfcp::ReportType::USAR);
    assert_eq!(usar.len(), 1, "{usar:?}");
    assert!(usar[0].at >= t_mod + Duration::from_secs(30));
    assert!(usar[0].at - (t_mod + Duration::from_secs(30)) <= Duration::from_millis(20));
    let u = &usage_reports(&usar)[0].1;
    assert_eq!(u.usage_report_trigger, pfcp::UsageReportTrigger::PERIO);
    // And every 30 s from there.
    let first = usar[0].at;
    sim.advance(Duration::from_secs(30));
    let usar = take_reports(&mut sim, pfcp::ReportType::USAR);
    assert_eq!(usar.len(), 1, "{usar:?}");
    assert!(usar[0].at - first >= Duration::from_secs(30));
    assert!(usar[0].at - first <= Duration::from_secs(30) + Duration::from_millis(20));
    assert!(sim.table.periods_consistent());
}

#[test]
fn deleted_session_period_no_longer_fires() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    sim.answer_reports = true;
    let gone = established_seid(sim.session_req(smf_addr(1), 0, est_with_period(1, 0x400, 10)));
    established_seid(sim.session_req(smf_addr(1), 0, est_with_period(1, 0x401, 10)));
    sim.advance(Duration::from_secs(5));
    let m = sim.session_req(smf_addr(1), gone, pfcp::SessionDeletionRequest::default());
    let MessageBody::SessionDeletionResponse(d) = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(d.cause, pfcp::Cause::RequestAccepted);
    assert!(sim.table.periods_consistent());
    sim.take_events();
    sim.advance(Duration::from_secs(31));
    let usar = take_reports(&mut sim, pfcp::ReportType::USAR);
    let to: Vec<u64> = usar.iter().filter_map(|s| s.msg.header.seid).collect();
    assert_eq!(to, vec![0x401; 3], "only the remaining session, every 10 s");
    let in_process: Vec<u64> = sim
        .take_usage_reports()
        .into_iter()
        .map(|r| r.seid)
        .collect();
    assert!(!in_process.contains(&gone), "{in_process:?}");
    assert_eq!(in_process.len(), 3);
}

/// Sends `req` for a session whose URR 1 only measures, then counts an
/// uplink packet with the snapshot from before the request (a packet
/// thread's batch in flight), then lets the driver poll the transmits: the
/// response's one usage report (a Termination), which must hold that
/// packet, and the packet's length.
fn report_after_removal(req: impl Into<MessageBody>) -> (pfcp::UsageReport, u64) {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    let cp = 0x2ac;
    let mut r = est_request(1, cp);
    r.create_urrs[0].reporting_triggers = pfcp::ReportingTriggers::default();
    r.create_urrs[0].volume_threshold = None;
    let m = sim.session_req(smf_addr(1), 0, r);
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    let seid = e.up_f_seid.expect("established").seid;
    let Some(pfcp::FTeid::Assigned { teid, .. }) = e.created_pdrs[0].local_f_teid else {
        panic!("{e:?}")
    };
    let snap = sim.table.snapshot();
    let seq = sim.next_seq();
    let bytes = Message::session(seid, seq, req).to_vec().expect("encode");
    sim.node
        .handle_datagram(sim.now, smf_addr(1), &bytes, &mut sim.table);
    assert!(
        sim.node.removals_pending(),
        "the response waits for the driver"
    );
    // The batch forwards a packet before the driver polls the transmits.
    let pkt = build_udp(ue(cp), 6000, SRV, 5000, &[0u8; 100]);
    let v = snap.uplink(GNB, teid, None, &pkt, sim.now);
    assert!(matches!(v, Verdict::ToN6), "{v:?}");
    sim.pump();
    assert!(!sim.node.removals_pending());
    let (m, _) = sim.response_to(smf_addr(1), seq);
    let (cause, reports) = match m.body {
        MessageBody::SessionDeletionResponse(d) => (d.cause, d.usage_reports),
        MessageBody::SessionModificationResponse(d) => (d.cause, d.usage_reports),
        b => panic!("{b:?}"),
    };
    assert_eq!(cause, pfcp::Cause::RequestAccepted);
    assert_eq!(reports.len(), 1, "{reports:?}");
    let u = reports[0].clone();
    assert_eq!(u.usage_report_trigger, pfcp::UsageReportTrigger::TERMR);
    (u, pkt.len() as u64)
}

#[test]
fn a_deletion_is_answered_with_what_was_counted_until_the_transmit_poll() {
    let (u, len) = report_after_removal(pfcp::SessionDeletionRequest::default());
    assert_eq!(
        u.volume_measurement.and_then(|v| v.uplink_volume),
        Some(len),
        "the packet forwarded with the old snapshot is in the final report"
    );
}

#[test]
fn a_removed_urr_is_reported_with_what_was_counted_until_the_transmit_poll() {
    // URR 1 goes with the uplink PDR that uses it.
    let (u, len) = report_after_removal(pfcp::SessionModificationRequest {
        remove_pdrs: vec![pfcp::RemovePdr {
            pdr_id: 1,
            ..Default::default()
        }],
        remove_urrs: vec![pfcp::RemoveUrr {
            urr_id: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(u.urr_id, 1);
    assert_eq!(
        u.volume_measurement.and_then(|v| v.uplink_volume),
        Some(len),
        "the packet forwarded with the old snapshot is in the removal's report"
    );
}

#[test]
fn only_a_modification_waits_for_settled_counts_before_it_is_handled() {
    let m = Message::session(1, 1, pfcp::SessionModificationRequest::default());
    assert!(N4Node::needs_settled_counts(&m.to_vec().expect("encode")));
    let d = Message::session(1, 1, pfcp::SessionDeletionRequest::default());
    assert!(
        !N4Node::needs_settled_counts(&d.to_vec().expect("encode")),
        "a deletion waits after, not before"
    );
    assert!(
        !N4Node::needs_settled_counts(b"\x21\x34\x00"),
        "a header cut short"
    );
}
