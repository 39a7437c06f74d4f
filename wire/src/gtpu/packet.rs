//! Zero-copy view of a GTP-U packet (TS 29.281 §5.1, §5.2).

use super::{
    ExtensionHeaderType, GtpuError, MessageType, Result, HEADER_LEN, HEADER_LEN_WITH_OPTIONAL,
    MAX_EXTENSION_HEADERS,
};

/// Field offsets of the GTP-U header.
mod field {
    use core::ops::Range;

    /// Version (3 bits), PT, spare, E, S, PN.
    pub const FLAGS: usize = 0;
    pub const MSG_TYPE: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const TEID: Range<usize> = 4..8;
    /// The optional fields, present when any of E, S, PN is set.
    pub const SEQ: Range<usize> = 8..10;
    pub const NPDU: usize = 10;
    pub const NEXT_EXT: usize = 11;
}

/// Bits of the first octet.
mod flag {
    pub const VERSION_SHIFT: u8 = 5;
    pub const PT: u8 = 0x10;
    pub const E: u8 = 0x04;
    pub const S: u8 = 0x02;
    pub const PN: u8 = 0x01;
}

/// A read/write wrapper around a GTP-U packet buffer.
///
/// Construct it with [`Packet::new_checked`], which validates the mandatory
/// header, the length field, the optional fields and the extension header
/// chain; after that every accessor is panic-free. With
/// [`Packet::new_unchecked`], the fixed-offset getters panic on a buffer
/// shorter than the fields they read (the smoltcp contract); the extension
/// iterator and [`Packet::payload`] never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and validates it with [`Packet::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates the packet: at least 8 bytes, version 1, PT 1, the buffer
    /// holds `8 + length` bytes, the length field covers the optional fields
    /// and the whole extension header chain, no extension header has length
    /// 0, and the chain has at most [`MAX_EXTENSION_HEADERS`] entries.
    /// Bytes after `8 + length` are allowed and ignored.
    #[inline]
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(GtpuError::Truncated {
                need: HEADER_LEN,
                have: data.len(),
            });
        }
        let version = data[field::FLAGS] >> flag::VERSION_SHIFT;
        if version != 1 {
            return Err(GtpuError::BadVersion(version));
        }
        if data[field::FLAGS] & flag::PT == 0 {
            return Err(GtpuError::BadProtocolType);
        }
        let total = self.total_len();
        if data.len() < total {
            return Err(GtpuError::Truncated {
                need: total,
                have: data.len(),
            });
        }
        if self.has_optional_fields() && total < HEADER_LEN_WITH_OPTIONAL {
            return Err(GtpuError::LengthMismatch {
                length: self.length(),
                need: HEADER_LEN_WITH_OPTIONAL - HEADER_LEN,
            });
        }
        let mut exts = self.extension_headers();
        for ext in &mut exts {
            ext?;
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The underlying buffer.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The first octet: version, PT, spare, E, S, PN.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The version field (1 for GTPv1).
    #[inline]
    pub fn version(&self) -> u8 {
        self.flags() >> flag::VERSION_SHIFT
    }

    /// The protocol type bit (true: GTP, false: GTP').
    #[inline]
    pub fn protocol_type(&self) -> bool {
        self.flags() & flag::PT != 0
    }

    /// The E flag: an extension header chain follows the optional fields.
    #[inline]
    pub fn e_flag(&self) -> bool {
        self.flags() & flag::E != 0
    }

    /// The S flag: the sequence number is meaningful.
    #[inline]
    pub fn s_flag(&self) -> bool {
        self.flags() & flag::S != 0
    }

    /// The PN flag: the N-PDU number is meaningful.
    #[inline]
    pub fn pn_flag(&self) -> bool {
        self.flags() & flag::PN != 0
    }

    /// Whether the 4 octets of optional fields are present (any of E, S, PN).
    #[inline]
    pub fn has_optional_fields(&self) -> bool {
        self.flags() & (flag::E | flag::S | flag::PN) != 0
    }

    /// The message type.
    #[inline]
    pub fn message_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::MSG_TYPE])
    }

    /// The length field: octets after the mandatory 8-octet header.
    #[inline]
    pub fn length(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::LENGTH.start], d[field::LENGTH.start + 1]])
    }

    /// `8 + length`: the length of the whole message.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.length())
    }

    /// The tunnel endpoint identifier.
    #[inline]
    pub fn teid(&self) -> u32 {
        let d = self.buffer.as_ref();
        let t = &d[field::TEID];
        u32::from_be_bytes([t[0], t[1], t[2], t[3]])
    }

    /// The sequence number, if the S flag is set.
    #[inline]
    pub fn seq_number(&self) -> Option<u16> {
        if !self.s_flag() {
            return None;
        }
        let d = self.buffer.as_ref();
        Some(u16::from_be_bytes([
            d[field::SEQ.start],
            d[field::SEQ.start + 1],
        ]))
    }

    /// The N-PDU number, if the PN flag is set.
    #[inline]
    pub fn npdu_number(&self) -> Option<u8> {
        if !self.pn_flag() {
            return None;
        }
        Some(self.buffer.as_ref()[field::NPDU])
    }

    /// The type of the first extension header, if the E flag is set
    /// (0 means "no more extension headers").
    #[inline]
    pub fn next_extension_type(&self) -> Option<u8> {
        if !self.e_flag() {
            return None;
        }
        Some(self.buffer.as_ref()[field::NEXT_EXT])
    }

    /// Iterates over the extension header chain. Items are `Err` (and the
    /// iteration ends) on a zero length, a header running past `8 + length`
    /// or the buffer, or more than [`MAX_EXTENSION_HEADERS`] headers.
    #[inline]
    pub fn extension_headers(&self) -> ExtensionHeaders<'_> {
        let d = self.buffer.as_ref();
        let first = if d.len() >= HEADER_LEN_WITH_OPTIONAL && d[field::FLAGS] & flag::E != 0 {
            d[field::NEXT_EXT]
        } else {
            0
        };
        let end = if d.len() >= HEADER_LEN {
            self.total_len().min(d.len())
        } else {
            d.len()
        };
        let length = if d.len() >= HEADER_LEN {
            self.length()
        } else {
            0
        };
        ExtensionHeaders {
            data: &d[..end],
            offset: HEADER_LEN_WITH_OPTIONAL,
            next: first,
            count: 0,
            length,
        }
    }

    /// Length of all headers: mandatory, optional fields and the extension
    /// header chain; the T-PDU or the IEs start here. On a malformed chain
    /// (only possible with `new_unchecked`) this is the end of the message,
    /// so that [`Packet::payload`] is empty.
    #[inline]
    pub fn header_len(&self) -> usize {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return d.len();
        }
        if !self.has_optional_fields() {
            return HEADER_LEN;
        }
        let mut exts = self.extension_headers();
        for ext in &mut exts {
            if ext.is_err() {
                return self.total_len().min(d.len());
            }
        }
        exts.offset.min(self.total_len()).min(d.len())
    }

    /// The message body after all headers, up to `8 + length`: the T-PDU of a
    /// G-PDU, the IEs of the other messages.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        let d = self.buffer.as_ref();
        let end = if d.len() >= HEADER_LEN {
            self.total_len().min(d.len())
        } else {
            d.len()
        };
        d.get(start..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the first octet: version 1, PT 1, spare 0 and the given flags.
    #[inline]
    pub fn set_flags(&mut self, e: bool, s: bool, pn: bool) {
        let mut v = (1 << flag::VERSION_SHIFT) | flag::PT;
        if e {
            v |= flag::E;
        }
        if s {
            v |= flag::S;
        }
        if pn {
            v |= flag::PN;
        }
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the message type.
    #[inline]
    pub fn set_message_type(&mut self, value: MessageType) {
        self.buffer.as_mut()[field::MSG_TYPE] = u8::from(value);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_length(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the TEID.
    #[inline]
    pub fn set_teid(&mut self, value: u32) {
        self.buffer.as_mut()[field::TEID].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the sequence number field (flags are not touched).
    #[inline]
    pub fn set_seq_number(&mut self, value: u16) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the N-PDU number field (flags are not touched).
    #[inline]
    pub fn set_npdu_number(&mut self, value: u8) {
        self.buffer.as_mut()[field::NPDU] = value;
    }

    /// Writes the next extension header type field (flags are not touched).
    #[inline]
    pub fn set_next_extension_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::NEXT_EXT] = value;
    }

    /// The message body after all headers, mutable (see [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = {
            let d = self.buffer.as_ref();
            if d.len() >= HEADER_LEN {
                self.total_len().min(d.len())
            } else {
                d.len()
            }
        };
        self.buffer.as_mut().get_mut(start..end).unwrap_or(&mut [])
    }
}

