//! The RTP datagram itself: [`Packet`], a zero-copy view whose getters
//! cannot panic once `new_checked` passed, [`Repr`], its parsed header,
//! and the RFC 3550/8285 header extension ([`Extension`],
//! [`one_byte_elements`]).

use super::{be16, be32, RtpError, VERSION};

mod field {
    pub const VPXCC: usize = 0;
    pub const MPT: usize = 1;
    pub const SEQ: std::ops::Range<usize> = 2..4;
    pub const TIMESTAMP: std::ops::Range<usize> = 4..8;
    pub const SSRC: std::ops::Range<usize> = 8..12;
    pub const CSRC: usize = 12;
    pub const FIXED_LEN: usize = 12;
}

/// A read/write view of an RTP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, RtpError> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the fixed header, the CSRCs, the header
    /// extension and the padding its header announces, so that no getter
    /// can panic.
    pub fn check_len(&self) -> Result<(), RtpError> {
        let b = self.buffer.as_ref();
        let len = b.len();
        if len < field::FIXED_LEN {
            return Err(RtpError::Truncated {
                len,
                need: field::FIXED_LEN,
            });
        }
        let mut need = field::FIXED_LEN + 4 * usize::from(b[field::VPXCC] & 0x0f);
        if len < need {
            return Err(RtpError::Truncated { len, need });
        }
        if b[field::VPXCC] & 0x10 != 0 {
            if len < need + 4 {
                return Err(RtpError::Truncated {
                    len,
                    need: need + 4,
                });
            }
            need += 4 + 4 * usize::from(be16(&b[need + 2..need + 4]));
            if len < need {
                return Err(RtpError::Truncated { len, need });
            }
        }
        if b[field::VPXCC] & 0x20 != 0 {
            let room = len - need;
            let count = if room == 0 { 0 } else { b[len - 1] };
            if count == 0 || usize::from(count) > room {
                return Err(RtpError::Padding { count, room });
            }
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VPXCC] >> 6
    }

    /// Padding bit.
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[field::VPXCC] & 0x20 != 0
    }

    /// Extension bit.
    pub fn extension(&self) -> bool {
        self.buffer.as_ref()[field::VPXCC] & 0x10 != 0
    }

    /// Number of CSRCs.
    pub fn csrc_count(&self) -> u8 {
        self.buffer.as_ref()[field::VPXCC] & 0x0f
    }

    /// Marker bit.
    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[field::MPT] & 0x80 != 0
    }

    /// Payload type.
    pub fn payload_type(&self) -> u8 {
        self.buffer.as_ref()[field::MPT] & 0x7f
    }

    /// Sequence number.
    pub fn sequence_number(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SEQ])
    }

    /// Timestamp.
    pub fn timestamp(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::TIMESTAMP])
    }

    /// SSRC.
    pub fn ssrc(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SSRC])
    }

    /// CSRC number `i`, `None` past [`Packet::csrc_count`].
    pub fn csrc(&self, i: usize) -> Option<u32> {
        if i >= usize::from(self.csrc_count()) {
            return None;
        }
        let o = field::CSRC + 4 * i;
        Some(be32(&self.buffer.as_ref()[o..o + 4]))
    }

    fn ext_offset(&self) -> usize {
        field::CSRC + 4 * usize::from(self.csrc_count())
    }

    /// The header extension: (profile, data), `None` without the X bit.
    pub fn extension_header(&self) -> Option<(u16, &[u8])> {
        if !self.extension() {
            return None;
        }
        let b = self.buffer.as_ref();
        let o = self.ext_offset();
        let n = 4 * usize::from(be16(&b[o + 2..o + 4]));
        Some((be16(&b[o..o + 2]), &b[o + 4..o + 4 + n]))
    }

    /// Length of the whole header (fixed part, CSRCs, extension).
    pub fn header_len(&self) -> usize {
        let o = self.ext_offset();
        if self.extension() {
            o + 4 + 4 * usize::from(be16(&self.buffer.as_ref()[o + 2..o + 4]))
        } else {
            o
        }
    }

    /// Octets of padding at the end (0 without the P bit).
    pub fn padding_len(&self) -> usize {
        if self.padding() {
            let b = self.buffer.as_ref();
            b.last().map_or(0, |&c| usize::from(c))
        } else {
            0
        }
    }

    /// The payload (without padding).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..b.len() - self.padding_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the first octet: version, padding bit, extension bit, CSRC count.
    pub fn set_first_octet(&mut self, version: u8, padding: bool, extension: bool, cc: u8) {
        self.buffer.as_mut()[field::VPXCC] =
            (version << 6) | (u8::from(padding) << 5) | (u8::from(extension) << 4) | (cc & 0x0f);
    }

    /// Sets the marker bit.
    pub fn set_marker(&mut self, m: bool) {
        let b = &mut self.buffer.as_mut()[field::MPT];
        *b = (*b & 0x7f) | (u8::from(m) << 7);
    }

    /// Sets the payload type.
    pub fn set_payload_type(&mut self, pt: u8) {
        let b = &mut self.buffer.as_mut()[field::MPT];
        *b = (*b & 0x80) | (pt & 0x7f);
    }

    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, s: u16) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&s.to_be_bytes());
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, t: u32) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&t.to_be_bytes());
    }

    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, s: u32) {
        self.buffer.as_mut()[field::SSRC].copy_from_slice(&s.to_be_bytes());
    }

    /// The payload, mutable (without padding).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, p) = (self.header_len(), self.padding_len());
        let b = self.buffer.as_mut();
        let end = b.len() - p;
        &mut b[h..end]
    }
}

