//! Who may send into a session's tunnel, and where a UE's packet may go
//! (issue 13 items 1 and 4): per-packet decisions on virtual time; and the
//! bound on rules per session (item 5).

use super::tests::{basic, table, to_gnb, up, GNB, SRV, UE};
use super::*;
use crate::datapath::Verdict;
use crate::packet::build_udp;
use crate::rules::FarAction;
use std::sync::atomic::Ordering;

const OTHER_GNB: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 66);

fn set_dl_far(t: &mut SessionTable, seid: u64, action: FarAction, now: Instant) {
    let m = Modification {
        update_fars: vec![Far { id: 2, action }],
        ..Default::default()
    };
    t.modify(seid, m, now).expect("modified");
}

fn verdict(t: &SessionTable, from: Ipv4Addr, teid: u32, pkt: &[u8], now: Instant) -> String {
    match t.snapshot().uplink(from, teid, None, pkt, now) {
        Verdict::Drop(r) => r.label().to_string(),
        Verdict::ToN6 => "to_n6".into(),
        v => format!("{v:?}"),
    }
}

#[test]
fn uplink_only_from_the_gnb_the_downlink_goes_to() {
    let (mut t, now) = table();
    // Established while the gNB's tunnel is not known yet (the downlink
    // buffers): the first uplink data may come before the SMF tells the
    // gNB's address, from any sender (the UE address is still checked).
    let e = t
        .establish(1, basic(FarAction::Buffer), now)
        .expect("established");
    let teid = e.created[0].teid;
    let p = up(1, 2);
    assert_eq!(
        t.session(e.local_seid)
            .expect("session")
            .senders(Interface::Access),
        None
    );
    assert_eq!(verdict(&t, GNB, teid, &p, now), "to_n6");
    let spoofed = build_udp(Ipv4Addr::new(10, 60, 0, 99), 1, SRV, 2, &[0; 8]);
    assert_eq!(verdict(&t, ROGUE, teid, &spoofed, now), "spoofed");

    // The SMF points the downlink at the gNB: its uplink passes, another
    // sender of the same (valid) TEID is dropped and counted.
    set_dl_far(&mut t, e.local_seid, to_gnb(7), now);
    assert_eq!(verdict(&t, GNB, teid, &p, now), "to_n6");
    assert_eq!(verdict(&t, ROGUE, teid, &p, now), "wrong_sender");
    let s = t.session(e.local_seid).expect("session");
    assert_eq!(s.shared.wrong_sender.load(Ordering::Relaxed), 1);
    assert_eq!(s.shared.ul.get().0, 2, "only the gNB's packets counted");
    assert_eq!(s.senders(Interface::Access), Some(&[GNB][..]));

    // Idle (downlink buffers again): the last gNB stays the sender.
    set_dl_far(&mut t, e.local_seid, FarAction::Buffer, now);
    assert_eq!(verdict(&t, GNB, teid, &p, now), "to_n6");
    // Path switch to another gNB: the old one is refused from then on.
    let other = FarAction::Forward {
        destination: Interface::Access,
        outer_header: Some(crate::rules::OuterHeader {
            teid: 9,
            peer: SocketAddrV4::new(OTHER_GNB, 2152),
        }),
    };
    set_dl_far(&mut t, e.local_seid, other, now);
    assert_eq!(verdict(&t, OTHER_GNB, teid, &p, now), "to_n6");
    assert_eq!(verdict(&t, GNB, teid, &p, now), "wrong_sender");
}

#[test]
fn another_ues_teid_through_the_right_gnb_is_still_its_own_session() {
    // Two UEs behind one gNB: UE A uses UE B's TEID. The sender is right
    // (same gNB), so the session's anti-spoofing decides: A's address is
    // not B's UE address.
    let (mut t, now) = table();
    let a = t.establish(1, basic(to_gnb(1)), now).expect("a");
    let ue_b = Ipv4Addr::new(10, 60, 0, 2);
    let mut rb = basic(to_gnb(2));
    for p in &mut rb.pdrs {
        p.pdi.ue_ip = Some(ue_b);
    }
    let b = t.establish(2, rb, now).expect("b");
    let from_a = up(1, 2);
    assert_eq!(verdict(&t, GNB, b.created[0].teid, &from_a, now), "spoofed");
    assert_eq!(verdict(&t, GNB, a.created[0].teid, &from_a, now), "to_n6");
}

