//! Owned representation of GTP-U messages (TS 29.281 §7).

use std::net::IpAddr;

use super::{
    ExtensionHeaderType, GtpuError, Ie, IeType, MessageType, Packet, PduSessionInfo, Result,
    HEADER_LEN, HEADER_LEN_WITH_OPTIONAL, MAX_EXTENSION_HEADERS, SUPPORTED_EXTENSION_HEADERS,
};

/// One extension header, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionHeaderRepr {
    /// PDU Session Container (0x85) with PDU type DL or UL.
    PduSessionContainer(PduSessionInfo),
    /// Any other header (including a PDU Session Container of another PDU
    /// type), kept raw: `content` is what lies between the length octet and
    /// the next-type octet, so `content.len() + 2` is a multiple of 4.
    Other {
        /// Raw type octet.
        ty: u8,
        /// Content, padding included.
        content: Vec<u8>,
    },
}

impl ExtensionHeaderRepr {
    /// The raw type octet.
    pub fn ty(&self) -> u8 {
        match self {
            ExtensionHeaderRepr::PduSessionContainer(_) => {
                u8::from(ExtensionHeaderType::PduSessionContainer)
            }
            ExtensionHeaderRepr::Other { ty, .. } => *ty,
        }
    }

    /// Length on the wire (a multiple of 4).
    pub fn buffer_len(&self) -> usize {
        match self {
            ExtensionHeaderRepr::PduSessionContainer(info) => info.ext_len(),
            ExtensionHeaderRepr::Other { content, .. } => content.len() + 2,
        }
    }

    fn emit(&self, buf: &mut [u8], next: u8) -> Result<usize> {
        match self {
            ExtensionHeaderRepr::PduSessionContainer(info) => info.emit(buf, next),
            ExtensionHeaderRepr::Other { ty, content } => {
                if *ty == 0 {
                    return Err(GtpuError::ExtensionTypeZero);
                }
                let len = content.len() + 2;
                if len % 4 != 0 || len > 4 * 255 {
                    return Err(GtpuError::BadExtensionLength(content.len()));
                }
                let have = buf.len();
                let out = buf
                    .get_mut(..len)
                    .ok_or(GtpuError::BufferTooSmall { need: len, have })?;
                out[0] = (len / 4) as u8; // <= 255, checked above
                out[1..len - 1].copy_from_slice(content);
                out[len - 1] = next;
                Ok(len)
            }
        }
    }
}

/// The body of a GTP-U message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// G-PDU: `payload_len` octets of T-PDU follow the header. `emit` writes
    /// the header only; the caller puts the T-PDU at `header_len()`.
    GPdu {
        /// Length of the T-PDU.
        payload_len: usize,
    },
    /// Echo Request (§7.2.1). `ies`: Private Extension, if any.
    EchoRequest {
        /// Optional and unknown IEs, in order.
        ies: Vec<Ie>,
    },
    /// Echo Response (§7.2.2).
    EchoResponse {
        /// Recovery IE restart counter (mandatory; 0 on GTP-U).
        recovery: u8,
        /// Other IEs (Private Extension, unknown), in order.
        ies: Vec<Ie>,
    },
    /// Error Indication (§7.3.1).
    ErrorIndication {
        /// Tunnel Endpoint Identifier Data I: the TEID of the G-PDU that
        /// caused the indication.
        teid_data: u32,
        /// GTP-U Peer Address: the destination address of that G-PDU.
        peer: IpAddr,
        /// Other IEs (Private Extension, unknown), in order.
        ies: Vec<Ie>,
    },
    /// End Marker (§7.3.2).
    EndMarker {
        /// Optional and unknown IEs, in order.
        ies: Vec<Ie>,
    },
    /// Supported Extension Headers Notification (§7.3.3).
    SupportedExtensionHeadersNotification {
        /// Extension Header Type List IE.
        types: Vec<ExtensionHeaderType>,
        /// Other IEs, in order.
        ies: Vec<Ie>,
    },
    /// A message type not decoded here, body kept raw.
    Unknown {
        /// Message type.
        message_type: u8,
        /// Everything after the headers.
        body: Vec<u8>,
    },
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::GPdu { .. } => MessageType::GPdu,
            Message::EchoRequest { .. } => MessageType::EchoRequest,
            Message::EchoResponse { .. } => MessageType::EchoResponse,
            Message::ErrorIndication { .. } => MessageType::ErrorIndication,
            Message::EndMarker { .. } => MessageType::EndMarker,
            Message::SupportedExtensionHeadersNotification { .. } => {
                MessageType::SupportedExtensionHeadersNotification
            }
            Message::Unknown { message_type, .. } => MessageType::from(*message_type),
        }
    }
}

