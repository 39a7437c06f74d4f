//! RTP (RFC 3550) carrying H.264 (RFC 6184), with the frame metadata of the
//! application in an RFC 8285 one-byte header extension.
//!
//! - [`Packet`]: a zero-copy view of an RTP datagram (`new_checked`
//!   validates lengths once; afterwards no getter can panic), and [`Repr`],
//!   its parsed header.
//! - [`FrameMeta`]: world tick, last applied input sequence and render
//!   time, carried by every packet of a frame (ids 1, 2, 3; profile 0xBEDE).
//! - [`Packetizer`]: an Annex B access unit into RTP datagrams: one single
//!   NAL unit packet per NAL unit that fits the MTU, FU-A fragments
//!   otherwise, the marker bit on the last packet of the access unit.
//! - [`Depacketizer`]: datagrams back into access units (single NAL unit,
//!   STAP-A and FU-A payloads), sequence gaps flagged as incomplete units,
//!   every malformed datagram an [`RtpError`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers             |  CC x 4
//! |      profile (0xBEDE)         |           length              |  if X
//! |                  extension data (length x 4)                  |
//! |                            payload ...        | padding | cnt |  if P
//! ```

use std::collections::VecDeque;

use crate::h264::nal_units;

/// RTP version this module speaks.
pub const VERSION: u8 = 2;
/// Payload type of the application's H.264 stream (dynamic range).
pub const PAYLOAD_TYPE: u8 = 96;
/// RTP clock rate of video (RFC 6184).
pub const CLOCK_RATE: u32 = 90_000;
/// Default size limit of an RTP datagram (UDP payload), leaving room for
/// IPv4/IPv6, UDP and GTP-U/N3 encapsulation in a 1500-octet path MTU.
pub const DEFAULT_MTU: usize = 1200;
/// Largest access unit the depacketizer assembles before giving up on it.
pub const MAX_ACCESS_UNIT: usize = 4 << 20;

/// What is wrong with a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The datagram is shorter than its header says.
    #[error("datagram of {len} octets is shorter than its header says ({need})")]
    Truncated {
        /// Datagram length.
        len: usize,
        /// Octets the header needs.
        need: usize,
    },
    /// Not RTP version 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// The padding count is zero or exceeds the octets after the header.
    #[error("padding count {count} is invalid with {room} octets after the header")]
    Padding {
        /// The padding count (last octet).
        count: u8,
        /// Octets after the header.
        room: usize,
    },
    /// No payload after the header (and padding).
    #[error("RTP packet without payload")]
    EmptyPayload,
    /// A one-byte header extension element runs past the extension.
    #[error("header extension element at offset {offset} runs past the extension")]
    ExtensionElement {
        /// Offset of the element in the extension data.
        offset: usize,
    },
    /// A FrameMeta element does not hold a u64.
    #[error("frame metadata element id {id} has {len} octets, expected 8")]
    MetaElement {
        /// Element id (1, 2 or 3).
        id: u8,
        /// Its data length.
        len: usize,
    },
    /// An RFC 6184 payload of a NAL unit type this receiver does not take.
    #[error("unsupported or undefined NAL unit type {0} in an RFC 6184 payload")]
    NalType(u8),
    /// An FU-A payload shorter than its FU indicator and header.
    #[error("FU-A payload of {0} octets, shorter than its indicator, header and one octet")]
    FuTooShort(usize),
    /// An FU-A with both the start and the end bit (RFC 6184 5.8 forbids it).
    #[error("FU-A fragment with both start and end bits set")]
    FuStartAndEnd,
    /// An STAP-A aggregation unit runs past the payload, or is empty.
    #[error("STAP-A aggregation unit at offset {0} is empty or runs past the payload")]
    Stap(usize),
    /// An access unit grew beyond [`MAX_ACCESS_UNIT`].
    #[error("access unit exceeds {MAX_ACCESS_UNIT} octets")]
    TooLarge,
}

