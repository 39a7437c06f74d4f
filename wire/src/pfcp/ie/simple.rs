//! Leaf IEs (TS 29.244 §8.2). Octet numbers in comments follow the spec:
//! octet 5 is the first octet of the value.
//!
//! Where an older release defines a shorter IE (Apply Action was one octet
//! before Rel-16, Reporting Triggers and Usage Report Trigger two), the
//! shorter form is accepted and the current one emitted. Octets beyond the
//! ones this implementation knows are ignored.

use crate::pfcp::codec::{enum_with_unknown, flags, IeCodec, Reader, Writer};
use crate::pfcp::error::PfcpError;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

enum_with_unknown! {
    /// Cause (type 19), Table 8.2.1-1.
    pub enum Cause(u8) {
        RequestAccepted = 1,
        MoreUsageReportToSend = 2,
        RequestPartiallyAccepted = 3,
        RequestRejected = 64,
        SessionContextNotFound = 65,
        MandatoryIeMissing = 66,
        ConditionalIeMissing = 67,
        InvalidLength = 68,
        MandatoryIeIncorrect = 69,
        InvalidForwardingPolicy = 70,
        InvalidFTeidAllocationOption = 71,
        NoEstablishedPfcpAssociation = 72,
        RuleCreationModificationFailure = 73,
        PfcpEntityInCongestion = 74,
        NoResourcesAvailable = 75,
        ServiceNotSupported = 76,
        SystemFailure = 77,
        RedirectionRequested = 78,
        AllDynamicAddressesAreOccupied = 79,
    }
}

impl Cause {
    /// Values 1..=63 are acceptance causes.
    pub fn is_accepted(self) -> bool {
        matches!(u8::from(self), 1..=63)
    }
}

impl IeCodec for Cause {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        Ok(Cause::from(Reader::new(ty, v).u8()?))
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8((*self).into());
    }
}

/// A domain name, label-encoded on the wire (RFC 1035 §3.1, as TS 29.244 asks
/// for the FQDN of a Node ID) and kept here in dotted form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Fqdn(pub String);

impl Fqdn {
    /// Decodes labels; a value that is not a valid label sequence but is
    /// printable text (some peers send the name as plain text) is taken as is.
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        if v.is_empty() {
            return Err(PfcpError::short(ty));
        }
        let mut labels: Vec<&str> = Vec::new();
        let mut rest = v;
        let mut ok = true;
        while let Some((&n, tail)) = rest.split_first() {
            let n = usize::from(n);
            let label = match tail.get(..n) {
                Some(l) if (1..=63).contains(&n) => l,
                // A trailing root label (0) ends the name.
                _ if n == 0 && tail.is_empty() => break,
                _ => {
                    ok = false;
                    break;
                }
            };
            match std::str::from_utf8(label) {
                Ok(s) if s.is_ascii() && !s.contains('.') => labels.push(s),
                _ => {
                    ok = false;
                    break;
                }
            }
            rest = &tail[n..];
        }
        if ok && !labels.is_empty() {
            return Ok(Fqdn(labels.join(".")));
        }
        match std::str::from_utf8(v) {
            Ok(s) if s.bytes().all(|b| b.is_ascii_graphic()) && Fqdn::valid(s) => {
                Ok(Fqdn(s.to_owned()))
            }
            _ => Err(PfcpError::invalid(ty, "FQDN is neither labels nor text")),
        }
    }

    fn valid(s: &str) -> bool {
        s.is_ascii() && !s.is_empty() && s.split('.').all(|l| (1..=63).contains(&l.len()))
    }

    fn wire_len(&self) -> usize {
        self.0.len() + 1
    }

    fn encode(&self, ty: u16, w: &mut Writer<'_>) {
        if !Fqdn::valid(&self.0) {
            w.fail(ty, "FQDN labels must be 1..=63 ASCII octets");
        }
        for label in self.0.split('.') {
            w.u8(label.len() as u8);
            w.bytes(label.as_bytes());
        }
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Node ID (type 60), §8.2.38.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeId {
    /// Type 0.
    Ipv4(Ipv4Addr),
    /// Type 1.
    Ipv6(Ipv6Addr),
    /// Type 2.
    Fqdn(Fqdn),
}

impl Default for NodeId {
    fn default() -> Self {
        NodeId::Ipv4(Ipv4Addr::UNSPECIFIED)
    }
}

impl NodeId {
    /// An FQDN node ID from dotted text.
    pub fn fqdn(name: &str) -> Self {
        NodeId::Fqdn(Fqdn(name.to_owned()))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Ipv4(a) => a.fmt(f),
            NodeId::Ipv6(a) => a.fmt(f),
            NodeId::Fqdn(n) => n.fmt(f),
        }
    }
}

