//! The UE's input flow (UDP, UE -> the chief pilot's instance).
//!
//! One datagram per input, 24 octets, network byte order:
//!
//! ```text
//!  0..4   magic "SNKI"
//!  4      version (1)
//!  5      heading (game::Dir code: 0 up, 1 down, 2 left, 3 right)
//!  6..8   reserved, zero
//!  8..16  input sequence number (from 1, per UE, never reused)
//! 16..24  send time, nanoseconds of CLOCK_REALTIME (all namespaces share it)
//! ```

use crate::game::Dir;

/// Length of an input datagram.
pub const LEN: usize = 24;
const MAGIC: &[u8; 4] = b"SNKI";
const VERSION: u8 = 1;

/// One input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// New heading.
    pub dir: Dir,
    /// Sequence number, from 1.
    pub seq: u64,
    /// When the UE sent it (ns since the Unix epoch).
    pub sent_ns: u64,
}

/// Why a datagram is not an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Input datagram of {0} octets, expected 24.
    #[error("input datagram of {0} octets, expected {LEN}")]
    Length(usize),
    /// Bad magic (not "SNKI").
    #[error("bad magic (not \"SNKI\")")]
    Magic,
    /// Unsupported version.
    #[error("unsupported input version {0}")]
    Version(u8),
    /// Unknown heading code.
    #[error("unknown heading code {0}")]
    Dir(u8),
    /// Sequence number 0 is reserved.
    #[error("input sequence number 0 is reserved")]
    SeqZero,
}

impl Input {
    /// Parses a datagram.
    pub fn parse(b: &[u8]) -> Result<Input, InputError> {
        if b.len() != LEN {
            return Err(InputError::Length(b.len()));
        }
        if &b[0..4] != MAGIC {
            return Err(InputError::Magic);
        }
        if b[4] != VERSION {
            return Err(InputError::Version(b[4]));
        }
        let dir = Dir::from_code(b[5]).ok_or(InputError::Dir(b[5]))?;
        let mut q = [0u8; 8];
        q.copy_from_slice(&b[8..16]);
        let seq = u64::from_be_bytes(q);
        if seq == 0 {
            return Err(InputError::SeqZero);
        }
        q.copy_from_slice(&b[16..24]);
        Ok(Input {
            dir,
            seq,
            sent_ns: u64::from_be_bytes(q),
        })
    }

    /// The datagram.
    pub fn emit(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = self.dir.code();
        b[8..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let i = Input {
            dir: Dir::Left,
            seq: 7,
            sent_ns: 1_700_000_000_123_456_789,
        };
        let b = i.emit();
        assert_eq!(&b[0..8], b"SNKI\x01\x02\0\0");
        assert_eq!(Input::parse(&b), Ok(i));
        assert_eq!(Input::parse(&b[..23]), Err(InputError::Length(23)));
        let mut m = b;
        m[0] = b'X';
        assert_eq!(Input::parse(&m), Err(InputError::Magic));
        let mut m = b;
        m[5] = 9;
        assert_eq!(Input::parse(&m), Err(InputError::Dir(9)));
        let mut m = b;
        m[8..16].fill(0);
        assert_eq!(Input::parse(&m), Err(InputError::SeqZero));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Input::parse(&b);
        }
    }
}
