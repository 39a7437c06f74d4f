//! [`Depacketizer`]: RTP datagrams of one stream back into
//! [`AccessUnit`]s (single NAL unit, STAP-A and FU-A payloads), with
//! sequence gaps, late packets and lost markers accounted for and every
//! malformed datagram rejected before it changes any state.

use std::collections::VecDeque;

use super::{
    be16, FrameMeta, Packet, RtpError, MAX_ACCESS_UNIT, NAL_FU_A, NAL_STAP_A, START_CODE, VERSION,
};

/// One reassembled access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// RTP timestamp (90 kHz).
    pub timestamp: u32,
    /// The NAL units, each after a 4-octet start code.
    pub annexb: Vec<u8>,
    /// Frame metadata of its packets (the first that carried it).
    pub meta: Option<FrameMeta>,
    /// False if a packet of it (or around it) was lost: a sequence gap, an
    /// FU-A without its start or end, a missing marker.
    pub complete: bool,
}

/// Counters of a [`Depacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Datagrams accepted.
    pub packets: u64,
    /// Datagrams rejected as malformed.
    pub malformed: u64,
    /// Sequence gaps seen (each may cover several packets).
    pub gaps: u64,
    /// Packets lost in those gaps.
    pub lost: u64,
    /// Late or duplicate packets dropped.
    pub late: u64,
    /// Access units returned.
    pub access_units: u64,
    /// ... of which incomplete.
    pub incomplete: u64,
    /// Streams (SSRC) changes.
    pub ssrc_changes: u64,
}

#[derive(Debug)]
struct Pending {
    timestamp: u32,
    annexb: Vec<u8>,
    meta: Option<FrameMeta>,
    complete: bool,
}

/// Reassembles access units from RTP datagrams of one stream.
///
/// [`Depacketizer::push`] returns the oldest finished access unit; when one
/// datagram finishes two (a lost marker followed by a one-packet frame) the
/// second waits in a queue: call [`Depacketizer::pop`] until `None`.
#[derive(Debug, Default)]
pub struct Depacketizer {
    ssrc: Option<u32>,
    expected: Option<u16>,
    pending: Option<Pending>,
    /// An FU-A in progress: the NAL unit so far (header included).
    fu: Option<Vec<u8>>,
    /// The previous accepted packet ended an access unit (marker), so the
    /// next one starts one.
    at_boundary: bool,
    ready: VecDeque<AccessUnit>,
    stats: DepacketizerStats,
}

