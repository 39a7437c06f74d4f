//! CSM's stream switch through the instance's input port (DESIGN.md
//! section 5, step 5; issue 12 items 6 and 7), end to end on loopback: an
//! in-process cloud logic server, real `app instance` processes, UDP
//! sockets standing in for the UE.
//!
//! - Two instances of one account (source primary, destination
//!   secondary): inputs 1..10 to the source, then 8..12 to the
//!   destination with SWITCH on the first. The destination becomes
//!   primary, the cloud applies 1..12 exactly once (8, 9, 10 are counted
//!   as duplicates), and the source's inputs are no longer applied.
//! - KEY_FRAME: the instance's next frame is an IDR (seen in its counter
//!   and in the RTP stream); a request with seq 0 forwards nothing; a
//!   burst of requests is rate-limited.
//! - Input from another address than the UE's is dropped unread.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::cloud::{fetch_stats, spawn, AccountStats, CloudConfig, CloudHandle, Stats};
use app::input::{Dir, Flags, Input};
use app::sync::Role;
use media::h264::is_idr;
use media::rtp::Depacketizer;

const ACCOUNT: &str = "ue1";
const TOKEN: &str = "secret";
const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `f` every 20 ms until it returns `Some`, or panics after
/// [`DEADLINE`] with `what` and the last state `f` described.
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(
                t0.elapsed() < DEADLINE,
                "timed out waiting for {what}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cloud() -> CloudHandle {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    spawn(
        CloudConfig {
            tick_hz: 100.0,
            accounts: BTreeMap::from([(ACCOUNT.to_string(), TOKEN.to_string())]),
            ..CloudConfig::default()
        },
        any,
        any,
    )
    .expect("cloud starts")
}

fn account(s: &Stats) -> AccountStats {
    s.accounts.get(ACCOUNT).cloned().unwrap_or_default()
}

fn role_of(s: &Stats, instance: &str) -> Option<Role> {
    account(s)
        .sessions
        .iter()
        .find(|x| x.instance == instance)
        .map(|x| x.role)
}

fn free_port(udp: bool) -> SocketAddr {
    if udp {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    }
    .expect("a free port")
}