impl IeCodec for NodeId {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        match r.u8()? & 0x0f {
            0 => Ok(NodeId::Ipv4(r.ipv4()?)),
            1 => Ok(NodeId::Ipv6(r.ipv6()?)),
            2 => Ok(NodeId::Fqdn(Fqdn::decode(ty, r.rest())?)),
            _ => Err(PfcpError::invalid(ty, "unknown Node ID type")),
        }
    }
    fn value_len(&self) -> usize {
        1 + match self {
            NodeId::Ipv4(_) => 4,
            NodeId::Ipv6(_) => 16,
            NodeId::Fqdn(n) => n.wire_len(),
        }
    }
    fn encode(&self, ty: u16, w: &mut Writer<'_>) {
        match self {
            NodeId::Ipv4(a) => {
                w.u8(0);
                w.ipv4(a);
            }
            NodeId::Ipv6(a) => {
                w.u8(1);
                w.ipv6(a);
            }
            NodeId::Fqdn(n) => {
                w.u8(2);
                n.encode(ty, w);
            }
        }
    }
}

/// F-SEID (type 57), §8.2.37: a SEID and the address(es) of its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FSeid {
    /// The SEID.
    pub seid: u64,
    /// IPv4 address (flag V4).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address (flag V6).
    pub ipv6: Option<Ipv6Addr>,
}

impl FSeid {
    /// A SEID of a node at an IPv4 address.
    pub fn ipv4(seid: u64, addr: Ipv4Addr) -> Self {
        FSeid {
            seid,
            ipv4: Some(addr),
            ipv6: None,
        }
    }
}

impl IeCodec for FSeid {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let flags = r.u8()?;
        let seid = r.u64()?;
        let ipv4 = if flags & 0x02 != 0 {
            Some(r.ipv4()?)
        } else {
            None
        };
        let ipv6 = if flags & 0x01 != 0 {
            Some(r.ipv6()?)
        } else {
            None
        };
        Ok(FSeid { seid, ipv4, ipv6 })
    }
    fn value_len(&self) -> usize {
        9 + self.ipv4.map_or(0, |_| 4) + self.ipv6.map_or(0, |_| 16)
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8(u8::from(self.ipv4.is_some()) << 1 | u8::from(self.ipv6.is_some()));
        w.u64(self.seid);
        if let Some(a) = &self.ipv4 {
            w.ipv4(a);
        }
        if let Some(a) = &self.ipv6 {
            w.ipv6(a);
        }
    }
}

/// UP Function Features (type 43, §8.2.25) or CP Function Features (type 89,
/// §8.2.58): a bitmap of any length, octet 5 first. Use the constants of
/// [`up_features`] / [`cp_features`] with [`FunctionFeatures::has`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FunctionFeatures(pub Vec<u8>);

/// A feature bit: (index of the octet counted from octet 5, bit mask).
pub type Feature = (usize, u8);

/// UP Function Features bits (§8.2.25).
pub mod up_features {
    #![allow(missing_docs)]
    use super::Feature;
    pub const BUCP: Feature = (0, 0x01);
    pub const DDND: Feature = (0, 0x02);
    pub const DLBD: Feature = (0, 0x04);
    pub const TRST: Feature = (0, 0x08);
    /// F-TEID allocation / release in the UP function (CHOOSE).
    pub const FTUP: Feature = (0, 0x10);
    pub const PFDM: Feature = (0, 0x20);
    pub const HEEU: Feature = (0, 0x40);
    pub const TREU: Feature = (0, 0x80);
    pub const EMPU: Feature = (1, 0x01);
    pub const PDIU: Feature = (1, 0x02);
    pub const UDBC: Feature = (1, 0x04);
    pub const QUOAC: Feature = (1, 0x08);
    pub const TRACE: Feature = (1, 0x10);
    pub const FRRT: Feature = (1, 0x20);
    pub const PFDE: Feature = (1, 0x40);
    pub const EPFAR: Feature = (1, 0x80);
}

