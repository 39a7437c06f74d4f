//! The TLV machinery shared by IEs and messages: a bounds-checked reader, a
//! writer that never panics, raw IEs, and the `grouped!` macro that turns a
//! field table into a struct with parse/emit.

use super::error::PfcpError;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bit 8 of the first octet of the IE type: an enterprise-specific IE, whose
/// value starts with a 2-octet Enterprise ID (TS 29.244 §8.1.1).
pub const ENTERPRISE_BIT: u16 = 0x8000;

/// An IE kept as bytes: unknown to this implementation, or known but not
/// modelled in the enclosing message (e.g. Load Control Information).
/// Messages and grouped IEs keep these in their `unknown` field, in order,
/// and emit them after the modelled IEs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RawIe {
    /// The IE type as on the wire (bit 16 set for enterprise-specific IEs).
    pub ie_type: u16,
    /// The Enterprise ID, present exactly when bit 16 of `ie_type` is set.
    pub enterprise_id: Option<u16>,
    /// The IE value (after the Enterprise ID, if any).
    pub data: Vec<u8>,
}

impl RawIe {
    /// A raw 3GPP (non-enterprise) IE.
    pub fn new(ie_type: u16, data: Vec<u8>) -> Self {
        RawIe {
            ie_type,
            enterprise_id: None,
            data,
        }
    }

    /// Whether this is an enterprise-specific IE.
    pub fn is_enterprise(&self) -> bool {
        self.ie_type & ENTERPRISE_BIT != 0
    }

    pub(crate) fn value_len(&self) -> usize {
        self.data.len() + if self.enterprise_id.is_some() { 2 } else { 0 }
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) {
        w.u16(self.ie_type);
        let at = w.reserve_len();
        if let Some(e) = self.enterprise_id {
            w.u16(e);
        }
        w.bytes(&self.data);
        w.patch_len(at, self.ie_type);
    }
}

/// One IE as found in a buffer, not yet decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IeRef<'a> {
    pub ie_type: u16,
    pub enterprise_id: Option<u16>,
    pub data: &'a [u8],
}

impl IeRef<'_> {
    pub fn to_raw(self) -> RawIe {
        RawIe {
            ie_type: self.ie_type,
            enterprise_id: self.enterprise_id,
            data: self.data.to_vec(),
        }
    }
}

/// Iterates over the IEs of a message body or a grouped IE value.
pub(crate) struct IeIter<'a> {
    buf: &'a [u8],
}

impl<'a> IeIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        IeIter { buf }
    }
}

impl<'a> Iterator for IeIter<'a> {
    type Item = Result<IeRef<'a>, PfcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let buf = self.buf;
        if buf.len() < 4 {
            self.buf = &[];
            return Some(Err(PfcpError::TrailingOctets {
                count: buf.len(),
                within: None,
                ctx: None,
            }));
        }
        let ie_type = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let Some(value) = buf.get(4..4 + len) else {
            self.buf = &[];
            return Some(Err(PfcpError::short(ie_type)));
        };
        self.buf = &buf[4 + len..];
        if ie_type & ENTERPRISE_BIT != 0 {
            if value.len() < 2 {
                self.buf = &[];
                return Some(Err(PfcpError::short(ie_type)));
            }
            return Some(Ok(IeRef {
                ie_type,
                enterprise_id: Some(u16::from_be_bytes([value[0], value[1]])),
                data: &value[2..],
            }));
        }
        Some(Ok(IeRef {
            ie_type,
            enterprise_id: None,
            data: value,
        }))
    }
}

/// Bounds-checked big-endian reader over one IE value; running short gives
/// [`PfcpError::InvalidLength`] for that IE.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    ie_type: u16,
}

impl<'a> Reader<'a> {
    pub fn new(ie_type: u16, buf: &'a [u8]) -> Self {
        Reader { buf, ie_type }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], PfcpError> {
        if self.buf.len() < n {
            return Err(PfcpError::short(self.ie_type));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], PfcpError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, PfcpError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, PfcpError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u24(&mut self) -> Result<u32, PfcpError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub fn u32(&mut self) -> Result<u32, PfcpError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u40(&mut self) -> Result<u64, PfcpError> {
        let [a, b, c, d, e] = self.array()?;
        Ok(u64::from_be_bytes([0, 0, 0, a, b, c, d, e]))
    }

    pub fn u64(&mut self) -> Result<u64, PfcpError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn ipv4(&mut self) -> Result<Ipv4Addr, PfcpError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }

