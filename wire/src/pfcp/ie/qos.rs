//! IEs of QoS enforcement (TS 29.244 §8.2): QFI, Gate Status and the bit
//! rates of MBR and GBR. Octet 5 is the first octet of the value.

use crate::pfcp::codec::{enum_with_unknown, IeCodec, Reader, Writer};
use crate::pfcp::error::PfcpError;

/// QFI (type 124), §8.2.89: 6 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Qfi(pub u8);

impl IeCodec for Qfi {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        Ok(Qfi(Reader::new(ty, v).u8()? & 0x3f))
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8(self.0 & 0x3f);
    }
}

enum_with_unknown! {
    /// One gate of Gate Status, §8.2.7 (2 bits).
    pub enum Gate(u8) {
        Open = 0,
        Closed = 1,
    }
}

/// Gate Status (type 25), §8.2.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GateStatus {
    /// Uplink gate (bits 4-3).
    pub ul: Gate,
    /// Downlink gate (bits 2-1).
    pub dl: Gate,
}

impl GateStatus {
    /// Both gates open.
    pub const OPEN: GateStatus = GateStatus {
        ul: Gate::Open,
        dl: Gate::Open,
    };
}

impl IeCodec for GateStatus {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let b = Reader::new(ty, v).u8()?;
        Ok(GateStatus {
            ul: Gate::from((b >> 2) & 0x03),
            dl: Gate::from(b & 0x03),
        })
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u8((u8::from(self.ul) & 0x03) << 2 | (u8::from(self.dl) & 0x03));
    }
}

/// MBR (type 26, §8.2.8) or GBR (type 27, §8.2.9): uplink and downlink bit
/// rates in kbit/s, 5 octets each (values above 2^40-1 are truncated on emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BitRate {
    /// Uplink, kbit/s.
    pub ul_kbps: u64,
    /// Downlink, kbit/s.
    pub dl_kbps: u64,
}

impl IeCodec for BitRate {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let mut r = Reader::new(ty, v);
        Ok(BitRate {
            ul_kbps: r.u40()?,
            dl_kbps: r.u40()?,
        })
    }
    fn value_len(&self) -> usize {
        10
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        w.u40(self.ul_kbps & 0xff_ffff_ffff);
        w.u40(self.dl_kbps & 0xff_ffff_ffff);
    }
}
