//! An instance's life and the agent's: delete, SIGKILL after SIGTERM, a
//! failed start, the agent's shutdown and death, the cloud repository,
//! and the whole chain with the real `app cloud` and `app instance`.

use super::*;

#[test]
fn delete_kills_the_child() {
    let s = setup("delete", 5, Some("64KiB"), "ok", &[]);
    let (st, r) = s.agent.start_snake();
    assert_eq!(st, 201, "{r}");
    let pid = r["pid"].as_u64().expect("pid") as u32;
    let id = r["id"].as_str().expect("id");
    assert!(pid_alive(pid));
    let (st, g) = call("GET", &s.agent.url(&format!("/instances/{id}")), None);
    assert_eq!((st, g["state"].as_str()), (200, Some("running")), "{g}");
    // The switch is forwarded to the instance.
    let (st, sw) = call(
        "POST",
        &s.agent.url(&format!("/instances/{id}/switch")),
        None,
    );
    assert_eq!(st, 200, "{sw}");
    assert_eq!(sw["switched"], true);
    assert_eq!(sw["name"], r["name"]);

    let (st, d) = call("DELETE", &s.agent.url(&format!("/instances/{id}")), None);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["exit_signal"], libc::SIGTERM);
    assert_eq!(d["killed"], false);
    assert!(!pid_alive(pid), "the instance process is gone");
    let sdp = s.dir.join(&format!("run/{id}.sdp"));
    assert!(!sdp.exists());
    let (st, _) = call("GET", &s.agent.url(&format!("/instances/{id}")), None);
    assert_eq!(st, 404);
}

#[test]
fn delete_sigkills_an_instance_that_ignores_sigterm() {
    let s = setup(
        "noterm",
        6,
        Some("64KiB"),
        "noterm",
        &["--stop-timeout", "0.5"],
    );
    let (st, r) = s.agent.start_snake();
    assert_eq!(st, 201, "{r}");
    let pid = r["pid"].as_u64().expect("pid") as u32;
    let (st, d) = call(
        "DELETE",
        &s.agent
            .url(&format!("/instances/{}", r["id"].as_str().expect("id"))),
        None,
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["killed"], true, "{d}");
    assert_eq!(d["exit_signal"], libc::SIGKILL);
    assert!(d["stop_ms"].as_f64().expect("ms") >= 500.0, "{d}");
    assert!(!pid_alive(pid));
}

#[test]
fn failed_start_is_500_with_log_and_leaves_nothing() {
    let s = setup("crash", 7, Some("64KiB"), "crash", &[]);
    let (st, e) = s.agent.start_snake();
    assert_eq!(st, 500, "{e}");
    assert!(
        e["error"].as_str().expect("error").contains("exited"),
        "{e}"
    );
    let log = e["log"].as_array().expect("log lines");
    assert!(
        log.iter().any(|l| l
            .as_str()
            .is_some_and(|l| l.contains("cannot log in to the cloud at 127.0.0.1:7300"))),
        "{e}"
    );
    assert!(
        entries(&s.dir.join("run")).is_empty(),
        "{:?}",
        entries(&s.dir.join("run"))
    );
    let (_, list) = call("GET", &s.agent.url("/instances"), None);
    assert_eq!(list, json!([]));
    // The package stays installed: the pull was good.
    assert_eq!(entries(&s.dir.join("edge")), vec!["snake"]);

    let s = setup(
        "hang",
        8,
        Some("64KiB"),
        "hang",
        &["--start-timeout", "0.5"],
    );
    let (st, e) = s.agent.start_snake();
    assert_eq!(st, 500, "{e}");
    assert!(
        e["error"]
            .as_str()
            .expect("error")
            .contains("not ready within"),
        "{e}"
    );
    assert!(entries(&s.dir.join("run")).is_empty());
}

