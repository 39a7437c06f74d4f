//! The gNB's per-packet decisions, free of I/O: a tunnel snapshot and a
//! packet in, a verdict out. The threads in [`super`] do the reading,
//! writing, counting and logging the verdict asks for.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use wire::gtpu::{decap, GpduHeader, GtpuError, MessageType};

use crate::tunnels::{Snapshot, Tunnel};

/// What to do with a packet read from the TUN (radio side, uplink).
#[derive(Debug)]
pub enum Uplink<'a> {
    /// Encapsulate with `hdr` and send to `peer`.
    Send {
        /// The session's tunnel (for its counters).
        tunnel: &'a Arc<Tunnel>,
        /// The G-PDU header (UPF TEID, UL container with the QFI).
        hdr: GpduHeader,
        /// The UPF's N3 address.
        peer: SocketAddr,
    },
    /// Shorter than an IPv4 header or not IPv4: drop.
    NotIpv4,
    /// No tunnel for this source address: drop.
    NoSession(Ipv4Addr),
}

/// Decides the uplink of one IP packet.
#[inline]
pub fn uplink<'a>(snap: &'a Snapshot, pkt: &[u8]) -> Uplink<'a> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return Uplink::NotIpv4;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    match snap.by_ue.get(&src) {
        Some(t) => Uplink::Send {
            tunnel: t,
            hdr: GpduHeader::ul(t.ul_teid, t.qfi),
            peer: t.ul_peer,
        },
        None => Uplink::NoSession(src),
    }
}

/// What to do with a datagram received on N3 (downlink).
#[derive(Debug)]
pub enum Downlink<'a> {
    /// Write `datagram[start..end]` (the inner packet) to the TUN.
    ToTun {
        /// The tunnel (for its counters).
        tunnel: &'a Arc<Tunnel>,
        /// Offset of the inner packet in the datagram.
        start: usize,
        /// End of the inner packet.
        end: usize,
    },
    /// Not valid GTP-U; `notify` carries the sequence number when a
    /// Supported Extension Headers Notification is due (an unknown
    /// comprehension-required extension header).
    Malformed {
        /// Why.
        error: GtpuError,
        /// Sequence number for the notification, if one is due.
        notify: Option<u16>,
    },
    /// A G-PDU for a TEID the gNB does not have: drop, Error Indication.
    UnknownTeid(u32),
    /// A G-PDU or End Marker for a known TEID from another address than
    /// the tunnel's UPF: drop.
    WrongPeer {
        /// The TEID.
        teid: u32,
        /// The tunnel's UPF.
        upf: SocketAddr,
        /// An End Marker (else a G-PDU).
        end_marker: bool,
    },
    /// Answer with an Echo Response of this sequence number.
    EchoRequest(u16),
    /// End Marker on a known tunnel from its UPF. When the tunnel is
    /// draining, the control side removes it (never the packet thread).
    EndMarker(&'a Arc<Tunnel>),
    /// End Marker for a TEID the gNB does not have.
    EndMarkerUnknown(u32),
    /// An Error Indication from a peer.
    ErrorIndication,
    /// Another message type: ignored.
    Other,
}

