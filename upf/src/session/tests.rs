//! Session table and data path decisions, deterministic (virtual time).

use super::*;
use crate::datapath::{DropReason, Verdict};
use crate::packet::build_udp;
use crate::rules::{FTeidSpec, FarAction, Gate, Interface, OuterHeader, Pdi, Qer, VolumeThreshold};
use crate::sdf::FlowDescription;
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
    Pdr {
        id,
        precedence: prec,
        pdi: Pdi {
            source_interface: Interface::Access,
            local_fteid: Some(FTeidSpec::Choose(Some(1))),
            ue_ip: Some(UE),
            qfi: None,
            sdf_filters: sdf
                .iter()
                .map(|s| FlowDescription::parse(s).expect("valid sdf"))
                .collect(),
            network_instance: None,
        },
        outer_header_removal: true,
        far_id: far,
        qer_ids: vec![],
        urr_ids: vec![],
    }
}

pub(super) fn dl_pdr(id: u16, prec: u32, far: u32) -> Pdr {
    Pdr {
        id,
        precedence: prec,
        pdi: Pdi {
            source_interface: Interface::Core,
            local_fteid: None,
            ue_ip: Some(UE),
            qfi: None,
            sdf_filters: vec![],
            network_instance: None,
        },
        outer_header_removal: false,
        far_id: far,
        qer_ids: vec![],
        urr_ids: vec![],
    }
}

pub(super) fn far(id: u32, action: FarAction) -> Far {
    Far { id, action }
}

fn to_n6() -> FarAction {
    FarAction::Forward {
        destination: Interface::Core,
        outer_header: None,
    }
}