#[test]
fn agent_shutdown_kills_children() {
    let mut s = setup("shutdown", 9, Some("64KiB"), "ok", &[]);
    let mut pids = Vec::new();
    for port in [5004, 5006, 5008] {
        let body = json!({"app": "snake", "account": "bob", "token": "t", "ue": format!("127.0.0.1:{port}")});
        let (st, r) = call("POST", &s.agent.url("/instances"), Some(&body.to_string()));
        assert_eq!(st, 201, "{r}");
        pids.push(r["pid"].as_u64().expect("pid") as u32);
    }
    assert!(pids.iter().all(|p| pid_alive(*p)));
    let st = s.agent.terminate();
    assert!(st.success(), "agent exit: {st:?}");
    for p in &pids {
        assert!(
            wait_dead(*p, Duration::from_secs(2)),
            "instance {p} outlived the agent"
        );
    }
    assert_eq!(
        entries(&s.dir.join("edge")),
        vec!["snake"],
        "no staging left"
    );
    assert!(
        entries(&s.dir.join("run"))
            .iter()
            .all(|f| f.ends_with(".log")),
        "{:?}",
        entries(&s.dir.join("run"))
    );
}

#[test]
fn agent_killed_outright_takes_its_instances_along() {
    let mut s = setup("sigkill", 14, Some("64KiB"), "ok", &[]);
    let body = json!({"app": "snake", "account": "bob", "token": "t", "ue": "127.0.0.1:5004"});
    let (st, r) = call("POST", &s.agent.url("/instances"), Some(&body.to_string()));
    assert_eq!(st, 201, "{r}");
    let pid = r["pid"].as_u64().expect("pid") as u32;
    assert!(pid_alive(pid));
    // No chance to clean up: SIGKILL.
    s.agent.child.kill().expect("kill the agent");
    let _ = s.agent.child.wait();
    let dead = wait_dead(pid, Duration::from_secs(2));
    if !dead {
        // Leave nothing behind, even when failing.
        // SAFETY: kill(2) on the pid the agent reported.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(dead, "instance {pid} outlived its SIGKILLed agent");
}

#[test]
fn cloud_repository_lists_and_streams() {
    let dir = TestDir::new("cloudrepo");
    let c = repo_server(&dir.join("cloud"), "100000");
    let (st, apps) = call("GET", &c.url("/apps"), None);
    assert_eq!(st, 200);
    assert_eq!(apps[0]["name"], "snake");
    assert_eq!(apps[0]["entry"], "snake");
    let size = apps[0]["size"].as_u64().expect("size");
    let mut r = http().get_reader(&c.url("/apps/snake")).expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length, Some(size));
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).expect("read");
    assert_eq!(bytes.len() as u64, size);
    let pkg = dir.join("dl.mea");
    fs::write(&pkg, &bytes).expect("write");
    let m = check_package(&pkg);
    assert_eq!(m["payload_size"], 100000);
    // A restart with the same size keeps the same package (deterministic).
    drop(c);
    let c = repo_server(&dir.join("cloud"), "100000");
    let (_, apps2) = call("GET", &c.url("/apps"), None);
    assert_eq!(apps, apps2);
}

