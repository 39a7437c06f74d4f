//! The CSM screen (the selector's driver) on synthetic frames: it shows
//! the source until the streams are similar, then blends over N frames
//! into the destination, and tells the agent each step.

use std::sync::mpsc;

use ue::stream::buffer::{one_frame_buffer, BufferWriter, FrameInfo};
use ue::stream::screen::{Screen, ScreenCmd, ScreenNote};
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
        rtp_ts: 0,
        tick: Some(seq),
        input_seq: None,
        rendered_ns: None,
        recv_ns: 0,
        decoded_ns: 0,
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

#[test]
fn shows_the_source_until_similar_then_slides_into_the_destination() {
    let (mut wa, ra) = one_frame_buffer("edge1", None);
    let (mut wb, rb) = one_frame_buffer("edge2", None);
    let cfg = SelectorConfig {
        blend_frames: 4,
        ..SelectorConfig::at_fps(60)
    };
    let sel = Selector::new(cfg, "edge1").expect("selector");
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (note_tx, mut note_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut screen = Screen::new(sel, ra, cmd_rx, note_tx);
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
    let (mut wa, ra) = one_frame_buffer("edge1", None);
    let (mut wb, rb) = one_frame_buffer("edge2", None);
    let cfg = SelectorConfig {
        blend_frames: 4,
        ..SelectorConfig::at_fps(60)
    };
    let sel = Selector::new(cfg, "edge1").expect("selector");
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (note_tx, mut note_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut screen = Screen::new(sel, ra, cmd_rx, note_tx);
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