mod field {
    pub const VPXCC: usize = 0;
    pub const MPT: usize = 1;
    pub const SEQ: std::ops::Range<usize> = 2..4;
    pub const TIMESTAMP: std::ops::Range<usize> = 4..8;
    pub const SSRC: std::ops::Range<usize> = 8..12;
    pub const CSRC: usize = 12;
    pub const FIXED_LEN: usize = 12;
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
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

/// Per-frame metadata the instance puts on every packet of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameMeta {
    /// World tick the frame shows (element id 1).
    pub tick: u64,
    /// The account's last applied input sequence number in that world
    /// (element id 2).
    pub input_seq: u64,
    /// When the frame was rendered, CLOCK_REALTIME ns (element id 3).
    pub rendered_ns: u64,
}

impl FrameMeta {
    /// RFC 8285 one-byte header extension profile.
    pub const PROFILE: u16 = 0xBEDE;
    /// Length of the extension data: three 9-octet elements, one padding
    /// octet.
    pub const EXT_LEN: usize = 28;

    /// The extension data (three one-byte-header elements of 8 octets).
    pub fn extension_data(&self) -> [u8; FrameMeta::EXT_LEN] {
        let mut d = [0u8; FrameMeta::EXT_LEN];
        for (i, v) in [self.tick, self.input_seq, self.rendered_ns]
            .into_iter()
            .enumerate()
        {
            let o = i * 9;
            // id i+1, L = 8 - 1.
            d[o] = ((i as u8 + 1) << 4) | 7;
            d[o + 1..o + 9].copy_from_slice(&v.to_be_bytes());
        }
        d
    }

    /// The header extension carrying this metadata.
    pub fn to_extension(&self) -> Extension {
        Extension {
            profile: FrameMeta::PROFILE,
            data: self.extension_data().to_vec(),
        }
    }

    /// The metadata in a header extension: `Ok(None)` if the profile is not
    /// 0xBEDE or one of ids 1, 2, 3 is missing; other ids are ignored.
    pub fn parse(profile: u16, data: &[u8]) -> Result<Option<FrameMeta>, RtpError> {
        if profile != FrameMeta::PROFILE {
            return Ok(None);
        }
        let mut v = [None; 3];
        for e in one_byte_elements(data) {
            let (id, d) = e?;
            if (1..=3).contains(&id) {
                let a: [u8; 8] = d
                    .try_into()
                    .map_err(|_| RtpError::MetaElement { id, len: d.len() })?;
                v[usize::from(id - 1)] = Some(u64::from_be_bytes(a));
            }
        }
        Ok(match v {
            [Some(tick), Some(input_seq), Some(rendered_ns)] => Some(FrameMeta {
                tick,
                input_seq,
                rendered_ns,
            }),
            _ => None,
        })
    }
}

const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// RFC 6184 packetizer (packetization-mode=1 without aggregation): one
/// single NAL unit packet per NAL unit that fits, FU-A fragments otherwise.
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    payload_type: u8,
    mtu: usize,
    seq: u16,
}

impl Packetizer {
    /// Header length of every packet: 12 fixed + 4 extension header +
    /// [`FrameMeta::EXT_LEN`].
    pub const HEADER_LEN: usize = 12 + 4 + FrameMeta::EXT_LEN;
    /// Smallest MTU accepted (smaller values are raised to it).
    pub const MIN_MTU: usize = Packetizer::HEADER_LEN + 16;

    /// A packetizer for the stream `ssrc`, datagrams of at most `mtu`
    /// octets (raised to [`Packetizer::MIN_MTU`]). The first sequence
    /// number is derived from the SSRC.
    pub fn new(ssrc: u32, payload_type: u8, mtu: usize) -> Packetizer {
        Packetizer {
            ssrc,
            payload_type: payload_type & 0x7f,
            mtu: mtu.max(Packetizer::MIN_MTU),
            // Low 16 bits of a mixed SSRC: a deterministic but stream-specific start.
            seq: (ssrc.wrapping_mul(0x9e37_79b9) >> 16) as u16,
        }
    }