/// `app instance` as a child process, killed on drop (also on panic).
struct Instance {
    child: Child,
    name: String,
    input: SocketAddr,
    metrics: SocketAddr,
    /// Where its RTP stream goes (the UE's socket).
    rtp: UdpSocket,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Starts an instance of the account and waits until it has logged in.
    fn start(cloud: &CloudHandle, name: &str, extra: &[&str]) -> Instance {
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("UE socket");
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let (input, metrics) = (free_port(true), free_port(false));
        let child = Command::new(env!("CARGO_BIN_EXE_app"))
            .arg("instance")
            .args(["--cloud", &cloud.sync_addr.to_string()])
            .args(["--account", ACCOUNT, "--token", TOKEN, "--name", name])
            .args(["--ue", &rtp.local_addr().expect("addr").to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--input-listen", &input.to_string()])
            .args(["--metrics", &metrics.to_string()])
            .args(["--width", "320", "--height", "180", "--fps", "30"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn app instance");
        let mut i = Instance {
            child,
            name: name.to_string(),
            input,
            metrics,
            rtp,
        };
        i.wait_metric("app_instance_ready_unix_ns", |v| v > 0);
        i
    }

    fn metrics_text(&mut self) -> Result<String, String> {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("instance {} exited: {st}", self.name);
        }
        let mut s = TcpStream::connect(self.metrics).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut r = String::new();
        s.read_to_string(&mut r).map_err(|e| e.to_string())?;
        Ok(r)
    }

    /// One series' value (`name{...} v`).
    fn metric(&mut self, name: &str) -> u64 {
        let text = self.metrics_text().expect("GET /metrics");
        parse_metric(&text, name).unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// Waits until `name` satisfies `ok`; returns its value.
    fn wait_metric(&mut self, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let what = format!("{} of {}", name, self.name);
        wait_until(&what, || {
            let text = self.metrics_text()?;
            match parse_metric(&text, name) {
                Some(v) if ok(v) => Ok(v),
                v => Err(format!("{v:?}")),
            }
        })
    }

    fn send(&self, seq: u64, flags: Flags) {
        let mut i = Input::new(Dir::ALL[(seq % 4) as usize], seq, seq * 1000);
        i.flags = flags;
        self.send_input(&i);
    }

    fn send_input(&self, i: &Input) {
        self.send_input_from("127.0.0.1", i);
    }

    /// Sends from `ip` (any 127/8 address is on loopback).
    fn send_input_from(&self, ip: &str, i: &Input) {
        let s = UdpSocket::bind((ip, 0)).expect("sender");
        s.send_to(&i.emit(), self.input).expect("send input");
    }
}

fn parse_metric(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("{name}{{");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn wait_stats(cloud: &CloudHandle, what: &str, ok: impl Fn(&Stats) -> bool) -> Stats {
    wait_until(what, || {
        let s = fetch_stats(cloud.metrics_addr).map_err(|e| e.to_string())?;
        if ok(&s) {
            Ok(s)
        } else {
            Err(format!("{:?}", account(&s)))
        }
    })
}

#[test]
fn switch_flag_makes_the_destination_primary_and_resends_apply_once() {
    let cloud = cloud();
    let mut src = Instance::start(&cloud, "source", &[]);
    let mut dst = Instance::start(&cloud, "destination", &[]);
    let s = fetch_stats(cloud.metrics_addr).expect("stats");
    assert_eq!(role_of(&s, "source"), Some(Role::Primary));
    assert_eq!(role_of(&s, "destination"), Some(Role::Secondary));

    // Inputs 1..10 reach the cloud through the source.
    for seq in 1..=10 {
        src.send(seq, Flags::NONE);
    }
    wait_stats(&cloud, "1..10 applied", |s| account(s).inputs_applied == 10);

    // The UE's stream switch: the first input to the destination carries
    // SWITCH, and the last inputs are resent (8, 9, 10 again), back to
    // back, before the cloud's role confirmation can have come back.
    dst.send(8, Flags::SWITCH);
    for seq in 9..=12 {
        dst.send(seq, Flags::NONE);
    }
    let s = wait_stats(&cloud, "1..12 applied", |s| {
        let a = account(s);
        a.inputs_applied == 12 && a.duplicates == 3
    });
    let a = account(&s);
    // 12 distinct seqs applied, the highest 12: exactly 1..12, once each.
    assert_eq!(a.last_seq, 12, "{a:?}");
    assert_eq!(a.writes_dropped, 0, "no write of the destination dropped");
    assert_eq!(s.inputs_applied, 12);
    assert_eq!(role_of(&s, "destination"), Some(Role::Primary));
    assert_eq!(role_of(&s, "source"), Some(Role::Secondary));
    assert_eq!(dst.metric("app_instance_switches_by_input_total"), 1);
    assert_eq!(dst.metric("app_instance_switches_total"), 1);
    assert_eq!(dst.metric("app_instance_inputs_forwarded_total"), 5);
    assert_eq!(dst.metric("app_instance_inputs_dropped_secondary_total"), 0);
    assert_eq!(src.metric("app_instance_switches_total"), 0);
    dst.wait_metric("app_instance_role", |v| v == 1);
    // The source learns that it is secondary.
    wait_until("the source to be secondary", || {
        let t = src.metrics_text()?;
        t.contains("role=\"secondary\"} 1").then_some(()).ok_or(t)
    });

    // A late input at the source is not applied: it drops it itself (the
    // cloud would drop it too). Input 14 through the destination is the
    // witness that 13 had its chance: applied are 1..12 and 14 only.
    src.send(13, Flags::NONE);
    src.wait_metric("app_instance_inputs_dropped_secondary_total", |v| v == 1);
    dst.send(14, Flags::NONE);
    let s = wait_stats(&cloud, "14 applied", |s| account(s).last_seq == 14);
    assert_eq!(account(&s).inputs_applied, 13, "13 was not applied");
    assert_eq!(src.metric("app_instance_inputs_forwarded_total"), 10);

    // SWITCH again while primary: no second signal; the input goes on.
    dst.send(15, Flags::SWITCH);
    let s = wait_stats(&cloud, "15 applied", |s| account(s).last_seq == 15);
    assert_eq!(account(&s).inputs_applied, 14);
    assert_eq!(dst.metric("app_instance_switches_by_input_total"), 1);
    assert_eq!(dst.metric("app_instance_switches_total"), 1);
    assert_eq!(role_of(&s, "destination"), Some(Role::Primary));
    assert_eq!(account(&s).writes_dropped, 0);
}

/// Reads the instance's RTP stream until `n` access units have arrived
/// that satisfy `want`; returns how many did not (in between).
fn access_units(
    i: &Instance,
    dz: &mut Depacketizer,
    n: usize,
    want: impl Fn(bool) -> bool,
) -> usize {
    let (t0, mut got, mut others) = (Instant::now(), 0, 0);
    let mut buf = vec![0u8; 2048];
    while got < n {
        assert!(t0.elapsed() < DEADLINE, "{got} of {n} access units");
        let Ok(len) = i.rtp.recv(&mut buf) else {
            continue;
        };
        if let Some(au) = dz.push(&buf[..len]).expect("valid RTP") {
            if want(is_idr(&au.annexb)) {
                got += 1;
            } else {
                others += 1;
            }
        }
    }
    others
}

#[test]
fn input_from_another_address_than_the_ues_is_dropped() {
    let cloud = cloud();
    let mut src = Instance::start(&cloud, "source", &[]);
    let mut dst = Instance::start(&cloud, "destination", &[]);
    // Someone else (127.0.0.2, not the UE's 127.0.0.1) sends the switching
    // signal with an input to the secondary: dropped unread.
    let mut i = Input::new(Dir::Up, 1, 1000);
    i.flags = Flags::SWITCH;
    dst.send_input_from("127.0.0.2", &i);
    dst.wait_metric("app_instance_inputs_foreign_total", |v| v == 1);
    assert_eq!(dst.metric("app_instance_inputs_received_total"), 0);
    assert_eq!(dst.metric("app_instance_switches_total"), 0);
    // The UE's own input through the source is applied; the roles stand.
    src.send(1, Flags::NONE);
    let s = wait_stats(&cloud, "1 applied", |s| account(s).inputs_applied == 1);
    assert_eq!(role_of(&s, "source"), Some(Role::Primary));
    assert_eq!(role_of(&s, "destination"), Some(Role::Secondary));
    assert_eq!(src.metric("app_instance_inputs_foreign_total"), 0);
}

#[test]
fn key_frame_request_makes_the_next_frame_an_idr_and_forwards_nothing() {
    let cloud = cloud();
    // Key frames only at the start and on request.
    let mut inst = Instance::start(&cloud, "edge", &["--idr-interval", "0"]);
    let mut dz = Depacketizer::new();
    // The stream has begun with its key frame and goes on with P frames.
    access_units(&inst, &mut dz, 10, |idr| !idr);
    assert_eq!(inst.metric("app_instance_idr_frames_total"), 1);

    inst.send_input(&Input::key_frame_request(1));
    // Frames encoded before the request may still be on the way; the
    // next IDR is the requested one (no other is due).
    access_units(&inst, &mut dz, 1, |idr| idr);
    inst.wait_metric("app_instance_idr_frames_total", |v| v == 2);
    assert_eq!(inst.metric("app_instance_key_frame_requests_total"), 1);
    // The request was granted before now.
    let granted_by = Instant::now();

    // Input 1 after it: the request (seq 0) was handled first and sent
    // nothing to the cloud (which would count a seq 0 write as invalid).
    inst.send(1, Flags::NONE);
    let s = wait_stats(&cloud, "input 1 applied", |s| account(s).last_seq == 1);
    assert_eq!(s.inputs_applied, 1);
    assert_eq!(s.writes_dropped.values().sum::<u64>(), 0, "{s:?}");
    assert_eq!(inst.metric("app_instance_inputs_received_total"), 1);
    assert_eq!(inst.metric("app_instance_inputs_forwarded_total"), 1);

    // A burst of requests does not turn the stream into key frames. It
    // starts once the rate limit allows another (not a synchronisation:
    // the limit is about time passing), so its first request is granted.
    let gap = app::instance::KEY_FRAME_MIN_GAP;
    std::thread::sleep((granted_by + gap).saturating_duration_since(Instant::now()));
    for _ in 0..5 {
        inst.send_input(&Input::key_frame_request(2));
    }
    let limited = wait_until("the burst counted", || {
        let granted = inst.metric("app_instance_key_frame_requests_total");
        let limited = inst.metric("app_instance_key_frame_requests_limited_total");
        if granted + limited == 6 {
            Ok(limited)
        } else {
            Err(format!("{granted} granted, {limited} limited"))
        }
    });
    assert!(limited >= 1, "a burst of 5 within 100 ms: some limited");
    let granted = 6 - limited;
    assert!(granted >= 2, "the burst's first request is granted");
    // At least one more IDR, and at most one per granted request (plus
    // the first frame's).
    let idrs = inst.wait_metric("app_instance_idr_frames_total", |v| v >= 3);
    assert!(idrs <= 1 + granted, "{idrs} IDRs, {granted} granted");
}
