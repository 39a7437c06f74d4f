//! Session table and data path decisions, deterministic (virtual time).

use super::*;
use crate::datapath::{DropReason, Verdict};
use crate::packet::build_udp;
use crate::rules::{FTeidSpec, FarAction, Gate, OuterHeader, Qer, VolumeThreshold};
use crate::sdf::FlowDescription;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) const UE: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 1);
pub(super) const SRV: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
pub(super) const N3: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);

/// The gNB the downlink FARs of [`to_gnb`] send to.
pub(super) const GNB: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);

pub(super) fn gnb(teid: u32) -> OuterHeader {
    OuterHeader {
        teid,
        peer: SocketAddrV4::new(GNB, 2152),
    }
}

pub(super) fn ul_pdr(id: u16, prec: u32, far: u32, sdf: &[&str]) -> Pdr {
    let sdf = sdf
        .iter()
        .map(|s| FlowDescription::parse(s).expect("valid sdf"))
        .collect();
    Pdr::uplink(id, prec, far, FTeidSpec::Choose(Some(1)), UE, sdf)
}

pub(super) fn dl_pdr(id: u16, prec: u32, far: u32) -> Pdr {
    Pdr::downlink(id, prec, far, UE)
}

/// URR `id`: a threshold of `total` bytes (both directions) and a period
/// of 10 s.
pub(super) fn threshold_urr(id: u32, total: u64) -> Urr {
    Urr {
        id,
        volume_threshold: Some(VolumeThreshold {
            total: Some(total),
            ..Default::default()
        }),
        measurement_period: Some(Duration::from_secs(10)),
    }
}

/// QER 1: the uplink gate `gate_ul`, the downlink open at 8 Mbit/s
/// (1 MB/s), no QFI.
pub(super) fn dl_limited_qer(gate_ul: Gate) -> Qer {
    Qer {
        id: 1,
        gate_ul,
        gate_dl: Gate::Open,
        mbr_ul: None,
        mbr_dl: Some(8_000_000),
        qfi: None,
    }
}

/// [`basic`] towards gNB TEID 1 with URR 1 (a threshold of `total` bytes)
/// on both PDRs.
pub(super) fn metered(total: u64) -> SessionRules {
    let mut r = basic(to_gnb(1));
    r.urrs.push(threshold_urr(1, total));
    r.pdrs[0].urr_ids = vec![1];
    r.pdrs[1].urr_ids = vec![1];
    r
}

/// A table with one [`metered`] session (remote SEID 9) made at its
/// start: the table, the start, the session, its uplink TEID and a
/// snapshot.
pub(super) fn metered_table(total: u64) -> (SessionTable, Instant, Established, u32, Snapshot) {
    let (mut t, t0) = table();
    let e = t.establish(9, metered(total), t0).expect("established");
    let teid = e.created[0].teid;
    let snap = t.snapshot();
    (t, t0, e, teid, snap)
}

pub(super) fn far(id: u32, action: FarAction) -> Far {
    Far { id, action }
}

fn to_n6() -> FarAction {
    FarAction::to_core()
}

pub(super) fn to_gnb(teid: u32) -> FarAction {
    FarAction::to_access(teid, gnb(teid).peer)
}

/// A session with UL PDR 1 -> FAR 1 (N6) and DL PDR 2 -> FAR 2.
pub(super) fn basic(dl_action: FarAction) -> SessionRules {
    SessionRules {
        pdrs: vec![ul_pdr(1, 100, 1, &[]), dl_pdr(2, 100, 2)],
        fars: vec![far(1, to_n6()), far(2, dl_action)],
        ..Default::default()
    }
}

pub(super) fn table() -> (SessionTable, Instant) {
    let t0 = Instant::now();
    (SessionTable::new(Limits::default(), N3, t0), t0)
}

pub(super) fn up(sport: u16, dport: u16) -> Vec<u8> {
    build_udp(UE, sport, SRV, dport, &[0u8; 72])
}
fn down(sport: u16, dport: u16) -> Vec<u8> {
    build_udp(SRV, sport, UE, dport, &[0u8; 72])
}

