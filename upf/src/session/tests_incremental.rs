//! The incremental lookup tables: after every change they equal a rebuild
//! from scratch, share what did not change, and follow TEIDs and UE
//! addresses between sessions.

use super::tests::{basic, dl_pdr, far, table, to_gnb, GNB, SRV};
use super::*;
use crate::datapath::{DropReason, Verdict};
use crate::packet::build_udp;
use crate::rules::FTeidSpec;

/// A session like [`basic`] for UE address `ue`, uplink TEID `teid` (given,
/// or chosen when `None`), downlink towards gNB TEID `dl_teid`.
pub(super) fn session_for(ue: Ipv4Addr, teid: Option<u32>, dl_teid: u32) -> SessionRules {
    let mut r = basic(to_gnb(dl_teid));
    for p in &mut r.pdrs {
        p.pdi.ue_ip = Some(ue);
    }
    if let Some(t) = teid {
        r.pdrs[0].pdi.local_fteid = Some(FTeidSpec::Given(t));
    }
    r
}

pub(super) fn ue_n(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 60, 1, i)
}

/// What a snapshot maps each key to: (PDR ID, owning SEID, precedence), in
/// lookup order.
type Shape = (
    BTreeMap<u32, Vec<(u16, u64, u32)>>,
    BTreeMap<Ipv4Addr, Vec<(u16, u64, u32)>>,
);

fn shape(s: &Snapshot) -> Shape {
    let list = |l: &crate::datapath::PdrList| {
        l.iter()
            .map(|p| (p.pdr_id, p.session.seid, p.precedence))
            .collect::<Vec<_>>()
    };
    (
        s.uplink.iter().map(|(k, l)| (*k, list(l))).collect(),
        s.downlink.iter().map(|(k, l)| (*k, list(l))).collect(),
    )
}

fn assert_incremental_is_rebuild(t: &SessionTable) {
    assert_eq!(shape(&t.snapshot()), shape(&t.rebuild_snapshot()));
}

fn dl_teid_of(snap: &Snapshot, ue: Ipv4Addr, now: Instant) -> Option<u32> {
    let p = build_udp(SRV, 80, ue, 1000, &[0u8; 32]);
    match snap.downlink(&p, now, true) {
        Verdict::Tunnel { outer, .. } => Some(outer.teid),
        _ => None,
    }
}

#[test]
fn modified_session_visible_others_unchanged_and_shared() {
    let (mut t, now) = table();
    let ids: Vec<(u64, u32)> = (1..=3)
        .map(|i| {
            let e = t
                .establish(
                    u64::from(i),
                    session_for(ue_n(i), None, 10 + u32::from(i)),
                    now,
                )
                .expect("established");
            (e.local_seid, e.created[0].teid)
        })
        .collect();
    let before = t.snapshot();
    // Traffic through the old snapshot, counted before the change.
    let ul = build_udp(ue_n(2), 1, SRV, 2, &[0u8; 50]);
    assert!(matches!(
        before.uplink(GNB, ids[1].1, None, &ul, now),
        Verdict::ToN6
    ));
    let (b_seid, b_teid) = ids[1];
    t.modify(
        b_seid,
        Modification {
            update_fars: vec![far(2, to_gnb(99))],
            ..Default::default()
        },
        now,
    )
    .expect("modified");
    let after = t.snapshot();
    // The change is visible in the new snapshot only.
    assert_eq!(dl_teid_of(&after, ue_n(2), now), Some(99));
    assert_eq!(dl_teid_of(&before, ue_n(2), now), Some(12));
    // The other sessions' lists are the same allocations, not copies.
    for (i, (_, teid)) in ids.iter().enumerate() {
        let ue = ue_n(i as u8 + 1);
        let ul_same = Arc::ptr_eq(&before.uplink[teid], &after.uplink[teid]);
        let dl_same = Arc::ptr_eq(&before.downlink[&ue], &after.downlink[&ue]);
        if *teid == b_teid {
            assert!(!dl_same, "modified session recompiled");
        } else {
            assert!(ul_same && dl_same, "session {i} shared");
            assert_eq!(dl_teid_of(&after, ue, now), Some(11 + i as u32));
        }
    }
    // Counters survive the recompilation: a packet through the new
    // snapshot adds to the same session and PDR counters.
    assert!(matches!(
        after.uplink(GNB, b_teid, None, &ul, now),
        Verdict::ToN6
    ));
    let s = t.session(b_seid).expect("exists");
    assert_eq!(s.shared.ul.get(), (2, 2 * ul.len() as u64));
    assert_eq!(s.pdr_stats()[0].packets, 2);
    assert_incremental_is_rebuild(&t);
}

