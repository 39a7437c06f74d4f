//! The figures of DESIGN.md section 6 that come from what was displayed:
//! display stall and smoothness around each switch, against the same
//! measures away from switches in the same run.
//!
//! The stall counts only displayed frames that carry new content: a frame
//! (stream, generation) shown for the first time. A blend recomposed
//! because the other stream's frame arrived shows no new destination
//! frame, so outputting on every arrival does not shorten a gap.
//!
//! Both goals compare an extreme over a window (the longest gap, the lowest
//! SSIM within 1 s of a switch: 60-120 frames) with a percentile of single
//! frames elsewhere; such an extreme passes a p99 in most windows even when
//! nothing happens. [`control_instants`] are instants away from every
//! switch where the same measures are taken: what a window without a switch
//! scores on the same machine in the same run.

use std::collections::HashMap;

use crate::stream::report::percentile;
use crate::stream::DisplayRecord;

/// How far from a switch a displayed frame counts as "around" it.
pub const WINDOW_NS: u64 = 1_000_000_000;

/// Stall and smoothness of one switch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AroundSwitch {
    /// Longest gap between displayed frames within the window, minus the
    /// baseline, ms.
    pub stall_ms: Option<f64>,
    /// Of that longest gap, how much the display thread added itself: the
    /// frame that ended it was shown this long after it was due (ms; with
    /// pacing only). A stall that this does not explain is a frame that
    /// came to the UE later than the stream's playout delay allowed.
    pub display_late_ms: Option<f64>,
    /// Where that gap ended: the display time of the frame that closed it
    /// (CLOCK_REALTIME ns), to tell a gap at the switch from one that
    /// only falls inside its window, and one gap seen by two switches.
    pub stall_at_ns: Option<u64>,
    /// Lowest SSIM between consecutive displayed frames in the window.
    pub min_ssim: Option<f64>,
}

/// The baselines away from every switch: the p99 gap between displayed
/// frames (ms) and the 1st percentile of consecutive-frame SSIM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baselines {
    pub gap_p99_ms: Option<f64>,
    pub ssim_p1: Option<f64>,
}

fn near(t: u64, switches: &[u64]) -> bool {
    switches.iter().any(|&s| t.abs_diff(s) <= WINDOW_NS)
}

/// Gaps (ms) between displayed frames with new content, each with the
/// record that ends it.
fn gaps(records: &[DisplayRecord]) -> impl Iterator<Item = (&DisplayRecord, f64)> {
    // The generation last shown per stream: a stream that comes back
    // after a release starts again from 1, so "new" is "not the last one".
    let mut shown: HashMap<&str, u64> = HashMap::new();
    let fresh = records
        .iter()
        .filter(move |r| shown.insert(r.source.as_str(), r.generation) != Some(r.generation));
    let mut prev: Option<u64> = None;
    fresh.filter_map(move |r| {
        let gap = prev.map(|p| r.display_ns.saturating_sub(p) as f64 / 1e6);
        prev = Some(r.display_ns);
        gap.map(|g| (r, g))
    })
}

/// The baselines, from the records away from the switch times `switches`.
pub fn baselines(records: &[DisplayRecord], switches: &[u64]) -> Baselines {
    let mut g: Vec<f64> = gaps(records)
        .filter(|(r, _)| !near(r.display_ns, switches))
        .map(|(_, ms)| ms)
        .collect();
    g.sort_by(f64::total_cmp);
    let mut s: Vec<f64> = records
        .iter()
        .filter(|r| !near(r.display_ns, switches))
        .filter_map(|r| r.ssim_prev.map(f64::from))
        .collect();
    s.sort_by(f64::total_cmp);
    Baselines {
        gap_p99_ms: percentile(&g, 99.0),
        ssim_p1: percentile(&s, 1.0),
    }
}