/// One extension header in a packet: its type and its content (the octets
/// between the length octet and the next-type octet, padding included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionHeaderRef<'a> {
    /// The raw type octet (from the previous header's next-type field).
    pub ty: u8,
    /// Content, `4 * length - 2` octets.
    pub content: &'a [u8],
}

impl ExtensionHeaderRef<'_> {
    /// The type as an enum.
    #[inline]
    pub fn ext_type(&self) -> ExtensionHeaderType {
        ExtensionHeaderType::from(self.ty)
    }

    /// Whether the receiver must understand this header (bit 8 of the type,
    /// TS 29.281 §5.2.1, Table 5.2.1-2).
    #[inline]
    pub fn comprehension_required(&self) -> bool {
        self.ty & 0x80 != 0
    }
}

/// Iterator over an extension header chain; see
/// [`Packet::extension_headers`].
#[derive(Debug, Clone)]
pub struct ExtensionHeaders<'a> {
    /// The message up to `8 + length` (or the buffer end if shorter).
    data: &'a [u8],
    /// Offset of the next extension header.
    offset: usize,
    /// Its type; 0 ends the chain.
    next: u8,
    count: usize,
    /// The length field, for error reports.
    length: u16,
}

impl<'a> Iterator for ExtensionHeaders<'a> {
    type Item = Result<ExtensionHeaderRef<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == 0 {
            return None;
        }
        let ty = self.next;
        // Whatever happens below, the chain ends on error.
        self.next = 0;
        if self.count >= MAX_EXTENSION_HEADERS {
            return Some(Err(GtpuError::TooManyExtensions {
                max: MAX_EXTENSION_HEADERS,
            }));
        }
        self.count += 1;
        let Some(&len_units) = self.data.get(self.offset) else {
            return Some(Err(self.overrun(self.offset + 1)));
        };
        if len_units == 0 {
            return Some(Err(GtpuError::ZeroLengthExtension(ty)));
        }
        let end = self.offset + 4 * usize::from(len_units);
        let Some(ext) = self.data.get(self.offset..end) else {
            return Some(Err(self.overrun(end)));
        };
        // `ext` has at least 4 octets: length, content (>= 2), next type.
        let content = &ext[1..ext.len() - 1];
        self.next = ext[ext.len() - 1];
        self.offset = end;
        Some(Ok(ExtensionHeaderRef { ty, content }))
    }
}

impl ExtensionHeaders<'_> {
    #[inline]
    fn overrun(&self, end: usize) -> GtpuError {
        if self.data.len() < HEADER_LEN + usize::from(self.length) {
            // The buffer itself is short (unchecked view).
            GtpuError::Truncated {
                need: end,
                have: self.data.len(),
            }
        } else {
            GtpuError::LengthMismatch {
                length: self.length,
                need: end - HEADER_LEN,
            }
        }
    }

    /// Offset just after the last header returned so far.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }
}
