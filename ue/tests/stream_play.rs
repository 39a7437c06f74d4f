//! `ue play` against a fake application instance on loopback: the instance
//! streams H.264 RTP at 60 fps and stamps each frame with the last input
//! seq it received, so the report's input -> display latency is real.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::h264::{Encoder, EncoderConfig};
use media::rtp::{FrameMeta, Packetizer};
use wire::input::Input;

/// A free UDP port on 127.0.0.1 (bound then released: `ue play` binds it).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("ephemeral port")
        .port()
}

#[test]
fn ue_play_reports_frames_latency_and_bitrate() {
    let rtp_port = free_port();
    let input = UdpSocket::bind("127.0.0.1:0").expect("input socket");
    input.set_nonblocking(true).expect("nonblocking");
    let input_addr = input.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let instance = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("rtp socket");
            let mut enc = Encoder::new(EncoderConfig {
                width: 320,
                height: 180,
                fps: 60,
                bitrate_bps: 1_000_000,
            })
            .expect("encoder");
            enc.set_idr_interval(20);
            let mut pk = Packetizer::new(7, 96, 1200);
            let (mut last_input, mut inputs, mut out) = (0u64, Vec::new(), Vec::new());
            let mut buf = [0u8; 64];
            let start = Instant::now();
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                while let Ok(n) = input.recv(&mut buf) {
                    let i = Input::parse(&buf[..n]).expect("the UE's input parses");
                    last_input = last_input.max(i.seq);
                    inputs.push(i.seq);
                }
                tick += 1;
                let mut f = media::Frame::new(320, 180);
                f.fill_rect((tick as u32 * 4) % 280, 60, 40, 40, [200, 100, 150]);
                f.fill_rect(0, 0, (last_input as u32 * 8) % 320, 8, [235, 128, 128]);
                let au = enc.encode(&f).expect("encode");
                let meta = FrameMeta {
                    tick,
                    input_seq: last_input,
                    rendered_ns: ue::stream::realtime_ns(),
                };
                out.clear();
                pk.packetize(&au, (tick * 1500) as u32, &meta, &mut out);
                for p in &out {
                    // Before `ue play` binds, the port is closed: ignore.
                    let _ = sock.send_to(p, ("127.0.0.1", rtp_port));
                }
                let due = start + Duration::from_micros(16_667) * tick as u32;
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d); // pacing, not synchronisation
                }
            }
            inputs
        })
    };
    let dir = std::env::temp_dir().join(format!("ue-stream-play-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let video = dir.join("play.y4m");
    let out = Command::new(env!("CARGO_BIN_EXE_ue"))
        .args(["play", "--stream"])
        .arg(format!("edge1=127.0.0.1:{rtp_port}"))
        .arg("--input-to")
        .arg(input_addr.to_string())
        .args(["--input-from", "127.0.0.1", "--input-rate", "20"])
        .args(["--duration", "3s", "--json", "--video"])
        .arg(&video)
        .output()
        .expect("run ue play");
    stop.store(true, Ordering::Relaxed);
    let received = instance.join().expect("instance");
    assert!(
        out.status.success(),
        "ue play failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    let n = |p: &str| r.pointer(p).and_then(|v| v.as_f64()).unwrap_or(-1.0);
    // Up to 60 fps for ~3 s (a debug build on a busy machine does less).
    assert!(n("/frames_displayed") > 30.0, "{r}");
    assert!(n("/frame_interval_ms/p50") > 0.0, "{r}");
    assert!(n("/inputs_sent") >= 20.0, "{r}");
    // Every input the bot sent reached the instance, in order, once.
    let sent = n("/inputs_sent") as u64;
    assert_eq!(received, (1..=sent).collect::<Vec<u64>>());
    // Inputs are shown: latency measured for (nearly) all of them.
    let before = n("/inputs_before_video");
    assert!(n("/latency_ms/count") >= sent as f64 - before - 2.0, "{r}");
    assert!(n("/inputs_unmatched") <= 2.0, "{r}");
    assert!(n("/latency_ms/p50") > 0.0, "{r}");
    assert!(n("/streams/0/wire_mbit_s") > 0.0, "{r}");
    assert_eq!(n("/streams/0/malformed"), 0.0, "{r}");
    assert_eq!(n("/video_frames"), n("/frames_displayed"), "{r}");
    let len = std::fs::metadata(&video).expect("video file").len();
    assert!(len as f64 >= n("/frames_displayed") * 320.0 * 180.0 * 1.5);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn ue_play_rejects_bad_arguments() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ue"))
            .args(args)
            .output()
            .expect("run ue")
    };
    let o = run(&["play", "--stream", "nobind", "--duration", "1s"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("NAME=ADDR:PORT"));
    let o = run(&["play", "--stream", "a=127.0.0.1:0", "--duration", "ten"]);
    assert!(!o.status.success());
    let o = run(&[
        "play",
        "--stream",
        "a=127.0.0.1:0",
        "--stream",
        "a=127.0.0.1:0",
        "--duration",
        "1s",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("given twice"));
}
