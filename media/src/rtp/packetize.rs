//! [`Packetizer`]: an Annex B access unit into RTP datagrams (RFC 6184
//! single NAL unit packets and FU-A fragments), every one carrying the
//! frame's [`FrameMeta`].

use super::{FrameMeta, NAL_FU_A, VERSION};
use crate::h264::nal_units;

/// RFC 6184 packetizer (packetization-mode=1 without aggregation): one
/// single NAL unit packet per NAL unit that fits, FU-A fragments otherwise.
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    payload_type: u8,
    mtu: usize,
    seq: u16,
}

impl Packetizer {
    /// Header length of every packet: 12 fixed + 4 extension header +
    /// [`FrameMeta::EXT_LEN`].
    pub const HEADER_LEN: usize = 12 + 4 + FrameMeta::EXT_LEN;
    /// Smallest MTU accepted (smaller values are raised to it).
    pub const MIN_MTU: usize = Packetizer::HEADER_LEN + 16;

    /// A packetizer for the stream `ssrc`, datagrams of at most `mtu`
    /// octets (raised to [`Packetizer::MIN_MTU`]). The first sequence
    /// number is derived from the SSRC.
    pub fn new(ssrc: u32, payload_type: u8, mtu: usize) -> Packetizer {
        Packetizer {
            ssrc,
            payload_type: payload_type & 0x7f,
            mtu: mtu.max(Packetizer::MIN_MTU),
            // Low 16 bits of a mixed SSRC: a deterministic but stream-specific start.
            seq: (ssrc.wrapping_mul(0x9e37_79b9) >> 16) as u16,
        }
    }

    /// The MTU in use.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number of the next packet.
    pub fn sequence_number(&self) -> u16 {
        self.seq
    }

    /// Sets the sequence number of the next packet.
    pub fn set_sequence_number(&mut self, s: u16) {
        self.seq = s;
    }

    /// Appends the datagrams of one access unit to `out`; nothing for an
    /// access unit without NAL units.
    pub fn packetize(
        &mut self,
        annexb: &[u8],
        timestamp: u32,
        meta: &FrameMeta,
        out: &mut Vec<Vec<u8>>,
    ) {
        let ext = meta.extension_data();
        let max_payload = self.mtu - Packetizer::HEADER_LEN;
        let mut nals = nal_units(annexb).peekable();
        while let Some(nal) = nals.next() {
            let last_nal = nals.peek().is_none();
            if nal.len() <= max_payload {
                let mut p = self.header(last_nal, timestamp, &ext, nal.len());
                p.extend_from_slice(nal);
                out.push(p);
                continue;
            }
            // FU-A: indicator = F and NRI of the NAL header, type 28; header
            // = S, E, R = 0, the NAL type; the NAL header itself is not sent.
            let indicator = (nal[0] & 0xe0) | NAL_FU_A;
            let ty = nal[0] & 0x1f;
            let body = &nal[1..];
            let chunk = max_payload - 2;
            let n = body.len().div_ceil(chunk);
            for (i, frag) in body.chunks(chunk).enumerate() {
                let (s, e) = (i == 0, i + 1 == n);
                let mut p = self.header(last_nal && e, timestamp, &ext, 2 + frag.len());
                p.push(indicator);
                p.push((u8::from(s) << 7) | (u8::from(e) << 6) | ty);
                p.extend_from_slice(frag);
                out.push(p);
            }
        }
    }

    fn header(
        &mut self,
        marker: bool,
        timestamp: u32,
        ext: &[u8; FrameMeta::EXT_LEN],
        payload: usize,
    ) -> Vec<u8> {
        let mut v = Vec::with_capacity(Packetizer::HEADER_LEN + payload);
        v.push((VERSION << 6) | 0x10);
        v.push((u8::from(marker) << 7) | self.payload_type);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&timestamp.to_be_bytes());
        v.extend_from_slice(&self.ssrc.to_be_bytes());
        v.extend_from_slice(&FrameMeta::PROFILE.to_be_bytes());
        // EXT_LEN / 4 = 7 words.
        v.extend_from_slice(&((FrameMeta::EXT_LEN / 4) as u16).to_be_bytes());
        v.extend_from_slice(ext);
        self.seq = self.seq.wrapping_add(1);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_fixtures::{annexb, nal};
    use super::super::{Depacketizer, Packet};
    use super::*;

    #[test]
    fn packetizer_single_and_fu_a() {
        let mut pz = Packetizer::new(7, 96, 100);
        pz.set_sequence_number(65534);
        let nals = vec![nal(7, 10, 1), nal(5, 200, 2)];
        let meta = FrameMeta {
            tick: 9,
            input_seq: 8,
            rendered_ns: 7,
        };
        let mut out = vec![];
        pz.packetize(&annexb(&nals), 1234, &meta, &mut out);
        // 100 - 44 = 56 payload; FU body chunks of 54: 199 -> 4 fragments.
        assert_eq!(out.len(), 1 + 4);
        let seqs: Vec<u16> = out
            .iter()
            .map(|d| Packet::new_unchecked(&d[..]).sequence_number())
            .collect();
        assert_eq!(seqs, vec![65534, 65535, 0, 1, 2]);
        for (i, d) in out.iter().enumerate() {
            assert!(d.len() <= 100);
            let p = Packet::new_checked(&d[..]).expect("valid");
            assert_eq!(p.marker(), i == 4);
            assert_eq!(p.timestamp(), 1234);
            let (pr, data) = p.extension_header().expect("ext");
            assert_eq!(FrameMeta::parse(pr, data), Ok(Some(meta)));
        }
        let p1 = Packet::new_unchecked(&out[1][..]);
        assert_eq!(p1.payload()[0], 0x60 | NAL_FU_A);
        assert_eq!(p1.payload()[1], 0x80 | 5);
        assert_eq!(Packet::new_unchecked(&out[4][..]).payload()[1], 0x40 | 5);
        let mut d = Depacketizer::new();
        let mut units = vec![];
        for p in &out {
            if let Some(u) = d.push(p).expect("push") {
                units.push(u);
            }
        }
        assert_eq!(units.len(), 1);
        assert!(units[0].complete);
        assert_eq!(units[0].annexb, annexb(&nals));
        assert_eq!(units[0].meta, Some(meta));
    }
}
