//! Test fixtures shared by the tests of the RTP modules: a captured ffmpeg
//! datagram and builders of Annex B access units.

use super::START_CODE;

/// First datagram of
/// `ffmpeg -f lavfi -i testsrc=size=64x48:rate=10 -frames:v 2 -c:v libx264
/// -profile:v baseline -payload_type 96 -ssrc 305419896 -f rtp
/// rtp://127.0.0.1:PORT?pkt_size=200` (ffmpeg 5.1): an STAP-A with the
/// SPS and PPS.
pub(super) const FFMPEG_STAP: &str =
    "8060060a6aa2ae34123456781800176742c00ad9047b011000000300100000030140f12264800005";
// (the capture's remaining octets: the PPS unit)
const FFMPEG_STAP_TAIL: &str = "68cb83cb20";

/// The octets of a hex string.
pub(super) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The whole captured datagram.
pub(super) fn ffmpeg_stap() -> Vec<u8> {
    let mut v = unhex(FFMPEG_STAP);
    v.extend(unhex(FFMPEG_STAP_TAIL));
    v
}

/// An Annex B access unit of these NAL units.
pub(super) fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![];
    for n in nals {
        v.extend_from_slice(&START_CODE);
        v.extend_from_slice(n);
    }
    v
}

/// A NAL unit of type `ty`, `len` octets, its body derived from `seed`.
pub(super) fn nal(ty: u8, len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0x60 | ty];
    // Avoid emulating start codes: no zero octets in the body.
    v.extend((0..len - 1).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
    v
}
