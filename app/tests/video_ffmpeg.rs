//! Issue 6, "checked by": an ffmpeg receiver (the Debian package) decodes
//! the stream from the SDP file.
//!
//! The instance's [`Streamer`] sends RTP over 127.0.0.1 to a port where
//! `ffmpeg -protocol_whitelist file,udp,rtp -i stream.sdp -frames:v 30 -f
//! rawvideo -pix_fmt yuv420p out.yuv` listens (started first); the test
//! checks that ffmpeg wrote 30 frames of 640x360 and that a decoded frame
//! matches what was rendered (SSIM). Fails without ffmpeg.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use app::game::{Delta, Dir, Event, World};
use app::instance::{Streamer, StreamerConfig};
use media::{ssim, Frame};
use testkit::{KillOnDrop, TempDir};

/// An even port `p` with `p` and `p + 1` (RTCP) free on 127.0.0.1.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let p = s.local_addr().expect("addr").port() & !1;
        drop(s);
        if p < 1024 {
            continue;
        }
        let a = UdpSocket::bind(("127.0.0.1", p));
        let b = UdpSocket::bind(("127.0.0.1", p + 1));
        if a.is_ok() && b.is_ok() {
            return p;
        }
    }
    panic!("no free UDP port pair");
}

fn port_taken(p: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", p)).is_err()
}

#[test]
fn ffmpeg_decodes_the_stream_from_the_sdp_file() {
    testkit::require_tool("ffmpeg");
    let dir = TempDir(std::env::temp_dir().join(format!("video-ffmpeg-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let port = free_port_pair();
    let sdp = dir.0.join("stream.sdp");
    std::fs::write(
        &sdp,
        media::sdp::h264("127.0.0.1".parse().expect("ip"), port, 96),
    )
    .expect("sdp");
    let out = dir.0.join("out.yuv");
    let log = std::fs::File::create(dir.0.join("ffmpeg.log")).expect("log");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "warning", "-nostdin"])
        .args(["-protocol_whitelist", "file,udp,rtp", "-i"])
        .arg(&sdp)
        .args([
            "-frames:v",
            "30",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn ffmpeg");
    let mut ff = KillOnDrop(child);

    // Wait for ffmpeg to listen.
    let listening = testkit::wait_until(Duration::from_secs(10), || {
        if let Ok(Some(st)) = ff.0.try_wait() {
            panic!(
                "ffmpeg exited early ({st}): {}",
                std::fs::read_to_string(dir.0.join("ffmpeg.log")).unwrap_or_default()
            );
        }
        port_taken(port)
    });
    assert!(listening, "ffmpeg did not bind port {port} within 10 s");

    // A game advancing one tick every 3 frames.
    let mut w = World::new(64, 36, 99);
    w.apply(&Delta {
        tick: 1,
        events: vec![
            Event::Join {
                player: "ue1".into(),
            },
            Event::Join {
                player: "other".into(),
            },
        ],
    })
    .expect("delta");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let dest: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut st = Streamer::new(StreamerConfig::new("ue1", 0x1234_5678)).expect("streamer");
    let mut rendered: Vec<Frame> = Vec::new();
    let mut datagrams = Vec::new();
    let mut sent_bytes = 0usize;
    let start = Instant::now();
    let mut n = 0u64;
    let status = loop {
        if let Some(s) = ff.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "ffmpeg did not finish in 30 s"
        );
        if n % 3 == 0 && n > 0 {
            let turn = if n % 30 == 0 {
                vec![Event::Turn {
                    player: "ue1".into(),
                    dir: [Dir::Up, Dir::Left][(n / 30 % 2) as usize],
                    seq: n,
                }]
            } else {
                vec![]
            };
            w.apply(&Delta {
                tick: w.tick + 1,
                events: turn,
            })
            .expect("delta");
        }
        datagrams.clear();
        st.stream(&w, n, &mut datagrams).expect("stream");
        if rendered.len() < 90 {
            rendered.push(st.frame().clone());
        }
        for d in &datagrams {
            sent_bytes += sock.send_to(d, dest).expect("send");
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(16)); // pacing, not synchronisation
    };
    let logtext = std::fs::read_to_string(dir.0.join("ffmpeg.log")).unwrap_or_default();
    assert!(status.success(), "ffmpeg failed ({status}): {logtext}");
    let yuv = std::fs::read(&out).expect("ffmpeg output");
    let flen = Frame::i420_len(640, 360);
    assert_eq!(yuv.len() % flen, 0, "output is whole 640x360 I420 frames");
    let frames = yuv.len() / flen;
    assert!(frames >= 30, "ffmpeg decoded {frames} frames");
    let decoded: Vec<Frame> = yuv
        .chunks(flen)
        .map(|c| Frame::from_i420(640, 360, c).expect("frame"))
        .collect();
    // The first and the last decoded frames each match one rendered frame.
    for (k, d) in [(0, &decoded[0]), (frames - 1, &decoded[frames - 1])] {
        let scores: Vec<f64> = rendered.iter().map(|r| ssim(d, r)).collect();
        let (best_i, best) = scores
            .iter()
            .cloned()
            .enumerate()
            .fold((0, 0.0), |a, (i, s)| if s > a.1 { (i, s) } else { a });
        println!("ffmpeg frame {k}: best SSIM {best:.5} against rendered frame {best_i}");
        assert!(best >= 0.99, "decoded frame {k}: best SSIM {best}");
    }
    println!(
        "sent {n} frames, {sent_bytes} octets of RTP in {:.2} s; ffmpeg wrote {frames} frames",
        start.elapsed().as_secs_f64()
    );
}
