//! Presentation pacing: each frame is shown at the instant its render slot
//! plus a playout delay, not the moment it happens to be decoded.
//!
//! A frame's way to the screen (draw, encode, network, decode) takes a time
//! that varies from frame to frame: here the textured scene's frames that
//! carry a new game tick take ~5 ms longer to encode than the two after
//! them, so frames shown on arrival come 11-22 ms apart at 60 fps, and a
//! late one stands out as a stall. A player shows frames at their sampling
//! instants shifted by a delay that covers that variation (a jitter
//! buffer, RFC 3550's playout point). [`StreamPacer`] does that per stream,
//! with no I/O and the clock passed in:
//!
//! - the frame's sampling instant on the UE's clock: its RTP timestamp (the
//!   instance's frame slot, 90 kHz) mapped through the lowest `rendered_ns -
//!   rtp time` seen on the stream (the instance's render time is
//!   CLOCK_REALTIME, which every namespace shares; a render never starts
//!   before its slot, so the lowest offset is the slot's);
//! - the playout delay: the largest lateness (decode time minus sampling
//!   instant) of the frames of the last [`PacingConfig::window`], plus
//!   [`PacingConfig::margin`]; over the stream's first window, at least the
//!   first frame's lateness plus [`PacingConfig::initial_slack`]. It rises
//!   at once when a frame needs more (that frame is shown when decoded: one
//!   longer interval) and sinks by at most [`PacingConfig::catch_up`] per
//!   frame (frames come that much closer together while it does);
//! - the frame's presentation time: sampling instant plus delay, never
//!   before it was decoded.
//!
//! What it costs is display latency: the delay covers the slowest frames of
//! the last seconds, not the typical one (the play report's render ->
//! display latency shows it). A stream whose offset jumps by more than
//! [`RESYNC_NS`] (an instance that restarted its RTP clock) starts over.
//!
//! Pacing is not one of the paper's three mechanisms; it can be switched
//! off (`use_pacing`), which shows frames on arrival as before.

use std::collections::VecDeque;
use std::time::Duration;

/// RTP clock of the video (Hz).
const RTP_HZ: i128 = 90_000;

/// An offset change larger than this restarts the stream's pacing.
pub const RESYNC_NS: i64 = 500_000_000;

/// [`PacingConfig::window`]'s default, ms. The delay rises (one longer
/// interval) whenever a frame is later than every frame of the window: at
/// 60 fps about once per window length with independent lateness. With 2 s
/// the display stall goal of issue 12 (the longest interval within 1 s of
/// a switch at most 2 ms over the run's p99) was met at 62 of 120
/// switches, with 8 s at 90 of 120, for about 6 ms more render -> display
/// latency (p50 29-32 ms instead of 21-27; `testbed migrate --count 30
/// --countdown 1s --pacing-window 2s|8s`, four runs each, two of them with
/// a first-window floor for a joining stream that was then dropped).
pub const DEFAULT_WINDOW_MS: u64 = 8_000;

/// The windows a play may ask for, ms.
pub const WINDOW_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

/// How the playout delay follows the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingConfig {
    /// Added to the first frame's lateness for the delay of the stream's
    /// first [`PacingConfig::window`] (a new instance's first frames come
    /// unevenly).
    pub initial_slack: Duration,
    /// Kept above the lateness of every frame in the window.
    pub margin: Duration,
    /// How long a late frame holds the delay up.
    pub window: Duration,
    /// How much the delay sinks per frame once the window's frames allow
    /// it (the frames then come that much closer together).
    pub catch_up: Duration,
    /// The longest delay: a frame later than this is shown when decoded.
    pub max_delay: Duration,
}

