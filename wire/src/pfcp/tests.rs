//! Per-IE unit tests with bytes laid out from TS 29.244 clause 8.2, asserted
//! both ways (decode(raw) == expected; encode(expected) into a buffer
//! pre-filled with 0xa5 == raw), plus header and error-mapping tests.

use super::codec::{write_ie, IeCodec, IeIter, Writer};
use super::ie::ie_type as t;
use super::*;
use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};

/// `raw` is a whole IE (type, length, value).
fn both<T: IeCodec + PartialEq + Debug>(raw: &[u8], expected: T) {
    let ie = IeIter::new(raw).next().expect("one IE").expect("valid TLV");
    assert_eq!(ie.data.len() + 4, raw.len(), "length field");
    let got = T::decode(ie.ie_type, ie.data).expect("decode");
    assert_eq!(got, expected, "decode");
    let mut buf = vec![0xa5u8; raw.len()];
    let mut w = Writer::new(&mut buf);
    write_ie(&mut w, ie.ie_type, &expected);
    assert_eq!(w.finish().expect("encode"), raw.len());
    assert_eq!(buf, raw, "encode");
    assert_eq!(expected.value_len() + 4, raw.len(), "value_len");
}

/// Decodes an IE value that is accepted but re-encoded differently.
fn decode_only<T: IeCodec + PartialEq + Debug>(raw: &[u8], expected: T) {
    let ie = IeIter::new(raw).next().expect("one IE").expect("valid TLV");
    assert_eq!(T::decode(ie.ie_type, ie.data).expect("decode"), expected);
}

fn decode_err<T: IeCodec + Debug>(raw: &[u8]) -> PfcpError {
    let ie = IeIter::new(raw).next().expect("one IE").expect("valid TLV");
    T::decode(ie.ie_type, ie.data).expect_err("must fail")
}

#[test]
fn cause() {
    both(&[0, 19, 0, 1, 1], Cause::RequestAccepted);
    both(&[0, 19, 0, 1, 66], Cause::MandatoryIeMissing);
    both(&[0, 19, 0, 1, 200], Cause::Unknown(200));
    assert!(Cause::RequestAccepted.is_accepted());
    assert!(!Cause::RequestRejected.is_accepted());
}

#[test]
fn node_id_all_types() {
    both(
        &[0, 60, 0, 5, 0, 10, 0, 0, 1],
        NodeId::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
    );
    let mut v6 = vec![0, 60, 0, 17, 1];
    v6.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    both(
        &v6,
        NodeId::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    );
    // FQDN "upf.lab": labels 3 "upf" 3 "lab".
    both(
        &[0, 60, 0, 9, 2, 3, b'u', b'p', b'f', 3, b'l', b'a', b'b'],
        NodeId::fqdn("upf.lab"),
    );
    // Some peers send the FQDN as plain text: accepted.
    decode_only(
        &[0, 60, 0, 8, 2, b'u', b'p', b'f', b'.', b'l', b'a', b'b'],
        NodeId::fqdn("upf.lab"),
    );
    // Unknown node ID type 5 is incorrect; a short IPv4 is an invalid length.
    let e = decode_err::<NodeId>(&[0, 60, 0, 5, 5, 1, 2, 3, 4]);
    assert_eq!(e.cause(), Cause::MandatoryIeIncorrect);
    assert_eq!(e.offending_ie(), Some(60));
    let e = decode_err::<NodeId>(&[0, 60, 0, 3, 0, 10, 0]);
    assert_eq!(e.cause(), Cause::InvalidLength);
}