/// A parsed, validated H.264 payload, before any state changes.
enum Payload<'a> {
    Single(&'a [u8]),
    Stap(&'a [u8]),
    Fu {
        indicator: u8,
        header: u8,
        data: &'a [u8],
    },
}

impl Depacketizer {
    /// A depacketizer; the first packet is taken as the start of an access
    /// unit.
    pub fn new() -> Depacketizer {
        Depacketizer {
            at_boundary: true,
            ..Depacketizer::default()
        }
    }

    /// Counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Takes one datagram. Malformed datagrams are counted and rejected
    /// with what is wrong, and change nothing else.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<AccessUnit>, RtpError> {
        match self.accept(datagram) {
            Ok(()) => Ok(self.pop()),
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// The next finished access unit, if one is queued.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Ends the current access unit (e.g. at the end of the stream): it is
    /// returned incomplete if its marker was not seen.
    pub fn flush(&mut self) -> Option<AccessUnit> {
        self.abort_fu();
        self.finish(false);
        self.pop()
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<(), RtpError> {
        // Validate everything first, so that a malformed datagram leaves the
        // state untouched.
        let p = Packet::new_checked(datagram)?;
        if p.version() != VERSION {
            return Err(RtpError::Version(p.version()));
        }
        let meta = match p.extension_header() {
            Some((profile, data)) => FrameMeta::parse(profile, data)?,
            None => None,
        };
        let payload = parse_payload(p.payload())?;
        let (seq, ts, ssrc) = (p.sequence_number(), p.timestamp(), p.ssrc());

        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
                self.abort_fu();
                self.finish(false);
                self.at_boundary = true;
            }
            self.ssrc = Some(ssrc);
            self.expected = None;
        }
        let mut gap = false;
        if let Some(exp) = self.expected {
            let d = seq.wrapping_sub(exp);
            if d >= 0x8000 {
                self.stats.late += 1;
                return Ok(());
            }
            if d > 0 {
                gap = true;
                self.stats.gaps += 1;
                self.stats.lost += u64::from(d);
            }
        }
        self.expected = Some(seq.wrapping_add(1));
        self.stats.packets += 1;

        if gap {
            // The lost packets may have ended the pending unit or begun the
            // next: both are suspect.
            self.abort_fu();
            if let Some(pd) = &mut self.pending {
                pd.complete = false;
            }
        }
        if self.pending.as_ref().is_some_and(|pd| pd.timestamp != ts) {
            // A new timestamp begins a new unit: the previous one ended
            // without its marker. If no packet was lost in between it is
            // whole (unless an FU-A in it is unfinished), and this packet
            // starts the next one.
            self.abort_fu();
            self.finish(true);
            self.at_boundary = !gap;
        }
        if self.pending.is_none() {
            self.pending = Some(Pending {
                timestamp: ts,
                annexb: Vec::new(),
                meta: None,
                complete: self.at_boundary && !gap,
            });
        }
        self.at_boundary = false;
        let mut too_large = false;
        if let Some(pd) = &mut self.pending {
            if pd.meta.is_none() {
                pd.meta = meta;
            }
            match payload {
                Payload::Single(nal) => {
                    if self.fu.take().is_some() {
                        pd.complete = false;
                    }
                    push_nal(&mut pd.annexb, nal);
                }
                Payload::Stap(mut rest) => {
                    if self.fu.take().is_some() {
                        pd.complete = false;
                    }
                    while rest.len() >= 2 {
                        let n = usize::from(be16(rest));
                        push_nal(&mut pd.annexb, &rest[2..2 + n]);
                        rest = &rest[2 + n..];
                    }
                }
                Payload::Fu {
                    indicator,
                    header,
                    data,
                } => {
                    let (s, e) = (header & 0x80 != 0, header & 0x40 != 0);
                    if s {
                        if self.fu.is_some() {
                            pd.complete = false;
                        }
                        let mut nal = Vec::with_capacity(data.len() * 8);
                        nal.push((indicator & 0xe0) | (header & 0x1f));
                        nal.extend_from_slice(data);
                        self.fu = Some(nal);
                    } else if let Some(nal) = &mut self.fu {
                        nal.extend_from_slice(data);
                    } else {
                        // A fragment without its start: dropped.
                        pd.complete = false;
                    }
                    if e {
                        if let Some(nal) = self.fu.take() {
                            push_nal(&mut pd.annexb, &nal);
                        }
                    }
                    if self.fu.as_ref().is_some_and(|n| n.len() > MAX_ACCESS_UNIT) {
                        too_large = true;
                    }
                }
            }
            if pd.annexb.len() > MAX_ACCESS_UNIT {
                too_large = true;
            }
        }
        if too_large {
            self.fu = None;
            self.pending = None;
            return Err(RtpError::TooLarge);
        }
        if p.marker() {
            if self.fu.is_some() {
                self.abort_fu();
            }
            self.finish(true);
            self.at_boundary = true;
        }
        Ok(())
    }

    fn abort_fu(&mut self) {
        if self.fu.take().is_some() {
            if let Some(pd) = &mut self.pending {
                pd.complete = false;
            }
        }
    }

    /// Moves the pending unit to the ready queue; `marker`: its end was seen.
    fn finish(&mut self, marker: bool) {
        if let Some(pd) = self.pending.take() {
            let complete = pd.complete && marker;
            self.stats.access_units += 1;
            if !complete {
                self.stats.incomplete += 1;
            }
            self.ready.push_back(AccessUnit {
                timestamp: pd.timestamp,
                annexb: pd.annexb,
                meta: pd.meta,
                complete,
            });
        }
    }
}

fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(nal);
}

