//! The streaming client's parts without a video stream: the one-frame
//! buffer, the display sink, the Y4M file, the latency computation and the
//! input bot. Loopback only, ephemeral ports.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ue::stream::bot::reverse;
use ue::stream::report::{frame_intervals, input_latencies, percentile, PlayReport, Summary};
use ue::stream::y4m::{read_y4m, Y4mWriter};
use ue::stream::{
    one_frame_buffer, BotConfig, Chief, DisplayRecord, DisplaySink, FrameInfo, InputBot, Policy,
    SentInput, StreamStats, Wake,
};
use wire::input::Dir;
use wire::input::Input;

fn info(source: &str, seq: u64) -> FrameInfo {
    FrameInfo {
        source: source.into(),
        seq,
        rtp_ts: (seq * 1500) as u32,
        tick: Some(seq * 3),
        input_seq: Some(seq / 2),
        rendered_ns: Some(1_000 + seq),
        recv_ns: 2_000 + seq,
        decoded_ns: 3_000 + seq,
    }
}

/// A small frame whose pixels tell `n`.
fn frame(n: u64) -> media::Frame {
    let mut f = media::Frame::new(16, 8);
    f.y.fill((n % 251) as u8);
    f.u.fill((n % 13) as u8);
    f.v.fill((n % 7) as u8);
    f
}

#[test]
fn buffer_holds_only_the_latest_frame() {
    let (mut w, r) = one_frame_buffer("edge1", None);
    assert_eq!(r.generation(), 0);
    assert!(r.latest().is_none());
    assert_eq!(w.publish(info("edge1", 1), frame(1)), 1);
    let first = r.latest().expect("a frame after publish");
    assert_eq!((first.generation, first.info.seq), (1, 1));
    let weak = Arc::downgrade(&first);
    drop(first);
    for n in 2..=50 {
        w.publish(info("edge1", n), frame(n));
    }
    // The first frame is gone: the buffer kept only the latest.
    assert!(weak.upgrade().is_none(), "an old frame is still alive");
    let l = r.latest().expect("latest");
    assert_eq!(l.generation, 50);
    assert_eq!(l.info, info("edge1", 50));
    assert_eq!(l.frame, frame(50));
    drop(l);
    // Reading does not clear.
    assert_eq!(r.latest().expect("still there").generation, 50);
    assert!(r.newer_than(50).is_none());
    assert_eq!(r.newer_than(49).expect("newer").generation, 50);
    // A frame a reader still holds survives an overwrite, then goes.
    let held = r.latest().expect("latest");
    let weak = Arc::downgrade(&held);
    w.publish(info("edge1", 51), frame(51));
    assert_eq!(weak.upgrade().map(|f| f.generation), Some(50));
    drop(held);
    assert!(weak.upgrade().is_none());
}

