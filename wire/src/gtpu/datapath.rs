//! The G-PDU data path: encapsulation in place and zero-copy decapsulation.
//!
//! Nothing here allocates. The UPF (downlink) and the gNB (uplink) receive
//! or build the inner packet at offset `headroom` of a buffer, call
//! [`encap_in_place`] and send the returned slice; on receive they call
//! [`decap`] and forward [`Decapped::payload`].

use super::{
    ExtensionHeaderType, GtpuError, MessageType, Packet, PduSessionInfo, Result, HEADER_LEN,
    HEADER_LEN_WITH_OPTIONAL, MAX_GPDU_HEADER_LEN,
};

/// The header of a G-PDU as the data path writes it: TEID, optional sequence
/// and N-PDU numbers, and at most one extension header, the PDU Session
/// Container. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GpduHeader {
    /// TEID of the receiving tunnel endpoint.
    pub teid: u32,
    /// Sequence number (sets S).
    pub seq: Option<u16>,
    /// N-PDU number (sets PN).
    pub npdu: Option<u8>,
    /// PDU Session Container (sets E).
    pub pdu_session: Option<PduSessionInfo>,
}

impl GpduHeader {
    /// A header with just a TEID (8 octets).
    #[inline]
    pub const fn new(teid: u32) -> Self {
        GpduHeader {
            teid,
            seq: None,
            npdu: None,
            pdu_session: None,
        }
    }

    /// A header with a DL PDU Session Container carrying `qfi` (16 octets),
    /// as the UPF sends on N3.
    #[inline]
    pub const fn dl(teid: u32, qfi: u8) -> Self {
        GpduHeader {
            teid,
            seq: None,
            npdu: None,
            pdu_session: Some(PduSessionInfo::dl(qfi)),
        }
    }

    /// A header with an UL PDU Session Container carrying `qfi` (16 octets),
    /// as the gNB sends on N3.
    #[inline]
    pub const fn ul(teid: u32, qfi: u8) -> Self {
        GpduHeader {
            teid,
            seq: None,
            npdu: None,
            pdu_session: Some(PduSessionInfo::ul(qfi)),
        }
    }

    /// The header length: 8, 12 with any optional field, plus the container.
    /// Never more than [`MAX_GPDU_HEADER_LEN`].
    #[inline]
    pub fn header_len(&self) -> usize {
        match &self.pdu_session {
            Some(info) => HEADER_LEN_WITH_OPTIONAL + info.ext_len(),
            None if self.seq.is_some() || self.npdu.is_some() => HEADER_LEN_WITH_OPTIONAL,
            None => HEADER_LEN,
        }
    }

    /// Writes the header for a T-PDU of `payload_len` octets into
    /// `buf[..self.header_len()]`; returns the header length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8], payload_len: usize) -> Result<usize> {
        self.emit_with_len(buf, self.header_len(), payload_len)
    }

    /// [`GpduHeader::emit`] with `hlen == self.header_len()` already known.
    #[inline]
    fn emit_with_len(&self, buf: &mut [u8], hlen: usize, payload_len: usize) -> Result<usize> {
        let have = buf.len();
        let Some(out) = buf.get_mut(..hlen) else {
            return Err(GtpuError::BufferTooSmall { need: hlen, have });
        };
        let after = hlen - HEADER_LEN + payload_len;
        let length = u16::try_from(after).map_err(|_| GtpuError::TooLong(after))?;
        let mut packet = Packet::new_unchecked(&mut *out);
        packet.set_flags(
            self.pdu_session.is_some(),
            self.seq.is_some(),
            self.npdu.is_some(),
        );
        packet.set_message_type(MessageType::GPdu);
        packet.set_length(length);
        packet.set_teid(self.teid);
        if hlen > HEADER_LEN {
            packet.set_seq_number(self.seq.unwrap_or(0));
            packet.set_npdu_number(self.npdu.unwrap_or(0));
            match &self.pdu_session {
                Some(info) => {
                    packet.set_next_extension_type(ExtensionHeaderType::PduSessionContainer.into());
                    info.emit(&mut out[HEADER_LEN_WITH_OPTIONAL..], 0)?;
                }
                None => packet.set_next_extension_type(0),
            }
        }
        Ok(hlen)
    }
}

