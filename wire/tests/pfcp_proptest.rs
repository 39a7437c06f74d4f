//! Property tests: for every message type, messages with arbitrary IEs emit
//! and parse back to themselves (emitted into buffers pre-filled with 0xa5);
//! arbitrary bytes, and mutated valid messages, never make the parser panic.
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use wire::pfcp::*;

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}
fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9-]{1,12}"
}

fn node_id() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        ipv4().prop_map(NodeId::Ipv4),
        ipv6().prop_map(NodeId::Ipv6),
        vec(label(), 1..4).prop_map(|l| NodeId::fqdn(&l.join("."))),
    ]
}

fn cause() -> impl Strategy<Value = Cause> {
    any::<u8>().prop_map(Cause::from)
}

fn f_seid() -> impl Strategy<Value = FSeid> {
    (any::<u64>(), of(ipv4()), of(ipv6())).prop_map(|(seid, ipv4, ipv6)| FSeid { seid, ipv4, ipv6 })
}

fn features() -> impl Strategy<Value = FunctionFeatures> {
    vec(any::<u8>(), 0..8).prop_map(FunctionFeatures)
}

fn f_teid() -> impl Strategy<Value = FTeid> {
    prop_oneof![
        (any::<u32>(), of(ipv4()), of(ipv6())).prop_map(|(teid, ipv4, ipv6)| FTeid::Assigned {
            teid,
            ipv4,
            ipv6
        }),
        (any::<bool>(), any::<bool>(), of(any::<u8>()))
            .prop_map(|(v4, v6, choose_id)| FTeid::Choose { v4, v6, choose_id }),
    ]
}

fn network_instance() -> impl Strategy<Value = NetworkInstance> {
    vec(any::<u8>(), 0..20).prop_map(NetworkInstance)
}

prop_compose! {
    fn ue_ip()(is_destination in any::<bool>(), ipv4 in of(ipv4()), ipv6 in of(ipv6()),
               ipv6_prefix_delegation_bits in of(any::<u8>()), ipv6_prefix_length in of(any::<u8>()),
               choose_v4 in any::<bool>(), choose_v6 in any::<bool>()) -> UeIpAddress {
        UeIpAddress { is_destination, ipv4, ipv6, ipv6_prefix_delegation_bits, ipv6_prefix_length, choose_v4, choose_v6 }
    }
}

prop_compose! {
    fn sdf()(flow_description in of("[ -~]{0,60}"), tos_traffic_class in of(any::<u16>()),
             security_parameter_index in of(any::<u32>()), flow_label in of(0u32..0x0100_0000),
             sdf_filter_id in of(any::<u32>())) -> SdfFilter {
        SdfFilter { flow_description, tos_traffic_class, security_parameter_index, flow_label, sdf_filter_id }
    }
}

fn qfi() -> impl Strategy<Value = Qfi> {
    (0u8..64).prop_map(Qfi)
}
fn iface_type() -> impl Strategy<Value = InterfaceType> {
    (0u8..64).prop_map(InterfaceType::from)
}

fn raw_ie() -> impl Strategy<Value = RawIe> {
    // Types not modelled anywhere, plain and enterprise-specific.
    prop_oneof![
        (1000u16..2000, vec(any::<u8>(), 0..12)).prop_map(|(t, d)| RawIe::new(t, d)),
        (0x8000u16..=0xffff, any::<u16>(), vec(any::<u8>(), 0..12)).prop_map(|(t, e, d)| RawIe {
            ie_type: t,
            enterprise_id: Some(e),
            data: d
        }),
    ]
}
fn unknown() -> impl Strategy<Value = Vec<RawIe>> {
    vec(raw_ie(), 0..2)
}

prop_compose! {
    fn pdi()(source_interface in (0u8..16).prop_map(SourceInterface::from), local_f_teid in of(f_teid()),
             network_instance in of(network_instance()), ue_ip_addresses in vec(ue_ip(), 0..3),
             sdf_filters in vec(sdf(), 0..3), qfis in vec(qfi(), 0..3),
             source_interface_type in of(iface_type()), unknown in unknown()) -> Pdi {
        Pdi { source_interface, local_f_teid, network_instance, ue_ip_addresses, sdf_filters, qfis, source_interface_type, unknown }
    }
}

