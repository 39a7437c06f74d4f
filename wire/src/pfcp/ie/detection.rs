//! IEs of packet detection (TS 29.244 §8.2), what a PDI matches on and the
//! interfaces a packet comes from or goes to: Network Instance, Source and
//! Destination Interface, 3GPP Interface Type, F-TEID, UE IP Address and
//! SDF Filter. Octet 5 is the first octet of the value.

use super::node::Fqdn;
use crate::pfcp::codec::{enum_codec, enum_with_unknown, octets_codec, IeCodec, Reader, Writer};
use crate::pfcp::error::PfcpError;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Octet strings: Network Instance (type 22) and other opaque values.
///
/// Network Instance is an octet string; peers put a DNN there either
/// label-encoded (like an APN) or as text. [`NetworkInstance::from_dnn`]
/// label-encodes; [`NetworkInstance::name`] reads either form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NetworkInstance(pub Vec<u8>);

impl NetworkInstance {
    /// Label-encodes a DNN such as `internet` or `edge.mnc001.mcc001`.
    pub fn from_dnn(dnn: &str) -> Self {
        let mut v = Vec::with_capacity(dnn.len() + 1);
        for label in dnn.split('.') {
            v.push(label.len().min(255) as u8);
            v.extend_from_slice(&label.as_bytes()[..label.len().min(255)]);
        }
        NetworkInstance(v)
    }

    /// The name in dotted form: octets starting with a printable character
    /// are taken as text, others are label-decoded (falling back to lossy text).
    pub fn name(&self) -> String {
        match self.0.first() {
            Some(b) if !b.is_ascii_graphic() => match Fqdn::decode(0, &self.0) {
                Ok(f) => f.0,
                Err(_) => String::from_utf8_lossy(&self.0).into_owned(),
            },
            _ => String::from_utf8_lossy(&self.0).into_owned(),
        }
    }
}

octets_codec!(NetworkInstance);

enum_with_unknown! {
    /// Source Interface (type 20), §8.2.2 (4 bits).
    pub enum SourceInterface(u8) {
        Access = 0,
        Core = 1,
        /// SGi-LAN / N6-LAN.
        SgiLanN6Lan = 2,
        CpFunction = 3,
        FiveGVnInternal = 4,
    }
}

enum_with_unknown! {
    /// Destination Interface (type 42), §8.2.24 (4 bits).
    pub enum DestinationInterface(u8) {
        Access = 0,
        Core = 1,
        /// SGi-LAN / N6-LAN.
        SgiLanN6Lan = 2,
        CpFunction = 3,
        LiFunction = 4,
        FiveGVnInternal = 5,
    }
}

enum_codec!(SourceInterface, 0x0f);
enum_codec!(DestinationInterface, 0x0f);

enum_with_unknown! {
    /// 3GPP Interface Type (type 160), §8.2.118 (6 bits): the Source
    /// Interface Type in a PDI, the Destination Interface Type in Forwarding
    /// Parameters.
    pub enum InterfaceType(u8) {
        S1U = 0,
        S5S8U = 1,
        S4U = 2,
        S11U = 3,
        S12U = 4,
        GnGpU = 5,
        S2aU = 6,
        S2bU = 7,
        EnbDlDataForwarding = 8,
        EnbUlDataForwarding = 9,
        SgwUpfDlDataForwarding = 10,
        N3ThreeGppAccess = 11,
        N3TrustedNon3GppAccess = 12,
        N3UntrustedNon3GppAccess = 13,
        N3DataForwarding = 14,
        N9 = 15,
        SGi = 16,
        N6 = 17,
        N19 = 18,
        S8U = 19,
        GpU = 20,
        N9Roaming = 21,
    }
}

enum_codec!(InterfaceType, 0x3f);

/// F-TEID (type 21), §8.2.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FTeid {
    /// CH = 0: a TEID and the address(es) of the GTP-U endpoint.
    Assigned {
        /// The TEID.
        teid: u32,
        /// IPv4 address (flag V4).
        ipv4: Option<Ipv4Addr>,
        /// IPv6 address (flag V6).
        ipv6: Option<Ipv6Addr>,
    },
    /// CH = 1 (CHOOSE): the UP function allocates the TEID; V4/V6 say which
    /// address family it is to pick. With CHID, PDRs giving the same Choose
    /// ID get the same F-TEID.
    Choose {
        /// Flag V4.
        v4: bool,
        /// Flag V6.
        v6: bool,
        /// Choose ID (flag CHID).
        choose_id: Option<u8>,
    },
}