    /// The MTU in use.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number of the next packet.
    pub fn sequence_number(&self) -> u16 {
        self.seq
    }

    /// Sets the sequence number of the next packet.
    pub fn set_sequence_number(&mut self, s: u16) {
        self.seq = s;
    }

    /// Appends the datagrams of one access unit to `out`; nothing for an
    /// access unit without NAL units.
    pub fn packetize(
        &mut self,
        annexb: &[u8],
        timestamp: u32,
        meta: &FrameMeta,
        out: &mut Vec<Vec<u8>>,
    ) {
        let ext = meta.extension_data();
        let max_payload = self.mtu - Packetizer::HEADER_LEN;
        let mut nals = nal_units(annexb).peekable();
        while let Some(nal) = nals.next() {
            let last_nal = nals.peek().is_none();
            if nal.len() <= max_payload {
                let mut p = self.header(last_nal, timestamp, &ext, nal.len());
                p.extend_from_slice(nal);
                out.push(p);
                continue;
            }
            // FU-A: indicator = F and NRI of the NAL header, type 28; header
            // = S, E, R = 0, the NAL type; the NAL header itself is not sent.
            let indicator = (nal[0] & 0xe0) | NAL_FU_A;
            let ty = nal[0] & 0x1f;
            let body = &nal[1..];
            let chunk = max_payload - 2;
            let n = body.len().div_ceil(chunk);
            for (i, frag) in body.chunks(chunk).enumerate() {
                let (s, e) = (i == 0, i + 1 == n);
                let mut p = self.header(last_nal && e, timestamp, &ext, 2 + frag.len());
                p.push(indicator);
                p.push((u8::from(s) << 7) | (u8::from(e) << 6) | ty);
                p.extend_from_slice(frag);
                out.push(p);
            }
        }
    }

    fn header(
        &mut self,
        marker: bool,
        timestamp: u32,
        ext: &[u8; FrameMeta::EXT_LEN],
        payload: usize,
    ) -> Vec<u8> {
        let mut v = Vec::with_capacity(Packetizer::HEADER_LEN + payload);
        v.push((VERSION << 6) | 0x10);
        v.push((u8::from(marker) << 7) | self.payload_type);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&timestamp.to_be_bytes());
        v.extend_from_slice(&self.ssrc.to_be_bytes());
        v.extend_from_slice(&FrameMeta::PROFILE.to_be_bytes());
        // EXT_LEN / 4 = 7 words.
        v.extend_from_slice(&((FrameMeta::EXT_LEN / 4) as u16).to_be_bytes());
        v.extend_from_slice(ext);
        self.seq = self.seq.wrapping_add(1);
        v
    }
}

/// One reassembled access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// RTP timestamp (90 kHz).
    pub timestamp: u32,
    /// The NAL units, each after a 4-octet start code.
    pub annexb: Vec<u8>,
    /// Frame metadata of its packets (the first that carried it).
    pub meta: Option<FrameMeta>,
    /// False if a packet of it (or around it) was lost: a sequence gap, an
    /// FU-A without its start or end, a missing marker.
    pub complete: bool,
}

/// Counters of a [`Depacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Datagrams accepted.
    pub packets: u64,
    /// Datagrams rejected as malformed.
    pub malformed: u64,
    /// Sequence gaps seen (each may cover several packets).
    pub gaps: u64,
    /// Packets lost in those gaps.
    pub lost: u64,
    /// Late or duplicate packets dropped.
    pub late: u64,
    /// Access units returned.
    pub access_units: u64,
    /// ... of which incomplete.
    pub incomplete: u64,
    /// Streams (SSRC) changes.
    pub ssrc_changes: u64,
}

#[derive(Debug)]
struct Pending {
    timestamp: u32,
    annexb: Vec<u8>,
    meta: Option<FrameMeta>,
    complete: bool,
}

