//! Crash consistency (issue 13 item 7): 200 PDU session setups run at once
//! through the gNB's N1 relay (the emulated-UEs radio mode of the
//! setup-rate bench), one daemon is killed with SIGKILL half way and
//! started again; once the system has settled, every session the SMF holds
//! has its UPF session, its gNB tunnel and its UE address, nothing else is
//! left at the UPF, the gNB or in the pools, and a sample of the sessions
//! carries traffic (a UDP round trip from the session's address to the
//! edge). Needs root and the daemon binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{namespaces_with, Bed};
use testbed::bed::{http_in, parse_prometheus};
use testbed::plan::PlanOpts;
use testbed::{BedState, UpOpts};

const SETUPS: usize = 200;
const IN_FLIGHT: usize = 16;
/// Kill when this many setups have been answered.
const KILL_AFTER: usize = 80;
const ECHO_PORT: u16 = 9077;

/// What each daemon holds once the system settled.
#[derive(Debug, Default)]
struct Census {
    /// SMF sessions: (ue, psi, ue_addr, dl_teid, up_seid, state).
    smf: Vec<(String, u8, Ipv4Addr, u32, u64, String)>,
    /// The UPF's sessions (UP SEIDs).
    upf: BTreeSet<u64>,
    /// The gNB's tunnels: (ue, psi, ue_addr, dl_teid).
    gnb: BTreeSet<(String, u8, Ipv4Addr, u32)>,
    /// Addresses the SMF's pool of the UPF has handed out.
    pool_in_use: usize,
}

impl Census {
    fn take(st: &BedState) -> Result<Census, String> {
        let get = |ns: &str, url: &str| -> Result<String, String> {
            let (code, body) = http_in(ns, "GET", url, None, Duration::from_secs(5))?;
            if code != 200 {
                return Err(format!("{url}: HTTP {code}: {body}"));
            }
            Ok(body)
        };
        let core = st.ns(&st.plan.smf_node);
        let smf_api = st.plan.smf_api;
        let sessions: serde_json::Value =
            serde_json::from_str(&get(&core, &format!("http://{smf_api}/sessions"))?)
                .map_err(|e| e.to_string())?;
        let mut c = Census::default();
        for s in sessions.as_array().ok_or("sessions: not an array")? {
            c.smf.push((
                s["ue_id"].as_str().unwrap_or_default().to_string(),
                s["pdu_session_id"].as_u64().unwrap_or(0) as u8,
                s["ue_addr"].as_str().unwrap_or("0.0.0.0").parse().unwrap(),
                s["dl_teid"].as_u64().unwrap_or(0) as u32,
                s["up_seid"].as_u64().unwrap_or(0),
                s["state"].as_str().unwrap_or_default().to_string(),
            ));
        }
        let upfs: serde_json::Value =
            serde_json::from_str(&get(&core, &format!("http://{smf_api}/upfs"))?)
                .map_err(|e| e.to_string())?;
        c.pool_in_use = upfs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| u["name"] == "upf1")
            .flat_map(|u| u["pools"].as_array().cloned().unwrap_or_default())
            .map(|p| p["in_use"].as_u64().unwrap_or(0) as usize)
            .sum();
        let upf = st.plan.upf("upf1").ok_or("no upf1")?;
        let metrics = get(&st.ns("upf1"), &format!("http://{}/metrics", upf.metrics))?;
        for (k, _) in parse_prometheus(&metrics) {
            if let Some(rest) = k.strip_prefix("upf_session_packets_total{seid=\"") {
                if let Some(seid) = rest.split('"').next().and_then(|s| s.parse().ok()) {
                    c.upf.insert(seid);
                }
            }
        }
        let g = &st.plan.gnbs[0];
        let tunnels: serde_json::Value = serde_json::from_str(&get(
            &st.ns(&g.name),
            &format!("http://{}/tunnels", g.n2_api),
        )?)
        .map_err(|e| e.to_string())?;
        for t in tunnels.as_array().ok_or("tunnels: not an array")? {
            c.gnb.insert((
                t["ue_id"].as_str().unwrap_or_default().to_string(),
                t["pdu_session_id"].as_u64().unwrap_or(0) as u8,
                t["ue_addr"].as_str().unwrap_or("0.0.0.0").parse().unwrap(),
                t["dl_teid"].as_u64().unwrap_or(0) as u32,
            ));
        }
        Ok(c)
    }

    /// Whether no session is on its way somewhere.
    fn settled(&self) -> bool {
        self.smf.iter().all(|s| s.5 == "active")
    }

    /// What does not agree, one line each (empty: consistent).
    fn disagreements(&self) -> Vec<String> {
        let mut out = Vec::new();
        let smf_seids: BTreeSet<u64> = self.smf.iter().map(|s| s.4).collect();
        let smf_tunnels: BTreeSet<(String, u8, Ipv4Addr, u32)> = self
            .smf
            .iter()
            .map(|s| (s.0.clone(), s.1, s.2, s.3))
            .collect();
        for s in smf_seids.difference(&self.upf) {
            out.push(format!("SMF session with UP SEID {s} has no UPF session"));
        }
        for s in self.upf.difference(&smf_seids) {
            out.push(format!("UPF session {s} leaked (the SMF does not know it)"));
        }
        for t in smf_tunnels.difference(&self.gnb) {
            out.push(format!("SMF session {t:?} has no gNB tunnel"));
        }
        for t in self.gnb.difference(&smf_tunnels) {
            out.push(format!(
                "gNB tunnel {t:?} leaked (the SMF does not know it)"
            ));
        }
        if smf_seids.len() != self.smf.len() || smf_tunnels.len() != self.smf.len() {
            out.push(format!(
                "{} SMF sessions share {} UP SEIDs and {} tunnels",
                self.smf.len(),
                smf_seids.len(),
                smf_tunnels.len()
            ));
        }
        if self.pool_in_use != self.smf.len() {
            out.push(format!(
                "{} UE addresses in use for {} sessions",
                self.pool_in_use,
                self.smf.len()
            ));
        }
        out
    }
}

