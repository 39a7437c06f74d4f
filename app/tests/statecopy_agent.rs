//! `POST /instances/{id}/statecopy` between two in-process agents on
//! 127.0.0.1, the instances being the fake `app instance`
//! (`app/examples/fake_instance.rs`, built by `cargo test`): the source is
//! frozen for real (SIGSTOP) while the destination starts, ended after;
//! on any failure it runs again; bad input names its field.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};

use app::agent::{AgentArgs, RunningAgent};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

/// An agent in this process, its edge repository holding a 1 MiB snake.
struct Agent {
    running: Option<RunningAgent>,
    url: String,
}

fn fake_instance() -> PathBuf {
    // target/PROFILE/deps/statecopy_agent-HASH -> target/PROFILE/examples/
    let exe = std::env::current_exe().expect("current exe");
    let fake = exe.with_file_name("../examples/fake_instance");
    assert!(
        fake.is_file(),
        "{} missing: `cargo test -p app` builds it",
        fake.display()
    );
    fake
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Agent {
    fn start(
        rt: &tokio::runtime::Runtime,
        dir: &Path,
        name: &str,
        ports: u16,
        extra: &[&str],
    ) -> Agent {
        let repo = dir.join(name).join("repo");
        app::repo::Repository::open(&repo)
            .and_then(|r| r.publish_snake(1 << 20))
            .expect("publish the snake");
        let run = dir.join(name).join("run");
        let (inp, met) = (
            format!("{ports}-{}", ports + 4),
            format!("{}-{}", ports + 5, ports + 9),
        );
        let mut args = vec![
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--repo",
            repo.to_str().expect("utf8"),
            "--cloud-repo",
            "http://127.0.0.1:9",
            "--input-host",
            "127.0.0.1",
            "--run-dir",
            run.to_str().expect("utf8"),
            "--input-ports",
            &inp,
            "--metrics-ports",
            &met,
            "--name",
            name,
        ];
        let fake = fake_instance();
        args.extend_from_slice(&["--app-bin", fake.to_str().expect("utf8")]);
        args.extend_from_slice(extra);
        let cli = Cli::parse_from(args);
        let running = rt.block_on(app::agent::start(cli.agent)).expect("agent");
        Agent {
            url: format!("http://{}", running.addr),
            running: Some(running),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let h = ctlhttp::blocking::Client::new(Duration::from_secs(60));
        let url = format!("{}{path}", self.url);
        let r = match (method, body) {
            ("GET", _) => h.get(&url),
            ("POST", Some(b)) => h.post_json(&url, b.to_string()),
            _ => panic!("{method} {path}"),
        };
        let r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let (status, text) = (r.status, r.text());
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Starts a fake snake streaming to `ue`; its id and pid.
    fn start_snake(&self, ue: &str) -> (String, u32) {
        let (st, v) = self.call("POST", "/instances", Some(&start_body(ue)));
        assert_eq!(st, 201, "{v}");
        (
            v["id"].as_str().expect("id").to_owned(),
            v["pid"].as_u64().expect("pid") as u32,
        )
    }

    fn metric(&self, name: &str) -> u64 {
        let (_, v) = self.call("GET", "/metrics", None);
        let text = v.as_str().expect("text").to_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    fn stop(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(r) = self.running.take() {
            rt.block_on(r.stop());
        }
    }
}

fn start_body(ue: &str) -> Value {
    json!({"app": "snake", "account": "alice", "token": "secret", "ue": ue})
}

/// The state letter of /proc/PID/stat (None once it is gone or a zombie).
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let c = s.rsplit_once(") ")?.1.chars().next()?;
    (c != 'Z').then_some(c)
}

struct Bed {
    rt: tokio::runtime::Runtime,
    src: Agent,
    dst: Agent,
    copy: SocketAddr,
    _dir: testkit::TempDir,
}

impl Bed {
    fn new(tag: &str, ports: u16) -> Bed {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let dir = std::env::temp_dir().join(format!("statecopy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let copy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let src = Agent::start(&rt, &dir, "src", ports, &[]);
        let dst = Agent::start(
            &rt,
            &dir,
            "dst",
            ports + 10,
            &["--copy-listen", &copy.to_string()],
        );
        Bed {
            rt,
            src,
            dst,
            copy,
            _dir: testkit::TempDir(dir),
        }
    }

    /// A state-copy body: a small pre-copy to the destination agent.
    fn body(&self, to_agent: &str) -> Value {
        json!({
            "method": "pre-copy", "image_bytes": 4_000_000, "dirty_bytes_per_s": 200_000_000,
            "setup_ms": 100, "max_rounds": 4, "stop_threshold_bytes": 1_000,
            "to_copy": self.copy.to_string(), "to_agent": to_agent,
            "start": start_body("127.0.0.1:5010"),
        })
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.src.stop(&self.rt);
        self.dst.stop(&self.rt);
    }
}

#[test]
fn pre_copy_moves_the_instance_and_both_ledgers_agree() {
    let b = Bed::new("ok", 23100);
    let (id, pid) = b.src.start_snake("127.0.0.1:5008");
    let (st, r) = b.src.call(
        "POST",
        &format!("/instances/{id}/statecopy"),
        Some(&b.body(&b.dst.url)),
    );
    assert_eq!(st, 200, "{r}");
    let rounds = r["rounds"].as_array().expect("rounds");
    assert!(rounds.len() >= 2, "{r}");
    assert_eq!(rounds[0]["bytes"], 4_000_000);
    assert_eq!(rounds[0]["source_running"], true);
    assert_eq!(rounds.last().expect("last")["source_running"], false);
    let payload: u64 = rounds
        .iter()
        .map(|x| x["bytes"].as_u64().expect("bytes"))
        .sum();
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(n("payload_bytes"), payload);
    // A 28-byte header per round and the end frame.
    assert_eq!(n("framing_bytes"), 28 * (rounds.len() as u64 + 1));
    assert_eq!(n("bytes_ledger"), payload + n("framing_bytes"));
    assert_eq!(n("received_bytes"), payload);
    assert!(
        f("setup_ms") >= 100.0 && f("total_ms") > f("setup_ms"),
        "{r}"
    );
    assert!(n("stop_unix_ns") > n("start_unix_ns"));
    assert!(f("stop_to_started_ms") > 0.0 && f("stop_to_started_ms") < f("total_ms"));
    assert_eq!(r["params"]["method"], "pre-copy");
    assert_eq!(r["preset"], "snake");
    // The source is gone, the destination streams to the new address.
    assert_eq!(r["source"]["id"], id.as_str());
    assert!(testkit::wait_until(Duration::from_secs(5), || proc_state(
        pid
    )
    .is_none()));
    assert_eq!(b.src.call("GET", &format!("/instances/{id}"), None).0, 404);
    let did = r["destination"]["id"].as_str().expect("destination id");
    let (st, d) = b.dst.call("GET", &format!("/instances/{did}"), None);
    assert_eq!((st, d["state"].as_str()), (200, Some("running")), "{d}");
    assert_eq!(d["ue"], "127.0.0.1:5010");
    // The receiver's count is the sender's.
    let (_, got) = b.dst.call("GET", "/statecopy", None);
    let rx = &got["received"][0];
    assert_eq!(rx["migration_id"], r["migration_id"], "{got}");
    assert_eq!(rx["complete"], true);
    assert_eq!(rx["payload_bytes"], payload);
    assert_eq!(rx["rounds"].as_array().map(Vec::len), Some(rounds.len()));
    assert_eq!(
        b.src.metric("agent_statecopy_bytes_sent_total"),
        n("bytes_ledger")
    );
    assert_eq!(
        b.dst.metric("agent_statecopy_bytes_received_total"),
        n("bytes_ledger")
    );
    assert_eq!(b.src.metric("agent_statecopies_total"), 1);
}

/// A stand-in destination agent: on its one request, notes the source's
/// process state, then refuses.
fn refusing_destination(source_pid: u32) -> (String, mpsc::Receiver<Option<char>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut r = BufReader::new(s);
        let mut len = 0usize;
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            line.clear();
        }
        let mut body = vec![0u8; len];
        let _ = r.read_exact(&mut body);
        let _ = tx.send(proc_state(source_pid));
        let msg = br#"{"error":"no room"}"#;
        let mut s = r.into_inner();
        let _ = write!(s, "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", msg.len());
        let _ = s.write_all(msg);
    });
    (url, rx)
}

#[test]
fn the_source_freezes_for_real_and_resumes_when_the_destination_refuses() {
    let b = Bed::new("refuse", 23140);
    let (id, pid) = b.src.start_snake("127.0.0.1:5008");
    let (url, seen) = refusing_destination(pid);
    let (st, r) = b.src.call(
        "POST",
        &format!("/instances/{id}/statecopy"),
        Some(&b.body(&url)),
    );
    assert_eq!(st, 502, "{r}");
    let e = r["error"].as_str().expect("error");
    assert!(e.contains("503") && e.contains("no room"), "{e}");
    // While the destination was asked, the source was stopped (SIGSTOP).
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).expect("asked"),
        Some('T')
    );
    // And now it runs again, still the agent's.
    assert!(testkit::wait_until(Duration::from_secs(5), || proc_state(
        pid
    )
    .is_some_and(|c| c != 'T')));
    let (st, s) = b.src.call("GET", &format!("/instances/{id}"), None);
    assert_eq!((st, s["state"].as_str()), (200, Some("running")), "{s}");
    assert_eq!(b.src.metric("agent_statecopy_failures_total"), 1);
    // The same instance can be migrated after that.
    let (st, r) = b.src.call(
        "POST",
        &format!("/instances/{id}/statecopy"),
        Some(&b.body(&b.dst.url)),
    );
    assert_eq!(st, 200, "{r}");
}

