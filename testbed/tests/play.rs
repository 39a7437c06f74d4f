//! `testbed play` as a user runs it, shortened: the UE displays the edge's
//! stream at about the frame rate, its inputs show up in displayed frames,
//! the logic server applied every input exactly once, the displayed video
//! written to a file is readable by ffmpeg, and nothing is left afterwards.
//! Needs root, the binaries and ffmpeg.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Bed, SMALL_VIDEO};

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn play_streams_the_game_to_the_ue_and_applies_every_input_once() {
    testkit::require_tool("ffprobe");
    let bed = Bed::with_daemons("p");
    let video = bed.root.join("played.y4m");
    let r = bed.job_json(
        &["play"],
        &[
            &SMALL_VIDEO[..],
            &["--seconds", "4", "--video", video.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(
        (r["upf"].as_str(), r["edge"].as_str()),
        (Some("upf1"), Some("edge1"))
    );
    assert!(
        r["ue_addr"].as_str().unwrap().starts_with("10.45."),
        "a session address from upf1's pool: {r}"
    );
    assert_eq!(
        r["instance"]["pulled"], true,
        "a fresh edge pulls the app: {r}"
    );
    let c = &r["client"];
    let frames = c["frames_displayed"].as_u64().unwrap();
    // 4 s at 30 fps is 120 frames; the first ones wait for a key frame.
    assert!(frames >= 60, "frames displayed: {frames}: {c}");
    let p50 = c["frame_interval_ms"]["p50"].as_f64().unwrap();
    assert!(
        (20.0..=50.0).contains(&p50),
        "frame interval p50 {p50} ms at 30 fps: {c}"
    );
    let sent = c["inputs_sent"].as_u64().unwrap();
    assert!(sent >= 20, "the bot played: {c}");
    assert!(
        c["latency_ms"]["count"].as_u64().unwrap() > 0,
        "inputs showed up in displayed frames: {c}"
    );
    let stream = &c["streams"][0];
    assert!(stream["wire_mbit_s"].as_f64().unwrap() > 0.0, "{stream}");
    assert_eq!(stream["malformed"], 0, "{stream}");
    // Every input applied exactly once.
    assert_eq!(r["cloud"]["inputs_applied"].as_u64(), Some(sent), "{r}");
    assert_eq!(r["cloud"]["last_seq"].as_u64(), Some(sent), "{r}");
    assert_eq!(r["lost_inputs"], 0, "{r}");
    // The displayed video is a file ffmpeg reads, frame for frame.
    let written = c["video_frames"].as_u64().expect("video frames");
    assert_eq!(written, frames, "{c}");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&video)
        .output()
        .expect("ffprobe (Debian package ffmpeg) runs");
    assert!(probe.status.success(), "{probe:?}");
    let text = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(text.trim(), format!("320,180,{written}"), "ffprobe: {text}");
    bed.assert_nothing_left("play");
}