fn ip(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run ip")
}

/// A session's address put on the UE's radio interface with its own
/// routing table (as the UE daemon does it); removed on drop.
struct UeAddr {
    ns: String,
    addr: Ipv4Addr,
    iface: String,
    table: String,
}

impl UeAddr {
    fn add(ns: &str, iface: &str, addr: Ipv4Addr, gw: Ipv4Addr, table: u32) -> UeAddr {
        let (a, t) = (format!("{addr}/32"), table.to_string());
        let g = UeAddr {
            ns: ns.into(),
            addr,
            iface: iface.into(),
            table: t.clone(),
        };
        for args in [
            vec!["addr", "add", &a, "dev", iface],
            vec![
                "route",
                "add",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                iface,
                "table",
                &t,
            ],
            vec!["rule", "add", "from", &a, "table", &t, "pref", "90"],
        ] {
            let o = ip(ns, &args);
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        }
        g
    }
}

impl Drop for UeAddr {
    fn drop(&mut self) {
        let a = format!("{}/32", self.addr);
        ip(&self.ns, &["rule", "del", "from", &a, "table", &self.table]);
        ip(&self.ns, &["route", "flush", "table", &self.table]);
        ip(&self.ns, &["addr", "del", &a, "dev", &self.iface]);
    }
}

/// The UE's radio interface: the one holding its radio address.
fn radio_iface(ns: &str, radio: Ipv4Addr) -> String {
    let o = ip(ns, &["-o", "-4", "addr", "show"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.contains(&format!(" {radio}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no interface with {radio} in {ns}"))
}

/// Whether a UDP datagram from `src` comes back from the echo at `to`.
fn round_trip(ns: &str, src: Ipv4Addr, to: SocketAddrV4) -> bool {
    topo::netns::run_in_netns(ns, move || {
        let Ok(s) = UdpSocket::bind(SocketAddr::from((src, 0))) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 64];
        (0..30).any(|_| {
            let _ = s.send_to(b"crash-probe", to);
            s.recv(&mut buf).is_ok_and(|n| &buf[..n] == b"crash-probe")
        })
    })
    .unwrap_or(false)
}

/// Starts `SETUPS` setups through the gNB's N1 relay from the UE's
/// namespace, `IN_FLIGHT` at a time; `answered` counts the answers (of any
/// kind). Returns (established, failed).
fn start_setups(
    st: &BedState,
    answered: Arc<AtomicUsize>,
    kill: impl Fn() + Send + Sync + 'static,
) -> std::thread::JoinHandle<(usize, usize)> {
    let kill = Arc::new(kill);
    let ue = &st.plan.ues[0];
    let g = st.plan.gnbs.iter().find(|g| g.name == ue.gnb).expect("gnb");
    let n1 = format!("http://{}/n1/sessions", g.n1_api);
    let dnn = st.plan.upf("upf1").expect("upf1").dnn.clone();
    let ns = st.ns(&ue.name);
    std::thread::spawn(move || {
        topo::netns::run_in_netns(&ns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let http = ctlhttp::Client::new(Duration::from_secs(20));
                let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
                let mut tasks = Vec::new();
                for k in 0..SETUPS {
                    let permit = sem.clone().acquire_owned().await.expect("permit");
                    let (http, n1, dnn, answered, kill) = (
                        http.clone(),
                        n1.clone(),
                        dnn.clone(),
                        answered.clone(),
                        kill.clone(),
                    );
                    tasks.push(tokio::spawn(async move {
                        let req = wire::ctl::SessionRequest {
                            ue_id: format!("imsi-99901{k:010}"),
                            pdu_session_id: 1,
                            dnn,
                            upf: Some("upf1".into()),
                            gnb: None,
                        };
                        let body = serde_json::to_vec(&req).expect("json");
                        let ok = matches!(
                            http.post_json(&n1, body).await.map(|r| r.status),
                            Ok(200 | 201)
                        );
                        if answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                            kill();
                        }
                        drop(permit);
                        ok
                    }));
                }
                let mut ok = 0;
                for t in tasks {
                    ok += usize::from(t.await.unwrap_or(false));
                }
                (ok, SETUPS - ok)
            })
        })
        .expect("setups in the UE's namespace")
    })
}