/// The whole chain with the real `app cloud` and `app instance`: the agent
/// pulls the snake, starts the instance, which logs in to the cloud and
/// streams RTP to a UDP socket of this test; the switch reaches the cloud.
#[test]
fn real_instance_streams_rtp() {
    let dir = TestDir::new("real");
    let sync_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let sync = format!("127.0.0.1:{sync_port}");
    let _logic = Daemon::spawn_plain(&[
        "cloud",
        "--listen",
        &sync,
        "--metrics",
        "127.0.0.1:0",
        "--account",
        "alice:secret",
    ]);
    let t0 = Instant::now();
    while TcpStream::connect(&sync).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "cloud logic server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cloud = repo_server(&dir.join("cloud"), "1MiB");
    let (inp, met) = ports(12);
    let agent = Daemon::spawn(&[
        "agent",
        "--listen",
        "127.0.0.1:0",
        "--repo",
        dir.join("edge").to_str().expect("utf8"),
        "--cloud-repo",
        &format!("http://{}", cloud.addr),
        "--cloud-sync",
        &sync,
        "--run-dir",
        dir.join("run").to_str().expect("utf8"),
        "--input-host",
        "127.0.0.1",
        "--input-ports",
        &inp,
        "--metrics-ports",
        &met,
        "--start-timeout",
        "30",
    ]);
    let ue = std::net::UdpSocket::bind("127.0.0.1:0").expect("ue socket");
    ue.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = json!({"app": "snake", "account": "alice", "token": "secret",
        "ue": ue.local_addr().expect("addr").to_string(), "width": 320, "height": 180, "fps": 15});
    let (st, r) = call("POST", &agent.url("/instances"), Some(&body.to_string()));
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["pulled"], true);
    assert!(
        r["sdp"].as_str().expect("sdp").contains("H264/90000"),
        "{r}"
    );
    // RTP arrives: version 2, payload type 96.
    let mut buf = [0u8; 2048];
    let mut rtp = 0;
    while rtp < 10 {
        let n = ue.recv(&mut buf).expect("RTP within 10 s");
        assert!(
            n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 96,
            "not RTP/96"
        );
        rtp += 1;
    }
    let id = r["id"].as_str().expect("id");
    // Request -> ready includes the pull; the first frame went after ready.
    let start_ms = r["start_ms"].as_f64().expect("start_ms");
    assert!(start_ms >= r["pull_ms"].as_f64().expect("pull_ms"), "{r}");
    assert!(start_ms >= r["spawn_ms"].as_f64().expect("spawn_ms"), "{r}");
    let g = first_frame_reported(&agent, id);
    let ff = g["first_frame_ms"].as_f64().expect("first_frame_ms");
    assert!(
        ff >= start_ms,
        "first frame {ff} ms before ready {start_ms} ms: {g}"
    );
    assert_eq!(g["start_ms"], r["start_ms"]);
    // The instance says which openh264 it encodes with (same build here).
    assert_eq!(
        r["h264_simd"].as_u64(),
        media::h264::simd_flags().map(u64::from),
        "{r}"
    );
    assert_eq!(g["h264_simd"], r["h264_simd"]);
    let (st, sw) = call("POST", &agent.url(&format!("/instances/{id}/switch")), None);
    assert_eq!(st, 200, "{sw}");
    let (st, d) = call("DELETE", &agent.url(&format!("/instances/{id}")), None);
    assert_eq!(st, 200, "{d}");
    assert!(!pid_alive(r["pid"].as_u64().expect("pid") as u32));
}

/// Polls `GET /instances/{id}` until it carries `first_frame_ms`.
fn first_frame_reported(agent: &Daemon, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (st, g) = call("GET", &agent.url(&format!("/instances/{id}")), None);
        assert_eq!(st, 200, "{g}");
        if !g["first_frame_ms"].is_null() {
            return g;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no first frame reported: {g}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A one-shot cloud repository stub on 127.0.0.1 that answers
/// `GET /apps/snake` with the right Content-Length but sends only the first
/// half of `package`, then closes (`stall` false) or holds the connection.
fn stub_cloud(package: Vec<u8>, stall: bool) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
                package.len()
            );
            let _ = std::io::Write::write_all(&mut s, head.as_bytes());
            let _ = std::io::Write::write_all(&mut s, &package[..package.len() / 2]);
            if stall {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    });
    addr
}

fn snake_package(dir: &TestDir, size: u64) -> Vec<u8> {
    let repo = app::repo::Repository::open(dir.join("pkg")).expect("open");
    repo.publish_snake(size).expect("publish");
    fs::read(dir.join("pkg/snake/package.mea")).expect("read")
}