/// A header extension (RFC 3550 5.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// "Defined by profile" field; 0xBEDE for RFC 8285 one-byte elements.
    pub profile: u16,
    /// Extension data (emitted zero-padded to a multiple of 4 octets).
    pub data: Vec<u8>,
}

/// The parsed header of an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// Marker bit (H.264: last packet of an access unit).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// CSRCs (at most 15).
    pub csrcs: Vec<u32>,
    /// Header extension.
    pub extension: Option<Extension>,
    /// Octets of padding (0: none).
    pub padding: u8,
}

impl Repr {
    /// Parses the header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, RtpError> {
        p.check_len()?;
        if p.version() != VERSION {
            return Err(RtpError::Version(p.version()));
        }
        Ok(Repr {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence_number: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            csrcs: (0..usize::from(p.csrc_count()))
                .filter_map(|i| p.csrc(i))
                .collect(),
            extension: p.extension_header().map(|(profile, data)| Extension {
                profile,
                data: data.to_vec(),
            }),
            // check_len guarantees it is the last octet's value.
            padding: u8::try_from(p.padding_len()).unwrap_or(u8::MAX),
        })
    }

    fn ext_words(&self) -> usize {
        self.extension
            .as_ref()
            .map_or(0, |e| e.data.len().div_ceil(4))
    }

    /// Length of the header this emits.
    pub fn header_len(&self) -> usize {
        field::FIXED_LEN
            + 4 * self.csrcs.len().min(15)
            + self
                .extension
                .as_ref()
                .map_or(0, |_| 4 + 4 * self.ext_words().min(0xffff))
    }

    /// Length of a datagram with this header and `payload_len` octets.
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len + usize::from(self.padding)
    }

    /// Writes the header (and the padding at the end) into a buffer of
    /// [`Repr::buffer_len`] octets; the caller fills [`Packet::payload_mut`].
    /// At most 15 CSRCs and 0xffff extension words are written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let cc = self.csrcs.len().min(15);
        // cc <= 15 fits the 4-bit field.
        p.set_first_octet(
            VERSION,
            self.padding > 0,
            self.extension.is_some(),
            cc as u8,
        );
        p.set_marker(self.marker);
        p.set_payload_type(self.payload_type);
        p.set_sequence_number(self.sequence_number);
        p.set_timestamp(self.timestamp);
        p.set_ssrc(self.ssrc);
        let b = p.buffer.as_mut();
        let mut o = field::CSRC;
        for c in self.csrcs.iter().take(cc) {
            b[o..o + 4].copy_from_slice(&c.to_be_bytes());
            o += 4;
        }
        if let Some(e) = &self.extension {
            let words = self.ext_words().min(0xffff);
            b[o..o + 2].copy_from_slice(&e.profile.to_be_bytes());
            // words <= 0xffff.
            b[o + 2..o + 4].copy_from_slice(&(words as u16).to_be_bytes());
            o += 4;
            let n = words * 4;
            let d = &e.data[..e.data.len().min(n)];
            b[o..o + d.len()].copy_from_slice(d);
            b[o + d.len()..o + n].fill(0);
        }
        if self.padding > 0 {
            let len = b.len();
            let pad = usize::from(self.padding);
            b[len - pad..len - 1].fill(0);
            b[len - 1] = self.padding;
        }
    }
}

/// Elements of an RFC 8285 one-byte header extension (profile 0xBEDE):
/// `(id, data)`, padding octets (id 0) skipped, stopping at id 15.
pub fn one_byte_elements(data: &[u8]) -> OneByteElements<'_> {
    OneByteElements { data, pos: 0 }
}

