//! Independent peer check: every GTP-U message kind we emit is decoded by
//! tshark (the Wireshark GTP dissector) with the intended field values and
//! without any expert info of severity warning or worse.
mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wire::gtpu::{
    DlPduSessionInfo, ExtensionHeaderType, GpduHeader, Message, PduSessionInfo, Repr,
    UlPduSessionInfo, PORT,
};

const GNB: [u8; 4] = [192, 168, 3, 2];
const UPF: [u8; 4] = [192, 168, 3, 1];

/// A valid inner IPv4/UDP packet (UE 10.45.0.7:40000 -> 10.60.0.1:5004), so
/// that tshark dissects the T-PDU too.
fn inner_packet(tag: u8) -> Vec<u8> {
    let frame = common::udp_frame([10, 45, 0, 7], [10, 60, 0, 1], 40000, 5004, &[tag; 32]);
    frame[14..].to_vec() // strip the Ethernet header
}

fn gpdu(hdr: GpduHeader, tag: u8) -> Vec<u8> {
    common::emit_gpdu(&hdr, &inner_packet(tag))
}

#[test]
fn tshark_decodes_every_message_kind() {
    let messages: Vec<Vec<u8>> = vec![
        // 1: plain G-PDU.
        gpdu(GpduHeader::new(0x0000_1001), 1),
        // 2: G-PDU with a sequence number.
        gpdu(
            GpduHeader {
                seq: Some(4242),
                ..GpduHeader::new(0x0000_1002)
            },
            2,
        ),
        // 3: DL PDU Session Container, QFI 9, RQI, PPP with PPI 5.
        gpdu(
            GpduHeader {
                pdu_session: Some(PduSessionInfo::Dl(DlPduSessionInfo {
                    qfi: 9,
                    rqi: true,
                    ppi: Some(5),
                    ..Default::default()
                })),
                ..GpduHeader::new(0x0000_1003)
            },
            3,
        ),
        // 4: UL PDU Session Container, QFI 5, with seq.
        gpdu(
            GpduHeader {
                seq: Some(7),
                pdu_session: Some(PduSessionInfo::Ul(UlPduSessionInfo {
                    qfi: 5,
                    ..Default::default()
                })),
                ..GpduHeader::new(0x0000_1004)
            },
            4,
        ),
        // 5: DL container with only a QFI (the UPF's usual header).
        gpdu(GpduHeader::dl(0x0000_1005, 1), 5),
        // 6, 7: Echo Request / Response.
        common::emit_control(&Repr::echo_request(100)),
        common::emit_control(&Repr::echo_response(100)),
        // 8, 9: Error Indication with an IPv4 and an IPv6 peer address.
        common::emit_control(&Repr::error_indication(
            0xdead_beef,
            IpAddr::V4(Ipv4Addr::new(192, 168, 3, 1)),
        )),
        common::emit_control(&Repr::error_indication(
            0x0000_0101,
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        )),
        // 10: End Marker.
        common::emit_control(&Repr::end_marker(0x0000_1005)),
        // 11: Supported Extension Headers Notification.
        common::emit_control(&Repr {
            message: Message::SupportedExtensionHeadersNotification {
                types: vec![
                    ExtensionHeaderType::UdpPort,
                    ExtensionHeaderType::PduSessionContainer,
                ],
                ies: vec![],
            },
            ..Repr::supported_extension_headers_notification(9)
        }),
        // 12: DL container with every optional field (QMP, SNP, MSNP).
        gpdu(
            GpduHeader {
                pdu_session: Some(PduSessionInfo::Dl(DlPduSessionInfo {
                    qfi: 33,
                    rqi: false,
                    ppi: Some(2),
                    dl_sending_time_stamp: Some(0xe8f0_0000_8000_0000),
                    dl_qfi_seq: Some(0x00_1234),
                    dl_mbs_qfi_seq: Some(77),
                })),
                ..GpduHeader::new(0x0000_100c)
            },
            12,
        ),
        // 13: UL container with every optional field.
        gpdu(
            GpduHeader {
                pdu_session: Some(PduSessionInfo::Ul(common::ul_info_every_field(62))),
                ..GpduHeader::new(0x0000_100d)
            },
            13,
        ),
    ];
    let frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| common::udp_frame(UPF, GNB, PORT, PORT, m))
        .collect();
    let pcap = common::temp_pcap("gtpu-all");
    common::write_pcap(&pcap, &frames);

    let fields = [
        "gtp.message",
        "gtp.teid",
        "gtp.seq_number",
        "gtp.ext_hdr.pdu_ses_con.pdu_type",
        "gtp.ext_hdr.pdu_ses_con.qos_flow_id",
        "gtp.ext_hdr.pdu_ses_cont.rqi",
        "gtp.ext_hdr.pdu_ses_cont.ppp",
        "gtp.ext_hdr.pdu_ses_cont.ppi",
        "gtp.recovery",
        "gtp.teid_data",
        "gtp.gsn_ipv4",
        "gtp.gsn_ipv6",
        "gtp.ext_hdr_type",
        "ip.dst",
        "udp.dstport",
        "gtp.length",
    ];
    let rows = common::tshark_fields(&pcap, &[], &fields);
    let problems = common::tshark_problems(&pcap, &[]);
    let verbose = common::tshark_verbose(&pcap, &[]);
    std::fs::remove_file(&pcap).ok();
    assert_eq!(rows.len(), messages.len(), "{rows:?}");
    let get = |frame: usize, field: &str| -> &str {
        let i = fields.iter().position(|f| *f == field).expect("field");
        rows[frame - 1].get(i).map(String::as_str).unwrap_or("")
    };
    let ctx = |frame: usize| format!("frame {frame}: {:?}\n{verbose}", rows[frame - 1]);

    // tshark prints TEIDs and sequence numbers (BASE_HEX) in hex.
    // G-PDUs: message type, TEID, inner IPv4/UDP decoded (outer and inner
    // addresses and ports), GTP length as emitted.
    for (frame, teid) in [
        (1, 0x1001),
        (2, 0x1002),
        (3, 0x1003),
        (4, 0x1004),
        (5, 0x1005),
        (12, 0x100c),
        (13, 0x100d),
    ] {
        assert_eq!(get(frame, "gtp.message"), "0xff", "{}", ctx(frame));
        assert_eq!(
            get(frame, "gtp.teid"),
            format!("{teid:#010x}"),
            "{}",
            ctx(frame)
        );
        assert_eq!(
            get(frame, "ip.dst"),
            "192.168.3.2,10.60.0.1",
            "{}",
            ctx(frame)
        );
        assert_eq!(get(frame, "udp.dstport"), "2152,5004", "{}", ctx(frame));
        let msg = &messages[frame - 1];
        let len = u16::from_be_bytes([msg[2], msg[3]]);
        assert_eq!(get(frame, "gtp.length"), len.to_string(), "{}", ctx(frame));
    }
    assert_eq!(get(1, "gtp.seq_number"), "", "{}", ctx(1));
    assert_eq!(get(2, "gtp.seq_number"), "0x1092", "{}", ctx(2));
    // DL container.
    assert_eq!(
        get(3, "gtp.ext_hdr.pdu_ses_con.pdu_type"),
        "0",
        "{}",
        ctx(3)
    );
    assert_eq!(
        get(3, "gtp.ext_hdr.pdu_ses_con.qos_flow_id"),
        "9",
        "{}",
        ctx(3)
    );
    assert_eq!(get(3, "gtp.ext_hdr.pdu_ses_cont.rqi"), "1", "{}", ctx(3));
    assert_eq!(get(3, "gtp.ext_hdr.pdu_ses_cont.ppp"), "1", "{}", ctx(3));
    assert_eq!(get(3, "gtp.ext_hdr.pdu_ses_cont.ppi"), "5", "{}", ctx(3));
    // UL container.
    assert_eq!(
        get(4, "gtp.ext_hdr.pdu_ses_con.pdu_type"),
        "1",
        "{}",
        ctx(4)
    );
    assert_eq!(
        get(4, "gtp.ext_hdr.pdu_ses_con.qos_flow_id"),
        "5",
        "{}",
        ctx(4)
    );
    assert_eq!(get(4, "gtp.seq_number"), "0x0007", "{}", ctx(4));
    assert_eq!(
        get(5, "gtp.ext_hdr.pdu_ses_con.pdu_type"),
        "0",
        "{}",
        ctx(5)
    );
    assert_eq!(
        get(5, "gtp.ext_hdr.pdu_ses_con.qos_flow_id"),
        "1",
        "{}",
        ctx(5)
    );
    assert_eq!(get(5, "gtp.ext_hdr.pdu_ses_cont.ppp"), "0", "{}", ctx(5));
    // Echo.
    assert_eq!(get(6, "gtp.message"), "0x01", "{}", ctx(6));
    assert_eq!(get(6, "gtp.seq_number"), "0x0064", "{}", ctx(6));
    assert_eq!(get(6, "gtp.teid"), "0x00000000", "{}", ctx(6));
    assert_eq!(get(7, "gtp.message"), "0x02", "{}", ctx(7));
    assert_eq!(get(7, "gtp.seq_number"), "0x0064", "{}", ctx(7));
    assert_eq!(get(7, "gtp.recovery"), "0", "{}", ctx(7));
    // Error Indication.
    assert_eq!(get(8, "gtp.message"), "0x1a", "{}", ctx(8));
    assert_eq!(get(8, "gtp.teid_data"), "0xdeadbeef", "{}", ctx(8));
    assert_eq!(get(8, "gtp.gsn_ipv4"), "192.168.3.1", "{}", ctx(8));
    assert_eq!(get(9, "gtp.teid_data"), "0x00000101", "{}", ctx(9));
    assert_eq!(get(9, "gtp.gsn_ipv6"), "fd00::1", "{}", ctx(9));
    // End Marker.
    assert_eq!(get(10, "gtp.message"), "0xfe", "{}", ctx(10));
    assert_eq!(get(10, "gtp.teid"), "0x00001005", "{}", ctx(10));
    assert_eq!(get(10, "gtp.length"), "0", "{}", ctx(10));
    // Supported Extension Headers Notification.
    assert_eq!(get(11, "gtp.message"), "0x1f", "{}", ctx(11));
    assert_eq!(get(11, "gtp.ext_hdr_type"), "64,133", "{}", ctx(11));

    // Containers with every optional field: tshark 4.0 decodes type and QFI
    // (it knows no later fields) and still finds the inner packet.
    for (frame, ty, qfi) in [(12, "0", "33"), (13, "1", "62")] {
        assert_eq!(
            get(frame, "gtp.ext_hdr.pdu_ses_con.pdu_type"),
            ty,
            "{}",
            ctx(frame)
        );
        assert_eq!(
            get(frame, "gtp.ext_hdr.pdu_ses_con.qos_flow_id"),
            qfi,
            "{}",
            ctx(frame)
        );
        assert_eq!(get(frame, "udp.dstport"), "2152,5004", "{}", ctx(frame));
    }

    assert!(
        problems.is_empty(),
        "tshark problems: {problems:?}\n{verbose}"
    );
}
