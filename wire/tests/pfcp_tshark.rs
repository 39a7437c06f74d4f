//! Independent peer check: every PFCP message type we emit goes into a pcap on
//! UDP 8805 and tshark (the Wireshark PFCP dissector) must decode each field as
//! intended and report no malformed packet or warning.
mod common;
#[path = "pfcp_samples.rs"]
mod samples;

use samples::*;
use wire::pfcp::Message;

fn pcap_of(tag: &str, msgs: &[(&str, Message)]) -> std::path::PathBuf {
    let frames: Vec<Vec<u8>> = msgs
        .iter()
        .map(|(_, m)| {
            let bytes = m.to_vec().expect("emit");
            common::udp_frame([10, 100, 0, 1], [10, 100, 0, 2], 8805, 8805, &bytes)
        })
        .collect();
    let pcap = common::temp_pcap(tag);
    common::write_pcap(&pcap, &frames);
    pcap
}

struct Cleanup(std::path::PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::env::var_os("PFCP_KEEP_PCAP").is_none() {
            std::fs::remove_file(&self.0).ok();
        } else {
            eprintln!("pcap kept at {}", self.0.display());
        }
    }
}

#[test]
fn tshark_decodes_every_message_type_cleanly() {
    let msgs = all_messages();
    let pcap = pcap_of("pfcp-all", &msgs);
    let _c = Cleanup(pcap.clone());
    let problems = common::tshark_problems(&pcap, &[]);
    assert!(
        problems.is_empty(),
        "tshark problems: {problems:?}\n{}",
        common::tshark_verbose(&pcap, &[])
    );
}

const FIELDS: &[&str] = &[
    "pfcp.msg_type",
    "pfcp.seid",
    "pfcp.seqno",
    "pfcp.cause",
    "pfcp.f_teid.teid",
    "pfcp.f_teid_flags.ch",
    "pfcp.f_teid.choose_id",
    "pfcp.pdr_id",
    "pfcp.far_id",
    "pfcp.apply_action.forw",
    "pfcp.apply_action.buff",
    "pfcp.apply_action.nocp",
    "pfcp.qer_id",
    "pfcp.urr_id",
    "pfcp.outer_hdr_creation.teid",
    "pfcp.outer_hdr_creation.ipv4",
    "pfcp.ue_ip_addr_ipv4",
    "pfcp.node_id_ipv4",
    "pfcp.node_id_fqdn",
    "pfcp.node_id_ipv6",
    "pfcp.ul_mbr",
    "pfcp.dl_mbr",
    "pfcp.volume_measurement.ulvol",
    "pfcp.volume_measurement.dlvol",
    "pfcp.volume_measurement.tonop",
    "pfcp.ur_seqn",
    "pfcp.report_type.usar",
    "pfcp.flow_desc",
    "pfcp.network_instance",
    "pfcp.tgpp_interface_type",
    "pfcp.qfi_value",
    "pfcp.source_interface",
    "pfcp.dst_interface",
    "pfcp.measurement_period",
    "pfcp.volume_threshold.tovol",
    "pfcp.up_function_features.ftup",
    "pfcp.bar_id",
    "pfcp.ue_ip_address_flag.sd",
    "pfcp.f_seid.ipv4",
    "pfcp.ie_type",
];

