//! Bring-up, connectivity, errors, rollback and scoped cleanup, on real namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{udp_echo, Env};
use topo::{end, TopoError, Topology};

fn small(env: &Env) -> Topology {
    Topology::builder("small")
        .prefix(&env.prefix)
        .host("a")
        .host("b")
        .host("c")
        .switch("s")
        .link(
            "ab",
            end("a")
                .ifname("to-b")
                .addr("10.1.0.1/24")
                .addr("fd01::1/64"),
            end("b")
                .ifname("to-a")
                .addr("10.1.0.2/24")
                .addr("fd01::2/64"),
        )
        .link("as", end("a").ifname("lan").addr("10.2.0.1/24"), end("s"))
        .link("bs", end("b").ifname("lan").addr("10.2.0.2/24"), end("s"))
        .link("cs", end("c").ifname("lan").addr("10.2.0.3/24"), end("s"))
        .build()
        .unwrap()
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn small_topology_up_connect_down() {
    testkit::require_root();
    let env = Env::new("small");
    let t = small(&env);
    let r = topo::up(&t, &env.opts()).unwrap();
    assert_eq!(env.namespaces().len(), 4, "{:?}", env.namespaces());
    // direct veth, both IP versions
    udp_echo(&r, "a", None, "b", "10.1.0.2:7001", 3).unwrap();
    udp_echo(&r, "b", None, "a", "[fd01::1]:7002", 3).unwrap();
    // across the switch
    udp_echo(&r, "a", None, "c", "10.2.0.3:7003", 3).unwrap();
    udp_echo(&r, "c", None, "b", "10.2.0.2:7004", 3).unwrap();
    // the node's namespace is where commands run
    let out = r
        .command("a", "ip")
        .unwrap()
        .args(["-br", "addr"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("10.1.0.1/24") && text.contains("to-b"),
        "{text}"
    );
    assert!(!text.contains("10.1.0.2/24"), "{text}");
    // iproute2 sees our namespaces too
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}c", env.prefix),
            "ip",
            "-br",
            "addr",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.2.0.3/24"));
    // lo is up and carries our mark
    let lo = r
        .command("b", "ip")
        .unwrap()
        .args(["link", "show", "lo"])
        .output()
        .unwrap();
    let lo = String::from_utf8_lossy(&lo.stdout);
    assert!(
        lo.contains("UP") && lo.contains("alias minedge:small:"),
        "{lo}"
    );
    // nothing of it in our own namespace
    let host = std::process::Command::new("ip")
        .args(["-br", "link"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&host.stdout).contains("to-b"));
    let rep = r.down().unwrap();
    assert_eq!(rep.namespaces, 4);
    assert!(env.namespaces().is_empty(), "{:?}", env.namespaces());
    assert!(topo::list(&env.state_dir()).unwrap().is_empty());
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn double_up_is_an_error_and_down_of_nothing_is_harmless() {
    testkit::require_root();
    let env = Env::new("dbl");
    let t = small(&env);
    let r = topo::up(&t, &env.opts()).unwrap().guard();
    let e = topo::up(&t, &env.opts()).unwrap_err();
    assert!(
        matches!(e, TopoError::AlreadyUp(ref n) if n == "small"),
        "{e}"
    );
    assert!(e.to_string().contains("already up"), "{e}");
    assert_eq!(
        env.namespaces().len(),
        4,
        "the failed second up must not touch the first"
    );
    drop(r);
    assert!(env.namespaces().is_empty());
    let rep = topo::down("small", &env.state_dir()).unwrap();
    assert_eq!(rep, topo::DownReport::default());
    let rep = topo::down("never-was", &env.state_dir()).unwrap();
    assert_eq!(rep.namespaces, 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn paper_topology_routes_and_forwarding() {
    testkit::require_root();
    let env = Env::new("paper");
    let t = Topology::paper_default().with_prefix(&env.prefix).unwrap();
    let r = topo::up(&t, &env.opts()).unwrap().guard();
    assert_eq!(env.namespaces().len(), 10);
    // routed: upf1 -> edge1 -> cloud over N6 and WAN, and back
    udp_echo(&r, "upf1", Some("10.61.0.1"), "cloud", "10.71.0.2:7101", 3).unwrap();
    udp_echo(&r, "upf2", Some("10.62.0.1"), "cloud", "10.72.0.2:7102", 3).unwrap();
    udp_echo(&r, "cloud", Some("10.71.0.2"), "upf1", "10.61.0.1:7103", 2).unwrap();
    // control plane switch, IPv4 and IPv6
    udp_echo(&r, "core", None, "edge2", "10.0.0.22:7104", 2).unwrap();
    udp_echo(&r, "core", None, "upf1", "[fd00:c0::11]:7105", 2).unwrap();
    // N3 switch, radio, inter-edge
    udp_echo(&r, "gnb1", None, "upf2", "10.3.0.12:2152", 2).unwrap();
    udp_echo(&r, "ue1", None, "gnb1", "10.10.1.1:7106", 2).unwrap();
    udp_echo(&r, "edge1", None, "edge2", "10.80.0.2:7107", 2).unwrap();
    // forwarding on routers only
    let fwd = |n: &str| {
        r.run_in(n, || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim()
                .to_string()
        })
        .unwrap()
    };
    assert_eq!(fwd("edge1"), "1");
    assert_eq!(fwd("upf2"), "1");
    assert_eq!(fwd("cloud"), "0");
    // UE pools routed back to their UPF
    let routes = r
        .command("edge1", "ip")
        .unwrap()
        .args(["route"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("10.45.0.0/16 via 10.61.0.1 dev n6"),
        "{}",
        String::from_utf8_lossy(&routes.stdout)
    );
    // WAN and inter-edge shaped at 1 Gbit/s with an explicit burst
    let tc = r
        .command("edge1", "tc")
        .unwrap()
        .args(["class", "show", "dev", "ie"])
        .output()
        .unwrap();
    let tc = String::from_utf8_lossy(&tc.stdout);
    assert!(
        tc.contains("rate 1Gbit") && tc.contains("burst 250000b"),
        "{tc}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn multi_ue_topology() {
    testkit::require_root();
    let env = Env::new("multi");
    let t = topo::Topology::multi_ue().with_prefix(&env.prefix).unwrap();
    let r = topo::up(&t, &env.opts()).unwrap().guard();
    assert_eq!(env.namespaces().len(), t.nodes.len());
    udp_echo(&r, "ue1", None, "gnb1", "10.10.1.1:7201", 2).unwrap();
    udp_echo(&r, "ue6", None, "gnb2", "10.10.2.1:7202", 2).unwrap();
    udp_echo(&r, "ue2", None, "ue3", "10.10.1.13:7203", 2).unwrap();
    udp_echo(&r, "gnb2", None, "upf1", "10.3.0.11:7204", 2).unwrap();
    udp_echo(&r, "upf2", Some("10.62.0.1"), "cloud", "10.72.0.2:7205", 2).unwrap();
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn rollback_after_injected_faults() {
    testkit::require_root();
    for step in [
        "namespaces:3",
        "namespaces",
        "links",
        "addresses",
        "shaping",
        "emulators",
    ] {
        let env = Env::new("fault");
        let t = Topology::paper_default().with_prefix(&env.prefix).unwrap();
        let mut o = env.opts();
        o.fault = Some(step.into());
        let e = topo::up(&t, &o).unwrap_err();
        let TopoError::UpFailed {
            step: failed,
            rolled_back,
            source,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert!(matches!(**source, TopoError::Injected(_)), "{source}");
        assert_eq!(*failed, step.split(':').next().unwrap(), "{e}");
        let expect = if step == "namespaces:3" { 3 } else { 10 };
        assert_eq!(
            *rolled_back, expect,
            "{e}: every journaled namespace is checked, the ones that exist removed"
        );
        assert!(
            env.namespaces().is_empty(),
            "after fault at {step}: {:?}",
            env.namespaces()
        );
        assert!(topo::list(&env.state_dir()).unwrap().is_empty());
        // the same topology comes up fine afterwards
        let r = topo::up(&t, &env.opts()).unwrap();
        r.down().unwrap();
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn rollback_when_the_kernel_refuses_a_sysctl() {
    testkit::require_root();
    let env = Env::new("sysctl");
    let t = Topology::builder("sysctl")
        .prefix(&env.prefix)
        .host("a")
        .host("b")
        .sysctl("b", "net.ipv4.no_such_knob", "1")
        .link(
            "ab",
            end("a").addr("10.9.0.1/24"),
            end("b").addr("10.9.0.2/24"),
        )
        .build()
        .unwrap();
    let e = topo::up(&t, &env.opts()).unwrap_err();
    let mut chain = e.to_string();
    let mut s = std::error::Error::source(&e);
    while let Some(c) = s {
        chain.push_str(" | ");
        chain.push_str(&c.to_string());
        s = c.source();
    }
    assert!(
        chain.contains("failed at step `addresses`")
            && chain.contains("net.ipv4.no_such_knob")
            && chain.contains("`b`"),
        "{chain}"
    );
    assert!(env.namespaces().is_empty(), "{:?}", env.namespaces());
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn interrupt_during_up_rolls_back() {
    testkit::require_root();
    let env = Env::new("intr");
    let mut b = Topology::builder("intr").prefix(&env.prefix).switch("s");
    for i in 0..150 {
        b = b.host(&format!("h{i}"));
    }
    for i in 0..150 {
        let h = format!("h{i}");
        b = b.link(
            &h,
            end(&h)
                .ifname("eth0")
                .addr(&format!("10.7.{}.{}/16", i / 200, i % 200 + 1)),
            end("s"),
        );
    }
    let t = b.build().unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut o = env.opts();
    o.cancel = Some(flag.clone());
    let prefix = env.prefix.clone();
    let watcher = std::thread::spawn(move || {
        // "Ctrl-C" once a few namespaces exist (or after 10 s: then the
        // assertions below fail on what `up` did).
        testkit::wait_until(Duration::from_secs(10), || {
            let n = std::fs::read_dir("/run/netns")
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                        .count()
                })
                .unwrap_or(0);
            n >= 5
        });
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let e = topo::up(&t, &o).unwrap_err();
    watcher.join().unwrap();
    let TopoError::UpFailed { source, .. } = &e else {
        panic!("{e}")
    };
    assert!(matches!(**source, TopoError::Interrupted), "{e}");
    assert!(env.namespaces().is_empty(), "{:?}", env.namespaces());
}

#[test]
#[ignore = "needs root: network namespaces, veth links, bridges"]
fn a_foreign_namespace_with_our_name_is_left_alone() {
    testkit::require_root();
    let env = Env::new("foreign");
    let t = small(&env);
    let r = topo::up(&t, &env.opts()).unwrap();
    // Someone removes our `c` and makes their own namespace with that name.
    let c = format!("{}c", env.prefix);
    topo::netns::delete(&c).unwrap();
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &c])
        .status()
        .unwrap();
    assert!(st.success());
    let rep = r.down().unwrap();
    assert_eq!(rep.namespaces, 3);
    assert_eq!(rep.not_ours, vec![c.clone()]);
    assert_eq!(
        env.namespaces(),
        vec![c.clone()],
        "the foreign namespace must survive"
    );
    std::process::Command::new("ip")
        .args(["netns", "del", &c])
        .status()
        .unwrap();
}