#[test]
fn slow_reader_sees_only_latest_generations() {
    let wake = Wake::new();
    let (mut w, r) = one_frame_buffer("edge1", Some(wake.clone()));
    let done = Arc::new(AtomicBool::new(false));
    const N: u64 = 20_000;
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || {
            for n in 1..=N {
                w.publish(info("edge1", n), frame(n));
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut seen = Vec::new();
    let mut last = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        if let Some(f) = r.newer_than(last) {
            // Pixels, metadata and generation belong together.
            assert_eq!(f.info.seq, f.generation);
            assert_eq!(f.frame, frame(f.generation));
            assert!(f.generation > last);
            last = f.generation;
            seen.push(last);
        }
        if finished && last == N {
            break;
        }
        // pacing, not synchronisation: a slow reader, on purpose
        std::thread::sleep(Duration::from_micros(200));
    }
    writer.join().expect("writer");
    assert_eq!(*seen.last().expect("saw frames"), N);
    assert!(
        (seen.len() as u64) < N,
        "a slow reader saw all {N} frames: the buffer queued them"
    );
    assert!(wake.count() >= N, "every publish notifies");
}

#[test]
fn display_shows_the_chief_and_follows_a_switch() {
    let (mut wa, ra) = one_frame_buffer("a", None);
    let (mut wb, rb) = one_frame_buffer("b", None);
    let chief = Chief::new("a");
    let mut sink = DisplaySink::new(vec![ra, rb], chief.clone(), None);
    assert!(sink.poll(10).expect("poll").is_none(), "nothing yet");
    wb.publish(info("b", 1), frame(100));
    assert!(sink.poll(11).expect("poll").is_none(), "b is not the chief");
    wa.publish(info("a", 1), frame(1));
    wa.publish(info("a", 2), frame(2));
    let r = sink.poll(12).expect("poll").expect("a frame").clone();
    assert_eq!((r.source.as_str(), r.seq, r.display_ns), ("a", 2, 12));
    assert_eq!(r.tick, Some(6));
    assert_eq!(r.input_seq, Some(1));
    assert_eq!(r.rendered_ns, Some(1_002));
    assert!(
        sink.poll(13).expect("poll").is_none(),
        "same generation twice"
    );
    chief.set("b");
    let r = sink.poll(14).expect("poll").expect("b's frame").clone();
    assert_eq!((r.source.as_str(), r.seq), ("b", 1));
    wa.publish(info("a", 3), frame(3));
    assert!(sink.poll(15).expect("poll").is_none());
    chief.set("a");
    assert_eq!(sink.poll(16).expect("poll").expect("a").seq, 3);
    let seqs: Vec<(String, u64)> = sink
        .records()
        .iter()
        .map(|r| (r.source.clone(), r.seq))
        .collect();
    assert_eq!(
        seqs,
        vec![("a".into(), 2), ("b".into(), 1), ("a".into(), 3)]
    );
    let out = sink.finish().expect("finish");
    assert_eq!(out.records.len(), 3);
}

#[test]
fn display_thread_wakes_on_publish_and_writes_video() {
    testkit::require_tool("ffmpeg");
    let dir = std::env::temp_dir().join(format!("ue-stream-parts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("shown.y4m");
    let wake = Wake::new();
    let (mut w, r) = one_frame_buffer("a", Some(wake.clone()));
    let sink = DisplaySink::new(vec![r], Chief::new("a"), Some(wake))
        .with_video(&path, 30)
        .expect("video file");
    let h = sink.spawn().expect("spawn");
    let mut published = Vec::new();
    for n in 1..=20u64 {
        w.publish(info("a", n), frame(n));
        published.push(n);
        // Wait for the sink to take it (it is woken by the publish).
        assert!(
            testkit::wait_until(Duration::from_secs(10), || h.displayed() >= n),
            "frame {n} not displayed within 10 s"
        );
    }
    let out = h.stop().expect("stop");
    let seqs: Vec<u64> = out.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, published, "the display missed frames");
    assert_eq!(out.video_frames, 20);
    let file = std::fs::File::open(&path).expect("open video");
    let (hdr, frames) = read_y4m(std::io::BufReader::new(file)).expect("own reader");
    assert_eq!((hdr.width, hdr.height, hdr.fps), (16, 8, (30, 1)));
    let want: Vec<media::Frame> = (1..=20).map(frame).collect();
    assert_eq!(frames, want);
    check_with_ffmpeg(&path, &want);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// ffmpeg decodes the file back to the same raw planes (the test fails when
/// ffmpeg is missing: `./minedge test` installs it).
fn check_with_ffmpeg(path: &std::path::Path, want: &[media::Frame]) {
    testkit::require_tool("ffmpeg");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: Vec<u8> = want
        .iter()
        .flat_map(|f| f.y.iter().chain(&f.u).chain(&f.v).copied())
        .collect();
    assert_eq!(out.stdout.len(), raw.len(), "ffmpeg frame count differs");
    assert!(out.stdout == raw, "ffmpeg decoded other pixels");
}

#[test]
fn y4m_skips_a_frame_of_another_size() {
    let mut w = Y4mWriter::new(Vec::new(), 60);
    assert!(w.write(&frame(1)).expect("write"));
    assert!(!w.write(&media::Frame::new(32, 8)).expect("write"));
    assert!(w.write(&frame(2)).expect("write"));
    assert_eq!((w.written(), w.skipped()), (2, 1));
    let bytes = w.finish().expect("finish");
    let (_, frames) = read_y4m(&bytes[..]).expect("read");
    assert_eq!(frames, vec![frame(1), frame(2)]);
    // A truncated file is an error, not a panic.
    assert!(read_y4m(&bytes[..bytes.len() - 1]).is_err());
    assert!(read_y4m(&b"garbage\n"[..]).is_err());
}

fn rec(display_ns: u64, input_seq: Option<u64>) -> DisplayRecord {
    DisplayRecord {
        display_ns,
        source: "a".into(),
        input_seq,
        ..Default::default()
    }
}

fn sent(seq: u64, sent_ns: u64) -> SentInput {
    SentInput {
        seq,
        sent_ns,
        dir: 0,
        to: "127.0.0.1:9".parse().expect("addr"),
    }
}

#[test]
fn latency_is_first_display_showing_the_input() {
    let ms = 1_000_000;
    let records = vec![
        rec(100 * ms, Some(0)),
        rec(116 * ms, None), // carries no input seq: shows nothing
        rec(133 * ms, Some(1)),
        rec(150 * ms, Some(1)),
        rec(166 * ms, Some(4)), // inputs 2, 3 and 4 at once
        rec(183 * ms, Some(3)), // older state (e.g. another source): not first
        rec(200 * ms, Some(5)),
    ];
    let inputs = vec![
        sent(1, 90 * ms),
        sent(2, 110 * ms),
        sent(3, 120 * ms),
        sent(4, 140 * ms),
        sent(5, 160 * ms),
        sent(6, 190 * ms), // never shown
    ];
    let lat = input_latencies(&records, &inputs);
    assert_eq!(
        lat,
        vec![
            (1, 43 * ms as i64),
            (2, 56 * ms as i64),
            (3, 46 * ms as i64),
            (4, 26 * ms as i64),
            (5, 40 * ms as i64),
        ]
    );
    assert_eq!(
        frame_intervals(&records[..3]),
        vec![16 * ms as i64, 17 * ms as i64]
    );
    let stats = StreamStats {
        name: "a".into(),
        packets: 101,
        wire_bytes: 1_250_000,
        first_ns: 0,
        last_ns: 1_000_000_000,
        ..Default::default()
    };
    let r = PlayReport::compute(2.0, &records, &inputs, 0, &[stats], None);
    assert_eq!(r.frames_displayed, 7);
    assert_eq!((r.inputs_sent, r.inputs_unmatched), (6, 1));
    // Input 1 went before the first frame was displayed: not in the summary.
    assert_eq!(r.inputs_before_video, 1);
    assert_eq!(r.latency_ms.count, 4);
    assert_eq!(r.latency_ms.p50, Some(40.0));
    assert_eq!(r.latency_ms.max, Some(56.0));
    assert_eq!(r.streams[0].wire_mbit_s, 10.0);
    assert_eq!(r.streams[0].displayed, 7);
    assert_eq!(r.render_to_display_ms.count, 0, "no render times here");
    let table = r.table();
    eprintln!("{table}");
    assert!(table.contains("input->display"));
    let j = serde_json::to_value(&r).expect("json");
    assert_eq!(j["streams"][0]["packets"], 101);
    assert_eq!(j["latency_ms"]["p99"], 56.0);
}

#[test]
fn percentiles_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), Some(50.0));
    assert_eq!(percentile(&v, 99.0), Some(99.0));
    assert_eq!(percentile(&v, 100.0), Some(100.0));
    assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(Summary::of(vec![3.0, 1.0, 2.0]).p50, Some(2.0));
}

