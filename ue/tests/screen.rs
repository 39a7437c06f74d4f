//! The CSM screen (the selector's driver) on synthetic frames: it shows
//! the source until the streams are similar, then blends over N frames
//! into the destination, and tells the agent each step.

use std::sync::mpsc;

use ue::stream::buffer::{one_frame_buffer, BufferReader, BufferWriter, FrameInfo};
use ue::stream::pacer::PacingConfig;
use ue::stream::scorer::PairScorer;
use ue::stream::screen::{Screen, ScreenCmd, ScreenNote, MAX_WAITING};
use ue::stream::{Selector, SelectorConfig};

fn frame(luma: u8) -> media::Frame {
    let mut f = media::Frame::new(64, 36);
    // A pattern, so SSIM has structure to compare.
    for (i, p) in f.y.iter_mut().enumerate() {
        *p = luma.wrapping_add(((i % 64) as u8) * 3);
    }
    f
}

fn publish(w: &mut BufferWriter, name: &str, seq: u64, f: media::Frame) {
    let info = FrameInfo {
        source: name.into(),
        seq,
        tick: Some(seq),
        ..Default::default()
    };
    w.publish(info, f);
}

fn notes(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ScreenNote>) -> Vec<ScreenNote> {
    let mut v = Vec::new();
    while let Ok(n) = rx.try_recv() {
        v.push(n);
    }
    v
}

/// Two streams edge1 (the chief) and edge2, a screen over edge1 with a
/// slide of 4 frames, its command and note channels.
struct Two {
    wa: BufferWriter,
    wb: BufferWriter,
    rb: BufferReader,
    cmd_tx: mpsc::Sender<ScreenCmd>,
    note_rx: tokio::sync::mpsc::UnboundedReceiver<ScreenNote>,
    screen: Screen,
}

fn two_streams() -> Two {
    let (wa, ra) = one_frame_buffer("edge1", None);
    let (wb, rb) = one_frame_buffer("edge2", None);
    let cfg = SelectorConfig {
        blend_frames: 4,
        ..SelectorConfig::at_fps(60)
    };
    let sel = Selector::new(cfg, "edge1").expect("selector");
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (note_tx, note_rx) = tokio::sync::mpsc::unbounded_channel();
    Two {
        wa,
        wb,
        rb,
        cmd_tx,
        note_rx,
        screen: Screen::new(sel, ra, cmd_rx, note_tx),
    }
}

#[test]
fn shows_the_source_until_similar_then_slides_into_the_destination() {
    let Two {
        mut wa,
        mut wb,
        rb,
        cmd_tx,
        mut note_rx,
        mut screen,
    } = two_streams();
    let mut now = 1_000_000_000u64;
    let mut tick = |screen: &mut Screen| {
        now += 16_666_667;
        screen.poll(now).expect("poll");
    };

    publish(&mut wa, "edge1", 1, frame(10));
    tick(&mut screen);
    cmd_tx.send(ScreenCmd::Add(rb)).expect("cmd");
    cmd_tx.send(ScreenCmd::Begin("edge2".into())).expect("cmd");
    // Not similar: an inverted picture.
    publish(&mut wa, "edge1", 2, frame(20));
    let mut far = frame(20);
    far.y.iter_mut().for_each(|p| *p = 255 - *p);
    publish(&mut wb, "edge2", 1, far);
    tick(&mut screen);
    assert!(
        notes(&mut note_rx).is_empty(),
        "no decision on a dissimilar pair"
    );
    // In step: the same picture on both.
    for k in 3..10u64 {
        publish(&mut wa, "edge1", k, frame(k as u8 * 10));
        publish(&mut wb, "edge2", k, frame(k as u8 * 10));
        tick(&mut screen);
    }
    let n = notes(&mut note_rx);
    assert!(
        matches!(n.first(), Some(ScreenNote::Decision { dest, ssim, .. }) if &**dest == "edge2" && *ssim > 0.99),
        "{n:?}"
    );
    assert!(
        matches!(n.get(1), Some(ScreenNote::FirstDestFrame { .. })),
        "{n:?}"
    );
    assert!(
        n.iter().any(
            |x| matches!(x, ScreenNote::Switched { chief, frames: 4, .. } if &**chief == "edge2")
        ),
        "{n:?}"
    );
    let out = screen.finish().expect("finish");
    let weights: Vec<f32> = out.records.iter().map(|r| r.dest_weight).collect();
    // Source alone, then a = 1/4, 2/4, 3/4, then the destination alone.
    let slide: Vec<f32> = weights.iter().copied().filter(|w| *w > 0.0).collect();
    assert_eq!(&slide[..4], &[0.25, 0.5, 0.75, 1.0], "{weights:?}");
    assert!(weights[0] == 0.0 && weights[1] == 0.0);
    // The smoothness measure is there from the second displayed frame on.
    assert!(out.records[0].ssim_prev.is_none());
    assert!(out.records[1..].iter().all(|r| r.ssim_prev.is_some()));
}

