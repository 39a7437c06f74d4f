//! Property tests of the RTP packetizer and depacketizer.

use media::rtp::{Depacketizer, FrameMeta, Packet, Packetizer};
use proptest::prelude::*;

/// An access unit of NAL units of the given sizes (types 1..=23 without
/// zero octets in their bodies, so no start code is emulated).
fn access_unit(sizes: &[usize], seed: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.push(0x40 | (1 + (k as u8 + seed) % 23));
        v.extend((1..n).map(|i| ((i as u8).wrapping_mul(13) ^ seed).max(1)));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn packetize_depacketize_round_trip(
        frames in prop::collection::vec(prop::collection::vec(1usize..5000, 1..6), 1..5),
        mtu in 40usize..1600,
        ssrc in any::<u32>(),
        seq0 in any::<u16>(),
        ts0 in any::<u32>(),
    ) {
        let mut pz = Packetizer::new(ssrc, 96, mtu);
        pz.set_sequence_number(seq0);
        let mut dz = Depacketizer::new();
        for (i, sizes) in frames.iter().enumerate() {
            let au = access_unit(sizes, i as u8);
            let meta = FrameMeta { tick: i as u64, input_seq: 2 * i as u64, rendered_ns: 3 * i as u64 };
            let ts = ts0.wrapping_add(1500 * i as u32);
            let mut out = Vec::new();
            pz.packetize(&au, ts, &meta, &mut out);
            let mut got = Vec::new();
            for (k, d) in out.iter().enumerate() {
                prop_assert!(d.len() <= pz.mtu());
                let p = Packet::new_checked(&d[..]).expect("own packets are valid");
                prop_assert_eq!(p.marker(), k + 1 == out.len());
                if let Some(u) = dz.push(d).expect("own packets are accepted") {
                    got.push(u);
                }
            }
            prop_assert_eq!(got.len(), 1);
            let u = &got[0];
            prop_assert!(u.complete);
            prop_assert_eq!(u.timestamp, ts);
            prop_assert_eq!(u.meta, Some(meta));
            prop_assert_eq!(&u.annexb, &au);
        }
        prop_assert_eq!(dz.stats().gaps, 0);
    }

    #[test]
    fn loss_never_yields_a_wrong_complete_unit(
        sizes in prop::collection::vec(prop::collection::vec(1usize..3000, 1..4), 2..8),
        drop_mask in any::<u64>(),
        mtu in 60usize..1400,
    ) {
        let mut pz = Packetizer::new(9, 96, mtu);
        let mut packets = Vec::new();
        let mut units = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            let au = access_unit(s, i as u8);
            pz.packetize(&au, 3000 * i as u32, &FrameMeta::default(), &mut packets);
            units.push(au);
        }
        let mut dz = Depacketizer::new();
        let mut got = Vec::new();
        for (k, d) in packets.iter().enumerate() {
            if drop_mask & (1 << (k % 64)) != 0 && k != 0 {
                continue;
            }
            if let Some(u) = dz.push(d).expect("valid packets") {
                got.push(u);
            }
            while let Some(u) = dz.pop() {
                got.push(u);
            }
        }
        got.extend(dz.flush());
        for u in got {
            if u.complete {
                let i = (u.timestamp / 3000) as usize;
                prop_assert_eq!(&u.annexb, &units[i], "unit {} claimed complete", i);
            }
        }
    }

    #[test]
    fn arbitrary_datagrams_never_panic(datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..40)) {
        let mut dz = Depacketizer::new();
        for d in &datagrams {
            let _ = dz.push(d);
            let _ = Packet::new_checked(&d[..]).map(|p| (p.payload().len(), p.extension_header().map(|e| e.1.len())));
        }
        let _ = dz.flush();
        let s = dz.stats();
        prop_assert_eq!(s.packets + s.malformed + s.late, datagrams.len() as u64);
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        sizes in prop::collection::vec(1usize..2000, 1..4),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut pz = Packetizer::new(5, 96, 300);
        let mut out = Vec::new();
        pz.packetize(&access_unit(&sizes, 1), 0, &FrameMeta::default(), &mut out);
        let mut dz = Depacketizer::new();
        for d in &out {
            let mut m = d.clone();
            for &(pos, x) in &flips {
                let n = m.len();
                m[pos % n] ^= x;
            }
            m.truncate(cut % (m.len() + 1));
            let _ = dz.push(&m);
        }
        let _ = dz.flush();
    }
}
