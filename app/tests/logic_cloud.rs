//! The cloud logic server over real TCP on 127.0.0.1 (ephemeral ports), run
//! in-process with `app::cloud::spawn`, driven by the blocking `SyncClient`
//! the instances use, and observed through `/stats` and `/metrics`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use app::cloud::{spawn, CloudConfig, CloudHandle, Stats};
use app::game::{Delta, Dir, Event, World};
use app::input::Input;
use app::sync::{encode, ClientMsg, FrameDecoder, LoginOk, Role, ServerMsg, SyncClient, SyncError};

fn server(tick_hz: f64) -> CloudHandle {
    let config = CloudConfig {
        tick_hz,
        accounts: BTreeMap::from([
            ("alice".to_string(), "a-token".to_string()),
            ("bob".to_string(), "b-token".to_string()),
            ("watch".to_string(), "w-token".to_string()),
        ]),
        ..CloudConfig::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    spawn(config, any, any).expect("server starts")
}

fn stats(h: &CloudHandle) -> Stats {
    app::cloud::fetch_stats(h.metrics_addr).expect("GET /stats")
}

fn metrics(h: &CloudHandle) -> String {
    let r = ctlhttp::blocking::Client::new(std::time::Duration::from_secs(10))
        .get(&format!("http://{}/metrics", h.metrics_addr))
        .expect("GET /metrics");
    assert_eq!(r.status, 200, "GET /metrics");
    r.text()
}

fn wait_stats(h: &CloudHandle, what: &str, f: impl Fn(&Stats) -> bool) -> Stats {
    let mut s = stats(h);
    let reached = testkit::wait_until(Duration::from_secs(10), || {
        s = stats(h);
        f(&s)
    });
    assert!(reached, "timed out waiting for {what}: {s:#?}");
    s
}

/// A session and its copy of the world, kept from the snapshot and deltas.
struct Session {
    c: SyncClient,
    ok: LoginOk,
    world: World,
    deltas: Vec<Delta>,
    others: Vec<ServerMsg>,
}

impl Session {
    fn login(h: &CloudHandle, account: &str, token: &str, instance: &str) -> Session {
        let (c, ok) = SyncClient::connect(h.sync_addr, account, token, instance).expect("login");
        c.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Session {
            world: ok.snapshot.clone(),
            c,
            ok,
            deltas: Vec::new(),
            others: Vec::new(),
        }
    }

    /// Receives until `f` holds for a received message (or panics after 10 s).
    fn until(&mut self, what: &str, mut f: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            match self.c.recv() {
                Ok(m) => {
                    match &m {
                        ServerMsg::Delta(d) => {
                            self.world.apply(d).expect("deltas arrive in order");
                            self.deltas.push(d.clone());
                        }
                        other => self.others.push(other.clone()),
                    }
                    if f(&m) {
                        return m;
                    }
                }
                Err(SyncError::Timeout) => {}
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }

    /// Receives until the world reaches `tick`.
    fn until_tick(&mut self, tick: u64) {
        if self.world.tick >= tick {
            return;
        }
        self.until(
            &format!("tick {tick}"),
            |m| matches!(m, ServerMsg::Delta(d) if d.tick >= tick),
        );
    }

    fn write(&self, seq: u64, dir: Dir) {
        self.c
            .writer()
            .write(&Input::new(dir, seq, seq * 1000))
            .expect("write");
    }
}

fn turns(deltas: &[Delta], player: &str) -> Vec<u64> {
    deltas
        .iter()
        .flat_map(|d| d.events.iter())
        .filter_map(|e| match e {
            Event::Turn { player: p, seq, .. } if p == player => Some(*seq),
            _ => None,
        })
        .collect()
}

#[test]
fn two_sessions_of_one_account() {
    let h = server(50.0);
    let mut a1 = Session::login(&h, "alice", "a-token", "edge1");
    assert_eq!(a1.ok.role, Role::Primary);
    assert_eq!((a1.world.width, a1.world.height), (64, 36));
    let mut a2 = Session::login(&h, "alice", "a-token", "edge2");
    assert_eq!(a2.ok.role, Role::Secondary);
    assert_ne!(a1.ok.session, a2.ok.session);

    // Both follow the same world: identical deltas for the same ticks, and
    // the same world at the same tick.
    let t = a2.world.tick + 5;
    a1.until_tick(t);
    a2.until_tick(t);
    assert!(
        a1.world.snakes.contains_key("alice"),
        "first login joined the player"
    );
    let common: Vec<&Delta> = a1
        .deltas
        .iter()
        .filter(|d| d.tick > a2.ok.snapshot.tick && d.tick <= t)
        .collect();
    let theirs: Vec<&Delta> = a2.deltas.iter().filter(|d| d.tick <= t).collect();
    assert_eq!(common, theirs);
    assert!(!theirs.is_empty());
    let t2 = t + 3;
    a1.until_tick(t2);
    a2.until_tick(t2);
    assert_eq!(a1.world.tick, t2);
    assert_eq!(a1.world, a2.world, "same world at the same tick");

    // The secondary's writes are dropped and counted.
    a2.write(1, Dir::Up);
    let m = a2.until("drop notice", |m| {
        matches!(m, ServerMsg::WriteDropped { .. })
    });
    assert_eq!(
        m,
        ServerMsg::WriteDropped {
            seq: 1,
            reason: "secondary".into()
        }
    );
    let s = wait_stats(&h, "secondary drop", |s| {
        s.accounts["alice"].writes_dropped == 1
    });
    assert_eq!(s.accounts["alice"].inputs_applied, 0);
    assert_eq!(s.writes_dropped["secondary"], 1);
    let roles: Vec<Role> = s.accounts["alice"]
        .sessions
        .iter()
        .map(|x| x.role)
        .collect();
    assert_eq!(roles, vec![Role::Primary, Role::Secondary]);

    // The primary's write is applied: a Turn event with its seq in the
    // deltas both sessions receive.
    a1.write(2, Dir::Left);
    a1.until("turn 2 (a1)", |m| matches!(m, ServerMsg::Delta(d) if d.events.iter().any(|e| matches!(e, Event::Turn { seq: 2, .. }))));
    a2.until("turn 2 (a2)", |m| matches!(m, ServerMsg::Delta(d) if d.events.iter().any(|e| matches!(e, Event::Turn { seq: 2, .. }))));
    assert_eq!(a2.world.snakes["alice"].last_input, 2);

    // Switch: the sender becomes primary, the old primary secondary; both
    // are told.
    a2.c.writer().switch().expect("switch");
    assert_eq!(
        a2.until("role change (a2)", |m| matches!(m, ServerMsg::Role { .. })),
        ServerMsg::Role {
            role: Role::Primary
        }
    );
    assert_eq!(
        a1.until("role change (a1)", |m| matches!(m, ServerMsg::Role { .. })),
        ServerMsg::Role {
            role: Role::Secondary
        }
    );
    a1.write(3, Dir::Down);
    a1.until("a1 drop", |m| {
        matches!(m, ServerMsg::WriteDropped { seq: 3, .. })
    });
    a2.write(4, Dir::Down);
    a2.until("turn 4", |m| matches!(m, ServerMsg::Delta(d) if d.events.iter().any(|e| matches!(e, Event::Turn { seq: 4, .. }))));
    let s = wait_stats(&h, "after switch", |s| {
        s.accounts["alice"].inputs_applied == 2
    });
    assert_eq!(s.accounts["alice"].writes_dropped, 2);
    assert_eq!(s.accounts["alice"].last_seq, 4);
    let roles: Vec<(u64, Role)> = s.accounts["alice"]
        .sessions
        .iter()
        .map(|x| (x.session, x.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            (a1.ok.session, Role::Secondary),
            (a2.ok.session, Role::Primary)
        ]
    );

    // Logging out the old primary (now secondary) leaves the other session
    // streaming, its role untouched, and the player in the world.
    a1.c.writer().logout().expect("logout");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a1.c.recv() {
            Err(SyncError::Closed) => break,
            Ok(_) | Err(SyncError::Timeout) => assert!(Instant::now() < deadline, "not closed"),
            Err(e) => panic!("after logout: {e}"),
        }
    }
    let s = wait_stats(&h, "logout", |s| s.sessions == 1);
    let roles: Vec<(u64, Role)> = s.accounts["alice"]
        .sessions
        .iter()
        .map(|x| (x.session, x.role))
        .collect();
    assert_eq!(roles, vec![(a2.ok.session, Role::Primary)]);
    let t = a2.world.tick + 10;
    a2.until_tick(t);
    assert!(a2.world.snakes.contains_key("alice"));
    let roles_told: Vec<&ServerMsg> = a2
        .others
        .iter()
        .filter(|m| matches!(m, ServerMsg::Role { .. }))
        .collect();
    assert_eq!(
        roles_told.len(),
        1,
        "a2 told only of its own switch: {roles_told:?}"
    );
    assert!(
        a2.deltas
            .iter()
            .flat_map(|d| &d.events)
            .all(|e| !matches!(e, Event::Leave { .. })),
        "player must not leave while a session remains"
    );
    a2.write(5, Dir::Right);
    wait_stats(&h, "writes after logout", |s| {
        s.accounts["alice"].inputs_applied == 3
    });
}

#[test]
fn wrong_token_and_unknown_account_refused() {
    let h = server(50.0);
    let mut b = Session::login(&h, "bob", "b-token", "edge1");
    match SyncClient::connect(h.sync_addr, "alice", "nope", "edge9") {
        Err(SyncError::Refused(m)) => {
            assert!(m.contains("alice") && m.contains("wrong token"), "{m}")
        }
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("wrong token accepted"),
    }
    match SyncClient::connect(h.sync_addr, "mallory", "x", "edge9") {
        Err(SyncError::Refused(m)) => {
            assert!(
                m.contains("mallory") && m.contains("unknown account"),
                "{m}"
            )
        }
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("unknown account accepted"),
    }
    let s = wait_stats(&h, "refusals", |s| s.logins_refused == 2);
    assert_eq!(s.logins_ok, 1);
    assert_eq!(s.sessions, 1);
    assert!(!s.accounts.contains_key("alice"));
    assert!(!s.accounts.contains_key("mallory"));
    // The logged-in session was not disturbed.
    let t = b.world.tick + 5;
    b.until_tick(t);
    assert_eq!(b.world.snakes.len(), 1);
    assert!(metrics(&h).contains("app_cloud_logins_total{result=\"refused\"} 2"));
}

fn raw_recv(s: &mut TcpStream, dec: &mut FrameDecoder) -> Option<ServerMsg> {
    let deadline = Instant::now() + Duration::from_secs(5);
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = dec
            .next_msg::<ServerMsg>()
            .expect("server frames are valid")
        {
            return Some(m);
        }
        assert!(Instant::now() < deadline, "no message");
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => dec.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn write_before_login_and_bad_frames() {
    let h = server(50.0);
    let mut b = Session::login(&h, "bob", "b-token", "edge1");

    // A write before login: an error, counted, the connection stays usable.
    let mut raw = TcpStream::connect(h.sync_addr).expect("connect");
    let mut dec = FrameDecoder::new();
    raw.write_all(
        &encode(&ClientMsg::Write {
            seq: 1,
            dir: Dir::Up,
            sent_ns: 0,
        })
        .expect("frame"),
    )
    .expect("send");
    match raw_recv(&mut raw, &mut dec) {
        Some(ServerMsg::Error { message }) => {
            assert!(message.contains("not logged in"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    raw.write_all(&encode(&ClientMsg::Switch).expect("frame"))
        .expect("send");
    assert!(matches!(
        raw_recv(&mut raw, &mut dec),
        Some(ServerMsg::Error { .. })
    ));
    raw.write_all(
        &encode(&ClientMsg::Login {
            account: "alice".into(),
            token: "a-token".into(),
            instance: "raw".into(),
        })
        .expect("frame"),
    )
    .expect("send");
    match raw_recv(&mut raw, &mut dec) {
        Some(ServerMsg::LoginOk(ok)) => assert_eq!(ok.role, Role::Primary),
        other => panic!("expected login, got {other:?}"),
    }
    let s = wait_stats(&h, "not logged in", |s| {
        s.writes_dropped["not_logged_in"] == 1
    });
    assert_eq!(s.sessions, 2);

    // Malformed JSON: error, counted, that connection closed.
    let mut bad = TcpStream::connect(h.sync_addr).expect("connect");
    bad.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'])
        .expect("send");
    let mut d2 = FrameDecoder::new();
    match raw_recv(&mut bad, &mut d2) {
        Some(ServerMsg::Error { message }) => assert!(message.contains("bad frame"), "{message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        raw_recv(&mut bad, &mut d2),
        None,
        "closed after a bad frame"
    );

    // An oversized frame from a logged-in session: closed, its session
    // logged out, the others undisturbed.
    let (_keep, _) = SyncClient::connect(h.sync_addr, "alice", "a-token", "keep").expect("login");
    let mut over = TcpStream::connect(h.sync_addr).expect("connect");
    let mut d3 = FrameDecoder::new();
    over.write_all(
        &encode(&ClientMsg::Login {
            account: "alice".into(),
            token: "a-token".into(),
            instance: "over".into(),
        })
        .expect("frame"),
    )
    .expect("send");
    assert!(matches!(
        raw_recv(&mut over, &mut d3),
        Some(ServerMsg::LoginOk(_))
    ));
    wait_stats(&h, "4 sessions", |s| s.sessions == 4);
    over.write_all(&(64u32 << 20).to_be_bytes()).expect("send");
    let reply = loop {
        match raw_recv(&mut over, &mut d3) {
            Some(ServerMsg::Delta(_)) => {}
            m => break m,
        }
    };
    match reply {
        Some(ServerMsg::Error { message }) => assert!(message.contains("exceeds"), "{message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // (Deltas may precede the error; skip them, then the stream ends.)
    loop {
        match raw_recv(&mut over, &mut d3) {
            None => break,
            Some(ServerMsg::Delta(_)) => {}
            Some(other) => panic!("after a bad frame: {other:?}"),
        }
    }
    let s = wait_stats(&h, "bad frames", |s| s.bad_frames == 2 && s.sessions == 3);
    let alice: Vec<&str> = s.accounts["alice"]
        .sessions
        .iter()
        .map(|x| x.instance.as_str())
        .collect();
    assert_eq!(
        alice,
        vec!["raw", "keep"],
        "the offender's session is gone, the others stay"
    );
    let t = b.world.tick + 5;
    b.until_tick(t);
    assert!(metrics(&h).contains("app_cloud_bad_frames_total 2"));
}

#[test]
fn every_input_applied_exactly_once_across_a_switch() {
    let h = server(100.0);
    // An observer that sees every delta of the game from the start.
    let mut watch = Session::login(&h, "watch", "w-token", "observer");
    let e1 = Session::login(&h, "bob", "b-token", "edge1");
    assert_eq!(e1.ok.role, Role::Primary);
    let dirs = [Dir::Up, Dir::Left, Dir::Down, Dir::Right];
    for seq in 1..=50u64 {
        e1.write(seq, dirs[(seq % 4) as usize]);
        if seq % 10 == 0 {
            // Resent by the UE/instance: must not apply twice.
            e1.write(seq, dirs[(seq % 4) as usize]);
        }
    }
    wait_stats(&h, "first 40 inputs", |s| {
        s.accounts["bob"].inputs_applied >= 40
    });
    // Migration: a second edge logs in, takes over, and resends the last
    // ten inputs (it cannot know which ones the first edge got through),
    // then carries on; the old edge keeps forwarding for a while.
    let mut e2 = Session::login(&h, "bob", "b-token", "edge2");
    assert_eq!(e2.ok.role, Role::Secondary);
    e2.c.writer().switch().expect("switch");
    assert_eq!(
        e2.until("switch confirmed", |m| matches!(m, ServerMsg::Role { .. })),
        ServerMsg::Role {
            role: Role::Primary
        }
    );
    for seq in 41..=60u64 {
        e2.write(seq, dirs[(seq % 4) as usize]);
    }
    for seq in 55..=60u64 {
        e1.write(seq, dirs[(seq % 4) as usize]); // old primary: dropped
    }
    let s = wait_stats(&h, "60 inputs", |s| {
        let b = &s.accounts["bob"];
        b.inputs_applied == 60 && b.duplicates + b.writes_dropped == 5 + 10 + 6
    });
    let b = &s.accounts["bob"];
    assert_eq!(b.last_seq, 60);
    // Every write is accounted for: applied, duplicate or dropped. The
    // resends of 10, 20, 30 reached the server before seq 40 did, while
    // edge1 was primary; edge1's writes after the switch are dropped.
    assert!(b.duplicates >= 3, "edge1's resends: {b:?}");
    assert!(b.writes_dropped >= 6, "edge1 after the switch: {b:?}");
    assert_eq!(s.inputs_applied, 60);

    // The deltas show each seq exactly once.
    let t = s.tick + 2;
    watch.until_tick(t);
    let mut seqs = turns(&watch.deltas, "bob");
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "a seq applied twice");
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
    assert_eq!(watch.world.snakes["bob"].last_input, 60);
    let joins = watch
        .deltas
        .iter()
        .flat_map(|d| &d.events)
        .filter(|e| matches!(e, Event::Join { player } if player == "bob"))
        .count();
    assert_eq!(joins, 1, "a second session does not join the player again");

    // The player leaves only when its last session is gone.
    e1.c.close();
    wait_stats(&h, "e1 gone", |s| s.accounts["bob"].sessions.len() == 1);
    let t = watch.world.tick + 5;
    watch.until_tick(t);
    assert!(watch.world.snakes.contains_key("bob"));
    e2.c.writer().logout().expect("logout");
    watch.until("bob leaves", |m| {
        matches!(m, ServerMsg::Delta(d) if d.events.contains(&Event::Leave { player: "bob".into() }))
    });
    assert!(!watch.world.snakes.contains_key("bob"));
    assert!(watch.world.snakes.contains_key("watch"));
}

/// Kills the child on drop (also when the test fails).
struct Child(Option<std::process::Child>);

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_binary_serves_and_logs() {
    // Ports from the pid, away from the defaults; the test is the only user.
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let (sync, metrics) = (
        SocketAddr::from(([127, 0, 0, 1], base)),
        SocketAddr::from(([127, 0, 0, 1], base + 1)),
    );
    let mut child = Child(Some(
        std::process::Command::new(env!("CARGO_BIN_EXE_app"))
            .args([
                "cloud",
                "--listen",
                &sync.to_string(),
                "--metrics",
                &metrics.to_string(),
            ])
            .args([
                "--tick-hz",
                "50",
                "--account",
                "alice:pw",
                "--width",
                "32",
                "--height",
                "18",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn app cloud"),
    ));
    let mut conn = SyncClient::connect(sync, "alice", "pw", "bin-test");
    testkit::wait_until(Duration::from_secs(10), || {
        if conn.is_err() {
            conn = SyncClient::connect(sync, "alice", "pw", "bin-test");
        }
        conn.is_ok()
    });
    let (c, ok) = conn.unwrap_or_else(|e| panic!("server not up within 10 s: {e}"));
    assert_eq!((ok.snapshot.width, ok.snapshot.height), (32, 18));
    assert_eq!(ok.role, Role::Primary);
    assert!(matches!(
        SyncClient::connect(sync, "alice", "bad", "bin-test"),
        Err(SyncError::Refused(_))
    ));
    c.writer().logout().expect("logout");
    let mut s = app::cloud::fetch_stats(metrics).expect("stats");
    let settled = testkit::wait_until(Duration::from_secs(10), || {
        s = app::cloud::fetch_stats(metrics).expect("stats");
        s.sessions == 0 && s.logins_refused == 1
    });
    assert!(settled, "not logged out within 10 s: {s:?}");
    // SIGTERM (what testbed sends) stops it cleanly, with exit status 0.
    let mut p = child.0.take().expect("running");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(p.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = testkit::wait_until(Duration::from_secs(10), || {
        p.try_wait().map_or(true, |s| s.is_some())
    });
    if !stopped {
        let _ = p.kill();
    }
    let out = p.wait_with_output().expect("output");
    assert!(stopped, "app cloud did not stop within 10 s of SIGTERM");
    assert!(out.status.success(), "after SIGTERM: {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "login accepted",
        "login refused",
        "session logged out",
        "alice",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}
