//! A fake UPF built from wire::pfcp, used by the state-machine simulation
//! and by the daemon tests (over a real UDP socket).
#![allow(dead_code)]

pub mod loopback;
pub mod peers;
pub mod sim;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use wire::pfcp::*;

/// What the fake UPF keeps of a session.
#[derive(Debug, Clone)]
pub struct FakeSession {
    pub cp_seid: u64,
    pub ul_teid: u32,
    pub est: SessionEstablishmentRequest,
    /// FAR id -> (apply action, outer header creation)
    pub fars: HashMap<u32, (ApplyAction, Option<OuterHeaderCreation>)>,
    pub modifications: Vec<SessionModificationRequest>,
}

pub struct FakeUpf {
    pub name: String,
    pub rts: u32,
    pub n3: Ipv4Addr,
    pub associated: bool,
    pub sessions: HashMap<u64, FakeSession>,
    pub next_seid: u64,
    pub next_teid: u32,
    /// Every message received, decoded.
    pub log: Vec<Message>,
    pub reject_establishment: Option<Cause>,
    pub reject_modification: Option<Cause>,
    next_seq: u32,
    /// Answers by request sequence number: a retransmitted request gets the
    /// same answer, not a second execution (as TS 29.244 §6.4 asks).
    answered: HashMap<u32, Vec<u8>>,
}

impl FakeUpf {
    pub fn new(name: &str, rts: u32, teid_base: u32) -> FakeUpf {
        FakeUpf {
            name: name.into(),
            rts,
            n3: Ipv4Addr::new(10, 3, 0, 2),
            associated: false,
            sessions: HashMap::new(),
            next_seid: 0x1000,
            next_teid: teid_base,
            log: Vec::new(),
            reject_establishment: None,
            reject_modification: None,
            next_seq: 1,
            answered: HashMap::new(),
        }
    }

    /// A restart: new Recovery Time Stamp, all state gone, TEIDs from `teid_base`.
    pub fn restart(&mut self, rts: u32, teid_base: u32) {
        self.rts = rts;
        self.associated = false;
        self.sessions.clear();
        self.next_teid = teid_base;
        self.next_seid += 0x1000;
        self.answered.clear();
    }

    pub fn count(&self, ty: u8) -> usize {
        self.log.iter().filter(|m| m.msg_type() == ty).count()
    }

    fn node_id(&self) -> NodeId {
        NodeId::fqdn(&self.name)
    }

    /// A request of our own (Heartbeat / Session Report) as bytes.
    pub fn heartbeat_request(&mut self) -> Vec<u8> {
        let seq = self.seq();
        Message::node(
            seq,
            HeartbeatRequest {
                recovery_time_stamp: self.rts,
                ..Default::default()
            },
        )
        .to_vec()
        .expect("encodes")
    }

    /// A UPF-initiated Association Setup Request as bytes.
    pub fn association_setup_request(&mut self) -> Vec<u8> {
        let seq = self.seq();
        Message::node(
            seq,
            AssociationSetupRequest {
                node_id: self.node_id(),
                recovery_time_stamp: self.rts,
                up_function_features: Some(FunctionFeatures::with(&[up_features::FTUP])),
                ..Default::default()
            },
        )
        .to_vec()
        .expect("encodes")
    }