pub(super) fn to_gnb(teid: u32) -> FarAction {
    FarAction::Forward {
        destination: Interface::Access,
        outer_header: Some(gnb(teid)),
    }
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
    r.qers.push(Qer {
        id: 1,
        gate_ul: Gate::Open,
        gate_dl: Gate::Open,
        mbr_ul: None,
        mbr_dl: None,
        qfi: Some(9),
    });
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
    r.qers.push(Qer {
        id: 1,
        gate_ul: Gate::Closed,
        gate_dl: Gate::Open,
        mbr_ul: None,
        mbr_dl: Some(8_000_000), // 1 MB/s
        qfi: None,
    });
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
            update_qers: vec![Qer {
                id: 1,
                gate_ul: Gate::Open,
                gate_dl: Gate::Open,
                mbr_ul: None,
                mbr_dl: None,
                qfi: None,
            }],
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
    let (mut t, t0) = table();
    let mut r = basic(to_gnb(1));
    r.urrs.push(Urr {
        id: 1,
        volume_threshold: Some(VolumeThreshold {
            total: Some(1000),
            ..Default::default()
        }),
        measurement_period: Some(Duration::from_secs(10)),
    });
    r.pdrs[0].urr_ids = vec![1];
    r.pdrs[1].urr_ids = vec![1];
    let e = t.establish(9, r, t0).expect("established");
    let teid = e.created[0].teid;
    let snap = t.snapshot();
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

/// A session like [`basic`] for UE address `ue`, uplink TEID `teid` (given,
/// or chosen when `None`), downlink towards gNB TEID `dl_teid`.
fn session_for(ue: Ipv4Addr, teid: Option<u32>, dl_teid: u32) -> SessionRules {
    let mut r = basic(to_gnb(dl_teid));
    for p in &mut r.pdrs {
        p.pdi.ue_ip = Some(ue);
    }
    if let Some(t) = teid {
        r.pdrs[0].pdi.local_fteid = Some(FTeidSpec::Given(t));
    }
    r
}

fn ue_n(i: u8) -> Ipv4Addr {
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

fn period_urr(id: u32, secs: u64) -> Urr {
    Urr {
        id,
        volume_threshold: None,
        measurement_period: Some(Duration::from_secs(secs)),
    }
}

/// The period index follows URR creation, update, removal, failed
/// modifications, deletion and clearing; `poll_timeout` is its earliest
/// entry and `poll_reports` fires exactly the due URRs.
#[test]
fn period_index_follows_urr_changes_and_session_deletion() {
    let (mut t, t0) = table();
    let s = Duration::from_secs;
    let mut seids = Vec::new();
    for i in 0..3u8 {
        let mut r = session_for(ue_n(i), None, 100 + u32::from(i));
        r.urrs.push(period_urr(1, 10 + u64::from(i)));
        seids.push(t.establish(u64::from(i), r, t0).expect("est").local_seid);
    }
    assert!(t.periods_consistent());
    assert_eq!(t.poll_timeout(), Some(t0 + s(10)));
    // Session 0: period 10 s -> 50 s at t0 + 1 s; add URR 2 (5 s).
    let m = Modification {
        update_urrs: vec![period_urr(1, 50)],
        create: SessionRules {
            urrs: vec![period_urr(2, 5)],
            ..Default::default()
        },
        ..Default::default()
    };
    t.modify(seids[0], m, t0 + s(1)).expect("modified");
    assert!(t.periods_consistent());
    assert_eq!(t.poll_timeout(), Some(t0 + s(6)), "new URR 2");
    // A refused modification changes nothing.
    let bad = Modification {
        update_urrs: vec![period_urr(1, 1)],
        remove_urrs: vec![77],
        ..Default::default()
    };
    assert!(t.modify(seids[0], bad, t0 + s(2)).is_err());
    assert!(t.periods_consistent());
    assert_eq!(t.poll_timeout(), Some(t0 + s(6)));
    // Due at t0 + 11 s: session 0 URR 2 (6 s), session 1 (11 s); not
    // session 0 URR 1 (old 10 s, now 51 s).
    let fired: Vec<(u64, u32)> = t
        .poll_reports(t0 + s(11))
        .iter()
        .map(|r| (r.seid, r.urr_id))
        .collect();
    assert_eq!(fired, vec![(seids[0], 2), (seids[1], 1)]);
    assert!(t.periods_consistent());
    assert_eq!(t.poll_timeout(), Some(t0 + s(12)), "session 2");
    // Remove URR 2 of session 0; delete session 2.
    let m = Modification {
        remove_urrs: vec![2],
        ..Default::default()
    };
    t.modify(seids[0], m, t0 + s(11)).expect("modified");
    t.delete(seids[2], t0 + s(11)).expect("deleted");
    assert!(t.periods_consistent());
    assert_eq!(t.poll_timeout(), Some(t0 + s(22)), "session 1 again");
    let fired: Vec<(u64, u32)> = t
        .poll_reports(t0 + s(60))
        .iter()
        .map(|r| (r.seid, r.urr_id))
        .collect();
    assert_eq!(fired, vec![(seids[0], 1), (seids[1], 1)], "one each");
    assert!(t.periods_consistent());
    t.clear();
    assert!(t.periods_consistent());
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.poll_reports(t0 + s(1000)), vec![]);
}

/// Thresholds come from the data path's queue: a report per crossing,
/// none for a URR removed after its threshold was queued, and the period
/// of a URR reported for its threshold in the same poll waits one poll.
#[test]
fn threshold_signals_are_checked_against_the_current_urr() {
    let (mut t, t0) = table();
    let mut r = basic(to_gnb(1));
    r.urrs.push(Urr {
        id: 1,
        volume_threshold: Some(VolumeThreshold {
            total: Some(100),
            ..Default::default()
        }),
        measurement_period: Some(Duration::from_secs(10)),
    });
    r.pdrs[0].urr_ids = vec![1];
    let e = t.establish(9, r, t0).expect("established");
    let teid = e.created[0].teid;
    let snap = t.snapshot();
    let u = up(1, 2); // 100 bytes
    snap.uplink(GNB, teid, None, &u, t0);
    snap.uplink(GNB, teid, None, &u, t0);
    let t10 = t0 + Duration::from_secs(10);
    let reps = t.poll_reports(t10);
    assert_eq!(reps.len(), 1, "{reps:?}");
    assert_eq!(reps[0].trigger, ReportTrigger::VolumeThreshold);
    assert_eq!(reps[0].ul_bytes, 200);
    let reps = t.poll_reports(t10 + Duration::from_millis(20));
    assert_eq!(reps.len(), 1, "the period, one poll later: {reps:?}");
    assert_eq!(reps[0].trigger, ReportTrigger::Period);
    // Threshold queued, then the URR removed: its termination report is
    // the last one.
    snap.uplink(GNB, teid, None, &u, t10);
    let m = Modification {
        remove_urrs: vec![1],
        update_pdrs: vec![ul_pdr(1, 100, 1, &[])],
        ..Default::default()
    };
    let done = t.modify(e.local_seid, m, t10).expect("modified");
    assert_eq!(done.reports.len(), 1);
    assert_eq!(done.reports[0].trigger, ReportTrigger::Termination);
    assert_eq!(t.poll_reports(t10 + Duration::from_secs(1)), vec![]);
    assert!(t.periods_consistent());
}