/// Encapsulates in place: the T-PDU is at `buf[headroom..headroom +
/// payload_len]`; the header is written just in front of it, and the whole
/// G-PDU (a sub-slice of `buf`) is returned, ready to send on UDP port 2152.
///
/// `headroom` must be at least `hdr.header_len()` (16 for a container with
/// only a QFI; [`MAX_GPDU_HEADER_LEN`] always suffices). Nothing is copied
/// or allocated.
#[inline]
pub fn encap_in_place<'a>(
    buf: &'a mut [u8],
    headroom: usize,
    payload_len: usize,
    hdr: &GpduHeader,
) -> Result<&'a mut [u8]> {
    let end = headroom.saturating_add(payload_len);
    if buf.len() < end {
        return Err(GtpuError::BufferTooSmall {
            need: end,
            have: buf.len(),
        });
    }
    let hlen = hdr.header_len();
    debug_assert!(hlen <= MAX_GPDU_HEADER_LEN);
    let Some(start) = headroom.checked_sub(hlen) else {
        return Err(GtpuError::BufferTooSmall {
            need: hlen,
            have: headroom,
        });
    };
    hdr.emit_with_len(&mut buf[start..headroom], hlen, payload_len)?;
    Ok(&mut buf[start..end])
}

/// What [`decap`] found in a GTP-U packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapped<'a> {
    /// The message type; the data path forwards only
    /// [`MessageType::GPdu`] and hands the others to the control side.
    pub message_type: MessageType,
    /// TEID.
    pub teid: u32,
    /// Sequence number, if S is set.
    pub seq: Option<u16>,
    /// N-PDU number, if PN is set.
    pub npdu: Option<u8>,
    /// The first PDU Session Container of PDU type DL or UL, if any.
    pub pdu_session: Option<PduSessionInfo>,
    /// Offset of the payload in the input buffer.
    pub payload_offset: usize,
    /// The T-PDU (or the IEs of a non-G-PDU message), borrowed from the
    /// input: `&buf[payload_offset..8 + length]`.
    pub payload: &'a [u8],
}

impl Decapped<'_> {
    /// The QFI from the PDU Session Container, if there is one.
    #[inline]
    pub fn qfi(&self) -> Option<u8> {
        self.pdu_session.as_ref().map(PduSessionInfo::qfi)
    }

    /// The G-PDU header that encapsulates the payload again as it came:
    /// the same TEID, sequence number, N-PDU number and PDU Session
    /// Container (other extension headers are not kept).
    pub fn header(&self) -> GpduHeader {
        GpduHeader {
            teid: self.teid,
            seq: self.seq,
            npdu: self.npdu,
            pdu_session: self.pdu_session,
        }
    }
}

/// Decapsulates a GTP-U packet (a UDP payload) without copying: validates
/// the header and the extension header chain in one pass, decodes the PDU
/// Session Container, skips other known or not-required extension headers,
/// and fails with [`GtpuError::UnknownRequiredExtension`] on an unknown one
/// whose comprehension is required.
#[inline]
pub fn decap(buf: &[u8]) -> Result<Decapped<'_>> {
    if buf.len() < HEADER_LEN {
        return Err(GtpuError::Truncated {
            need: HEADER_LEN,
            have: buf.len(),
        });
    }
    let packet = Packet::new_unchecked(buf);
    if packet.version() != 1 {
        return Err(GtpuError::BadVersion(packet.version()));
    }
    if !packet.protocol_type() {
        return Err(GtpuError::BadProtocolType);
    }
    let total = packet.total_len();
    if buf.len() < total {
        return Err(GtpuError::Truncated {
            need: total,
            have: buf.len(),
        });
    }
    let mut payload_offset = HEADER_LEN;
    let mut pdu_session = None;
    if packet.has_optional_fields() {
        if total < HEADER_LEN_WITH_OPTIONAL {
            return Err(GtpuError::LengthMismatch {
                length: packet.length(),
                need: HEADER_LEN_WITH_OPTIONAL - HEADER_LEN,
            });
        }
        let mut exts = packet.extension_headers();
        for ext in &mut exts {
            let ext = ext?;
            match ext.ext_type() {
                ExtensionHeaderType::PduSessionContainer if pdu_session.is_none() => {
                    pdu_session = PduSessionInfo::parse(ext.content)?;
                }
                ExtensionHeaderType::Unknown(t) if t & 0x80 != 0 => {
                    return Err(GtpuError::UnknownRequiredExtension(t));
                }
                _ => {}
            }
        }
        payload_offset = exts.offset();
    }
    let payload = buf
        .get(payload_offset..total)
        .ok_or(GtpuError::LengthMismatch {
            length: packet.length(),
            need: payload_offset - HEADER_LEN,
        })?;
    Ok(Decapped {
        message_type: packet.message_type(),
        teid: packet.teid(),
        seq: packet.seq_number(),
        npdu: packet.npdu_number(),
        pdu_session,
        payload_offset,
        payload,
    })
}
