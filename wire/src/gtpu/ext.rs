//! Extension header types (TS 29.281 §5.2) and the PDU Session Container
//! (TS 38.415 §5.5.2).

use super::{GtpuError, Result};

enum_with_unknown! {
    /// Extension header types (TS 29.281 Figure 5.2.1-3). The two most
    /// significant bits say whether comprehension is required.
    pub enum ExtensionHeaderType {
        /// Long PDCP PDU Number, comprehension not required (0x03).
        LongPdcpPduNumberOptional = 0x03,
        /// Service Class Indicator (0x20).
        ServiceClassIndicator = 0x20,
        /// UDP Port (0x40), in Error Indication.
        UdpPort = 0x40,
        /// RAN Container (0x81).
        RanContainer = 0x81,
        /// Long PDCP PDU Number (0x82).
        LongPdcpPduNumber = 0x82,
        /// Xw RAN Container (0x83).
        XwRanContainer = 0x83,
        /// NR RAN Container (0x84).
        NrRanContainer = 0x84,
        /// PDU Session Container (0x85, TS 38.415).
        PduSessionContainer = 0x85,
        /// PDCP PDU Number (0xc0).
        PdcpPduNumber = 0xc0,
    }
}

impl ExtensionHeaderType {
    /// Whether the receiver must understand the header (bit 8 set).
    pub fn comprehension_required(self) -> bool {
        u8::from(self) & 0x80 != 0
    }

    /// Whether this implementation knows the type's layout (every type of
    /// TS 29.281; only the PDU Session Container is decoded into fields,
    /// the others are kept as raw content).
    pub fn is_known(self) -> bool {
        !matches!(self, ExtensionHeaderType::Unknown(_))
    }
}

/// The extension header types this implementation supports, for a Supported
/// Extension Headers Notification.
pub const SUPPORTED_EXTENSION_HEADERS: &[ExtensionHeaderType] = &[
    ExtensionHeaderType::LongPdcpPduNumberOptional,
    ExtensionHeaderType::ServiceClassIndicator,
    ExtensionHeaderType::UdpPort,
    ExtensionHeaderType::RanContainer,
    ExtensionHeaderType::LongPdcpPduNumber,
    ExtensionHeaderType::XwRanContainer,
    ExtensionHeaderType::NrRanContainer,
    ExtensionHeaderType::PduSessionContainer,
    ExtensionHeaderType::PdcpPduNumber,
];

/// Length on the wire (length octet, content, padding, next-type octet) of
/// the largest PDU Session Container [`PduSessionInfo::emit`] writes: an UL
/// PDU SESSION INFORMATION with every optional field (2 + 24 + 4 + 4 + 3 + 4
/// content octets, plus 2, padded to 44).
pub const MAX_PDU_SESSION_CONTAINER_LEN: usize = 44;

const PDU_TYPE_DL: u8 = 0;
const PDU_TYPE_UL: u8 = 1;

/// The content of a PDU Session Container (TS 38.415 §5.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PduSessionInfo {
    /// DL PDU SESSION INFORMATION (PDU type 0), UPF to gNB.
    Dl(DlPduSessionInfo),
    /// UL PDU SESSION INFORMATION (PDU type 1), gNB to UPF.
    Ul(UlPduSessionInfo),
}

/// DL PDU SESSION INFORMATION (TS 38.415 §5.5.2.1).
///
/// Octet 1: PDU type (4 bits), QMP, SNP, MSNP, spare. Octet 2: PPP, RQI,
/// QFI (6 bits). Then PPI (3 bits) + spare if PPP; DL Sending Time Stamp
/// (8 octets) if QMP; DL QFI Sequence Number (3 octets) if SNP; DL MBS QFI
/// Sequence Number (4 octets) if MSNP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DlPduSessionInfo {
    /// QoS Flow Identifier (6 bits; higher bits are not sent).
    pub qfi: u8,
    /// Reflective QoS Indicator.
    pub rqi: bool,
    /// Paging Policy Indicator (3 bits); `Some` sets PPP.
    pub ppi: Option<u8>,
    /// DL Sending Time Stamp (NTP format); `Some` sets QMP.
    pub dl_sending_time_stamp: Option<u64>,
    /// DL QFI Sequence Number (24 bits); `Some` sets SNP.
    pub dl_qfi_seq: Option<u32>,
    /// DL MBS QFI Sequence Number; `Some` sets MSNP.
    pub dl_mbs_qfi_seq: Option<u32>,
}