    pub fn report_request(&mut self, cp_seid: u64, ul: u64, dl: u64) -> Vec<u8> {
        let seq = self.seq();
        Message::session(
            cp_seid,
            seq,
            SessionReportRequest {
                report_type: ReportType::USAR,
                usage_reports: vec![UsageReport {
                    urr_id: 1,
                    ur_seqn: seq,
                    usage_report_trigger: UsageReportTrigger::PERIO,
                    volume_measurement: Some(VolumeMeasurement {
                        total_volume: Some(ul + dl),
                        uplink_volume: Some(ul),
                        downlink_volume: Some(dl),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .to_vec()
        .expect("encodes")
    }

    fn seq(&mut self) -> u32 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Handles one datagram; returns the answer, if any.
    pub fn handle(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let m = Message::parse(data).expect("the SMF sends valid PFCP");
        self.log.push(m.clone());
        let seq = m.header.seq;
        if let Some(a) = self.answered.get(&seq) {
            return Some(a.clone());
        }
        let rsp = match m.body {
            MessageBody::AssociationSetupRequest(_) => {
                self.associated = true;
                Message::node(
                    seq,
                    AssociationSetupResponse {
                        node_id: self.node_id(),
                        cause: Cause::RequestAccepted,
                        recovery_time_stamp: self.rts,
                        up_function_features: Some(FunctionFeatures::with(&[up_features::FTUP])),
                        ..Default::default()
                    },
                )
            }
            // Our own (UPF-initiated) association is up once accepted.
            MessageBody::AssociationSetupResponse(ref r) => {
                self.associated |= r.cause == Cause::RequestAccepted;
                return None;
            }
            MessageBody::HeartbeatRequest(_) => Message::node(
                seq,
                HeartbeatResponse {
                    recovery_time_stamp: self.rts,
                    ..Default::default()
                },
            ),
            MessageBody::SessionEstablishmentRequest(req) => {
                let cp_seid = req.cp_f_seid.seid;
                let cause = if !self.associated {
                    Some(Cause::NoEstablishedPfcpAssociation)
                } else {
                    self.reject_establishment
                };
                if let Some(cause) = cause {
                    Message::session(
                        cp_seid,
                        seq,
                        SessionEstablishmentResponse {
                            node_id: self.node_id(),
                            cause,
                            ..Default::default()
                        },
                    )
                } else {
                    let up_seid = self.next_seid;
                    self.next_seid += 1;
                    let teid = self.next_teid;
                    self.next_teid += 1;
                    let created_pdrs = req
                        .create_pdrs
                        .iter()
                        .filter(|p| matches!(p.pdi.local_f_teid, Some(FTeid::Choose { .. })))
                        .map(|p| CreatedPdr {
                            pdr_id: p.pdr_id,
                            local_f_teid: Some(FTeid::ipv4(teid, self.n3)),
                            ..Default::default()
                        })
                        .collect();
                    let fars = req
                        .create_fars
                        .iter()
                        .map(|f| {
                            (
                                f.far_id,
                                (
                                    f.apply_action,
                                    f.forwarding_parameters
                                        .as_ref()
                                        .and_then(|p| p.outer_header_creation),
                                ),
                            )
                        })
                        .collect();
                    self.sessions.insert(
                        up_seid,
                        FakeSession {
                            cp_seid,
                            ul_teid: teid,
                            est: req,
                            fars,
                            modifications: vec![],
                        },
                    );
                    Message::session(
                        cp_seid,
                        seq,
                        SessionEstablishmentResponse {
                            node_id: self.node_id(),
                            cause: Cause::RequestAccepted,
                            up_f_seid: Some(FSeid::ipv4(up_seid, Ipv4Addr::new(10, 100, 0, 11))),
                            created_pdrs,
                            ..Default::default()
                        },
                    )
                }
            }
            MessageBody::SessionModificationRequest(req) => {
                let seid = m.header.seid.unwrap_or(0);
                match self.sessions.get_mut(&seid) {
                    None => Message::session(
                        0,
                        seq,
                        SessionModificationResponse {
                            cause: Cause::SessionContextNotFound,
                            ..Default::default()
                        },
                    ),
                    Some(s) => {
                        let cause = self.reject_modification.unwrap_or(Cause::RequestAccepted);
                        if cause == Cause::RequestAccepted {
                            for u in &req.update_fars {
                                let e = s.fars.entry(u.far_id).or_insert((ApplyAction::DROP, None));
                                if let Some(a) = u.apply_action {
                                    e.0 = a;
                                }
                                if let Some(o) = u
                                    .update_forwarding_parameters
                                    .as_ref()
                                    .and_then(|p| p.outer_header_creation)
                                {
                                    e.1 = Some(o);
                                }
                            }
                            s.modifications.push(req);
                        }
                        Message::session(
                            s.cp_seid,
                            seq,
                            SessionModificationResponse {
                                cause,
                                ..Default::default()
                            },
                        )
                    }
                }
            }
            MessageBody::SessionDeletionRequest(_) => {
                let seid = m.header.seid.unwrap_or(0);
                match self.sessions.remove(&seid) {
                    None => Message::session(
                        0,
                        seq,
                        SessionDeletionResponse {
                            cause: Cause::SessionContextNotFound,
                            ..Default::default()
                        },
                    ),
                    Some(s) => Message::session(
                        s.cp_seid,
                        seq,
                        SessionDeletionResponse {
                            cause: Cause::RequestAccepted,
                            usage_reports: vec![UsageReport {
                                urr_id: 1,
                                ur_seqn: 1,
                                usage_report_trigger: UsageReportTrigger::TERMR,
                                volume_measurement: Some(VolumeMeasurement {
                                    uplink_volume: Some(100),
                                    downlink_volume: Some(200),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        },
                    ),
                }
            }
            // Answers to our own requests: logged only.
            _ => return None,
        };
        let out = rsp.to_vec().expect("encodes");
        self.answered.insert(seq, out.clone());
        Some(out)
    }
}