#[test]
fn establish_chooses_teid_and_forwards_uplink() {
    let (mut t, now) = table();
    let e = t.establish(77, basic(to_gnb(5)), now).expect("established");
    assert_eq!(e.created.len(), 1);
    let c = e.created[0];
    assert_eq!((c.pdr_id, c.addr), (1, N3));
    assert_ne!(c.teid, 0);
    let snap = t.snapshot();
    let p = up(1000, 2000);
    assert!(matches!(
        snap.uplink(GNB, c.teid, None, &p, now),
        Verdict::ToN6
    ));
    assert!(matches!(
        snap.uplink(GNB, c.teid + 1, None, &p, now),
        Verdict::Drop(DropReason::UnknownTeid)
    ));
    let s = t.session(e.local_seid).expect("exists");
    assert_eq!(s.remote_seid, 77);
    assert_eq!(s.shared.ul.get(), (1, p.len() as u64));
}

#[test]
fn same_choose_id_same_teid_different_id_different_teid() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(9));
    let mut p3 = ul_pdr(3, 50, 1, &["permit out 17 from any to assigned"]);
    p3.pdi.local_fteid = Some(FTeidSpec::Choose(Some(1)));
    let mut p4 = ul_pdr(4, 60, 1, &[]);
    p4.pdi.local_fteid = Some(FTeidSpec::Choose(Some(2)));
    r.pdrs.push(p3);
    r.pdrs.push(p4);
    let e = t.establish(1, r, now).expect("established");
    let teid = |id| {
        e.created
            .iter()
            .find(|c| c.pdr_id == id)
            .expect("created")
            .teid
    };
    assert_eq!(teid(1), teid(3));
    assert_ne!(teid(1), teid(4));
    // A second session gets fresh TEIDs.
    let mut r2 = basic(to_gnb(9));
    for p in &mut r2.pdrs {
        p.pdi.ue_ip = Some(Ipv4Addr::new(10, 60, 0, 2));
    }
    let e2 = t.establish(2, r2, now).expect("established");
    assert!(![teid(1), teid(4)].contains(&e2.created[0].teid));
}

#[test]
fn sdf_precedence_lowest_value_wins() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(9));
    // PDR 10 (prec 10): UDP to port 5001 -> FAR 3 (drop).
    // PDR 11 (prec 20): UDP to ports 5000-5010 -> FAR 4 (to a tunnel).
    // PDR 1 (prec 100): everything -> N6.
    r.pdrs.push(ul_pdr(
        10,
        10,
        3,
        &["permit out 17 from any 5001 to assigned"],
    ));
    r.pdrs.push(ul_pdr(
        11,
        20,
        4,
        &["permit out 17 from 192.168.1.0/24 5000-5010 to assigned"],
    ));
    r.fars.push(far(3, FarAction::Drop));
    r.fars.push(far(4, to_gnb(99)));
    let e = t.establish(1, r, now).expect("established");
    let teid = e.created[0].teid;
    let snap = t.snapshot();
    assert!(matches!(
        snap.uplink(GNB, teid, None, &up(1, 5001), now),
        Verdict::Drop(DropReason::FarDrop)
    ));
    assert!(matches!(
        snap.uplink(GNB, teid, None, &up(1, 5002), now),
        Verdict::Tunnel { outer, .. } if outer.teid == 99
    ));
    assert!(matches!(
        snap.uplink(GNB, teid, None, &up(1, 6000), now),
        Verdict::ToN6
    ));
    // The per-PDR counters say which PDR matched.
    let stats = t.session(e.local_seid).expect("exists").pdr_stats();
    let get = |id| stats.iter().find(|s| s.pdr_id == id).expect("pdr").packets;
    assert_eq!((get(10), get(11), get(1)), (1, 1, 1));
}

