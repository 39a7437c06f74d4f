//! A PFCP peer for the UPF's N4 tests: an SMF on the gNB's namespace that
//! speaks PFCP through `wire`, and the session it establishes.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;
use upf::n4::fixtures;
use upf::packet::build_udp;
use wire::pfcp::{self, Message, MessageBody};

pub const GNB_TEID: u32 = 0x777;

pub struct Smf {
    pub sock: UdpSocket,
    pub upf: SocketAddr,
    pub seq: u32,
    /// Requests from the UPF (heartbeats, session reports) seen while
    /// waiting for responses.
    pub inbox: VecDeque<Message>,
    pub node_id: pfcp::NodeId,
}

impl Smf {
    pub fn new(bed: &Bed) -> Smf {
        let sock = must(
            bed.gnb
                .run(|| UdpSocket::bind((GNB_N3, 0)).expect("smf socket")),
        );
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        Smf {
            sock,
            upf: SocketAddr::from((UPF_N3, 8805)),
            seq: 100,
            inbox: VecDeque::new(),
            node_id: pfcp::NodeId::fqdn("smf.test.example"),
        }
    }

    /// An SMF on `bed`'s gNB namespace, associated with the UPF.
    pub fn associated(bed: &Bed) -> Smf {
        let mut smf = Smf::new(bed);
        smf.associate();
        smf
    }

    /// The next sequence number and the bytes of a session request with it.
    pub fn encode_session(&mut self, seid: u64, body: impl Into<MessageBody>) -> (Vec<u8>, u32) {
        self.seq += 1;
        let bytes = Message::session(seid, self.seq, body)
            .to_vec()
            .expect("encode");
        (bytes, self.seq)
    }

    /// Ask for the session `r`: the Session Establishment Response.
    pub fn establish(
        &mut self,
        r: pfcp::SessionEstablishmentRequest,
    ) -> pfcp::SessionEstablishmentResponse {
        let m = self.session(0, r);
        let MessageBody::SessionEstablishmentResponse(e) = m.body else {
            panic!("{m:?}")
        };
        e
    }

    pub fn send_raw(&self, b: &[u8]) {
        self.sock.send_to(b, self.upf).expect("send");
    }

    pub fn recv(&mut self, deadline: Instant) -> Option<(Message, Vec<u8>)> {
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let m = Message::parse(&buf[..n]).expect("the UPF sends valid PFCP");
                return Some((m, buf[..n].to_vec()));
            }
        }
        None
    }

    /// Send bytes of a request with `seq`, wait for the response with that seq.
    pub fn exchange(&mut self, bytes: &[u8], seq: u32) -> (Message, Vec<u8>) {
        self.send_raw(bytes);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let (m, b) = self.recv(deadline).expect("response from the UPF");
            if m.header.seq == seq
                && matches!(m.msg_type(), 2 | 4 | 6 | 8 | 10 | 11 | 51 | 53 | 55 | 57)
            {
                return (m, b);
            }
            self.inbox.push_back(m);
        }
    }

    pub fn node(&mut self, body: impl Into<MessageBody>) -> Message {
        self.seq += 1;
        let m = Message::node(self.seq, body);
        self.exchange(&m.to_vec().expect("encode"), self.seq).0
    }

    pub fn session(&mut self, seid: u64, body: impl Into<MessageBody>) -> Message {
        let (bytes, seq) = self.encode_session(seid, body);
        self.exchange(&bytes, seq).0
    }

    pub fn associate(&mut self) -> pfcp::AssociationSetupResponse {
        let r = self.node(pfcp::AssociationSetupRequest {
            node_id: self.node_id.clone(),
            recovery_time_stamp: 3_900_000_000,
            cp_function_features: Some(pfcp::FunctionFeatures(vec![0])),
            ..Default::default()
        });
        match r.body {
            MessageBody::AssociationSetupResponse(a) => a,
            b => panic!("unexpected {b:?}"),
        }
    }

    /// Wait for a Session Report Request of report type `ty` from the UPF
    /// and answer it (others stay in the inbox).
    pub fn wait_report(&mut self, ty: pfcp::ReportType) -> (u64, pfcp::SessionReportRequest) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let Some(pos) = self
                .inbox
                .iter()
                .position(|m| matches!(&m.body, MessageBody::SessionReportRequest(r) if r.report_type.contains(ty)))
            {
                let m = self.inbox.remove(pos).expect("present");
                let resp = Message::session(
                    m.header.seid.unwrap_or(0),
                    m.header.seq,
                    pfcp::SessionReportResponse {
                        cause: pfcp::Cause::RequestAccepted,
                        ..Default::default()
                    },
                );
                self.send_raw(&resp.to_vec().expect("encode"));
                let MessageBody::SessionReportRequest(r) = m.body else {
                    unreachable!()
                };
                return (m.header.seid.unwrap_or(0), r);
            }
            let (m, _) = self.recv(deadline).expect("a session report");
            self.inbox.push_back(m);
        }
    }
}