#[test]
fn recovery_time_stamp_and_ids() {
    both(&[0, 96, 0, 4, 0xe8, 0, 0, 1], 0xe800_0001u32);
    both(&[0, 56, 0, 2, 0, 7], 7u16); // PDR ID
    both(&[0, 29, 0, 4, 0, 0, 0, 200], 200u32); // Precedence
    both(&[0, 108, 0, 4, 0, 0, 0, 2], 2u32); // FAR ID
    both(&[0, 109, 0, 4, 0, 0, 0, 3], 3u32); // QER ID
    both(&[0, 81, 0, 4, 0, 0, 0, 4], 4u32); // URR ID
    both(&[0, 104, 0, 4, 0, 0, 0, 9], 9u32); // UR-SEQN
    both(&[0, 64, 0, 4, 0, 0, 0, 60], 60u32); // Measurement Period
    both(&[0, 88, 0, 1, 1], 1u8); // BAR ID
    both(&[0, 40, 0, 2, 0, 21], 21u16); // Offending IE
    let e = decode_err::<u32>(&[0, 108, 0, 2, 0, 2]);
    assert_eq!(e, PfcpError::short(t::FAR_ID));
}

#[test]
fn f_seid() {
    both(
        &[
            0, 57, 0, 13, 0x02, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 10, 0, 0, 1,
        ],
        FSeid::ipv4(0x1001, Ipv4Addr::new(10, 0, 0, 1)),
    );
    let mut raw = vec![0, 57, 0, 29, 0x03, 0, 0, 0, 0, 0, 0, 0, 5, 10, 0, 0, 1];
    raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    both(
        &raw,
        FSeid {
            seid: 5,
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ipv6: Some(Ipv6Addr::LOCALHOST),
        },
    );
}

#[test]
fn function_features() {
    // UP: FTUP (octet 5 bit 5) and EMPU (octet 6 bit 1).
    let f = FunctionFeatures::with(&[up_features::FTUP, up_features::EMPU]);
    both(&[0, 43, 0, 2, 0x10, 0x01], f.clone());
    assert!(f.has(up_features::FTUP) && !f.has(up_features::BUCP));
    assert!(!f.has(up_features::EPFAR));
    both(
        &[0, 89, 0, 1, 0x01],
        FunctionFeatures::with(&[cp_features::LOAD]),
    );
}

#[test]
fn interfaces() {
    both(&[0, 20, 0, 1, 0], SourceInterface::Access);
    both(&[0, 20, 0, 1, 1], SourceInterface::Core);
    both(&[0, 20, 0, 1, 9], SourceInterface::Unknown(9));
    // Spare bits are ignored.
    decode_only(&[0, 20, 0, 1, 0xf2], SourceInterface::SgiLanN6Lan);
    both(&[0, 42, 0, 1, 0], DestinationInterface::Access);
    both(&[0, 42, 0, 1, 4], DestinationInterface::LiFunction);
    both(&[0, 160, 0, 1, 11], InterfaceType::N3ThreeGppAccess);
    both(&[0, 160, 0, 1, 17], InterfaceType::N6);
    both(&[0, 160, 0, 1, 40], InterfaceType::Unknown(40));
}

#[test]
fn f_teid_assigned_and_choose() {
    both(
        &[0, 21, 0, 9, 0x01, 0, 0, 0x01, 0x01, 10, 3, 0, 2],
        FTeid::ipv4(0x101, Ipv4Addr::new(10, 3, 0, 2)),
    );
    let mut raw = vec![0, 21, 0, 25, 0x03, 0xde, 0xad, 0xbe, 0xef, 10, 3, 0, 2];
    raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    both(
        &raw,
        FTeid::Assigned {
            teid: 0xdead_beef,
            ipv4: Some(Ipv4Addr::new(10, 3, 0, 2)),
            ipv6: Some(Ipv6Addr::LOCALHOST),
        },
    );
    // CH=1, V4=1: choose an IPv4 F-TEID; no TEID, no address.
    both(&[0, 21, 0, 1, 0x05], FTeid::choose_v4(None));
    // CH=1, CHID=1, V4=V6=1, Choose ID 7.
    both(
        &[0, 21, 0, 2, 0x0f, 7],
        FTeid::Choose {
            v4: true,
            v6: true,
            choose_id: Some(7),
        },
    );
    // CHID without CH is incorrect; a TEID cut short is an invalid length.
    assert_eq!(
        decode_err::<FTeid>(&[0, 21, 0, 2, 0x08, 7]).cause(),
        Cause::MandatoryIeIncorrect
    );
    assert_eq!(
        decode_err::<FTeid>(&[0, 21, 0, 3, 0x01, 0, 0]).cause(),
        Cause::InvalidLength
    );
}