#[test]
fn policy_is_seeded_and_never_reverses() {
    let mut a = Policy::new(42, Some(Dir::Right));
    let mut b = Policy::new(42, Some(Dir::Right));
    let mut prev = Dir::Right;
    let mut turns = 0;
    for _ in 0..10_000 {
        let d = a.next_dir();
        assert_eq!(d, b.next_dir(), "same seed, same headings");
        assert_ne!(d, reverse(prev), "reversed into its neck");
        if d != prev {
            turns += 1;
        }
        prev = d;
    }
    assert!(turns > 5_000, "the bot hardly turns ({turns}/10000)");
    let other: Vec<Dir> = {
        let mut c = Policy::new(43, Some(Dir::Right));
        (0..64).map(|_| c.next_dir()).collect()
    };
    let mine: Vec<Dir> = {
        let mut c = Policy::new(42, Some(Dir::Right));
        (0..64).map(|_| c.next_dir()).collect()
    };
    assert_ne!(other, mine, "the seed changes nothing");
}

fn recv_inputs(sock: &UdpSocket, until: Instant) -> Vec<Input> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(Input::parse(&buf[..n]).expect("the bot's datagram parses"));
        }
    }
    got
}

#[test]
fn bot_sends_numbered_inputs_and_follows_the_target() {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    let a_addr: SocketAddr = a.local_addr().expect("addr");
    let b_addr: SocketAddr = b.local_addr().expect("addr");
    let bot = InputBot::spawn(BotConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        to: a_addr,
        rate: 200.0,
        seed: 7,
        initial: Some(Dir::Right),
    })
    .expect("bot");
    let from = bot.local_addr();
    let got_a = recv_inputs(&a, Instant::now() + Duration::from_millis(300));
    bot.target().set(b_addr);
    let got_b = recv_inputs(&b, Instant::now() + Duration::from_millis(300));
    let out = bot.stop().expect("stop");
    // Late datagrams to a after the switch.
    let late_a = recv_inputs(&a, Instant::now() + Duration::from_millis(50));
    let late_b = recv_inputs(&b, Instant::now() + Duration::from_millis(50));
    assert!(from.ip().is_loopback());
    let all: Vec<Input> = got_a
        .iter()
        .chain(&late_a)
        .chain(&got_b)
        .chain(&late_b)
        .copied()
        .collect();
    assert!(
        got_a.len() > 20 && got_b.len() > 20,
        "{} / {}",
        got_a.len(),
        got_b.len()
    );
    let seqs: Vec<u64> = all.iter().map(|i| i.seq).collect();
    let want: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(seqs, want, "seqs from 1, consecutive, across the switch");
    assert_eq!(out.sent.len(), all.len(), "every sent input arrived");
    for (i, s) in all.iter().zip(&out.sent) {
        assert_eq!((i.seq, i.sent_ns, i.dir.code()), (s.seq, s.sent_ns, s.dir));
    }
    let na = got_a.len() + late_a.len();
    assert!(out.sent[..na].iter().all(|s| s.to == a_addr));
    assert!(out.sent[na..].iter().all(|s| s.to == b_addr));
    let mut prev = Dir::Right;
    for i in &all {
        assert_ne!(i.dir, reverse(prev), "input {} reverses", i.seq);
        prev = i.dir;
    }
    // sent_ns is CLOCK_REALTIME now-ish and increasing.
    let now = ue::stream::realtime_ns();
    assert!(all.windows(2).all(|w| w[0].sent_ns < w[1].sent_ns));
    assert!(now - all[0].sent_ns < 10_000_000_000);
}

