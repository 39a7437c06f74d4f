//! The UPF's own rule model: what PFCP's PDR/FAR/QER/URR IEs say, as the
//! data path needs it. Deliberately independent of the wire types, so the
//! session table and data path can be tested without a codec and the PFCP
//! mapping lives in one place.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::sdf::FlowDescription;

/// PFCP Cause values (TS 29.244 §8.2.1) the UPF sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cause {
    /// 1.
    RequestAccepted = 1,
    /// 64.
    RequestRejected = 64,
    /// 65.
    SessionContextNotFound = 65,
    /// 66.
    MandatoryIeMissing = 66,
    /// 67.
    ConditionalIeMissing = 67,
    /// 68.
    InvalidLength = 68,
    /// 69.
    MandatoryIeIncorrect = 69,
    /// 70.
    InvalidForwardingPolicy = 70,
    /// 71.
    InvalidFteidAllocationOption = 71,
    /// 72.
    NoEstablishedPfcpAssociation = 72,
    /// 73.
    RuleCreationModificationFailure = 73,
    /// 74.
    PfcpEntityInCongestion = 74,
    /// 75.
    NoResourcesAvailable = 75,
    /// 76.
    ServiceNotSupported = 76,
    /// 77.
    SystemFailure = 77,
}

/// PFCP IE types (TS 29.244 §8.1.2) named in Offending IE.
pub mod ie_type {
    /// Create PDR.
    pub const CREATE_PDR: u16 = 1;
    /// PDI.
    pub const PDI: u16 = 2;
    /// Create FAR.
    pub const CREATE_FAR: u16 = 3;
    /// Create URR.
    pub const CREATE_URR: u16 = 6;
    /// Create QER.
    pub const CREATE_QER: u16 = 7;
    /// Update PDR.
    pub const UPDATE_PDR: u16 = 9;
    /// Update FAR.
    pub const UPDATE_FAR: u16 = 10;
    /// Update URR.
    pub const UPDATE_URR: u16 = 13;
    /// Update QER.
    pub const UPDATE_QER: u16 = 14;
    /// Remove PDR.
    pub const REMOVE_PDR: u16 = 15;
    /// Remove FAR.
    pub const REMOVE_FAR: u16 = 16;
    /// Remove URR.
    pub const REMOVE_URR: u16 = 17;
    /// Remove QER.
    pub const REMOVE_QER: u16 = 18;
    /// SDF Filter.
    pub const SDF_FILTER: u16 = 23;
    /// F-TEID.
    pub const F_TEID: u16 = 21;
    /// F-SEID.
    pub const F_SEID: u16 = 57;
    /// FAR ID.
    pub const FAR_ID: u16 = 108;
    /// QER ID.
    pub const QER_ID: u16 = 109;
    /// URR ID.
    pub const URR_ID: u16 = 81;
    /// PDR ID.
    pub const PDR_ID: u16 = 56;
    /// Create BAR.
    pub const CREATE_BAR: u16 = 85;
    /// Update BAR (in a Session Modification Request).
    pub const UPDATE_BAR: u16 = 86;
    /// Remove BAR.
    pub const REMOVE_BAR: u16 = 87;
    /// Query URR.
    pub const QUERY_URR: u16 = 77;
    /// Node ID.
    pub const NODE_ID: u16 = 60;
}

/// Source / Destination Interface values (TS 29.244 §8.2.2, §8.2.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// 0: towards the access network (N3).
    Access,
    /// 1: towards the core / data network (N6).
    Core,
    /// 2: SGi-LAN / N6-LAN.
    SgiLan,
    /// 3: CP function.
    CpFunction,
    /// Other values, kept.
    Other(u8),
}

/// How the local F-TEID of a PDI is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FTeidSpec {
    /// The SMF allocated it.
    Given(u32),
    /// CHOOSE: the UPF allocates; PDRs with the same CHOOSE ID in a session
    /// share one TEID.
    Choose(Option<u8>),
}

