//! IEs naming nodes and sessions and answering requests (TS 29.244 §8.2):
//! Cause, Node ID (with its FQDN), F-SEID, UP/CP Function Features and
//! Failed Rule ID. Octet 5 is the first octet of the value.

use crate::pfcp::codec::{enum_codec, enum_with_unknown, octets_codec, IeCodec, Reader, Writer};
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

enum_codec!(Cause, 0xff);

/// A domain name, label-encoded on the wire (RFC 1035 §3.1, as TS 29.244 asks
/// for the FQDN of a Node ID) and kept here in dotted form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Fqdn(pub String);

impl Fqdn {
    /// Decodes labels; a value that is not a valid label sequence but is
    /// printable text (some peers send the name as plain text) is taken as is.
    pub(super) fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
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

octets_codec!(FunctionFeatures);

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

impl FailedRuleId {
    /// Rule ID Type (octet 5, bits 1-5).
    fn rule_type(&self) -> u8 {
        match self {
            FailedRuleId::Pdr(_) => 0,
            FailedRuleId::Far(_) => 1,
            FailedRuleId::Qer(_) => 2,
            FailedRuleId::Urr(_) => 3,
            FailedRuleId::Bar(_) => 4,
        }
    }
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
        w.u8(self.rule_type());
        match *self {
            FailedRuleId::Pdr(x) => w.u16(x),
            FailedRuleId::Far(x) | FailedRuleId::Qer(x) | FailedRuleId::Urr(x) => w.u32(x),
            FailedRuleId::Bar(x) => w.u8(x),
        }
    }
}