fn parse_payload(b: &[u8]) -> Result<Payload<'_>, RtpError> {
    let Some(&h) = b.first() else {
        return Err(RtpError::EmptyPayload);
    };
    match h & 0x1f {
        1..=23 => Ok(Payload::Single(b)),
        NAL_STAP_A => {
            let mut o = 1;
            if b.len() < 3 {
                return Err(RtpError::Stap(o));
            }
            while o < b.len() {
                if o + 2 > b.len() {
                    return Err(RtpError::Stap(o));
                }
                let n = usize::from(be16(&b[o..]));
                if n == 0 || o + 2 + n > b.len() {
                    return Err(RtpError::Stap(o));
                }
                o += 2 + n;
            }
            Ok(Payload::Stap(&b[1..]))
        }
        NAL_FU_A => {
            if b.len() < 3 {
                return Err(RtpError::FuTooShort(b.len()));
            }
            if b[1] & 0xc0 == 0xc0 {
                return Err(RtpError::FuStartAndEnd);
            }
            if b[1] & 0x1f == 0 {
                return Err(RtpError::NalType(0));
            }
            Ok(Payload::Fu {
                indicator: h,
                header: b[1],
                data: &b[2..],
            })
        }
        t => Err(RtpError::NalType(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_fixtures::{annexb, ffmpeg_stap, nal, unhex};
    use super::super::Packetizer;
    use super::*;
    use crate::h264::nal_units;

    #[test]
    fn fixture_depacketizes_stap_a() {
        let b = ffmpeg_stap();
        let mut d = Depacketizer::new();
        assert_eq!(d.push(&b), Ok(None));
        let au = d.flush().expect("unit");
        let nals: Vec<&[u8]> = nal_units(&au.annexb).collect();
        assert_eq!(nals.len(), 2);
        assert_eq!(nals[0][0] & 0x1f, 7);
        assert_eq!(nals[1][0] & 0x1f, 8);
        // No marker seen: incomplete.
        assert!(!au.complete);
    }

    #[test]
    fn depacketizer_gap_late_and_timestamp_change() {
        let mut pz = Packetizer::new(1, 96, 64);
        let meta = FrameMeta::default();
        let mut f1 = vec![];
        pz.packetize(&annexb(&[nal(5, 100, 3)]), 0, &meta, &mut f1);
        let mut f2 = vec![];
        pz.packetize(&annexb(&[nal(1, 10, 4)]), 3000, &meta, &mut f2);
        let mut f3 = vec![];
        pz.packetize(&annexb(&[nal(1, 10, 5)]), 6000, &meta, &mut f3);
        assert!(f1.len() >= 3);
        let mut d = Depacketizer::new();
        // Lose the middle fragment of frame 1.
        assert_eq!(d.push(&f1[0]), Ok(None));
        let u1 = d.push(&f1[2]).expect("ok");
        let u1 = match u1 {
            Some(u) => u,
            None => {
                for p in &f1[3..] {
                    if let Some(u) = d.push(p).expect("ok") {
                        assert!(!u.complete);
                    }
                }
                d.pop().unwrap_or(AccessUnit {
                    timestamp: 0,
                    annexb: vec![],
                    meta: None,
                    complete: false,
                })
            }
        };
        assert!(!u1.complete);
        // A duplicate of an old packet is dropped as late.
        assert_eq!(d.push(&f1[0]), Ok(None));
        assert_eq!(d.stats().late, 1);
        // Frame 2 clean.
        let u2 = d.push(&f2[0]).expect("ok").expect("unit");
        assert!(u2.complete);
        // Frame 3 sent without a marker bit: the next timestamp closes it;
        // no packet was lost, so both it and the next are whole.
        let mut m = f3[0].clone();
        m[1] &= 0x7f;
        assert_eq!(d.push(&m), Ok(None));
        let mut f4 = vec![];
        pz.packetize(&annexb(&[nal(1, 10, 6)]), 9000, &meta, &mut f4);
        let u3 = d.push(&f4[0]).expect("ok").expect("closed by timestamp");
        assert_eq!(u3.timestamp, 6000);
        assert!(u3.complete);
        let u4 = d.pop().expect("queued");
        assert_eq!(u4.timestamp, 9000);
        assert!(u4.complete);
        // Frame 5 unmarked, then frame 6's first packet lost: both suspect.
        let (mut f5, mut f6, mut f7) = (vec![], vec![], vec![]);
        pz.packetize(&annexb(&[nal(1, 10, 7)]), 12000, &meta, &mut f5);
        pz.packetize(
            &annexb(&[nal(1, 10, 8), nal(1, 10, 9)]),
            15000,
            &meta,
            &mut f6,
        );
        pz.packetize(&annexb(&[nal(1, 10, 10)]), 18000, &meta, &mut f7);
        let mut m = f5[0].clone();
        m[1] &= 0x7f;
        assert_eq!(d.push(&m), Ok(None));
        let u5 = d.push(&f6[1]).expect("ok").expect("closed by timestamp");
        assert!(!u5.complete);
        let u6 = d.pop().expect("queued");
        assert_eq!(u6.timestamp, 15000);
        assert!(!u6.complete);
        let u7 = d.push(&f7[0]).expect("ok").expect("unit");
        assert!(u7.complete);
        assert!(d.stats().gaps >= 1);
    }

    #[test]
    fn malformed_payloads_rejected_and_counted() {
        let mut d = Depacketizer::new();
        let hdr = unhex("80e00001000000000000000a");
        let cases: Vec<(Vec<u8>, RtpError)> = vec![
            (vec![], RtpError::EmptyPayload),
            (vec![0x00], RtpError::NalType(0)),
            (vec![0x1e, 1], RtpError::NalType(30)),
            (vec![0x19, 1], RtpError::NalType(25)),
            (vec![0x1c, 0x85], RtpError::FuTooShort(2)),
            (vec![0x1c, 0xc5, 1], RtpError::FuStartAndEnd),
            (vec![0x18, 0x00, 0x05, 0x67], RtpError::Stap(1)),
            (vec![0x18, 0x00, 0x00, 0x67], RtpError::Stap(1)),
        ];
        for (i, (payload, err)) in cases.iter().enumerate() {
            let mut b = hdr.clone();
            b.extend_from_slice(payload);
            assert_eq!(d.push(&b).as_ref().err(), Some(err), "case {i}");
        }
        assert_eq!(d.stats().malformed, cases.len() as u64);
        assert_eq!(d.stats().packets, 0);
    }
}
