//! The play report: what the UE saw (issue 6, item 5).
//!
//! Pure functions of the display records, the inputs sent and the stream
//! counters, so they are tested on synthetic records.
//!
//! - Frame interval: gaps between consecutive displayed frames.
//! - End-to-end latency, input -> display: for each input seq k sent, the
//!   first displayed frame (in display order) whose `input_seq >= k` shows
//!   it; latency = its `display_ns` - `sent_ns(k)`. Inputs that no
//!   displayed frame shows are counted as unmatched. In the report, inputs
//!   sent before the first displayed frame (the player could not see the
//!   game yet; their latency is the video's start-up time) are counted
//!   apart and left out of the latency summary.
//! - Bitrate on the wire per stream: [`StreamStats::wire_mbit_s`] (UDP
//!   payload + IP/UDP headers, between the first and the last datagram).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::bot::SentInput;
use super::client::StreamStats;
use super::display::DisplayRecord;

/// Nearest-rank percentile of `sorted` (ascending), `p` in 0..=100.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A distribution summary, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Summary {
    /// Summary of `ms` (any order).
    pub fn of(mut ms: Vec<f64>) -> Summary {
        ms.sort_by(f64::total_cmp);
        Summary {
            count: ms.len(),
            p50: percentile(&ms, 50.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied(),
        }
    }
}

/// Gaps between consecutive displayed frames, ns.
pub fn frame_intervals(records: &[DisplayRecord]) -> Vec<i64> {
    records
        .windows(2)
        .map(|w| w[1].display_ns as i64 - w[0].display_ns as i64)
        .collect()
}