    pub fn ipv6(&mut self) -> Result<Ipv6Addr, PfcpError> {
        Ok(Ipv6Addr::from(self.array::<16>()?))
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Reads a bit-flag field of 1..=`N` octets (older releases define fewer
    /// octets); missing octets read as zero. Octet 5 ends up in the low byte.
    pub fn flags_le(&mut self, max: usize) -> Result<u32, PfcpError> {
        if self.buf.is_empty() {
            return Err(PfcpError::short(self.ie_type));
        }
        let n = self.buf.len().min(max);
        let mut v = 0u32;
        for (i, b) in self.take(n)?.iter().enumerate() {
            v |= u32::from(*b) << (8 * i);
        }
        Ok(v)
    }
}

/// Big-endian writer into a caller's buffer. It never panics: a write past the
/// end, or an IE longer than 65535 octets, is remembered and reported by
/// [`Writer::finish`].
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    err: Option<PfcpError>,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            pos: 0,
            err: None,
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => dst.copy_from_slice(b),
            None => {
                if self.err.is_none() {
                    self.err = Some(PfcpError::BufferTooSmall {
                        need: end,
                        got: self.buf.len(),
                    });
                }
            }
        }
        self.pos = end;
    }

    pub fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn u24(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes()[1..]);
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn u40(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes()[3..]);
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn ipv4(&mut self, a: &Ipv4Addr) {
        self.bytes(&a.octets());
    }
    pub fn ipv6(&mut self, a: &Ipv6Addr) {
        self.bytes(&a.octets());
    }

    /// Writes the low `n` octets of `v`, octet 5 first (see [`Reader::flags_le`]).
    pub fn flags_le(&mut self, v: u32, n: usize) {
        for i in 0..n {
            self.u8((v >> (8 * i)) as u8);
        }
    }

    pub fn fail(&mut self, ie_type: u16, reason: &'static str) {
        if self.err.is_none() {
            self.err = Some(PfcpError::Unencodable { ie_type, reason });
        }
    }

    /// Writes a placeholder 16-bit length and returns where it is.
    pub fn reserve_len(&mut self) -> usize {
        let at = self.pos;
        self.u16(0);
        at
    }

    /// Fills the length reserved at `at` with the octets written since.
    pub fn patch_len(&mut self, at: usize, ie_type: u16) {
        let len = self.pos - at - 2;
        let Ok(len16) = u16::try_from(len) else {
            self.fail(ie_type, "longer than 65535 octets");
            return;
        };
        if let Some(dst) = self.buf.get_mut(at..at + 2) {
            dst.copy_from_slice(&len16.to_be_bytes());
        }
    }

    pub fn finish(self) -> Result<usize, PfcpError> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(self.pos),
        }
    }
}