fn ohr() -> impl Strategy<Value = OuterHeaderRemoval> {
    (any::<u8>(), of(any::<u8>())).prop_map(|(d, e)| OuterHeaderRemoval {
        description: d.into(),
        gtpu_extension_header_deletion: e,
    })
}

/// Consistent with its description bits: exactly the fields they ask for.
fn ohc() -> impl Strategy<Value = OuterHeaderCreation> {
    (
        any::<u16>(),
        any::<u32>(),
        ipv4(),
        ipv6(),
        any::<u16>(),
        0u32..0x0100_0000,
        0u32..0x0100_0000,
    )
        .prop_map(|(d, teid, a4, a6, port, c, s)| {
            let has = |b: u16| d & b != 0;
            type O = OuterHeaderCreation;
            OuterHeaderCreation {
                description: d,
                teid: has(O::GTPU_UDP_IPV4 | O::GTPU_UDP_IPV6).then_some(teid),
                ipv4: has(O::GTPU_UDP_IPV4 | O::UDP_IPV4 | O::IPV4).then_some(a4),
                ipv6: has(O::GTPU_UDP_IPV6 | O::UDP_IPV6 | O::IPV6).then_some(a6),
                port: has(O::UDP_IPV4 | O::UDP_IPV6).then_some(port),
                c_tag: has(O::C_TAG).then_some(c),
                s_tag: has(O::S_TAG).then_some(s),
            }
        })
}

prop_compose! {
    fn create_pdr()(pdr_id in any::<u16>(), precedence in any::<u32>(), pdi in pdi(),
                    outer_header_removal in of(ohr()), far_id in of(any::<u32>()),
                    urr_ids in vec(any::<u32>(), 0..3), qer_ids in vec(any::<u32>(), 0..3),
                    unknown in unknown()) -> CreatePdr {
        CreatePdr { pdr_id, precedence, pdi, outer_header_removal, far_id, urr_ids, qer_ids, unknown }
    }
}

prop_compose! {
    fn fwd()(destination_interface in (0u8..16).prop_map(DestinationInterface::from),
             network_instance in of(network_instance()), outer_header_creation in of(ohc()),
             transport_level_marking in of(any::<u16>()), destination_interface_type in of(iface_type()),
             unknown in unknown()) -> ForwardingParameters {
        ForwardingParameters { destination_interface, network_instance, outer_header_creation, transport_level_marking, destination_interface_type, unknown }
    }
}

prop_compose! {
    fn create_far()(far_id in any::<u32>(), apply_action in any::<u16>().prop_map(ApplyAction),
                    forwarding_parameters in of(fwd()), bar_id in of(any::<u8>()), unknown in unknown()) -> CreateFar {
        CreateFar { far_id, apply_action, forwarding_parameters, bar_id, unknown }
    }
}

fn volume() -> impl Strategy<Value = Volume> {
    (of(any::<u64>()), of(any::<u64>()), of(any::<u64>())).prop_map(|(total, uplink, downlink)| {
        Volume {
            total,
            uplink,
            downlink,
        }
    })
}

prop_compose! {
    fn create_urr()(urr_id in any::<u32>(), mm in any::<u8>(), rt in 0u32..0x0100_0000,
                    measurement_period in of(any::<u32>()), volume_threshold in of(volume()),
                    volume_quota in of(volume()), time_threshold in of(any::<u32>()), time_quota in of(any::<u32>()),
                    quota_holding_time in of(any::<u32>()), measurement_information in of(any::<u8>()),
                    linked_urr_ids in vec(any::<u32>(), 0..2), unknown in unknown()) -> CreateUrr {
        CreateUrr { urr_id, measurement_method: MeasurementMethod(mm), reporting_triggers: ReportingTriggers(rt),
            measurement_period, volume_threshold, volume_quota, time_threshold, time_quota, quota_holding_time,
            measurement_information, linked_urr_ids, unknown }
    }
}

