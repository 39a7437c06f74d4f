//! The packet rules of a session as PFCP puts them: the PDRs, FARs, QER,
//! URR and BAR of a Session Establishment, and the downlink FAR update of
//! the Session Modification that points it at the gNB.

use super::session::Session;
use super::{SessionKey, Smf};
use std::net::IpAddr;
use wire::pfcp;

/// The uplink PDR, whose F-TEID the UPF chooses.
pub(super) const PDR_UL: u16 = 1;
const PDR_DL: u16 = 2;
const FAR_UL: u32 = 1;
const FAR_DL: u32 = 2;
const QER_ID: u32 = 1;
const URR_ID: u32 = 1;

impl Smf {
    /// The Session Establishment of `s`; `dl`: the gNB's F-TEID when it is
    /// known (restoring), else the downlink FAR buffers.
    pub(super) fn establishment(
        &self,
        s: &Session,
        dl: Option<(u32, IpAddr)>,
    ) -> pfcp::SessionEstablishmentRequest {
        use pfcp::*;
        let ni = self.peers[s.upf].dnns[s.dnn].ni.clone();
        let ue = s.info.ue_addr;
        let dl_far = match dl {
            Some((teid, addr)) if teid != 0 => CreateFar {
                far_id: FAR_DL,
                apply_action: ApplyAction::FORW,
                forwarding_parameters: Some(ForwardingParameters {
                    destination_interface: DestinationInterface::Access,
                    network_instance: Some(ni.clone()),
                    outer_header_creation: Some(ohc(teid, addr)),
                    destination_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                    ..Default::default()
                }),
                ..Default::default()
            },
            _ => CreateFar {
                far_id: FAR_DL,
                apply_action: ApplyAction::BUFF,
                bar_id: Some(1),
                ..Default::default()
            },
        };
        SessionEstablishmentRequest {
            node_id: self.node_id.clone(),
            cp_f_seid: FSeid {
                seid: s.info.cp_seid,
                ipv4: Some(self.cp_addr),
                ipv6: None,
            },
            create_pdrs: vec![
                CreatePdr {
                    pdr_id: PDR_UL,
                    precedence: 255,
                    pdi: Pdi {
                        source_interface: SourceInterface::Access,
                        local_f_teid: Some(FTeid::Choose {
                            v4: true,
                            v6: false,
                            choose_id: None,
                        }),
                        network_instance: Some(ni.clone()),
                        ue_ip_addresses: vec![UeIpAddress {
                            ipv4: Some(ue),
                            ..Default::default()
                        }],
                        qfis: vec![Qfi(s.info.qfi)],
                        source_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                        ..Default::default()
                    },
                    outer_header_removal: Some(OuterHeaderRemoval {
                        description: OuterHeaderRemovalDescription::GtpuUdpIpv4,
                        gtpu_extension_header_deletion: None,
                    }),
                    far_id: Some(FAR_UL),
                    urr_ids: vec![URR_ID],
                    qer_ids: vec![QER_ID],
                    ..Default::default()
                },
                CreatePdr {
                    pdr_id: PDR_DL,
                    precedence: 255,
                    pdi: Pdi {
                        source_interface: SourceInterface::Core,
                        network_instance: Some(ni.clone()),
                        ue_ip_addresses: vec![UeIpAddress {
                            is_destination: true,
                            ipv4: Some(ue),
                            ..Default::default()
                        }],
                        source_interface_type: Some(InterfaceType::N6),
                        ..Default::default()
                    },
                    far_id: Some(FAR_DL),
                    urr_ids: vec![URR_ID],
                    qer_ids: vec![QER_ID],
                    ..Default::default()
                },
            ],
            create_fars: vec![
                CreateFar {
                    far_id: FAR_UL,
                    apply_action: ApplyAction::FORW,
                    forwarding_parameters: Some(ForwardingParameters {
                        destination_interface: DestinationInterface::Core,
                        network_instance: Some(ni),
                        destination_interface_type: Some(InterfaceType::N6),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                dl_far,
            ],
            create_urrs: vec![CreateUrr {
                urr_id: URR_ID,
                measurement_method: MeasurementMethod::VOLUM,
                reporting_triggers: if self.urr_period > 0 {
                    ReportingTriggers::PERIO
                } else {
                    ReportingTriggers::default()
                },
                measurement_period: (self.urr_period > 0).then_some(self.urr_period),
                ..Default::default()
            }],
            create_qers: vec![CreateQer {
                qer_id: QER_ID,
                gate_status: GateStatus::OPEN,
                mbr: Some(self.mbr),
                qfi: Some(Qfi(s.info.qfi)),
                ..Default::default()
            }],
            create_bar: dl.is_none_or(|(t, _)| t == 0).then_some(CreateBar {
                bar_id: 1,
                ..Default::default()
            }),
            pdn_type: Some(1),
            ..Default::default()
        }
    }

    /// The Session Modification that makes the downlink FAR of `key` (an
    /// existing session) forward to its gNB F-TEID.
    pub(super) fn modification(&self, key: &SessionKey) -> pfcp::SessionModificationRequest {
        use pfcp::*;
        let s = &self.sessions[key];
        let ni = self.peers[s.upf].dnns[s.dnn].ni.clone();
        SessionModificationRequest {
            update_fars: vec![UpdateFar {
                far_id: FAR_DL,
                apply_action: Some(ApplyAction::FORW),
                update_forwarding_parameters: Some(UpdateForwardingParameters {
                    destination_interface: Some(DestinationInterface::Access),
                    network_instance: Some(ni),
                    outer_header_creation: Some(ohc(s.info.dl_teid, s.info.dl_addr)),
                    destination_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}

fn ohc(teid: u32, addr: IpAddr) -> pfcp::OuterHeaderCreation {
    match addr {
        IpAddr::V4(a) => pfcp::OuterHeaderCreation::gtpu_ipv4(teid, a),
        IpAddr::V6(a) => pfcp::OuterHeaderCreation::gtpu_ipv6(teid, a),
    }
}