/// Reassembles access units from RTP datagrams of one stream.
///
/// [`Depacketizer::push`] returns the oldest finished access unit; when one
/// datagram finishes two (a lost marker followed by a one-packet frame) the
/// second waits in a queue: call [`Depacketizer::pop`] until `None`.
#[derive(Debug, Default)]
pub struct Depacketizer {
    ssrc: Option<u32>,
    expected: Option<u16>,
    pending: Option<Pending>,
    /// An FU-A in progress: the NAL unit so far (header included).
    fu: Option<Vec<u8>>,
    /// The previous accepted packet ended an access unit (marker), so the
    /// next one starts one.
    at_boundary: bool,
    ready: VecDeque<AccessUnit>,
    stats: DepacketizerStats,
}

/// A parsed, validated H.264 payload, before any state changes.
enum Payload<'a> {
    Single(&'a [u8]),
    Stap(&'a [u8]),
    Fu {
        indicator: u8,
        header: u8,
        data: &'a [u8],
    },
}

impl Depacketizer {
    /// A depacketizer; the first packet is taken as the start of an access
    /// unit.
    pub fn new() -> Depacketizer {
        Depacketizer {
            at_boundary: true,
            ..Depacketizer::default()
        }
    }

    /// Counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Takes one datagram. Malformed datagrams are counted and rejected
    /// with what is wrong, and change nothing else.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<AccessUnit>, RtpError> {
        match self.accept(datagram) {
            Ok(()) => Ok(self.pop()),
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// The next finished access unit, if one is queued.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Ends the current access unit (e.g. at the end of the stream): it is
    /// returned incomplete if its marker was not seen.
    pub fn flush(&mut self) -> Option<AccessUnit> {
        self.abort_fu();
        self.finish(false);
        self.pop()
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<(), RtpError> {
        // Validate everything first, so that a malformed datagram leaves the
        // state untouched.
        let p = Packet::new_checked(datagram)?;
        if p.version() != VERSION {
            return Err(RtpError::Version(p.version()));
        }
        let meta = match p.extension_header() {
            Some((profile, data)) => FrameMeta::parse(profile, data)?,
            None => None,
        };
        let payload = parse_payload(p.payload())?;
        let (seq, ts, ssrc) = (p.sequence_number(), p.timestamp(), p.ssrc());

        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
                self.abort_fu();
                self.finish(false);
                self.at_boundary = true;
            }
            self.ssrc = Some(ssrc);
            self.expected = None;
        }
        let mut gap = false;
        if let Some(exp) = self.expected {
            let d = seq.wrapping_sub(exp);
            if d >= 0x8000 {
                self.stats.late += 1;
                return Ok(());
            }
            if d > 0 {
                gap = true;
                self.stats.gaps += 1;
                self.stats.lost += u64::from(d);
            }
        }
        self.expected = Some(seq.wrapping_add(1));
        self.stats.packets += 1;

        if gap {
            // The lost packets may have ended the pending unit or begun the
            // next: both are suspect.
            self.abort_fu();
            if let Some(pd) = &mut self.pending {
                pd.complete = false;
            }
        }
        if self.pending.as_ref().is_some_and(|pd| pd.timestamp != ts) {
            // A new timestamp begins a new unit: the previous one ended
            // without its marker. If no packet was lost in between it is
            // whole (unless an FU-A in it is unfinished), and this packet
            // starts the next one.
            self.abort_fu();
            self.finish(true);
            self.at_boundary = !gap;
        }
        if self.pending.is_none() {
            self.pending = Some(Pending {
                timestamp: ts,
                annexb: Vec::new(),
                meta: None,
                complete: self.at_boundary && !gap,
            });
        }
        self.at_boundary = false;
        let mut too_large = false;
        if let Some(pd) = &mut self.pending {
            if pd.meta.is_none() {
                pd.meta = meta;
            }
            match payload {
                Payload::Single(nal) => {
                    if self.fu.take().is_some() {
                        pd.complete = false;
                    }
                    push_nal(&mut pd.annexb, nal);
                }
                Payload::Stap(mut rest) => {
                    if self.fu.take().is_some() {
                        pd.complete = false;
                    }
                    while rest.len() >= 2 {
                        let n = usize::from(be16(rest));
                        push_nal(&mut pd.annexb, &rest[2..2 + n]);
                        rest = &rest[2 + n..];
                    }
                }
                Payload::Fu {
                    indicator,
                    header,
                    data,
                } => {
                    let (s, e) = (header & 0x80 != 0, header & 0x40 != 0);
                    if s {
                        if self.fu.is_some() {
                            pd.complete = false;
                        }
                        let mut nal = Vec::with_capacity(data.len() * 8);
                        nal.push((indicator & 0xe0) | (header & 0x1f));
                        nal.extend_from_slice(data);
                        self.fu = Some(nal);
                    } else if let Some(nal) = &mut self.fu {
                        nal.extend_from_slice(data);
                    } else {
                        // A fragment without its start: dropped.
                        pd.complete = false;
                    }
                    if e {
                        if let Some(nal) = self.fu.take() {
                            push_nal(&mut pd.annexb, &nal);
                        }
                    }
                    if self.fu.as_ref().is_some_and(|n| n.len() > MAX_ACCESS_UNIT) {
                        too_large = true;
                    }
                }
            }
            if pd.annexb.len() > MAX_ACCESS_UNIT {
                too_large = true;
            }
        }
        if too_large {
            self.fu = None;
            self.pending = None;
            return Err(RtpError::TooLarge);
        }
        if p.marker() {
            if self.fu.is_some() {
                self.abort_fu();
            }
            self.finish(true);
            self.at_boundary = true;
        }
        Ok(())
    }

    fn abort_fu(&mut self) {
        if self.fu.take().is_some() {
            if let Some(pd) = &mut self.pending {
                pd.complete = false;
            }
        }
    }

    /// Moves the pending unit to the ready queue; `marker`: its end was seen.
    fn finish(&mut self, marker: bool) {
        if let Some(pd) = self.pending.take() {
            let complete = pd.complete && marker;
            self.stats.access_units += 1;
            if !complete {
                self.stats.incomplete += 1;
            }
            self.ready.push_back(AccessUnit {
                timestamp: pd.timestamp,
                annexb: pd.annexb,
                meta: pd.meta,
                complete,
            });
        }
    }
}

fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(nal);
}

