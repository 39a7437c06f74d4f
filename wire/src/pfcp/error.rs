//! Errors of the PFCP codec, with the 3GPP cause a responder sends back.

use super::ie::Cause;

/// Where in the message stream an error happened: the header fields a
/// responder needs to address its answer (TS 29.244 §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgContext {
    /// Message type of the request that failed to parse.
    pub msg_type: u8,
    /// Sequence number of the request (echoed in the response).
    pub seq: u32,
    /// SEID of the header, for session messages.
    pub seid: Option<u64>,
}

/// A PFCP decode or encode failure.
///
/// IE-level variants carry the IE type (for the Offending IE), the type of the
/// top-level grouped IE it sat in (if nested) and, once the header parsed,
/// the message context. [`PfcpError::cause`] gives the cause to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PfcpError {
    /// The buffer is shorter than the PFCP header needs.
    #[error("truncated PFCP message: need {need} octets, got {got}")]
    Truncated {
        /// Octets the header (or the declared length) needs.
        need: usize,
        /// Octets available.
        got: usize,
    },
    /// The header's version is not 1 (answer with Version Not Supported Response).
    #[error("PFCP version {0} not supported")]
    UnsupportedVersion(u8),
    /// The header's message length is too small for the header fields it flags.
    #[error("PFCP message length {declared} too small for its header")]
    BadMessageLength {
        /// The length field of the header.
        declared: usize,
    },
    /// The S flag does not match the message type (node messages carry no
    /// SEID, session messages must).
    #[error("S flag {s} is wrong for message type {msg_type}")]
    SeidFlag {
        /// The message type.
        msg_type: u8,
        /// The S flag received.
        s: bool,
        /// Header context.
        ctx: MsgContext,
    },
    /// A mandatory IE (or a mandatory IE of a grouped IE) is missing.
    #[error("mandatory IE type {ie_type} missing{}", within_str(*.within))]
    MissingIe {
        /// Type of the missing IE.
        ie_type: u16,
        /// The top-level grouped IE it should have been in.
        within: Option<u16>,
        /// Header context, if the header parsed.
        ctx: Option<MsgContext>,
    },
    /// An IE is shorter than its fields need, or runs past its enclosing
    /// message or grouped IE.
    #[error("IE type {ie_type} has an invalid length{}", within_str(*.within))]
    InvalidLength {
        /// Type of the IE.
        ie_type: u16,
        /// The top-level grouped IE it sat in.
        within: Option<u16>,
        /// Header context, if the header parsed.
        ctx: Option<MsgContext>,
    },
    /// Octets after the last IE are too few to make an IE header.
    #[error("{count} trailing octets after the last IE{}", within_str(*.within))]
    TrailingOctets {
        /// How many octets are left over.
        count: usize,
        /// The grouped IE whose content ended so.
        within: Option<u16>,
        /// Header context, if the header parsed.
        ctx: Option<MsgContext>,
    },
    /// An IE's content is not valid (reserved value, inconsistent flags,
    /// bad encoding).
    #[error("IE type {ie_type} incorrect: {reason}{}", within_str(*.within))]
    InvalidIe {
        /// Type of the IE.
        ie_type: u16,
        /// What is wrong.
        reason: &'static str,
        /// The top-level grouped IE it sat in.
        within: Option<u16>,
        /// Header context, if the header parsed.
        ctx: Option<MsgContext>,
    },
    /// Emit: the output buffer is smaller than [`buffer_len`](super::Message::buffer_len).
    #[error("buffer too small: need {need} octets, got {got}")]
    BufferTooSmall {
        /// Octets needed.
        need: usize,
        /// Octets available.
        got: usize,
    },
    /// Emit: an IE or the message would exceed the 16-bit length field, or a
    /// value cannot be encoded (e.g. an FQDN label over 63 octets).
    #[error("cannot encode IE type {ie_type}: {reason}")]
    Unencodable {
        /// Type of the IE (0 for the message itself).
        ie_type: u16,
        /// What is wrong.
        reason: &'static str,
    },
}

fn within_str(within: Option<u16>) -> String {
    match within {
        Some(t) => format!(" (inside IE type {t})"),
        None => String::new(),
    }
}

impl PfcpError {
    /// The cause a responder puts in its answer (TS 29.244 §7.6, Table 8.2.1-1):
    /// 66 Mandatory IE missing, 68 Invalid length, 69 Mandatory IE incorrect,
    /// 64 Request rejected otherwise.
    pub fn cause(&self) -> Cause {
        match self {
            PfcpError::MissingIe { .. } => Cause::MandatoryIeMissing,
            PfcpError::InvalidLength { .. }
            | PfcpError::TrailingOctets { .. }
            | PfcpError::BadMessageLength { .. }
            | PfcpError::Truncated { .. } => Cause::InvalidLength,
            PfcpError::InvalidIe { .. } => Cause::MandatoryIeIncorrect,
            _ => Cause::RequestRejected,
        }
    }

    /// The IE type for the Offending IE of the answer, when one IE is to blame.
    pub fn offending_ie(&self) -> Option<u16> {
        match self {
            PfcpError::MissingIe { ie_type, .. }
            | PfcpError::InvalidLength { ie_type, .. }
            | PfcpError::InvalidIe { ie_type, .. } => Some(*ie_type),
            _ => None,
        }
    }

    /// The top-level grouped IE (e.g. Create PDR) the offending IE sat in.
    pub fn within(&self) -> Option<u16> {
        match self {
            PfcpError::MissingIe { within, .. }
            | PfcpError::InvalidLength { within, .. }
            | PfcpError::TrailingOctets { within, .. }
            | PfcpError::InvalidIe { within, .. } => *within,
            _ => None,
        }
    }

    /// Message type, sequence number and SEID of the failed request, when its
    /// header parsed: enough to address a rejection.
    pub fn context(&self) -> Option<MsgContext> {
        match self {
            PfcpError::MissingIe { ctx, .. }
            | PfcpError::InvalidLength { ctx, .. }
            | PfcpError::TrailingOctets { ctx, .. }
            | PfcpError::InvalidIe { ctx, .. } => *ctx,
            PfcpError::SeidFlag { ctx, .. } => Some(*ctx),
            _ => None,
        }
    }

    pub(crate) fn missing(ie_type: u16) -> Self {
        PfcpError::MissingIe {
            ie_type,
            within: None,
            ctx: None,
        }
    }

    pub(crate) fn short(ie_type: u16) -> Self {
        PfcpError::InvalidLength {
            ie_type,
            within: None,
            ctx: None,
        }
    }

    pub(crate) fn invalid(ie_type: u16, reason: &'static str) -> Self {
        PfcpError::InvalidIe {
            ie_type,
            reason,
            within: None,
            ctx: None,
        }
    }

    /// Records that the error happened inside grouped IE `outer`; called at
    /// each level on the way up, so the outermost one is kept.
    pub(crate) fn inside(mut self, outer: u16) -> Self {
        match &mut self {
            PfcpError::MissingIe { within, .. }
            | PfcpError::InvalidLength { within, .. }
            | PfcpError::TrailingOctets { within, .. }
            | PfcpError::InvalidIe { within, .. } => *within = Some(outer),
            _ => {}
        }
        self
    }

    pub(crate) fn in_message(mut self, c: MsgContext) -> Self {
        match &mut self {
            PfcpError::MissingIe { ctx, .. }
            | PfcpError::InvalidLength { ctx, .. }
            | PfcpError::TrailingOctets { ctx, .. }
            | PfcpError::InvalidIe { ctx, .. } => *ctx = Some(c),
            _ => {}
        }
        self
    }
}