#[test]
fn precedence_swapped_changes_winner() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(9));
    r.pdrs[0].precedence = 5; // catch-all now beats the specific one
    r.pdrs.push(ul_pdr(
        10,
        10,
        3,
        &["permit out 17 from any 5001 to assigned"],
    ));
    r.fars.push(far(3, FarAction::Drop));
    let e = t.establish(1, r, now).expect("established");
    let snap = t.snapshot();
    assert!(matches!(
        snap.uplink(GNB, e.created[0].teid, None, &up(1, 5001), now),
        Verdict::ToN6
    ));
}

#[test]
fn qfi_must_match_when_set() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(9));
    r.pdrs[0].pdi.qfi = Some(9);
    let e = t.establish(1, r, now).expect("established");
    let snap = t.snapshot();
    let teid = e.created[0].teid;
    assert!(matches!(
        snap.uplink(GNB, teid, Some(9), &up(1, 2), now),
        Verdict::ToN6
    ));
    assert!(matches!(
        snap.uplink(GNB, teid, Some(8), &up(1, 2), now),
        Verdict::Drop(DropReason::NoPdrMatch)
    ));
    assert!(matches!(
        snap.uplink(GNB, teid, None, &up(1, 2), now),
        Verdict::Drop(DropReason::NoPdrMatch)
    ));
}

#[test]
fn anti_spoofing_drops_and_counts() {
    let (mut t, now) = table();
    let e = t.establish(1, basic(to_gnb(9)), now).expect("established");
    let snap = t.snapshot();
    let spoofed = build_udp(Ipv4Addr::new(10, 60, 0, 99), 1, SRV, 2, b"x");
    assert!(matches!(
        snap.uplink(GNB, e.created[0].teid, None, &spoofed, now),
        Verdict::Drop(DropReason::Spoofed)
    ));
    let s = t.session(e.local_seid).expect("exists");
    assert_eq!(s.shared.spoofed.load(Ordering::Relaxed), 1);
    assert_eq!(
        s.shared.ul.get().0,
        0,
        "spoofed packet not counted as matched"
    );
    assert!(matches!(
        snap.uplink(GNB, e.created[0].teid, None, b"garbage", now),
        Verdict::Drop(DropReason::Malformed)
    ));
}

#[test]
fn downlink_by_ue_address_with_qfi_from_qer() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(0x55));
    r.qers.push(Qer::open(1, Some(9)));
    r.pdrs[1].qer_ids = vec![1];
    t.establish(1, r, now).expect("established");
    let snap = t.snapshot();
    match snap.downlink(&down(80, 1000), now, true) {
        Verdict::Tunnel { outer, qfi, .. } => {
            assert_eq!(outer, gnb(0x55));
            assert_eq!(qfi, Some(9));
        }
        v => panic!("unexpected {v:?}"),
    }
    let other = build_udp(SRV, 1, Ipv4Addr::new(10, 60, 0, 7), 2, b"x");
    assert!(matches!(
        snap.downlink(&other, now, true),
        Verdict::Drop(DropReason::UnknownUe)
    ));
}

#[test]
fn buffer_then_flush_in_order_on_update_to_forw() {
    let (mut t, now) = table();
    let e = t
        .establish(1, basic(FarAction::Buffer), now)
        .expect("established");
    let snap = t.snapshot();
    for i in 0..5u16 {
        match snap.downlink(&down(80, 1000 + i), now, true) {
            Verdict::Buffer(s) => assert!(s.buffer_packet(&down(80, 1000 + i))),
            v => panic!("expected buffer, got {v:?}"),
        }
    }
    let m = Modification {
        update_fars: vec![far(2, to_gnb(7))],
        ..Default::default()
    };
    t.modify(e.local_seid, m, now).expect("modified");
    assert_eq!(t.poll_event(), Some(Event::Flush { seid: e.local_seid }));
    assert_eq!(t.poll_event(), None, "no end marker: old FAR had no tunnel");
    let snap = t.snapshot();
    let s = t.session(e.local_seid).expect("exists").shared.clone();
    let mut ports = Vec::new();
    s.drain_buffer(|p| {
        assert!(
            matches!(snap.downlink(p, now, false), Verdict::Tunnel { outer, .. } if outer.teid == 7)
        );
        ports.push(
            crate::packet::FiveTuple::parse(p)
                .and_then(|t| t.dst_port)
                .expect("port"),
        );
    });
    assert_eq!(ports, vec![1000, 1001, 1002, 1003, 1004]);
    // Replayed packets were counted once, when buffered.
    assert_eq!(s.dl.get().0, 5);
}