#[test]
fn interrupted_pull_leaves_nothing() {
    let dir = TestDir::new("truncated");
    let cloud = stub_cloud(snake_package(&dir, 1 << 20), false);
    let agent = start_agent(&dir, 10, &format!("http://{cloud}"), "ok", &[]);
    // A start and a pull-only request alike.
    for r in [
        agent.start_snake(),
        call("POST", &agent.url("/apps/snake/pull"), None),
    ] {
        let (st, e) = r;
        assert_eq!(st, 502, "{e}");
        assert!(
            e["error"]
                .as_str()
                .expect("error")
                .contains("nothing was installed"),
            "{e}"
        );
        assert!(
            entries(&dir.join("edge")).is_empty(),
            "{:?}",
            entries(&dir.join("edge"))
        );
    }
}

#[test]
fn agent_stopped_during_a_pull_leaves_nothing() {
    let dir = TestDir::new("stallpull");
    let cloud = stub_cloud(snake_package(&dir, 1 << 20), true);
    let mut agent = start_agent(&dir, 11, &format!("http://{cloud}"), "ok", &[]);
    let url = agent.url("/instances");
    let req = std::thread::spawn(move || {
        http()
            .post_json(&url, start_body("snake"))
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    });
    // Wait until the pull has begun writing its staging directory.
    let t0 = Instant::now();
    while !entries(&dir.join("edge"))
        .iter()
        .any(|e| e.starts_with(".staging-"))
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "pull did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = agent.terminate();
    assert!(st.success(), "{st:?}");
    assert!(
        entries(&dir.join("edge")).is_empty(),
        "{:?}",
        entries(&dir.join("edge"))
    );
    // The client got an error status or a closed connection, not a 201.
    let r = req.join().expect("join");
    assert!(r != Ok(201), "{r:?}");
}

#[test]
fn concurrent_starts_pull_once() {
    let s = setup("concurrent", 13, Some("2MiB"), "ok", &[]);
    let url = s.agent.url("/instances");
    let threads: Vec<_> = [5004, 5006, 5008]
        .into_iter()
        .map(|port| {
            let url = url.clone();
            std::thread::spawn(move || {
                let body = json!({"app": "snake", "account": "carol", "token": "t",
                    "ue": format!("127.0.0.1:{port}")});
                call("POST", &url, Some(&body.to_string()))
            })
        })
        .collect();
    let results: Vec<(u16, Value)> = threads
        .into_iter()
        .map(|t| t.join().expect("join"))
        .collect();
    assert!(results.iter().all(|(st, _)| *st == 201), "{results:?}");
    let pulled = results.iter().filter(|(_, r)| r["pulled"] == true).count();
    assert_eq!(pulled, 1, "{results:?}");
    let (_, cm) = call(
        "GET",
        &s.cloud.as_ref().expect("cloud").url("/metrics"),
        None,
    );
    assert!(
        cm.as_str()
            .expect("text")
            .contains("repo_downloads_total 1\n"),
        "{cm}"
    );
    assert_eq!(entries(&s.dir.join("edge")), vec!["snake"]);
}

/// Text of the agent's (or the cloud repository's) `GET /metrics`.
fn metrics_text(d: &Daemon) -> String {
    let (st, m) = call("GET", &d.url("/metrics"), None);
    assert_eq!(st, 200);
    m.as_str().expect("text").to_owned()
}