fn parse_payload(b: &[u8]) -> Result<Payload<'_>, RtpError> {
    let Some(&h) = b.first() else {
        return Err(RtpError::EmptyPayload);
    };
    match h & 0x1f {
        1..=23 => Ok(Payload::Single(b)),
        NAL_STAP_A => {
            let mut o = 1;
            if b.len() < 3 {
                return Err(RtpError::Stap(o));
            }
            while o < b.len() {
                if o + 2 > b.len() {
                    return Err(RtpError::Stap(o));
                }
                let n = usize::from(be16(&b[o..]));
                if n == 0 || o + 2 + n > b.len() {
                    return Err(RtpError::Stap(o));
                }
                o += 2 + n;
            }
            Ok(Payload::Stap(&b[1..]))
        }
        NAL_FU_A => {
            if b.len() < 3 {
                return Err(RtpError::FuTooShort(b.len()));
            }
            if b[1] & 0xc0 == 0xc0 {
                return Err(RtpError::FuStartAndEnd);
            }
            if b[1] & 0x1f == 0 {
                return Err(RtpError::NalType(0));
            }
            Ok(Payload::Fu {
                indicator: h,
                header: b[1],
                data: &b[2..],
            })
        }
        t => Err(RtpError::NalType(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First datagram of
    /// `ffmpeg -f lavfi -i testsrc=size=64x48:rate=10 -frames:v 2 -c:v libx264
    /// -profile:v baseline -payload_type 96 -ssrc 305419896 -f rtp
    /// rtp://127.0.0.1:PORT?pkt_size=200` (ffmpeg 5.1): an STAP-A with the
    /// SPS and PPS.
    const FFMPEG_STAP: &str =
        "8060060a6aa2ae34123456781800176742c00ad9047b011000000300100000030140f12264800005";
    // (the capture's remaining octets: the PPS unit)
    const FFMPEG_STAP_TAIL: &str = "68cb83cb20";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn ffmpeg_stap() -> Vec<u8> {
        let mut v = unhex(FFMPEG_STAP);
        v.extend(unhex(FFMPEG_STAP_TAIL));
        v
    }

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

    #[test]
    fn fixture_depacketizes_stap_a() {
        let b = ffmpeg_stap();
        let mut d = Depacketizer::new();
        assert_eq!(d.push(&b), Ok(None));
        let au = d.flush().expect("unit");
        let nals: Vec<&[u8]> = nal_units(&au.annexb).collect();
        assert_eq!(nals.len(), 2);
        assert_eq!(nals[0][0] & 0x1f, 7);
        assert_eq!(nals[1][0] & 0x1f, 8);
        // No marker seen: incomplete.
        assert!(!au.complete);
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

    fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![];
        for n in nals {
            v.extend_from_slice(&START_CODE);
            v.extend_from_slice(n);
        }
        v
    }

    fn nal(ty: u8, len: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![0x60 | ty];
        // Avoid emulating start codes: no zero octets in the body.
        v.extend((0..len - 1).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
        v
    }

    #[test]
    fn packetizer_single_and_fu_a() {
        let mut pz = Packetizer::new(7, 96, 100);
        pz.set_sequence_number(65534);
        let nals = vec![nal(7, 10, 1), nal(5, 200, 2)];
        let meta = FrameMeta {
            tick: 9,
            input_seq: 8,
            rendered_ns: 7,
        };
        let mut out = vec![];
        pz.packetize(&annexb(&nals), 1234, &meta, &mut out);
        // 100 - 44 = 56 payload; FU body chunks of 54: 199 -> 4 fragments.
        assert_eq!(out.len(), 1 + 4);
        let seqs: Vec<u16> = out
            .iter()
            .map(|d| Packet::new_unchecked(&d[..]).sequence_number())
            .collect();
        assert_eq!(seqs, vec![65534, 65535, 0, 1, 2]);
        for (i, d) in out.iter().enumerate() {
            assert!(d.len() <= 100);
            let p = Packet::new_checked(&d[..]).expect("valid");
            assert_eq!(p.marker(), i == 4);
            assert_eq!(p.timestamp(), 1234);
            let (pr, data) = p.extension_header().expect("ext");
            assert_eq!(FrameMeta::parse(pr, data), Ok(Some(meta)));
        }
        let p1 = Packet::new_unchecked(&out[1][..]);
        assert_eq!(p1.payload()[0], 0x60 | NAL_FU_A);
        assert_eq!(p1.payload()[1], 0x80 | 5);
        assert_eq!(Packet::new_unchecked(&out[4][..]).payload()[1], 0x40 | 5);
        let mut d = Depacketizer::new();
        let mut units = vec![];
        for p in &out {
            if let Some(u) = d.push(p).expect("push") {
                units.push(u);
            }
        }
        assert_eq!(units.len(), 1);
        assert!(units[0].complete);
        assert_eq!(units[0].annexb, annexb(&nals));
        assert_eq!(units[0].meta, Some(meta));
    }

    #[test]
    fn depacketizer_gap_late_and_timestamp_change() {
        let mut pz = Packetizer::new(1, 96, 64);
        let meta = FrameMeta::default();
        let mut f1 = vec![];
        pz.packetize(&annexb(&[nal(5, 100, 3)]), 0, &meta, &mut f1);
        let mut f2 = vec![];
        pz.packetize(&annexb(&[nal(1, 10, 4)]), 3000, &meta, &mut f2);
        let mut f3 = vec![];
        pz.packetize(&annexb(&[nal(1, 10, 5)]), 6000, &meta, &mut f3);
        assert!(f1.len() >= 3);
        let mut d = Depacketizer::new();
        // Lose the middle fragment of frame 1.
        assert_eq!(d.push(&f1[0]), Ok(None));
        let u1 = d.push(&f1[2]).expect("ok");
        let u1 = match u1 {
            Some(u) => u,
            None => {
                for p in &f1[3..] {
                    if let Some(u) = d.push(p).expect("ok") {
                        assert!(!u.complete);
                    }
                }
                d.pop().unwrap_or(AccessUnit {
                    timestamp: 0,
                    annexb: vec![],
                    meta: None,
                    complete: false,
                })
            }
        };
        assert!(!u1.complete);
        // A duplicate of an old packet is dropped as late.
        assert_eq!(d.push(&f1[0]), Ok(None));
        assert_eq!(d.stats().late, 1);
        // Frame 2 clean.
        let u2 = d.push(&f2[0]).expect("ok").expect("unit");
        assert!(u2.complete);
        // Frame 3 sent without a marker bit: the next timestamp closes it;
        // no packet was lost, so both it and the next are whole.
        let mut m = f3[0].clone();
        m[1] &= 0x7f;
        assert_eq!(d.push(&m), Ok(None));
        let mut f4 = vec![];
        pz.packetize(&annexb(&[nal(1, 10, 6)]), 9000, &meta, &mut f4);
        let u3 = d.push(&f4[0]).expect("ok").expect("closed by timestamp");
        assert_eq!(u3.timestamp, 6000);
        assert!(u3.complete);
        let u4 = d.pop().expect("queued");
        assert_eq!(u4.timestamp, 9000);
        assert!(u4.complete);
        // Frame 5 unmarked, then frame 6's first packet lost: both suspect.
        let (mut f5, mut f6, mut f7) = (vec![], vec![], vec![]);
        pz.packetize(&annexb(&[nal(1, 10, 7)]), 12000, &meta, &mut f5);
        pz.packetize(
            &annexb(&[nal(1, 10, 8), nal(1, 10, 9)]),
            15000,
            &meta,
            &mut f6,
        );
        pz.packetize(&annexb(&[nal(1, 10, 10)]), 18000, &meta, &mut f7);
        let mut m = f5[0].clone();
        m[1] &= 0x7f;
        assert_eq!(d.push(&m), Ok(None));
        let u5 = d.push(&f6[1]).expect("ok").expect("closed by timestamp");
        assert!(!u5.complete);
        let u6 = d.pop().expect("queued");
        assert_eq!(u6.timestamp, 15000);
        assert!(!u6.complete);
        let u7 = d.push(&f7[0]).expect("ok").expect("unit");
        assert!(u7.complete);
        assert!(d.stats().gaps >= 1);
    }

    #[test]
    fn malformed_payloads_rejected_and_counted() {
        let mut d = Depacketizer::new();
        let hdr = unhex("80e00001000000000000000a");
        let cases: Vec<(Vec<u8>, RtpError)> = vec![
            (vec![], RtpError::EmptyPayload),
            (vec![0x00], RtpError::NalType(0)),
            (vec![0x1e, 1], RtpError::NalType(30)),
            (vec![0x19, 1], RtpError::NalType(25)),
            (vec![0x1c, 0x85], RtpError::FuTooShort(2)),
            (vec![0x1c, 0xc5, 1], RtpError::FuStartAndEnd),
            (vec![0x18, 0x00, 0x05, 0x67], RtpError::Stap(1)),
            (vec![0x18, 0x00, 0x00, 0x67], RtpError::Stap(1)),
        ];
        for (i, (payload, err)) in cases.iter().enumerate() {
            let mut b = hdr.clone();
            b.extend_from_slice(payload);
            assert_eq!(d.push(&b).as_ref().err(), Some(err), "case {i}");
        }
        assert_eq!(d.stats().malformed, cases.len() as u64);
        assert_eq!(d.stats().packets, 0);
    }
}