/// Iterator of [`one_byte_elements`].
pub struct OneByteElements<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for OneByteElements<'a> {
    type Item = Result<(u8, &'a [u8]), RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let &h = self.data.get(self.pos)?;
            let id = h >> 4;
            if id == 0 {
                self.pos += 1;
                continue;
            }
            if id == 15 {
                self.pos = self.data.len();
                return None;
            }
            let len = usize::from(h & 0x0f) + 1;
            let start = self.pos + 1;
            let Some(d) = self.data.get(start..start + len) else {
                let offset = self.pos;
                self.pos = self.data.len();
                return Some(Err(RtpError::ExtensionElement { offset }));
            };
            self.pos = start + len;
            return Some(Ok((id, d)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_fixtures::{ffmpeg_stap, unhex, FFMPEG_STAP};
    use super::super::{FrameMeta, NAL_STAP_A};
    use super::*;

    #[test]
    fn fixture_getters() {
        let b = ffmpeg_stap();
        let p = Packet::new_checked(&b[..]).expect("valid");
        assert_eq!(p.version(), 2);
        assert!(!p.padding());
        assert!(!p.extension());
        assert_eq!(p.csrc_count(), 0);
        assert!(!p.marker());
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.sequence_number(), 0x060a);
        assert_eq!(p.timestamp(), 0x6aa2_ae34);
        assert_eq!(p.ssrc(), 305_419_896);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.payload()[0] & 0x1f, NAL_STAP_A);
        let r = Repr::parse(&p).expect("repr");
        assert_eq!(
            r,
            Repr {
                marker: false,
                payload_type: 96,
                sequence_number: 0x060a,
                timestamp: 0x6aa2_ae34,
                ssrc: 305_419_896,
                csrcs: vec![],
                extension: None,
                padding: 0,
            }
        );
        // And back: the same header octets.
        let mut out = vec![0xa5u8; r.buffer_len(p.payload().len())];
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.payload_mut().copy_from_slice(p.payload());
        assert_eq!(out, b);
    }

    fn full_repr() -> Repr {
        Repr {
            marker: true,
            payload_type: 96,
            sequence_number: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
            csrcs: vec![0x1111_1111, 0x2222_2222],
            extension: Some(
                FrameMeta {
                    tick: 1,
                    input_seq: 2,
                    rendered_ns: 3,
                }
                .to_extension(),
            ),
            padding: 3,
        }
    }

    #[test]
    fn emit_parse_everything_over_a5() {
        let r = full_repr();
        let payload = [0x41, 0x9a, 0x00, 0x07];
        let mut buf = vec![0xa5u8; r.buffer_len(payload.len())];
        {
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
        }
        let p = Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(p.header_len(), 12 + 8 + 4 + 28);
        assert_eq!(p.csrc(1), Some(0x2222_2222));
        assert_eq!(p.csrc(2), None);
        assert_eq!(p.padding_len(), 3);
        assert_eq!(p.payload(), &payload);
        assert_eq!(Repr::parse(&p).expect("repr"), r);
        // No 0xa5 left anywhere: every octet was written.
        assert!(!buf.contains(&0xa5), "{buf:02x?}");
        let (profile, data) = p.extension_header().expect("ext");
        assert_eq!(
            FrameMeta::parse(profile, data),
            Ok(Some(FrameMeta {
                tick: 1,
                input_seq: 2,
                rendered_ns: 3
            }))
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            Packet::new_checked(&[0x80u8; 11][..]).err(),
            Some(RtpError::Truncated { len: 11, need: 12 })
        );
        // CC = 2 but no CSRCs.
        let mut b = unhex(FFMPEG_STAP);
        b[0] = 0x82;
        b.truncate(16);
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(RtpError::Truncated { len: 16, need: 20 })
        );
        // X bit with an extension longer than the datagram.
        let mut b = unhex("9060000100000000000000010000ffff");
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(RtpError::Truncated { .. })
        ));
        b[0] = 0x80 | 0x20; // padding, count 0xff > room
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(RtpError::Padding { .. })
        ));
        let mut b = unhex(FFMPEG_STAP);
        b[0] = 0x40;
        let p = Packet::new_checked(&b[..]).expect("lengths fine");
        assert_eq!(Repr::parse(&p), Err(RtpError::Version(1)));
    }

    #[test]
    fn one_byte_elements_rules() {
        // padding, id 5 len 2, padding, id 15 stops.
        let d = [0x00, 0x51, 0xaa, 0xbb, 0x00, 0xf3, 0x11];
        let v: Vec<_> = one_byte_elements(&d).collect();
        assert_eq!(v, vec![Ok((5, &[0xaa, 0xbb][..]))]);
        let bad = [0x13, 0x01];
        assert_eq!(
            one_byte_elements(&bad).collect::<Vec<_>>(),
            vec![Err(RtpError::ExtensionElement { offset: 0 })]
        );
        // A FrameMeta id with 4 octets.
        assert_eq!(
            FrameMeta::parse(0xBEDE, &[0x13, 0, 0, 0, 1]),
            Err(RtpError::MetaElement { id: 1, len: 4 })
        );
        // Another profile, or a missing id: no metadata, no error.
        assert_eq!(FrameMeta::parse(0x1000, &[0x13, 0, 0, 0, 1]), Ok(None));
        assert_eq!(
            FrameMeta::parse(0xBEDE, &[0x17, 0, 0, 0, 0, 0, 0, 0, 1]),
            Ok(None)
        );
    }
}