/// Decides the downlink of one GTP-U datagram from `from`.
#[inline]
pub fn downlink<'a>(snap: &'a Snapshot, from: SocketAddr, datagram: &[u8]) -> Downlink<'a> {
    let d = match decap(datagram) {
        Ok(d) => d,
        Err(error) => {
            let notify = matches!(error, GtpuError::UnknownRequiredExtension(_)).then(|| {
                wire::gtpu::Packet::new_unchecked(datagram)
                    .seq_number()
                    .unwrap_or(0)
            });
            return Downlink::Malformed { error, notify };
        }
    };
    let wrong = |t: &Tunnel| t.ul_peer.ip() != from.ip();
    match d.message_type {
        MessageType::GPdu => match snap.by_teid.get(&d.teid) {
            None => Downlink::UnknownTeid(d.teid),
            Some(t) if wrong(t) => Downlink::WrongPeer {
                teid: d.teid,
                upf: t.ul_peer,
                end_marker: false,
            },
            Some(t) => Downlink::ToTun {
                tunnel: t,
                start: d.payload_offset,
                end: d.payload_offset + d.payload.len(),
            },
        },
        MessageType::EchoRequest => Downlink::EchoRequest(d.seq.unwrap_or(0)),
        MessageType::EndMarker => match snap.by_teid.get(&d.teid) {
            None => Downlink::EndMarkerUnknown(d.teid),
            Some(t) if wrong(t) => Downlink::WrongPeer {
                teid: d.teid,
                upf: t.ul_peer,
                end_marker: true,
            },
            Some(t) => Downlink::EndMarker(t),
        },
        MessageType::ErrorIndication => Downlink::ErrorIndication,
        _ => Downlink::Other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::tunnels::TunnelTable;
    use wire::gtpu::{encap_in_place, Repr};

    const UPF: &str = "10.0.2.1:2152";

    fn table() -> (TunnelTable, u32) {
        let t = TunnelTable::new();
        let c = t
            .add(
                "ue1",
                1,
                Ipv4Addr::new(10, 45, 0, 2),
                0x100,
                UPF.parse().unwrap(),
                9,
            )
            .unwrap();
        let teid = c.tunnel.dl_teid;
        (t, teid)
    }

    fn ipv4(src: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&src.octets());
        p
    }

    #[test]
    fn uplink_by_source_address() {
        let (t, _) = table();
        let snap = t.load();
        match uplink(&snap, &ipv4(Ipv4Addr::new(10, 45, 0, 2))) {
            Uplink::Send { hdr, peer, .. } => {
                assert_eq!(hdr, GpduHeader::ul(0x100, 9));
                assert_eq!(peer, UPF.parse().unwrap());
            }
            v => panic!("{v:?}"),
        }
        let other = Ipv4Addr::new(10, 45, 0, 3);
        assert!(matches!(uplink(&snap, &ipv4(other)), Uplink::NoSession(a) if a == other));
        assert!(matches!(uplink(&snap, &[0x60; 40]), Uplink::NotIpv4));
        assert!(matches!(uplink(&snap, &[0x45; 19]), Uplink::NotIpv4));
    }

    fn gpdu(teid: u32, inner: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 16 + inner.len()];
        buf[16..].copy_from_slice(inner);
        encap_in_place(&mut buf, 16, inner.len(), &GpduHeader::dl(teid, 9))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn downlink_verdicts() {
        let (t, teid) = table();
        let snap = t.load();
        let upf: SocketAddr = UPF.parse().unwrap();
        let inner = ipv4(Ipv4Addr::new(10, 60, 0, 1));
        let dg = gpdu(teid, &inner);
        match downlink(&snap, upf, &dg) {
            Downlink::ToTun { start, end, .. } => assert_eq!(&dg[start..end], &inner[..]),
            v => panic!("{v:?}"),
        }
        let stranger: SocketAddr = "10.0.9.9:2152".parse().unwrap();
        assert!(matches!(
            downlink(&snap, stranger, &dg),
            Downlink::WrongPeer {
                end_marker: false,
                ..
            }
        ));
        assert!(matches!(
            downlink(&snap, upf, &gpdu(teid + 1, &inner)),
            Downlink::UnknownTeid(x) if x == teid + 1
        ));
        assert!(matches!(
            downlink(&snap, upf, &[0x30, 0xff]),
            Downlink::Malformed { notify: None, .. }
        ));
        let mut b = [0u8; 64];
        let n = Repr::echo_request(7).emit(&mut b).unwrap();
        assert!(matches!(
            downlink(&snap, upf, &b[..n]),
            Downlink::EchoRequest(7)
        ));
        let n = Repr::end_marker(teid).emit(&mut b).unwrap();
        assert!(matches!(
            downlink(&snap, upf, &b[..n]),
            Downlink::EndMarker(_)
        ));
        assert!(matches!(
            downlink(&snap, stranger, &b[..n]),
            Downlink::WrongPeer {
                end_marker: true,
                ..
            }
        ));
        let n = Repr::end_marker(teid + 1).emit(&mut b).unwrap();
        assert!(matches!(
            downlink(&snap, upf, &b[..n]),
            Downlink::EndMarkerUnknown(_)
        ));
    }
}
