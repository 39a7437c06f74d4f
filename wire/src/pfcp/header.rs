//! The PFCP message header (TS 29.244 §7.2.2).
//!
//! ```text
//! octet 1   : version (3 bits) | spare | spare | FO | MP | S
//! octet 2   : message type
//! octets 3-4: message length (octets after octet 4)
//! [octets 5-12: SEID, if S]
//! 3 octets  : sequence number
//! 1 octet   : message priority (high nibble, if MP) | spare
//! ```

use super::codec::Writer;
use super::error::PfcpError;

mod field {
    pub const FLAGS: usize = 0;
    pub const MSG_TYPE: usize = 1;
    pub const LENGTH: usize = 2;
    pub const SEID: usize = 4;
}

/// The only PFCP version.
pub const VERSION: u8 = 1;

/// Header octets without SEID.
pub const HEADER_LEN: usize = 8;
/// Header octets with SEID.
pub const HEADER_LEN_SEID: usize = 16;

/// First message type of the session-related range (TS 29.244 Table 7.3-1):
/// these carry a SEID, the node-related ones (below) do not.
pub const FIRST_SESSION_MSG_TYPE: u8 = 50;

const FLAG_S: u8 = 0x01;
const FLAG_MP: u8 = 0x02;
const FLAG_FO: u8 = 0x04;

/// Header fields other than the message type (which the body determines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// SEID (S flag): present on session-related messages.
    pub seid: Option<u64>,
    /// Sequence number, 24 bits.
    pub seq: u32,
    /// Message priority 0..=15 (MP flag), lower is higher priority.
    pub priority: Option<u8>,
    /// FO flag: another PFCP message follows in the same datagram.
    pub follow_on: bool,
}

/// A header as found on the wire, with where the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    /// The message type.
    pub msg_type: u8,
    /// The other fields.
    pub header: Header,
    /// Header length (8 or 16).
    pub header_len: usize,
    /// Total message length: 4 + the length field.
    pub total_len: usize,
}

impl RawHeader {
    /// Parses and checks the header at the start of `buf`: version 1, the
    /// length field covers the header fields and fits in `buf`.
    pub fn parse(buf: &[u8]) -> Result<RawHeader, PfcpError> {
        if buf.len() < 4 {
            return Err(PfcpError::Truncated {
                need: 4,
                got: buf.len(),
            });
        }
        let flags = buf[field::FLAGS];
        let version = flags >> 5;
        if version != VERSION {
            return Err(PfcpError::UnsupportedVersion(version));
        }
        let msg_type = buf[field::MSG_TYPE];
        let declared = usize::from(u16::from_be_bytes([
            buf[field::LENGTH],
            buf[field::LENGTH + 1],
        ]));
        let s = flags & FLAG_S != 0;
        let header_len = if s { HEADER_LEN_SEID } else { HEADER_LEN };
        if declared + 4 < header_len {
            return Err(PfcpError::BadMessageLength { declared });
        }
        let total_len = declared + 4;
        let Some(msg) = buf.get(..total_len) else {
            return Err(PfcpError::Truncated {
                need: total_len,
                got: buf.len(),
            });
        };
        let mut at = field::SEID;
        let seid = if s {
            let mut b = [0u8; 8];
            b.copy_from_slice(&msg[at..at + 8]);
            at += 8;
            Some(u64::from_be_bytes(b))
        } else {
            None
        };
        let seq = u32::from_be_bytes([0, msg[at], msg[at + 1], msg[at + 2]]);
        let priority = if flags & FLAG_MP != 0 {
            Some(msg[at + 3] >> 4)
        } else {
            None
        };
        Ok(RawHeader {
            msg_type,
            header: Header {
                seid,
                seq,
                priority,
                follow_on: flags & FLAG_FO != 0,
            },
            header_len,
            total_len,
        })
    }
}

impl Header {
    /// Header octets on the wire.
    pub fn len(&self) -> usize {
        if self.seid.is_some() {
            HEADER_LEN_SEID
        } else {
            HEADER_LEN
        }
    }

    /// Always false: a header has at least 8 octets.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header; the length field is patched by the caller.
    pub(crate) fn emit(&self, msg_type: u8, w: &mut Writer<'_>) -> usize {
        let flags = VERSION << 5
            | u8::from(self.follow_on) << 2
            | u8::from(self.priority.is_some()) << 1
            | u8::from(self.seid.is_some());
        w.u8(flags);
        w.u8(msg_type);
        let at = w.reserve_len();
        if let Some(seid) = self.seid {
            w.u64(seid);
        }
        w.u24(self.seq & 0x00ff_ffff);
        w.u8(self.priority.map_or(0, |p| (p & 0x0f) << 4));
        at
    }
}