/// QoS monitoring time stamps of an UL PDU SESSION INFORMATION (QMP set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UlQosMonitoring {
    /// DL Sending Time Stamp Repeated.
    pub dl_sending_time_stamp_repeated: u64,
    /// DL Received Time Stamp.
    pub dl_received_time_stamp: u64,
    /// UL Sending Time Stamp.
    pub ul_sending_time_stamp: u64,
}

/// UL PDU SESSION INFORMATION (TS 38.415 §5.5.2.2).
///
/// Octet 1: PDU type (4 bits), QMP, DL Delay Ind., UL Delay Ind., SNP.
/// Octet 2: N3/N9 Delay Ind., New IE Flag, QFI (6 bits). Then the three
/// time stamps if QMP, DL Delay Result, UL Delay Result, UL QFI Sequence
/// Number (3 octets), N3/N9 Delay Result, each if its flag is set.
///
/// Fields announced by the New IE Flag (D1 UL PDCP Delay Result, Rel-17)
/// are not decoded: they are treated as padding and not re-emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UlPduSessionInfo {
    /// QoS Flow Identifier (6 bits; higher bits are not sent).
    pub qfi: u8,
    /// QoS monitoring time stamps; `Some` sets QMP.
    pub qos_monitoring: Option<UlQosMonitoring>,
    /// DL Delay Result; `Some` sets DL Delay Ind.
    pub dl_delay_result: Option<u32>,
    /// UL Delay Result; `Some` sets UL Delay Ind.
    pub ul_delay_result: Option<u32>,
    /// UL QFI Sequence Number (24 bits); `Some` sets SNP.
    pub ul_qfi_seq: Option<u32>,
    /// N3/N9 Delay Result; `Some` sets N3/N9 Delay Ind.
    pub n3n9_delay_result: Option<u32>,
}