#[test]
fn deleted_session_gone_from_both_indexes() {
    let (mut t, now) = table();
    let a = t
        .establish(1, session_for(ue_n(1), None, 11), now)
        .expect("a");
    let b = t
        .establish(2, session_for(ue_n(2), None, 12), now)
        .expect("b");
    let b_teid = b.created[0].teid;
    let old = t.snapshot();
    t.delete(b.local_seid, now).expect("deleted");
    let snap = t.snapshot();
    assert!(!snap.knows_teid(b_teid));
    assert!(!snap.downlink.contains_key(&ue_n(2)));
    assert!(t.compiled(b.local_seid).is_none());
    let ul = build_udp(ue_n(2), 1, SRV, 2, &[0u8; 50]);
    assert!(matches!(
        snap.uplink(GNB, b_teid, None, &ul, now),
        Verdict::Drop(DropReason::UnknownTeid)
    ));
    assert_eq!(dl_teid_of(&snap, ue_n(2), now), None);
    // The survivor is untouched; the old snapshot still has both.
    assert!(snap.knows_teid(a.created[0].teid));
    assert_eq!(dl_teid_of(&snap, ue_n(1), now), Some(11));
    assert!(old.knows_teid(b_teid));
    // The address is free for a new session.
    let c = t
        .establish(3, session_for(ue_n(2), None, 13), now)
        .expect("address reused");
    assert_eq!(dl_teid_of(&t.snapshot(), ue_n(2), now), Some(13));
    assert_eq!(
        t.snapshot().downlink[&ue_n(2)][0].session.seid,
        c.local_seid
    );
    assert_incremental_is_rebuild(&t);
    t.clear();
    let empty = t.snapshot();
    assert!(empty.uplink.is_empty() && empty.downlink.is_empty());
    assert_incremental_is_rebuild(&t);
}

#[test]
fn teid_moved_between_sessions() {
    let (mut t, now) = table();
    let a = t
        .establish(1, session_for(ue_n(1), Some(0x100), 11), now)
        .expect("a");
    // Taken: B cannot have it yet.
    let e = t
        .establish(2, session_for(ue_n(2), Some(0x100), 12), now)
        .expect_err("TEID in use");
    assert_eq!(e.offending_ie, Some(ie_type::F_TEID));
    let b = t
        .establish(2, session_for(ue_n(2), Some(0x200), 12), now)
        .expect("b");
    // A moves to 0x300, then B takes 0x100 and leaves 0x200.
    let mut pa = session_for(ue_n(1), Some(0x300), 11).pdrs.remove(0);
    pa.id = 1;
    t.modify(
        a.local_seid,
        Modification {
            update_pdrs: vec![pa],
            ..Default::default()
        },
        now,
    )
    .expect("A moved");
    assert_incremental_is_rebuild(&t);
    let pb = session_for(ue_n(2), Some(0x100), 12).pdrs.remove(0);
    t.modify(
        b.local_seid,
        Modification {
            update_pdrs: vec![pb],
            ..Default::default()
        },
        now,
    )
    .expect("B takes the TEID");
    let snap = t.snapshot();
    let owner = |teid: u32| snap.uplink.get(&teid).map(|l| l[0].session.seid);
    assert_eq!(owner(0x100), Some(b.local_seid));
    assert_eq!(owner(0x300), Some(a.local_seid));
    assert_eq!(owner(0x200), None);
    let ul_b = build_udp(ue_n(2), 1, SRV, 2, &[0u8; 50]);
    let ul_a = build_udp(ue_n(1), 1, SRV, 2, &[0u8; 50]);
    assert!(matches!(
        snap.uplink(GNB, 0x100, None, &ul_b, now),
        Verdict::ToN6
    ));
    // A's traffic on its old TEID is now spoofed (B's UE check).
    assert!(matches!(
        snap.uplink(GNB, 0x100, None, &ul_a, now),
        Verdict::Drop(DropReason::Spoofed)
    ));
    assert!(matches!(
        snap.uplink(GNB, 0x300, None, &ul_a, now),
        Verdict::ToN6
    ));
    assert_incremental_is_rebuild(&t);
}

#[test]
fn incremental_tables_follow_a_mixed_history() {
    let (mut t, now) = table();
    let mut live: Vec<u64> = Vec::new();
    // A deterministic mix of establishments, modifications and deletions.
    for step in 0u32..120 {
        let i = (step * 7 % 50) as u8 + 1;
        match step % 5 {
            0..=2 => {
                if let Ok(e) = t.establish(u64::from(step), session_for(ue_n(i), None, step), now) {
                    live.push(e.local_seid);
                }
            }
            3 if !live.is_empty() => {
                let seid = live[step as usize % live.len()];
                let mut pdr = dl_pdr(3 + step as u16, 50, 2);
                pdr.pdi.ue_ip = t.session(seid).and_then(Session::ue_ip);
                t.modify(
                    seid,
                    Modification {
                        update_fars: vec![far(2, to_gnb(1000 + step))],
                        create: SessionRules {
                            pdrs: vec![pdr],
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                    now,
                )
                .map(|_| ())
                .unwrap_or_else(|e| panic!("modify {seid}: {e}"));
            }
            _ if !live.is_empty() => {
                let seid = live.swap_remove(step as usize % live.len());
                t.delete(seid, now).expect("deleted");
            }
            _ => {}
        }
        assert_incremental_is_rebuild(&t);
    }
    assert!(!live.is_empty());
    assert_eq!(t.snapshot().downlink.len(), live.len());
}