#[test]
fn network_instance() {
    let ni = NetworkInstance::from_dnn("internet");
    both(
        &[
            0, 22, 0, 9, 8, b'i', b'n', b't', b'e', b'r', b'n', b'e', b't',
        ],
        ni.clone(),
    );
    assert_eq!(ni.name(), "internet");
    assert_eq!(NetworkInstance(b"edge".to_vec()).name(), "edge");
}

#[test]
fn ue_ip_address() {
    both(
        &[0, 93, 0, 5, 0x02, 10, 45, 0, 2],
        UeIpAddress::source_v4(Ipv4Addr::new(10, 45, 0, 2)),
    );
    both(
        &[0, 93, 0, 5, 0x06, 10, 45, 0, 2],
        UeIpAddress::destination_v4(Ipv4Addr::new(10, 45, 0, 2)),
    );
    // CHV4 (bit 5): the UPF picks the address.
    both(
        &[0, 93, 0, 1, 0x10],
        UeIpAddress {
            choose_v4: true,
            ..Default::default()
        },
    );
    // V6 + IPv6D + IP6PL.
    let mut raw = vec![0, 93, 0, 19, 0x49];
    raw.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0).octets());
    raw.extend_from_slice(&[8, 64]);
    both(
        &raw,
        UeIpAddress {
            ipv6: Some(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0)),
            ipv6_prefix_delegation_bits: Some(8),
            ipv6_prefix_length: Some(64),
            ..Default::default()
        },
    );
}

#[test]
fn sdf_filter() {
    let fd = b"permit out ip from any to assigned";
    let mut raw = vec![0, 23, 0, 4 + fd.len() as u8, 0x01, 0, 0, fd.len() as u8];
    raw.extend_from_slice(fd);
    both(&raw, SdfFilter::flow("permit out ip from any to assigned"));
    // TTC + SPI + FL + BID, no flow description.
    both(
        &[
            0, 23, 0, 15, 0x1e, 0, 0xb8, 0xfc, 0, 0, 0x12, 0x34, 0x0a, 0xbc, 0xde, 0, 0, 0, 9,
        ],
        SdfFilter {
            tos_traffic_class: Some(0xb8fc),
            security_parameter_index: Some(0x1234),
            flow_label: Some(0x0abcde),
            sdf_filter_id: Some(9),
            ..Default::default()
        },
    );
    // A flow description longer than the IE is an invalid length.
    assert_eq!(
        decode_err::<SdfFilter>(&[0, 23, 0, 5, 0x01, 0, 0, 9, b'p']).cause(),
        Cause::InvalidLength
    );
}

#[test]
fn qfi_and_gate_and_mbr() {
    both(&[0, 124, 0, 1, 9], Qfi(9));
    decode_only(&[0, 124, 0, 1, 0xc9], Qfi(9));
    both(&[0, 25, 0, 1, 0x00], GateStatus::OPEN);
    both(
        &[0, 25, 0, 1, 0x04],
        GateStatus {
            ul: Gate::Closed,
            dl: Gate::Open,
        },
    );
    both(
        &[0, 25, 0, 1, 0x01],
        GateStatus {
            ul: Gate::Open,
            dl: Gate::Closed,
        },
    );
    // 100000 kbps = 0x0186a0, 200000 = 0x030d40, 5 octets each.
    both(
        &[0, 26, 0, 10, 0, 0, 0x01, 0x86, 0xa0, 0, 0, 0x03, 0x0d, 0x40],
        BitRate {
            ul_kbps: 100_000,
            dl_kbps: 200_000,
        },
    );
    both(
        &[0, 26, 0, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1],
        BitRate {
            ul_kbps: 0xff_ffff_ffff,
            dl_kbps: 1,
        },
    );
}

