//! Peer fixtures: PFCP messages built by scapy's independent PFCP layer
//! (tests/fixtures/pfcp/gen_scapy.py; scapy 2.5.0 follows TS 29.244 V15.6.0)
//! must parse to exactly the messages scapy was told to build, including the
//! older, shorter IE forms. Re-emitting gives the current forms, which must
//! parse back to the same message.
#[path = "pfcp_samples.rs"]
mod samples;

use samples::*;
use std::net::Ipv4Addr;
use wire::pfcp::*;

fn fixture(name: &str) -> Vec<u8> {
    read_hex(&fixture_dir().join("scapy").join(format!("{name}.hex")))
}

fn check(name: &str, expected: Message) {
    let raw = fixture(name);
    let got = Message::parse(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(got, expected, "{name}");
    // Our re-encoding (current release forms) parses back to the same message.
    let again = Message::parse(&got.to_vec().expect("emit")).expect("reparse");
    assert_eq!(again, expected, "{name} after re-emit");
}

#[test]
fn scapy_heartbeat_request() {
    check(
        "heartbeat_request",
        Message::node(
            1,
            HeartbeatRequest {
                recovery_time_stamp: RECOVERY,
                ..Default::default()
            },
        ),
    );
}

#[test]
fn scapy_association_setup() {
    check(
        "association_setup_request",
        Message::node(
            2,
            AssociationSetupRequest {
                node_id: NodeId::fqdn("smf.scapy.example"),
                recovery_time_stamp: RECOVERY,
                cp_function_features: Some(FunctionFeatures::with(&[cp_features::LOAD])),
                ..Default::default()
            },
        ),
    );
    let expected = Message::node(
        2,
        AssociationSetupResponse {
            node_id: NodeId::Ipv4(UPF),
            cause: Cause::RequestAccepted,
            recovery_time_stamp: RECOVERY + 5,
            up_function_features: Some(FunctionFeatures::with(&[
                up_features::FTUP,
                up_features::EMPU,
            ])),
            ..Default::default()
        },
    );
    check("association_setup_response", expected.clone());
    let MessageBody::AssociationSetupResponse(r) = expected.body else {
        unreachable!()
    };
    assert!(r
        .up_function_features
        .is_some_and(|f| f.has(up_features::FTUP)));
}

#[test]
fn scapy_session_establishment_request() {
    // What gen_scapy.py builds: our sample minus what scapy (Rel-15) lacks
    // or the script leaves out.
    let mut req = establishment_request();
    req.create_pdrs[0].outer_header_removal = Some(OuterHeaderRemoval::of(
        OuterHeaderRemovalDescription::GtpuUdpIpv4,
    ));
    req.create_pdrs[1].urr_ids.clear();
    req.create_pdrs[1].qer_ids.clear();
    req.create_fars[0]
        .forwarding_parameters
        .as_mut()
        .expect("fwd params")
        .destination_interface_type = None;
    req.create_urrs[0].measurement_method = MeasurementMethod::VOLUM;
    req.pdn_type = None;
    let expected = Message::session(0, 10, req);
    check("session_establishment_request", expected.clone());

    // Spot checks of what the UPF uses, in case the sample itself is wrong.
    let MessageBody::SessionEstablishmentRequest(r) = expected.body else {
        unreachable!()
    };
    assert_eq!(r.cp_f_seid.seid, 0x1001);
    assert_eq!(
        r.create_pdrs[0].pdi.local_f_teid,
        Some(FTeid::Choose {
            v4: true,
            v6: false,
            choose_id: Some(1)
        })
    );
    assert_eq!(
        r.create_fars[1].apply_action,
        ApplyAction::BUFF | ApplyAction::NOCP
    );
    assert_eq!(
        r.create_pdrs[1].pdi.ue_ip_addresses[0].ipv4,
        Some(Ipv4Addr::new(10, 45, 0, 2))
    );
    assert!(r.create_pdrs[1].pdi.ue_ip_addresses[0].is_destination);
}

#[test]
fn scapy_session_establishment_response() {
    check(
        "session_establishment_response",
        Message::session(
            0x1001,
            10,
            SessionEstablishmentResponse {
                node_id: NodeId::Ipv4(UPF),
                cause: Cause::RequestAccepted,
                up_f_seid: Some(FSeid::ipv4(0x2002, UPF)),
                created_pdrs: vec![CreatedPdr {
                    pdr_id: 1,
                    local_f_teid: Some(FTeid::ipv4(0x101, UPF_N3)),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ),
    );
}

#[test]
fn scapy_session_modification_request() {
    check(
        "session_modification_request",
        Message::session(
            0x2002,
            11,
            SessionModificationRequest {
                update_fars: vec![UpdateFar {
                    far_id: 2,
                    apply_action: Some(ApplyAction::FORW),
                    update_forwarding_parameters: Some(UpdateForwardingParameters {
                        destination_interface: Some(DestinationInterface::Access),
                        outer_header_creation: Some(OuterHeaderCreation::gtpu_ipv4(0xb0b, GNB_N3)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ),
    );
}

fn scapy_usage_report(trigger: UsageReportTrigger) -> UsageReport {
    UsageReport {
        urr_id: 1,
        ur_seqn: 3,
        usage_report_trigger: trigger,
        start_time: Some(RECOVERY + 10),
        end_time: Some(RECOVERY + 70),
        volume_measurement: Some(VolumeMeasurement {
            total_volume: Some(1_500_000),
            uplink_volume: Some(500_000),
            downlink_volume: Some(1_000_000),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn scapy_session_deletion() {
    check(
        "session_deletion_request",
        Message::session(0x2002, 12, SessionDeletionRequest::default()),
    );
    check(
        "session_deletion_response",
        Message::session(
            0x1001,
            12,
            SessionDeletionResponse {
                cause: Cause::RequestAccepted,
                usage_reports: vec![scapy_usage_report(UsageReportTrigger::TERMR)],
                ..Default::default()
            },
        ),
    );
}

#[test]
fn scapy_session_report() {
    check(
        "session_report_request",
        Message::session(
            0x1001,
            13,
            SessionReportRequest {
                report_type: ReportType::USAR,
                usage_reports: vec![scapy_usage_report(UsageReportTrigger::VOLTH)],
                ..Default::default()
            },
        ),
    );
    check(
        "session_report_response",
        Message::session(
            0x2002,
            13,
            SessionReportResponse {
                cause: Cause::RequestAccepted,
                ..Default::default()
            },
        ),
    );
}