/// A GTP-U message: header fields plus [`Message`] body.
///
/// `seq` is `Some` exactly when the S flag is set, `npdu` when PN is set, and
/// the E flag is set when `extensions` is not empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Tunnel endpoint identifier (0 for Echo, Error Indication and
    /// Supported Extension Headers Notification).
    pub teid: u32,
    /// Sequence number.
    pub seq: Option<u16>,
    /// N-PDU number.
    pub npdu: Option<u8>,
    /// Extension header chain, in order.
    pub extensions: Vec<ExtensionHeaderRepr>,
    /// The message.
    pub message: Message,
}

/// Takes the first IE of type `ty` out of `ies`.
fn take_ie(ies: &mut Vec<Ie>, ty: IeType) -> Option<Ie> {
    let pos = ies.iter().position(|ie| ie.ie_type() == ty)?;
    Some(ies.remove(pos))
}

impl Repr {
    /// An Echo Request with sequence number `seq` (TEID 0, S flag set).
    pub fn echo_request(seq: u16) -> Repr {
        Repr {
            teid: 0,
            seq: Some(seq),
            npdu: None,
            extensions: Vec::new(),
            message: Message::EchoRequest { ies: Vec::new() },
        }
    }

    /// The Echo Response to a request with sequence number `seq`.
    pub fn echo_response(seq: u16) -> Repr {
        Repr {
            teid: 0,
            seq: Some(seq),
            npdu: None,
            extensions: Vec::new(),
            message: Message::EchoResponse {
                recovery: 0,
                ies: Vec::new(),
            },
        }
    }

    /// An Error Indication for a G-PDU received with `teid` at `local_addr`.
    pub fn error_indication(teid: u32, local_addr: IpAddr) -> Repr {
        Repr {
            teid: 0,
            seq: Some(0),
            npdu: None,
            extensions: Vec::new(),
            message: Message::ErrorIndication {
                teid_data: teid,
                peer: local_addr,
                ies: Vec::new(),
            },
        }
    }

    /// An End Marker on tunnel `teid`.
    pub fn end_marker(teid: u32) -> Repr {
        Repr {
            teid,
            seq: None,
            npdu: None,
            extensions: Vec::new(),
            message: Message::EndMarker { ies: Vec::new() },
        }
    }

    /// A Supported Extension Headers Notification listing
    /// [`SUPPORTED_EXTENSION_HEADERS`].
    pub fn supported_extension_headers_notification(seq: u16) -> Repr {
        Repr {
            teid: 0,
            seq: Some(seq),
            npdu: None,
            extensions: Vec::new(),
            message: Message::SupportedExtensionHeadersNotification {
                types: SUPPORTED_EXTENSION_HEADERS.to_vec(),
                ies: Vec::new(),
            },
        }
    }

