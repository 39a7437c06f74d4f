//! The UPF's own rule model: what PFCP's PDR/FAR/QER/URR IEs say, as the
//! data path needs it. Deliberately independent of the wire types, so the
//! session table and data path can be tested without a codec and the PFCP
//! mapping lives in one place.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::sdf::FlowDescription;

/// PFCP Cause values (TS 29.244 §8.2.1): the codec's own type, so the
/// table is written down once and the UPF's causes go on the wire as they are.
pub use wire::pfcp::Cause;

/// PFCP IE types (TS 29.244 §8.1.2) named in Offending IE: the codec's own
/// table, so a type number is written down once.
pub use wire::pfcp::ie_type;

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

impl Pdr {
    /// An uplink PDR: packets from the access side on `fteid` with source
    /// `ue`, matching `sdf_filters` (none: every packet), outer header
    /// removed, then FAR `far_id`; no QER, no URR.
    pub fn uplink(
        id: u16,
        precedence: u32,
        far_id: u32,
        fteid: FTeidSpec,
        ue: Ipv4Addr,
        sdf_filters: Vec<FlowDescription>,
    ) -> Pdr {
        Pdr {
            id,
            precedence,
            pdi: Pdi {
                source_interface: Interface::Access,
                local_fteid: Some(fteid),
                ue_ip: Some(ue),
                qfi: None,
                sdf_filters,
                network_instance: None,
            },
            outer_header_removal: true,
            far_id,
            qer_ids: vec![],
            urr_ids: vec![],
        }
    }

    /// A downlink PDR: every packet from the core side to `ue`, then FAR
    /// `far_id`; no QER, no URR.
    pub fn downlink(id: u16, precedence: u32, far_id: u32, ue: Ipv4Addr) -> Pdr {
        Pdr {
            id,
            precedence,
            pdi: Pdi {
                source_interface: Interface::Core,
                local_fteid: None,
                ue_ip: Some(ue),
                qfi: None,
                sdf_filters: vec![],
                network_instance: None,
            },
            outer_header_removal: false,
            far_id,
            qer_ids: vec![],
            urr_ids: vec![],
        }
    }
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

impl FarAction {
    /// FORW to the core side (N6), no tunnel.
    pub fn to_core() -> FarAction {
        FarAction::Forward {
            destination: Interface::Core,
            outer_header: None,
        }
    }

    /// FORW to the access side into the GTP-U tunnel `teid` at `peer`.
    pub fn to_access(teid: u32, peer: SocketAddrV4) -> FarAction {
        FarAction::Forward {
            destination: Interface::Access,
            outer_header: Some(OuterHeader { teid, peer }),
        }
    }
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

impl Qer {
    /// Both gates open, no MBR, `qfi` for the downlink.
    pub fn open(id: u32, qfi: Option<u8>) -> Qer {
        Qer {
            id,
            gate_ul: Gate::Open,
            gate_dl: Gate::Open,
            mbr_ul: None,
            mbr_dl: None,
            qfi,
        }
    }
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
