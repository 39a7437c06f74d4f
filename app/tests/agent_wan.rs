//! The edge agent pulls over a WAN link whose rate tc shapes: a `cloud`
//! and an `edge` namespace joined by one veth pair (topo), `app
//! repo-server` in the cloud, `app agent` in the edge. The time of the same
//! pull, unshaped and shaped, is measured in the same run. Needs root.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use topo::{end, Dir, Running, Shape, Topology, UpOptions};

const APP: &str = env!("CARGO_BIN_EXE_app");

struct TestDir(PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A process killed (SIGTERM, then SIGKILL) on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        for _ in 0..300 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `app <args>` in `node`'s namespace and waits for `listening on`.
fn spawn_in(r: &Running, node: &str, args: &[&str]) -> Daemon {
    let mut c = r.command(node, APP).expect("command in netns");
    let mut child = c
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let d = Daemon(child);
    let mut rd = BufReader::new(out);
    rd.read_line(&mut line).expect("read");
    assert!(line.starts_with("listening on"), "app {args:?}: {line:?}");
    // Keep draining so the daemon never blocks on stdout.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = rd.read_to_end(&mut sink);
    });
    d
}

/// A minimal HTTP/1.0 exchange from inside `node`'s namespace.
fn http(
    r: &Running,
    node: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut s = r
        .run_in(node, move || TcpStream::connect(addr))
        .expect("netns")
        .expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[test]
#[ignore = "needs root: network namespaces and tc"]
fn pull_time_grows_when_the_wan_link_is_slowed() {
    testkit::require_root();
    let id = std::process::id() % 100_000;
    let dir = TestDir(std::env::temp_dir().join(format!("agent-wan-{id}")));
    let _ = fs::remove_dir_all(&dir.0);
    fs::create_dir_all(&dir.0).expect("mkdir");
    let t = Topology::builder("agent-wan")
        .prefix(&format!("aw{id}-"))
        .host("cloud")
        .host("edge")
        .link(
            "wan",
            end("cloud").ifname("eth0").addr("10.71.0.2/24"),
            end("edge").ifname("eth0").addr("10.71.0.1/24"),
        )
        .build()
        .expect("topology");
    let mut topo_g = topo::up(&t, &UpOptions::with_state_dir(dir.0.join("topo")))
        .expect("up")
        .guard();

    const SIZE: u64 = 1 << 20;
    let cloud_dir = dir.0.join("cloud");
    let edge_dir = dir.0.join("edge");
    let run_dir = dir.0.join("run");
    let bin = dir.0.join("no-instance.sh");
    fs::write(&bin, "#!/bin/sh\necho 'no instance in this test'\nexit 1\n").expect("script");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");

    let (cloud, agent) = {
        let r: &Running = &topo_g;
        let cloud = spawn_in(
            r,
            "cloud",
            &[
                "repo-server",
                "--listen",
                "10.71.0.2:7310",
                "--dir",
                cloud_dir.to_str().expect("utf8"),
                "--publish-snake",
                "1MiB",
            ],
        );
        let agent = spawn_in(
            r,
            "edge",
            &[
                "agent",
                "--listen",
                "10.71.0.1:7400",
                "--repo",
                edge_dir.to_str().expect("utf8"),
                "--cloud-repo",
                "http://10.71.0.2:7310",
                "--app-bin",
                bin.to_str().expect("utf8"),
                "--run-dir",
                run_dir.to_str().expect("utf8"),
            ],
        );
        (cloud, agent)
    };
    let api: SocketAddr = "10.71.0.1:7400".parse().expect("addr");
    let body = r#"{"app":"snake","account":"a","token":"t","ue":"10.71.0.1:5004"}"#;

    // One pull: the start itself fails (no instance binary), after the pull.
    let pull = |r: &Running, expect_pulls: f64| -> f64 {
        let _ = fs::remove_dir_all(edge_dir.join("snake"));
        let (st, b) = http(r, "edge", api, "POST", "/instances", body);
        assert_eq!(st, 500, "{b}");
        assert!(b.contains("no instance in this test"), "{b}");
        let (_, m) = http(r, "edge", api, "GET", "/metrics", "");
        assert_eq!(metric(&m, "agent_pulls_total"), expect_pulls, "{m}");
        assert!(edge_dir.join("snake/package.mea").exists());
        metric(&m, "agent_last_pull_seconds")
    };
    let unshaped = pull(&topo_g, 1.0);
    let rate = 8_000_000u64;
    let s = Shape {
        rate_bps: Some(rate),
        ..Default::default()
    };
    // Rate-limit the cloud -> edge direction (the download).
    topo_g.shape("wan", Dir::Ab, &s).expect("shape");
    let shaped = pull(&topo_g, 2.0);
    let floor = SIZE as f64 * 8.0 / rate as f64;
    println!(
        "pull of a {} KiB package: unshaped {:.3} s ({:.1} Mbit/s), at 8 Mbit/s {:.3} s ({:.2} Mbit/s), ratio {:.1}x",
        SIZE >> 10,
        unshaped,
        SIZE as f64 * 8.0 / unshaped / 1e6,
        shaped,
        SIZE as f64 * 8.0 / shaped / 1e6,
        shaped / unshaped
    );
    // Physics, not performance: 1 MiB cannot cross an 8 Mbit/s link faster
    // than `floor`; the pull must have gone over the shaped link.
    assert!(
        shaped >= 0.9 * floor,
        "shaped pull {shaped:.3} s < {floor:.3} s"
    );
    assert!(
        shaped > unshaped,
        "shaped {shaped:.3} s vs unshaped {unshaped:.3} s"
    );
    drop(agent);
    drop(cloud);
    drop(topo_g);
}