#[test]
fn uplink_to_the_upf_or_a_protected_network_is_dropped() {
    let (mut t, now) = table();
    // upf1 of the paper topology: cp 10.0.0.11/24, n3 10.3.0.11/24,
    // n6 10.61.0.1/30.
    t.set_protected(crate::protect::paper_upf1());
    let e = t.establish(1, basic(to_gnb(1)), now).expect("established");
    let teid = e.created[0].teid;
    let to = |dst: [u8; 4]| build_udp(UE, 4000, Ipv4Addr::from(dst), 8805, &[0; 40]);
    for dst in [
        [10, 0, 0, 1],  // the SMF (cp)
        [10, 0, 0, 11], // this UPF's N4
        [10, 3, 0, 12], // the other UPF's N3
        [10, 3, 0, 1],  // the gNB's N3
        [10, 61, 0, 1], // this UPF's own N6 address
        [127, 0, 0, 1],
    ] {
        assert_eq!(
            verdict(&t, GNB, teid, &to(dst), now),
            "protected_destination",
            "{dst:?}"
        );
    }
    // The data network (the edge's N6 address, anything behind it).
    assert_eq!(verdict(&t, GNB, teid, &to([10, 61, 0, 2]), now), "to_n6");
    assert_eq!(verdict(&t, GNB, teid, &up(1, 2), now), "to_n6", "{SRV}");
    let s = t.session(e.local_seid).expect("session");
    assert_eq!(s.shared.protected_dst.load(Ordering::Relaxed), 6);
    // The protection survives a release of every session.
    t.clear();
    let e = t.establish(2, basic(to_gnb(1)), now).expect("again");
    assert_eq!(
        verdict(&t, GNB, e.created[0].teid, &to([10, 0, 0, 1]), now),
        "protected_destination"
    );
}

#[test]
fn rules_per_session_are_bounded_and_a_refusal_changes_nothing() {
    let (_, now) = table();
    let limits = Limits {
        max_rules_per_session: 3,
        ..Limits::default()
    };
    let mut t = SessionTable::new(limits, Ipv4Addr::new(10, 0, 3, 2), now);
    let e = t.establish(1, basic(to_gnb(1)), now).expect("2 FARs fit");
    let far = |id| Far {
        id,
        action: FarAction::Drop,
    };
    let qer = |id| crate::rules::Qer {
        id,
        gate_ul: crate::rules::Gate::Open,
        gate_dl: crate::rules::Gate::Open,
        mbr_ul: None,
        mbr_dl: None,
        qfi: None,
    };
    let add = |fars: Vec<Far>, qers: Vec<crate::rules::Qer>| Modification {
        create: SessionRules {
            fars,
            qers,
            ..Default::default()
        },
        ..Default::default()
    };
    t.modify(e.local_seid, add(vec![far(3)], vec![]), now)
        .expect("3 FARs fit");
    let before = format!("{:?}", t.session(e.local_seid).expect("session").far(4));
    let r = t
        .modify(e.local_seid, add(vec![far(4)], vec![qer(1)]), now)
        .expect_err("a 4th FAR");
    assert_eq!(r.cause, Cause::NoResourcesAvailable);
    assert_eq!(r.offending_ie, Some(crate::rules::ie_type::CREATE_FAR));
    assert!(r.message.contains("4 FARs, limit 3"), "{}", r.message);
    let s = t.session(e.local_seid).expect("session");
    assert_eq!(format!("{:?}", s.far(4)), before, "FAR 4 not created");
    assert!(s.qer(1).is_none(), "nor the valid QER beside it");
    let r = t
        .modify(e.local_seid, add(vec![], (1..=4).map(qer).collect()), now)
        .expect_err("4 QERs");
    assert_eq!(r.offending_ie, Some(crate::rules::ie_type::CREATE_QER));
}