/// CP Function Features bits (§8.2.58).
pub mod cp_features {
    #![allow(missing_docs)]
    use super::Feature;
    pub const LOAD: Feature = (0, 0x01);
    pub const OVRL: Feature = (0, 0x02);
    pub const EPFAR: Feature = (0, 0x04);
    pub const SSET: Feature = (0, 0x08);
    pub const BUNDL: Feature = (0, 0x10);
    pub const MPAS: Feature = (0, 0x20);
    pub const ARDR: Feature = (0, 0x40);
    pub const UIAUR: Feature = (0, 0x80);
}

impl FunctionFeatures {
    /// A bitmap with the given features set.
    pub fn with(features: &[Feature]) -> Self {
        let mut f = FunctionFeatures::default();
        for &x in features {
            f.set(x);
        }
        f
    }

    /// Whether `f` is set.
    pub fn has(&self, f: Feature) -> bool {
        self.0.get(f.0).is_some_and(|b| b & f.1 != 0)
    }

    /// Sets `f`, growing the bitmap as needed.
    pub fn set(&mut self, f: Feature) {
        if self.0.len() <= f.0 {
            self.0.resize(f.0 + 1, 0);
        }
        self.0[f.0] |= f.1;
    }
}

impl IeCodec for FunctionFeatures {
    fn decode(_: u16, v: &[u8]) -> Result<Self, PfcpError> {
        Ok(FunctionFeatures(v.to_vec()))
    }
    fn value_len(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.bytes(&self.0);
    }
}

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

impl IeCodec for NetworkInstance {
    fn decode(_: u16, v: &[u8]) -> Result<Self, PfcpError> {
        Ok(NetworkInstance(v.to_vec()))
    }
    fn value_len(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.bytes(&self.0);
    }
}

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

macro_rules! nibble_enum_codec {
    ($name:ident, $mask:expr) => {
        impl IeCodec for $name {
            fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
                Ok($name::from(Reader::new(ty, v).u8()? & $mask))
            }
            fn value_len(&self) -> usize {
                1
            }
            fn encode(&self, _: u16, w: &mut Writer<'_>) {
                w.u8(u8::from(*self) & $mask);
            }
        }
    };
}

nibble_enum_codec!(SourceInterface, 0x0f);
nibble_enum_codec!(DestinationInterface, 0x0f);

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

nibble_enum_codec!(InterfaceType, 0x3f);

/// QFI (type 124), §8.2.89: 6 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Qfi(pub u8);

impl IeCodec for Qfi {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        Ok(Qfi(Reader::new(ty, v).u8()? & 0x3f))
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8(self.0 & 0x3f);
    }
}

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

enum_with_unknown! {
    /// Outer Header Removal Description, §8.2.64.
    pub enum OuterHeaderRemovalDescription(u8) {
        GtpuUdpIpv4 = 0,
        GtpuUdpIpv6 = 1,
        UdpIpv4 = 2,
        UdpIpv6 = 3,
        Ipv4 = 4,
        Ipv6 = 5,
        /// GTP-U/UDP/IP: whichever IP version the packet has.
        GtpuUdpIp = 6,
        VlanSTag = 7,
        STagAndCTag = 8,
    }
}

/// Outer Header Removal (type 95), §8.2.64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OuterHeaderRemoval {
    /// Which header to remove.
    pub description: OuterHeaderRemovalDescription,
    /// GTP-U Extension Header Deletion octet (bit 1: PDU Session Container
    /// to be deleted), when present.
    pub gtpu_extension_header_deletion: Option<u8>,
}

impl OuterHeaderRemoval {
    /// Bit of `gtpu_extension_header_deletion`: delete the PDU Session Container.
    pub const DELETE_PDU_SESSION_CONTAINER: u8 = 0x01;

    /// Removal of the `description` header, without the extension header
    /// deletion octet.
    pub fn of(description: OuterHeaderRemovalDescription) -> Self {
        OuterHeaderRemoval {
            description,
            gtpu_extension_header_deletion: None,
        }
    }
}