    /// Parses a whole message from bytes (a UDP payload).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Repr> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    /// Parses a packet. Runs [`Packet::check`] itself, so an unchecked view is
    /// fine too. Unknown extension headers with comprehension required give
    /// [`GtpuError::UnknownRequiredExtension`]; other unknown ones are kept
    /// as [`ExtensionHeaderRepr::Other`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check()?;
        let mut extensions = Vec::new();
        for ext in packet.extension_headers() {
            let ext = ext?;
            let ty = ext.ext_type();
            let repr = match ty {
                ExtensionHeaderType::PduSessionContainer => {
                    match PduSessionInfo::parse(ext.content)? {
                        Some(info) => ExtensionHeaderRepr::PduSessionContainer(info),
                        None => ExtensionHeaderRepr::Other {
                            ty: ext.ty,
                            content: ext.content.to_vec(),
                        },
                    }
                }
                ExtensionHeaderType::Unknown(t) if ty.comprehension_required() => {
                    return Err(GtpuError::UnknownRequiredExtension(t))
                }
                _ => ExtensionHeaderRepr::Other {
                    ty: ext.ty,
                    content: ext.content.to_vec(),
                },
            };
            extensions.push(repr);
        }
        let body = packet.payload();
        let message = match packet.message_type() {
            MessageType::GPdu => Message::GPdu {
                payload_len: body.len(),
            },
            MessageType::EchoRequest => Message::EchoRequest {
                ies: Ie::parse_all(body)?,
            },
            MessageType::EchoResponse => {
                let mut ies = Ie::parse_all(body)?;
                let Some(Ie::Recovery(recovery)) = take_ie(&mut ies, IeType::Recovery) else {
                    return Err(GtpuError::MissingIe(IeType::Recovery.into()));
                };
                Message::EchoResponse { recovery, ies }
            }
            MessageType::ErrorIndication => {
                let mut ies = Ie::parse_all(body)?;
                let Some(Ie::TeidDataI(teid_data)) = take_ie(&mut ies, IeType::TeidDataI) else {
                    return Err(GtpuError::MissingIe(IeType::TeidDataI.into()));
                };
                let Some(Ie::PeerAddress(peer)) = take_ie(&mut ies, IeType::PeerAddress) else {
                    return Err(GtpuError::MissingIe(IeType::PeerAddress.into()));
                };
                Message::ErrorIndication {
                    teid_data,
                    peer,
                    ies,
                }
            }
            MessageType::EndMarker => Message::EndMarker {
                ies: Ie::parse_all(body)?,
            },
            MessageType::SupportedExtensionHeadersNotification => {
                let mut ies = Ie::parse_all(body)?;
                let Some(Ie::ExtensionHeaderTypeList(types)) =
                    take_ie(&mut ies, IeType::ExtensionHeaderTypeList)
                else {
                    return Err(GtpuError::MissingIe(IeType::ExtensionHeaderTypeList.into()));
                };
                Message::SupportedExtensionHeadersNotification { types, ies }
            }
            other => Message::Unknown {
                message_type: other.into(),
                body: body.to_vec(),
            },
        };
        Ok(Repr {
            teid: packet.teid(),
            seq: packet.seq_number(),
            npdu: packet.npdu_number(),
            extensions,
            message,
        })
    }

    fn has_optional_fields(&self) -> bool {
        self.seq.is_some() || self.npdu.is_some() || !self.extensions.is_empty()
    }

    /// Length of all headers (mandatory, optional fields, extension headers).
    pub fn header_len(&self) -> usize {
        if !self.has_optional_fields() {
            return HEADER_LEN;
        }
        HEADER_LEN_WITH_OPTIONAL
            + self
                .extensions
                .iter()
                .map(ExtensionHeaderRepr::buffer_len)
                .sum::<usize>()
    }

    /// Length of the body after the headers (the T-PDU of a G-PDU).
    pub fn body_len(&self) -> usize {
        let ies_len = |ies: &[Ie]| ies.iter().map(Ie::buffer_len).sum::<usize>();
        match &self.message {
            Message::GPdu { payload_len } => *payload_len,
            Message::EchoRequest { ies } | Message::EndMarker { ies } => ies_len(ies),
            Message::EchoResponse { ies, .. } => 2 + ies_len(ies),
            Message::ErrorIndication { peer, ies, .. } => {
                5 + Ie::PeerAddress(*peer).buffer_len() + ies_len(ies)
            }
            Message::SupportedExtensionHeadersNotification { types, ies } => {
                2 + types.len() + ies_len(ies)
            }
            Message::Unknown { body, .. } => body.len(),
        }
    }

    /// Length of the whole message, `8 + length`.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.body_len()
    }

    /// Writes the message into `buf[..self.buffer_len()]`, except the T-PDU
    /// of a G-PDU, which the caller writes at `buf[self.header_len()..]`.
    /// Returns `buffer_len()`. Known IEs are written first, in the order of
    /// TS 29.281 §7, then `ies` in their order.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.buffer_len();
        if buf.len() < total {
            return Err(GtpuError::BufferTooSmall {
                need: total,
                have: buf.len(),
            });
        }
        let length = u16::try_from(total - HEADER_LEN)
            .map_err(|_| GtpuError::TooLong(total - HEADER_LEN))?;
        if self.extensions.len() > MAX_EXTENSION_HEADERS {
            return Err(GtpuError::TooManyExtensions {
                max: MAX_EXTENSION_HEADERS,
            });
        }
        let buf = &mut buf[..total];
        {
            let mut packet = Packet::new_unchecked(&mut *buf);
            packet.set_flags(
                !self.extensions.is_empty(),
                self.seq.is_some(),
                self.npdu.is_some(),
            );
            packet.set_message_type(self.message.message_type());
            packet.set_length(length);
            packet.set_teid(self.teid);
            if self.has_optional_fields() {
                packet.set_seq_number(self.seq.unwrap_or(0));
                packet.set_npdu_number(self.npdu.unwrap_or(0));
                packet.set_next_extension_type(self.extensions.first().map_or(0, |e| e.ty()));
            }
        }
        let mut pos = if self.has_optional_fields() {
            HEADER_LEN_WITH_OPTIONAL
        } else {
            HEADER_LEN
        };
        for (i, ext) in self.extensions.iter().enumerate() {
            let next = self.extensions.get(i + 1).map_or(0, |e| e.ty());
            pos += ext.emit(&mut buf[pos..], next)?;
        }
        fn put(buf: &mut [u8], pos: &mut usize, ie: &Ie) -> Result<()> {
            *pos += ie.emit(&mut buf[*pos..])?;
            Ok(())
        }
        let ies = match &self.message {
            Message::GPdu { .. } => return Ok(total),
            Message::Unknown { body, .. } => {
                buf[pos..].copy_from_slice(body);
                return Ok(total);
            }
            Message::EchoRequest { ies } | Message::EndMarker { ies } => ies,
            Message::EchoResponse { recovery, ies } => {
                put(buf, &mut pos, &Ie::Recovery(*recovery))?;
                ies
            }
            Message::ErrorIndication {
                teid_data,
                peer,
                ies,
            } => {
                put(buf, &mut pos, &Ie::TeidDataI(*teid_data))?;
                put(buf, &mut pos, &Ie::PeerAddress(*peer))?;
                ies
            }
            Message::SupportedExtensionHeadersNotification { types, ies } => {
                let n = u8::try_from(types.len()).map_err(|_| GtpuError::BadIe {
                    ty: IeType::ExtensionHeaderTypeList.into(),
                    len: types.len(),
                })?;
                buf[pos] = IeType::ExtensionHeaderTypeList.into();
                buf[pos + 1] = n;
                for (o, t) in buf[pos + 2..].iter_mut().zip(types) {
                    *o = u8::from(*t);
                }
                pos += 2 + types.len();
                ies
            }
        };
        for ie in ies {
            put(buf, &mut pos, ie)?;
        }
        Ok(total)
    }
}
