//! GTP-U v1 (3GPP TS 29.281) with the PDU Session Container extension header
//! (3GPP TS 38.415).
//!
//! Three layers, in the smoltcp manner:
//!
//! - [`Packet`]: a zero-copy view over a byte buffer. [`Packet::new_checked`]
//!   validates the header, the optional fields and the whole extension header
//!   chain once; afterwards no accessor can panic. Setters exist for
//!   `AsMut<[u8]>` buffers.
//! - [`Repr`]: the owned, parsed form of any GTP-U message (G-PDU header,
//!   Echo Request/Response, Error Indication, End Marker, Supported Extension
//!   Headers Notification, and unknown messages kept as raw bytes), with
//!   `parse`, `emit` and `buffer_len`.
//! - The data path: [`encap_in_place`] writes a [`GpduHeader`] in front of a
//!   payload that already sits in the caller's buffer (leave
//!   [`MAX_GPDU_HEADER_LEN`] bytes of headroom, or [`GpduHeader::header_len`]
//!   exactly), and [`decap`] returns TEID, QFI, sequence number and the inner
//!   payload as a sub-slice. Neither allocates.
//!
//! ```
//! use wire::gtpu::{decap, encap_in_place, GpduHeader, MAX_GPDU_HEADER_LEN};
//!
//! // UPF downlink: the inner packet was read (e.g. from TUN) at offset
//! // MAX_GPDU_HEADER_LEN of a preallocated buffer.
//! let mut buf = [0u8; MAX_GPDU_HEADER_LEN + 1500];
//! let n = 40; // bytes read
//! buf[MAX_GPDU_HEADER_LEN] = 0x45;
//! let pkt = encap_in_place(&mut buf, MAX_GPDU_HEADER_LEN, n, &GpduHeader::dl(0x1234, 9))?;
//! assert_eq!(pkt.len(), 16 + n); // send `pkt` to the gNB's UDP port 2152
//!
//! // gNB: the datagram received from the UPF.
//! let d = decap(pkt)?;
//! assert_eq!((d.teid, d.qfi(), d.payload.len()), (0x1234, Some(9), n));
//! # Ok::<(), wire::gtpu::GtpuError>(())
//! ```
//!
//! Extension headers whose type is not known here are skipped when the type
//! says comprehension is not required (bit 8 clear, TS 29.281 §5.2.1) and
//! reported as [`GtpuError::UnknownRequiredExtension`] when it is required, so
//! the caller can answer with a Supported Extension Headers Notification
//! ([`Repr::supported_extension_headers_notification`]).

/// Declares a `u8`-valued enum whose unknown code points survive as
/// `Unknown(n)` (after smoltcp's `enum_with_unknown!`).
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$variant_attr])* $variant ),+,
            /// A code point this implementation does not know.
            Unknown(u8),
        }

        impl ::core::convert::From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $( $value => $name::$variant ),+,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for u8 {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),+,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

mod datapath;
mod ext;
mod ie;
mod packet;
mod repr;

pub use datapath::{decap, encap_in_place, Decapped, GpduHeader};
pub use ext::{
    DlPduSessionInfo, ExtensionHeaderType, PduSessionInfo, UlPduSessionInfo, UlQosMonitoring,
    MAX_PDU_SESSION_CONTAINER_LEN, SUPPORTED_EXTENSION_HEADERS,
};
pub use ie::{Ie, IeType};
pub use packet::{ExtensionHeaderRef, ExtensionHeaders, Packet};
pub use repr::{ExtensionHeaderRepr, Message, Repr};

/// The registered UDP port of GTP-U (TS 29.281 §4.4.2.0).
pub const PORT: u16 = 2152;

/// Length of the mandatory part of the GTP-U header.
pub const HEADER_LEN: usize = 8;

/// Length of the mandatory header plus the optional sequence number, N-PDU
/// number and next extension header type fields (present when any of the E,
/// S or PN flags is set).
pub const HEADER_LEN_WITH_OPTIONAL: usize = 12;