#[test]
fn tshark_fields_match_what_we_meant() {
    let msgs = all_messages();
    let pcap = pcap_of("pfcp-fields", &msgs);
    let _c = Cleanup(pcap.clone());
    let rows = common::tshark_fields(&pcap, &[], FIELDS);
    assert_eq!(rows.len(), msgs.len());
    let get = |i: usize, name: &str| -> String {
        let col = FIELDS
            .iter()
            .position(|f| *f == name)
            .expect("field listed");
        rows[i].get(col).cloned().unwrap_or_default()
    };
    let idx = |name: &str| msgs.iter().position(|(n, _)| *n == name).expect("sample");

    // Header: message type, sequence number, SEID presence, for every message.
    for (i, (name, m)) in msgs.iter().enumerate() {
        assert_eq!(get(i, "pfcp.msg_type"), m.msg_type().to_string(), "{name}");
        assert_eq!(get(i, "pfcp.seqno"), m.header.seq.to_string(), "{name}");
        let seid = get(i, "pfcp.seid");
        match m.header.seid {
            Some(s) => assert!(seid.starts_with(&format!("0x{s:016x}")), "{name}: {seid}"),
            None => assert_eq!(seid, "", "{name}"),
        }
    }

    // Per message: (field, what tshark shows).
    let expected: &[(&str, &[(&str, &str)])] = &[
        ("heartbeat_request", &[("pfcp.ie_type", "96")]),
        (
            "association_setup_request",
            &[("pfcp.node_id_fqdn", "smf.edge.example")],
        ),
        (
            "association_setup_response",
            &[
                ("pfcp.cause", "1"),
                ("pfcp.node_id_ipv4", "10.100.0.2"),
                ("pfcp.up_function_features.ftup", "1"),
            ],
        ),
        (
            "association_update_request",
            &[("pfcp.node_id_ipv6", "fd00::2")],
        ),
        // Session Establishment Request: the full uplink/downlink rule set.
        (
            "session_establishment_request",
            &[
                ("pfcp.seid", "0x0000000000000000,0x0000000000001001"),
                ("pfcp.f_seid.ipv4", "10.100.0.1"),
                ("pfcp.pdr_id", "1,2"),
                // FAR IDs: in the two PDRs, then in the two Create FARs.
                ("pfcp.far_id", "1,2,1,2"),
                ("pfcp.f_teid_flags.ch", "1"),
                ("pfcp.f_teid.choose_id", "01"),
                ("pfcp.apply_action.forw", "1,0"),
                ("pfcp.apply_action.buff", "0,1"),
                ("pfcp.apply_action.nocp", "0,1"),
                ("pfcp.ue_ip_addr_ipv4", "10.45.0.2,10.45.0.2"),
                ("pfcp.ue_ip_address_flag.sd", "0,1"),
                ("pfcp.flow_desc", "permit out ip from any to assigned"),
                ("pfcp.network_instance", "internet,internet,internet"),
                ("pfcp.tgpp_interface_type", "11,17"),
                ("pfcp.source_interface", "0,1"),
                ("pfcp.dst_interface", "1"),
                ("pfcp.qer_id", "1,1,1"),
                ("pfcp.urr_id", "1,1,1"),
                ("pfcp.qfi_value", "0x09,0x09"),
                ("pfcp.ul_mbr", "100000"),
                ("pfcp.dl_mbr", "200000"),
                ("pfcp.measurement_period", "60"),
                ("pfcp.volume_threshold.tovol", "1000000000"),
                ("pfcp.bar_id", "1,1"),
            ],
        ),
        (
            "session_establishment_response",
            &[
                ("pfcp.cause", "1"),
                ("pfcp.seid", "0x0000000000001001,0x0000000000002002"),
                ("pfcp.pdr_id", "1"),
                ("pfcp.f_teid.teid", "0x00000101"),
                ("pfcp.f_teid_flags.ch", "0"),
            ],
        ),
        // Modification: Update FAR with Outer Header Creation towards the gNB.
        (
            "session_modification_request",
            &[
                ("pfcp.far_id", "2"),
                ("pfcp.pdr_id", "3"),
                ("pfcp.apply_action.forw", "1"),
                ("pfcp.outer_hdr_creation.teid", "0x00000b0b"),
                ("pfcp.outer_hdr_creation.ipv4", "10.3.0.1"),
                ("pfcp.dst_interface", "0"),
            ],
        ),
    ];
    for (name, fields) in expected {
        let i = idx(name);
        for (field, want) in *fields {
            assert_eq!(get(i, field), *want, "{name}: {field}");
        }
    }

    // Usage reports in all three places.
    for name in [
        "session_modification_response",
        "session_deletion_response",
        "session_report_request",
    ] {
        let i = idx(name);
        assert_eq!(get(i, "pfcp.urr_id"), "1", "{name}");
        assert_eq!(get(i, "pfcp.ur_seqn"), "3", "{name}");
        assert_eq!(get(i, "pfcp.volume_measurement.ulvol"), "500000", "{name}");
        assert_eq!(get(i, "pfcp.volume_measurement.dlvol"), "1000000", "{name}");
        assert_eq!(get(i, "pfcp.volume_measurement.tonop"), "1500", "{name}");
    }
    assert_eq!(
        get(idx("session_modification_response"), "pfcp.ie_type")
            .split(',')
            .nth(1),
        Some("78")
    );
    assert_eq!(
        get(idx("session_deletion_response"), "pfcp.ie_type")
            .split(',')
            .nth(1),
        Some("79")
    );
    let i = idx("session_report_request");
    assert_eq!(get(i, "pfcp.report_type.usar"), "1");
    assert_eq!(get(i, "pfcp.ie_type").split(',').nth(1), Some("80"));
    assert_eq!(get(idx("session_report_response"), "pfcp.cause"), "1");
}

