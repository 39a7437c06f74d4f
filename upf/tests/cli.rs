//! The `upf` binary: check-config, run (in a namespace), stats, signals.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_upf");

fn tmpfile(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("{}-{name}", tag()));
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn check_config_accepts_and_rejects() {
    let good = tmpfile(
        "good.toml",
        "node_id = \"upf.test\"\n[n6]\nue_pools = [\"10.70.0.0/16\"]\n",
    );
    let text = must(testkit::run_cmd(
        BIN,
        &["check-config", good.to_str().expect("a UTF-8 path")],
    ));
    assert!(
        text.contains("10.70.0.0/16") && text.contains("max_sessions"),
        "{text}"
    );
    let bad = tmpfile("bad.toml", "[limits]\nmax_sesions = 3\n");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("run");
    // A bad configuration is a usage error (2), a failure while running 1,
    // as for every daemon (ctlhttp::daemon::exit).
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_sesions"));
    let missing = Command::new(BIN)
        .args(["check-config", "/nonexistent/upf.toml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/upf.toml"));
    // Nothing listens on the discard port.
    let stats = Command::new(BIN)
        .args(["stats", "--addr", "127.0.0.1:9"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&stats.stderr);
    assert_eq!(stats.status.code(), Some(1), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    let _ = std::fs::remove_file(good);
    let _ = std::fs::remove_file(bad);
}

#[test]
#[ignore = "needs root: network namespaces, TUN"]
fn run_stats_and_sigterm() {
    testkit::require_root();
    let t = tag();
    let ns = netns(format!("{t}c"));
    let cfg = tmpfile(
        "run.toml",
        &format!(
            "node_id = \"127.0.0.1\"\nlog_level = \"warn\"\n[n3]\naddrs = [\"127.0.0.1\"]\n\
             [n4]\naddr = \"127.0.0.1:8805\"\n[n6]\ntun = \"{t}t\"\n[metrics]\naddr = \"127.0.0.1:9199\"\n"
        ),
    );
    let mut child = testkit::KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, BIN, "run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    // `upf stats ARGS... --addr` of the daemon, run in its namespace.
    let upf_stats = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns.name, BIN, "stats"])
            .args(args)
            .args(["--addr", "127.0.0.1:9199"])
            .output()
            .expect("stats")
    };
    let mut stats = String::new();
    let up = testkit::wait_until(Duration::from_secs(5), || {
        let out = upf_stats(&[]);
        stats = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    assert!(up, "daemon did not answer `upf stats` within 5 s");
    assert!(stats.contains("sessions: 0"), "{stats}");
    assert!(stats.contains("n3 rx"), "{stats}");
    let prom = upf_stats(&["--prometheus"]);
    assert!(String::from_utf8_lossy(&prom.stdout).contains("upf_drops_total{reason=\"spoofed\"} 0"));
    // The TUN exists while it runs.
    assert!(must(ns.ip(&["link"])).contains(&format!("{t}t")));
    // SIGTERM: clean exit 0. `ip netns exec` execs the binary, so the
    // child's pid is the daemon's.
    let status = child.terminate(Duration::from_secs(5));
    assert!(status.is_some(), "no exit within 5 s of SIGTERM");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let _ = std::fs::remove_file(cfg);
}
