//! A fake `app instance` for the agent's tests (`app/tests/agent_api.rs`
//! runs it through a script given as the agent's `--app-bin`): it checks
//! its arguments, writes the SDP file, and answers the metrics endpoint
//! with a ready time and, FAKE_FIRST_FRAME_MS later, a first-frame time.
//! `FAKE_MODE`: `crash` (exits 3 at once), `hang` (never gets ready),
//! `noterm` (ignores SIGTERM), anything else: behaves.

use std::fs;
use std::io::Read;
use std::time::Duration;

/// When the fake reports its first frame, after ready (the agent tests
/// check this figure).
const FAKE_FIRST_FRAME_MS: u64 = 150;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = std::env::var("FAKE_MODE").unwrap_or_default();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    println!("fake instance args: {}", args.join(" "));
    let flag = |f: &str| {
        args.iter()
            .position(|a| *a == f)
            .and_then(|i| args.get(i + 1))
            .map(|s| s.to_string())
            .unwrap_or_else(|| panic!("no {f} in {args:?}"))
    };
    assert_eq!(args.first(), Some(&"instance"));
    match mode.as_str() {
        "crash" => {
            eprintln!("fake: cannot log in to the cloud at {}", flag("--cloud"));
            std::process::exit(3);
        }
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        "noterm" => {
            // SAFETY: setting a signal disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        }
        _ => {}
    }
    let name = flag("--name");
    let listener = std::net::TcpListener::bind(flag("--metrics")).expect("bind metrics");
    // Ready now; the "first frame" goes FAKE_FIRST_FRAME_MS later (as the
    // real instance reports them: Unix ns, 0 before).
    let ready_ns = app::instance::realtime_ns();
    let first_frame_ns = ready_ns + FAKE_FIRST_FRAME_MS * 1_000_000;
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake {name}\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video {} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
        flag("--ue").rsplit(':').next().expect("port")
    );
    fs::write(flag("--sdp"), sdp).expect("write sdp");
    eprintln!("fake: ready");
    for s in listener.incoming() {
        let Ok(mut s) = s else { continue };
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]);
        let body = if req.starts_with("POST /switch") {
            format!("{{\"switched\":true,\"name\":\"{name}\"}}")
        } else {
            let sent = app::instance::realtime_ns() >= first_frame_ns;
            format!(
                "fake_frames_total 0\napp_instance_ready_unix_ns{{instance=\"{name}\"}} {ready_ns}\n\
                 app_instance_first_frame_unix_ns{{instance=\"{name}\"}} {}\n",
                if sent { first_frame_ns } else { 0 }
            )
        };
        let _ = std::io::Write::write_all(
            &mut s,
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
}
