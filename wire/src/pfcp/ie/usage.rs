//! IEs of usage reporting (TS 29.244 §8.2): Measurement Method, Reporting
//! Triggers, Usage Report Trigger, Report Type, volumes (thresholds, quotas)
//! and Volume Measurement. Octet 5 is the first octet of the value.
//!
//! Reporting Triggers and Usage Report Trigger were two octets in older
//! releases: the shorter forms are accepted and the current one emitted.

use crate::pfcp::codec::{flags, flags_codec, IeCodec, Reader, Writer};
use crate::pfcp::error::PfcpError;

flags! {
    /// Measurement Method (type 62), §8.2.40.
    pub struct MeasurementMethod(u8) {
        const DURAT = 0x01;
        const VOLUM = 0x02;
        const EVENT = 0x04;
    }
}
flags_codec!(MeasurementMethod, u8, 1);

flags! {
    /// Reporting Triggers (type 37), §8.2.19: octets 5, 6, 7 from the low
    /// byte up. Emitted as 3 octets; 1 or 2 accepted (older releases).
    pub struct ReportingTriggers(u32) {
        const PERIO = 0x00_00_01;
        const VOLTH = 0x00_00_02;
        const TIMTH = 0x00_00_04;
        const QUHTI = 0x00_00_08;
        const START = 0x00_00_10;
        const STOPT = 0x00_00_20;
        const DROTH = 0x00_00_40;
        const LIUSA = 0x00_00_80;
        const VOLQU = 0x00_01_00;
        const TIMQU = 0x00_02_00;
        const ENVCL = 0x00_04_00;
        const MACAR = 0x00_08_00;
        const EVETH = 0x00_10_00;
        const EVEQU = 0x00_20_00;
        const IPMJL = 0x00_40_00;
        const QUVTI = 0x00_80_00;
        const REEMR = 0x01_00_00;
        const UPINT = 0x02_00_00;
    }
}
flags_codec!(ReportingTriggers, u32, 3);

flags! {
    /// Usage Report Trigger (type 63), §8.2.41: octets 5, 6, 7 from the low
    /// byte up. Emitted as 3 octets; 1 or 2 accepted (older releases).
    pub struct UsageReportTrigger(u32) {
        const PERIO = 0x00_00_01;
        const VOLTH = 0x00_00_02;
        const TIMTH = 0x00_00_04;
        const QUHTI = 0x00_00_08;
        const START = 0x00_00_10;
        const STOPT = 0x00_00_20;
        const DROTH = 0x00_00_40;
        const IMMER = 0x00_00_80;
        const VOLQU = 0x00_01_00;
        const TIMQU = 0x00_02_00;
        const LIUSA = 0x00_04_00;
        const TERMR = 0x00_08_00;
        const MONIT = 0x00_10_00;
        const ENVCL = 0x00_20_00;
        const MACAR = 0x00_40_00;
        const EVETH = 0x00_80_00;
        const EVEQU = 0x01_00_00;
        const TEBUR = 0x02_00_00;
        const IPMJL = 0x04_00_00;
        const QUVTI = 0x08_00_00;
        const EMRRE = 0x10_00_00;
        const UPINT = 0x20_00_00;
    }
}
flags_codec!(UsageReportTrigger, u32, 3);

flags! {
    /// Report Type (type 39), §8.2.21.
    pub struct ReportType(u8) {
        /// Downlink Data Report.
        const DLDR = 0x01;
        /// Usage Report.
        const USAR = 0x02;
        /// Error Indication Report.
        const ERIR = 0x04;
        /// User Plane Inactivity Report.
        const UPIR = 0x08;
        const TMIR = 0x10;
        const SESR = 0x20;
        const UISR = 0x40;
    }
}
flags_codec!(ReportType, u8, 1);

/// Volume Threshold (type 31, §8.2.13) and Volume Quota (type 73, §8.2.50):
/// octets, each present when its flag (TOVOL, ULVOL, DLVOL) is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Volume {
    /// Total volume (TOVOL).
    pub total: Option<u64>,
    /// Uplink volume (ULVOL).
    pub uplink: Option<u64>,
    /// Downlink volume (DLVOL).
    pub downlink: Option<u64>,
}

/// Decodes the flags octet of a volume IE and the 8-octet counters it
/// announces: bit `i` set = counter `i` present, counters in bit order.
fn decode_counters<const N: usize>(ty: u16, v: &[u8]) -> Result<[Option<u64>; N], PfcpError> {
    let mut r = Reader::new(ty, v);
    let f = r.u8()?;
    let mut vals = [None; N];
    for (i, slot) in vals.iter_mut().enumerate() {
        if f & (1 << i) != 0 {
            *slot = Some(r.u64()?);
        }
    }
    Ok(vals)
}

/// Value length of what [`encode_counters`] writes.
fn counters_len(fields: &[Option<u64>]) -> usize {
    1 + 8 * fields.iter().filter(|x| x.is_some()).count()
}

/// Writes the flags octet (bit `i` for counter `i`) and the present counters.
fn encode_counters(w: &mut Writer<'_>, fields: &[Option<u64>]) {
    let mut f = 0u8;
    for (i, x) in fields.iter().enumerate() {
        if x.is_some() {
            f |= 1 << i;
        }
    }
    w.u8(f);
    for x in fields.iter().flatten() {
        w.u64(*x);
    }
}

impl Volume {
    fn fields(&self) -> [Option<u64>; 3] {
        [self.total, self.uplink, self.downlink]
    }
}

impl IeCodec for Volume {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let [total, uplink, downlink] = decode_counters(ty, v)?;
        Ok(Volume {
            total,
            uplink,
            downlink,
        })
    }
    fn value_len(&self) -> usize {
        counters_len(&self.fields())
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        encode_counters(w, &self.fields());
    }
}

/// Volume Measurement (type 66), §8.2.44: octets and packets, each present
/// when its flag is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VolumeMeasurement {
    /// Total volume, octets (TOVOL).
    pub total_volume: Option<u64>,
    /// Uplink volume, octets (ULVOL).
    pub uplink_volume: Option<u64>,
    /// Downlink volume, octets (DLVOL).
    pub downlink_volume: Option<u64>,
    /// Total packets (TONOP).
    pub total_packets: Option<u64>,
    /// Uplink packets (ULNOP).
    pub uplink_packets: Option<u64>,
    /// Downlink packets (DLNOP).
    pub downlink_packets: Option<u64>,
}

impl VolumeMeasurement {
    fn fields(&self) -> [Option<u64>; 6] {
        [
            self.total_volume,
            self.uplink_volume,
            self.downlink_volume,
            self.total_packets,
            self.uplink_packets,
            self.downlink_packets,
        ]
    }
}

impl IeCodec for VolumeMeasurement {
    fn decode(ty: u16, v: &[u8]) -> Result<Self, PfcpError> {
        let [total_volume, uplink_volume, downlink_volume, total_packets, uplink_packets, downlink_packets] =
            decode_counters(ty, v)?;
        Ok(VolumeMeasurement {
            total_volume,
            uplink_volume,
            downlink_volume,
            total_packets,
            uplink_packets,
            downlink_packets,
        })
    }
    fn value_len(&self) -> usize {
        counters_len(&self.fields())
    }
    fn encode(&self, _: u16, w: &mut Writer<'_>) {
        encode_counters(w, &self.fields());
    }
}