/// Waits until `f` gives a value (at most 5 s).
fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn bot_counts_inputs_sent_and_resent_per_switch() {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    let b_addr: SocketAddr = b.local_addr().expect("addr");
    let from = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind from"));
    let bot = InputBot::spawn(BotConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        to: a.local_addr().expect("addr"),
        rate: 50.0,
        seed: 3,
        initial: None,
    })
    .expect("bot");
    wait("5 inputs", || (bot.sent() >= 5).then_some(()));
    let g1 = bot.target().switch_to(b_addr, from.clone(), 3);
    let n1 = wait("the first switch taken up", || bot.resent_at(g1));
    assert_eq!(n1, 3, "3 of the inputs already sent go again");
    // At most as many as were sent: a resend of 1000 resends them all.
    let g2 = bot.target().switch_to(b_addr, from, 1000);
    assert_ne!(g1, g2);
    let n2 = wait("the second switch taken up", || bot.resent_at(g2));
    let got = recv_inputs(&b, Instant::now() + Duration::from_millis(100));
    let sent_now = bot.sent();
    let out = bot.stop().expect("stop");
    // The datagrams at b: 3 resent, new ones, then n2 resent, new ones;
    // SWITCH on the first of each switch only.
    assert_eq!(
        got.iter()
            .filter(|i| i.flags.contains(wire::input::Flags::SWITCH))
            .count(),
        2
    );
    assert!(got[0].flags.contains(wire::input::Flags::SWITCH));
    let first_new = got[3].seq;
    assert_eq!(
        got[..4].iter().map(|i| i.seq).collect::<Vec<_>>(),
        [first_new - 3, first_new - 2, first_new - 1, first_new]
    );
    // The second switch resent every input sent before it: seqs 1..=n2.
    let j = got
        .iter()
        .rposition(|i| i.flags.contains(wire::input::Flags::SWITCH))
        .expect("the second SWITCH");
    let again: Vec<u64> = got[j..].iter().take(n2 as usize).map(|i| i.seq).collect();
    assert_eq!(again, (1..=n2).collect::<Vec<_>>());
    assert!(n2 >= first_new, "every input sent before the second switch");
    assert_eq!(out.resent, n1 + n2);
    assert_eq!(out.resent_at, [(g1, n1), (g2, n2)]);
    // The count of inputs sent is that of distinct seqs (resends apart).
    let max_seq = out.sent.last().map_or(0, |s| s.seq);
    assert_eq!(out.sent.len() as u64, max_seq);
    assert!(
        sent_now <= max_seq && max_seq - sent_now <= 1,
        "{sent_now} vs {max_seq}"
    );
}