fn gate() -> impl Strategy<Value = GateStatus> {
    (0u8..4, 0u8..4).prop_map(|(u, d)| GateStatus {
        ul: u.into(),
        dl: d.into(),
    })
}
fn bitrate() -> impl Strategy<Value = BitRate> {
    (0u64..1 << 40, 0u64..1 << 40).prop_map(|(ul_kbps, dl_kbps)| BitRate { ul_kbps, dl_kbps })
}

prop_compose! {
    fn create_qer()(qer_id in any::<u32>(), qer_correlation_id in of(any::<u32>()), gate_status in gate(),
                    mbr in of(bitrate()), gbr in of(bitrate()), qfi in of(qfi()), rqi in of(any::<u8>()),
                    unknown in unknown()) -> CreateQer {
        CreateQer { qer_id, qer_correlation_id, gate_status, mbr, gbr, qfi, rqi, unknown }
    }
}

fn create_bar() -> impl Strategy<Value = CreateBar> {
    (any::<u8>(), of(any::<u8>()), of(any::<u8>()), unknown()).prop_map(
        |(bar_id, d, s, unknown)| CreateBar {
            bar_id,
            downlink_data_notification_delay: d,
            suggested_buffering_packets_count: s,
            unknown,
        },
    )
}
fn update_bar() -> impl Strategy<Value = UpdateBar> {
    create_bar().prop_map(|b| UpdateBar {
        bar_id: b.bar_id,
        downlink_data_notification_delay: b.downlink_data_notification_delay,
        suggested_buffering_packets_count: b.suggested_buffering_packets_count,
        unknown: b.unknown,
    })
}

prop_compose! {
    fn created_pdr()(pdr_id in any::<u16>(), local_f_teid in of(f_teid()), ue_ip_addresses in vec(ue_ip(), 0..2),
                     unknown in unknown()) -> CreatedPdr {
        CreatedPdr { pdr_id, local_f_teid, ue_ip_addresses, unknown }
    }
}

prop_compose! {
    fn update_pdr()(pdr_id in any::<u16>(), outer_header_removal in of(ohr()), precedence in of(any::<u32>()),
                    pdi in of(pdi()), far_id in of(any::<u32>()), urr_ids in vec(any::<u32>(), 0..2),
                    qer_ids in vec(any::<u32>(), 0..2), unknown in unknown()) -> UpdatePdr {
        UpdatePdr { pdr_id, outer_header_removal, precedence, pdi, far_id, urr_ids, qer_ids, unknown }
    }
}

prop_compose! {
    fn update_far()(far_id in any::<u32>(), apply_action in of(any::<u16>().prop_map(ApplyAction)),
                    di in of((0u8..16).prop_map(DestinationInterface::from)), ni in of(network_instance()),
                    ohc in of(ohc()), tlm in of(any::<u16>()), flags in of(any::<u8>()), dit in of(iface_type()),
                    has_ufp in any::<bool>(), bar_id in of(any::<u8>()), unknown in unknown()) -> UpdateFar {
        let ufp = UpdateForwardingParameters {
            destination_interface: di, network_instance: ni, outer_header_creation: ohc,
            transport_level_marking: tlm, pfcpsmreq_flags: flags, destination_interface_type: dit,
            unknown: Vec::new(),
        };
        UpdateFar { far_id, apply_action, update_forwarding_parameters: has_ufp.then_some(ufp), bar_id, unknown }
    }
}

prop_compose! {
    fn update_urr()(c in create_urr(), mm in any::<bool>(), rt in any::<bool>()) -> UpdateUrr {
        UpdateUrr {
            urr_id: c.urr_id,
            measurement_method: mm.then_some(c.measurement_method),
            reporting_triggers: rt.then_some(c.reporting_triggers),
            measurement_period: c.measurement_period, volume_threshold: c.volume_threshold,
            volume_quota: c.volume_quota, time_threshold: c.time_threshold, time_quota: c.time_quota,
            quota_holding_time: c.quota_holding_time, measurement_information: c.measurement_information,
            linked_urr_ids: c.linked_urr_ids, unknown: c.unknown,
        }
    }
}

