//! A real H.264 RTP stream (media's Encoder + Packetizer, frames carrying
//! FrameMeta) into a StreamClient and a DisplaySink, on loopback.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media::h264::{Encoder, EncoderConfig};
use media::rtp::{FrameMeta, Packetizer};
use ue::stream::y4m::read_y4m;
use ue::stream::{one_frame_buffer, Chief, DisplaySink, StreamClient, Wake};

const W: u16 = 320;
const H: u16 = 180;

/// Frame `i`: a gradient with a bright square that moves with `i`.
fn synth(i: u64) -> media::Frame {
    let mut f = media::Frame::new(W, H);
    for y in 0..H as usize {
        for x in 0..W as usize {
            f.y[y * W as usize + x] = (16 + (x + y) / 3) as u8;
        }
    }
    let x = (i as u32 * 7) % (W as u32 - 40);
    let y = (i as u32 * 3) % (H as u32 - 40);
    f.fill_rect(x, y, 40, 40, [220, 90, 200]);
    f
}

struct Sent {
    metas: HashMap<u64, FrameMeta>,
    packets: u64,
    bytes: u64,
    garbage: u64,
}

/// Sends `n` frames (ticks 1..=n) to `to`, `gap` apart; garbage after every
/// fifth frame; drops packet `drop.1` of frame `drop.0`; IDR at `idr`.
fn send_stream(
    to: SocketAddr,
    n: u64,
    gap: Duration,
    drop: Option<(u64, usize)>,
    idr: &[u64],
    after_frame: &dyn Fn(u64),
) -> (Sent, Vec<media::Frame>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let mut enc = Encoder::new(EncoderConfig {
        width: W,
        height: H,
        fps: 60,
        bitrate_bps: 1_000_000,
    })
    .expect("encoder");
    let mut pk = Packetizer::new(0x1234_5678, 96, 400);
    let garbage: [&[u8]; 4] = [
        &[],
        &[0x80],
        &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        &[0u8; 40],
    ];
    let mut s = Sent {
        metas: HashMap::new(),
        packets: 0,
        bytes: 0,
        garbage: 0,
    };
    let mut originals = Vec::new();
    let mut out = Vec::new();
    for tick in 1..=n {
        let f = synth(tick);
        if idr.contains(&tick) {
            enc.force_idr();
        }
        let au = enc.encode(&f).expect("encode");
        originals.push(f);
        let meta = FrameMeta {
            tick,
            input_seq: tick / 3,
            rendered_ns: ue::stream::realtime_ns(),
        };
        s.metas.insert(tick, meta);
        out.clear();
        pk.packetize(&au, (tick * 1500) as u32, &meta, &mut out);
        for (k, p) in out.iter().enumerate() {
            if drop == Some((tick, k)) {
                continue;
            }
            sock.send_to(p, to).expect("send");
            s.packets += 1;
            s.bytes += p.len() as u64;
        }
        if tick % 5 == 0 {
            for g in garbage {
                sock.send_to(g, to).expect("send garbage");
                s.packets += 1;
                s.bytes += g.len() as u64;
                s.garbage += 1;
            }
        }
        std::thread::sleep(gap); // pacing, not synchronisation
        after_frame(tick);
    }
    (s, originals)
}

/// Waits until `cond` holds; fails the test with `what` after `limit`.
fn wait_for(what: &str, cond: impl FnMut() -> bool, limit: Duration) {
    assert!(
        testkit::wait_until(limit, cond),
        "not within {limit:?}: {what}"
    );
}

