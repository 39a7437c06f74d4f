//! GTP-U as the UPF's data path uses it, on top of `wire::gtpu`: decap of
//! a received packet into (message type, TEID, QFI, payload sub-slice),
//! encap in place in front of a payload already in the caller's buffer, and
//! the small control messages (Echo Response, Error Indication, End
//! Marker). Nothing here allocates on the G-PDU path.

use std::net::{IpAddr, Ipv4Addr};

use wire::gtpu::{self, GpduHeader, Message, MessageType, PduSessionInfo, Repr};

pub use wire::gtpu::GtpuError as GtpError;

/// GTP-U UDP port.
pub const PORT: u16 = gtpu::PORT;
/// Headroom to leave in front of a payload for [`encap_in_place`] (a G-PDU
/// header with a DL PDU Session Container carrying only a QFI).
pub const HEADROOM: usize = 16;

/// Echo Request.
pub const ECHO_REQUEST: u8 = 1;
/// Echo Response.
pub const ECHO_RESPONSE: u8 = 2;
/// Error Indication.
pub const ERROR_INDICATION: u8 = 26;
/// End Marker.
pub const END_MARKER: u8 = 254;
/// G-PDU.
pub const G_PDU: u8 = 255;

/// A parsed GTP-U packet, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapped<'a> {
    /// Message type.
    pub msg_type: u8,
    /// TEID.
    pub teid: u32,
    /// Sequence number, when the S flag is set.
    pub seq: Option<u16>,
    /// QFI from a PDU Session Container.
    pub qfi: Option<u8>,
    /// Offset of the payload in the buffer.
    pub payload_offset: usize,
    /// The payload (T-PDU for a G-PDU, IEs otherwise).
    pub payload: &'a [u8],
}

/// Parse the GTP-U header and extension headers of `buf`.
pub fn decap(buf: &[u8]) -> Result<Decapped<'_>, GtpError> {
    let d = gtpu::decap(buf)?;
    Ok(Decapped {
        msg_type: u8::from(d.message_type),
        teid: d.teid,
        seq: d.seq,
        qfi: d.qfi(),
        payload_offset: d.payload_offset,
        payload: d.payload,
    })
}

/// Header length [`encap_in_place`] writes.
pub fn header_len(qfi: Option<u8>) -> usize {
    header(0, qfi).header_len()
}

fn header(teid: u32, qfi: Option<u8>) -> GpduHeader {
    match qfi {
        Some(q) => GpduHeader::dl(teid, q),
        None => GpduHeader::new(teid),
    }
}

/// Write a G-PDU header (with a DL PDU Session Container when `qfi` is
/// given) in front of `buf[start..end]`, which holds the payload. Returns the
/// start of the packet, or `None` when the headroom (`start`) is too small or
/// the payload too long.
pub fn encap_in_place(
    buf: &mut [u8],
    start: usize,
    end: usize,
    teid: u32,
    qfi: Option<u8>,
) -> Option<usize> {
    let h = header(teid, qfi);
    let hl = h.header_len();
    gtpu::encap_in_place(buf, start, end.checked_sub(start)?, &h).ok()?;
    Some(start - hl)
}

fn emit(r: &Repr, out: &mut [u8]) -> usize {
    // The messages built here are at most 24 bytes and callers pass >= 32.
    r.emit(out).unwrap_or(0)
}

/// Echo Response to a request with `seq`, with the Recovery IE (value 0,
/// TS 29.281 §7.2.2). Returns the length written into `out` (32+ bytes).
pub fn echo_response(seq: u16, out: &mut [u8]) -> usize {
    emit(&Repr::echo_response(seq), out)
}

/// Error Indication for `teid` received at our `local` address (the GTP-U
/// Peer Address IE, TS 29.281 §7.3.1). `out` >= 32 bytes.
pub fn error_indication(teid: u32, local: Ipv4Addr, out: &mut [u8]) -> usize {
    emit(&Repr::error_indication(teid, IpAddr::V4(local)), out)
}

/// End Marker towards `teid`. `out` >= 32 bytes.
pub fn end_marker(teid: u32, out: &mut [u8]) -> usize {
    emit(&Repr::end_marker(teid), out)
}

/// Parse an Error Indication (whole message): (TEID Data I, peer address).
pub fn parse_error_indication(pkt: &[u8]) -> Option<(u32, Ipv4Addr)> {
    match Repr::parse_bytes(pkt).ok()?.message {
        Message::ErrorIndication {
            teid_data,
            peer: IpAddr::V4(a),
            ..
        } => Some((teid_data, a)),
        _ => None,
    }
}

