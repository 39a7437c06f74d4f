//! GTP-U codec tests: every getter against real bytes, emission into buffers
//! pre-filled with 0xa5 (so an unwritten field shows), every error kind, and
//! property tests (round trip for every message type, no panic on any input).
mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use wire::gtpu::{
    decap, encap_in_place, DlPduSessionInfo, ExtensionHeaderRepr, ExtensionHeaderType, GpduHeader,
    GtpuError, Ie, Message, MessageType, Packet, PduSessionInfo, Repr, UlPduSessionInfo,
    UlQosMonitoring, MAX_EXTENSION_HEADERS, MAX_GPDU_HEADER_LEN,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// scapy 2.5: G-PDU, TEID 0xabcdef01, S=1 seq 77, UL PDU Session Container
/// QFI 5 with SNP and UL QFI sequence number 0x010203, inner IPv4/UDP
/// (tests/fixtures/gtpu/gpdu_ul_psc_snp.hex).
const UL_SNP: &str = "36ff0033abcdef01004d0085 02 11 05 010203 00 00
    45000027000140004011265a0a2d00020a3c0001138817700013929968656c6c6f2c2065646765";

#[test]
fn view_getters_on_real_bytes() {
    let bytes = hex(UL_SNP);
    let p = Packet::new_checked(&bytes[..]).expect("valid");
    assert_eq!(p.flags(), 0x36);
    assert_eq!(p.version(), 1);
    assert!(p.protocol_type());
    assert!(p.e_flag());
    assert!(p.s_flag());
    assert!(!p.pn_flag());
    assert!(p.has_optional_fields());
    assert_eq!(p.message_type(), MessageType::GPdu);
    assert_eq!(p.length(), 0x33);
    assert_eq!(p.total_len(), bytes.len());
    assert_eq!(p.teid(), 0xabcd_ef01);
    assert_eq!(p.seq_number(), Some(77));
    assert_eq!(p.npdu_number(), None);
    assert_eq!(p.next_extension_type(), Some(0x85));
    let exts: Vec<_> = p
        .extension_headers()
        .collect::<Result<_, _>>()
        .expect("chain");
    assert_eq!(exts.len(), 1);
    assert_eq!(exts[0].ty, 0x85);
    assert_eq!(exts[0].ext_type(), ExtensionHeaderType::PduSessionContainer);
    assert!(exts[0].comprehension_required());
    assert_eq!(exts[0].content, &hex("11 05 010203 00")[..]);
    assert_eq!(p.header_len(), 20);
    assert_eq!(p.payload()[0], 0x45);
    assert_eq!(p.payload().len(), 39);

    let d = decap(&bytes).expect("decap");
    assert_eq!(d.message_type, MessageType::GPdu);
    assert_eq!(d.teid, 0xabcd_ef01);
    assert_eq!(d.seq, Some(77));
    assert_eq!(d.qfi(), Some(5));
    assert_eq!(
        d.pdu_session,
        Some(PduSessionInfo::Ul(UlPduSessionInfo {
            qfi: 5,
            ul_qfi_seq: Some(0x010203),
            ..Default::default()
        }))
    );
    assert_eq!(d.payload_offset, 20);
    assert_eq!(d.payload.as_ptr(), bytes[20..].as_ptr(), "zero-copy");
}

#[test]
fn view_plain_header_and_flags_without_meaning() {
    // PN set only: the 4 optional octets exist, seq and next type are not
    // meaningful.
    let bytes = hex("31ff0005 00000001 ffff 07 85 aa");
    let p = Packet::new_checked(&bytes[..]).expect("valid");
    assert_eq!(p.seq_number(), None);
    assert_eq!(p.npdu_number(), Some(7));
    assert_eq!(p.next_extension_type(), None);
    assert_eq!(p.extension_headers().count(), 0);
    assert_eq!(p.payload(), &[0xaa]);
    // No optional fields at all.
    let bytes = hex("30fe0000 00005678");
    let p = Packet::new_checked(&bytes[..]).expect("valid");
    assert_eq!(p.message_type(), MessageType::EndMarker);
    assert_eq!(p.teid(), 0x5678);
    assert_eq!(p.header_len(), 8);
    assert!(p.payload().is_empty());
}

#[test]
fn view_setters() {
    let mut buf = [0xa5u8; 12];
    let mut p = Packet::new_unchecked(&mut buf[..]);
    p.set_flags(true, false, true);
    p.set_message_type(MessageType::GPdu);
    p.set_length(4);
    p.set_teid(0x0102_0304);
    p.set_seq_number(0xbeef);
    p.set_npdu_number(9);
    p.set_next_extension_type(0);
    assert_eq!(buf, hex("35ff0004 01020304 beef 09 00")[..]);
}

#[test]
fn emit_echo_request_and_response() {
    // Same bytes as scapy's (fixtures echo_request.hex, echo_response.hex).
    assert_eq!(
        common::emit_control(&Repr::echo_request(7)),
        hex("32010004 00000000 0007 00 00")
    );
    assert_eq!(
        common::emit_control(&Repr::echo_response(7)),
        hex("32020006 00000000 0007 00 00 0e00")
    );
    let mut r = Repr::echo_response(0x1234);
    r.message = Message::EchoResponse {
        recovery: 3,
        ies: vec![Ie::PrivateExtension {
            id: 0x0102,
            value: vec![0xaa, 0xbb],
        }],
    };
    let b = common::emit_control(&r);
    assert_eq!(b, hex("3202000d 00000000 1234 00 00 0e03 ff0004 0102 aabb"));
    assert_eq!(Repr::parse_bytes(&b), Ok(r));
}

#[test]
fn emit_error_indication_v4_v6() {
    let r = Repr::error_indication(0xdead_beef, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(
        common::emit_control(&r),
        hex("321a0010 00000000 0000 00 00 10deadbeef 850004 0a000001")
    );
    let r6 = Repr::error_indication(
        0x101,
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
    );
    let b = common::emit_control(&r6);
    assert_eq!(
        b,
        hex("321a001c 00000000 0000 00 00 1000000101 850010 fd000000000000000000000000000001")
    );
    assert_eq!(Repr::parse_bytes(&b), Ok(r6));
}

#[test]
fn emit_end_marker_and_notification() {
    assert_eq!(
        common::emit_control(&Repr::end_marker(0x5678)),
        hex("30fe0000 00005678")
    );
    let mut r = Repr::supported_extension_headers_notification(3);
    r.message = Message::SupportedExtensionHeadersNotification {
        types: vec![
            ExtensionHeaderType::UdpPort,
            ExtensionHeaderType::PdcpPduNumber,
        ],
        ies: vec![],
    };
    let b = common::emit_control(&r);
    assert_eq!(b, hex("321f0008 00000000 0003 00 00 8d02 40c0"));
    assert_eq!(Repr::parse_bytes(&b), Ok(r));
    let full = Repr::supported_extension_headers_notification(1);
    assert_eq!(Repr::parse_bytes(&common::emit_control(&full)), Ok(full));
}

#[test]
fn gpdu_header_emit_every_shape() {
    let cases: Vec<(GpduHeader, &str)> = vec![
        (GpduHeader::new(0x11223344), "30ff0064 11223344"),
        (
            GpduHeader {
                seq: Some(0x0102),
                ..GpduHeader::new(1)
            },
            "32ff0068 00000001 0102 00 00",
        ),
        (
            GpduHeader {
                npdu: Some(0x33),
                ..GpduHeader::new(1)
            },
            "31ff0068 00000001 0000 33 00",
        ),
        (
            GpduHeader::dl(0x1234, 9),
            "34ff006c 00001234 0000 00 85 01 00 09 00",
        ),
        (
            GpduHeader::ul(0x1234, 63),
            "34ff006c 00001234 0000 00 85 01 10 3f 00",
        ),
        (
            GpduHeader {
                seq: Some(5),
                pdu_session: Some(PduSessionInfo::Dl(DlPduSessionInfo {
                    qfi: 9,
                    rqi: true,
                    ppi: Some(5),
                    ..Default::default()
                })),
                ..GpduHeader::new(0x1234)
            },
            // Same container bytes as scapy's gpdu_dl_psc.hex.
            "36ff0070 00001234 0005 00 85 02 00 c9 a0 000000 00",
        ),
        (
            GpduHeader {
                pdu_session: Some(PduSessionInfo::Dl(DlPduSessionInfo {
                    qfi: 1,
                    rqi: false,
                    ppi: None,
                    dl_sending_time_stamp: Some(0x0102_0304_0506_0708),
                    dl_qfi_seq: Some(0x0a0b0c),
                    dl_mbs_qfi_seq: Some(0xdead_beef),
                })),
                ..GpduHeader::new(2)
            },
            "34ff007c 00000002 0000 00 85 05 0e 01 0102030405060708 0a0b0c deadbeef 00 00",
        ),
    ];
    for (hdr, expected) in cases {
        let expected = hex(expected);
        assert_eq!(hdr.header_len(), expected.len(), "{hdr:?}");
        let mut buf = vec![0xa5u8; hdr.header_len()];
        assert_eq!(hdr.emit(&mut buf, 100), Ok(expected.len()));
        assert_eq!(buf, expected, "{hdr:?}");
    }
}

#[test]
fn ul_container_with_every_field_pads_to_44() {
    let info = PduSessionInfo::Ul(common::ul_info_every_field(7));
    assert_eq!(info.ext_len(), 44);
    let mut buf = [0xa5u8; 44];
    assert_eq!(info.emit(&mut buf, 0x40), Ok(44));
    let expected = hex("0b 1f 87 0000000000000001 0000000000000002 0000000000000003
         00000004 00000005 000006 00000007 00 40");
    assert_eq!(buf[..], expected[..]);
    assert_eq!(PduSessionInfo::parse(&buf[1..43]), Ok(Some(info)));
    let hdr = GpduHeader {
        seq: Some(1),
        npdu: Some(2),
        pdu_session: Some(info),
        teid: 3,
    };
    assert_eq!(hdr.header_len(), MAX_GPDU_HEADER_LEN);
}

#[test]
fn container_of_unknown_pdu_type_is_kept_raw() {
    // PDU type 2 is not defined for the PDU Session Container.
    let bytes = hex("34ff0008 00000001 0000 00 85 01 20 05 00");
    let d = decap(&bytes).expect("decap");
    assert_eq!(d.pdu_session, None);
    let r = Repr::parse_bytes(&bytes).expect("parse");
    assert_eq!(
        r.extensions,
        vec![ExtensionHeaderRepr::Other {
            ty: 0x85,
            content: vec![0x20, 0x05]
        }]
    );
    assert_eq!(common::emit_control(&r), bytes);
}

#[test]
fn unknown_extension_headers_by_comprehension_bits() {
    // 0x3f (bits 8,7 = 00): not required, skipped; then the PDU Session
    // Container; then the payload.
    let skip = hex("34ff000d 00000007 0000 00 3f 01 aabb 85 01 00 05 00 45");
    let d = decap(&skip).expect("not required: skipped");
    assert_eq!(d.qfi(), Some(5));
    assert_eq!(d.payload, &[0x45]);
    let r = Repr::parse_bytes(&skip).expect("parse");
    assert_eq!(r.extensions.len(), 2);
    assert_eq!(common::emit_control(&r)[..20], skip[..20]);
    // 0xbf (bits 8,7 = 10): comprehension required, unknown.
    let mut req = skip.clone();
    req[11] = 0xbf;
    assert_eq!(decap(&req), Err(GtpuError::UnknownRequiredExtension(0xbf)));
    assert_eq!(
        Repr::parse_bytes(&req),
        Err(GtpuError::UnknownRequiredExtension(0xbf))
    );
    // The view itself accepts it: comprehension is the receiver's business.
    assert!(Packet::new_checked(&req[..]).is_ok());
    // A known required type (PDCP PDU Number, 0xc0) is skipped.
    let mut known = skip.clone();
    known[11] = 0xc0;
    assert_eq!(decap(&known).map(|d| d.qfi()), Ok(Some(5)));
}

#[test]
fn errors_are_typed() {
    use GtpuError::*;
    let cases: Vec<(&str, GtpuError)> = vec![
        ("", Truncated { need: 8, have: 0 }),
        ("30ff0000 000000", Truncated { need: 8, have: 7 }),
        // GTPv2 header.
        ("48200004 00000000", BadVersion(2)),
        ("10ff0000 00000000", BadVersion(0)),
        // GTP' (PT = 0).
        ("20ff0000 00000000", BadProtocolType),
        // Length larger than the buffer.
        ("30ff0004 00000001 aaaa", Truncated { need: 12, have: 10 }),
        // S set but length 2 < 4.
        (
            "32ff0002 00000001 0001",
            LengthMismatch { length: 2, need: 4 },
        ),
        // Extension header with length 0.
        (
            "34ff0008 00000001 0000 00 85 00 00 00 00",
            ZeroLengthExtension(0x85),
        ),
        // Extension header running past the length field (needs 8 octets).
        (
            "34ff0008 00000001 0000 00 85 02 00 00 00 00000000",
            LengthMismatch {
                length: 8,
                need: 12,
            },
        ),
        // Chain announces another header after the last one (next type 0x85
        // where the message ends).
        (
            "34ff0008 00000001 0000 00 85 01 00 05 85",
            LengthMismatch { length: 8, need: 9 },
        ),
        // PPP and QMP set in a 2-octet container.
        (
            "34ff0008 00000001 0000 00 85 01 08 80 00",
            BadPduSessionContainer,
        ),
    ];
    for (bytes, err) in cases {
        let b = hex(bytes);
        let via_repr = Repr::parse_bytes(&b);
        let via_decap = decap(&b).map(|_| ());
        assert_eq!(via_repr, Err(err), "Repr on {bytes}");
        assert_eq!(via_decap, Err(err), "decap on {bytes}");
        if err != BadPduSessionContainer {
            assert_eq!(
                Packet::new_checked(&b[..]).map(|_| ()),
                Err(err),
                "view on {bytes}"
            );
        }
    }
}

#[test]
fn long_extension_chain_is_capped() {
    // MAX_EXTENSION_HEADERS + 1 headers of type 0x01 (not required).
    let n = MAX_EXTENSION_HEADERS + 1;
    let mut b = hex("34ff0000 00000001 0000 00 01");
    for i in 0..n {
        b.extend_from_slice(&[1, 0, 0, if i + 1 == n { 0 } else { 1 }]);
    }
    let len = (b.len() - 8) as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    let err = GtpuError::TooManyExtensions {
        max: MAX_EXTENSION_HEADERS,
    };
    assert_eq!(Packet::new_checked(&b[..]).map(|_| ()), Err(err));
    assert_eq!(decap(&b).map(|_| ()), Err(err));
    // Exactly the maximum is fine.
    let mut ok = b[..b.len() - 4].to_vec();
    let last = ok.len() - 1;
    ok[last] = 0;
    let len = (ok.len() - 8) as u16;
    ok[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        Repr::parse_bytes(&ok).map(|r| r.extensions.len()),
        Ok(MAX_EXTENSION_HEADERS)
    );
}

#[test]
fn ie_errors_and_unknowns() {
    // Error Indication without the Peer Address.
    let b = hex("321a0009 00000000 0000 00 00 10deadbeef");
    assert_eq!(Repr::parse_bytes(&b), Err(GtpuError::MissingIe(133)));
    // Peer Address of 5 octets.
    let b = hex("321a0011 00000000 0000 00 00 10deadbeef 850005 0a00000100");
    assert_eq!(
        Repr::parse_bytes(&b),
        Err(GtpuError::BadIe { ty: 133, len: 5 })
    );
    // Echo Response without Recovery.
    let b = hex("32020004 00000000 0001 00 00");
    assert_eq!(Repr::parse_bytes(&b), Err(GtpuError::MissingIe(14)));
    // Truncated TLV.
    let b = hex("32010007 00000000 0001 00 00 ff0005");
    assert_eq!(
        Repr::parse_bytes(&b),
        Err(GtpuError::BadIe { ty: 255, len: 5 })
    );
    // Unknown TLV and unknown TV IEs are kept.
    let b = hex("3201000a 00000000 0001 00 00 c80001 77 05 99");
    let r = Repr::parse_bytes(&b).expect("parse");
    assert_eq!(
        r.message,
        Message::EchoRequest {
            ies: vec![
                Ie::Unknown {
                    ty: 0xc8,
                    data: vec![0x77]
                },
                Ie::Unknown {
                    ty: 5,
                    data: vec![0x99]
                },
            ]
        }
    );
    assert_eq!(common::emit_control(&r), b);
}

#[test]
fn emit_rejects_what_cannot_be_encoded() {
    let mut r = Repr::end_marker(1);
    r.extensions = vec![ExtensionHeaderRepr::Other {
        ty: 0,
        content: vec![0, 0],
    }];
    let mut buf = vec![0u8; r.buffer_len()];
    assert_eq!(r.emit(&mut buf), Err(GtpuError::ExtensionTypeZero));
    r.extensions = vec![ExtensionHeaderRepr::Other {
        ty: 0x40,
        content: vec![0, 0, 0],
    }];
    let mut buf = vec![0u8; r.buffer_len()];
    assert_eq!(r.emit(&mut buf), Err(GtpuError::BadExtensionLength(3)));
    let r = Repr::echo_request(1);
    let mut short = vec![0u8; r.buffer_len() - 1];
    assert_eq!(
        r.emit(&mut short),
        Err(GtpuError::BufferTooSmall { need: 12, have: 11 })
    );
    let r = Repr {
        message: Message::GPdu { payload_len: 65536 },
        ..Repr::end_marker(1)
    };
    let mut big = vec![0u8; r.buffer_len()];
    assert_eq!(r.emit(&mut big), Err(GtpuError::TooLong(65536)));
}

#[test]
fn unknown_message_type_is_kept() {
    let b = hex("30fd0003 00000009 010203");
    let r = Repr::parse_bytes(&b).expect("parse");
    assert_eq!(
        r.message,
        Message::Unknown {
            message_type: 253,
            body: vec![1, 2, 3]
        }
    );
    assert_eq!(r.message.message_type(), MessageType::TunnelStatus);
    assert_eq!(common::emit_control(&r), b);
    let b = hex("30640000 00000000");
    assert_eq!(
        Repr::parse_bytes(&b).map(|r| r.message.message_type()),
        Ok(MessageType::Unknown(100))
    );
}

#[test]
fn trailing_bytes_after_length_are_ignored() {
    let b = hex("30ff0001 00000001 45 eeee");
    let d = decap(&b).expect("decap");
    assert_eq!(d.payload, &[0x45]);
    let r = Repr::parse_bytes(&b).expect("parse");
    assert_eq!(r.message, Message::GPdu { payload_len: 1 });
}

#[test]
fn encap_in_place_writes_in_front_of_payload() {
    let payload = b"inner ip packet";
    let headroom = 32;
    let mut buf = vec![0xa5u8; headroom + payload.len() + 7];
    buf[headroom..headroom + payload.len()].copy_from_slice(payload);
    let hdr = GpduHeader::dl(0xcafe, 9);
    let payload_ptr = buf[headroom..].as_ptr();
    let out = encap_in_place(&mut buf, headroom, payload.len(), &hdr).expect("encap");
    assert_eq!(out.len(), 16 + payload.len());
    assert_eq!(
        &out[..16],
        &hex("34ff0017 0000cafe 0000 00 85 01 00 09 00")[..]
    );
    assert_eq!(&out[16..], payload);
    assert_eq!(out[16..].as_ptr(), payload_ptr, "payload not moved");
    let out: &[u8] = out;
    let d = decap(out).expect("decap");
    assert_eq!((d.teid, d.qfi(), d.seq), (0xcafe, Some(9), None));
    assert_eq!(d.payload, payload);
    // The bytes in front of the header are untouched.
    assert!(buf[..headroom - 16].iter().all(|&b| b == 0xa5));

    let mut small = vec![0u8; 40];
    assert_eq!(
        encap_in_place(&mut small, 15, 10, &hdr).map(|_| ()),
        Err(GtpuError::BufferTooSmall { need: 16, have: 15 })
    );
    assert_eq!(
        encap_in_place(&mut small, 16, 30, &hdr).map(|_| ()),
        Err(GtpuError::BufferTooSmall { need: 46, have: 40 })
    );
    let mut big = vec![0u8; 16 + 65536];
    assert_eq!(
        encap_in_place(&mut big, 16, 65536, &hdr).map(|_| ()),
        Err(GtpuError::TooLong(65544))
    );
}

// ---- property tests ----

fn dl_info() -> impl Strategy<Value = PduSessionInfo> {
    (
        0u8..64,
        any::<bool>(),
        proptest::option::of(0u8..8),
        proptest::option::of(any::<u64>()),
        proptest::option::of(0u32..1 << 24),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(qfi, rqi, ppi, ts, seq, mbs)| {
            PduSessionInfo::Dl(DlPduSessionInfo {
                qfi,
                rqi,
                ppi,
                dl_sending_time_stamp: ts,
                dl_qfi_seq: seq,
                dl_mbs_qfi_seq: mbs,
            })
        })
}

fn ul_info() -> impl Strategy<Value = PduSessionInfo> {
    (
        0u8..64,
        proptest::option::of(any::<(u64, u64, u64)>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(0u32..1 << 24),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(qfi, qm, dl, ul, seq, n3)| {
            PduSessionInfo::Ul(UlPduSessionInfo {
                qfi,
                qos_monitoring: qm.map(|(a, b, c)| UlQosMonitoring {
                    dl_sending_time_stamp_repeated: a,
                    dl_received_time_stamp: b,
                    ul_sending_time_stamp: c,
                }),
                dl_delay_result: dl,
                ul_delay_result: ul,
                ul_qfi_seq: seq,
                n3n9_delay_result: n3,
            })
        })
}

fn pdu_info() -> impl Strategy<Value = PduSessionInfo> {
    prop_oneof![dl_info(), ul_info()]
}

fn ext_repr() -> impl Strategy<Value = ExtensionHeaderRepr> {
    let other_ty = prop_oneof![
        1u8..0x80,
        prop::sample::select(vec![0x81u8, 0x82, 0x83, 0x84, 0xc0]),
    ];
    prop_oneof![
        pdu_info().prop_map(ExtensionHeaderRepr::PduSessionContainer),
        (other_ty, 0usize..4)
            .prop_flat_map(|(ty, k)| (Just(ty), prop::collection::vec(any::<u8>(), 4 * k + 2)))
            .prop_map(|(ty, content)| ExtensionHeaderRepr::Other { ty, content }),
    ]
}

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn ext_type() -> impl Strategy<Value = ExtensionHeaderType> {
    any::<u8>().prop_map(ExtensionHeaderType::from)
}

fn ie() -> impl Strategy<Value = Ie> {
    prop_oneof![
        any::<u8>().prop_map(Ie::Recovery),
        any::<u32>().prop_map(Ie::TeidDataI),
        ip_addr().prop_map(Ie::PeerAddress),
        prop::collection::vec(ext_type(), 0..6).prop_map(Ie::ExtensionHeaderTypeList),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(id, value)| Ie::PrivateExtension { id, value }),
        (128u8..255, prop::collection::vec(any::<u8>(), 0..8))
            .prop_filter("known TLV", |(ty, _)| *ty != 133 && *ty != 141)
            .prop_map(|(ty, data)| Ie::Unknown { ty, data }),
    ]
}

/// IEs in any order, optionally ended by an unknown TV IE (which, having no
/// known length, runs to the end of the message).
fn ies() -> impl Strategy<Value = Vec<Ie>> {
    (
        prop::collection::vec(ie(), 0..4),
        proptest::option::of(
            (0u8..128, prop::collection::vec(any::<u8>(), 0..6))
                .prop_filter("known TV", |(ty, _)| *ty != 14 && *ty != 16),
        ),
    )
        .prop_map(|(mut v, tv)| {
            if let Some((ty, data)) = tv {
                v.push(Ie::Unknown { ty, data });
            }
            v
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (0usize..3000).prop_map(|payload_len| Message::GPdu { payload_len }),
        ies().prop_map(|ies| Message::EchoRequest { ies }),
        (any::<u8>(), ies()).prop_map(|(recovery, ies)| Message::EchoResponse { recovery, ies }),
        (any::<u32>(), ip_addr(), ies()).prop_map(|(teid_data, peer, ies)| {
            Message::ErrorIndication {
                teid_data,
                peer,
                ies,
            }
        }),
        ies().prop_map(|ies| Message::EndMarker { ies }),
        (prop::collection::vec(ext_type(), 0..10), ies())
            .prop_map(|(types, ies)| Message::SupportedExtensionHeadersNotification { types, ies }),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..32))
            .prop_filter("known type", |(t, _)| ![1, 2, 26, 31, 254, 255].contains(t))
            .prop_map(|(message_type, body)| Message::Unknown { message_type, body }),
    ]
}

fn repr() -> impl Strategy<Value = Repr> {
    (
        any::<u32>(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        prop::collection::vec(ext_repr(), 0..4),
        message(),
    )
        .prop_map(|(teid, seq, npdu, extensions, message)| Repr {
            teid,
            seq,
            npdu,
            extensions,
            message,
        })
}

fn gpdu_header() -> impl Strategy<Value = GpduHeader> {
    (
        any::<u32>(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(pdu_info()),
    )
        .prop_map(|(teid, seq, npdu, pdu_session)| GpduHeader {
            teid,
            seq,
            npdu,
            pdu_session,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn repr_emit_then_parse_is_identity(r in repr()) {
        let buf = common::emit_control(&r);
        let p = Packet::new_checked(&buf[..]).expect("emitted packet must be valid");
        prop_assert_eq!(p.header_len(), r.header_len());
        prop_assert_eq!(Repr::parse(&p), Ok(r.clone()));
        // Emitting again into a zeroed buffer gives the same bytes: no field
        // depends on what was in the buffer.
        let mut zero = vec![0u8; r.buffer_len()];
        r.emit(&mut zero).expect("emit");
        let h = r.header_len();
        let body = if matches!(r.message, Message::GPdu { .. }) { h } else { buf.len() };
        prop_assert_eq!(&zero[..body], &buf[..body]);
    }

    #[test]
    fn encap_then_decap_is_identity(
        hdr in gpdu_header(),
        payload in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let out = common::emit_gpdu(&hdr, &payload);
        let out: &[u8] = &out;
        prop_assert_eq!(out.len(), hdr.header_len() + payload.len());
        let d = decap(out).expect("decap");
        prop_assert_eq!(d.teid, hdr.teid);
        prop_assert_eq!(d.seq, hdr.seq);
        prop_assert_eq!(d.npdu, hdr.npdu);
        prop_assert_eq!(d.pdu_session, hdr.pdu_session);
        prop_assert_eq!(d.payload, &payload[..]);
        // The owned Repr reads the same header.
        let r = Repr::parse_bytes(out).expect("parse");
        prop_assert_eq!(r.teid, hdr.teid);
        prop_assert_eq!(r.extensions.first().cloned(), hdr.pdu_session.map(ExtensionHeaderRepr::PduSessionContainer));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = Repr::parse_bytes(&data);
        let _ = decap(&data);
        let p = Packet::new_unchecked(&data[..]);
        let _ = p.payload();
        let _ = p.extension_headers().count();
        if let Ok(p) = Packet::new_checked(&data[..]) {
            let _ = (p.teid(), p.seq_number(), p.npdu_number(), p.message_type(), p.payload());
        }
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        r in repr(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = common::emit_control(&r);
        for (i, v) in flips {
            let i = i.index(buf.len());
            buf[i] = v;
        }
        let cut = cut.index(buf.len() + 1);
        for data in [&buf[..], &buf[..cut]] {
            let d = decap(data);
            let rp = Repr::parse_bytes(data);
            let v = Packet::new_checked(data);
            // decap accepts only what the view accepts.
            if d.is_ok() { prop_assert!(v.is_ok()); }
            if let Ok(rp) = rp {
                let again = common::emit_control(&rp);
                prop_assert_eq!(Repr::parse_bytes(&again), Ok(rp));
            }
        }
    }
}
