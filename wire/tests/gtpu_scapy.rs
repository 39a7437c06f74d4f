//! Independent peer check the other way round: GTP-U messages built by scapy
//! (scapy.contrib.gtp, see tests/fixtures/gtpu/gen_scapy.py and the comment
//! at the top of each .hex file) are parsed by ours with the right values,
//! and where scapy follows the spec our emitter produces the same bytes.
mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use wire::gtpu::{
    decap, DlPduSessionInfo, ExtensionHeaderRepr, ExtensionHeaderType, GpduHeader, Ie, Message,
    MessageType, Packet, PduSessionInfo, Repr, UlPduSessionInfo,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gtpu")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(
        text.starts_with('#'),
        "{name}: fixture must say where it came from"
    );
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The inner packet of scapy's G-PDUs: IPv4/UDP 10.45.0.2:5000 ->
/// 10.60.0.1:6000, payload "hello, edge".
fn check_inner(payload: &[u8]) {
    assert_eq!(payload.len(), 20 + 8 + 11);
    assert_eq!(payload[0], 0x45);
    assert_eq!(&payload[12..20], &[10, 45, 0, 2, 10, 60, 0, 1]);
    assert_eq!(&payload[20..24], &[0x13, 0x88, 0x17, 0x70]);
    assert_eq!(&payload[28..], b"hello, edge");
}

#[test]
fn scapy_gpdu_dl_container_with_ppi() {
    let raw = fixture("gpdu_dl_psc");
    let d = decap(&raw).expect("decap");
    assert_eq!(d.message_type, MessageType::GPdu);
    assert_eq!(d.teid, 0x1234);
    assert_eq!(d.seq, None);
    let expected = GpduHeader {
        teid: 0x1234,
        seq: None,
        npdu: None,
        pdu_session: Some(PduSessionInfo::Dl(DlPduSessionInfo {
            qfi: 9,
            rqi: true,
            ppi: Some(5),
            ..Default::default()
        })),
    };
    assert_eq!(d.pdu_session, expected.pdu_session);
    check_inner(d.payload);
    let r = Repr::parse_bytes(&raw).expect("parse");
    assert_eq!(
        r.extensions,
        vec![ExtensionHeaderRepr::PduSessionContainer(
            expected.pdu_session.expect("set")
        )]
    );
    assert_eq!(common::emit_gpdu(&expected, d.payload), raw);
}

#[test]
fn scapy_gpdu_dl_container_qfi_only() {
    let raw = fixture("gpdu_dl_psc_qfi");
    let d = decap(&raw).expect("decap");
    assert_eq!((d.teid, d.qfi()), (0x0102_0304, Some(1)));
    assert_eq!(d.pdu_session, Some(PduSessionInfo::dl(1)));
    check_inner(d.payload);
    assert_eq!(
        common::emit_gpdu(&GpduHeader::dl(0x0102_0304, 1), d.payload),
        raw
    );
}

#[test]
fn scapy_gpdu_ul_container_with_sequence_numbers() {
    let raw = fixture("gpdu_ul_psc_snp");
    let d = decap(&raw).expect("decap");
    let expected = GpduHeader {
        teid: 0xabcd_ef01,
        seq: Some(77),
        npdu: None,
        pdu_session: Some(PduSessionInfo::Ul(UlPduSessionInfo {
            qfi: 5,
            ul_qfi_seq: Some(0x01_0203),
            ..Default::default()
        })),
    };
    assert_eq!(
        (d.teid, d.seq, d.npdu, d.pdu_session),
        (
            expected.teid,
            expected.seq,
            expected.npdu,
            expected.pdu_session
        )
    );
    check_inner(d.payload);
    assert_eq!(common::emit_gpdu(&expected, d.payload), raw);
}

#[test]
fn scapy_gpdu_plain() {
    let raw = fixture("gpdu_plain");
    let p = Packet::new_checked(&raw[..]).expect("valid");
    assert!(!p.has_optional_fields());
    assert_eq!(p.teid(), 0x42);
    check_inner(p.payload());
    let d = decap(&raw).expect("decap");
    assert_eq!(d.pdu_session, None);
    assert_eq!(common::emit_gpdu(&GpduHeader::new(0x42), d.payload), raw);
}

#[test]
fn scapy_echo() {
    let req = fixture("echo_request");
    assert_eq!(Repr::parse_bytes(&req), Ok(Repr::echo_request(7)));
    assert_eq!(common::emit_control(&Repr::echo_request(7)), req);
    let resp = fixture("echo_response");
    assert_eq!(Repr::parse_bytes(&resp), Ok(Repr::echo_response(7)));
    assert_eq!(common::emit_control(&Repr::echo_response(7)), resp);
}

#[test]
fn scapy_error_indication_v4_and_v6() {
    let v4 = fixture("error_indication_v4");
    let r = Repr::error_indication(0xdead_beef, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(Repr::parse_bytes(&v4), Ok(r.clone()));
    assert_eq!(common::emit_control(&r), v4);
    let v6 = fixture("error_indication_v6");
    let r = Repr::error_indication(
        0x101,
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
    );
    assert_eq!(Repr::parse_bytes(&v6), Ok(r.clone()));
    assert_eq!(common::emit_control(&r), v6);
}

#[test]
fn scapy_end_marker() {
    let raw = fixture("end_marker");
    assert_eq!(Repr::parse_bytes(&raw), Ok(Repr::end_marker(0x5678)));
    assert_eq!(
        decap(&raw).map(|d| d.message_type),
        Ok(MessageType::EndMarker)
    );
    assert_eq!(common::emit_control(&Repr::end_marker(0x5678)), raw);
}

/// scapy 2.5 writes the Extension Header Type List IE with a 2-octet length
/// (holding 3 for two types); TS 29.281 §8.5 (and Wireshark) have a 1-octet
/// length. We follow the spec: scapy's bytes parse, without error, as an
/// empty list followed by an unknown TV IE of type 3, and our encoding of the
/// same list differs from scapy's exactly in that length field.
#[test]
fn scapy_supported_extension_headers_notification_deviates() {
    let raw = fixture("supported_ext_hdr_notification");
    assert_eq!(&raw[12..], &[0x8d, 0x00, 0x03, 0x40, 0xc0]);
    let r = Repr::parse_bytes(&raw).expect("parse");
    assert_eq!(r.seq, Some(3));
    assert_eq!(
        r.message,
        Message::SupportedExtensionHeadersNotification {
            types: vec![],
            ies: vec![Ie::Unknown {
                ty: 3,
                data: vec![0x40, 0xc0]
            }],
        }
    );
    let ours = common::emit_control(&Repr {
        message: Message::SupportedExtensionHeadersNotification {
            types: vec![
                ExtensionHeaderType::UdpPort,
                ExtensionHeaderType::PdcpPduNumber,
            ],
            ies: vec![],
        },
        ..Repr::supported_extension_headers_notification(3)
    });
    assert_eq!(&ours[12..], &[0x8d, 0x02, 0x40, 0xc0]);
    assert_eq!(&ours[4..12], &raw[4..12]);
}
