//! The `topo` binary: exit codes, error messages, show/exec/list, capture,
//! and cleanup after `topo up` is killed with SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

fn two_hosts(env: &Env, extra: &str) -> String {
    format!(
        "name = \"pair\"\nprefix = \"{}\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[link]]\nname = \"l\"\na = {{ node = \"a\", ifname = \"eth0\", addrs = [\"10.5.0.1/24\"] }}\nb = {{ node = \"b\", ifname = \"eth0\", addrs = [\"10.5.0.2/24\"] }}\n{extra}",
        env.prefix
    )
}

#[test]
fn config_errors_exit_2_with_file_line_and_field() {
    let env = Env::new("cfg");
    let f = write(
        &env.state,
        "bad.toml",
        &two_hosts(&env, "shape = { rate = \"fast\" }\n"),
    );
    let out = env.topo().arg("up").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:11:", f.display()))
            && err.contains("link[0].shape.rate")
            && err.contains("not a rate"),
        "{err}"
    );
    assert!(env.namespaces().is_empty());
    let f = write(
        &env.state,
        "bad2.toml",
        &two_hosts(&env, "").replace("node = \"b\", ifname", "node = \"zz\", ifname"),
    );
    let out = env.topo().arg("up").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":10:") && err.contains("link[0].b.node") && err.contains("unknown node `zz`"),
        "{err}"
    );
    // usage error
    let out = env.topo().args(["up", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn up_show_exec_list_down() {
    testkit::require_root();
    let env = Env::new("cli");
    let f = write(
        &env.state,
        "pair.toml",
        &two_hosts(&env, "shape = { rate = \"10gbit\" }\n"),
    );
    let out = env.topo().arg("up").arg(&f).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.topo().arg("up").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already up"));
    let out = env.topo().args(["show", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["interfaces"][0]["addrs"][0], "10.5.0.1/24");
    assert_eq!(v["links"][0]["ab"]["rate_mechanism"], "htb");
    assert_eq!(v["links"][0]["ab"]["shape"]["rate_bps"], 10_000_000_000u64);
    let mac = v["nodes"][1]["interfaces"][0]["mac"].as_str().unwrap();
    assert_eq!(mac.len(), 17);
    let out = env.topo().args(["show"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rate 10gbit") && text.contains("eth0"),
        "{text}"
    );
    // exec: runs in the namespace, exit code passes through
    let out = env
        .topo()
        .args(["exec", "b", "--", "ip", "-br", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.5.0.2/24"));
    let st = env
        .topo()
        .args(["exec", "a", "--", "sh", "-c", "exit 3"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3));
    let out = env
        .topo()
        .args(["exec", "nosuch", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // shape at run time, rates above 1 Gbit/s accepted
    let out = env
        .topo()
        .args(["shape", "l", "--rate", "25gbit", "--dir", "ab"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .topo()
        .args(["exec", "a", "--", "tc", "class", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rate 25Gbit"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.topo().args(["list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pair");
    let out = env.topo().args(["down"]).output().unwrap();
    assert!(out.status.success());
    assert!(env.namespaces().is_empty());
    let out = env.topo().args(["down", "pair"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn sigkill_during_up_then_down_all_leaves_nothing() {
    testkit::require_root();
    // Kill at three moments: early in the namespace step, late in it, and
    // while emulator processes are being started.
    for (i, stage) in ["5 namespaces", "120 namespaces", "an emulator"]
        .into_iter()
        .enumerate()
    {
        let env = Env::new(&format!("kill{i}"));
        let mut s = format!(
            "name = \"big\"\nprefix = \"{}\"\n[[node]]\nname = \"s\"\nkind = \"switch\"\n",
            env.prefix
        );
        for h in 0..200 {
            s += &format!("[[node]]\nname = \"h{h}\"\n");
        }
        for h in 0..200 {
            s += &format!("[[link]]\na = {{ node = \"h{h}\", ifname = \"eth0\", addrs = [\"10.8.{}.{}/16\"] }}\nb = {{ node = \"s\" }}\n", h / 200, h % 200 + 1);
        }
        // two impaired links: emulator processes too
        s += "[[node]]\nname = \"x\"\n[[node]]\nname = \"y\"\n[[link]]\na = { node = \"x\", addrs = [\"10.9.0.1/24\"] }\nb = { node = \"y\", addrs = [\"10.9.0.2/24\"] }\nshape = { delay = \"5ms\" }\n";
        s += "[[link]]\nname = \"x-y2\"\na = { node = \"x\", ifname = \"e2\" }\nb = { node = \"y\", ifname = \"e2\" }\nshape = { loss = \"1%\" }\n";
        let f = write(&env.state, "big.toml", &s);
        let mut child = env
            .topo()
            .arg("up")
            .arg(&f)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Polled every 0.5 ms, not with testkit::wait_until (every 20 ms):
        // the emulator stage lasts only a few ms, and a kill after `up`
        // finished would test nothing.
        let t0 = Instant::now();
        loop {
            let reached = match i {
                0 => env.namespaces().len() >= 5,
                1 => env.namespaces().len() >= 120,
                _ => !env.emu_processes().is_empty(),
            };
            if reached {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "`topo up` never reached {stage}"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "`topo up` ended before {stage}"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let listed = env.topo().args(["list"]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).to_string();
        {
            // killed half way: state says so, and there is something to clean up
            assert!(
                listed.contains("big") && listed.contains("interrupted"),
                "{listed}"
            );
            assert!(
                !env.namespaces().is_empty(),
                "expected leftovers to clean up"
            );
        }
        let out = env.topo().args(["down", "--all"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            env.namespaces().is_empty(),
            "killed at {stage}: left {:?}",
            env.namespaces()
        );
        assert!(
            env.emu_processes().is_empty(),
            "emulators left: {:?}",
            env.emu_processes()
        );
        let out = env.topo().args(["list"]).output().unwrap();
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn capture_writes_a_pcap_that_tshark_reads() {
    testkit::require_root();
    let env = Env::new("cap");
    // no IPv6 (router solicitations, MLD) so that the capture holds only our traffic
    let text = two_hosts(&env, "").replace(
        "name = \"b\"\n",
        "name = \"b\"\nsysctl = { \"net.ipv6.conf.all.disable_ipv6\" = \"1\", \"net.ipv6.conf.default.disable_ipv6\" = \"1\" }\n",
    ).replace(
        "name = \"a\"\n",
        "name = \"a\"\nsysctl = { \"net.ipv6.conf.all.disable_ipv6\" = \"1\", \"net.ipv6.conf.default.disable_ipv6\" = \"1\" }\n",
    );
    let t = topo::Topology::from_toml_str(&text, "pair.toml").unwrap();
    let r = topo::up(&t, &env.opts()).unwrap().guard();
    // warm ARP so the capture holds only our datagrams
    common::udp_echo(&r, "a", None, "b", "10.5.0.2:9000", 1).unwrap();
    let pcap = env.state.join("l.pcap");
    let mut cap = env
        .topo()
        .args(["capture", "l:b", "-c", "6", "-w"])
        .arg(&pcap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the socket is open once it says so
    let mut err = cap.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while std::io::Read::read(&mut err, &mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    assert!(
        String::from_utf8_lossy(&line).contains("capturing on"),
        "{}",
        String::from_utf8_lossy(&line)
    );
    let sock = r
        .run_in("a", || std::net::UdpSocket::bind("10.5.0.1:0").unwrap())
        .unwrap();
    // receivers, so that b answers with no ICMP errors
    let _r1 = r
        .run_in("b", || std::net::UdpSocket::bind("10.5.0.2:9999").unwrap())
        .unwrap();
    let _r2 = r
        .run_in("b", || std::net::UdpSocket::bind("10.5.0.2:9998").unwrap())
        .unwrap();
    for i in 0..6 {
        sock.send_to(format!("datagram {i}").as_bytes(), "10.5.0.2:9999")
            .unwrap();
        std::thread::sleep(Duration::from_millis(5)); // pacing, not synchronisation
    }
    let out = cap.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("6 packets written"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ts = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-Y",
            "udp.dstport == 9999 && !icmp",
            "-T",
            "fields",
            "-e",
            "data.text",
            "-o",
            "data.show_as_text:TRUE",
        ])
        .output()
        .unwrap();
    assert!(
        ts.status.success(),
        "{}",
        String::from_utf8_lossy(&ts.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&ts.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0], "datagram 0");

    // library API with a duration
    let (ns, ifname) = topo::capture::resolve(&r, "l:a").unwrap();
    let fd = topo::capture::open_socket(&ns, &ifname).unwrap();
    let p2 = env.state.join("l2.pcap");
    let p2c = p2.clone();
    let h = std::thread::spawn(move || {
        topo::capture::capture_fd(
            &fd,
            &p2c,
            &topo::capture::CaptureOptions {
                duration: Some(Duration::from_millis(500)),
                ..Default::default()
            },
        )
        .unwrap()
    });
    for i in 0..4 {
        sock.send_to(format!("second {i}").as_bytes(), "10.5.0.2:9998")
            .unwrap();
    }
    let n = h.join().unwrap();
    assert!(n >= 4, "{n}");
    let ts = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&p2)
        .args(["-Y", "udp.dstport == 9998 && !icmp"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ts.stdout).lines().count(), 4);
}

#[test]
#[ignore = "needs root: network namespaces, veth links"]
fn ctrl_c_during_up_rolls_back() {
    testkit::require_root();
    let env = Env::new("sigint");
    let mut s = format!(
        "name = \"intr\"\nprefix = \"{}\"\n[[node]]\nname = \"s\"\nkind = \"switch\"\n",
        env.prefix
    );
    for h in 0..200 {
        s += &format!("[[node]]\nname = \"h{h}\"\n[[link]]\na = {{ node = \"h{h}\" }}\nb = {{ node = \"s\" }}\n");
    }
    let f = write(&env.state, "intr.toml", &s);
    let mut child = env
        .topo()
        .arg("up")
        .arg(&f)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let going = testkit::wait_until(Duration::from_secs(30), || {
        assert!(child.try_wait().unwrap().is_none(), "up ended early");
        env.namespaces().len() >= 5
    });
    assert!(going, "up never got going: not 5 namespaces in 30 s");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("rolled back"),
        "{err}"
    );
    // the process cleaned up after itself: no `down` needed
    assert!(env.namespaces().is_empty(), "{:?}", env.namespaces());
    let list = env.topo().arg("list").output().unwrap();
    assert!(
        list.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
}

/// A scratch state directory `<tmp>/st/state` with a recorded-looking
/// topology directory, a sibling `keep` beside the state directory and files
/// in its parent: what `topo down ../..` and `../../keep` used to delete.
struct Scratch {
    root: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!("topo-names-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = root.join("st").join("state");
        for d in [
            state.join("topologies").join("real"),
            root.join("st").join("keep"),
            root.join("keep"),
        ] {
            std::fs::create_dir_all(&d).unwrap();
            write(&d, "precious", "do not delete\n");
        }
        write(&root.join("st"), "precious", "do not delete\n");
        Scratch { root, state }
    }

    /// Runs the topo binary with this state directory.
    fn topo(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_topo"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .unwrap()
    }

    /// Every file under the scratch root, sorted.
    fn files(&self) -> Vec<String> {
        fn walk(d: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                out.push(p.display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(&p, out);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.root, &mut v);
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn down_of_a_path_is_refused_and_deletes_nothing() {
    let s = Scratch::new("cli");
    let before = s.files();
    for name in ["../..", "../../keep", "../keep", "..", "real/..", "/tmp"] {
        for args in [
            vec!["down", name],
            vec!["show", name],
            vec!["exec", "-t", name, "a", "--", "true"],
        ] {
            let out = s.topo(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}{stdout}");
            assert!(
                err.contains(&format!("topology name `{name}`"))
                    && !stdout.contains("nothing to do"),
                "{args:?}: {err}{stdout}"
            );
        }
        assert_eq!(s.files(), before, "`topo down {name}` changed files");
    }
    // A node, link or prefix argument is checked the same way.
    for args in [
        vec!["exec", "-t", "real", "../x", "--", "true"],
        vec!["shape", "-t", "real", "a/b", "--rate", "1mbit"],
        vec!["capture", "-t", "real", "../l:a", "-w", "x.pcap"],
        vec!["up", "--prefix", "../"],
    ] {
        let out = s.topo(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("contains \"/\""), "{args:?}: {err}");
    }
    assert_eq!(s.files(), before);
}

#[test]
fn library_down_refuses_paths_and_down_all_skips_links() {
    let s = Scratch::new("lib");
    // A symbolic link in topologies/ pointing out of the state directory is
    // not a recorded topology.
    std::os::unix::fs::symlink(s.root.join("keep"), s.state.join("topologies").join("evil"))
        .unwrap();
    let before = s.files();
    let st = topo::StateDir::new(&s.state);
    for name in ["../..", "../../keep", ".."] {
        match topo::down(name, &st) {
            Err(e @ topo::TopoError::BadName(_)) => assert!(e.is_usage(), "{e}"),
            other => panic!("down({name}) = {other:?}"),
        }
        assert!(topo::Running::attach(name, &st).is_err());
    }
    assert_eq!(
        topo::down("evil", &st).unwrap(),
        topo::DownReport::default()
    );
    assert_eq!(s.files(), before);
    assert_eq!(st.list().unwrap(), vec!["real".to_string()]);
}
