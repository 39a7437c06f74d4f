//! IEs of QoS enforcement (TS 29.244 §8.2): QFI, Gate Status and the bit
//! rates of MBR and GBR. Octet 5 is the first octet of the value.

use crate::pfcp::codec::{enum_with_unknown, fixed_ie_codec};

/// QFI (type 124), §8.2.89: 6 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Qfi(pub u8);

fixed_ie_codec!(Qfi, 1, |r| Qfi(r.u8()? & 0x3f), |v, w| w.u8(v.0 & 0x3f));

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

fixed_ie_codec!(
    GateStatus,
    1,
    |r| {
        let b = r.u8()?;
        GateStatus {
            ul: Gate::from((b >> 2) & 0x03),
            dl: Gate::from(b & 0x03),
        }
    },
    |v, w| w.u8((u8::from(v.ul) & 0x03) << 2 | (u8::from(v.dl) & 0x03))
);

/// MBR (type 26, §8.2.8) or GBR (type 27, §8.2.9): uplink and downlink bit
/// rates in kbit/s, 5 octets each (values above 2^40-1 are truncated on emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BitRate {
    /// Uplink, kbit/s.
    pub ul_kbps: u64,
    /// Downlink, kbit/s.
    pub dl_kbps: u64,
}

fixed_ie_codec!(
    BitRate,
    10,
    |r| BitRate {
        ul_kbps: r.u40()?,
        dl_kbps: r.u40()?,
    },
    |v, w| {
        w.u40(v.ul_kbps & 0xff_ffff_ffff);
        w.u40(v.dl_kbps & 0xff_ffff_ffff);
    }
);
