//! Realistic PFCP messages of every modelled type, shared by the PFCP tests
//! (`#[path = "pfcp_samples.rs"] mod samples;`), and the test that pins their
//! encoding to the hex fixtures in `tests/fixtures/pfcp/ours/` (run with
//! `PFCP_BLESS=1` to rewrite the fixtures after an intended change).
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use wire::pfcp::*;

pub const SMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
pub const UPF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 2);
pub const UPF_N3: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 2);
pub const GNB_N3: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 1);
pub const UE: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 2);
pub const CP_SEID: u64 = 0x0000_0000_0000_1001;
pub const UP_SEID: u64 = 0x0000_0000_0000_2002;
pub const RECOVERY: u32 = 3_941_000_000;

pub fn usage_report() -> UsageReport {
    UsageReport {
        urr_id: 1,
        ur_seqn: 3,
        usage_report_trigger: UsageReportTrigger::VOLTH,
        start_time: Some(RECOVERY + 10),
        end_time: Some(RECOVERY + 70),
        volume_measurement: Some(VolumeMeasurement {
            total_volume: Some(1_500_000),
            uplink_volume: Some(500_000),
            downlink_volume: Some(1_000_000),
            total_packets: Some(1500),
            uplink_packets: Some(600),
            downlink_packets: Some(900),
        }),
        duration_measurement: Some(60),
        time_of_first_packet: Some(RECOVERY + 11),
        time_of_last_packet: Some(RECOVERY + 69),
        ..Default::default()
    }
}

/// Session Establishment Request with an uplink PDR (F-TEID CHOOSE, outer
/// header removal) and a downlink PDR (UE address, SDF filter), a forwarding
/// FAR to N6 and a buffering FAR, one QER, one URR and a BAR.
pub fn establishment_request() -> SessionEstablishmentRequest {
    let ul_pdr = CreatePdr {
        pdr_id: 1,
        precedence: 200,
        pdi: Pdi {
            source_interface: SourceInterface::Access,
            local_f_teid: Some(FTeid::choose_v4(Some(1))),
            network_instance: Some(NetworkInstance::from_dnn("internet")),
            ue_ip_addresses: vec![UeIpAddress::source_v4(UE)],
            qfis: vec![Qfi(9)],
            source_interface_type: Some(InterfaceType::N3ThreeGppAccess),
            ..Default::default()
        },
        outer_header_removal: Some(OuterHeaderRemoval {
            description: OuterHeaderRemovalDescription::GtpuUdpIpv4,
            gtpu_extension_header_deletion: Some(OuterHeaderRemoval::DELETE_PDU_SESSION_CONTAINER),
        }),
        far_id: Some(1),
        urr_ids: vec![1],
        qer_ids: vec![1],
        ..Default::default()
    };
    let dl_pdr = CreatePdr {
        pdr_id: 2,
        precedence: 200,
        pdi: Pdi {
            source_interface: SourceInterface::Core,
            network_instance: Some(NetworkInstance::from_dnn("internet")),
            ue_ip_addresses: vec![UeIpAddress::destination_v4(UE)],
            sdf_filters: vec![SdfFilter::flow("permit out ip from any to assigned")],
            ..Default::default()
        },
        far_id: Some(2),
        urr_ids: vec![1],
        qer_ids: vec![1],
        ..Default::default()
    };
    SessionEstablishmentRequest {
        node_id: NodeId::Ipv4(SMF),
        cp_f_seid: FSeid::ipv4(CP_SEID, SMF),
        create_pdrs: vec![ul_pdr, dl_pdr],
        create_fars: vec![
            CreateFar {
                far_id: 1,
                apply_action: ApplyAction::FORW,
                forwarding_parameters: Some(ForwardingParameters {
                    destination_interface: DestinationInterface::Core,
                    network_instance: Some(NetworkInstance::from_dnn("internet")),
                    destination_interface_type: Some(InterfaceType::N6),
                    ..Default::default()
                }),
                ..Default::default()
            },
            CreateFar {
                far_id: 2,
                apply_action: ApplyAction::BUFF | ApplyAction::NOCP,
                bar_id: Some(1),
                ..Default::default()
            },
        ],
        create_urrs: vec![CreateUrr {
            urr_id: 1,
            measurement_method: MeasurementMethod::VOLUM | MeasurementMethod::DURAT,
            reporting_triggers: ReportingTriggers::PERIO | ReportingTriggers::VOLTH,
            measurement_period: Some(60),
            volume_threshold: Some(Volume {
                total: Some(1_000_000_000),
                uplink: None,
                downlink: None,
            }),
            ..Default::default()
        }],
        create_qers: vec![CreateQer {
            qer_id: 1,
            gate_status: GateStatus::OPEN,
            mbr: Some(BitRate {
                ul_kbps: 100_000,
                dl_kbps: 200_000,
            }),
            qfi: Some(Qfi(9)),
            ..Default::default()
        }],
        create_bar: Some(CreateBar {
            bar_id: 1,
            ..Default::default()
        }),
        pdn_type: Some(1),
        ..Default::default()
    }
}

