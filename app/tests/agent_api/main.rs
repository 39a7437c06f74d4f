//! The edge agent and the cloud repository as processes (`app agent`,
//! `app repo-server`) on 127.0.0.1, driven over HTTP.
//!
//! The instances are a fake `app instance`: a shell script passed as
//! `--app-bin` that re-runs this test binary's ignored `fake_instance` test
//! with the agent's arguments in the environment. So these tests do not
//! depend on the real instance (see `real_instance_starts`, ignored).

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const APP: &str = env!("CARGO_BIN_EXE_app");

// ----- fixtures -----

/// A scratch directory removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("agent-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("mkdir");
        TestDir(p)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A daemon process killed on drop.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    /// Runs `app <args>` and waits for its `listening on ADDR` line.
    fn spawn(args: &[&str]) -> Daemon {
        let mut child = Command::new(APP)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn app");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if let Some(a) = line.trim().strip_prefix("listening on ") {
                    let _ = tx.send(a.to_owned());
                }
                line.clear();
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("addr"),
            Err(_) => {
                let _ = child.kill();
                let st = child.wait();
                panic!("app {args:?} did not start: {st:?}");
            }
        };
        Daemon { child, addr }
    }

    /// Runs `app <args>` that prints no `listening on` line.
    fn spawn_plain(args: &[&str]) -> Daemon {
        let child = Command::new(APP)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn app");
        Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /instances` of the snake for alice.
    fn start_snake(&self) -> (u16, Value) {
        call("POST", &self.url("/instances"), Some(&start_body("snake")))
    }

    /// SIGTERM and wait for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "daemon ignores SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Let the agent stop its instances first.
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            for _ in 0..500 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn http() -> ctlhttp::blocking::Client {
    ctlhttp::blocking::Client::new(Duration::from_secs(60))
}

/// Sends a request; returns the status and the body as JSON (or as a JSON
/// string when it is not JSON).
fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let h = http();
    let r = match (method, body) {
        ("GET", _) => h.get(url),
        ("DELETE", _) => h.delete(url),
        ("POST", Some(b)) => h.post_json(url, b.to_owned()),
        ("POST", None) => h.request(ctlhttp::blocking::Method::POST, url, None),
        _ => panic!("method {method}"),
    };
    let r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let (status, text) = (r.status, r.text());
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// `app repo-server` on a free loopback port serving `dir`, with a snake
/// package of `snake_size` published in it.
fn repo_server(dir: &Path, snake_size: &str) -> Daemon {
    Daemon::spawn(&[
        "repo-server",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        dir.to_str().expect("utf8"),
        "--publish-snake",
        snake_size,
    ])
}

fn pid_alive(pid: u32) -> bool {
    // A zombie is as good as dead; the agent reaps its children anyway.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !pid_alive(pid)
}

/// Writes the fake-instance script for `mode` into `dir`: it runs the
/// `fake_instance` example (built by `cargo test` beside this test binary).
fn fake_bin(dir: &TestDir, mode: &str) -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    // target/PROFILE/deps/agent_api-HASH -> target/PROFILE/examples/
    let fake = me
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples/fake_instance");
    assert!(
        fake.is_file(),
        "{} missing: `cargo test -p app` builds it (or `cargo build -p app --example fake_instance`)",
        fake.display()
    );
    let path = dir.join(&format!("fake-{mode}.sh"));
    let script = format!(
        "#!/bin/sh\nFAKE_MODE={mode} exec '{}' \"$@\"\n",
        fake.display()
    );
    fs::write(&path, script).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Ports for one test: input and metrics ranges of 10, distinct per test.
fn ports(slot: u16) -> (String, String) {
    let base = 21000 + slot * 20;
    (
        format!("{}-{}", base, base + 9),
        format!("{}-{}", base + 10, base + 19),
    )
}

struct Setup {
    dir: TestDir,
    cloud: Option<Daemon>,
    agent: Daemon,
}

/// A cloud repository publishing a snake of `snake` bytes (None: no cloud,
/// the agent points at a closed port) and an agent with `mode` instances.
fn setup(tag: &str, slot: u16, snake: Option<&str>, mode: &str, extra: &[&str]) -> Setup {
    let dir = TestDir::new(tag);
    let cloud_dir = dir.join("cloud");
    let cloud = snake.map(|size| repo_server(&cloud_dir, size));
    let cloud_url = match &cloud {
        Some(c) => format!("http://{}", c.addr),
        None => {
            // A port nobody listens on.
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let a = l.local_addr().expect("addr");
            drop(l);
            format!("http://{a}")
        }
    };
    let agent = start_agent(&dir, slot, &cloud_url, mode, extra);
    Setup { dir, cloud, agent }
}

fn start_agent(dir: &TestDir, slot: u16, cloud_url: &str, mode: &str, extra: &[&str]) -> Daemon {
    let bin = fake_bin(dir, mode);
    let (inp, met) = ports(slot);
    let edge = dir.join("edge");
    let run = dir.join("run");
    let mut args = vec![
        "agent",
        "--listen",
        "127.0.0.1:0",
        "--repo",
        edge.to_str().expect("utf8"),
        "--cloud-repo",
        cloud_url,
        "--cloud-sync",
        "127.0.0.1:7300",
        "--app-bin",
        bin.to_str().expect("utf8"),
        "--input-host",
        "127.0.0.1",
        "--run-dir",
        run.to_str().expect("utf8"),
    ];
    // The slot's port ranges unless `extra` sets its own.
    if !extra.contains(&"--input-ports") {
        args.extend_from_slice(&["--input-ports", &inp, "--metrics-ports", &met]);
    }
    args.extend_from_slice(extra);
    Daemon::spawn(&args)
}

fn start_body(app: &str) -> String {
    json!({"app": app, "account": "alice", "token": "secret", "ue": "127.0.0.1:5004"}).to_string()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Parses a package file by hand (independently of app::repo) and checks
/// its payload against the manifest's size and sha256.
fn check_package(path: &Path) -> Value {
    let bytes = fs::read(path).expect("package");
    assert_eq!(&bytes[..8], b"MEAPKG1\n", "magic");
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let manifest: Value = serde_json::from_slice(&bytes[12..12 + len]).expect("manifest");
    let payload = &bytes[12 + len..];
    assert_eq!(
        payload.len() as u64,
        manifest["payload_size"].as_u64().expect("size")
    );
    let digest = Sha256::digest(payload);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        manifest["sha256"].as_str().expect("sha"),
        "payload sha256"
    );
    manifest
}

/// How long after being ready the fake instance (`app/examples/fake_instance.rs`)
/// "sends" its first frame.
const FAKE_FIRST_FRAME_MS: u64 = 150;

// ----- tests -----

#[test]
fn pull_on_first_start_not_on_second() {
    let s = setup("pull", 0, Some("3MiB"), "ok", &[]);
    let a = &s.agent;
    let (st, apps) = call("GET", &a.url("/apps"), None);
    assert_eq!((st, apps), (200, json!([])), "edge repository starts empty");

    let (st, r1) = a.start_snake();
    assert_eq!(st, 201, "{r1}");
    assert_eq!(r1["pulled"], true);
    assert!(r1["pull_ms"].as_f64().expect("pull_ms") > 0.0);
    assert!(r1["sdp"].as_str().expect("sdp").contains("m=video 5004"));
    let edge_pkg = s.dir.join("edge/snake/package.mea");
    let m = check_package(&edge_pkg);
    assert_eq!(m["payload_size"], 3 << 20);
    assert_eq!(
        r1["pull_bytes"].as_u64(),
        fs::metadata(&edge_pkg).map(|m| m.len()).ok()
    );
    assert_eq!(
        fs::read(&edge_pkg).expect("edge"),
        fs::read(s.dir.join("cloud/snake/package.mea")).expect("cloud"),
        "the edge holds the cloud's package byte for byte"
    );
    assert_eq!(
        entries(&s.dir.join("edge")),
        vec!["snake"],
        "no staging left"
    );

    // The instance got the agent's arguments.
    let log = fs::read_to_string(r1["log"].as_str().expect("log")).expect("read log");
    let input = format!("--input-listen 127.0.0.1:{}", r1["input_port"]);
    for want in [
        "instance --cloud 127.0.0.1:7300",
        "--account alice",
        "--token secret",
        "--ue 127.0.0.1:5004",
        &input,
        "--fps 60",
        "--width 640",
    ] {
        assert!(log.contains(want), "{want:?} not in {log}");
    }

    let (st, r2) = call(
        "POST",
        &a.url("/instances"),
        Some(&json!({"app": "snake", "account": "alice", "token": "secret", "ue": "127.0.0.1:5006", "fps": 30}).to_string()),
    );
    assert_eq!(st, 201, "{r2}");
    assert_eq!(r2["pulled"], false);
    assert_eq!(r2["pull_ms"], 0.0);
    assert_ne!(r1["input_port"], r2["input_port"]);
    assert_ne!(r1["id"], r2["id"]);
    let log2 = fs::read_to_string(r2["log"].as_str().expect("log")).expect("read log");
    assert!(
        log2.contains("--fps 30") && !log2.contains("--fps 60"),
        "{log2}"
    );

    let (st, apps) = call("GET", &a.url("/apps"), None);
    assert_eq!(st, 200);
    assert_eq!(apps[0]["name"], "snake");
    assert_eq!(apps[0]["payload_size"], 3 << 20);
    let (st, list) = call("GET", &a.url("/instances"), None);
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|i| i["state"] == "running"));

    let (_, metrics) = call("GET", &a.url("/metrics"), None);
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(metrics.contains("agent_pulls_total 1\n"), "{metrics}");
    assert!(metrics.contains("agent_instances_running 2\n"), "{metrics}");
    let cloud = s.cloud.as_ref().expect("cloud");
    let (_, cm) = call("GET", &cloud.url("/metrics"), None);
    assert!(
        cm.as_str()
            .expect("text")
            .contains("repo_downloads_total 1\n"),
        "{cm}"
    );

    for r in [&r1, &r2] {
        let (st, _) = call(
            "DELETE",
            &a.url(&format!("/instances/{}", r["id"].as_str().expect("id"))),
            None,
        );
        assert_eq!(st, 200);
    }
}

#[test]
fn corrupted_download_installs_nothing() {
    let dir = TestDir::new("corrupt");
    // Publish a good package, then flip one payload byte in the cloud's copy.
    let cloud_dir = dir.join("cloud");
    let repo = app::repo::Repository::open(&cloud_dir).expect("open");
    repo.publish_snake(1 << 20).expect("publish");
    let pkg = cloud_dir.join("snake/package.mea");
    let mut bytes = fs::read(&pkg).expect("read");
    let mid = bytes.len() - 1000;
    bytes[mid] ^= 0x55;
    fs::write(&pkg, &bytes).expect("write");
    let cloud = repo_server(&cloud_dir, "0");
    let agent = start_agent(&dir, 1, &format!("http://{}", cloud.addr), "ok", &[]);
    let (st, e) = agent.start_snake();
    assert_eq!(st, 502, "{e}");
    let msg = e["error"].as_str().expect("error");
    assert!(
        msg.contains("checksum mismatch") && msg.contains("nothing was installed"),
        "{msg}"
    );
    assert!(
        entries(&dir.join("edge")).is_empty(),
        "edge repository: {:?}",
        entries(&dir.join("edge"))
    );
    assert!(
        entries(&dir.join("run")).is_empty(),
        "no instance was started"
    );
    let (_, apps) = call("GET", &agent.url("/apps"), None);
    assert_eq!(apps, json!([]));
    let (_, list) = call("GET", &agent.url("/instances"), None);
    assert_eq!(list, json!([]));
}

#[test]
fn unknown_app_is_404_and_unreachable_cloud_is_502() {
    let s = setup("unknown", 2, Some("64KiB"), "ok", &[]);
    let (st, e) = call(
        "POST",
        &s.agent.url("/instances"),
        Some(&start_body("minetest")),
    );
    assert_eq!(st, 404, "{e}");
    let msg = e["error"].as_str().expect("error");
    assert!(
        msg.contains("\"minetest\"")
            && msg.contains("neither in the edge repository")
            && msg.contains("nor in the cloud repository"),
        "{msg}"
    );
    assert!(entries(&s.dir.join("edge")).is_empty());
    // The cloud repository's own answer names the app too.
    let cloud = s.cloud.as_ref().expect("cloud");
    let (st, e) = call("GET", &cloud.url("/apps/minetest"), None);
    assert_eq!(st, 404);
    assert!(e["error"].as_str().expect("error").contains("minetest"));
    // The agent still works.
    let (st, r) = s.agent.start_snake();
    assert_eq!(st, 201, "{r}");

    let s2 = setup("unreach", 3, None, "ok", &[]);
    let (st, e) = s2.agent.start_snake();
    assert_eq!(st, 502, "{e}");
    assert!(
        e["error"].as_str().expect("error").contains("unreachable"),
        "{e}"
    );
    assert!(entries(&s2.dir.join("edge")).is_empty());
}

#[test]
fn bad_requests_name_the_field() {
    let s = setup("bad", 4, Some("64KiB"), "ok", &[]);
    let url = s.agent.url("/instances");
    let cases: [(&str, Option<&str>); 9] = [
        ("{not json", None),
        (r#"["snake"]"#, None),
        (
            r#"{"account":"a","token":"t","ue":"127.0.0.1:5004"}"#,
            Some("app"),
        ),
        (
            r#"{"app":"snake","token":"t","ue":"127.0.0.1:5004"}"#,
            Some("account"),
        ),
        (r#"{"app":"snake","account":"a","token":"t"}"#, Some("ue")),
        (
            r#"{"app":"snake","account":"a","token":"t","ue":"nowhere"}"#,
            Some("ue"),
        ),
        (
            r#"{"app":"snake","account":"a","token":"t","ue":"127.0.0.1:5004","fps":"fast"}"#,
            Some("fps"),
        ),
        (
            r#"{"app":"../../etc","account":"a","token":"t","ue":"127.0.0.1:5004"}"#,
            Some("app"),
        ),
        (
            r#"{"app":"snake","account":"a","token":"t","ue":"127.0.0.1:5004","colour":"red"}"#,
            Some("colour"),
        ),
    ];
    for (body, field) in cases {
        let (st, e) = call("POST", &url, Some(body));
        assert_eq!(st, 400, "{body}: {e}");
        assert_eq!(e["field"].as_str(), field, "{body}: {e}");
        assert!(!e["error"].as_str().expect("error").is_empty());
        if let Some(f) = field {
            assert!(e["error"].as_str().expect("error").contains(f), "{e}");
        }
    }
    assert!(
        entries(&s.dir.join("edge")).is_empty(),
        "no pull for a bad request"
    );
    let (st, e) = call("GET", &s.agent.url("/instances/i99"), None);
    assert_eq!(st, 404, "{e}");
    let (st, _) = call("DELETE", &s.agent.url("/instances/i99"), None);
    assert_eq!(st, 404);
    let (_, m) = call("GET", &s.agent.url("/metrics"), None);
    assert!(
        m.as_str()
            .expect("text")
            .contains("agent_bad_requests_total 9\n"),
        "{m}"
    );
}

mod lifecycle;