#[test]
fn bot_refuses_a_bad_rate() {
    let r = InputBot::spawn(BotConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        to: "127.0.0.1:9".parse().expect("addr"),
        rate: 0.0,
        seed: 1,
        initial: None,
    });
    assert!(r.is_err());
}

proptest::proptest! {
    /// For every input shown, its latency comes from the first displayed
    /// frame whose input_seq reaches it; unmatched inputs have none.
    #[test]
    fn latency_matches_a_linear_scan(
        shown in proptest::collection::vec((1u64..50, proptest::option::of(0u64..40)), 0..60),
        n_inputs in 0u64..45,
    ) {
        let mut t = 0;
        let records: Vec<DisplayRecord> = shown
            .iter()
            .map(|&(dt, q)| { t += dt; rec(t, q) })
            .collect();
        let inputs: Vec<SentInput> = (1..=n_inputs).map(|k| sent(k, k * 3)).collect();
        let lat = input_latencies(&records, &inputs);
        let mut want = Vec::new();
        for s in &inputs {
            if let Some(r) = records.iter().find(|r| r.input_seq.is_some_and(|q| q >= s.seq)) {
                want.push((s.seq, r.display_ns as i64 - s.sent_ns as i64));
            }
        }
        proptest::prop_assert_eq!(lat, want);
    }

    /// The Y4M reader never panics on arbitrary bytes after a header.
    #[test]
    fn y4m_reader_never_panics(
        header in "YUV4MPEG2( [WHFCAIX][0-9:a-z]{0,6}){0,6}\n",
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        let mut b = header.into_bytes();
        b.extend_from_slice(&body);
        let _ = read_y4m(&b[..]);
    }
}
