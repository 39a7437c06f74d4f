//! Per-frame cost of the instance's video path at 640x360: render, H.264
//! encode, RTP packetize, against a baseline measured in the same run (a
//! copy of one I420 frame), and against the 60 fps budget (16.7 ms).
//!
//! `cargo bench -p app --bench video_frame`; the summary at the end prints
//! ms per frame, ratios and the bitrate of a live-like sequence.

use std::hint::black_box;
use std::time::Instant;

use app::game::World;
use app::instance::{Streamer, StreamerConfig};
use app::render::render;
use app::scene::Scene;
use criterion::{criterion_group, Criterion};
use media::h264::{Encoder, EncoderConfig};
use media::Frame;

#[path = "../tests/common/mod.rs"]
mod common;

use common::four_players as game;

fn benches(c: &mut Criterion) {
    let worlds = game(120);
    let mut frame = Frame::new(640, 360);
    render(&worlds[0], &mut frame);
    let bytes = frame.to_i420();
    let mut dst = vec![0u8; bytes.len()];
    c.bench_function("baseline_copy_i420_640x360", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&bytes)))
    });
    let mut i = 0;
    c.bench_function("render_640x360", |b| {
        b.iter(|| {
            i = (i + 1) % worlds.len();
            render(black_box(&worlds[i]), &mut frame)
        })
    });
    let mut j = 0;
    c.bench_function("render_textured_640x360", |b| {
        b.iter(|| {
            j = (j + 1) % worlds.len();
            Scene::Textured.draw(black_box(&worlds[j]), &mut frame)
        })
    });
    let mut enc = Encoder::new(EncoderConfig::default()).expect("encoder");
    let frames: Vec<Frame> = worlds
        .iter()
        .map(|w| app::render::render_new(w, 640, 360))
        .collect();
    let mut k = 0;
    let mut au = Vec::new();
    c.bench_function("encode_640x360_live_sequence", |b| {
        b.iter(|| {
            // 3 frames per tick, as at 60 fps with 20 Hz ticks.
            k += 1;
            au.clear();
            enc.encode_into(&frames[(k / 3) % frames.len()], &mut au)
                .expect("encode")
        })
    });
    let mut st = Streamer::new(StreamerConfig::new("a", 1)).expect("streamer");
    let mut out = Vec::new();
    let mut m = 0;
    c.bench_function("streamer_render_encode_packetize_640x360", |b| {
        b.iter(|| {
            m += 1;
            out.clear();
            st.stream(&worlds[(m / 3) % worlds.len()], 0, &mut out)
                .expect("stream")
        })
    });
}

/// Wall-clock summary over a live-like sequence of 10 s (600 frames).
fn summary() {
    let worlds = game(200);
    let n = 600;
    let frame = app::render::render_new(&worlds[0], 640, 360);
    let bytes = frame.to_i420();
    let mut dst = vec![0u8; bytes.len()];
    let t = Instant::now();
    for _ in 0..n {
        dst.copy_from_slice(black_box(&bytes));
        black_box(&dst);
    }
    let copy = t.elapsed().as_secs_f64() / n as f64;
    println!("\n=== video_frame summary (640x360, 60 fps, 2 Mbit/s, {n} frames) ===");
    println!("baseline copy of one I420 frame : {:8.4} ms", copy * 1e3);
    for scene in [Scene::Snake, Scene::Textured] {
        scene_summary(scene, &worlds, n, copy);
    }
}

/// The streamer's figures for one scene over `n` frames of `worlds`.
fn scene_summary(scene: Scene, worlds: &[World], n: usize, copy: f64) {
    let mut cfg = StreamerConfig::new("a", 1);
    cfg.scene = scene;
    let mut st = Streamer::new(cfg).expect("streamer");
    let mut out = Vec::new();
    let (mut render_s, mut encode_s, mut bytes_sent, mut idr_bytes, mut idrs) =
        (0.0, 0.0, 0usize, 0usize, 0);
    let t = Instant::now();
    for f in 0..n {
        out.clear();
        let r = st
            .stream(&worlds[(f / 3) % worlds.len()], 0, &mut out)
            .expect("stream");
        render_s += r.render_ns as f64 / 1e9;
        encode_s += r.encode_ns as f64 / 1e9;
        bytes_sent += r.datagram_bytes;
        if r.idr {
            idrs += 1;
            idr_bytes += r.encoded_bytes;
        }
    }
    let total = t.elapsed().as_secs_f64() / n as f64;
    let (render_f, encode_f) = (render_s / n as f64, encode_s / n as f64);
    let budget = 1.0 / 60.0;
    println!("--- scene {scene}");
    println!(
        "render                          : {:8.4} ms  ({:7.1} x copy)",
        render_f * 1e3,
        render_f / copy
    );
    println!(
        "encode                          : {:8.4} ms  ({:7.1} x copy)",
        encode_f * 1e3,
        encode_f / copy
    );
    println!(
        "render+encode+packetize (wall)  : {:8.4} ms  ({:7.1} x copy, {:5.1} % of the 16.7 ms budget)",
        total * 1e3,
        total / copy,
        100.0 * total / budget
    );
    println!(
        "RTP bitrate                     : {:8.1} kbit/s ({} IDRs, {:.0} octets each on average)",
        bytes_sent as f64 * 8.0 / (n as f64 / 60.0) / 1e3,
        idrs,
        idr_bytes as f64 / idrs.max(1) as f64
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
