//! GTP-U information elements (TS 29.281 §8).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ExtensionHeaderType, GtpuError, Result};

enum_with_unknown! {
    /// Information element types used by GTP-U (TS 29.281 Table 8.1-1).
    /// Types below 128 are TV (fixed length), from 128 on TLV with a 2-octet
    /// length, except the Extension Header Type List whose length is 1 octet.
    pub enum IeType {
        /// Recovery (14), TV, 1 octet.
        Recovery = 14,
        /// Tunnel Endpoint Identifier Data I (16), TV, 4 octets.
        TeidDataI = 16,
        /// GTP-U Peer Address (133), TLV, 4 or 16 octets.
        PeerAddress = 133,
        /// Extension Header Type List (141), 1-octet length.
        ExtensionHeaderTypeList = 141,
        /// Private Extension (255), TLV.
        PrivateExtension = 255,
    }
}

/// One information element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ie {
    /// Recovery: the restart counter (0 on GTP-U, ignored by receivers).
    Recovery(u8),
    /// Tunnel Endpoint Identifier Data I.
    TeidDataI(u32),
    /// GTP-U Peer Address.
    PeerAddress(IpAddr),
    /// Extension Header Type List.
    ExtensionHeaderTypeList(Vec<ExtensionHeaderType>),
    /// Private Extension: extension identifier and value.
    PrivateExtension {
        /// Extension identifier (an IANA enterprise number).
        id: u16,
        /// Extension value.
        value: Vec<u8>,
    },
    /// An IE of another type, kept raw. For a TLV type (>= 128) `data` is the
    /// value. A TV type (< 128) other than 14 and 16 has no length this
    /// implementation knows, so `data` is everything after its type octet up
    /// to the end of the message.
    Unknown {
        /// IE type.
        ty: u8,
        /// Value.
        data: Vec<u8>,
    },
}

impl Ie {
    /// The IE type.
    pub fn ie_type(&self) -> IeType {
        match self {
            Ie::Recovery(_) => IeType::Recovery,
            Ie::TeidDataI(_) => IeType::TeidDataI,
            Ie::PeerAddress(_) => IeType::PeerAddress,
            Ie::ExtensionHeaderTypeList(_) => IeType::ExtensionHeaderTypeList,
            Ie::PrivateExtension { .. } => IeType::PrivateExtension,
            Ie::Unknown { ty, .. } => IeType::from(*ty),
        }
    }

    /// Parses one IE at the start of `buf`; returns it and its length.
    pub fn parse(buf: &[u8]) -> Result<(Ie, usize)> {
        let Some(&ty) = buf.first() else {
            return Err(GtpuError::Truncated { need: 1, have: 0 });
        };
        let bad = |len| GtpuError::BadIe { ty, len };
        match IeType::from(ty) {
            IeType::Recovery => {
                let v = buf.get(1).ok_or(bad(buf.len() - 1))?;
                Ok((Ie::Recovery(*v), 2))
            }
            IeType::TeidDataI => {
                let v = buf.get(1..5).ok_or(bad(buf.len() - 1))?;
                Ok((
                    Ie::TeidDataI(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                    5,
                ))
            }
            IeType::ExtensionHeaderTypeList => {
                let n = usize::from(*buf.get(1).ok_or(bad(0))?);
                let v = buf.get(2..2 + n).ok_or(bad(n))?;
                let list = v.iter().map(|&t| ExtensionHeaderType::from(t)).collect();
                Ok((Ie::ExtensionHeaderTypeList(list), 2 + n))
            }
            _ if ty < 128 => Ok((
                Ie::Unknown {
                    ty,
                    data: buf[1..].to_vec(),
                },
                buf.len(),
            )),
            t => {
                let l = buf.get(1..3).ok_or(bad(0))?;
                let n = usize::from(u16::from_be_bytes([l[0], l[1]]));
                let v = buf.get(3..3 + n).ok_or(bad(n))?;
                let ie = match t {
                    IeType::PeerAddress => match v.len() {
                        4 => Ie::PeerAddress(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
                        16 => {
                            let mut a = [0u8; 16];
                            a.copy_from_slice(v);
                            Ie::PeerAddress(IpAddr::V6(Ipv6Addr::from(a)))
                        }
                        n => return Err(bad(n)),
                    },
                    IeType::PrivateExtension => {
                        if v.len() < 2 {
                            return Err(bad(v.len()));
                        }
                        Ie::PrivateExtension {
                            id: u16::from_be_bytes([v[0], v[1]]),
                            value: v[2..].to_vec(),
                        }
                    }
                    _ => Ie::Unknown {
                        ty,
                        data: v.to_vec(),
                    },
                };
                Ok((ie, 3 + n))
            }
        }
    }

    /// Parses a sequence of IEs filling `buf`.
    pub fn parse_all(mut buf: &[u8]) -> Result<Vec<Ie>> {
        let mut ies = Vec::new();
        while !buf.is_empty() {
            let (ie, len) = Ie::parse(buf)?;
            ies.push(ie);
            buf = buf.get(len..).unwrap_or(&[]);
        }
        Ok(ies)
    }

    /// Length on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            Ie::Recovery(_) => 2,
            Ie::TeidDataI(_) => 5,
            Ie::PeerAddress(IpAddr::V4(_)) => 3 + 4,
            Ie::PeerAddress(IpAddr::V6(_)) => 3 + 16,
            Ie::ExtensionHeaderTypeList(list) => 2 + list.len(),
            Ie::PrivateExtension { value, .. } => 3 + 2 + value.len(),
            Ie::Unknown { ty, data } if *ty < 128 => 1 + data.len(),
            Ie::Unknown { data, .. } => 3 + data.len(),
        }
    }

    /// Writes the IE into `buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let have = buf.len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(GtpuError::BufferTooSmall { need: len, have });
        };
        let tlv_len = |n: usize| -> Result<[u8; 2]> {
            u16::try_from(n)
                .map(u16::to_be_bytes)
                .map_err(|_| GtpuError::BadIe {
                    ty: u8::from(self.ie_type()),
                    len: n,
                })
        };
        out[0] = u8::from(self.ie_type());
        match self {
            Ie::Recovery(v) => out[1] = *v,
            Ie::TeidDataI(v) => out[1..5].copy_from_slice(&v.to_be_bytes()),
            Ie::PeerAddress(addr) => {
                let octets: &[u8] = match addr {
                    IpAddr::V4(a) => &a.octets(),
                    IpAddr::V6(a) => &a.octets(),
                };
                out[1..3].copy_from_slice(&tlv_len(octets.len())?);
                out[3..].copy_from_slice(octets);
            }
            Ie::ExtensionHeaderTypeList(list) => {
                out[1] = u8::try_from(list.len()).map_err(|_| GtpuError::BadIe {
                    ty: out[0],
                    len: list.len(),
                })?;
                for (o, t) in out[2..].iter_mut().zip(list) {
                    *o = u8::from(*t);
                }
            }
            Ie::PrivateExtension { id, value } => {
                out[1..3].copy_from_slice(&tlv_len(2 + value.len())?);
                out[3..5].copy_from_slice(&id.to_be_bytes());
                out[5..].copy_from_slice(value);
            }
            Ie::Unknown { ty, data } if *ty < 128 => out[1..].copy_from_slice(data),
            Ie::Unknown { data, .. } => {
                out[1..3].copy_from_slice(&tlv_len(data.len())?);
                out[3..].copy_from_slice(data);
            }
        }
        Ok(len)
    }
}