prop_compose! {
    fn update_qer()(c in create_qer(), g in any::<bool>()) -> UpdateQer {
        UpdateQer {
            qer_id: c.qer_id, qer_correlation_id: c.qer_correlation_id,
            gate_status: g.then_some(c.gate_status), mbr: c.mbr, gbr: c.gbr, qfi: c.qfi, rqi: c.rqi,
            unknown: c.unknown,
        }
    }
}

prop_compose! {
    fn vol_meas()(v in vec(of(any::<u64>()), 6)) -> VolumeMeasurement {
        VolumeMeasurement { total_volume: v[0], uplink_volume: v[1], downlink_volume: v[2],
            total_packets: v[3], uplink_packets: v[4], downlink_packets: v[5] }
    }
}

prop_compose! {
    fn usage_report()(urr_id in any::<u32>(), ur_seqn in any::<u32>(), trig in 0u32..0x0100_0000,
                      times in vec(of(any::<u32>()), 6), volume_measurement in of(vol_meas()),
                      usage_information in of(any::<u8>()), unknown in unknown()) -> UsageReport {
        UsageReport { urr_id, ur_seqn, usage_report_trigger: UsageReportTrigger(trig),
            start_time: times[0], end_time: times[1], volume_measurement, duration_measurement: times[2],
            time_of_first_packet: times[3], time_of_last_packet: times[4], usage_information,
            query_urr_reference: times[5], unknown }
    }
}

fn failed_rule() -> impl Strategy<Value = FailedRuleId> {
    prop_oneof![
        any::<u16>().prop_map(FailedRuleId::Pdr),
        any::<u32>().prop_map(FailedRuleId::Far),
        any::<u32>().prop_map(FailedRuleId::Qer),
        any::<u32>().prop_map(FailedRuleId::Urr),
        any::<u8>().prop_map(FailedRuleId::Bar),
    ]
}