/// An UL G-PDU (what a gNB sends), for tests and test peers.
pub fn ul_gpdu(teid: u32, qfi: Option<u8>, inner: &[u8]) -> Vec<u8> {
    let h = match qfi {
        Some(q) => GpduHeader {
            pdu_session: Some(PduSessionInfo::ul(q)),
            ..GpduHeader::new(teid)
        },
        None => GpduHeader::new(teid),
    };
    let hl = h.header_len();
    let mut buf = vec![0u8; hl + inner.len()];
    buf[hl..].copy_from_slice(inner);
    // The buffer was sized for exactly this header.
    let _ = gtpu::encap_in_place(&mut buf, hl, inner.len(), &h);
    buf
}

/// The message type of a GTP-U packet as the wire enum.
pub fn message_type(t: u8) -> MessageType {
    MessageType::from(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_then_decap() {
        let mut buf = [0xa5u8; 64];
        buf[HEADROOM..HEADROOM + 4].copy_from_slice(b"abcd");
        let s =
            encap_in_place(&mut buf, HEADROOM, HEADROOM + 4, 0x1234_5678, Some(9)).expect("room");
        assert_eq!(s, 0);
        let d = decap(&buf[s..HEADROOM + 4]).expect("valid");
        assert_eq!(d.msg_type, G_PDU);
        assert_eq!(d.teid, 0x1234_5678);
        assert_eq!(d.qfi, Some(9));
        assert_eq!(d.payload, b"abcd");
        let s = encap_in_place(&mut buf, HEADROOM, HEADROOM + 4, 7, None).expect("room");
        assert_eq!(s, 8);
        let d = decap(&buf[s..HEADROOM + 4]).expect("valid");
        assert_eq!((d.teid, d.qfi, d.payload), (7, None, &b"abcd"[..]));
    }

    #[test]
    fn decap_with_sequence_number_and_ul_container() {
        // flags E|S, seq 0x0102, next ext 0x85, UL PDU session info QFI 5
        let pkt = [
            0x36, 0xff, 0, 10, 0, 0, 0, 1, 0x01, 0x02, 0, 0x85, 1, 0x10, 5, 0, b'x', b'y',
        ];
        assert_eq!(
            decap(&ul_gpdu(1, Some(5), b"xy")).expect("valid").qfi,
            Some(5)
        );
        let d = decap(&pkt).expect("valid");
        assert_eq!(d.seq, Some(0x0102));
        assert_eq!(d.qfi, Some(5));
        assert_eq!(d.payload, b"xy");
    }

    #[test]
    fn decap_rejects_bad_input() {
        assert!(matches!(
            decap(&[0x30, 0xff, 0, 0]),
            Err(GtpError::Truncated { .. })
        ));
        assert!(matches!(
            decap(&[0x50, 0xff, 0, 0, 0, 0, 0, 0]),
            Err(GtpError::BadVersion(_))
        ));
        assert!(matches!(
            decap(&[0x30, 0xff, 0, 9, 0, 0, 0, 0]),
            Err(GtpError::Truncated { .. })
        ));
        // zero-length extension header
        let pkt = [0x34, 0xff, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85, 0, 0, 0, 0];
        assert!(decap(&pkt).is_err());
        // unknown extension with comprehension required
        let pkt = [0x34, 0xff, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0xc3, 1, 0, 0, 0];
        assert_eq!(decap(&pkt), Err(GtpError::UnknownRequiredExtension(0xc3)));
        // unknown optional extension is skipped
        let pkt = [
            0x34, 0xff, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0x03, 1, 0, 0, 0, b'z',
        ];
        assert_eq!(decap(&pkt).expect("skipped").payload, b"z");
    }

    #[test]
    fn control_messages() {
        let mut b = [0u8; 32];
        let n = echo_response(0x0a0b, &mut b);
        let d = decap(&b[..n]).expect("valid");
        assert_eq!(
            (d.msg_type, d.seq, d.payload),
            (ECHO_RESPONSE, Some(0x0a0b), &[14u8, 0][..])
        );
        let n = error_indication(0xdead_beef, [10, 0, 0, 1].into(), &mut b);
        let d = decap(&b[..n]).expect("valid");
        assert_eq!(d.msg_type, ERROR_INDICATION);
        assert_eq!(
            parse_error_indication(&b[..n]),
            Some((0xdead_beef, [10, 0, 0, 1].into()))
        );
        let n = end_marker(42, &mut b);
        let d = decap(&b[..n]).expect("valid");
        assert_eq!((d.msg_type, d.teid, d.payload.len()), (END_MARKER, 42, 0));
    }
}