impl IeCodec for OuterHeaderRemoval {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let description = r.u8()?.into();
        let gtpu_extension_header_deletion = if r.remaining() > 0 {
            Some(r.u8()?)
        } else {
            None
        };
        Ok(OuterHeaderRemoval {
            description,
            gtpu_extension_header_deletion,
        })
    }
    fn value_len(&self) -> usize {
        1 + self.gtpu_extension_header_deletion.map_or(0, |_| 1)
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8(self.description.into());
        if let Some(x) = self.gtpu_extension_header_deletion {
            w.u8(x);
        }
    }
}

flags! {
    /// Apply Action (type 44), §8.2.26: octet 5 in the low byte, octet 6 in
    /// the high byte. Emitted as 2 octets; a 1-octet IE (before Rel-16) is
    /// accepted.
    pub struct ApplyAction(u16) {
        const DROP = 0x0001;
        const FORW = 0x0002;
        const BUFF = 0x0004;
        const NOCP = 0x0008;
        const DUPL = 0x0010;
        const IPMA = 0x0020;
        const IPMD = 0x0040;
        const DFRT = 0x0080;
        const EDRT = 0x0100;
        const BDPN = 0x0200;
        const DDPN = 0x0400;
        const FSSM = 0x0800;
        const MBSU = 0x1000;
    }
}

macro_rules! flags_codec {
    ($name:ident, $repr:ty, $octets:expr) => {
        impl IeCodec for $name {
            fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
                Ok($name(Reader::new(ty, v).flags_le($octets)? as $repr))
            }
            fn value_len(&self) -> usize {
                $octets
            }
            fn encode(&self, _: u16, w: &mut Writer<'_>) {
                w.flags_le(u32::from(self.0), $octets);
            }
        }
    };
}

flags_codec!(ApplyAction, u16, 2);

flags! {
    /// Measurement Method (type 62), §8.2.40.
    pub struct MeasurementMethod(u8) {
        const DURAT = 0x01;
        const VOLUM = 0x02;
        const EVENT = 0x04;
    }
}
flags_codec!(MeasurementMethod, u8, 1);

flags! {
    /// Reporting Triggers (type 37), §8.2.19: octets 5, 6, 7 from the low
    /// byte up. Emitted as 3 octets; 1 or 2 accepted (older releases).
    pub struct ReportingTriggers(u32) {
        const PERIO = 0x00_00_01;
        const VOLTH = 0x00_00_02;
        const TIMTH = 0x00_00_04;
        const QUHTI = 0x00_00_08;
        const START = 0x00_00_10;
        const STOPT = 0x00_00_20;
        const DROTH = 0x00_00_40;
        const LIUSA = 0x00_00_80;
        const VOLQU = 0x00_01_00;
        const TIMQU = 0x00_02_00;
        const ENVCL = 0x00_04_00;
        const MACAR = 0x00_08_00;
        const EVETH = 0x00_10_00;
        const EVEQU = 0x00_20_00;
        const IPMJL = 0x00_40_00;
        const QUVTI = 0x00_80_00;
        const REEMR = 0x01_00_00;
        const UPINT = 0x02_00_00;
    }
}
flags_codec!(ReportingTriggers, u32, 3);

flags! {
    /// Usage Report Trigger (type 63), §8.2.41: octets 5, 6, 7 from the low
    /// byte up. Emitted as 3 octets; 1 or 2 accepted (older releases).
    pub struct UsageReportTrigger(u32) {
        const PERIO = 0x00_00_01;
        const VOLTH = 0x00_00_02;
        const TIMTH = 0x00_00_04;
        const QUHTI = 0x00_00_08;
        const START = 0x00_00_10;
        const STOPT = 0x00_00_20;
        const DROTH = 0x00_00_40;
        const IMMER = 0x00_00_80;
        const VOLQU = 0x00_01_00;
        const TIMQU = 0x00_02_00;
        const LIUSA = 0x00_04_00;
        const TERMR = 0x00_08_00;
        const MONIT = 0x00_10_00;
        const ENVCL = 0x00_20_00;
        const MACAR = 0x00_40_00;
        const EVETH = 0x00_80_00;
        const EVEQU = 0x01_00_00;
        const TEBUR = 0x02_00_00;
        const IPMJL = 0x04_00_00;
        const QUVTI = 0x08_00_00;
        const EMRRE = 0x10_00_00;
        const UPINT = 0x20_00_00;
    }
}
flags_codec!(UsageReportTrigger, u32, 3);