#[test]
fn bad_input_names_the_field_and_leaves_the_source_running() {
    let b = Bed::new("bad", 23180);
    let (id, pid) = b.src.start_snake("127.0.0.1:5008");
    let path = format!("/instances/{id}/statecopy");
    let ok = b.body(&b.dst.url);
    let with = |k: &str, v: Value| {
        let mut x = ok.clone();
        x[k] = v;
        x
    };
    for (body, field) in [
        (with("method", "post-copy".into()), "method"),
        (with("preset", "doom".into()), "preset"),
        (with("scale", 1.5.into()), "scale"),
        (with("scale", 0.into()), "scale"),
        (with("to_copy", Value::Null), "to_copy"),
        (with("start", json!({"app": "snake"})), "start.account"),
    ] {
        let (st, r) = b.src.call("POST", &path, Some(&body));
        assert_eq!((st, r["field"].as_str()), (400, Some(field)), "{body}: {r}");
    }
    let (st, r) = b.src.call("POST", "/instances/i999/statecopy", Some(&ok));
    assert_eq!(st, 404, "{r}");
    // No copy listener there: 502 before anything stopped.
    let closed = format!("127.0.0.1:{}", free_port());
    let (st, r) = b
        .src
        .call("POST", &path, Some(&with("to_copy", closed.clone().into())));
    assert_eq!(st, 502, "{r}");
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains(&closed)),
        "{r}"
    );
    assert!(proc_state(pid).is_some_and(|c| c != 'T'));
    let (_, l) = b.src.call("GET", "/instances", None);
    assert_eq!(l.as_array().map(Vec::len), Some(1), "{l}");
    assert_eq!(b.dst.call("GET", "/instances", None).1, json!([]));
}