#[test]
fn outer_header_removal_every_description() {
    use OuterHeaderRemovalDescription as D;
    let all = [
        (0, D::GtpuUdpIpv4),
        (1, D::GtpuUdpIpv6),
        (2, D::UdpIpv4),
        (3, D::UdpIpv6),
        (4, D::Ipv4),
        (5, D::Ipv6),
        (6, D::GtpuUdpIp),
        (7, D::VlanSTag),
        (8, D::STagAndCTag),
        (42, D::Unknown(42)),
    ];
    for (code, d) in all {
        both(&[0, 95, 0, 1, code], OuterHeaderRemoval::of(d));
        both(
            &[0, 95, 0, 2, code, 0x01],
            OuterHeaderRemoval {
                description: d,
                gtpu_extension_header_deletion: Some(
                    OuterHeaderRemoval::DELETE_PDU_SESSION_CONTAINER,
                ),
            },
        );
    }
}

#[test]
fn apply_action_two_octets_and_one() {
    both(&[0, 44, 0, 2, 0x02, 0x00], ApplyAction::FORW);
    both(
        &[0, 44, 0, 2, 0x0c, 0x00],
        ApplyAction::BUFF | ApplyAction::NOCP,
    );
    both(
        &[0, 44, 0, 2, 0x01, 0x02],
        ApplyAction::DROP | ApplyAction::BDPN,
    );
    // Before Rel-16 the IE had one octet.
    decode_only(&[0, 44, 0, 1, 0x02], ApplyAction::FORW);
    assert!(ApplyAction(0x0c).contains(ApplyAction::BUFF));
    assert!(!ApplyAction(0x0c).contains(ApplyAction::FORW));
    assert_eq!(
        decode_err::<ApplyAction>(&[0, 44, 0, 0]).cause(),
        Cause::InvalidLength
    );
}

#[test]
fn outer_header_creation_all_descriptions() {
    both(
        &[0, 84, 0, 10, 0x01, 0x00, 0, 0, 0x0b, 0x0b, 10, 3, 0, 1],
        OuterHeaderCreation::gtpu_ipv4(0xb0b, Ipv4Addr::new(10, 3, 0, 1)),
    );
    let mut raw = vec![0, 84, 0, 22, 0x02, 0x00, 0, 0, 0, 7];
    raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    both(&raw, OuterHeaderCreation::gtpu_ipv6(7, Ipv6Addr::LOCALHOST));
    // UDP/IPv4 with port.
    both(
        &[0, 84, 0, 8, 0x04, 0x00, 192, 0, 2, 1, 0x13, 0x88],
        OuterHeaderCreation {
            description: OuterHeaderCreation::UDP_IPV4,
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            port: Some(5000),
            ..Default::default()
        },
    );
    // UDP/IPv6 with port.
    let mut raw = vec![0, 84, 0, 20, 0x08, 0x00];
    raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    raw.extend_from_slice(&[0x13, 0x89]);
    both(
        &raw,
        OuterHeaderCreation {
            description: OuterHeaderCreation::UDP_IPV6,
            ipv6: Some(Ipv6Addr::LOCALHOST),
            port: Some(5001),
            ..Default::default()
        },
    );
    // IPv4, and IPv6.
    both(
        &[0, 84, 0, 6, 0x10, 0x00, 192, 0, 2, 9],
        OuterHeaderCreation {
            description: OuterHeaderCreation::IPV4,
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 9)),
            ..Default::default()
        },
    );
    let mut raw = vec![0, 84, 0, 18, 0x20, 0x00];
    raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    both(
        &raw,
        OuterHeaderCreation {
            description: OuterHeaderCreation::IPV6,
            ipv6: Some(Ipv6Addr::LOCALHOST),
            ..Default::default()
        },
    );
    // C-TAG + S-TAG (3 octets each), and N19/N6 indications in octet 6.
    both(
        &[0, 84, 0, 8, 0xc0, 0x03, 0x01, 0x00, 0x64, 0x02, 0x00, 0xc8],
        OuterHeaderCreation {
            description: OuterHeaderCreation::C_TAG
                | OuterHeaderCreation::S_TAG
                | OuterHeaderCreation::N19_INDICATION
                | OuterHeaderCreation::N6_INDICATION,
            c_tag: Some(0x010064),
            s_tag: Some(0x0200c8),
            ..Default::default()
        },
    );
    assert_eq!(
        decode_err::<OuterHeaderCreation>(&[0, 84, 0, 5, 0x01, 0x00, 0, 0, 1]).cause(),
        Cause::InvalidLength
    );
}

