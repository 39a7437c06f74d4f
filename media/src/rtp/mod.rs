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
//!
//! One job per file: `packet` (the datagram view, `Repr`, header
//! extensions), `meta` (`FrameMeta`), `packetize`, `depacketize`; this
//! file holds the constants, the errors and the helpers they share.

mod depacketize;
mod meta;
mod packet;
mod packetize;

pub use depacketize::{AccessUnit, Depacketizer, DepacketizerStats};
pub use meta::FrameMeta;
pub use packet::{one_byte_elements, Extension, OneByteElements, Packet, Repr};
pub use packetize::Packetizer;

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

/// A big-endian u16 from the first two octets (the caller checked them).
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A big-endian u32 from the first four octets (the caller checked them).
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// RFC 6184 NAL unit type of an STAP-A (aggregation) payload.
const NAL_STAP_A: u8 = 24;
/// RFC 6184 NAL unit type of an FU-A (fragmentation) payload.
const NAL_FU_A: u8 = 28;
/// The Annex B start code written before every NAL unit.
const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[cfg(test)]
mod test_fixtures;