fn body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (any::<u32>(), unknown()).prop_map(|(r, unknown)| HeartbeatRequest {
            recovery_time_stamp: r,
            unknown
        }
        .into()),
        (any::<u32>(), unknown()).prop_map(|(r, unknown)| HeartbeatResponse {
            recovery_time_stamp: r,
            unknown
        }
        .into()),
        (
            node_id(),
            any::<u32>(),
            of(features()),
            of(features()),
            unknown()
        )
            .prop_map(|(n, r, u, c, unknown)| {
                AssociationSetupRequest {
                    node_id: n,
                    recovery_time_stamp: r,
                    up_function_features: u,
                    cp_function_features: c,
                    unknown,
                }
                .into()
            }),
        (
            node_id(),
            cause(),
            any::<u32>(),
            of(features()),
            of(features()),
            unknown()
        )
            .prop_map(|(n, ca, r, u, c, unknown)| {
                AssociationSetupResponse {
                    node_id: n,
                    cause: ca,
                    recovery_time_stamp: r,
                    up_function_features: u,
                    cp_function_features: c,
                    unknown,
                }
                .into()
            }),
        (
            node_id(),
            of(features()),
            of(features()),
            of(any::<u8>()),
            of(any::<u8>()),
            unknown()
        )
            .prop_map(|(n, u, c, a, g, unknown)| {
                AssociationUpdateRequest {
                    node_id: n,
                    up_function_features: u,
                    cp_function_features: c,
                    association_release_request: a,
                    graceful_release_period: g,
                    unknown,
                }
                .into()
            }),
        (
            node_id(),
            cause(),
            of(features()),
            of(features()),
            unknown()
        )
            .prop_map(|(n, ca, u, c, unknown)| {
                AssociationUpdateResponse {
                    node_id: n,
                    cause: ca,
                    up_function_features: u,
                    cp_function_features: c,
                    unknown,
                }
                .into()
            }),
        (node_id(), unknown()).prop_map(|(n, unknown)| AssociationReleaseRequest {
            node_id: n,
            unknown
        }
        .into()),
        (node_id(), cause(), unknown()).prop_map(|(n, c, unknown)| AssociationReleaseResponse {
            node_id: n,
            cause: c,
            unknown
        }
        .into()),
        unknown().prop_map(|unknown| VersionNotSupportedResponse { unknown }.into()),
        (
            node_id(),
            f_seid(),
            vec(create_pdr(), 1..4),
            vec(create_far(), 1..4),
            vec(create_urr(), 0..3),
            vec(create_qer(), 0..3),
            of(create_bar()),
            of(any::<u8>()),
            of(any::<u32>()),
            unknown()
        )
            .prop_map(
                |(
                    node_id,
                    cp_f_seid,
                    create_pdrs,
                    create_fars,
                    create_urrs,
                    create_qers,
                    create_bar,
                    pdn_type,
                    upit,
                    unknown,
                )| {
                    SessionEstablishmentRequest {
                        node_id,
                        cp_f_seid,
                        create_pdrs,
                        create_fars,
                        create_urrs,
                        create_qers,
                        create_bar,
                        pdn_type,
                        user_plane_inactivity_timer: upit,
                        unknown,
                    }
                    .into()
                }
            ),
        (
            node_id(),
            cause(),
            of(any::<u16>()),
            of(f_seid()),
            vec(created_pdr(), 0..3),
            of(failed_rule()),
            unknown()
        )
            .prop_map(
                |(
                    node_id,
                    cause,
                    offending_ie,
                    up_f_seid,
                    created_pdrs,
                    failed_rule_id,
                    unknown,
                )| {
                    SessionEstablishmentResponse {
                        node_id,
                        cause,
                        offending_ie,
                        up_f_seid,
                        created_pdrs,
                        failed_rule_id,
                        unknown,
                    }
                    .into()
                }
            ),
        session_modification_request(),
        (
            cause(),
            of(any::<u16>()),
            vec(created_pdr(), 0..2),
            vec(usage_report(), 0..3),
            of(failed_rule()),
            unknown()
        )
            .prop_map(
                |(cause, offending_ie, created_pdrs, usage_reports, failed_rule_id, unknown)| {
                    SessionModificationResponse {
                        cause,
                        offending_ie,
                        created_pdrs,
                        usage_reports,
                        failed_rule_id,
                        unknown,
                    }
                    .into()
                }
            ),
        unknown().prop_map(|unknown| SessionDeletionRequest { unknown }.into()),
        (
            cause(),
            of(any::<u16>()),
            vec(usage_report(), 0..3),
            unknown()
        )
            .prop_map(|(cause, offending_ie, usage_reports, unknown)| {
                SessionDeletionResponse {
                    cause,
                    offending_ie,
                    usage_reports,
                    unknown,
                }
                .into()
            }),
        (
            any::<u8>(),
            of(vec(any::<u16>(), 1..3)),
            vec(usage_report(), 0..3),
            unknown()
        )
            .prop_map(|(rt, dldr, usage_reports, unknown)| SessionReportRequest {
                report_type: ReportType(rt),
                downlink_data_report: dldr.map(|pdr_ids| DownlinkDataReport {
                    pdr_ids,
                    unknown: Vec::new()
                }),
                usage_reports,
                unknown,
            }
            .into()),
        (
            cause(),
            of(any::<u16>()),
            of(update_bar()),
            of(any::<u8>()),
            of(f_seid()),
            unknown()
        )
            .prop_map(
                |(cause, offending_ie, update_bar, pfcpsrrsp_flags, cp_f_seid, unknown)| {
                    SessionReportResponse {
                        cause,
                        offending_ie,
                        update_bar,
                        pfcpsrrsp_flags,
                        cp_f_seid,
                        unknown,
                    }
                    .into()
                }
            ),
        (
            prop_oneof![3u8..5, 12u8..50, 58u8..=255],
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(msg_type, body)| MessageBody::Unknown { msg_type, body }),
    ]
}