#[test]
fn pull_only_makes_the_edge_warm_and_delete_cold() {
    let s = setup("pullonly", 15, Some("1MiB"), "ok", &[]);
    let a = &s.agent;
    let pull = a.url("/apps/snake/pull");
    let (st, p1) = call("POST", &pull, None);
    assert_eq!(st, 200, "{p1}");
    assert_eq!((&p1["app"], &p1["pulled"]), (&json!("snake"), &json!(true)));
    assert!(p1["pull_ms"].as_f64().expect("pull_ms") > 0.0, "{p1}");
    let edge_pkg = s.dir.join("edge/snake/package.mea");
    assert_eq!(
        p1["bytes"].as_u64(),
        fs::metadata(&edge_pkg).map(|m| m.len()).ok()
    );
    assert_eq!(check_package(&edge_pkg)["version"], p1["version"]);
    assert_eq!(entries(&s.dir.join("edge")), vec!["snake"]);
    assert!(entries(&s.dir.join("run")).is_empty(), "nothing started");
    assert_eq!(call("GET", &a.url("/instances"), None).1, json!([]));

    // Warm: nothing is pulled again, by a pull or by a start.
    let (st, p2) = call("POST", &pull, None);
    assert_eq!(st, 200, "{p2}");
    assert_eq!(
        (&p2["pulled"], &p2["pull_ms"], &p2["bytes"]),
        (&json!(false), &json!(0.0), &json!(0))
    );
    let (st, r) = a.start_snake();
    assert_eq!((st, &r["pulled"]), (201, &json!(false)), "{r}");
    let id = r["id"].as_str().expect("id");

    // Cold is refused while an instance runs.
    let (st, e) = call("DELETE", &a.url("/apps/snake"), None);
    assert_eq!(st, 409, "{e}");
    assert!(e["error"].as_str().expect("error").contains(id), "{e}");
    assert_eq!(entries(&s.dir.join("edge")), vec!["snake"]);
    let (st, _) = call("DELETE", &a.url(&format!("/instances/{id}")), None);
    assert_eq!(st, 200);
    let (st, d) = call("DELETE", &a.url("/apps/snake"), None);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d, json!({"app": "snake", "version": p1["version"]}));
    assert!(
        entries(&s.dir.join("edge")).is_empty(),
        "nothing left: {:?}",
        entries(&s.dir.join("edge"))
    );
    assert_eq!(call("GET", &a.url("/apps"), None).1, json!([]));
    let (st, e) = call("DELETE", &a.url("/apps/snake"), None);
    assert_eq!(st, 404, "{e}");

    // Cold: the next pull fetches it again.
    let (st, p3) = call("POST", &pull, None);
    assert_eq!((st, &p3["pulled"]), (200, &json!(true)), "{p3}");
    assert_eq!(p3["bytes"], p1["bytes"]);
    let m = metrics_text(a);
    assert!(m.contains("agent_pulls_total 2\n"), "{m}");
    assert!(m.contains("agent_apps_removed_total 1\n"), "{m}");
    let cm = metrics_text(s.cloud.as_ref().expect("cloud"));
    assert!(cm.contains("repo_downloads_total 2\n"), "{cm}");
}

#[test]
fn pull_only_unknown_app_bad_name_and_cloud_down() {
    let s = setup("pullerr", 16, Some("64KiB"), "ok", &[]);
    let a = &s.agent;
    let (st, e) = call("POST", &a.url("/apps/minetest/pull"), None);
    assert_eq!(st, 404, "{e}");
    let msg = e["error"].as_str().expect("error");
    assert!(
        msg.contains("\"minetest\"") && msg.contains("neither in the edge repository"),
        "{msg}"
    );
    let (st, e) = call("POST", &a.url("/apps/.hidden/pull"), None);
    assert_eq!((st, e["field"].as_str()), (400, Some("app")), "{e}");
    let (st, e) = call("DELETE", &a.url("/apps/minetest"), None);
    assert_eq!(st, 404, "{e}");
    assert!(entries(&s.dir.join("edge")).is_empty());
    let m = metrics_text(a);
    assert!(m.contains("agent_app_not_found_total 1\n"), "{m}");
    assert!(m.contains("agent_bad_requests_total 1\n"), "{m}");
    assert!(m.contains("agent_pulls_total 0\n"), "{m}");

    let s2 = setup("pulldown", 17, None, "ok", &[]);
    let (st, e) = call("POST", &s2.agent.url("/apps/snake/pull"), None);
    assert_eq!(st, 502, "{e}");
    assert!(
        e["error"].as_str().expect("error").contains("unreachable"),
        "{e}"
    );
    assert!(entries(&s2.dir.join("edge")).is_empty());
    assert_eq!(call("GET", &s2.agent.url("/apps"), None).1, json!([]));
}