#[test]
fn buffer_is_bounded_by_bar_and_limit() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        Limits {
            max_buffer_packets: 3,
            ..Limits::default()
        },
        N3,
        t0,
    );
    let mut r = basic(FarAction::Buffer);
    r.buffer_packets = Some(4);
    let e = t.establish(1, r.clone(), t0).expect_err("over the limit");
    assert_eq!(
        (e.cause, e.offending_ie),
        (Cause::NoResourcesAvailable, Some(ie_type::CREATE_BAR))
    );
    r.buffer_packets = Some(2);
    let e = t.establish(1, r, t0).expect("within the limit");
    let s = t.session(e.local_seid).expect("exists").shared.clone();
    assert!(s.buffer_packet(b"1"));
    assert!(s.buffer_packet(b"2"));
    assert!(!s.buffer_packet(b"3"), "BAR asked for 2");
}

#[test]
fn update_to_drop_discards_buffer() {
    let (mut t, now) = table();
    let e = t
        .establish(1, basic(FarAction::Buffer), now)
        .expect("established");
    let s = t.session(e.local_seid).expect("exists").shared.clone();
    assert!(s.buffer_packet(&down(1, 2)));
    t.modify(
        e.local_seid,
        Modification {
            update_fars: vec![far(2, FarAction::Drop)],
            ..Default::default()
        },
        now,
    )
    .expect("modified");
    assert_eq!(s.buffered_len(), 0);
    assert_eq!(t.poll_event(), None);
}

#[test]
fn end_marker_on_path_switch_only() {
    let (mut t, now) = table();
    let e = t
        .establish(1, basic(to_gnb(0x10)), now)
        .expect("established");
    // Same tunnel again: no End Marker.
    t.modify(
        e.local_seid,
        Modification {
            update_fars: vec![far(2, to_gnb(0x10))],
            ..Default::default()
        },
        now,
    )
    .expect("modified");
    assert_eq!(t.poll_event(), None);
    // New TEID: End Marker to the old one.
    t.modify(
        e.local_seid,
        Modification {
            update_fars: vec![far(2, to_gnb(0x20))],
            ..Default::default()
        },
        now,
    )
    .expect("modified");
    assert_eq!(
        t.poll_event(),
        Some(Event::EndMarker {
            peer: gnb(0x10).peer,
            teid: 0x10
        })
    );
    assert_eq!(t.poll_event(), None);
}

#[test]
fn qer_gate_and_mbr_per_direction() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(1));
    r.qers.push(dl_limited_qer(Gate::Closed));
    r.pdrs[0].qer_ids = vec![1];
    r.pdrs[1].qer_ids = vec![1];
    let e = t.establish(1, r, now).expect("established");
    let snap = t.snapshot();
    assert!(matches!(
        snap.uplink(GNB, e.created[0].teid, None, &up(1, 2), now),
        Verdict::Drop(DropReason::GateClosed)
    ));
    // Offer 10 MB/s downlink for 1 virtual second: about 1 MB passes.
    let p = build_udp(SRV, 1, UE, 2, &[0u8; 972]); // 1000 bytes
    let mut passed = 0u64;
    for i in 0..10_000u32 {
        let at = now + Duration::from_micros(100) * i;
        if matches!(snap.downlink(&p, at, true), Verdict::Tunnel { .. }) {
            passed += 1000;
        }
    }
    assert!((990_000..=1_070_000).contains(&passed), "passed {passed}");
    // Open the UL gate with an update.
    t.modify(
        e.local_seid,
        Modification {
            update_qers: vec![Qer::open(1, None)],
            ..Default::default()
        },
        now,
    )
    .expect("modified");
    let snap = t.snapshot();
    assert!(matches!(
        snap.uplink(GNB, e.created[0].teid, None, &up(1, 2), now),
        Verdict::ToN6
    ));
}