#[test]
fn a_begin_for_an_unknown_stream_is_refused() {
    let (mut wa, ra) = one_frame_buffer("edge1", None);
    let sel = Selector::new(SelectorConfig::default(), "edge1").expect("selector");
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (note_tx, mut note_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut screen = Screen::new(sel, ra, cmd_rx, note_tx);
    publish(&mut wa, "edge1", 1, frame(1));
    cmd_tx.send(ScreenCmd::Begin("edge9".into())).expect("cmd");
    screen.poll(1).expect("poll");
    let n = notes(&mut note_rx);
    assert!(
        matches!(&n[..], [ScreenNote::Refused { dest, .. }] if &**dest == "edge9"),
        "{n:?}"
    );
    assert_eq!(screen.finish().expect("finish").records.len(), 1);
}

#[test]
fn a_source_released_during_the_slide_still_blends_until_its_end() {
    let Two {
        mut wa,
        mut wb,
        rb,
        cmd_tx,
        mut note_rx,
        mut screen,
    } = two_streams();
    let mut now = 1_000_000_000u64;
    cmd_tx.send(ScreenCmd::Add(rb)).expect("cmd");
    cmd_tx.send(ScreenCmd::Begin("edge2".into())).expect("cmd");
    publish(&mut wa, "edge1", 1, frame(10));
    publish(&mut wb, "edge2", 1, frame(10));
    screen.poll(now).expect("poll");
    assert!(matches!(
        notes(&mut note_rx).first(),
        Some(ScreenNote::Decision { .. })
    ));
    // No delayed release: the source goes right after the decision.
    cmd_tx.send(ScreenCmd::Remove("edge1".into())).expect("cmd");
    for k in 2..6u64 {
        now += 16_666_667;
        publish(&mut wb, "edge2", k, frame(k as u8 * 10));
        screen.poll(now).expect("poll");
    }
    let n = notes(&mut note_rx);
    assert!(
        n.iter()
            .any(|x| matches!(x, ScreenNote::Switched { chief, .. } if &**chief == "edge2")),
        "{n:?}"
    );
    let out = screen.finish().expect("finish");
    let weights: Vec<f32> = out.records.iter().map(|r| r.dest_weight).collect();
    // Every frame of the slide was shown, none skipped for want of a
    // source; then edge2 is the chief (shown as the source).
    assert_eq!(weights, [0.25, 0.5, 0.75, 1.0, 0.0], "{weights:?}");
}

#[test]
fn with_the_scorer_thread_the_decision_comes_with_the_score_and_blends_at_once() {
    let Two {
        mut wa,
        mut wb,
        rb,
        cmd_tx,
        mut note_rx,
        screen,
    } = two_streams();
    let scorer = PairScorer::spawn(None).expect("scorer");
    let mut screen = screen.with_scorer(scorer);
    let mut now = 1_000_000_000u64;
    publish(&mut wa, "edge1", 1, frame(10));
    screen.poll(now).expect("poll");
    cmd_tx.send(ScreenCmd::Add(rb)).expect("cmd");
    cmd_tx.send(ScreenCmd::Begin("edge2".into())).expect("cmd");
    // A dissimilar pair: scored (in the worker), no decision.
    let mut far = frame(20);
    far.y.iter_mut().for_each(|p| *p = 255 - *p);
    publish(&mut wa, "edge1", 2, frame(20));
    publish(&mut wb, "edge2", 1, far);
    let mut polls = 0;
    let mut poll_until = |screen: &mut Screen, what: &str, done: &dyn Fn(&[ScreenNote]) -> bool| {
        let mut seen = Vec::new();
        let ok = testkit::wait_until(std::time::Duration::from_secs(5), || {
            now += 100_000;
            polls += 1;
            screen.poll(now).expect("poll");
            seen.extend(notes(&mut note_rx));
            done(&seen)
        });
        assert!(ok, "{what}: {seen:?}");
        seen
    };
    // The first poll queues the pair; no decision while it is not scored.
    let n = poll_until(&mut screen, "dissimilar pair", &|_| true);
    assert!(n.is_empty(), "{n:?}");
    // The same picture on both: decided once the worker scored the pair.
    publish(&mut wa, "edge1", 3, frame(30));
    publish(&mut wb, "edge2", 2, frame(30));
    let n = poll_until(&mut screen, "the decision", &|n| {
        n.iter().any(|x| matches!(x, ScreenNote::Decision { .. }))
    });
    assert!(
        matches!(&n[..], [ScreenNote::Decision { ssim, at, .. }, ScreenNote::FirstDestFrame { at: shown }] if *ssim > 0.99 && shown >= at),
        "the first blended frame at the poll of the decision: {n:?}"
    );
    for k in 4..8u64 {
        publish(&mut wa, "edge1", k, frame(k as u8 * 10));
        publish(&mut wb, "edge2", k - 1, frame(k as u8 * 10));
        screen.poll(now + k * 16_666_667).expect("poll");
    }
    let out = screen.finish().expect("finish");
    let weights: Vec<f32> = out.records.iter().map(|r| r.dest_weight).collect();
    // Source frames 1, 2, 3 (3 shown while its pair was being scored),
    // then the slide, then edge2 as the chief.
    assert_eq!(
        weights,
        [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 0.0],
        "{weights:?}"
    );
}

#[test]
fn the_scorer_scores_the_latest_pair_asked_and_tells_pairs_by_their_frames() {
    let (mut wa, ra) = one_frame_buffer("a", None);
    let (mut wb, rb) = one_frame_buffer("b", None);
    let wake = ue::stream::Wake::new();
    let scorer = PairScorer::spawn(Some(wake.clone())).expect("scorer");
    publish(&mut wa, "a", 1, frame(10));
    publish(&mut wb, "b", 1, frame(10));
    let (a1, b1) = (ra.latest().expect("a"), rb.latest().expect("b"));
    let seen = wake.count();
    assert_eq!(scorer.score(&a1, &b1), None, "queued");
    // The worker wakes the display when done.
    let woke = wake.wait(seen, std::time::Duration::from_secs(5));
    assert_ne!(woke, seen, "notified");
    let v = scorer.score(&a1, &b1).expect("scored");
    assert!(v > 0.99, "{v}");
    assert_eq!(scorer.scored(), 1);
    // Other frames with the same generations are another pair.
    let (mut wc, rc) = one_frame_buffer("c", None);
    let mut far = frame(10);
    far.y.iter_mut().for_each(|p| *p = 255 - *p);
    publish(&mut wc, "c", 1, far);
    let c1 = rc.latest().expect("c");
    assert_eq!(c1.generation, b1.generation);
    assert_eq!(scorer.score(&a1, &c1), None);
    let ok = testkit::wait_until(std::time::Duration::from_secs(5), || {
        scorer.score(&a1, &c1).is_some()
    });
    assert!(ok);
    assert!(scorer.score(&a1, &c1).expect("scored") < 0.5);
    // A pair asked again while queued or done is not scored twice.
    assert_eq!(scorer.scored(), 2);
}

/// Publishes frame `k` of a 60 fps stream: rendered at its slot, decoded
/// `late_ms` after it.
fn publish_timed(w: &mut BufferWriter, name: &str, k: u64, late_ms: u64, f: media::Frame) -> u64 {
    let slot = T0 + k * PERIOD;
    let info = FrameInfo {
        source: name.into(),
        seq: k + 1,
        tick: Some(k),
        rtp_ts: (k as u32).wrapping_mul(1500),
        rendered_ns: Some(slot),
        decoded_ns: slot + late_ms * 1_000_000,
        ..Default::default()
    };
    w.publish(info, f);
    slot + late_ms * 1_000_000
}

const T0: u64 = 1_000_000_000_000;
const PERIOD: u64 = 16_666_666;

#[test]
fn paced_frames_are_shown_at_even_instants_whatever_their_decode_time() {
    let mut t = two_streams();
    let mut screen = t.screen.with_pacing(PacingConfig {
        initial_slack: std::time::Duration::from_millis(8),
        catch_up: std::time::Duration::ZERO,
        ..PacingConfig::default()
    });
    // Decoded 7, 8, 12 ms after the slot in turn: the first sets the
    // delay (7 + 8 ms slack), every frame is shown 15 ms after its slot.
    let lat = [7u64, 8, 12];
    let mut shown_at = Vec::new();
    let mut displayed = 0;
    let mut show = |screen: &mut Screen, decoded: u64, k: u64| {
        let due = screen.poll(decoded).expect("poll").expect("a frame waits");
        assert_eq!(due, T0 + k * PERIOD + 15_000_000, "frame {k}");
        // Not shown before its time...
        screen.poll(due - 1).expect("poll");
        assert_eq!(screen.displayed(), displayed, "frame {k} shown early");
        // ...and shown at it.
        assert_eq!(screen.poll(due).expect("poll"), None);
        displayed += 1;
        assert_eq!(screen.displayed(), displayed, "frame {k} not shown");
        shown_at.push(due);
    };
    for k in 0..6 {
        let d = publish_timed(
            &mut t.wa,
            "edge1",
            k,
            lat[k as usize % 3],
            frame(k as u8 * 10),
        );
        show(&mut screen, d, k);
    }
    // A switch: both streams in step, the destination decoded later; the
    // decision comes when the destination's frame is due, and the slide
    // goes on at the destination's own instants.
    t.cmd_tx.send(ScreenCmd::Add(t.rb)).expect("cmd");
    t.cmd_tx
        .send(ScreenCmd::Begin("edge2".into()))
        .expect("cmd");
    for k in 6..12 {
        let f = frame(k as u8 * 10);
        let da = publish_timed(&mut t.wa, "edge1", k, lat[k as usize % 3], f.clone());
        let db = publish_timed(&mut t.wb, "edge2", k, 9, f);
        let mut at = [da, db, T0 + k * PERIOD + 15_000_000, db + 8_000_000];
        at.sort_unstable();
        for t in at {
            screen.poll(t).expect("poll");
        }
    }
    let n = notes(&mut t.note_rx);
    assert!(
        n.iter().any(|x| matches!(x, ScreenNote::Decision { .. })),
        "{n:?}"
    );
    let out = screen.finish().expect("finish");
    // Every frame of edge1 up to the decision and every one of edge2
    // after it shown once, none skipped.
    let seqs: Vec<(String, u64)> = out
        .records
        .iter()
        .map(|r| (r.source.clone(), r.seq))
        .collect();
    let first_dest = seqs
        .iter()
        .position(|(s, _)| s == "edge2")
        .expect("edge2 shown");
    assert!(
        seqs[..first_dest]
            .iter()
            .enumerate()
            .all(|(i, (s, q))| s == "edge1" && *q == i as u64 + 1),
        "{seqs:?}"
    );
    let mut dest: Vec<u64> = seqs[first_dest..]
        .iter()
        .filter(|(s, _)| s == "edge2")
        .map(|(_, q)| *q)
        .collect();
    // A blend is recomposed when either stream's frame is new.
    dest.dedup();
    assert!(dest.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

#[test]
fn paced_frames_decoded_in_a_burst_wait_in_order_each_for_its_time() {
    let (mut wa, ra) = one_frame_buffer("edge1", None);
    let sel = Selector::new(SelectorConfig::default(), "edge1").expect("selector");
    let (_cmd_tx, cmd_rx) = mpsc::channel();
    let (note_tx, _note_rx) = tokio::sync::mpsc::unbounded_channel();
    // A delay of 1 + 200 ms: frames decoded 1 ms after their slot wait
    // about 12 frame periods.
    let mut screen = Screen::new(sel, ra, cmd_rx, note_tx).with_pacing(PacingConfig {
        initial_slack: std::time::Duration::from_millis(200),
        catch_up: std::time::Duration::ZERO,
        max_delay: std::time::Duration::from_secs(1),
        ..PacingConfig::default()
    });
    let due0 = T0 + 201_000_000;
    for k in 0..MAX_WAITING as u64 {
        let d = publish_timed(&mut wa, "edge1", k, 1, frame(k as u8));
        assert_eq!(screen.poll(d).expect("poll"), Some(due0), "frame {k}");
    }
    assert_eq!(screen.displayed(), 0);
    // One more than may wait: the oldest goes now, the rest still wait.
    let d = publish_timed(&mut wa, "edge1", MAX_WAITING as u64, 1, frame(99));
    assert_eq!(screen.poll(d).expect("poll"), Some(due0 + PERIOD));
    assert_eq!(screen.displayed(), 1);
    // Then each at its own time, in order.
    for k in 1..=MAX_WAITING as u64 {
        let due = due0 + k * PERIOD;
        screen.poll(due - 1).expect("poll");
        assert_eq!(screen.displayed(), k, "frame {k} early");
        screen.poll(due).expect("poll");
        assert_eq!(screen.displayed(), k + 1, "frame {k} not shown");
    }
    let out = screen.finish().expect("finish");
    let seqs: Vec<u64> = out.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=MAX_WAITING as u64 + 1).collect::<Vec<_>>());
    // The record tells when each frame was due, and the stream's delay
    // (steady here: no later frame was later than the first).
    assert_eq!(out.records[1].due_ns, Some(due0 + PERIOD));
    // And when the look that showed it began (here: at its due time).
    assert_eq!(out.records[1].woke_ns, Some(due0 + PERIOD));
    let delays: Vec<Option<u64>> = out.records.iter().map(|r| r.pacer_delay_ns).collect();
    assert!(delays[0].is_some_and(|d| d > 0), "{delays:?}");
    assert!(delays.iter().all(|d| *d == delays[0]), "{delays:?}");
}

/// A picture of its own for every slot `k` (noise from the slot number):
/// frames of different slots never look alike.
fn slot_frame(k: u64) -> media::Frame {
    let mut f = media::Frame::new(64, 36);
    let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for p in f.y.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *p = (x >> 56) as u8;
    }
    f
}

