//! The JSON control messages of the lite interfaces (DESIGN.md section 3):
//! N1-lite (UE <-> SMF, relayed by the gNB) and N2-lite (SMF <-> gNB). They
//! carry what NAS and NGAP carry for a PDU session, and nothing more.
//!
//! | call | method and path | body | answer |
//! |---|---|---|---|
//! | N1 via gNB | `POST http://GNB_RADIO:7001/n1/sessions` | [`SessionRequest`] | 201 [`SessionInfo`] |
//! | N1 via gNB | `DELETE http://GNB_RADIO:7001/n1/sessions/{ue_id}/{psi}` | - | 204 |
//! | gNB -> SMF | `POST http://SMF:7000/sessions` | [`SessionRequest`] with `gnb` set | 201 [`SessionInfo`] |
//! | SMF API | `GET /sessions`, `GET/DELETE /sessions/{ue_id}/{psi}` | - | [`SessionInfo`]s / 204 |
//! | N2 SMF -> gNB | `POST http://GNB_CP:7002/n2/tunnels` | [`TunnelSetup`] | 201 [`TunnelSetupResponse`] |
//! | N2 SMF -> gNB | `DELETE http://GNB_CP:7002/n2/tunnels/{dl_teid}` | - | 204 |
//!
//! CSM's migration messages (N1-lite, relayed by the gNB like the session
//! calls; the SMF's migration manager answers) are in [`migration`], with
//! their own table.
//!
//! Errors on every API are a 4xx/5xx status with an [`ApiError`] body.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

pub mod migration;

/// Default TCP port of the SMF's HTTP API (N1-lite relay target, CLI).
pub const SMF_PORT: u16 = 7000;
/// Default TCP port of the gNB's N1 relay, on its radio side.
pub const GNB_N1_PORT: u16 = 7001;
/// Default TCP port of the gNB's N2-lite API, on its control-plane side.
pub const GNB_N2_PORT: u16 = 7002;

/// A UE's request for a PDU session (N1-lite), as the UE sends it to the
/// gNB, and as the gNB relays it to the SMF with `gnb` filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The UE's identity (a SUPI such as `imsi-001010000000001`).
    pub ue_id: String,
    /// PDU session id, 1..=15 (TS 24.007).
    pub pdu_session_id: u8,
    /// Data network name; the SMF picks the UPF that serves it.
    pub dnn: String,
    /// Ask for this UPF by name instead of selecting by DNN (CSM's parallel
    /// session to a destination edge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upf: Option<String>,
    /// The gNB that relays the request (its name, and the address of its
    /// N2-lite API); set by the gNB, ignored from a UE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gnb: Option<GnbRef>,
}

/// Which gNB serves a session, and where its N2-lite API listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GnbRef {
    pub name: String,
    /// `IP:PORT` of the gNB's N2-lite API.
    pub n2_api: String,
}

/// An established PDU session, as the SMF reports it (N1-lite answer, SMF API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub ue_id: String,
    pub pdu_session_id: u8,
    pub dnn: String,
    /// The UPF that anchors the session.
    pub upf: String,
    /// The UE's address in this session (from the UPF's pool).
    pub ue_addr: Ipv4Addr,
    /// QoS flow of the session's default QoS rule.
    pub qfi: u8,
    /// Uplink tunnel end: the UPF's N3 F-TEID.
    pub ul_teid: u32,
    pub ul_addr: IpAddr,
    /// Downlink tunnel end: the gNB's N3 F-TEID.
    pub dl_teid: u32,
    pub dl_addr: IpAddr,
    /// The SMF's and the UPF's PFCP session endpoint ids.
    pub cp_seid: u64,
    pub up_seid: u64,
    /// The gNB that serves the session.
    pub gnb: String,
}

/// N2-lite: the SMF asks the gNB to set up the radio side of a session's
/// tunnel (what NGAP's PDU Session Resource Setup Request carries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSetup {
    pub ue_id: String,
    pub pdu_session_id: u8,
    /// The UE's address: the gNB maps uplink packets by this source address.
    pub ue_addr: Ipv4Addr,
    /// Where uplink G-PDUs go: the UPF's N3 F-TEID.
    pub ul_teid: u32,
    pub ul_addr: IpAddr,
    /// QFI to put in the uplink PDU Session Container.
    pub qfi: u8,
}

/// N2-lite answer: the gNB's own end of the tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSetupResponse {
    pub dl_teid: u32,
    pub dl_addr: IpAddr,
}

/// The body of every error answer: what was wrong, in words, and which field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
