//! `app instance` end to end on loopback: an in-process logic server, the
//! real binary, a UDP receiver standing in for the UE. Checks that the
//! stream decodes, that an input sent to the instance comes back in the
//! frames' metadata (input -> write -> logic server -> delta -> world ->
//! frame), that malformed inputs are counted, that `POST /switch` answers,
//! and that SIGTERM ends the instance cleanly.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use app::cloud::{spawn, CloudConfig};
use app::game::Dir;
use app::input::Input;
use media::h264::Decoder;
use media::rtp::Depacketizer;
use testkit::KillOnDrop;

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn http(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut r = String::new();
    s.read_to_string(&mut r).expect("read");
    r
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn instance_streams_forwards_inputs_and_stops_on_sigterm() {
    let mut accounts = BTreeMap::new();
    accounts.insert("ue1".to_string(), "secret".to_string());
    let cloud = spawn(
        CloudConfig {
            accounts,
            ..CloudConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("cloud");
    let ue = UdpSocket::bind("127.0.0.1:0").expect("ue socket");
    ue.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let input_addr = free_udp();
    let metrics = free_tcp();
    let sdp = std::env::temp_dir().join(format!("video-instance-{}.sdp", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_app"))
        .arg("instance")
        .args(["--cloud", &cloud.sync_addr.to_string()])
        .args([
            "--account",
            "ue1",
            "--token",
            "secret",
            "--name",
            "edge-test",
        ])
        .args(["--ue", &ue.local_addr().expect("addr").to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--input-listen", &input_addr.to_string()])
        .args(["--metrics", &metrics.to_string()])
        .args([
            "--width",
            "320",
            "--height",
            "180",
            "--fps",
            "30",
            "--bitrate",
            "500000",
        ])
        .arg("--sdp")
        .arg(&sdp)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn app instance");
    let mut inst = KillOnDrop(child);

    let mut dz = Depacketizer::new();
    let mut dec = Decoder::new().expect("decoder");
    let mut decoded = 0;
    let mut last_tick = 0;
    let mut seen_input = false;
    let mut sent_input = false;
    let mut buf = vec![0u8; 2048];
    let t0 = Instant::now();
    let input_sock = UdpSocket::bind("127.0.0.1:0").expect("input sender");
    while !(seen_input && decoded >= 10) {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "decoded {decoded}, input seen {seen_input}"
        );
        if let Ok(Some(st)) = inst.0.try_wait() {
            panic!("instance exited early: {st}");
        }
        let Ok(n) = ue.recv(&mut buf) else { continue };
        if let Some(au) = dz.push(&buf[..n]).expect("the instance sends valid RTP") {
            let meta = au.meta.expect("frame metadata");
            assert!(meta.tick >= last_tick, "ticks never go back");
            last_tick = meta.tick;
            if meta.input_seq == 1 {
                seen_input = true;
            }
            if let Ok(Some(f)) = dec.decode(&au.annexb) {
                assert_eq!((f.width, f.height), (320, 180));
                decoded += 1;
            }
        }
        if decoded >= 3 && !sent_input {
            // One malformed datagram, then input 1.
            input_sock
                .send_to(b"not an input", input_addr)
                .expect("send");
            let i = Input::new(Dir::Down, 1, 1);
            input_sock.send_to(&i.emit(), input_addr).expect("send");
            sent_input = true;
        }
    }
    let sdp_text = std::fs::read_to_string(&sdp).expect("sdp written");
    assert!(sdp_text.contains("a=rtpmap:96 H264/90000"));
    let _ = std::fs::remove_file(&sdp);

    let m = http(metrics, "GET", "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert_eq!(metric(&m, "app_instance_inputs_forwarded_total"), 1, "{m}");
    assert_eq!(metric(&m, "app_instance_inputs_malformed_total"), 1, "{m}");
    assert!(metric(&m, "app_instance_frames_sent_total") >= 10);
    assert!(m.contains("role=\"primary\"} 1"), "{m}");
    let s = http(metrics, "POST", "/switch");
    assert!(s.starts_with("HTTP/1.1 200"), "{s}");
    assert!(http(metrics, "GET", "/nope").starts_with("HTTP/1.1 404"));

    // SIGTERM: clean exit (logout) within a few seconds.
    let st = inst.terminate(Duration::from_secs(10));
    assert!(st.is_some(), "no exit within 10 s of SIGTERM");
    assert!(st.is_some_and(|s| s.success()), "exit status {st:?}");
    cloud.stop().expect("cloud stops");
}
