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
            dl_pdr(2, 2, ue),
        ],
        create_fars: vec![core_far(1), buffering_far(2)],
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

/// Downlink PDR `pdr_id` (precedence 255): from the core to `ue`, then FAR
/// `far_id`.
pub fn dl_pdr(pdr_id: u16, far_id: u32, ue: Ipv4Addr) -> pfcp::CreatePdr {
    pfcp::CreatePdr {
        pdr_id,
        precedence: 255,
        pdi: pfcp::Pdi {
            source_interface: pfcp::SourceInterface::Core,
            ue_ip_addresses: vec![pfcp::UeIpAddress::destination_v4(ue)],
            ..Default::default()
        },
        far_id: Some(far_id),
        ..Default::default()
    }
}

/// FAR `far_id`: forward to the core (N6).
pub fn core_far(far_id: u32) -> pfcp::CreateFar {
    pfcp::CreateFar {
        far_id,
        apply_action: pfcp::ApplyAction::FORW,
        forwarding_parameters: Some(pfcp::ForwardingParameters::to(
            pfcp::DestinationInterface::Core,
        )),
        ..Default::default()
    }
}

/// FAR `far_id`: buffer and notify the CP (BUFF|NOCP).
pub fn buffering_far(far_id: u32) -> pfcp::CreateFar {
    pfcp::CreateFar {
        far_id,
        apply_action: pfcp::ApplyAction::BUFF | pfcp::ApplyAction::NOCP,
        ..Default::default()
    }
}

/// The gNB the tests point downlink FARs at (and send uplink from).
pub const GNB: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);

/// Update FAR 2 of [`paging_session`] to forward to [`GNB`] with `teid`:
/// the modification that tells the UPF the session's gNB (whose uplink
/// it then accepts).
pub fn dl_far_to_gnb(teid: u32) -> Vec<pfcp::UpdateFar> {
    dl_far_to(teid, GNB)
}

/// Update FAR 2 to forward to the gNB at `gnb` with `teid`.
pub fn dl_far_to(teid: u32, gnb: Ipv4Addr) -> Vec<pfcp::UpdateFar> {
    vec![pfcp::UpdateFar {
        far_id: 2,
        apply_action: Some(pfcp::ApplyAction::FORW),
        update_forwarding_parameters: Some(pfcp::UpdateForwardingParameters {
            destination_interface: Some(pfcp::DestinationInterface::Access),
            outer_header_creation: Some(pfcp::OuterHeaderCreation::gtpu_ipv4(teid, gnb)),
            ..Default::default()
        }),
        ..Default::default()
    }]
}
