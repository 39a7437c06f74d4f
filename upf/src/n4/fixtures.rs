//! PFCP requests shared by the N4 tests and the benchmarks (not part of
//! the UPF's API).

use std::net::Ipv4Addr;

use wire::pfcp;

/// The paging-case session the tests and benches use: UL PDR 1 (CHOOSE,
/// outer header removal) -> FAR 1 (to N6) with URR 1 (volume threshold
/// 1 TB, and a measurement period of `period` seconds if given); DL PDR 2
/// on `ue` -> FAR 2 (BUFF|NOCP: buffer and report downlink data).
pub fn paging_session(
    node_id: pfcp::NodeId,
    cp_f_seid: pfcp::FSeid,
    ue: Ipv4Addr,
    period: Option<u32>,
) -> pfcp::SessionEstablishmentRequest {
    pfcp::SessionEstablishmentRequest {
        node_id,
        cp_f_seid,
        create_pdrs: vec![
            pfcp::CreatePdr {
                pdr_id: 1,
                precedence: 255,
                pdi: pfcp::Pdi {
                    source_interface: pfcp::SourceInterface::Access,
                    local_f_teid: Some(pfcp::FTeid::choose_v4(None)),
                    ue_ip_addresses: vec![pfcp::UeIpAddress::source_v4(ue)],
                    ..Default::default()
                },
                outer_header_removal: Some(pfcp::OuterHeaderRemoval::of(
                    pfcp::OuterHeaderRemovalDescription::GtpuUdpIpv4,
                )),
                far_id: Some(1),
                urr_ids: vec![1],
                ..Default::default()
            },
            pfcp::CreatePdr {
                pdr_id: 2,
                precedence: 255,
                pdi: pfcp::Pdi {
                    source_interface: pfcp::SourceInterface::Core,
                    ue_ip_addresses: vec![pfcp::UeIpAddress::destination_v4(ue)],
                    ..Default::default()
                },
                far_id: Some(2),
                ..Default::default()
            },
        ],
        create_fars: vec![
            pfcp::CreateFar {
                far_id: 1,
                apply_action: pfcp::ApplyAction::FORW,
                forwarding_parameters: Some(pfcp::ForwardingParameters::to(
                    pfcp::DestinationInterface::Core,
                )),
                ..Default::default()
            },
            pfcp::CreateFar {
                far_id: 2,
                apply_action: pfcp::ApplyAction::BUFF | pfcp::ApplyAction::NOCP,
                ..Default::default()
            },
        ],
        create_urrs: vec![pfcp::CreateUrr {
            urr_id: 1,
            measurement_method: pfcp::MeasurementMethod::VOLUM,
            reporting_triggers: if period.is_some() {
                pfcp::ReportingTriggers(
                    pfcp::ReportingTriggers::VOLTH.0 | pfcp::ReportingTriggers::PERIO.0,
                )
            } else {
                pfcp::ReportingTriggers::VOLTH
            },
            volume_threshold: Some(pfcp::Volume {
                total: Some(1 << 40),
                ..Default::default()
            }),
            measurement_period: period,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The gNB the tests point downlink FARs at (and send uplink from).
pub const GNB: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);

/// Update FAR 2 of [`paging_session`] to forward to [`GNB`] with `teid`:
/// the modification that tells the UPF the session's gNB (whose uplink
/// it then accepts).
pub fn dl_far_to_gnb(teid: u32) -> Vec<pfcp::UpdateFar> {
    vec![pfcp::UpdateFar {
        far_id: 2,
        apply_action: Some(pfcp::ApplyAction::FORW),
        update_forwarding_parameters: Some(pfcp::UpdateForwardingParameters {
            destination_interface: Some(pfcp::DestinationInterface::Access),
            outer_header_creation: Some(pfcp::OuterHeaderCreation::gtpu_ipv4(teid, GNB)),
            ..Default::default()
        }),
        ..Default::default()
    }]
}