/// Packet Detection Information.
#[derive(Debug, Clone, PartialEq)]
pub struct Pdi {
    /// Source Interface.
    pub source_interface: Interface,
    /// Local F-TEID (uplink PDRs).
    pub local_fteid: Option<FTeidSpec>,
    /// UE IP address (downlink PDRs match on it; also the anti-spoofing
    /// reference).
    pub ue_ip: Option<Ipv4Addr>,
    /// QFI to match (uplink), if any.
    pub qfi: Option<u8>,
    /// SDF filters; empty matches every packet.
    pub sdf_filters: Vec<FlowDescription>,
    /// Network Instance, kept for reporting.
    pub network_instance: Option<String>,
}

/// Packet Detection Rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Pdr {
    /// PDR ID.
    pub id: u16,
    /// Precedence: lower value wins.
    pub precedence: u32,
    /// What it matches.
    pub pdi: Pdi,
    /// Outer Header Removal present (any description: the data path removes
    /// GTP-U/UDP/IP whichever was asked).
    pub outer_header_removal: bool,
    /// FAR applied to matched packets.
    pub far_id: u32,
    /// QERs applied, in order.
    pub qer_ids: Vec<u32>,
    /// URRs counting matched packets.
    pub urr_ids: Vec<u32>,
}

/// Outer Header Creation: GTP-U/UDP/IPv4 towards a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterHeader {
    /// Remote TEID.
    pub teid: u32,
    /// Remote address (port 2152 normally).
    pub peer: SocketAddrV4,
}

/// What a FAR does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FarAction {
    /// FORW.
    Forward {
        /// Destination Interface.
        destination: Interface,
        /// Outer Header Creation, for forwarding into a tunnel.
        outer_header: Option<OuterHeader>,
    },
    /// BUFF.
    Buffer,
    /// DROP.
    Drop,
}

/// Forwarding Action Rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Far {
    /// FAR ID.
    pub id: u32,
    /// Action.
    pub action: FarAction,
}

/// Gate status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Packets pass.
    Open,
    /// Packets are dropped.
    Closed,
}

/// QoS Enforcement Rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qer {
    /// QER ID.
    pub id: u32,
    /// Uplink gate.
    pub gate_ul: Gate,
    /// Downlink gate.
    pub gate_dl: Gate,
    /// Uplink MBR, bits per second.
    pub mbr_ul: Option<u64>,
    /// Downlink MBR, bits per second.
    pub mbr_dl: Option<u64>,
    /// QFI put in the downlink PDU Session Container.
    pub qfi: Option<u8>,
}

/// Volume threshold of a URR, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeThreshold {
    /// Total (both directions).
    pub total: Option<u64>,
    /// Uplink.
    pub uplink: Option<u64>,
    /// Downlink.
    pub downlink: Option<u64>,
}

/// Usage Reporting Rule (volume measurement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urr {
    /// URR ID.
    pub id: u32,
    /// Report when reached (VOLTH trigger).
    pub volume_threshold: Option<VolumeThreshold>,
    /// Report every period (PERIO trigger).
    pub measurement_period: Option<Duration>,
}

/// Everything a Session Establishment carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionRules {
    /// Create PDR.
    pub pdrs: Vec<Pdr>,
    /// Create FAR.
    pub fars: Vec<Far>,
    /// Create QER.
    pub qers: Vec<Qer>,
    /// Create URR.
    pub urrs: Vec<Urr>,
    /// Buffering packet count asked for by a Create BAR (Suggested Buffering
    /// Packets Count), if any.
    pub buffer_packets: Option<u32>,
}

/// A Session Modification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Modification {
    /// Create PDR/FAR/QER/URR.
    pub create: SessionRules,
    /// Update PDR (replaces the PDR with the same ID).
    pub update_pdrs: Vec<Pdr>,
    /// Update FAR (replaces).
    pub update_fars: Vec<Far>,
    /// Update QER (replaces).
    pub update_qers: Vec<Qer>,
    /// Update URR (replaces; counters kept).
    pub update_urrs: Vec<Urr>,
    /// Remove PDR.
    pub remove_pdrs: Vec<u16>,
    /// Remove FAR.
    pub remove_fars: Vec<u32>,
    /// Remove QER.
    pub remove_qers: Vec<u32>,
    /// Remove URR.
    pub remove_urrs: Vec<u32>,
    /// Query URR: report these now (in the response).
    pub query_urrs: Vec<u32>,
}