fn session_modification_request() -> impl Strategy<Value = MessageBody> {
    (
        (
            of(f_seid()),
            vec(any::<u16>(), 0..2),
            vec(any::<u32>(), 0..2),
            vec(any::<u32>(), 0..2),
            vec(any::<u32>(), 0..2),
            of(any::<u8>()),
        ),
        (
            vec(create_pdr(), 0..2),
            vec(create_far(), 0..2),
            vec(create_urr(), 0..2),
            vec(create_qer(), 0..2),
            of(create_bar()),
        ),
        (
            vec(update_pdr(), 0..2),
            vec(update_far(), 0..3),
            vec(update_urr(), 0..2),
            vec(update_qer(), 0..2),
            of(update_bar()),
        ),
        (
            of(any::<u8>()),
            vec(any::<u32>(), 0..2),
            of(any::<u32>()),
            unknown(),
        ),
    )
        .prop_map(
            |(
                (cp, rp, rf, ru, rq, rb),
                (cpdr, cfar, curr, cqer, cbar),
                (updr, ufar, uurr, uqer, ubar),
                (flags, q, upit, unknown),
            )| {
                SessionModificationRequest {
                    cp_f_seid: cp,
                    remove_pdrs: rp
                        .into_iter()
                        .map(|pdr_id| RemovePdr {
                            pdr_id,
                            unknown: Vec::new(),
                        })
                        .collect(),
                    remove_fars: rf
                        .into_iter()
                        .map(|far_id| RemoveFar {
                            far_id,
                            unknown: Vec::new(),
                        })
                        .collect(),
                    remove_urrs: ru
                        .into_iter()
                        .map(|urr_id| RemoveUrr {
                            urr_id,
                            unknown: Vec::new(),
                        })
                        .collect(),
                    remove_qers: rq
                        .into_iter()
                        .map(|qer_id| RemoveQer {
                            qer_id,
                            unknown: Vec::new(),
                        })
                        .collect(),
                    remove_bar: rb.map(|bar_id| RemoveBar {
                        bar_id,
                        unknown: Vec::new(),
                    }),
                    create_pdrs: cpdr,
                    create_fars: cfar,
                    create_urrs: curr,
                    create_qers: cqer,
                    create_bar: cbar,
                    update_pdrs: updr,
                    update_fars: ufar,
                    update_urrs: uurr,
                    update_qers: uqer,
                    update_bar: ubar,
                    pfcpsmreq_flags: flags,
                    query_urrs: q
                        .into_iter()
                        .map(|urr_id| QueryUrr {
                            urr_id,
                            unknown: Vec::new(),
                        })
                        .collect(),
                    user_plane_inactivity_timer: upit,
                    unknown,
                }
                .into()
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    (
        body(),
        0u32..1 << 24,
        any::<u64>(),
        of(0u8..16),
        any::<bool>(),
    )
        .prop_map(|(body, seq, seid, priority, follow_on)| {
            let session = body.msg_type() >= 50;
            Message {
                header: Header {
                    seid: session.then_some(seid),
                    seq,
                    priority,
                    follow_on,
                },
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn emit_then_parse_is_identity(m in message()) {
        let mut buf = vec![0xa5u8; m.buffer_len()];
        let n = m.emit(&mut buf).expect("emit");
        prop_assert_eq!(n, buf.len());
        let back = Message::parse(&buf).expect("parse");
        prop_assert_eq!(back, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::parse(&bytes) {
            let again = Message::parse(&m.to_vec().expect("emit")).expect("reparse");
            prop_assert_eq!(again, m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(m in message(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut bytes = m.to_vec().expect("emit");
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        let cut = cut.index(bytes.len() + 1);
        for b in [&bytes[..], &bytes[..cut]] {
            if let Ok(m) = Message::parse(b) {
                let again = Message::parse(&m.to_vec().expect("emit")).expect("reparse");
                prop_assert_eq!(again, m);
            }
        }
    }
}

/// Every modelled message type is covered by the generator above.
#[test]
fn generator_covers_every_message_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3000 {
        let m = message().new_tree(&mut runner).expect("tree").current();
        if MessageBody::is_known(m.msg_type()) {
            seen.insert(m.msg_type());
        }
    }
    let all: std::collections::BTreeSet<u8> =
        [1, 2, 5, 6, 7, 8, 9, 10, 11, 50, 51, 52, 53, 54, 55, 56, 57].into();
    assert_eq!(seen, all);
}