#[test]
fn urr_ies() {
    both(
        &[0, 62, 0, 1, 0x03],
        MeasurementMethod::DURAT | MeasurementMethod::VOLUM,
    );
    both(
        &[0, 37, 0, 3, 0x03, 0x00, 0x00],
        ReportingTriggers::PERIO | ReportingTriggers::VOLTH,
    );
    both(
        &[0, 37, 0, 3, 0x00, 0x01, 0x02],
        ReportingTriggers::VOLQU | ReportingTriggers::UPINT,
    );
    // Rel-15 (scapy): 2 octets.
    decode_only(
        &[0, 37, 0, 2, 0x01, 0x01],
        ReportingTriggers::PERIO | ReportingTriggers::VOLQU,
    );
    both(&[0, 63, 0, 3, 0x02, 0x00, 0x00], UsageReportTrigger::VOLTH);
    both(&[0, 63, 0, 3, 0x00, 0x08, 0x00], UsageReportTrigger::TERMR);
    decode_only(&[0, 63, 0, 2, 0x01, 0x00], UsageReportTrigger::PERIO);
    both(&[0, 39, 0, 1, 0x02], ReportType::USAR);
    both(
        &[0, 31, 0, 9, 0x01, 0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00],
        Volume {
            total: Some(1_000_000_000),
            ..Default::default()
        },
    );
    both(
        &[
            0, 73, 0, 17, 0x06, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
        ],
        Volume {
            uplink: Some(1),
            downlink: Some(2),
            ..Default::default()
        },
    );
    both(
        &[
            0, 66, 0, 25, 0x25, 0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0x01, 0xf4, 0, 0,
            0, 0, 0, 0, 0, 9,
        ],
        VolumeMeasurement {
            total_volume: Some(1000),
            downlink_volume: Some(500),
            downlink_packets: Some(9),
            ..Default::default()
        },
    );
}

#[test]
fn failed_rule_id() {
    both(&[0, 114, 0, 3, 0, 0, 5], FailedRuleId::Pdr(5));
    both(&[0, 114, 0, 5, 1, 0, 0, 0, 6], FailedRuleId::Far(6));
    both(&[0, 114, 0, 2, 4, 1], FailedRuleId::Bar(1));
    assert_eq!(
        decode_err::<FailedRuleId>(&[0, 114, 0, 2, 9, 1]).cause(),
        Cause::MandatoryIeIncorrect
    );
}

#[test]
fn grouped_create_pdr_nests_and_keeps_unknown() {
    // Create PDR { PDR ID 1, Precedence 100, PDI { Source Interface Access,
    // F-TEID CHOOSE v4, unknown IE 999 }, FAR ID 1 }.
    let raw = [
        0, 1, 0, 42, // Create PDR
        0, 56, 0, 2, 0, 1, // PDR ID
        0, 29, 0, 4, 0, 0, 0, 100, // Precedence
        0, 2, 0, 16, // PDI
        0, 20, 0, 1, 0, // Source Interface
        0, 21, 0, 1, 0x05, // F-TEID CH V4
        0x03, 0xe7, 0, 2, 0xab, 0xcd, // unknown IE 999
        0, 108, 0, 4, 0, 0, 0, 1, // FAR ID
    ];
    both(
        &raw,
        CreatePdr {
            pdr_id: 1,
            precedence: 100,
            pdi: Pdi {
                source_interface: SourceInterface::Access,
                local_f_teid: Some(FTeid::choose_v4(None)),
                unknown: vec![RawIe::new(999, vec![0xab, 0xcd])],
                ..Default::default()
            },
            far_id: Some(1),
            ..Default::default()
        },
    );
}