/// Input -> display latency of each input that a displayed frame shows:
/// `(seq, display_ns - sent_ns)` in ns, by seq. Records are taken in
/// display order; a frame without `input_seq` shows nothing.
pub fn input_latencies(records: &[DisplayRecord], sent: &[SentInput]) -> Vec<(u64, i64)> {
    // Running maximum of input_seq over the display order: the first frame
    // showing k is the first index where it reaches k (binary search).
    let mut running = Vec::with_capacity(records.len());
    let mut m = 0u64;
    for r in records {
        m = m.max(r.input_seq.unwrap_or(0));
        running.push(m);
    }
    let mut out: Vec<(u64, i64)> = sent
        .iter()
        .filter_map(|s| {
            let i = running.partition_point(|&x| x < s.seq);
            records
                .get(i)
                .map(|r| (s.seq, r.display_ns as i64 - s.sent_ns as i64))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Per-stream part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    /// Counters.
    #[serde(flatten)]
    pub stats: StreamStats,
    /// Bitrate on the wire, Mbit/s (IP + UDP + RTP + payload).
    pub wire_mbit_s: f64,
    /// Frames of this stream displayed.
    pub displayed: u64,
}

/// The report of a play run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayReport {
    /// Length of the run, s.
    pub duration_s: f64,
    /// Frames displayed.
    pub frames_displayed: u64,
    /// Displayed frames per second over the run.
    pub display_fps: f64,
    /// Gaps between displayed frames, ms.
    pub frame_interval_ms: Summary,
    /// Input -> display latency, ms.
    pub latency_ms: Summary,
    /// Render (at the instance) -> display latency of the displayed
    /// frames that carry a render time, ms.
    pub render_to_display_ms: Summary,
    /// Inputs sent.
    pub inputs_sent: u64,
    /// Inputs that no displayed frame showed.
    pub inputs_unmatched: u64,
    /// Inputs sent before the first displayed frame (not in `latency_ms`).
    pub inputs_before_video: u64,
    /// Failed input sends.
    pub input_send_errors: u64,
    /// Per stream.
    pub streams: Vec<StreamReport>,
    /// Frames written to the video file (if one was asked for).
    pub video_frames: Option<u64>,
}

impl PlayReport {
    /// The report of a run of `duration_s` seconds.
    pub fn compute(
        duration_s: f64,
        records: &[DisplayRecord],
        sent: &[SentInput],
        input_send_errors: u64,
        streams: &[StreamStats],
        video_frames: Option<u64>,
    ) -> PlayReport {
        let ms = |ns: i64| ns as f64 / 1e6;
        let lat = input_latencies(records, sent);
        let video_from = records.first().map_or(u64::MAX, |r| r.display_ns);
        let before_video = sent.iter().filter(|s| s.sent_ns < video_from).count();
        let sent_ns: BTreeMap<u64, u64> = sent.iter().map(|s| (s.seq, s.sent_ns)).collect();
        let playing: Vec<f64> = lat
            .iter()
            .filter(|(k, _)| sent_ns.get(k).is_some_and(|&t| t >= video_from))
            .map(|&(_, ns)| ms(ns))
            .collect();
        let mut by_source: BTreeMap<&str, u64> = BTreeMap::new();
        for r in records {
            *by_source.entry(r.source.as_str()).or_default() += 1;
        }
        PlayReport {
            duration_s,
            frames_displayed: records.len() as u64,
            display_fps: if duration_s > 0.0 {
                records.len() as f64 / duration_s
            } else {
                0.0
            },
            frame_interval_ms: Summary::of(frame_intervals(records).into_iter().map(ms).collect()),
            latency_ms: Summary::of(playing),
            render_to_display_ms: Summary::of(
                records
                    .iter()
                    .filter_map(|r| r.rendered_ns.map(|t| ms(r.display_ns as i64 - t as i64)))
                    .collect(),
            ),
            inputs_sent: sent.len() as u64,
            inputs_unmatched: (sent.len() - lat.len()) as u64,
            inputs_before_video: before_video as u64,
            input_send_errors,
            streams: streams
                .iter()
                .map(|s| StreamReport {
                    wire_mbit_s: s.wire_mbit_s(),
                    displayed: by_source.get(s.name.as_str()).copied().unwrap_or(0),
                    stats: s.clone(),
                })
                .collect(),
            video_frames,
        }
    }

    /// The report as a human-readable table.
    pub fn table(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "played {:.1} s: {} frames displayed ({:.1} fps)",
            self.duration_s, self.frames_displayed, self.display_fps
        );
        let _ = writeln!(
            s,
            "frame interval ms   p50 {:>8}  p99 {:>8}  max {:>8}  (n={})",
            f(self.frame_interval_ms.p50),
            f(self.frame_interval_ms.p99),
            f(self.frame_interval_ms.max),
            self.frame_interval_ms.count
        );
        let _ = writeln!(
            s,
            "input->display ms   p50 {:>8}  p99 {:>8}  max {:>8}  (n={}, {} sent, {} before video, {} unmatched, {} send errors)",
            f(self.latency_ms.p50),
            f(self.latency_ms.p99),
            f(self.latency_ms.max),
            self.latency_ms.count,
            self.inputs_sent,
            self.inputs_before_video,
            self.inputs_unmatched,
            self.input_send_errors
        );
        let _ = writeln!(
            s,
            "render->display ms  p50 {:>8}  p99 {:>8}  max {:>8}  (n={})",
            f(self.render_to_display_ms.p50),
            f(self.render_to_display_ms.p99),
            f(self.render_to_display_ms.max),
            self.render_to_display_ms.count
        );
        let _ = writeln!(
            s,
            "{:<10} {:<21} {:>8} {:>11} {:>9} {:>7} {:>9} {:>6} {:>6} {:>6} {:>6}",
            "STREAM",
            "BIND",
            "PACKETS",
            "WIRE BYTES",
            "MBIT/S",
            "FRAMES",
            "DISPLAYED",
            "LOST",
            "MALF",
            "INCMP",
            "DECERR"
        );
        for r in &self.streams {
            let st = &r.stats;
            let _ = writeln!(
                s,
                "{:<10} {:<21} {:>8} {:>11} {:>9.3} {:>7} {:>9} {:>6} {:>6} {:>6} {:>6}",
                st.name,
                st.bind.map_or("-".into(), |a| a.to_string()),
                st.packets,
                st.wire_bytes,
                r.wire_mbit_s,
                st.frames,
                r.displayed,
                st.rtp_lost,
                st.malformed,
                st.incomplete,
                st.decode_errors
            );
        }
        if let Some(v) = self.video_frames {
            let _ = writeln!(s, "video: {v} frames written");
        }
        s
    }
}
