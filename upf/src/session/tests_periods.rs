//! Usage reports without a scan: the period index follows URR changes and
//! sessions, thresholds come from the data path's queue.

use super::tests::{basic, table, threshold_urr, to_gnb, ul_pdr, up, GNB};
use super::tests_incremental::{session_for, ue_n};
use super::*;
use std::time::Duration;

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
    r.urrs.push(threshold_urr(1, 100));
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