flags! {
    /// Report Type (type 39), §8.2.21.
    pub struct ReportType(u8) {
        /// Downlink Data Report.
        const DLDR = 0x01;
        /// Usage Report.
        const USAR = 0x02;
        /// Error Indication Report.
        const ERIR = 0x04;
        /// User Plane Inactivity Report.
        const UPIR = 0x08;
        const TMIR = 0x10;
        const SESR = 0x20;
        const UISR = 0x40;
    }
}
flags_codec!(ReportType, u8, 1);

/// Outer Header Creation (type 84), §8.2.56.
///
/// `description` holds octet 5 in its high byte and octet 6 in its low byte
/// (see the `OuterHeaderCreation::GTPU_UDP_IPV4`... constants). The optional
/// fields are present on the wire exactly when a description bit asks for
/// them; on emit a field the description asks for but which is `None` is
/// written as zeros, and a field it does not ask for is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OuterHeaderCreation {
    /// Description bits (octets 5-6).
    pub description: u16,
    /// TEID (GTP-U/UDP/IPv4 or GTP-U/UDP/IPv6).
    pub teid: Option<u32>,
    /// IPv4 address (GTP-U/UDP/IPv4, UDP/IPv4 or IPv4).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address (GTP-U/UDP/IPv6, UDP/IPv6 or IPv6).
    pub ipv6: Option<Ipv6Addr>,
    /// UDP port (UDP/IPv4 or UDP/IPv6).
    pub port: Option<u16>,
    /// C-TAG, 3 octets (C-TAG bit).
    pub c_tag: Option<u32>,
    /// S-TAG, 3 octets (S-TAG bit).
    pub s_tag: Option<u32>,
}

impl OuterHeaderCreation {
    /// Octet 5 bit 1.
    pub const GTPU_UDP_IPV4: u16 = 0x0100;
    /// Octet 5 bit 2.
    pub const GTPU_UDP_IPV6: u16 = 0x0200;
    /// Octet 5 bit 3.
    pub const UDP_IPV4: u16 = 0x0400;
    /// Octet 5 bit 4.
    pub const UDP_IPV6: u16 = 0x0800;
    /// Octet 5 bit 5.
    pub const IPV4: u16 = 0x1000;
    /// Octet 5 bit 6.
    pub const IPV6: u16 = 0x2000;
    /// Octet 5 bit 7.
    pub const C_TAG: u16 = 0x4000;
    /// Octet 5 bit 8.
    pub const S_TAG: u16 = 0x8000;
    /// Octet 6 bit 1.
    pub const N19_INDICATION: u16 = 0x0001;
    /// Octet 6 bit 2.
    pub const N6_INDICATION: u16 = 0x0002;

    /// GTP-U/UDP/IPv4 towards `addr` with `teid`.
    pub fn gtpu_ipv4(teid: u32, addr: Ipv4Addr) -> Self {
        OuterHeaderCreation {
            description: Self::GTPU_UDP_IPV4,
            teid: Some(teid),
            ipv4: Some(addr),
            ..Default::default()
        }
    }

    /// GTP-U/UDP/IPv6 towards `addr` with `teid`.
    pub fn gtpu_ipv6(teid: u32, addr: Ipv6Addr) -> Self {
        OuterHeaderCreation {
            description: Self::GTPU_UDP_IPV6,
            teid: Some(teid),
            ipv6: Some(addr),
            ..Default::default()
        }
    }

    fn has(&self, bits: u16) -> bool {
        self.description & bits != 0
    }

    fn wants_teid(&self) -> bool {
        self.has(Self::GTPU_UDP_IPV4 | Self::GTPU_UDP_IPV6)
    }
    fn wants_ipv4(&self) -> bool {
        self.has(Self::GTPU_UDP_IPV4 | Self::UDP_IPV4 | Self::IPV4)
    }
    fn wants_ipv6(&self) -> bool {
        self.has(Self::GTPU_UDP_IPV6 | Self::UDP_IPV6 | Self::IPV6)
    }
    fn wants_port(&self) -> bool {
        self.has(Self::UDP_IPV4 | Self::UDP_IPV6)
    }
}