/// A bounds-checked reader over extension header content.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or(GtpuError::BadPduSessionContainer)?;
        self.pos += n;
        Ok(s)
    }
    #[inline]
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    fn u24(&mut self) -> Result<u32> {
        let b = self.take(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
    #[inline]
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// The field `read` reads if `present` (its flag is set), else `None`.
    #[inline]
    fn opt<T>(
        &mut self,
        present: bool,
        read: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<Option<T>> {
        if present {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// `base` with the bit of every flag that is set ORed in: the flag octets
/// of both PDU Session Container layouts.
#[inline]
fn flag_bits<const N: usize>(base: u8, flags: [(bool, u8); N]) -> u8 {
    flags
        .into_iter()
        .fold(base, |b, (set, bit)| if set { b | bit } else { b })
}

impl PduSessionInfo {
    /// The QFI.
    #[inline]
    pub fn qfi(&self) -> u8 {
        match self {
            PduSessionInfo::Dl(dl) => dl.qfi,
            PduSessionInfo::Ul(ul) => ul.qfi,
        }
    }

    /// The PDU type (0 DL, 1 UL).
    pub fn pdu_type(&self) -> u8 {
        match self {
            PduSessionInfo::Dl(_) => PDU_TYPE_DL,
            PduSessionInfo::Ul(_) => PDU_TYPE_UL,
        }
    }

    /// A DL container with only a QFI.
    pub const fn dl(qfi: u8) -> Self {
        PduSessionInfo::Dl(DlPduSessionInfo {
            qfi,
            rqi: false,
            ppi: None,
            dl_sending_time_stamp: None,
            dl_qfi_seq: None,
            dl_mbs_qfi_seq: None,
        })
    }

    /// An UL container with only a QFI.
    pub const fn ul(qfi: u8) -> Self {
        PduSessionInfo::Ul(UlPduSessionInfo {
            qfi,
            qos_monitoring: None,
            dl_delay_result: None,
            ul_delay_result: None,
            ul_qfi_seq: None,
            n3n9_delay_result: None,
        })
    }

    /// Parses the content of a PDU Session Container (the octets between the
    /// length octet and the next-type octet). Returns `Ok(None)` for a PDU
    /// type other than DL (0) or UL (1), which the caller keeps raw.
    /// Octets after the announced fields are padding and ignored.
    #[inline]
    pub fn parse(content: &[u8]) -> Result<Option<Self>> {
        // Fast path: the 2-octet form with only a QFI (and RQI), which is
        // what N3 carries nearly always.
        if let [b1, b2, ..] = *content {
            if b1 == PDU_TYPE_DL << 4 && b2 & 0x80 == 0 {
                let mut info = PduSessionInfo::dl(b2 & 0x3f);
                if let PduSessionInfo::Dl(dl) = &mut info {
                    dl.rqi = b2 & 0x40 != 0;
                }
                return Ok(Some(info));
            }
            if b1 == PDU_TYPE_UL << 4 && b2 & 0x80 == 0 {
                return Ok(Some(PduSessionInfo::ul(b2 & 0x3f)));
            }
        }
        let mut r = Reader {
            data: content,
            pos: 0,
        };
        let b1 = r.u8()?;
        let b2 = r.u8()?;
        let qfi = b2 & 0x3f;
        // Each optional field follows, in this order, when its flag (named
        // on its line) is set.
        match b1 >> 4 {
            PDU_TYPE_DL => Ok(Some(PduSessionInfo::Dl(DlPduSessionInfo {
                qfi,
                rqi: b2 & 0x40 != 0,
                ppi: r.opt(b2 & 0x80 != 0, |r| Ok(r.u8()? >> 5))?, // PPP
                dl_sending_time_stamp: r.opt(b1 & 0x08 != 0, Reader::u64)?, // QMP
                dl_qfi_seq: r.opt(b1 & 0x04 != 0, Reader::u24)?,   // SNP
                dl_mbs_qfi_seq: r.opt(b1 & 0x02 != 0, Reader::u32)?, // MSNP
            }))),
            PDU_TYPE_UL => Ok(Some(PduSessionInfo::Ul(UlPduSessionInfo {
                qfi,
                // QMP
                qos_monitoring: r.opt(b1 & 0x08 != 0, |r| {
                    Ok(UlQosMonitoring {
                        dl_sending_time_stamp_repeated: r.u64()?,
                        dl_received_time_stamp: r.u64()?,
                        ul_sending_time_stamp: r.u64()?,
                    })
                })?,
                dl_delay_result: r.opt(b1 & 0x04 != 0, Reader::u32)?, // DL Delay Ind.
                ul_delay_result: r.opt(b1 & 0x02 != 0, Reader::u32)?, // UL Delay Ind.
                ul_qfi_seq: r.opt(b1 & 0x01 != 0, Reader::u24)?,      // SNP
                n3n9_delay_result: r.opt(b2 & 0x80 != 0, Reader::u32)?, // N3/N9 Delay Ind.
            }))),
            _ => Ok(None),
        }
    }

    /// Content length before padding.
    #[inline]
    fn content_len(&self) -> usize {
        match self {
            PduSessionInfo::Dl(dl) => {
                2 + usize::from(dl.ppi.is_some())
                    + 8 * usize::from(dl.dl_sending_time_stamp.is_some())
                    + 3 * usize::from(dl.dl_qfi_seq.is_some())
                    + 4 * usize::from(dl.dl_mbs_qfi_seq.is_some())
            }
            PduSessionInfo::Ul(ul) => {
                2 + 24 * usize::from(ul.qos_monitoring.is_some())
                    + 4 * usize::from(ul.dl_delay_result.is_some())
                    + 4 * usize::from(ul.ul_delay_result.is_some())
                    + 3 * usize::from(ul.ul_qfi_seq.is_some())
                    + 4 * usize::from(ul.n3n9_delay_result.is_some())
            }
        }
    }

    /// Length of the whole extension header on the wire (length octet,
    /// content, zero padding, next-type octet): a multiple of 4.
    #[inline]
    pub fn ext_len(&self) -> usize {
        (self.content_len() + 2 + 3) & !3
    }

    /// Writes the whole extension header (length octet, content, zero
    /// padding, `next` type octet) into `buf[..self.ext_len()]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8], next: u8) -> Result<usize> {
        let len = self.ext_len();
        let have = buf.len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(GtpuError::BufferTooSmall { need: len, have });
        };
        out[0] = (len / 4) as u8; // at most 44 / 4
                                  // Fast path: the 4-octet form with only a QFI (and RQI).
        match self {
            PduSessionInfo::Dl(DlPduSessionInfo {
                qfi,
                rqi,
                ppi: None,
                dl_sending_time_stamp: None,
                dl_qfi_seq: None,
                dl_mbs_qfi_seq: None,
            }) => {
                out[1] = PDU_TYPE_DL << 4;
                out[2] = (qfi & 0x3f) | if *rqi { 0x40 } else { 0 };
                out[3] = next;
                return Ok(4);
            }
            PduSessionInfo::Ul(UlPduSessionInfo {
                qfi,
                qos_monitoring: None,
                dl_delay_result: None,
                ul_delay_result: None,
                ul_qfi_seq: None,
                n3n9_delay_result: None,
            }) => {
                out[1] = PDU_TYPE_UL << 4;
                out[2] = qfi & 0x3f;
                out[3] = next;
                return Ok(4);
            }
            _ => {}
        }
        let mut pos = 3;
        // An optional field: the low `n` octets of `v`, big-endian, if present.
        let mut put = |out: &mut [u8], v: Option<u64>, n: usize| {
            if let Some(v) = v {
                out[pos..pos + n].copy_from_slice(&v.to_be_bytes()[8 - n..]);
                pos += n;
            }
        };
        match self {
            PduSessionInfo::Dl(dl) => {
                out[1] = flag_bits(
                    PDU_TYPE_DL << 4,
                    [
                        (dl.dl_sending_time_stamp.is_some(), 0x08),
                        (dl.dl_qfi_seq.is_some(), 0x04),
                        (dl.dl_mbs_qfi_seq.is_some(), 0x02),
                    ],
                );
                out[2] = flag_bits(dl.qfi & 0x3f, [(dl.ppi.is_some(), 0x80), (dl.rqi, 0x40)]);
                put(out, dl.ppi.map(|p| u64::from((p & 0x07) << 5)), 1);
                put(out, dl.dl_sending_time_stamp, 8);
                put(out, dl.dl_qfi_seq.map(u64::from), 3);
                put(out, dl.dl_mbs_qfi_seq.map(u64::from), 4);
            }
            PduSessionInfo::Ul(ul) => {
                out[1] = flag_bits(
                    PDU_TYPE_UL << 4,
                    [
                        (ul.qos_monitoring.is_some(), 0x08),
                        (ul.dl_delay_result.is_some(), 0x04),
                        (ul.ul_delay_result.is_some(), 0x02),
                        (ul.ul_qfi_seq.is_some(), 0x01),
                    ],
                );
                out[2] = flag_bits(ul.qfi & 0x3f, [(ul.n3n9_delay_result.is_some(), 0x80)]);
                let qm = ul.qos_monitoring;
                put(out, qm.map(|q| q.dl_sending_time_stamp_repeated), 8);
                put(out, qm.map(|q| q.dl_received_time_stamp), 8);
                put(out, qm.map(|q| q.ul_sending_time_stamp), 8);
                put(out, ul.dl_delay_result.map(u64::from), 4);
                put(out, ul.ul_delay_result.map(u64::from), 4);
                put(out, ul.ul_qfi_seq.map(u64::from), 3);
                put(out, ul.n3n9_delay_result.map(u64::from), 4);
            }
        }
        // `pos` is 1 + content_len; zero the padding, then the next type.
        out[pos..len - 1].fill(0);
        out[len - 1] = next;
        Ok(len)
    }
}