/// Every Outer Header Removal description (with and without the extension
/// header deletion octet), every Outer Header Creation shape, IPv6 F-TEIDs
/// and UE addresses, a Created PDR with CHOOSE result and a rejection with
/// Offending IE: all decoded cleanly and as meant.
#[test]
fn tshark_accepts_every_outer_header_variant() {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use wire::pfcp::*;
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x22);
    let mut msgs: Vec<(&str, Message)> = Vec::new();
    for code in 0u8..=8 {
        for ext in [None, Some(1u8)] {
            let mut req = establishment_request();
            req.create_pdrs[0].outer_header_removal = Some(OuterHeaderRemoval {
                description: code.into(),
                gtpu_extension_header_deletion: ext,
            });
            req.create_pdrs[0].pdi.local_f_teid = Some(FTeid::Assigned {
                teid: 0x1234,
                ipv4: Some(UPF_N3),
                ipv6: Some(v6),
            });
            req.create_pdrs[1].pdi.ue_ip_addresses = vec![UeIpAddress {
                is_destination: true,
                ipv6: Some(v6),
                ipv6_prefix_length: Some(64),
                ..Default::default()
            }];
            msgs.push(("ohr", Message::session(0, u32::from(code), req)));
        }
    }
    type O = OuterHeaderCreation;
    let ohcs = [
        O::gtpu_ipv4(0xb0b, GNB_N3),
        O::gtpu_ipv6(0xb0c, v6),
        O {
            description: O::UDP_IPV4,
            ipv4: Some(GNB_N3),
            port: Some(5000),
            ..Default::default()
        },
        O {
            description: O::UDP_IPV6,
            ipv6: Some(v6),
            port: Some(5001),
            ..Default::default()
        },
        O {
            description: O::IPV4,
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..Default::default()
        },
        O {
            description: O::IPV6,
            ipv6: Some(v6),
            ..Default::default()
        },
        O {
            description: O::GTPU_UDP_IPV4 | O::GTPU_UDP_IPV6,
            teid: Some(9),
            ipv4: Some(GNB_N3),
            ipv6: Some(v6),
            ..Default::default()
        },
    ];
    for (i, ohc) in ohcs.iter().enumerate() {
        msgs.push((
            "ohc",
            Message::session(
                UP_SEID,
                100 + i as u32,
                SessionModificationRequest {
                    update_fars: vec![UpdateFar {
                        far_id: 2,
                        apply_action: Some(ApplyAction::FORW),
                        update_forwarding_parameters: Some(UpdateForwardingParameters {
                            outer_header_creation: Some(*ohc),
                            pfcpsmreq_flags: Some(0x02),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
        ));
    }
    msgs.push((
        "reject",
        Message::session(
            CP_SEID,
            200,
            SessionEstablishmentResponse {
                node_id: NodeId::Ipv4(UPF),
                cause: Cause::MandatoryIeMissing,
                offending_ie: Some(57),
                ..Default::default()
            },
        ),
    ));
    let pcap = pcap_of("pfcp-variants", &msgs);
    let _c = Cleanup(pcap.clone());
    let problems = common::tshark_problems(&pcap, &[]);
    assert!(problems.is_empty(), "tshark problems: {problems:?}");
    let rows = common::tshark_fields(
        &pcap,
        &[],
        &[
            "pfcp.seqno",
            "pfcp.outer_hdr_desc",
            "pfcp.outer_hdr_creation.teid",
            "pfcp.outer_hdr_creation.port",
            "pfcp.f_teid.ipv6_addr",
            "pfcp.ue_ip_addr_ipv6",
            "pfcp.cause",
            "pfcp.offending_ie",
        ],
    );
    assert_eq!(rows.len(), msgs.len());
    // Removal: tshark's outer_hdr_desc (a creation field) is absent; the
    // description code is checked via the verbose text below.
    let verbose = common::tshark_verbose(&pcap, &[]);
    // tshark names some descriptions its own way ("VLAN TAG POP"); compare codes.
    let codes: std::collections::BTreeSet<String> = verbose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Outer Header Removal Description: "))
        .filter_map(|l| l.rsplit('(').next())
        .map(|c| c.trim_end_matches(')').to_string())
        .collect();
    let want: std::collections::BTreeSet<String> = (0..=8).map(|c: u8| c.to_string()).collect();
    assert_eq!(codes, want);
    assert_eq!(
        verbose
            .matches("PDU Session Container to be deleted: True")
            .count(),
        9
    );
    assert_eq!(rows[0][4], "2001:db8::22");
    assert_eq!(rows[0][5], "2001:db8::22");
    assert_eq!(rows[18][2], "0x00000b0b");
    assert_eq!(rows[19][2], "0x00000b0c");
    assert_eq!(rows[20][3], "5000");
    assert_eq!(rows[21][3], "5001");
    let last = rows.last().expect("rows");
    assert_eq!((last[6].as_str(), last[7].as_str()), ("66", "57"));
}