#[test]
fn grouped_missing_mandatory_reports_inner_ie_and_outer_group() {
    // Create PDR whose PDI lacks Source Interface.
    let raw = [
        0, 1, 0, 23, 0, 56, 0, 2, 0, 1, 0, 29, 0, 4, 0, 0, 0, 100, 0, 2, 0, 5, 0, 21, 0, 1, 0x05,
    ];
    let e = decode_err::<CreatePdr>(&raw);
    assert_eq!(
        e,
        PfcpError::MissingIe {
            ie_type: t::SOURCE_INTERFACE,
            within: Some(t::CREATE_PDR),
            ctx: None
        }
    );
}

#[test]
fn usage_report_shared_by_three_ie_types() {
    let ur = UsageReport {
        urr_id: 1,
        ur_seqn: 2,
        usage_report_trigger: UsageReportTrigger::PERIO,
        ..Default::default()
    };
    let value = [
        0, 81, 0, 4, 0, 0, 0, 1, 0, 104, 0, 4, 0, 0, 0, 2, 0, 63, 0, 3, 1, 0, 0,
    ];
    for ty in [78u8, 79, 80] {
        let mut raw = vec![0, ty, 0, value.len() as u8];
        raw.extend_from_slice(&value);
        both(&raw, ur.clone());
    }
}

// --- Header and message level ---------------------------------------------

#[test]
fn header_without_and_with_seid_and_priority() {
    let hb = [
        0x20, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x00, 0x00, 0x60, 0x00, 0x04, 0xe8, 0x00, 0x00,
        0x00,
    ];
    let m = Message::parse(&hb).expect("parse");
    assert_eq!(
        m.header,
        Header {
            seid: None,
            seq: 1,
            priority: None,
            follow_on: false
        }
    );
    assert_eq!(
        m.body,
        MessageBody::HeartbeatRequest(HeartbeatRequest {
            recovery_time_stamp: 0xe800_0000,
            ..Default::default()
        })
    );
    let mut buf = [0xa5u8; 16];
    assert_eq!(m.emit(&mut buf), Ok(16));
    assert_eq!(buf, hb);

    // Session Deletion Request, S=1, MP=1, priority 3, seq 0x123456.
    let del = [
        0x23, 54, 0x00, 0x0c, 0, 0, 0, 0, 0, 0, 0x20, 0x02, 0x12, 0x34, 0x56, 0x30,
    ];
    let m = Message::parse(&del).expect("parse");
    assert_eq!(
        m.header,
        Header {
            seid: Some(0x2002),
            seq: 0x123456,
            priority: Some(3),
            follow_on: false
        }
    );
    let mut buf = [0xa5u8; 16];
    assert_eq!(m.emit(&mut buf), Ok(16));
    assert_eq!(buf, del);
}