impl IeCodec for OuterHeaderCreation {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let mut o = OuterHeaderCreation {
            description: r.u16()?,
            ..Default::default()
        };
        if o.wants_teid() {
            o.teid = Some(r.u32()?);
        }
        if o.wants_ipv4() {
            o.ipv4 = Some(r.ipv4()?);
        }
        if o.wants_ipv6() {
            o.ipv6 = Some(r.ipv6()?);
        }
        if o.wants_port() {
            o.port = Some(r.u16()?);
        }
        if o.has(Self::C_TAG) {
            o.c_tag = Some(r.u24()?);
        }
        if o.has(Self::S_TAG) {
            o.s_tag = Some(r.u24()?);
        }
        Ok(o)
    }
    fn value_len(&self) -> usize {
        2 + if self.wants_teid() { 4 } else { 0 }
            + if self.wants_ipv4() { 4 } else { 0 }
            + if self.wants_ipv6() { 16 } else { 0 }
            + if self.wants_port() { 2 } else { 0 }
            + if self.has(Self::C_TAG) { 3 } else { 0 }
            + if self.has(Self::S_TAG) { 3 } else { 0 }
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u16(self.description);
        if self.wants_teid() {
            w.u32(self.teid.unwrap_or(0));
        }
        if self.wants_ipv4() {
            w.ipv4(&self.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED));
        }
        if self.wants_ipv6() {
            w.ipv6(&self.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED));
        }
        if self.wants_port() {
            w.u16(self.port.unwrap_or(0));
        }
        if self.has(Self::C_TAG) {
            w.u24(self.c_tag.unwrap_or(0) & 0x00ff_ffff);
        }
        if self.has(Self::S_TAG) {
            w.u24(self.s_tag.unwrap_or(0) & 0x00ff_ffff);
        }
    }
}

enum_with_unknown! {
    /// One gate of Gate Status, §8.2.7 (2 bits).
    pub enum Gate(u8) {
        Open = 0,
        Closed = 1,
    }
}

/// Gate Status (type 25), §8.2.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GateStatus {
    /// Uplink gate (bits 4-3).
    pub ul: Gate,
    /// Downlink gate (bits 2-1).
    pub dl: Gate,
}

impl GateStatus {
    /// Both gates open.
    pub const OPEN: GateStatus = GateStatus {
        ul: Gate::Open,
        dl: Gate::Open,
    };
}

impl IeCodec for GateStatus {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let b = Reader::new(ty, v).u8()?;
        Ok(GateStatus {
            ul: Gate::from((b >> 2) & 0x03),
            dl: Gate::from(b & 0x03),
        })
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8((u8::from(self.ul) & 0x03) << 2 | (u8::from(self.dl) & 0x03));
    }
}

/// MBR (type 26, §8.2.8) or GBR (type 27, §8.2.9): uplink and downlink bit
/// rates in kbit/s, 5 octets each (values above 2^40-1 are truncated on emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BitRate {
    /// Uplink, kbit/s.
    pub ul_kbps: u64,
    /// Downlink, kbit/s.
    pub dl_kbps: u64,
}

impl IeCodec for BitRate {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        Ok(BitRate {
            ul_kbps: r.u40()?,
            dl_kbps: r.u40()?,
        })
    }
    fn value_len(&self) -> usize {
        10
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u40(self.ul_kbps & 0xff_ffff_ffff);
        w.u40(self.dl_kbps & 0xff_ffff_ffff);
    }
}

/// Volume Threshold (type 31, §8.2.13) and Volume Quota (type 73, §8.2.50):
/// octets, each present when its flag (TOVOL, ULVOL, DLVOL) is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Volume {
    /// Total volume (TOVOL).
    pub total: Option<u64>,
    /// Uplink volume (ULVOL).
    pub uplink: Option<u64>,
    /// Downlink volume (DLVOL).
    pub downlink: Option<u64>,
}