pub fn est_request(smf: &Smf, cp_seid: u64) -> pfcp::SessionEstablishmentRequest {
    pfcp::SessionEstablishmentRequest {
        node_id: smf.node_id.clone(),
        cp_f_seid: pfcp::FSeid::ipv4(cp_seid, GNB_N3),
        create_pdrs: vec![
            pfcp::CreatePdr {
                pdr_id: 1,
                precedence: 255,
                pdi: pfcp::Pdi {
                    source_interface: pfcp::SourceInterface::Access,
                    local_f_teid: Some(pfcp::FTeid::choose_v4(Some(5))),
                    network_instance: Some(pfcp::NetworkInstance::from_dnn("internet")),
                    ue_ip_addresses: vec![pfcp::UeIpAddress::source_v4(UE)],
                    qfis: vec![pfcp::Qfi(9)],
                    source_interface_type: Some(pfcp::InterfaceType::from(11)), // N3 3GPP Access
                    ..Default::default()
                },
                outer_header_removal: Some(pfcp::OuterHeaderRemoval {
                    description: pfcp::OuterHeaderRemovalDescription::GtpuUdpIpv4,
                    gtpu_extension_header_deletion: Some(1),
                }),
                far_id: Some(1),
                urr_ids: vec![1],
                qer_ids: vec![1],
                ..Default::default()
            },
            // Second UL PDR, same CHOOSE ID, higher precedence: UDP to port
            // 7001 of the edge is dropped.
            pfcp::CreatePdr {
                pdr_id: 3,
                precedence: 10,
                pdi: pfcp::Pdi {
                    source_interface: pfcp::SourceInterface::Access,
                    local_f_teid: Some(pfcp::FTeid::choose_v4(Some(5))),
                    ue_ip_addresses: vec![pfcp::UeIpAddress::source_v4(UE)],
                    sdf_filters: vec![pfcp::SdfFilter::flow(
                        "permit out 17 from 10.0.2.2 7001 to assigned",
                    )],
                    ..Default::default()
                },
                outer_header_removal: Some(pfcp::OuterHeaderRemoval::of(
                    pfcp::OuterHeaderRemovalDescription::GtpuUdpIp,
                )),
                far_id: Some(3),
                ..Default::default()
            },
            pfcp::CreatePdr {
                qer_ids: vec![1],
                ..fixtures::dl_pdr(2, 2, UE)
            },
        ],
        create_fars: vec![
            pfcp::CreateFar {
                far_id: 1,
                apply_action: pfcp::ApplyAction::FORW,
                forwarding_parameters: Some(pfcp::ForwardingParameters {
                    destination_interface: pfcp::DestinationInterface::Core,
                    network_instance: Some(pfcp::NetworkInstance::from_dnn("internet")),
                    ..Default::default()
                }),
                ..Default::default()
            },
            pfcp::CreateFar {
                bar_id: Some(1),
                ..fixtures::buffering_far(2)
            },
            pfcp::CreateFar {
                far_id: 3,
                apply_action: pfcp::ApplyAction::DROP,
                ..Default::default()
            },
        ],
        create_qers: vec![pfcp::CreateQer {
            qer_id: 1,
            gate_status: pfcp::GateStatus::OPEN,
            qfi: Some(pfcp::Qfi(9)),
            ..Default::default()
        }],
        create_urrs: vec![pfcp::CreateUrr {
            urr_id: 1,
            measurement_method: pfcp::MeasurementMethod::VOLUM,
            reporting_triggers: pfcp::ReportingTriggers::VOLTH,
            volume_threshold: Some(pfcp::Volume {
                uplink: Some(3000),
                ..Default::default()
            }),
            ..Default::default()
        }],
        create_bar: Some(pfcp::CreateBar {
            bar_id: 1,
            suggested_buffering_packets_count: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// [`est_request`] with its downlink FAR 2 forwarding to the test gNB
/// ([`GNB_TEID`]) instead of buffering.
pub fn est_request_forwarding(smf: &Smf, cp_seid: u64) -> pfcp::SessionEstablishmentRequest {
    let mut r = est_request(smf, cp_seid);
    r.create_fars[1] = pfcp::CreateFar {
        far_id: 2,
        apply_action: pfcp::ApplyAction::FORW,
        forwarding_parameters: Some(pfcp::ForwardingParameters {
            destination_interface: pfcp::DestinationInterface::Access,
            outer_header_creation: Some(pfcp::OuterHeaderCreation::gtpu_ipv4(GNB_TEID, GNB_N3)),
            ..Default::default()
        }),
        ..Default::default()
    };
    r
}

/// The uplink TEID the UPF chose for the first created PDR.
pub fn first_teid(est: &pfcp::SessionEstablishmentResponse) -> u32 {
    match est.created_pdrs[0].local_f_teid {
        Some(pfcp::FTeid::Assigned { teid, .. }) => teid,
        ref other => panic!("bad F-TEID {other:?}"),
    }
}

pub fn up(dport: u16, payload: &[u8]) -> Vec<u8> {
    build_udp(UE, 5000, EDGE, dport, payload)
}