impl FTeid {
    /// An allocated IPv4 F-TEID.
    pub fn ipv4(teid: u32, addr: Ipv4Addr) -> Self {
        FTeid::Assigned {
            teid,
            ipv4: Some(addr),
            ipv6: None,
        }
    }

    /// CHOOSE an IPv4 F-TEID (flags CH and V4); PDRs giving the same
    /// `choose_id` (flag CHID) get the same one.
    pub fn choose_v4(choose_id: Option<u8>) -> Self {
        FTeid::Choose {
            v4: true,
            v6: false,
            choose_id,
        }
    }

    /// The TEID, unless this is a CHOOSE request.
    pub fn teid(&self) -> Option<u32> {
        match self {
            FTeid::Assigned { teid, .. } => Some(*teid),
            FTeid::Choose { .. } => None,
        }
    }
}

impl IeCodec for FTeid {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let flags = r.u8()?;
        let (v4, v6, ch, chid) = (
            flags & 0x01 != 0,
            flags & 0x02 != 0,
            flags & 0x04 != 0,
            flags & 0x08 != 0,
        );
        if ch {
            let choose_id = if chid { Some(r.u8()?) } else { None };
            return Ok(FTeid::Choose { v4, v6, choose_id });
        }
        if chid {
            return Err(PfcpError::invalid(ty, "CHID set without CH"));
        }
        let teid = r.u32()?;
        let ipv4 = if v4 { Some(r.ipv4()?) } else { None };
        let ipv6 = if v6 { Some(r.ipv6()?) } else { None };
        Ok(FTeid::Assigned { teid, ipv4, ipv6 })
    }
    fn value_len(&self) -> usize {
        match self {
            FTeid::Assigned { ipv4, ipv6, .. } => {
                5 + ipv4.map_or(0, |_| 4) + ipv6.map_or(0, |_| 16)
            }
            FTeid::Choose { choose_id, .. } => 1 + choose_id.map_or(0, |_| 1),
        }
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        match self {
            FTeid::Assigned { teid, ipv4, ipv6 } => {
                w.u8(u8::from(ipv4.is_some()) | u8::from(ipv6.is_some()) << 1);
                w.u32(*teid);
                if let Some(a) = ipv4 {
                    w.ipv4(a);
                }
                if let Some(a) = ipv6 {
                    w.ipv6(a);
                }
            }
            FTeid::Choose { v4, v6, choose_id } => {
                w.u8(u8::from(*v4)
                    | u8::from(*v6) << 1
                    | 0x04
                    | u8::from(choose_id.is_some()) << 3);
                if let Some(id) = choose_id {
                    w.u8(*id);
                }
            }
        }
    }
}

/// UE IP Address (type 93), §8.2.62.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UeIpAddress {
    /// S/D flag: `false` = source address (uplink PDR / in a PDI for access),
    /// `true` = destination address.
    pub is_destination: bool,
    /// IPv4 address (flag V4).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address (flag V6).
    pub ipv6: Option<Ipv6Addr>,
    /// IPv6 Prefix Delegation Bits (flag IPv6D).
    pub ipv6_prefix_delegation_bits: Option<u8>,
    /// IPv6 Prefix Length (flag IP6PL).
    pub ipv6_prefix_length: Option<u8>,
    /// CHV4: the UP function is to choose an IPv4 address.
    pub choose_v4: bool,
    /// CHV6: the UP function is to choose an IPv6 prefix.
    pub choose_v6: bool,
}

impl UeIpAddress {
    /// An IPv4 UE address as the packets' source (S/D = 0: an uplink PDI).
    pub fn source_v4(addr: Ipv4Addr) -> Self {
        UeIpAddress {
            ipv4: Some(addr),
            ..Default::default()
        }
    }

    /// An IPv4 UE address as the packets' destination (S/D = 1: a downlink
    /// PDI).
    pub fn destination_v4(addr: Ipv4Addr) -> Self {
        UeIpAddress {
            is_destination: true,
            ipv4: Some(addr),
            ..Default::default()
        }
    }
}