impl Default for PacingConfig {
    /// Slack 12 ms, margin 1 ms, window 8 s, catch-up 0.5 ms per frame
    /// (30 ms/s at 60 fps), delay at most 100 ms.
    fn default() -> PacingConfig {
        PacingConfig {
            initial_slack: Duration::from_millis(12),
            margin: Duration::from_millis(1),
            window: Duration::from_millis(DEFAULT_WINDOW_MS),
            catch_up: Duration::from_micros(500),
            max_delay: Duration::from_millis(100),
        }
    }
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The pacing of one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamPacer {
    /// The last RTP timestamp and the stream's RTP time so far (ticks,
    /// unwrapped, from the first frame).
    last_ts: Option<u32>,
    media_ticks: i64,
    /// Lowest `rendered - media` seen (ns).
    anchor: Option<i64>,
    /// The first frame's decode time and lateness (ns).
    first: Option<(i64, i64)>,
    /// (decode time, lateness) of the window's frames whose lateness no
    /// later frame exceeded: the front is the window's largest.
    late: VecDeque<(i64, i64)>,
    /// Playout delay after the sampling instant (ns).
    delay: Option<i64>,
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paced {
    /// When to show it (CLOCK_REALTIME ns).
    pub due_ns: u64,
    /// Its sampling instant (render slot) on the UE's clock (ns; the
    /// decode time when it has none).
    pub sampled_ns: u64,
    /// The playout delay it was given (ns).
    pub delay_ns: u64,
}

impl StreamPacer {
    /// The presentation time of the next frame of the stream, from its RTP
    /// timestamp, its render time at the instance (none: shown when
    /// decoded) and its decode time.
    pub fn place(
        &mut self,
        cfg: &PacingConfig,
        rtp_ts: u32,
        rendered_ns: Option<u64>,
        decoded_ns: u64,
    ) -> Paced {
        let unpaced = Paced {
            due_ns: decoded_ns,
            sampled_ns: decoded_ns,
            delay_ns: 0,
        };
        let Some(rendered) = rendered_ns.and_then(|r| i64::try_from(r).ok()) else {
            return unpaced;
        };
        let Ok(decoded) = i64::try_from(decoded_ns) else {
            return unpaced;
        };
        if let Some(last) = self.last_ts {
            // Frames come in order; a step back is a wrap or a restart.
            self.media_ticks += i64::from(rtp_ts.wrapping_sub(last) as i32);
        }
        self.last_ts = Some(rtp_ts);
        let media_ns = i64::try_from(i128::from(self.media_ticks) * 1_000_000_000 / RTP_HZ)
            .unwrap_or(i64::MAX / 2);
        let offset = rendered.saturating_sub(media_ns);
        let anchor = match self.anchor {
            Some(a) if (offset - a).abs() <= RESYNC_NS => a.min(offset),
            _ => {
                self.delay = None;
                self.first = None;
                self.late.clear();
                offset
            }
        };
        self.anchor = Some(anchor);
        let sampled = anchor + media_ns;
        let late = decoded - sampled;
        let delay = self.delay_for(cfg, decoded, late);
        self.delay = Some(delay);
        Paced {
            due_ns: u64::try_from((sampled + delay).max(decoded)).unwrap_or(decoded_ns),
            sampled_ns: u64::try_from(sampled).unwrap_or(decoded_ns),
            delay_ns: delay as u64,
        }
    }

    /// The delay after a frame decoded at `decoded`, `late` after its
    /// sampling instant: up at once to cover it, down by at most the
    /// catch-up per frame to what the window's frames need.
    fn delay_for(&mut self, cfg: &PacingConfig, decoded: i64, late: i64) -> i64 {
        while self.late.back().is_some_and(|&(_, l)| l <= late) {
            self.late.pop_back();
        }
        self.late.push_back((decoded, late));
        let since = decoded - ns(cfg.window);
        while self.late.front().is_some_and(|&(t, _)| t < since) {
            self.late.pop_front();
        }
        let (t0, l0) = *self.first.get_or_insert((decoded, late));
        let mut need = self.late.front().map_or(late, |&(_, l)| l) + ns(cfg.margin);
        if t0 >= since {
            need = need.max(l0 + ns(cfg.initial_slack));
        }
        let delay = match self.delay {
            Some(d) if need < d => (d - ns(cfg.catch_up)).max(need),
            _ => need,
        };
        delay.clamp(0, ns(cfg.max_delay))
    }

    /// The playout delay now (ns), once a frame was placed.
    pub fn delay_ns(&self) -> Option<u64> {
        self.delay.map(|d| d.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    /// 60 fps in RTP ticks and ns (16.666 ms).
    const TICKS: u32 = 1500;
    const PERIOD: u64 = 16_666_666;

    fn cfg() -> PacingConfig {
        PacingConfig {
            initial_slack: Duration::from_millis(8),
            margin: Duration::from_millis(1),
            window: Duration::from_millis(100),
            catch_up: Duration::ZERO,
            max_delay: Duration::from_millis(100),
        }
    }

    /// Places frames `k` rendered at slot k (+`render_late[k]`) and decoded
    /// `lat[k]` after their slot; returns the intervals between dues (ms).
    fn run(
        p: &mut StreamPacer,
        c: &PacingConfig,
        ts0: u32,
        lat: &[u64],
        render_late: &[u64],
    ) -> Vec<f64> {
        let t0 = 1_000_000 * MS;
        let dues: Vec<u64> = lat
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                let slot = t0 + k as u64 * PERIOD;
                let ts = ts0.wrapping_add(k as u32 * TICKS);
                let r = slot + render_late.get(k).copied().unwrap_or(0);
                p.place(c, ts, Some(r), slot + l).due_ns
            })
            .collect();
        dues.windows(2)
            .map(|w| (w[1] - w[0]) as f64 / 1e6)
            .collect()
    }

    #[test]
    fn uneven_arrivals_are_shown_evenly() {
        // Lateness 7, 8, 12 ms in turn (the textured scene's pattern), and
        // renders that start up to 2 ms after their slot.
        let lat: Vec<u64> = (0..30).map(|k| [7, 8, 12][k % 3] * MS).collect();
        let late: Vec<u64> = (0..30).map(|k| [0, 2, 1][k % 3] * MS).collect();
        let mut p = StreamPacer::default();
        let gaps = run(&mut p, &cfg(), 7, &lat, &late);
        // The first frame set the delay at 7 + 8 = 15 ms: every later frame
        // fits, every interval is the frame period.
        for g in &gaps {
            assert!((g - 16.666).abs() < 0.01, "{gaps:?}");
        }
        assert_eq!(p.delay_ns(), Some(15 * MS));
    }

    #[test]
    fn a_late_frame_raises_the_delay_once_and_it_sinks_back() {
        let mut lat = vec![5 * MS; 20];
        lat[10] = 20 * MS;
        let c = PacingConfig {
            catch_up: Duration::from_micros(100),
            ..cfg()
        };
        let mut p = StreamPacer::default();
        let gaps = run(&mut p, &c, 0, &lat, &[]);
        // 13 ms over the first window (5 + 8 slack: frames 0-6), then
        // sinking 0.1 ms a frame towards 6 (5 + 1): 12.7 ms at frame 9.
        // Frame 10 (20 ms late) raises it to 21 at once: one interval
        // longer by 21 - 12.7. It stays while frame 10 is in the window
        // (frames 11-16), then sinks 0.1 ms a frame again.
        let expect = |k: usize| match k {
            9 => 16.666 + 21.0 - 12.7,
            0..=5 | 10..=15 => 16.666,
            _ => 16.566,
        };
        for (k, g) in gaps.iter().enumerate() {
            assert!((g - expect(k)).abs() < 0.01, "interval {k}: {gaps:?}");
        }
        assert_eq!(p.delay_ns(), Some(21 * MS - 3 * 100_000));
    }

    #[test]
    fn never_before_decoded_and_at_most_max_delay() {
        let c = PacingConfig {
            max_delay: Duration::from_millis(10),
            ..cfg()
        };
        let mut p = StreamPacer::default();
        let d = p.place(&c, 0, Some(1_000 * MS), 1_030 * MS);
        assert_eq!(
            d,
            Paced {
                due_ns: 1_030 * MS,
                sampled_ns: 1_000 * MS,
                delay_ns: 10 * MS
            }
        );
        // No render time: shown when decoded.
        let mut q = StreamPacer::default();
        assert_eq!(q.place(&c, 0, None, 5 * MS).due_ns, 5 * MS);
    }

    #[test]
    fn rtp_wrap_is_followed_and_a_restart_resyncs() {
        let mut p = StreamPacer::default();
        let lat = vec![6 * MS; 10];
        // Starts 3 frames before the 32-bit wrap.
        let gaps = run(&mut p, &cfg(), u32::MAX - 3 * TICKS + 1, &lat, &[]);
        assert!(gaps.iter().all(|g| (g - 16.666).abs() < 0.01), "{gaps:?}");
        // A new RTP origin and a render clock 2 s on: a fresh start (the
        // delay from this frame's lateness again).
        let t = 1_000_000 * MS + 2_000 * MS;
        let d = p.place(&cfg(), 12_345, Some(t), t + 3 * MS);
        assert_eq!(d.delay_ns, 11 * MS);
        assert_eq!(d.due_ns, t + 11 * MS);
    }

    #[test]
    fn a_missed_slot_keeps_the_clock() {
        // Frame 5's slot was skipped by the instance: its timestamp jumps
        // two periods, and so does its due time; the others stay even.
        let mut p = StreamPacer::default();
        let c = cfg();
        let t0 = 1_000_000 * MS;
        let mut dues = Vec::new();
        for k in (0..10u64).filter(|&k| k != 5) {
            let slot = t0 + k * PERIOD;
            dues.push(
                p.place(&c, k as u32 * TICKS, Some(slot), slot + 6 * MS)
                    .due_ns,
            );
        }
        let gaps: Vec<u64> = dues.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            (gaps[4] as i64 - 2 * PERIOD as i64).abs() < 1000,
            "{gaps:?}"
        );
        assert!((gaps[5] as i64 - PERIOD as i64).abs() < 1000, "{gaps:?}");
    }
}