#[test]
fn urr_threshold_period_query_and_termination() {
    let (mut t, t0, e, teid, snap) = metered_table(1000);
    let u = up(1, 2); // 100 bytes
    let d = down(2, 1);
    for _ in 0..4 {
        snap.uplink(GNB, teid, None, &u, t0);
    }
    snap.downlink(&d, t0, true);
    assert_eq!(t.poll_reports(t0), vec![], "500 bytes < 1000");
    for _ in 0..5 {
        snap.downlink(&d, t0, true);
    }
    let t1 = t0 + Duration::from_secs(1);
    let reps = t.poll_reports(t1);
    assert_eq!(reps.len(), 1);
    let r0 = &reps[0];
    assert_eq!(r0.trigger, ReportTrigger::VolumeThreshold);
    assert_eq!(
        (r0.ul_packets, r0.ul_bytes, r0.dl_packets, r0.dl_bytes),
        (4, 400, 6, 600)
    );
    assert_eq!((r0.seid, r0.remote_seid, r0.seqn), (e.local_seid, 9, 1));
    assert_eq!(t.poll_reports(t1), vec![], "counters reset");
    // Period report at t0 + 10 s.
    snap.uplink(GNB, teid, None, &u, t1);
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let reps = t.poll_reports(t0 + Duration::from_secs(10));
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].trigger, ReportTrigger::Period);
    assert_eq!(reps[0].ul_bytes, 100);
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    // Query in a modification.
    snap.downlink(&d, t1, true);
    let m = t
        .modify(
            e.local_seid,
            Modification {
                query_urrs: vec![1],
                ..Default::default()
            },
            t1,
        )
        .expect("modified");
    assert_eq!(m.reports.len(), 1);
    assert_eq!(
        (m.reports[0].trigger, m.reports[0].dl_bytes),
        (ReportTrigger::Query, 100)
    );
    // Termination report on deletion.
    snap.uplink(GNB, teid, None, &u, t1);
    let fin = t.delete(e.local_seid, t1).expect("deleted");
    assert_eq!(fin.len(), 1);
    assert_eq!(
        (fin[0].trigger, fin[0].ul_bytes),
        (ReportTrigger::Termination, 100)
    );
    assert!(t.is_empty());
    // Old TEIDs are gone from the next snapshot.
    assert!(!t.snapshot().knows_teid(teid));
}

#[test]
fn limits_refused_with_causes() {
    let t0 = Instant::now();
    let mut t = SessionTable::new(
        Limits {
            max_sessions: 1,
            max_pdrs_per_session: 2,
            ..Limits::default()
        },
        N3,
        t0,
    );
    let mut r = basic(to_gnb(9));
    r.pdrs.push(ul_pdr(3, 1, 1, &[]));
    let e = t.establish(1, r, t0).expect_err("3 PDRs > 2");
    assert_eq!(
        (e.cause, e.offending_ie),
        (Cause::NoResourcesAvailable, Some(ie_type::CREATE_PDR))
    );
    t.establish(1, basic(to_gnb(9)), t0).expect("fits");
    let e = t
        .establish(2, basic(to_gnb(9)), t0)
        .expect_err("1 session max");
    assert_eq!(e.cause, Cause::NoResourcesAvailable);
}