#[test]
fn first_frame_ms_follows_start_ms() {
    let s = setup("firstframe", 18, Some("64KiB"), "ok", &[]);
    let t0 = Instant::now();
    let (st, r) = s.agent.start_snake();
    let post_ms = t0.elapsed().as_secs_f64() * 1e3;
    assert_eq!(st, 201, "{r}");
    let start_ms = r["start_ms"].as_f64().expect("start_ms");
    let spawn_ms = r["spawn_ms"].as_f64().expect("spawn_ms");
    assert!(
        0.0 < spawn_ms && spawn_ms <= start_ms && start_ms <= post_ms,
        "spawn {spawn_ms} start {start_ms} POST {post_ms}: {r}"
    );
    // The fake reports its first frame FAKE_FIRST_FRAME_MS after ready,
    // both as Unix ns: the agent's figures differ by exactly that.
    let id = r["id"].as_str().expect("id");
    let g = first_frame_reported(&s.agent, id);
    let ff = g["first_frame_ms"].as_f64().expect("first_frame_ms");
    assert!(ff >= start_ms, "{g}");
    assert!(
        (ff - start_ms - FAKE_FIRST_FRAME_MS as f64).abs() < 1e-3,
        "first frame {ff} ms, start {start_ms} ms: {g}"
    );
    assert_eq!(g["start_ms"], r["start_ms"]);
    if !r["first_frame_ms"].is_null() {
        assert_eq!(r["first_frame_ms"], g["first_frame_ms"], "{r}");
    }
    let (_, list) = call("GET", &s.agent.url("/instances"), None);
    assert_eq!(list[0]["first_frame_ms"], g["first_frame_ms"], "{list}");
}

#[test]
fn exited_and_stopped_instances_give_their_ports_back() {
    // Two ports of each kind; eight starts in all.
    let base = 21000 + 19 * 20;
    let inp = format!("{}-{}", base, base + 1);
    let met = format!("{}-{}", base + 10, base + 11);
    let s = setup(
        "ports",
        19,
        Some("64KiB"),
        "ok",
        &["--input-ports", &inp, "--metrics-ports", &met],
    );
    let a = &s.agent;
    let start = || {
        let (st, r) = a.start_snake();
        assert_eq!(st, 201, "{r}");
        r
    };
    let mut running = std::collections::VecDeque::from([start(), start()]);
    let (st, e) = a.start_snake();
    assert_eq!(st, 503, "the range is full: {e}");
    for round in 0..6 {
        let old = running.pop_front().expect("an instance");
        let id = old["id"].as_str().expect("id");
        if round % 2 == 0 {
            let (st, d) = call("DELETE", &a.url(&format!("/instances/{id}")), None);
            assert_eq!(st, 200, "{d}");
        } else {
            // It dies on its own (as far as the agent knows).
            let pid = old["pid"].as_u64().expect("pid") as u32;
            // SAFETY: kill(2) on the pid of an instance this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            assert!(wait_dead(pid, Duration::from_secs(5)), "{pid} lives");
        }
        let new = start();
        assert_eq!(
            (&new["input_port"], &new["metrics"]),
            (&old["input_port"], &old["metrics"]),
            "round {round}: the freed ports are reused"
        );
        running.push_back(new);
    }
    let (_, list) = call("GET", &a.url("/instances"), None);
    let state = |st: &str| {
        list.as_array()
            .expect("list")
            .iter()
            .filter(|i| i["state"] == st)
            .count()
    };
    assert_eq!((state("running"), state("exited")), (2, 3), "{list}");
    let m = metrics_text(a);
    assert!(m.contains("agent_instances_started_total 8\n"), "{m}");
}