/// The longest header [`encap_in_place`] can write: mandatory and optional
/// fields plus the largest PDU Session Container (an UL PDU SESSION
/// INFORMATION carrying every optional field). This is the headroom a data
/// path that does not want to compute [`GpduHeader::header_len`] should leave
/// in front of each payload. The common case (DL or UL container with only a
/// QFI) needs 16 bytes.
pub const MAX_GPDU_HEADER_LEN: usize = HEADER_LEN_WITH_OPTIONAL + MAX_PDU_SESSION_CONTAINER_LEN;

/// At most this many extension headers are followed in one packet; a longer
/// chain is [`GtpuError::TooManyExtensions`]. Real traffic carries one or two.
pub const MAX_EXTENSION_HEADERS: usize = 16;

enum_with_unknown! {
    /// GTP-U message types (TS 29.281 Table 6.1-1).
    pub enum MessageType {
        /// Echo Request (1).
        EchoRequest = 1,
        /// Echo Response (2).
        EchoResponse = 2,
        /// Error Indication (26).
        ErrorIndication = 26,
        /// Supported Extension Headers Notification (31).
        SupportedExtensionHeadersNotification = 31,
        /// Tunnel Status (253), kept as an unknown message body by [`Repr`].
        TunnelStatus = 253,
        /// End Marker (254).
        EndMarker = 254,
        /// G-PDU (255): a T-PDU (the user packet) follows the header.
        GPdu = 255,
    }
}

/// Errors of the GTP-U codec. Every malformed input maps to one of these;
/// no parser panics or reads past its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GtpuError {
    /// The buffer is shorter than the packet claims: `need` bytes are needed,
    /// `have` are there.
    #[error("truncated GTP-U packet: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The version field is not 1 (GTPv2-C has 2, GTPv0 has 0).
    #[error("unsupported GTP version {0}")]
    BadVersion(u8),
    /// The protocol type bit is 0 (GTP'), not 1 (GTP).
    #[error("protocol type is GTP' (PT=0), not GTP")]
    BadProtocolType,
    /// The length field is too small for the optional fields and extension
    /// headers that the header itself announces.
    #[error("GTP-U length field {length} too small, the headers need {need}")]
    LengthMismatch {
        /// Value of the length field.
        length: u16,
        /// Bytes after the mandatory header that the headers need.
        need: usize,
    },
    /// An extension header has length 0 (which would loop forever).
    #[error("extension header of type {0:#04x} has length zero")]
    ZeroLengthExtension(u8),
    /// The extension header chain is longer than [`MAX_EXTENSION_HEADERS`].
    #[error("extension header chain longer than {max}")]
    TooManyExtensions {
        /// The limit.
        max: usize,
    },
    /// An extension header of unknown type whose comprehension is required
    /// (TS 29.281 §5.2.1); the receiver should drop the packet and may send
    /// a Supported Extension Headers Notification.
    #[error("unknown extension header {0:#04x} with comprehension required")]
    UnknownRequiredExtension(u8),
    /// A PDU Session Container whose content is shorter than its flags
    /// announce (or empty).
    #[error("malformed PDU Session Container")]
    BadPduSessionContainer,
    /// An extension header content length that cannot be emitted (content
    /// plus 2 octets must be a positive multiple of 4, at most 1020).
    #[error("extension header content of {0} bytes cannot be encoded")]
    BadExtensionLength(usize),
    /// An extension header of type 0 cannot be emitted: 0 ends the chain.
    #[error("extension header type 0 cannot be emitted")]
    ExtensionTypeZero,
    /// An information element is truncated or has a length its type forbids.
    #[error("malformed information element of type {ty} (length {len})")]
    BadIe {
        /// IE type.
        ty: u8,
        /// Offending length.
        len: usize,
    },
    /// A mandatory information element is missing.
    #[error("mandatory information element of type {0} missing")]
    MissingIe(u8),
    /// The output buffer (or the headroom in front of the payload) is too
    /// small.
    #[error("buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The message would not fit the 16-bit length field.
    #[error("GTP-U message too long: {0} bytes after the mandatory header")]
    TooLong(usize),
}

/// Result type of this module.
pub type Result<T> = core::result::Result<T, GtpuError>;
