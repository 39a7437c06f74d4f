//! The copy link's frames: before each round's payload, a header (method,
//! migration id, round, length); after it, the receiver's acknowledgement
//! with the payload bytes it counted. An end frame (no payload) closes a
//! migration; its acknowledgement carries the receiver's total.
//!
//! Header, 28 bytes, big-endian:
//!
//! ```text
//!  0  magic "MESC"   4  version (1)   5  method (1 stop-and-copy, 2 pre-copy)
//!  6  kind (1 round while the source runs, 2 round after the stop, 3 end)
//!  7  zero   8  migration id (u64)   16  round (u32)   20  length (u64)
//! ```
//!
//! Acknowledgement, 24 bytes: `"MESA"`, round (u32), migration id (u64),
//! bytes counted (u64: the round's payload, or for the end the total).

use super::plan::Method;

/// Header length.
pub const HEADER_LEN: usize = 28;
/// Acknowledgement length.
pub const ACK_LEN: usize = 24;
const MAGIC: &[u8; 4] = b"MESC";
const ACK_MAGIC: &[u8; 4] = b"MESA";
const VERSION: u8 = 1;

/// A frame that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a state-copy frame.
    #[error("bad magic {0:02x?}")]
    Magic([u8; 4]),
    /// A version this side does not speak.
    #[error("unsupported version {0}")]
    Version(u8),
    /// An unknown method code.
    #[error("unknown method code {0}")]
    Method(u8),
    /// An unknown kind code.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// An end frame with a payload.
    #[error("an end frame carries no payload (length {0})")]
    EndLength(u64),
}

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A round while the source runs.
    Live,
    /// The round after the source stopped.
    Stopped,
    /// The end of the migration.
    End,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The method.
    pub method: Method,
    /// What follows.
    pub kind: Kind,
    /// The migration.
    pub migration_id: u64,
    /// Round number (1-based; the end frame carries the last round + 1).
    pub round: u32,
    /// Payload bytes that follow.
    pub length: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn magic_at(b: &[u8]) -> [u8; 4] {
    let mut m = [0u8; 4];
    m.copy_from_slice(&b[..4]);
    m
}

impl Header {
    /// The header's bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = match self.method {
            Method::StopAndCopy => 1,
            Method::PreCopy => 2,
        };
        b[6] = match self.kind {
            Kind::Live => 1,
            Kind::Stopped => 2,
            Kind::End => 3,
        };
        b[8..16].copy_from_slice(&self.migration_id.to_be_bytes());
        b[16..20].copy_from_slice(&self.round.to_be_bytes());
        b[20..28].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    /// Parses a header.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        if &b[..4] != MAGIC {
            return Err(FrameError::Magic(magic_at(b)));
        }
        if b[4] != VERSION {
            return Err(FrameError::Version(b[4]));
        }
        let method = match b[5] {
            1 => Method::StopAndCopy,
            2 => Method::PreCopy,
            m => return Err(FrameError::Method(m)),
        };
        let kind = match b[6] {
            1 => Kind::Live,
            2 => Kind::Stopped,
            3 => Kind::End,
            k => return Err(FrameError::Kind(k)),
        };
        let length = u64_at(b, 20);
        if kind == Kind::End && length != 0 {
            return Err(FrameError::EndLength(length));
        }
        Ok(Header {
            method,
            kind,
            migration_id: u64_at(b, 8),
            round: u32_at(b, 16),
            length,
        })
    }
}

/// A parsed acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The round acknowledged (as in its header).
    pub round: u32,
    /// The migration.
    pub migration_id: u64,
    /// Payload bytes the receiver counted.
    pub bytes: u64,
}

impl Ack {
    /// The acknowledgement's bytes.
    pub fn emit(&self) -> [u8; ACK_LEN] {
        let mut b = [0u8; ACK_LEN];
        b[..4].copy_from_slice(ACK_MAGIC);
        b[4..8].copy_from_slice(&self.round.to_be_bytes());
        b[8..16].copy_from_slice(&self.migration_id.to_be_bytes());
        b[16..24].copy_from_slice(&self.bytes.to_be_bytes());
        b
    }

    /// Parses an acknowledgement.
    pub fn parse(b: &[u8; ACK_LEN]) -> Result<Ack, FrameError> {
        if &b[..4] != ACK_MAGIC {
            return Err(FrameError::Magic(magic_at(b)));
        }
        Ok(Ack {
            round: u32_at(b, 4),
            migration_id: u64_at(b, 8),
            bytes: u64_at(b, 16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_both_ways() {
        // A pre-copy's second live round of 1 MiB, migration 0x0102030405060708.
        let raw: [u8; HEADER_LEN] = [
            b'M', b'E', b'S', b'C', 1, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 2, 0, 0, 0, 0, 0,
            0x10, 0, 0,
        ];
        let h = Header {
            method: Method::PreCopy,
            kind: Kind::Live,
            migration_id: 0x0102_0304_0506_0708,
            round: 2,
            length: 1 << 20,
        };
        assert_eq!(Header::parse(&raw), Ok(h));
        assert_eq!(h.emit(), raw);
        let mut bad = raw;
        bad[0] = b'X';
        assert!(matches!(Header::parse(&bad), Err(FrameError::Magic(_))));
        for (i, v, want) in [
            (4, 2, FrameError::Version(2)),
            (5, 9, FrameError::Method(9)),
            (6, 0, FrameError::Kind(0)),
            (6, 3, FrameError::EndLength(1 << 20)),
        ] {
            let mut b = raw;
            b[i] = v;
            assert_eq!(Header::parse(&b), Err(want));
        }
    }

    #[test]
    fn ack_bytes_both_ways() {
        let a = Ack {
            round: 3,
            migration_id: 7,
            bytes: 0x1_0000_0001,
        };
        let raw = a.emit();
        assert_eq!(&raw[..4], b"MESA");
        assert_eq!(raw[7], 3);
        assert_eq!(raw[15], 7);
        assert_eq!((raw[19], raw[23]), (1, 1));
        assert_eq!(Ack::parse(&raw), Ok(a));
        let mut bad = raw;
        bad[3] = b'C';
        assert!(Ack::parse(&bad).is_err());
    }
}