/// Brings a testbed up, runs the setups, kills `daemon` half way, restarts
/// it, waits until the system settled and checks it.
fn crash_during_setups(tag: &str, daemon: &str) {
    testkit::require_root();
    common::require_daemon_bins();
    let bed = Bed::new(tag);
    let opts = UpOpts {
        prefix: Some(bed.prefix.clone()),
        state_dir: Some(bed.state.clone()),
        run_dir: Some(bed.run.clone()),
        plan: PlanOpts {
            radio_link: Some(gnb::radio::RadioLink::EmulatedUes),
            ..PlanOpts::default()
        },
        ..UpOpts::default()
    };
    let st = testbed::up(&opts).expect("testbed up");
    let answered = Arc::new(AtomicUsize::new(0));
    let victim = st.proc(daemon).expect("the daemon to kill").clone();
    // SIGKILL from the setups' own thread at the KILL_AFTER-th answer, while
    // the others are in flight; the restart comes after.
    let kill = move || {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    };
    let load = start_setups(&st, answered.clone(), kill);
    assert!(
        testkit::wait_until(Duration::from_secs(60), || answered.load(Ordering::SeqCst)
            >= KILL_AFTER),
        "{KILL_AFTER} setups were not answered within 60 s"
    );
    testbed::bed::restart(
        Some(&bed.state),
        None,
        daemon,
        true,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("restart {daemon}: {e}"));
    let (established, failed) = load.join().expect("setups");
    let at = KILL_AFTER;
    // Settled: no session on its way, and the same census twice in a row.
    let mut last = String::new();
    let mut census = None;
    let settled = testkit::wait_until(Duration::from_secs(60), || {
        let Ok(c) = Census::take(&st) else {
            return false;
        };
        let now = format!("{:?}", (&c.smf, &c.upf, &c.gnb, c.pool_in_use));
        let stable = c.settled() && now == last && c.disagreements().is_empty();
        last = now;
        census = Some(c);
        stable
    });
    let c = census.expect("a census");
    let summary = format!(
        "{daemon} killed after {at} answers: {established} setups answered OK, {failed} failed; \
         settled: SMF {} sessions, UPF {}, gNB {} tunnels, {} addresses in use",
        c.smf.len(),
        c.upf.len(),
        c.gnb.len(),
        c.pool_in_use
    );
    eprintln!("{summary}");
    if !settled || std::env::var_os("CRASH_KEEP_LOGS").is_some() {
        // The daemons' logs outlive the testbed, for a look at what failed.
        let keep = std::env::temp_dir().join(format!("crash-logs-{daemon}"));
        let _ = std::fs::remove_dir_all(&keep);
        let _ = Command::new("cp")
            .arg("-r")
            .arg(bed.run.join("logs"))
            .arg(&keep)
            .status();
        eprintln!("logs kept in {}", keep.display());
    }
    assert!(
        settled,
        "{summary}\nnot consistent within 60 s:\n{}",
        c.disagreements().join("\n")
    );
    // A sample carries traffic: up to 5 sessions, a round trip each.
    let upf = st.plan.upf("upf1").expect("upf1").clone();
    // A UDP echo on the edge's N6 address, stopped on drop.
    let at = SocketAddrV4::new(upf.edge_n6, ECHO_PORT);
    let _echo = testkit::udp_echo(testkit::udp_in(&st.ns(&upf.edge), at).expect("bind the echo"))
        .expect("echo in the edge's namespace");
    let ue = &st.plan.ues[0];
    let g = st.plan.gnbs.iter().find(|g| g.name == ue.gnb).expect("gnb");
    let ue_ns = st.ns(&ue.name);
    let iface = radio_iface(&ue_ns, ue.radio);
    let step = (c.smf.len() / 5).max(1);
    for (i, s) in c.smf.iter().step_by(step).take(5).enumerate() {
        let _addr = UeAddr::add(&ue_ns, &iface, s.2, g.radio, 3000 + i as u32);
        assert!(
            round_trip(&ue_ns, s.2, SocketAddrV4::new(upf.edge_n6, ECHO_PORT)),
            "{summary}\nsession {s:?} carries no traffic"
        );
    }
    drop(bed);
    assert!(namespaces_with(&opts.prefix.unwrap()).is_empty());
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn upf_killed_during_setups_leaves_nothing_behind() {
    crash_during_setups("ku", "upf1");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn smf_killed_during_setups_leaves_nothing_behind() {
    crash_during_setups("ks", "smf");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn gnb_killed_during_setups_leaves_nothing_behind() {
    crash_during_setups("kg", "gnb1");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn ue_killed_during_setups_leaves_nothing_behind() {
    crash_during_setups("ke", "ue1");
}