/// Every modelled message type, named, with realistic content.
pub fn all_messages() -> Vec<(&'static str, Message)> {
    let up_features = FunctionFeatures::with(&[up_features::FTUP, up_features::EMPU]);
    vec![
        (
            "heartbeat_request",
            Message::node(
                1,
                HeartbeatRequest {
                    recovery_time_stamp: RECOVERY,
                    ..Default::default()
                },
            ),
        ),
        (
            "heartbeat_response",
            Message::node(
                1,
                HeartbeatResponse {
                    recovery_time_stamp: RECOVERY + 5,
                    ..Default::default()
                },
            ),
        ),
        (
            "association_setup_request",
            Message::node(
                2,
                AssociationSetupRequest {
                    node_id: NodeId::fqdn("smf.edge.example"),
                    recovery_time_stamp: RECOVERY,
                    cp_function_features: Some(FunctionFeatures::with(&[cp_features::LOAD])),
                    ..Default::default()
                },
            ),
        ),
        (
            "association_setup_response",
            Message::node(
                2,
                AssociationSetupResponse {
                    node_id: NodeId::Ipv4(UPF),
                    cause: Cause::RequestAccepted,
                    recovery_time_stamp: RECOVERY + 5,
                    up_function_features: Some(up_features.clone()),
                    ..Default::default()
                },
            ),
        ),
        (
            "association_update_request",
            Message::node(
                3,
                AssociationUpdateRequest {
                    node_id: NodeId::Ipv6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
                    up_function_features: Some(up_features),
                    ..Default::default()
                },
            ),
        ),
        (
            "association_update_response",
            Message::node(
                3,
                AssociationUpdateResponse {
                    node_id: NodeId::Ipv4(SMF),
                    cause: Cause::RequestAccepted,
                    ..Default::default()
                },
            ),
        ),
        (
            "association_release_request",
            Message::node(
                4,
                AssociationReleaseRequest {
                    node_id: NodeId::Ipv4(SMF),
                    ..Default::default()
                },
            ),
        ),
        (
            "association_release_response",
            Message::node(
                4,
                AssociationReleaseResponse {
                    node_id: NodeId::Ipv4(UPF),
                    cause: Cause::RequestAccepted,
                    ..Default::default()
                },
            ),
        ),
        (
            "version_not_supported_response",
            Message::node(5, VersionNotSupportedResponse::default()),
        ),
        (
            "session_establishment_request",
            Message::session(0, 10, establishment_request()),
        ),
        (
            "session_establishment_response",
            Message::session(
                CP_SEID,
                10,
                SessionEstablishmentResponse {
                    node_id: NodeId::Ipv4(UPF),
                    cause: Cause::RequestAccepted,
                    up_f_seid: Some(FSeid::ipv4(UP_SEID, UPF)),
                    created_pdrs: vec![CreatedPdr {
                        pdr_id: 1,
                        local_f_teid: Some(FTeid::ipv4(0x0000_0101, UPF_N3)),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
        ),
        (
            "session_modification_request",
            Message::session(
                UP_SEID,
                11,
                SessionModificationRequest {
                    update_fars: vec![UpdateFar {
                        far_id: 2,
                        apply_action: Some(ApplyAction::FORW),
                        update_forwarding_parameters: Some(UpdateForwardingParameters {
                            destination_interface: Some(DestinationInterface::Access),
                            outer_header_creation: Some(OuterHeaderCreation::gtpu_ipv4(
                                0x0000_0b0b,
                                GNB_N3,
                            )),
                            destination_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    remove_pdrs: vec![RemovePdr {
                        pdr_id: 3,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
        ),
        (
            "session_modification_response",
            Message::session(
                CP_SEID,
                11,
                SessionModificationResponse {
                    cause: Cause::RequestAccepted,
                    usage_reports: vec![usage_report()],
                    ..Default::default()
                },
            ),
        ),
        (
            "session_deletion_request",
            Message::session(UP_SEID, 12, SessionDeletionRequest::default()),
        ),
        (
            "session_deletion_response",
            Message::session(
                CP_SEID,
                12,
                SessionDeletionResponse {
                    cause: Cause::RequestAccepted,
                    usage_reports: vec![usage_report()],
                    ..Default::default()
                },
            ),
        ),
        (
            "session_report_request",
            Message::session(
                CP_SEID,
                13,
                SessionReportRequest {
                    report_type: ReportType::USAR,
                    usage_reports: vec![usage_report()],
                    ..Default::default()
                },
            ),
        ),
        (
            "session_report_response",
            Message::session(
                UP_SEID,
                13,
                SessionReportResponse {
                    cause: Cause::RequestAccepted,
                    ..Default::default()
                },
            ),
        ),
    ]
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads a hex fixture: `#` starts a comment line; whitespace is ignored.
pub fn read_hex(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hex: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        hex.len() % 2 == 0,
        "{}: odd number of hex digits",
        path.display()
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pfcp")
}

/// Our own encodings, pinned both ways: `parse(fixture) == sample` and
/// `emit(sample) == fixture` (into a buffer pre-filled with 0xa5).
#[test]
fn own_fixtures_both_ways() {
    let dir = fixture_dir().join("ours");
    let bless = std::env::var_os("PFCP_BLESS").is_some();
    for (name, msg) in all_messages() {
        let path = dir.join(format!("{name}.hex"));
        let mut buf = vec![0xa5u8; msg.buffer_len()];
        let n = msg.emit(&mut buf).expect("emit");
        assert_eq!(n, buf.len(), "{name}: emit length vs buffer_len");
        if bless {
            std::fs::create_dir_all(&dir).expect("mkdir");
            let body = format!(
                "# PFCP {name}, emitted by wire::pfcp (tests/pfcp_samples.rs all_messages),\n\
                 # checked by tshark 4.0.17 in tests/pfcp_tshark.rs. Regenerate: PFCP_BLESS=1 cargo test -p wire --test pfcp_samples\n{}\n",
                to_hex(&buf)
            );
            std::fs::write(&path, body).expect("write fixture");
        }
        let raw = read_hex(&path);
        assert_eq!(
            to_hex(&buf),
            to_hex(&raw),
            "{name}: emit(expected) != fixture"
        );
        assert_eq!(
            Message::parse(&raw).expect("parse fixture"),
            msg,
            "{name}: parse(fixture) != expected"
        );
    }
}