#[test]
fn header_errors() {
    assert_eq!(
        Message::parse(&[0x20, 1, 0]),
        Err(PfcpError::Truncated { need: 4, got: 3 })
    );
    assert_eq!(
        Message::parse(&[0x40, 1, 0, 4, 0, 0, 1, 0]),
        Err(PfcpError::UnsupportedVersion(2))
    );
    // Length claims 12 octets after the first 4, only 4 present.
    assert_eq!(
        Message::parse(&[0x20, 1, 0, 12, 0, 0, 1, 0]),
        Err(PfcpError::Truncated { need: 16, got: 8 })
    );
    // S=1 but the length leaves no room for the SEID.
    assert_eq!(
        Message::parse(&[0x21, 54, 0, 4, 0, 0, 1, 0]),
        Err(PfcpError::BadMessageLength { declared: 4 })
    );
    // A Heartbeat with a SEID, a Session Deletion without one.
    let e = Message::parse(&[0x21, 1, 0, 12, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0])
        .expect_err("must fail");
    assert!(
        matches!(
            e,
            PfcpError::SeidFlag {
                msg_type: 1,
                s: true,
                ..
            }
        ),
        "{e:?}"
    );
    let e = Message::parse(&[0x20, 54, 0, 4, 0, 0, 1, 0]).expect_err("must fail");
    assert!(
        matches!(
            e,
            PfcpError::SeidFlag {
                msg_type: 54,
                s: false,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn missing_mandatory_ie_maps_to_cause_66_with_context() {
    // Session Establishment Request (seq 9, SEID 0) with only a Node ID.
    let raw = [
        0x21, 50, 0, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 60, 0, 5, 0, 10, 0, 0, 1,
    ];
    let e = Message::parse(&raw).expect_err("must fail");
    assert_eq!(e.cause(), Cause::MandatoryIeMissing);
    assert_eq!(e.offending_ie(), Some(t::F_SEID));
    assert_eq!(
        e.context(),
        Some(MsgContext {
            msg_type: 50,
            seq: 9,
            seid: Some(0)
        })
    );
}

#[test]
fn peek_f_seid_of_a_request_that_fails_to_parse() {
    // Session Establishment Request: Node ID, CP F-SEID, no Create PDR.
    let raw = [
        0x21, 50, 0, 38, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 60, 0, 5, 0, 10, 0, 0, 1, 0, 57, 0,
        13, 0x02, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 10, 0, 0, 1,
    ];
    let e = Message::parse(&raw).expect_err("must fail");
    assert_eq!(e.offending_ie(), Some(t::CREATE_PDR));
    assert_eq!(
        Message::peek_f_seid(&raw),
        Some(FSeid {
            seid: 0x1001,
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ipv6: None
        })
    );
    assert_eq!(
        Message::peek_ie(&raw, t::NODE_ID),
        Some(&[0u8, 10, 0, 0, 1][..])
    );
    assert_eq!(Message::peek_ie(&raw, t::CAUSE), None);
}

#[test]
fn malformed_ie_maps_to_cause_69_or_68() {
    // Association Setup Request with Node ID type 7.
    let raw = [
        0x20, 5, 0, 21, 0, 0, 3, 0, 0, 60, 0, 5, 7, 10, 0, 0, 1, 0, 96, 0, 4, 0, 0, 0, 1,
    ];
    let e = Message::parse(&raw).expect_err("must fail");
    assert_eq!(
        (e.cause(), e.offending_ie()),
        (Cause::MandatoryIeIncorrect, Some(60))
    );
    assert_eq!(e.context().map(|c| c.seq), Some(3));
    // Recovery Time Stamp with 2 octets: invalid length.
    let raw = [0x20, 1, 0, 10, 0, 0, 3, 0, 0, 96, 0, 2, 0, 0];
    let e = Message::parse(&raw).expect_err("must fail");
    assert_eq!(
        (e.cause(), e.offending_ie()),
        (Cause::InvalidLength, Some(96))
    );
    // An IE whose length runs past the message.
    let raw = [0x20, 1, 0, 12, 0, 0, 3, 0, 0, 96, 0, 9, 0, 0, 0, 0];
    let e = Message::parse(&raw).expect_err("must fail");
    assert_eq!(
        (e.cause(), e.offending_ie()),
        (Cause::InvalidLength, Some(96))
    );
    // Two stray octets after the last IE.
    let raw = [0x20, 1, 0, 14, 0, 0, 3, 0, 0, 96, 0, 4, 0, 0, 0, 1, 0, 0];
    let e = Message::parse(&raw).expect_err("must fail");
    assert!(
        matches!(e, PfcpError::TrailingOctets { count: 2, .. }),
        "{e:?}"
    );
}

#[test]
fn unknown_and_enterprise_ies_are_kept_and_countable() {
    // Heartbeat Request + Load Control Information (51, grouped, not modelled)
    // + enterprise IE 0x8001 (enterprise 18681) + a duplicate Recovery Time Stamp.
    let raw = [
        0x20, 1, 0, 37, 0, 0, 3, 0, // header
        0, 96, 0, 4, 0, 0, 0, 1, // Recovery Time Stamp
        0, 51, 0, 5, 0, 52, 0, 1, 7, // Load Control { Sequence Number-ish }
        0x80, 0x01, 0, 4, 0x48, 0xf9, 0xaa, 0xbb, // enterprise IE
        0, 96, 0, 4, 0, 0, 0, 2, // duplicate
    ];
    let m = Message::parse(&raw).expect("parse");
    let MessageBody::HeartbeatRequest(hb) = &m.body else {
        panic!("{m:?}")
    };
    assert_eq!(hb.recovery_time_stamp, 1);
    assert_eq!(
        hb.unknown,
        vec![
            RawIe::new(51, vec![0, 52, 0, 1, 7]),
            RawIe {
                ie_type: 0x8001,
                enterprise_id: Some(18681),
                data: vec![0xaa, 0xbb]
            },
            RawIe::new(96, vec![0, 0, 0, 2]),
        ]
    );
    assert_eq!(m.body.unknown_ies().len(), 3);
    assert!(hb.unknown[1].is_enterprise());
    // Emitted in the same order, so the bytes come back identical.
    let mut buf = vec![0xa5u8; m.buffer_len()];
    assert_eq!(m.emit(&mut buf), Ok(raw.len()));
    assert_eq!(buf, raw);
    // An enterprise IE too short for its Enterprise ID is an invalid length.
    let raw = [
        0x20, 1, 0, 17, 0, 0, 3, 0, 0, 96, 0, 4, 0, 0, 0, 1, 0x80, 1, 0, 1, 0,
    ];
    let e = Message::parse(&raw).expect_err("must fail");
    assert_eq!(e.offending_ie(), Some(0x8001));
}

#[test]
fn unknown_message_type_is_kept_raw() {
    let raw = [0x20, 12, 0, 8, 0, 0, 4, 0, 0, 101, 0, 0];
    let m = Message::parse(&raw).expect("parse");
    assert_eq!(
        m.body,
        MessageBody::Unknown {
            msg_type: 12,
            body: vec![0, 101, 0, 0]
        }
    );
    assert_eq!(m.to_vec().expect("emit"), raw);
}

#[test]
fn emit_errors_never_panic() {
    let m = Message::node(1, HeartbeatRequest::default());
    let mut small = [0u8; 10];
    assert_eq!(
        m.emit(&mut small),
        Err(PfcpError::BufferTooSmall { need: 16, got: 10 })
    );
    // An IE value over 65535 octets cannot be encoded.
    let big = Message::node(
        1,
        HeartbeatRequest {
            recovery_time_stamp: 1,
            unknown: vec![RawIe::new(999, vec![0; 70_000])],
        },
    );
    assert!(matches!(big.to_vec(), Err(PfcpError::Unencodable { .. })));
    // An FQDN label over 63 octets cannot be encoded.
    let bad = Message::node(
        1,
        AssociationReleaseRequest {
            node_id: NodeId::fqdn(&"x".repeat(64)),
            ..Default::default()
        },
    );
    assert!(matches!(
        bad.to_vec(),
        Err(PfcpError::Unencodable { ie_type: 60, .. })
    ));
}

#[test]
fn follow_on_messages_parse_one_by_one() {
    let a = Message {
        header: Header {
            seq: 1,
            follow_on: true,
            ..Default::default()
        },
        body: HeartbeatRequest {
            recovery_time_stamp: 5,
            ..Default::default()
        }
        .into(),
    };
    let b = Message::node(
        2,
        HeartbeatResponse {
            recovery_time_stamp: 6,
            ..Default::default()
        },
    );
    let mut dgram = a.to_vec().expect("emit");
    b.emit_vec(&mut dgram).expect("emit");
    let (first, n) = Message::parse_prefix(&dgram).expect("first");
    assert_eq!(first, a);
    let (second, m) = Message::parse_prefix(&dgram[n..]).expect("second");
    assert_eq!((second, n + m), (b, dgram.len()));
}