/// The display freeze of a migration (DESIGN.md section 6): the longest
/// interval between displayed frames that ends after `from` (the request)
/// and at most 1 s after `first_dest` (the first displayed frame with a
/// destination contribution), ms; none before the destination showed.
pub fn freeze(records: &[DisplayRecord], from: u64, first_dest: Option<u64>) -> Option<f64> {
    let to = first_dest?.saturating_add(WINDOW_NS);
    gaps(records)
        .filter(|(r, _)| r.display_ns > from && r.display_ns <= to)
        .map(|(_, ms)| ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// Stall and smoothness around the switch decided at `at`.
pub fn around(records: &[DisplayRecord], at: u64, base: &Baselines) -> AroundSwitch {
    let longest = gaps(records)
        .filter(|(r, _)| r.display_ns.abs_diff(at) <= WINDOW_NS)
        .fold(None, |m: Option<(&DisplayRecord, f64)>, (r, g)| match m {
            Some((_, best)) if best >= g => m,
            _ => Some((r, g)),
        });
    let min_ssim = records
        .iter()
        .filter(|r| r.display_ns.abs_diff(at) <= WINDOW_NS)
        .filter_map(|r| r.ssim_prev.map(f64::from))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    AroundSwitch {
        stall_ms: longest.map(|(_, g)| g - base.gap_p99_ms.unwrap_or(0.0)),
        display_late_ms: longest.and_then(|(r, _)| {
            r.due_ns
                .map(|due| r.display_ns.saturating_sub(due) as f64 / 1e6)
        }),
        stall_at_ns: longest.map(|(r, _)| r.display_ns),
        min_ssim,
    }
}

/// Instants whose window (±[`WINDOW_NS`]) lies inside the displayed span
/// and overlaps no switch's window, one per two windows: where [`around`]
/// measures a window without a switch.
pub fn control_instants(records: &[DisplayRecord], switches: &[u64]) -> Vec<u64> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Vec::new();
    };
    let span = 2 * WINDOW_NS;
    let mut out = Vec::new();
    let mut t = first.display_ns.saturating_add(WINDOW_NS);
    while t.saturating_add(WINDOW_NS) <= last.display_ns {
        if switches.iter().all(|&s| t.abs_diff(s) > span) {
            out.push(t);
            t = t.saturating_add(span);
        } else {
            t = t.saturating_add(WINDOW_NS / 10);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64, ssim: f32) -> DisplayRecord {
        DisplayRecord {
            display_ns: ms * 1_000_000,
            source: "a".into(),
            // Every record a new frame.
            generation: ms + 1,
            ssim_prev: Some(ssim),
            ..Default::default()
        }
    }

    #[test]
    fn stall_is_the_longest_gap_near_the_switch_minus_the_usual_p99() {
        // A frame every 16 ms for 10 s, one 50 ms gap at 5 s.
        let mut r = Vec::new();
        let mut t = 0;
        while t < 10_000 {
            r.push(rec(t, 0.95));
            t += if t == 4_992 { 50 } else { 16 };
        }
        let switch = 5_000 * 1_000_000;
        let b = baselines(&r, &[switch]);
        assert_eq!(b.gap_p99_ms, Some(16.0));
        let a = around(&r, switch, &b);
        assert_eq!(a.stall_ms, Some(34.0));
        // The gap closed with the frame at 5 042 ms.
        assert_eq!(a.stall_at_ns, Some(5_042 * 1_000_000));
        // No presentation times recorded (no pacing): no share to tell.
        assert_eq!(a.display_late_ms, None);
        // The frame after the gap was due 46 ms after the one before it
        // and shown 4 ms after that: the display's 4 of the 34.
        let after = r.iter().position(|x| x.display_ns == 5_042 * 1_000_000);
        let after = after.expect("the frame after the gap");
        r[after].due_ns = Some(5_038 * 1_000_000);
        let a = around(&r, switch, &b);
        assert_eq!((a.stall_ms, a.display_late_ms), (Some(34.0), Some(4.0)));
        // Far from the gap: no stall.
        let a = around(&r, 8_000 * 1_000_000, &b);
        assert_eq!(a.stall_ms, Some(0.0));
    }

    #[test]
    fn freeze_is_the_longest_gap_from_the_request_to_the_destination() {
        // Frames every 16 ms, a 700 ms hole (the copy's stop) ending at
        // the destination's first frame at 2 000 ms.
        let mut r: Vec<_> = (0..82).map(|i| rec(i * 16, 0.9)).collect();
        r.extend((0..100).map(|i| rec(2_000 + i * 16, 0.9)));
        let ns = |ms: u64| ms * 1_000_000;
        assert_eq!(freeze(&r, ns(500), Some(ns(2_000))), Some(704.0));
        // Requested after the hole: only the usual gaps.
        assert_eq!(freeze(&r, ns(2_100), Some(ns(2_200))), Some(16.0));
        assert_eq!(freeze(&r, ns(500), None), None);
    }

    #[test]
    fn smoothness_is_the_lowest_ssim_near_the_switch() {
        let mut r: Vec<_> = (0..600).map(|i| rec(i * 16, 0.9)).collect();
        r[300].ssim_prev = Some(0.5);
        let switch = 300 * 16 * 1_000_000;
        let b = baselines(&r, &[switch]);
        assert!((b.ssim_p1.expect("p1") - 0.9).abs() < 1e-6);
        let a = around(&r, switch, &b);
        assert!((a.min_ssim.expect("min") - 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_frame_shown_again_does_not_shorten_a_gap() {
        // Frames every 16 ms; around 5 s the destination's frame is shown
        // again between two of its frames (recomposed because the source's
        // frame arrived), 8 ms after the first: a 16 ms gap, not two of 8.
        let mut r: Vec<_> = (0..600).map(|i| rec(i * 16, 0.9)).collect();
        let mut again = r[312].clone();
        again.display_ns += 8_000_000;
        r.insert(313, again);
        let switch = 5_000 * 1_000_000;
        let b = baselines(&r, &[switch]);
        assert_eq!(b.gap_p99_ms, Some(16.0));
        assert_eq!(around(&r, switch, &b).stall_ms, Some(0.0));
        // Without new content for 48 ms (the same frame shown three times):
        // a 48 ms gap, a stall of 32 ms.
        for i in 314..316 {
            r[i].generation = r[313].generation;
            r[i].source = r[313].source.clone();
        }
        assert_eq!(around(&r, switch, &b).stall_ms, Some(32.0));
        // A stream that comes back (a new buffer, generations from 1) is new.
        let mut back: Vec<_> = (0..600).map(|i| rec(i * 16, 0.9)).collect();
        for (i, x) in back.iter_mut().enumerate().skip(300) {
            x.generation = i as u64 - 299;
        }
        let b = baselines(&back, &[switch]);
        assert_eq!(around(&back, switch, &b).stall_ms, Some(0.0));
    }

    #[test]
    fn control_instants_keep_their_windows_off_every_switch() {
        // 20 s of frames, switches at 5 s and 6 s.
        let r: Vec<_> = (0..1250).map(|i| rec(i * 16, 0.9)).collect();
        let s = |x: u64| x * 1_000_000_000;
        let c = control_instants(&r, &[s(5), s(6)]);
        assert!(!c.is_empty());
        for &t in &c {
            assert!(t.abs_diff(s(5)) > s(2) && t.abs_diff(s(6)) > s(2), "{t}");
            assert!(t >= s(1) && t + s(1) <= r[r.len() - 1].display_ns, "{t}");
        }
        // Two windows apart, so that no frame counts twice.
        assert!(c.windows(2).all(|w| w[1] - w[0] >= s(2)));
        // Before 3 s and after 8 s: 1 s, then 8.1 s .. 18.1 s.
        assert_eq!(c[0], s(1));
        assert_eq!(c.len(), 1 + 6);
        assert!(control_instants(&[], &[]).is_empty());
    }
}