#[test]
fn stream_decodes_displays_and_carries_metadata() {
    testkit::require_tool("ffmpeg");
    let dir = std::env::temp_dir().join(format!("ue-stream-rtp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let video = dir.join("shown.y4m");
    let wake = Wake::new();
    let (w, r) = one_frame_buffer("edge1", Some(wake.clone()));
    let client = StreamClient::spawn("127.0.0.1:0".parse().expect("addr"), w).expect("client");
    let to = client.local_addr();
    let sink = DisplaySink::new(vec![r.clone()], Chief::new("edge1"), Some(wake))
        .with_video(&video, 60)
        .expect("video");
    let display = sink.spawn().expect("display");

    const N: u64 = 90;
    // Paced by the display: the next frame goes when this one was shown,
    // so that the count below does not depend on the machine's load.
    let (sent, originals) = send_stream(to, N, Duration::from_millis(1), None, &[], &|t| {
        wait_for(
            "frame displayed",
            || display.displayed() >= t,
            Duration::from_secs(3),
        )
    });
    let shown = display.stop().expect("display stop");
    let stats = client.stop().expect("client stop");

    // Counters.
    assert_eq!(stats.frames, N, "every frame decoded: {stats:?}");
    assert_eq!(stats.malformed, sent.garbage, "{stats:?}");
    assert_eq!((stats.incomplete, stats.decode_errors), (0, 0), "{stats:?}");
    assert_eq!(stats.packets, sent.packets);
    assert_eq!(stats.payload_bytes, sent.bytes);
    assert_eq!(stats.wire_bytes, sent.bytes + 28 * sent.packets);
    assert!(stats.wire_mbit_s() > 0.0);

    // Displayed frames: in order, with the metadata the sender put in.
    let recs = &shown.records;
    assert_eq!(recs.len() as u64, N, "every frame displayed");
    for w in recs.windows(2) {
        assert!(w[0].seq < w[1].seq && w[0].display_ns <= w[1].display_ns);
    }
    for rec in recs {
        let tick = rec.tick.expect("tick carried");
        let m = sent.metas[&tick];
        assert_eq!(rec.seq, tick, "no loss: frame sequence == tick");
        assert_eq!(rec.input_seq, Some(m.input_seq));
        assert_eq!(rec.rendered_ns, Some(m.rendered_ns));
        assert_eq!(rec.source, "edge1");
        assert!(rec.recv_ns >= m.rendered_ns && rec.display_ns >= rec.recv_ns);
    }
    assert_eq!(recs.last().and_then(|r| r.tick), Some(N));

    // The buffer still holds the last frame, and it is the last picture.
    let last = r.latest().expect("latest");
    assert_eq!(last.info.tick, Some(N));
    let s = media::ssim(&originals[N as usize - 1], &last.frame);
    assert!(s > 0.9, "decoded last frame SSIM {s}");

    // The video file holds exactly the displayed frames.
    let (hdr, frames) = read_y4m(std::io::BufReader::new(
        std::fs::File::open(&video).expect("open"),
    ))
    .expect("y4m");
    assert_eq!((hdr.width, hdr.height), (W, H));
    assert_eq!(frames.len(), recs.len());
    // (SSIM is slow in a debug build: every ninth frame.)
    for (f, rec) in frames.iter().zip(recs).step_by(9) {
        let tick = rec.tick.expect("tick") as usize;
        let s = media::ssim(&originals[tick - 1], f);
        assert!(s > 0.9, "frame of tick {tick}: SSIM {s}");
    }
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&video)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let per = media::Frame::i420_len(W, H);
    assert_eq!(o.stdout.len(), per * frames.len(), "ffmpeg's frame count");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn lost_packet_is_counted_and_the_stream_goes_on() {
    let (w, r) = one_frame_buffer("edge1", None);
    let client = StreamClient::spawn("127.0.0.1:0".parse().expect("addr"), w).expect("client");
    const N: u64 = 60;
    // Frame 20 is an IDR of several packets: its second is lost. Frame 40
    // is an IDR again, so the decoder recovers.
    let (_, originals) = send_stream(
        client.local_addr(),
        N,
        Duration::from_millis(2),
        Some((20, 1)),
        &[20, 40],
        &|_| {},
    );
    wait_for(
        "the last frame in the buffer",
        || r.latest().and_then(|f| f.info.tick) == Some(N),
        Duration::from_secs(20),
    );
    let stats = client.stop().expect("stop");
    assert_eq!(stats.incomplete, 1, "{stats:?}");
    assert!(stats.frames >= N - 20, "{stats:?}");
    let last = r.latest().expect("latest");
    assert_eq!(last.info.tick, Some(N), "the stream stopped at the loss");
    let s = media::ssim(&originals[N as usize - 1], &last.frame);
    assert!(
        s > 0.9,
        "after the IDR the picture is right again: SSIM {s}"
    );
}

#[test]
fn two_streams_two_buffers_the_chief_is_shown() {
    let wake = Wake::new();
    let (wa, ra) = one_frame_buffer("edge1", Some(wake.clone()));
    let (wb, rb) = one_frame_buffer("edge2", Some(wake.clone()));
    let ca = StreamClient::spawn("127.0.0.1:0".parse().expect("addr"), wa).expect("a");
    let cb = StreamClient::spawn("127.0.0.1:0".parse().expect("addr"), wb).expect("b");
    let chief = Chief::new("edge2");
    let display = DisplaySink::new(vec![ra, rb.clone()], chief, Some(wake))
        .spawn()
        .expect("display");
    let (a_to, b_to) = (ca.local_addr(), cb.local_addr());
    let ta = std::thread::spawn(move || {
        send_stream(a_to, 30, Duration::from_millis(5), None, &[], &|_| {})
    });
    let tb = std::thread::spawn(move || {
        send_stream(b_to, 30, Duration::from_millis(5), None, &[], &|_| {})
    });
    ta.join().expect("a sender");
    tb.join().expect("b sender");
    wait_for(
        "the chief's last frame in its buffer",
        || rb.latest().and_then(|f| f.info.tick) == Some(30),
        Duration::from_secs(20),
    );
    wait_for(
        "a frame displayed",
        || display.displayed() > 0,
        Duration::from_secs(5),
    );
    let shown = display.stop().expect("stop");
    let (sa, sb) = (ca.stop().expect("a"), cb.stop().expect("b"));
    assert_eq!((sa.frames, sb.frames), (30, 30));
    assert!(!shown.records.is_empty());
    assert!(
        shown.records.iter().all(|r| r.source == "edge2"),
        "a copilot frame was displayed"
    );
}

#[test]
fn random_datagrams_do_not_stop_the_client() {
    let (w, r) = one_frame_buffer("edge1", None);
    let client = StreamClient::spawn("127.0.0.1:0".parse().expect("addr"), w).expect("client");
    let to = client.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Seeded noise, a quarter of it with an RTP version 2 first octet.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut noise = 0u64;
    for i in 0..2000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 1400) as usize;
        let mut d: Vec<u8> = (0..len).map(|k| (x >> (k % 56)) as u8 ^ k as u8).collect();
        if i % 4 == 0 && !d.is_empty() {
            d[0] = 0x80;
        }
        sock.send_to(&d, to).expect("send");
        noise += 1;
        if i % 20 == 0 {
            // Paced, so that loopback does not drop (the count is exact).
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    const N: u64 = 30;
    let (sent, _) = send_stream(to, N, Duration::from_millis(2), None, &[1], &|_| {});
    wait_for(
        "the last frame in the buffer",
        || r.latest().and_then(|f| f.info.tick) == Some(N),
        Duration::from_secs(20),
    );
    let stats = client.stop().expect("stop");
    assert_eq!(stats.packets, noise + sent.packets, "{stats:?}");
    assert!(stats.malformed >= sent.garbage, "{stats:?}");
    assert_eq!(
        r.latest().and_then(|f| f.info.tick),
        Some(N),
        "the stream after the noise was not shown: {stats:?}"
    );
}