#[test]
fn bad_references_and_unknown_session() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(9));
    r.pdrs[0].far_id = 42;
    let e = t.establish(1, r, now).expect_err("missing FAR");
    assert_eq!(
        (e.cause, e.offending_ie),
        (
            Cause::RuleCreationModificationFailure,
            Some(ie_type::FAR_ID)
        )
    );
    let mut r = basic(to_gnb(9));
    r.pdrs[0].qer_ids = vec![3];
    assert_eq!(
        t.establish(1, r, now)
            .expect_err("missing QER")
            .offending_ie,
        Some(ie_type::QER_ID)
    );
    let mut r = basic(to_gnb(9));
    r.pdrs[0].urr_ids = vec![3];
    assert_eq!(
        t.establish(1, r, now)
            .expect_err("missing URR")
            .offending_ie,
        Some(ie_type::URR_ID)
    );
    assert!(t.is_empty(), "failed establishments leave nothing");
    assert_eq!(
        t.modify(5, Modification::default(), now)
            .expect_err("none")
            .cause,
        Cause::SessionContextNotFound
    );
    assert_eq!(
        t.delete(5, now).expect_err("none").cause,
        Cause::SessionContextNotFound
    );
}

#[test]
fn failed_modification_changes_nothing() {
    let (mut t, now) = table();
    let e = t.establish(1, basic(to_gnb(1)), now).expect("established");
    let m = Modification {
        update_fars: vec![far(2, to_gnb(2))],
        remove_fars: vec![77], // unknown: whole modification fails
        ..Default::default()
    };
    let err = t.modify(e.local_seid, m, now).expect_err("bad remove");
    assert_eq!(
        (err.cause, err.offending_ie),
        (
            Cause::RuleCreationModificationFailure,
            Some(ie_type::REMOVE_FAR)
        )
    );
    let s = t.session(e.local_seid).expect("exists");
    assert_eq!(s.far(2).expect("far").action, to_gnb(1));
    assert_eq!(t.poll_event(), None);
}

#[test]
fn teid_and_ue_conflicts_between_sessions() {
    let (mut t, now) = table();
    let mut r = basic(to_gnb(9));
    r.pdrs[0].pdi.local_fteid = Some(FTeidSpec::Given(500));
    t.establish(1, r.clone(), now).expect("established");
    // Same UE address.
    let e = t
        .establish(2, basic(to_gnb(9)), now)
        .expect_err("UE in use");
    assert_eq!(e.cause, Cause::RuleCreationModificationFailure);
    // Same given TEID, other UE.
    for p in &mut r.pdrs {
        p.pdi.ue_ip = Some(Ipv4Addr::new(10, 60, 0, 3));
    }
    let e = t.establish(2, r, now).expect_err("TEID in use");
    assert_eq!(e.offending_ie, Some(ie_type::F_TEID));
}

#[test]
fn create_and_remove_pdrs_in_modification() {
    let (mut t, now) = table();
    let e = t.establish(1, basic(to_gnb(9)), now).expect("established");
    let mut p = ul_pdr(5, 1, 3, &["permit out 6 from any to assigned"]);
    p.pdi.local_fteid = Some(FTeidSpec::Choose(Some(1)));
    let m = Modification {
        create: SessionRules {
            pdrs: vec![p],
            fars: vec![far(3, FarAction::Drop)],
            ..Default::default()
        },
        ..Default::default()
    };
    let r = t.modify(e.local_seid, m, now).expect("modified");
    assert_eq!(
        r.created[0].teid, e.created[0].teid,
        "CHOOSE ID 1 reuses the TEID"
    );
    let snap = t.snapshot();
    let tcp = {
        let mut p = up(1, 2);
        p[9] = 6;
        p
    };
    assert!(matches!(
        snap.uplink(GNB, e.created[0].teid, None, &tcp, now),
        Verdict::Drop(DropReason::FarDrop)
    ));
    t.modify(
        e.local_seid,
        Modification {
            remove_pdrs: vec![5],
            ..Default::default()
        },
        now,
    )
    .expect("removed");
    assert!(matches!(
        t.snapshot().uplink(GNB, e.created[0].teid, None, &tcp, now),
        Verdict::ToN6
    ));
}

// --- Incremental snapshot maintenance -------------------------------------