impl IeCodec for UeIpAddress {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let f = r.u8()?;
        let ipv4 = if f & 0x02 != 0 { Some(r.ipv4()?) } else { None };
        let ipv6 = if f & 0x01 != 0 { Some(r.ipv6()?) } else { None };
        let ipv6_prefix_delegation_bits = if f & 0x08 != 0 { Some(r.u8()?) } else { None };
        let ipv6_prefix_length = if f & 0x40 != 0 { Some(r.u8()?) } else { None };
        Ok(UeIpAddress {
            is_destination: f & 0x04 != 0,
            ipv4,
            ipv6,
            ipv6_prefix_delegation_bits,
            ipv6_prefix_length,
            choose_v4: f & 0x10 != 0,
            choose_v6: f & 0x20 != 0,
        })
    }
    fn value_len(&self) -> usize {
        1 + self.ipv4.map_or(0, |_| 4)
            + self.ipv6.map_or(0, |_| 16)
            + self.ipv6_prefix_delegation_bits.map_or(0, |_| 1)
            + self.ipv6_prefix_length.map_or(0, |_| 1)
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8(u8::from(self.ipv6.is_some())
            | u8::from(self.ipv4.is_some()) << 1
            | u8::from(self.is_destination) << 2
            | u8::from(self.ipv6_prefix_delegation_bits.is_some()) << 3
            | u8::from(self.choose_v4) << 4
            | u8::from(self.choose_v6) << 5
            | u8::from(self.ipv6_prefix_length.is_some()) << 6);
        if let Some(a) = &self.ipv4 {
            w.ipv4(a);
        }
        if let Some(a) = &self.ipv6 {
            w.ipv6(a);
        }
        if let Some(b) = self.ipv6_prefix_delegation_bits {
            w.u8(b);
        }
        if let Some(b) = self.ipv6_prefix_length {
            w.u8(b);
        }
    }
}

/// SDF Filter (type 23), §8.2.5.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SdfFilter {
    /// Flow Description (flag FD): an IPFilterRule (RFC 6733), e.g.
    /// `permit out ip from 10.0.0.0/8 to assigned`.
    pub flow_description: Option<String>,
    /// ToS Traffic Class and mask, octet pair (flag TTC).
    pub tos_traffic_class: Option<u16>,
    /// Security Parameter Index (flag SPI).
    pub security_parameter_index: Option<u32>,
    /// Flow Label, 20 bits in 3 octets (flag FL).
    pub flow_label: Option<u32>,
    /// SDF Filter ID (flag BID).
    pub sdf_filter_id: Option<u32>,
}

impl SdfFilter {
    /// A filter with only a flow description.
    pub fn flow(desc: &str) -> Self {
        SdfFilter {
            flow_description: Some(desc.to_owned()),
            ..Default::default()
        }
    }
}

impl IeCodec for SdfFilter {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let f = r.u8()?;
        let _spare = r.u8()?;
        let flow_description = if f & 0x01 != 0 {
            let n = usize::from(r.u16()?);
            let b = r.take(n)?;
            Some(
                std::str::from_utf8(b)
                    .map_err(|_| PfcpError::invalid(ty, "flow description is not text"))?
                    .to_owned(),
            )
        } else {
            None
        };
        let tos_traffic_class = if f & 0x02 != 0 { Some(r.u16()?) } else { None };
        let security_parameter_index = if f & 0x04 != 0 { Some(r.u32()?) } else { None };
        let flow_label = if f & 0x08 != 0 { Some(r.u24()?) } else { None };
        let sdf_filter_id = if f & 0x10 != 0 { Some(r.u32()?) } else { None };
        Ok(SdfFilter {
            flow_description,
            tos_traffic_class,
            security_parameter_index,
            flow_label,
            sdf_filter_id,
        })
    }
    fn value_len(&self) -> usize {
        2 + self.flow_description.as_ref().map_or(0, |d| 2 + d.len())
            + self.tos_traffic_class.map_or(0, |_| 2)
            + self.security_parameter_index.map_or(0, |_| 4)
            + self.flow_label.map_or(0, |_| 3)
            + self.sdf_filter_id.map_or(0, |_| 4)
    }
    fn encode(&self, ty: u16, w: &mut Writer<'_>) {
        w.u8(u8::from(self.flow_description.is_some())
            | u8::from(self.tos_traffic_class.is_some()) << 1
            | u8::from(self.security_parameter_index.is_some()) << 2
            | u8::from(self.flow_label.is_some()) << 3
            | u8::from(self.sdf_filter_id.is_some()) << 4);
        w.u8(0);
        if let Some(d) = &self.flow_description {
            match u16::try_from(d.len()) {
                Ok(n) => w.u16(n),
                Err(_) => w.fail(ty, "flow description too long"),
            }
            w.bytes(d.as_bytes());
        }
        if let Some(x) = self.tos_traffic_class {
            w.u16(x);
        }
        if let Some(x) = self.security_parameter_index {
            w.u32(x);
        }
        if let Some(x) = self.flow_label {
            w.u24(x & 0x00ff_ffff);
        }
        if let Some(x) = self.sdf_filter_id {
            w.u32(x);
        }
    }
}