#[test]
fn paced_streams_on_paths_of_different_delay_are_compared_slot_by_slot_and_switch_without_a_jump() {
    let mut t = two_streams();
    let mut screen = t.screen.with_pacing(PacingConfig {
        initial_slack: std::time::Duration::from_millis(2),
        catch_up: std::time::Duration::from_micros(500),
        ..PacingConfig::default()
    });
    // The source's path is slow (the latency trigger's case): its frames
    // are decoded 40 ms after their slot, the destination's 5 ms after. On
    // their own delays the two would show frames two slots apart at every
    // instant and never look alike.
    let (src_late, dst_late) = (40u64, 5u64);
    let mut next = (0u64, 0u64);
    let joined = 10;
    for ms in 0..1500u64 {
        let now = T0 + ms * 1_000_000;
        while T0 + next.0 * PERIOD + src_late * 1_000_000 <= now {
            let k = next.0;
            publish_timed(&mut t.wa, "edge1", k, src_late, slot_frame(k));
            next.0 += 1;
        }
        if next.0 == joined && next.1 == 0 {
            next.1 = joined;
            t.cmd_tx.send(ScreenCmd::Add(t.rb.clone())).expect("cmd");
            t.cmd_tx
                .send(ScreenCmd::Begin("edge2".into()))
                .expect("cmd");
        }
        while next.1 >= joined && T0 + next.1 * PERIOD + dst_late * 1_000_000 <= now {
            let k = next.1;
            publish_timed(&mut t.wb, "edge2", k, dst_late, slot_frame(k));
            next.1 += 1;
        }
        screen.poll(now).expect("poll");
    }
    let n = notes(&mut t.note_rx);
    assert!(
        n.iter()
            .any(|x| matches!(x, ScreenNote::Decision { ssim, .. } if *ssim > 0.99)),
        "the same slot compared on both streams: {n:?}"
    );
    assert!(
        n.iter()
            .any(|x| matches!(x, ScreenNote::Switched { chief, .. } if &**chief == "edge2")),
        "{n:?}"
    );
    let out = screen.finish().expect("finish");
    // Each frame's presentation time, in the order shown, once per frame:
    // even all along, through the slide and after it, while the delay
    // sinks from the source's to the destination's own.
    let mut dues: Vec<(String, u64, u64)> = Vec::new();
    for r in &out.records {
        let due = r.due_ns.expect("paced");
        if dues
            .last()
            .is_none_or(|(s, q, _)| (s, *q) != (&r.source, r.seq))
        {
            dues.push((r.source.clone(), r.seq, due));
        }
    }
    let shown: Vec<u64> = dues.iter().map(|d| d.2).collect();
    let gaps: Vec<i64> = shown
        .windows(2)
        .map(|w| w[1] as i64 - w[0] as i64)
        .collect();
    assert!(
        gaps.iter().all(|&g| g <= PERIOD as i64 + 100_000 && g >= 0),
        "{gaps:?}"
    );
    // The destination's own delay reached at the end: 5 ms + the 2 ms
    // slack of its first window (8 s, longer than the test).
    let last = dues.last().expect("frames");
    assert_eq!(last.0, "edge2");
    let slot = T0 + (last.1 - 1) * PERIOD;
    assert_eq!(last.2 - slot, 7_000_000, "{last:?}");
}