impl IeCodec for Volume {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let f = r.u8()?;
        Ok(Volume {
            total: if f & 0x01 != 0 { Some(r.u64()?) } else { None },
            uplink: if f & 0x02 != 0 { Some(r.u64()?) } else { None },
            downlink: if f & 0x04 != 0 { Some(r.u64()?) } else { None },
        })
    }
    fn value_len(&self) -> usize {
        1 + 8
            * (usize::from(self.total.is_some())
                + usize::from(self.uplink.is_some())
                + usize::from(self.downlink.is_some()))
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8(u8::from(self.total.is_some())
            | u8::from(self.uplink.is_some()) << 1
            | u8::from(self.downlink.is_some()) << 2);
        for x in [self.total, self.uplink, self.downlink]
            .into_iter()
            .flatten()
        {
            w.u64(x);
        }
    }
}

/// Volume Measurement (type 66), §8.2.44: octets and packets, each present
/// when its flag is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VolumeMeasurement {
    /// Total volume, octets (TOVOL).
    pub total_volume: Option<u64>,
    /// Uplink volume, octets (ULVOL).
    pub uplink_volume: Option<u64>,
    /// Downlink volume, octets (DLVOL).
    pub downlink_volume: Option<u64>,
    /// Total packets (TONOP).
    pub total_packets: Option<u64>,
    /// Uplink packets (ULNOP).
    pub uplink_packets: Option<u64>,
    /// Downlink packets (DLNOP).
    pub downlink_packets: Option<u64>,
}

impl VolumeMeasurement {
    fn fields(&self) -> [Option<u64>; 6] {
        [
            self.total_volume,
            self.uplink_volume,
            self.downlink_volume,
            self.total_packets,
            self.uplink_packets,
            self.downlink_packets,
        ]
    }
}

impl IeCodec for VolumeMeasurement {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        let f = r.u8()?;
        let mut vals = [None; 6];
        for (i, slot) in vals.iter_mut().enumerate() {
            if f & (1 << i) != 0 {
                *slot = Some(r.u64()?);
            }
        }
        let [total_volume, uplink_volume, downlink_volume, total_packets, uplink_packets, downlink_packets] =
            vals;
        Ok(VolumeMeasurement {
            total_volume,
            uplink_volume,
            downlink_volume,
            total_packets,
            uplink_packets,
            downlink_packets,
        })
    }
    fn value_len(&self) -> usize {
        1 + 8 * self.fields().iter().filter(|x| x.is_some()).count()
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        let fields = self.fields();
        let mut f = 0u8;
        for (i, x) in fields.iter().enumerate() {
            if x.is_some() {
                f |= 1 << i;
            }
        }
        w.u8(f);
        for x in fields.into_iter().flatten() {
            w.u64(x);
        }
    }
}

/// Failed Rule ID (type 114), §8.2.80: the rule that made a request fail
/// (with cause 73, Rule creation/modification Failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailedRuleId {
    /// Rule ID type 0.
    Pdr(u16),
    /// Rule ID type 1.
    Far(u32),
    /// Rule ID type 2.
    Qer(u32),
    /// Rule ID type 3.
    Urr(u32),
    /// Rule ID type 4.
    Bar(u8),
}

impl IeCodec for FailedRuleId {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        Ok(match r.u8()? & 0x1f {
            0 => FailedRuleId::Pdr(r.u16()?),
            1 => FailedRuleId::Far(r.u32()?),
            2 => FailedRuleId::Qer(r.u32()?),
            3 => FailedRuleId::Urr(r.u32()?),
            4 => FailedRuleId::Bar(r.u8()?),
            _ => return Err(PfcpError::invalid(ty, "unknown rule ID type")),
        })
    }
    fn value_len(&self) -> usize {
        1 + match self {
            FailedRuleId::Pdr(_) => 2,
            FailedRuleId::Far(_) | FailedRuleId::Qer(_) | FailedRuleId::Urr(_) => 4,
            FailedRuleId::Bar(_) => 1,
        }
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        match *self {
            FailedRuleId::Pdr(x) => {
                w.u8(0);
                w.u16(x);
            }
            FailedRuleId::Far(x) => {
                w.u8(1);
                w.u32(x);
            }
            FailedRuleId::Qer(x) => {
                w.u8(2);
                w.u32(x);
            }
            FailedRuleId::Urr(x) => {
                w.u8(3);
                w.u32(x);
            }
            FailedRuleId::Bar(x) => {
                w.u8(4);
                w.u8(x);
            }
        }
    }
}
