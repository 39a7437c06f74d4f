//! The inner IPv4 header fields the UPF matches on.

use std::net::Ipv4Addr;

/// Addresses, protocol and (for TCP/UDP/SCTP, first fragments) ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiveTuple {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub protocol: u8,
    /// Source port, when the packet carries one.
    pub src_port: Option<u16>,
    /// Destination port, when the packet carries one.
    pub dst_port: Option<u16>,
}

impl FiveTuple {
    /// Parse an IPv4 packet's header. `None` when it is not a well-formed
    /// IPv4 header (IPv6 and garbage included).
    pub fn parse(pkt: &[u8]) -> Option<Self> {
        if pkt.len() < 20 || pkt[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if ihl < 20 || pkt.len() < ihl {
            return None;
        }
        let protocol = pkt[9];
        let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
        let frag_offset = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff;
        let (mut src_port, mut dst_port) = (None, None);
        if frag_offset == 0 && matches!(protocol, 6 | 17 | 132) && pkt.len() >= ihl + 4 {
            src_port = Some(u16::from_be_bytes([pkt[ihl], pkt[ihl + 1]]));
            dst_port = Some(u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]));
        }
        Some(FiveTuple {
            src,
            dst,
            protocol,
            src_port,
            dst_port,
        })
    }
}

/// Build a minimal IPv4/UDP packet (checksums filled in). For tests and the
/// test peers.
pub fn build_udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    // total length fits: callers pass payloads well under 64 KiB.
    let tl = u16::try_from(total).unwrap_or(u16::MAX);
    p[2..4].copy_from_slice(&tl.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    let ul = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    p[24..26].copy_from_slice(&ul.to_be_bytes());
    p[28..].copy_from_slice(payload);
    // UDP checksum 0 = none (allowed for IPv4).
    p
}

/// RFC 1071 Internet checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udp() {
        let p = build_udp([10, 0, 0, 1].into(), 1234, [10, 0, 0, 2].into(), 80, b"hi");
        let t = FiveTuple::parse(&p).expect("ipv4");
        assert_eq!(t.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(t.dst, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(t.protocol, 17);
        assert_eq!(t.src_port, Some(1234));
        assert_eq!(t.dst_port, Some(80));
        assert_eq!(checksum(&p[..20]), 0, "header checksum verifies");
    }

    #[test]
    fn rejects_garbage_and_handles_fragments() {
        assert!(FiveTuple::parse(&[]).is_none());
        assert!(FiveTuple::parse(&[0x60; 40]).is_none());
        assert!(FiveTuple::parse(&[0x4f; 20]).is_none(), "ihl 60 > len");
        let mut p = build_udp([1, 1, 1, 1].into(), 1, [2, 2, 2, 2].into(), 2, b"x");
        p[7] = 1; // fragment offset 1
        let t = FiveTuple::parse(&p).expect("ipv4");
        assert_eq!(t.src_port, None);
    }
}