/// The value part of one IE: decoded from the octets after type and length,
/// encoded back. The IE type is the caller's (one Rust type may serve several
/// IE types, e.g. the three Usage Report IEs).
pub(crate) trait IeCodec: Sized {
    fn decode(ie_type: u16, v: &[u8]) -> Result<Self, PfcpError>;
    fn value_len(&self) -> usize;
    fn encode(&self, ie_type: u16, w: &mut Writer<'_>);
}

/// Writes one whole IE (type, length, value).
pub(crate) fn write_ie<T: IeCodec>(w: &mut Writer<'_>, ie_type: u16, v: &T) {
    w.u16(ie_type);
    let at = w.reserve_len();
    v.encode(ie_type, w);
    w.patch_len(at, ie_type);
}

/// Declares a `uN`-valued enum whose unknown code points survive as
/// `Unknown(n)` (after smoltcp's `enum_with_unknown!`). The first variant is
/// the `Default`.
macro_rules! enum_with_unknown {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($repr:ty) {
            $( $(#[$vattr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vattr])* $variant, )+
            /// A value this implementation does not know (kept as received).
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> Self {
                match v {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $crate::pfcp::codec::enum_with_unknown!(@first $name $($variant)+)
            }
        }
    };
    (@first $name:ident $first:ident $($rest:ident)*) => { $name::$first };
}

/// Declares a bit-flag newtype with named constants.
macro_rules! flags {
    (
        $(#[$attr:meta])*
        pub struct $name:ident($repr:ty) {
            $( $(#[$cattr:meta])* const $c:ident = $v:expr; )+
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$cattr])* pub const $c: $name = $name($v); )+

            /// Whether every flag of `other` is set.
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0 && other.0 != 0
            }

            /// Whether any flag of `other` is set.
            pub fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }
    };
}

/// Implements [`IeCodec`] for a leaf IE of a fixed length on emit: `$len`
/// octets, decoded by the expression `$decode` from the [`Reader`] `$r` over
/// the value (it may use `?`), encoded by `$encode` from `$v` (`&self`) into
/// the [`Writer`] `$w`.
macro_rules! fixed_ie_codec {
    ($name:ty, $len:expr, |$r:ident| $decode:expr, |$v:ident, $w:ident| $encode:expr $(,)?) => {
        impl $crate::pfcp::codec::IeCodec for $name {
            fn decode(ty: u16, v: &[u8]) -> Result<Self, $crate::pfcp::error::PfcpError> {
                let $r = &mut $crate::pfcp::codec::Reader::new(ty, v);
                Ok($decode)
            }
            fn value_len(&self) -> usize {
                $len
            }
            fn encode(&self, _: u16, $w: &mut $crate::pfcp::codec::Writer<'_>) {
                let $v = self;
                $encode;
            }
        }
    };
}

/// Implements [`IeCodec`] for an `enum_with_unknown!` enum carried in the
/// bits `$mask` of one octet (the other bits are spare: ignored on decode,
/// zero on encode).
macro_rules! enum_codec {
    ($name:ident, $mask:expr) => {
        $crate::pfcp::codec::fixed_ie_codec!($name, 1, |r| $name::from(r.u8()? & $mask), |v, w| w
            .u8(u8::from(*v) & $mask));
    };
}

/// Implements [`IeCodec`] for a `flags!` type of `$octets` octets, octet 5 in
/// the low byte (see [`Reader::flags_le`]: fewer octets are accepted).
macro_rules! flags_codec {
    ($name:ident, $repr:ty, $octets:expr) => {
        $crate::pfcp::codec::fixed_ie_codec!(
            $name,
            $octets,
            |r| $name(r.flags_le($octets)? as $repr),
            |v, w| w.flags_le(u32::from(v.0), $octets)
        );
    };
}

/// Implements [`IeCodec`] for newtypes over `Vec<u8>` kept as the IE value
/// as received (octet strings, bitmaps of any length).
macro_rules! octets_codec {
    ($($name:ident),+) => {$(
        impl $crate::pfcp::codec::IeCodec for $name {
            fn decode(_: u16, v: &[u8]) -> Result<Self, $crate::pfcp::error::PfcpError> {
                Ok($name(v.to_vec()))
            }
            fn value_len(&self) -> usize {
                self.0.len()
            }
            fn encode(&self, _: u16, w: &mut $crate::pfcp::codec::Writer<'_>) {
                w.bytes(&self.0);
            }
        }
    )+};
}

fixed_ie_codec!(u8, 1, |r| r.u8()?, |v, w| w.u8(*v));
fixed_ie_codec!(u16, 2, |r| r.u16()?, |v, w| w.u16(*v));
fixed_ie_codec!(u32, 4, |r| r.u32()?, |v, w| w.u32(*v));

macro_rules! slot_ty {
    (M, $t:ty) => { $t };
    (O, $t:ty) => { Option<$t> };
    (V, $t:ty) => { Vec<$t> };
    (V1, $t:ty) => { Vec<$t> };
}

macro_rules! slot_acc_ty {
    (M, $t:ty) => { Option<$t> };
    (O, $t:ty) => { Option<$t> };
    (V, $t:ty) => { Vec<$t> };
    (V1, $t:ty) => { Vec<$t> };
}

/// Stores a decoded IE in its slot; a second occurrence of a single-valued IE
/// is kept raw in `unknown` (the first one wins).
macro_rules! slot_put {
    (M, $acc:expr, $t:ty, $ie:expr, $unknown:expr) => {
        $crate::pfcp::codec::slot_put!(O, $acc, $t, $ie, $unknown)
    };
    (O, $acc:expr, $t:ty, $ie:expr, $unknown:expr) => {
        if $acc.is_none() {
            $acc = Some(<$t as $crate::pfcp::codec::IeCodec>::decode(
                $ie.ie_type,
                $ie.data,
            )?);
        } else {
            $unknown.push($ie.to_raw());
        }
    };
    (V, $acc:expr, $t:ty, $ie:expr, $unknown:expr) => {
        $acc.push(<$t as $crate::pfcp::codec::IeCodec>::decode(
            $ie.ie_type,
            $ie.data,
        )?)
    };
    (V1, $acc:expr, $t:ty, $ie:expr, $unknown:expr) => {
        $crate::pfcp::codec::slot_put!(V, $acc, $t, $ie, $unknown)
    };
}

macro_rules! slot_finish {
    (M, $acc:expr, $code:expr) => {
        match $acc {
            Some(v) => v,
            None => return Err($crate::pfcp::error::PfcpError::missing($code)),
        }
    };
    (O, $acc:expr, $code:expr) => {
        $acc
    };
    (V, $acc:expr, $code:expr) => {
        $acc
    };
    (V1, $acc:expr, $code:expr) => {{
        if $acc.is_empty() {
            return Err($crate::pfcp::error::PfcpError::missing($code));
        }
        $acc
    }};
}

macro_rules! slot_len {
    (M, $v:expr) => {
        4 + $crate::pfcp::codec::IeCodec::value_len(&$v)
    };
    (O, $v:expr) => {
        $v.as_ref()
            .map_or(0, |x| 4 + $crate::pfcp::codec::IeCodec::value_len(x))
    };
    (V, $v:expr) => {
        $v.iter()
            .map(|x| 4 + $crate::pfcp::codec::IeCodec::value_len(x))
            .sum::<usize>()
    };
    (V1, $v:expr) => {
        $crate::pfcp::codec::slot_len!(V, $v)
    };
}

macro_rules! slot_emit {
    (M, $w:expr, $v:expr, $code:expr) => {
        $crate::pfcp::codec::write_ie($w, $code, &$v)
    };
    (O, $w:expr, $v:expr, $code:expr) => {
        if let Some(x) = &$v {
            $crate::pfcp::codec::write_ie($w, $code, x);
        }
    };
    (V, $w:expr, $v:expr, $code:expr) => {
        for x in &$v {
            $crate::pfcp::codec::write_ie($w, $code, x);
        }
    };
    (V1, $w:expr, $v:expr, $code:expr) => {
        $crate::pfcp::codec::slot_emit!(V, $w, $v, $code)
    };
}

/// Declares a struct made of IEs: a grouped IE or a message body.
///
/// Each field is `name: KIND Type = IE_TYPE` where KIND is `M` (mandatory,
/// plain field), `O` (optional/conditional, `Option`), `V` (zero or more,
/// `Vec`) or `V1` (one or more, `Vec`). A `pub unknown: Vec<RawIe>` field is
/// added for IEs not listed. IEs are emitted in field order, then `unknown`.
macro_rules! grouped {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$fattr:meta])* $field:ident : $kind:ident $t:ty = $code:expr ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fattr])* pub $field: $crate::pfcp::codec::slot_ty!($kind, $t), )*
            /// IEs not modelled here (unknown, enterprise-specific, or known but
            /// not used by this implementation), in the order received.
            pub unknown: Vec<$crate::pfcp::codec::RawIe>,
        }

        impl $name {
            /// Decodes the IEs of a message body or grouped IE value.
            #[allow(unused_mut, clippy::redundant_closure_call)]
            pub(crate) fn decode_ies(buf: &[u8]) -> Result<Self, $crate::pfcp::error::PfcpError> {
                $( let mut $field: $crate::pfcp::codec::slot_acc_ty!($kind, $t) = Default::default(); )*
                let mut unknown: Vec<$crate::pfcp::codec::RawIe> = Vec::new();
                for ie in $crate::pfcp::codec::IeIter::new(buf) {
                    let ie = ie?;
                    if ie.enterprise_id.is_none() {
                        $(
                            if ie.ie_type == $code {
                                $crate::pfcp::codec::slot_put!($kind, $field, $t, ie, unknown);
                                continue;
                            }
                        )*
                    }
                    unknown.push(ie.to_raw());
                }
                Ok($name {
                    $( $field: $crate::pfcp::codec::slot_finish!($kind, $field, $code), )*
                    unknown,
                })
            }

            /// Octets of all IEs (headers included).
            pub(crate) fn ies_len(&self) -> usize {
                0 $( + $crate::pfcp::codec::slot_len!($kind, self.$field) )*
                    + self.unknown.iter().map(|u| 4 + u.value_len()).sum::<usize>()
            }

            pub(crate) fn encode_ies(&self, w: &mut $crate::pfcp::codec::Writer<'_>) {
                $( $crate::pfcp::codec::slot_emit!($kind, w, self.$field, $code); )*
                for u in &self.unknown {
                    u.emit(w);
                }
            }
        }
    };
}

/// Implements [`IeCodec`] for a struct made by `grouped!`, so it nests.
macro_rules! grouped_ie {
    ($name:ident) => {
        impl $crate::pfcp::codec::IeCodec for $name {
            fn decode(ie_type: u16, v: &[u8]) -> Result<Self, $crate::pfcp::error::PfcpError> {
                $name::decode_ies(v).map_err(|e| e.inside(ie_type))
            }
            fn value_len(&self) -> usize {
                self.ies_len()
            }
            fn encode(&self, _: u16, w: &mut $crate::pfcp::codec::Writer<'_>) {
                self.encode_ies(w)
            }
        }
    };
}

pub(crate) use {
    enum_codec, enum_with_unknown, fixed_ie_codec, flags, flags_codec, grouped, grouped_ie,
    octets_codec, slot_acc_ty, slot_emit, slot_finish, slot_len, slot_put, slot_ty,
};
