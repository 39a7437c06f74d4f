//! The UE's input flow (UDP, UE -> the chief pilot's instance), shared by
//! the UE (which sends it) and the application (which takes it).
//!
//! One datagram per input, 24 octets, network byte order:
//!
//! ```text
//!  0..4   magic "SNKI"
//!  4      version (1)
//!  5      heading ([`Dir`] code: 0 up, 1 down, 2 left, 3 right)
//!  6      flags: bit 0 SWITCH, bit 1 KEY_FRAME (see [`Flags`]); others zero
//!  7      reserved, zero
//!  8..16  input sequence number (from 1, per UE, never reused); 0 only in
//!         a datagram that carries no input (a key-frame request alone)
//! 16..24  send time, nanoseconds of CLOCK_REALTIME (all namespaces share it)
//! ```
//!
//! CSM (DESIGN.md section 5, step 5): the first input the UE sends to a
//! destination instance after its stream switch carries SWITCH, which makes
//! that instance's session the account's primary; the UE then resends its
//! last inputs (the cloud dedupes by sequence number). KEY_FRAME asks the
//! instance for a key frame now, so a stream the UE joins is decodable at
//! once; the UE sends it when it starts receiving a destination's stream.

use serde::{Deserialize, Serialize};

/// Length of an input datagram.
pub const LEN: usize = 24;
const MAGIC: &[u8; 4] = b"SNKI";
const VERSION: u8 = 1;

/// A heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dir {
    /// Towards row 0.
    Up,
    /// Towards the last row.
    Down,
    /// Towards column 0.
    Left,
    /// Towards the last column.
    Right,
}

impl Dir {
    /// All headings, in wire-code order.
    pub const ALL: [Dir; 4] = [Dir::Up, Dir::Down, Dir::Left, Dir::Right];

    /// The opposite heading.
    pub fn opposite(self) -> Dir {
        match self {
            Dir::Up => Dir::Down,
            Dir::Down => Dir::Up,
            Dir::Left => Dir::Right,
            Dir::Right => Dir::Left,
        }
    }

    /// Wire code (the input datagram): 0 up, 1 down, 2 left, 3 right.
    pub fn code(self) -> u8 {
        match self {
            Dir::Up => 0,
            Dir::Down => 1,
            Dir::Left => 2,
            Dir::Right => 3,
        }
    }

    /// The heading of a wire code, `None` for an unknown code.
    pub fn from_code(c: u8) -> Option<Dir> {
        match c {
            0 => Some(Dir::Up),
            1 => Some(Dir::Down),
            2 => Some(Dir::Left),
            3 => Some(Dir::Right),
            _ => None,
        }
    }
}

/// The flags octet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// The switching signal: the receiving instance becomes primary.
    pub const SWITCH: Flags = Flags(0x01);
    /// A key-frame request.
    pub const KEY_FRAME: Flags = Flags(0x02);
    /// No flag.
    pub const NONE: Flags = Flags(0);
    const KNOWN: u8 = 0x03;

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets.
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// The octet.
    pub fn bits(self) -> u8 {
        self.0
    }
}

/// One input datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// New heading.
    pub dir: Dir,
    /// Sequence number, from 1; 0 for a datagram that carries no input.
    pub seq: u64,
    /// When the UE sent it (ns since the Unix epoch).
    pub sent_ns: u64,
    /// SWITCH, KEY_FRAME.
    pub flags: Flags,
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
    /// Unknown flag bits.
    #[error("unknown flag bits {0:#04x}")]
    Flags(u8),
    /// Sequence number 0 outside a key-frame request.
    #[error("input sequence number 0 is reserved (allowed only in a key-frame request)")]
    SeqZero,
}

impl Input {
    /// An input (no flags).
    pub fn new(dir: Dir, seq: u64, sent_ns: u64) -> Input {
        Input {
            dir,
            seq,
            sent_ns,
            flags: Flags::NONE,
        }
    }

    /// A key-frame request that carries no input.
    pub fn key_frame_request(sent_ns: u64) -> Input {
        Input {
            dir: Dir::Up,
            seq: 0,
            sent_ns,
            flags: Flags::KEY_FRAME,
        }
    }

    /// Whether it carries an input (a key-frame request alone does not).
    pub fn is_input(&self) -> bool {
        self.seq != 0
    }

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
        if b[6] & !Flags::KNOWN != 0 {
            return Err(InputError::Flags(b[6]));
        }
        let flags = Flags(b[6]);
        let mut q = [0u8; 8];
        q.copy_from_slice(&b[8..16]);
        let seq = u64::from_be_bytes(q);
        if seq == 0 && !flags.contains(Flags::KEY_FRAME) {
            return Err(InputError::SeqZero);
        }
        q.copy_from_slice(&b[16..24]);
        Ok(Input {
            dir,
            seq,
            sent_ns: u64::from_be_bytes(q),
            flags,
        })
    }

    /// The datagram.
    pub fn emit(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = self.dir.code();
        b[6] = self.flags.bits();
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
        let i = Input::new(Dir::Left, 7, 1_700_000_000_123_456_789);
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
        let mut m = b;
        m[6] = 0x80;
        assert_eq!(Input::parse(&m), Err(InputError::Flags(0x80)));
    }

    #[test]
    fn flags_round_trip() {
        let mut i = Input::new(Dir::Down, 3, 9);
        i.flags = Flags::SWITCH;
        let b = i.emit();
        assert_eq!(b[6], 0x01);
        let p = Input::parse(&b).expect("parse");
        assert!(p.flags.contains(Flags::SWITCH) && !p.flags.contains(Flags::KEY_FRAME));
        let k = Input::key_frame_request(5);
        let p = Input::parse(&k.emit()).expect("parse");
        assert!(!p.is_input() && p.flags.contains(Flags::KEY_FRAME));
        assert_eq!(Flags::SWITCH.with(Flags::KEY_FRAME).bits(), 0x03);
    }

    #[test]
    fn heading_codes() {
        for d in [Dir::Up, Dir::Down, Dir::Left, Dir::Right] {
            assert_eq!(Dir::from_code(d.code()), Some(d));
        }
        assert_eq!(Dir::from_code(4), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Input::parse(&b);
        }
    }
}
