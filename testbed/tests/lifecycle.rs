//! `testbed up/status/down` as a user runs them: the topology and every
//! daemon come up healthy, are recorded, show in `status`, and are all gone
//! after `down`; failures and Ctrl-C during `up` leave nothing behind.
//! Needs root and the daemon binaries (`cargo build -p upf -p smf-lite -p gnb -p ue`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{namespaces_with, proc_alive, read, Bed};

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn up_status_down() {
    let bed = Bed::with_daemons("u");
    let out = bed.ok(&bed.up_args());
    assert!(out.contains("ready"), "{out}");

    // Namespaces of every node.
    let mut ns = bed.namespaces();
    ns.sort();
    let mut want: Vec<String> = [
        "ue1", "gnb1", "upf1", "upf2", "core", "edge1", "edge2", "cloud", "n3", "cp",
    ]
    .iter()
    .map(|n| bed.ns(n))
    .collect();
    want.sort();
    assert_eq!(ns, want);

    // Run folder: a config and a log per daemon, plan and record.
    for d in ["upf1", "upf2", "smf", "gnb1", "ue1"] {
        assert!(
            bed.run.join(format!("configs/{d}.toml")).is_file(),
            "{d} config"
        );
        assert!(bed.run.join(format!("logs/{d}.log")).is_file(), "{d} log");
    }
    let upf1 = read(&bed.run.join("configs/upf1.toml"));
    assert!(
        upf1.contains("10.45.0.0/16") && upf1.contains("10.3.0.11"),
        "{upf1}"
    );
    let rec: serde_json::Value =
        serde_json::from_str(&read(&bed.run.join("testbed.json"))).expect("json");
    let state = bed.state_json().expect("state file");
    assert_eq!(
        rec["procs"], state["procs"],
        "run folder and state file agree"
    );
    let procs: Vec<(String, i64, u64)> = state["procs"]
        .as_array()
        .expect("procs")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["pid"].as_i64().unwrap(),
                p["start"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every daemon of the plan, in its order (the unit tests of `plan`
    // list the paper's: upf1, upf2, smf, gnb1, ue1, and the application's
    // cloud logic server, cloud repository and one agent per edge).
    let names: Vec<&str> = procs.iter().map(|p| p.0.as_str()).collect();
    let planned: Vec<&str> = state["plan"]["daemons"]
        .as_array()
        .expect("the plan's daemons")
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, planned);
    assert_eq!(names.len(), 9, "{names:?}");
    for (name, pid, start) in &procs {
        assert!(proc_alive(*pid, *start), "{name} (pid {pid}) runs");
    }

    // status: every daemon running, both UPFs associated, no sessions yet, counters read.
    let s = bed.status();
    for d in s["daemons"].as_array().expect("daemons") {
        assert_eq!(d["running"], true, "{d}");
    }
    let upfs = s["upfs"].as_array().expect("upfs");
    assert_eq!(upfs.len(), 2);
    for u in upfs {
        assert_eq!(u["state"], "associated", "{u}");
    }
    assert_eq!(s["sessions"], serde_json::json!([]));
    let upf_counters = s["daemons"][0]["counters"].as_array().expect("counters");
    assert!(
        upf_counters
            .iter()
            .any(|c| c[0].as_str().unwrap().starts_with("upf_")),
        "UPF metrics read: {upf_counters:?}"
    );
    let human = bed.ok(&["status"]);
    assert!(
        human.contains("associated") && human.contains("running"),
        "{human}"
    );

    // A second `up` of the same topology is refused and changes nothing.
    let o = bed.run(&bed.up_args());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already up"));
    for (name, pid, start) in &procs {
        assert!(
            proc_alive(*pid, *start),
            "{name} still runs after the refused up"
        );
    }

    // down: daemons stopped, namespaces gone, state removed; again is harmless.
    let out = bed.ok(&["down"]);
    assert!(out.contains("9 daemons stopped"), "{out}");
    for (name, pid, start) in &procs {
        assert!(!proc_alive(*pid, *start), "{name} (pid {pid}) stopped");
    }
    assert_eq!(bed.namespaces(), Vec::<String>::new());
    assert!(bed.state_json().is_none());
    assert!(bed.ok(&["down"]).contains("nothing is up"));
    let o = bed.run(&["status"]);
    assert!(!o.status.success(), "status with nothing up fails");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no testbed is up"));
}

/// A bin dir with the real upf/smf/gnb and a `ue` that never becomes healthy.
fn bin_dir_with_stuck_ue(bed: &Bed) -> std::path::PathBuf {
    let real = common::require_daemon_bins();
    let dir = bed.root.join("bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    for b in ["upf", "smf", "gnb", "app"] {
        std::os::unix::fs::symlink(real.join(b), dir.join(b)).expect("symlink");
    }
    let ue = dir.join("ue");
    std::fs::write(&ue, "#!/bin/sh\nexec sleep 60\n").expect("script");
    std::fs::set_permissions(&ue, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn assert_all_gone(bed: &Bed, pids: &[(i64, u64)]) {
    assert_eq!(bed.namespaces(), Vec::<String>::new(), "namespaces removed");
    for (pid, start) in pids {
        assert!(!proc_alive(*pid, *start), "pid {pid} stopped");
    }
    assert!(bed.state_json().is_none(), "state file removed");
}

fn recorded_pids(bed: &Bed) -> Vec<(i64, u64)> {
    bed.state_json()
        .and_then(|s| {
            s["procs"].as_array().map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["pid"].as_i64().unwrap_or(0),
                            p["start"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The pids `up` recorded, once all five daemons are started (20 s at most).
fn five_recorded_pids(bed: &Bed) -> Vec<(i64, u64)> {
    let mut pids = Vec::new();
    testkit::wait_until(Duration::from_secs(20), || {
        pids = recorded_pids(bed);
        pids.len() == 5
    });
    assert_eq!(pids.len(), 5, "all five daemons were started: {pids:?}");
    pids
}

/// `testbed --bin-dir (whose ue never becomes ready) up EXTRA...` in the
/// background, with the pids it recorded once all five daemons started.
fn spawn_up_with_stuck_ue(bed: &Bed, extra: &[&str]) -> (std::process::Child, Vec<(i64, u64)>) {
    let bins = bin_dir_with_stuck_ue(bed);
    let mut c = bed.cmd(&["--bin-dir"]);
    c.arg(&bins).args(bed.up_args()).args(extra);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Catch the pids while the stuck UE is awaited.
    let pids = five_recorded_pids(bed);
    (child, pids)
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn unhealthy_daemon_fails_up_and_removes_everything() {
    testkit::require_root();
    let bed = Bed::new("h");
    let (child, pids) = spawn_up_with_stuck_ue(&bed, &["--ready-timeout", "2"]);
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ue1 did not become ready"), "{err}");
    assert_all_gone(&bed, &pids);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn ctrl_c_during_up_removes_everything() {
    testkit::require_root();
    let bed = Bed::new("c");
    let (child, pids) = spawn_up_with_stuck_ue(&bed, &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted"));
    assert_all_gone(&bed, &pids);
}

#[test]
fn missing_binary_is_named_and_nothing_is_made() {
    let bed = Bed::new("m");
    let empty = bed.root.join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let mut c = bed.cmd(&["--bin-dir"]);
    c.arg(&empty).args(bed.up_args());
    let o = c.output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("binary `") && err.contains("cargo build") && err.contains("-p smf-lite"),
        "{err}"
    );
    assert_eq!(bed.namespaces(), Vec::<String>::new());
}

#[test]
fn topology_without_what_a_daemon_needs_is_a_usage_error() {
    let bed = Bed::new("t");
    let f = bed.root.join("bad.toml");
    // The paper topology without upf2's N3 link.
    let text = topo::config::PAPER_TOML.replace(
        "[[link]]\nname = \"n3-upf2\"\na = { node = \"upf2\", ifname = \"n3\", addrs = [\"10.3.0.12/24\", \"fd00:3::12/64\"] }\nb = { node = \"n3\" }\n",
        "",
    );
    assert_ne!(text, topo::config::PAPER_TOML, "the link was removed");
    std::fs::write(&f, text).expect("write");
    let mut args = bed.up_args();
    args.extend(["--topology".into(), f.display().to_string()]);
    let o = bed.run(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`upf2`") && err.contains("`n3`"), "{err}");
    assert_eq!(bed.namespaces(), Vec::<String>::new());
    assert!(!Path::new(&bed.state).join("testbed/paper.json").exists());
}

#[test]
fn down_with_nothing_up_is_harmless() {
    let bed = Bed::new("d");
    assert!(bed.ok(&["down"]).contains("nothing is up"));
    assert!(namespaces_with(&bed.prefix).is_empty());
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn multi_ue_topology_two_cells() {
    let bed = Bed::with_daemons("x");
    let f = bed.root.join("multi-ue.toml");
    std::fs::write(&f, topo::config::MULTI_UE_TOML).expect("write");
    let mut args = bed.up_args();
    args.extend(["--topology".into(), f.display().to_string()]);
    bed.ok(&args);
    // ue4 sits in gnb2's cell: its session is relayed and tunnelled by gnb2.
    let out = bed.ok(&[
        "session", "add", "--ue", "ue4", "--psi", "1", "--upf", "upf2",
    ]);
    assert!(out.contains("10.46."), "{out}");
    let st: serde_json::Value =
        serde_json::from_str(&bed.ok(&["status", "--json"])).expect("status");
    let daemons = st["daemons"].as_array().expect("daemons");
    assert_eq!(
        daemons.len(),
        15,
        "2 UPFs, SMF, 2 gNBs, 6 UEs, logic server, repository, 2 agents"
    );
    assert!(daemons.iter().all(|d| d["running"] == true));
    let sessions = st["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["gnb"], "gnb2", "{}", sessions[0]);
    let tunnels = st["tunnels"].as_array().expect("tunnels");
    let per_gnb: Vec<(String, usize)> = tunnels
        .iter()
        .map(|t| {
            (
                t[0].as_str().unwrap().to_string(),
                t[1].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(per_gnb, [("gnb1".to_string(), 0), ("gnb2".to_string(), 1)]);
    assert!(bed.ok(&["down"]).contains("15 daemons stopped"));
    assert!(bed.namespaces().is_empty());
}
