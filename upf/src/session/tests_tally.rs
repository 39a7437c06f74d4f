//! Counting per run ([`Tally`]) and one decision per super-packet
//! ([`Snapshot::again`]) give what packet-by-packet decisions give.

use super::tests::{basic, dl_limited_qer, gnb, metered_table, table, to_gnb, up, GNB, SRV, UE};
use super::*;
use crate::datapath::{DropReason, Tally, Verdict};
use crate::packet::build_udp;
use crate::rules::Gate;

/// A run of one PDR reaches the shared counters (the PDR's, the
/// session's, its URRs') when it ends: at a change of PDR or at the flush
/// that ends a batch, with the same totals as counting packet by packet,
/// and a URR threshold it crosses is reported.
#[test]
fn a_tally_counts_runs_as_packet_by_packet_counting_would() {
    let (mut t, t0, e, teid, snap) = metered_table(1000);
    let shared = t.session(e.local_seid).expect("session").shared.clone();
    let u = up(1, 2); // 100 bytes
    let d = build_udp(SRV, 2, UE, 1, &[0u8; 172]); // 200 bytes
    let mut tally = Tally::new();
    for _ in 0..3 {
        let v = snap.uplink_tallied(GNB, teid, None, &u, t0, &mut tally);
        assert!(matches!(v, Verdict::ToN6));
    }
    assert_eq!(shared.ul.get(), (0, 0), "the run is still open");
    // Another PDR ends the uplink run.
    let v = snap.downlink_tallied(&d, t0, Some(&mut tally));
    assert!(matches!(v, Verdict::Tunnel { .. }));
    assert_eq!(shared.ul.get(), (3, 300));
    assert_eq!(shared.dl.get(), (0, 0));
    for _ in 0..3 {
        snap.downlink_tallied(&d, t0, Some(&mut tally));
    }
    assert_eq!(t.poll_reports(t0), vec![], "nothing written yet");
    tally.flush();
    assert_eq!(shared.dl.get(), (4, 800));
    let reps = t.poll_reports(t0);
    assert_eq!(reps.len(), 1, "1100 bytes cross the threshold of 1000");
    assert_eq!(
        (
            reps[0].ul_packets,
            reps[0].ul_bytes,
            reps[0].dl_packets,
            reps[0].dl_bytes
        ),
        (3, 300, 4, 800)
    );
    // Dropping a tally writes what it holds.
    {
        let mut tally = Tally::new();
        snap.uplink_tallied(GNB, teid, None, &u, t0, &mut tally);
    }
    assert_eq!(shared.ul.get(), (4, 400));
    // Packets that match no PDR are not counted by a tally.
    let mut tally = Tally::new();
    let v = snap.uplink_tallied(GNB, teid + 1, None, &u, t0, &mut tally);
    assert!(matches!(v, Verdict::Drop(DropReason::UnknownTeid)));
    drop(tally);
    assert_eq!(shared.ul.get(), (4, 400));
}

/// A session whose downlink QER allows 1 MB/s (its bucket's burst, then
/// drops, at one instant).
fn limited(t: &mut SessionTable, t0: Instant, seid: u64) -> Arc<crate::datapath::SessionShared> {
    let mut r = basic(to_gnb(7));
    r.qers.push(dl_limited_qer(Gate::Open));
    r.pdrs[1].qer_ids = vec![1];
    let e = t.establish(seid, r, t0).expect("established");
    t.session(e.local_seid).expect("session").shared.clone()
}

/// The segments after a super-packet's first take its PDR without a parse
/// or lookup, but each meets the QER and is counted on its own: the same
/// verdicts, in the same order, as deciding every segment in full.
#[test]
fn again_decides_each_segment_as_a_full_decision_would() {
    let seg = build_udp(SRV, 2, UE, 1, &[0u8; 1372]); // 1400 bytes
    let segments = 2000;
    let verdicts = |again: bool| {
        let (mut t, t0) = table();
        let shared = limited(&mut t, t0, 1);
        let snap = t.snapshot();
        let mut tally = Tally::new();
        let mut out = Vec::new();
        for i in 0..segments {
            let v = match (i > 0 && again).then(|| snap.again(seg.len(), t0, &mut tally)) {
                Some(v) => v.expect("the first segment matched a PDR"),
                None => snap.downlink_tallied(&seg, t0, Some(&mut tally)),
            };
            out.push(match v {
                Verdict::Tunnel { outer, .. } => {
                    assert_eq!(outer, gnb(7));
                    "tunnel"
                }
                Verdict::Drop(DropReason::RateExceeded) => "rate",
                _ => "other",
            });
        }
        drop(tally);
        let passed = out.iter().filter(|v| **v == "tunnel").count() as u64;
        assert_eq!(shared.dl.get(), (passed, passed * seg.len() as u64));
        assert_eq!(
            shared.dropped.load(std::sync::atomic::Ordering::Relaxed),
            segments - passed
        );
        out
    };
    let full = verdicts(false);
    let again = verdicts(true);
    assert!(
        full.contains(&"tunnel") && full.contains(&"rate"),
        "the bucket's burst passes, then it drops"
    );
    assert_eq!(again, full);
}

/// After a decision that matched no PDR there is nothing to decide again.
#[test]
fn again_needs_a_matched_pdr() {
    let (mut t, t0) = table();
    t.establish(1, basic(to_gnb(1)), t0).expect("established");
    let snap = t.snapshot();
    let mut tally = Tally::new();
    let stranger = build_udp(SRV, 2, Ipv4Addr::new(10, 60, 9, 9), 1, &[0u8; 72]);
    let v = snap.downlink_tallied(&stranger, t0, Some(&mut tally));
    assert!(matches!(v, Verdict::Drop(DropReason::UnknownUe)));
    assert!(snap.again(stranger.len(), t0, &mut tally).is_none());
    let known = build_udp(SRV, 2, UE, 1, &[0u8; 72]);
    snap.downlink_tallied(&known, t0, Some(&mut tally));
    assert!(snap.again(known.len(), t0, &mut tally).is_some());
    // A decision that failed before its lookup forgets the PDR.
    let v = snap.downlink_tallied(&[0x45, 0], t0, Some(&mut tally));
    assert!(matches!(v, Verdict::Drop(DropReason::Malformed)));
    assert!(snap.again(known.len(), t0, &mut tally).is_none());
}
