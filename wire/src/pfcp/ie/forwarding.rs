//! IEs of forwarding (TS 29.244 §8.2): Apply Action, Outer Header Creation
//! and Outer Header Removal. Octet 5 is the first octet of the value.
//!
//! Apply Action was one octet before Rel-16: the shorter form is accepted and
//! the current one emitted.

use crate::pfcp::codec::{enum_with_unknown, flags, flags_codec, IeCodec, Reader, Writer};
use crate::pfcp::error::PfcpError;
use std::net::{Ipv4Addr, Ipv6Addr};

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

flags_codec!(ApplyAction, u16, 2);

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
