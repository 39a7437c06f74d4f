//! The segmenter and the coalescer on arbitrary input: never a panic,
//! every output within bounds; on well-formed super-packets of arbitrary
//! size and MSS, segmentation followed by coalescing gives back the bytes.

use dpio::offload::build::{as_super, checksums_ok, tcp4, udp4};
use dpio::offload::{
    complete_csum, fold, segment, sum, Coalescer, Push, VnetHdr, GSO_TCPV4, GSO_UDP_L4,
    VNET_HDR_LEN,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        hdr in proptest::collection::vec(any::<u8>(), VNET_HDR_LEN),
        pkt in proptest::collection::vec(any::<u8>(), 0..3000),
        ip in any::<bool>(),
        headroom in 0usize..40,
    ) {
        let mut h = VnetHdr::parse(&hdr).expect("10 bytes");
        let mut pkt = pkt;
        if ip && pkt.len() >= 20 {
            // Often a plausible IPv4 header, so the deeper checks run.
            pkt[0] = 0x45;
            pkt[6] = 0;
            pkt[7] = 0;
            pkt[9] = if hdr[0] & 1 == 0 { 6 } else { 17 };
            h.gso_type = if pkt[9] == 6 { GSO_TCPV4 } else { GSO_UDP_L4 };
            h.gso_size %= 2000;
        }
        let mut out = vec![0u8; 8000];
        if let Ok(s) = segment(&pkt, &h, &mut out, headroom) {
            for k in 0..s.count {
                let r = s.range(k);
                prop_assert!(r.end <= out.len());
                prop_assert!(checksums_ok(&out[r]));
            }
        }
        let _ = complete_csum(&mut pkt.clone(), &h);
        let mut c = Coalescer::new();
        for chunk in [&pkt[..], &pkt[..pkt.len() / 2], &pkt[..]] {
            if c.push(chunk) == Push::FlushFirst {
                let f = c.finish().expect("a run");
                prop_assert!(f.len() <= VNET_HDR_LEN + 65_535);
                prop_assert_ne!(c.push(chunk), Push::FlushFirst);
            }
        }
    }

    #[test]
    fn segment_then_coalesce_round_trips(
        payload in 1usize..20_000,
        mss in 1u16..3000,
        seq in any::<u32>(),
        udp in any::<bool>(),
    ) {
        let body: Vec<u8> = (0..payload).map(|i| (i * 131 + payload) as u8).collect();
        let (mut p, gso) = if udp { (udp4(&body), GSO_UDP_L4) } else { (tcp4(seq, 0, &body), GSO_TCPV4) };
        let orig = p.clone();
        let h = as_super(&mut p, gso, mss);
        // Room for the worst case: 20,000 one-byte segments of 52 bytes
        // of headers and 8 of headroom each (1.22 MB; 1 MiB fell short
        // for payloads over 17,189 bytes at an MSS of 1).
        let mut out = vec![0u8; 2 << 20];
        let s = segment(&p, &h, &mut out, 8).expect("segments");
        let hdrs = if udp { 28 } else { 52 };
        let mut got = Vec::new();
        for k in 0..s.count {
            let q = &out[s.range(k)];
            prop_assert!(checksums_ok(q));
            prop_assert!(q.len() <= hdrs + usize::from(mss));
            got.extend_from_slice(&q[hdrs..]);
        }
        prop_assert_eq!(&got, &body);
        if !udp && s.count <= 64 {
            let mut c = Coalescer::new();
            let mut frames = Vec::new();
            for k in 0..s.count {
                let q = out[s.range(k)].to_vec();
                if c.push(&q) == Push::FlushFirst {
                    frames.push(c.finish().expect("run").to_vec());
                    prop_assert_eq!(c.push(&q), Push::Held);
                }
            }
            frames.push(c.finish().expect("run").to_vec());
            if 52 + payload <= 65_535 {
                prop_assert_eq!(frames.len(), 1);
                let f = &frames[0];
                let fh = VnetHdr::parse(f).expect("hdr");
                let mut pkt = f[VNET_HDR_LEN..].to_vec();
                complete_csum(&mut pkt, &fh).expect("csum");
                prop_assert_eq!(pkt, orig);
            }
        }
    }
}

/// The one's-complement sum as RFC 1071 writes it: big-endian 16-bit words,
/// a last odd byte padded with zero.
fn reference_sum(data: &[u8], acc: u64) -> u16 {
    let mut s = acc;
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    fold(s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The vectorized sum equals the plain one for every length and start
    /// (the lanes, the 8-byte steps, the odd byte), any starting value.
    #[test]
    fn the_fast_checksum_equals_rfc_1071(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        skip in 0usize..8,
        acc in 0u64..(1 << 40),
    ) {
        let d = &data[skip.min(data.len())..];
        prop_assert_eq!(fold(sum(d, acc)), reference_sum(d, acc));
    }
}

/// Sums that carry in every lane: all-ones words over a whole super-packet.
#[test]
fn the_fast_checksum_carries_at_the_largest_packet() {
    for len in [65_535usize, 65_536, 65_535 - 127] {
        let d = vec![0xffu8; len];
        assert_eq!(fold(sum(&d, 0xffff)), reference_sum(&d, 0xffff), "{len}");
    }
}
