//! `testbed bench dataplane` (issue 15 item 1): the user plane side by side
//! with the kernel, in one run on the default topology.
//!
//! Brings its own testbed up, gives the first UE a PDU session through the
//! first gNB and UPF, and measures between the UE's namespace and the
//! UPF's edge, on three paths over the same namespaces and veths
//! ([`paths`]): (a) GTP-U through `gnb` and `upf`, (b) plain IP routed by
//! the kernels, (c) a kernel VXLAN tunnel on N3. Each repeat runs every
//! path (in an order that rotates per repeat) through the same generator
//! ([`gen`]): TCP bulk with 1 and 4 streams up and down, the highest UDP
//! rate under 0.1% loss at 64 and 1400 bytes up and down, and the round
//! trip under light load. Before any traffic it reads the CPU `gnb` and
//! `upf` use at idle. Writes `dataplane.json` and `dataplane.md` into the
//! run folder; everything it added is removed, then the testbed goes down.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bed::{BedError, BedState, UpOpts};
use crate::bench::Dist;
use crate::plan::{GnbPlan, UePlan, UpfPlan};
use crate::responder::UdpResponder;

pub mod drops;
pub mod exact;
pub mod gen;
pub mod many;
pub mod paths;
pub mod report;
pub mod workers;

use gen::End;
use paths::{Paths, KERNEL_UE, VXLAN_UE};
pub use report::{DataplaneReport, Path, Row, PATHS};

/// UDP port of the round-trip echo on the edge.
const ECHO_PORT: u16 = 9002;
/// First port of the sinks (each trial takes the next).
const FIRST_PORT: u16 = 20000;

/// `testbed bench dataplane`'s options (besides the global --state-dir
/// and --bin-dir).
#[derive(clap::Args, Debug, Clone)]
pub struct DataplaneArgs {
    /// Run folder for configs/, logs/ and the report (default ./results/run-<UTC time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Prefix of every namespace name.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Repeats of every test on every path (median and spread).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// One repeat with short intervals (for CI; figures are rough).
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Sessions installed on the measured gNB and UPF for a second round
    /// of path (a), which measures every test with them and without them,
    /// alternating (the SMF sets up the extra ones for emulated UEs); 1:
    /// no second round.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
}

/// Most sessions `--sessions` takes (the UE pool of the default topology
/// is a /16).
pub const MAX_SESSIONS: usize = 60_000;

/// How long each measurement runs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Repeats.
    pub repeats: usize,
    /// TCP: transfer before the window.
    pub tcp_warm: Duration,
    /// TCP: the measured window.
    pub tcp_window: Duration,
    /// UDP: one trial at one rate.
    pub udp_trial: Duration,
    /// UDP: trials per search.
    pub udp_steps: usize,
    /// Round-trip probes per path and repeat.
    pub rtt_probes: usize,
    /// Idle CPU: reading interval.
    pub idle: Duration,
}

impl Timing {
    /// From the options.
    pub fn of(a: &DataplaneArgs) -> Result<Timing, BedError> {
        if !(1..=MAX_SESSIONS).contains(&a.sessions) {
            return Err(BedError::Usage(format!(
                "--sessions {}: must be 1 to {MAX_SESSIONS}",
                a.sessions
            )));
        }
        if a.quick {
            return Ok(Timing {
                repeats: 1,
                tcp_warm: Duration::from_millis(100),
                tcp_window: Duration::from_millis(300),
                udp_trial: Duration::from_millis(100),
                udp_steps: 4,
                rtt_probes: 50,
                idle: Duration::from_secs(1),
            });
        }
        if !(1..=100).contains(&a.repeats) {
            return Err(BedError::Usage(format!(
                "--repeats {}: must be 1 to 100",
                a.repeats
            )));
        }
        Ok(Timing {
            repeats: a.repeats,
            tcp_warm: Duration::from_millis(200),
            tcp_window: Duration::from_millis(800),
            udp_trial: Duration::from_millis(250),
            udp_steps: 6,
            rtt_probes: 200,
            idle: Duration::from_secs(3),
        })
    }
}

/// The tests: name, unit, and what runs it.
#[derive(Clone, Copy, Debug)]
enum Test {
    Tcp { streams: usize, up: bool },
    Udp { size: usize, up: bool },
}

impl Test {
    /// What its figure counts.
    fn unit(self) -> &'static str {
        match self {
            Test::Tcp { .. } => "Gbit/s",
            Test::Udp { .. } => "kpps",
        }
    }

    /// Whether its data goes up (UE to edge).
    fn up(self) -> bool {
        match self {
            Test::Tcp { up, .. } | Test::Udp { up, .. } => up,
        }
    }
}

const TESTS: [(&str, Test); 8] = [
    (
        "tcp-1-up",
        Test::Tcp {
            streams: 1,
            up: true,
        },
    ),
    (
        "tcp-1-down",
        Test::Tcp {
            streams: 1,
            up: false,
        },
    ),
    (
        "tcp-4-up",
        Test::Tcp {
            streams: 4,
            up: true,
        },
    ),
    (
        "tcp-4-down",
        Test::Tcp {
            streams: 4,
            up: false,
        },
    ),
    ("udp-64-up", Test::Udp { size: 64, up: true }),
    (
        "udp-64-down",
        Test::Udp {
            size: 64,
            up: false,
        },
    ),
    (
        "udp-1400-up",
        Test::Udp {
            size: 1400,
            up: true,
        },
    ),
    (
        "udp-1400-down",
        Test::Udp {
            size: 1400,
            up: false,
        },
    ),
];

/// Brings a testbed up, measures, writes the report into the run folder,
/// and takes everything down again, also on failure.
pub fn run(
    a: &DataplaneArgs,
    dirs: &UpOpts,
    on_progress: &mut dyn FnMut(&str),
) -> Result<DataplaneReport, BedError> {
    let timing = Timing::of(a)?;
    let mut opts = UpOpts {
        run_dir: a.run_dir.clone(),
        prefix: a.prefix.clone(),
        ..dirs.clone()
    };
    // No session MBR: the SMF's default (1 Gbit/s) would cap path (a).
    opts.plan.session_mbr_kbps = Some(0);
    let (r, _) = crate::bed::up_run_down(&opts, false, on_progress, |st, on_progress| {
        let r = measure(st, &timing, a.quick, a.sessions, on_progress)?;
        let json = st.run_dir.join("dataplane.json");
        let text = serde_json::to_string_pretty(&r).unwrap_or_default();
        write(&json, &text)?;
        let md = st.run_dir.join("dataplane.md");
        let mut cmd = "testbed bench dataplane".to_string();
        if a.quick {
            cmd.push_str(" --quick");
        }
        if a.sessions > 1 {
            cmd.push_str(&format!(" --sessions {}", a.sessions));
        }
        let text = format!("# Data plane: `{cmd}`\n\n{}", report::markdown(&r));
        write(&md, &text)?;
        let bad: Vec<String> = r
            .exact
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                format!(
                    "{} on {}: {}",
                    c.test,
                    c.path.title(),
                    c.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        if !bad.is_empty() {
            return Err(BedError::Request(format!(
                "byte-exact transfers failed ({}); the report is in {}",
                bad.join("; "),
                st.run_dir.display()
            )));
        }
        Ok(r)
    })?;
    Ok(r)
}

fn write(path: &std::path::Path, text: &str) -> Result<(), BedError> {
    std::fs::write(path, text).map_err(|source| BedError::Io {
        what: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// The first UE, its gNB and the first UPF: the path that `bench
/// dataplane` measures and `testbed probe` tries.
pub(crate) fn first_path(st: &BedState) -> Result<(&UePlan, &GnbPlan, &UpfPlan), BedError> {
    let usage = |m: &str| BedError::Usage(m.to_string());
    let ue = st
        .plan
        .ues
        .first()
        .ok_or_else(|| usage("the topology has no UE"))?;
    let gnb = st
        .plan
        .gnbs
        .iter()
        .find(|g| g.name == ue.gnb)
        .ok_or_else(|| usage("the first UE has no gNB"))?;
    let upf = st
        .plan
        .upfs
        .first()
        .ok_or_else(|| usage("the topology has no UPF"))?;
    Ok((ue, gnb, upf))
}

/// The measurements on a testbed that is up.
fn measure(
    st: &BedState,
    t: &Timing,
    quick: bool,
    sessions: usize,
    on_progress: &mut dyn FnMut(&str),
) -> Result<DataplaneReport, BedError> {
    let (ue, gnb, upf) = first_path(st)?;
    let t0 = Instant::now();
    let mut setup = BTreeMap::new();
    for (k, v) in [
        ("ue", &ue.name),
        ("gnb", &gnb.name),
        ("upf", &upf.name),
        ("edge", &upf.edge),
    ] {
        setup.insert(k.to_string(), v.clone());
    }
    let p = Paths::setup(st, ue, gnb, upf).map_err(BedError::Request)?;
    setup.insert("tunnel_ue_addr".into(), p.session.to_string());
    setup.insert("kernel_ue_addr".into(), KERNEL_UE.to_string());
    setup.insert("kernel_tunnel_ue_addr".into(), VXLAN_UE.to_string());
    setup.insert(
        "kernel_tunnel".into(),
        format!("VXLAN on N3, UDP port {}", paths::VXLAN_PORT),
    );
    setup.insert("sink".into(), p.edge_addr.to_string());
    setup.insert("session_mbr".into(), "none (the SMF's [mbr] is 0)".into());
    on_progress(&format!(
        "{}: idle CPU of {} and {} with the session up over {:.0} s ...",
        st.topology,
        gnb.name,
        upf.name,
        t.idle.as_secs_f64()
    ));
    let meter = CpuMeter::new(st, &[&gnb.name, &upf.name])?;
    let before = meter.read()?;
    // The measurement window itself (not a synchronisation).
    std::thread::sleep(t.idle);
    let idle = meter.since(&before)?;
    let echo_at = SocketAddrV4::new(p.edge_addr, ECHO_PORT);
    let _echo = UdpResponder::start(&p.edge_ns, echo_at, "RTT echo", |d, _, out| {
        out.extend_from_slice(d)
    })?;
    let ue_end = |path: Path| End {
        ns: p.ue_ns.clone(),
        addr: match path {
            Path::Tunnel => p.session,
            Path::Kernel => KERNEL_UE,
            Path::KernelTunnel => VXLAN_UE,
        },
    };
    let edge = End {
        ns: p.edge_ns.clone(),
        addr: p.edge_addr,
    };
    let mut port = FIRST_PORT;
    on_progress("byte-exact transfers on every path (TCP, UDP, UDP GSO) ...");
    let mut exact = Vec::new();
    for path in PATHS {
        exact.extend(exact::run(path, &ue_end(path), &edge, echo_at, &mut port));
    }
    let mut samples: BTreeMap<&str, BTreeMap<Path, Vec<f64>>> = BTreeMap::new();
    let mut rtts: BTreeMap<Path, Vec<u64>> = BTreeMap::new();
    // Wall time per test over every path and repeat; the daemons' CPU
    // during each test on path (a).
    let mut test_seconds: BTreeMap<&str, f64> = BTreeMap::new();
    let mut busy: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    // The kernel's drop counters along the path, around each UDP search.
    let census = drops::Census::new(vec![
        (ue.name.clone(), p.ue_ns.clone()),
        (gnb.name.clone(), st.ns(&gnb.name)),
        (upf.name.clone(), st.ns(&upf.name)),
        (upf.edge.clone(), p.edge_ns.clone()),
    ]);
    let mut udp_drops: BTreeMap<&str, BTreeMap<Path, drops::Counters>> = BTreeMap::new();
    // Which workers carried each test on path (a).
    let worker_meter = workers::Meter::new(st, gnb, upf);
    let mut shares: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for rep in 0..t.repeats {
        for k in 0..PATHS.len() {
            let path = PATHS[(k + rep) % PATHS.len()];
            let ue_end = ue_end(path);
            on_progress(&format!(
                "repeat {}/{}: {} ...",
                rep + 1,
                t.repeats,
                path.title()
            ));
            // The round trip first (it also resolves every neighbour).
            let gap = Duration::from_millis(1);
            let rtt_t0 = Instant::now();
            let r = gen::rtt(&ue_end, echo_at, t.rtt_probes, gap)
                .map_err(|e| BedError::Request(format!("{}: {e}", path.title())))?;
            rtts.entry(path).or_default().extend(r);
            *test_seconds.entry("rtt").or_default() += rtt_t0.elapsed().as_secs_f64();
            for (name, test) in TESTS {
                let counted = matches!(test, Test::Udp { .. })
                    .then(|| census.read())
                    .transpose()
                    .map_err(BedError::Request)?;
                let on_workers = (path == Path::Tunnel)
                    .then(|| worker_meter.read())
                    .transpose()
                    .map_err(BedError::Request)?;
                let before = meter.read()?;
                let v = run_test(test, &ue_end, &edge, &mut port, t)
                    .map_err(|e| BedError::Request(format!("{name} on {}: {e}", path.title())))?;
                if let Some(c0) = counted {
                    let c1 = census.read().map_err(BedError::Request)?;
                    let into = udp_drops.entry(name).or_default().entry(path).or_default();
                    drops::add(into, drops::grew(&c0, &c1));
                }
                *test_seconds.entry(name).or_default() += before.0.elapsed().as_secs_f64();
                if let Some(w0) = on_workers {
                    let w1 = worker_meter.read().map_err(BedError::Request)?;
                    for (daemon, share) in worker_meter.shares(&w0, &w1, test.up()) {
                        shares
                            .entry(name)
                            .or_default()
                            .entry(daemon)
                            .or_default()
                            .push(share);
                    }
                }
                if path == Path::Tunnel {
                    for d in meter.since(&before)? {
                        busy.entry(name)
                            .or_default()
                            .entry(d.daemon)
                            .or_default()
                            .push(d.percent);
                    }
                }
                samples
                    .entry(name)
                    .or_default()
                    .entry(path)
                    .or_default()
                    .push(v);
            }
        }
    }
    let rows: Vec<Row> = TESTS
        .iter()
        .map(|(name, test)| {
            Row::new(
                name,
                test.unit(),
                samples.get(name).unwrap_or(&BTreeMap::new()),
            )
        })
        .collect();
    let mut rtt_us = BTreeMap::new();
    let mut rtt_probes = BTreeMap::new();
    for (path, v) in &rtts {
        if let Some(d) = Dist::of(v) {
            rtt_us.insert(*path, report::Rtt::of(&d));
            rtt_probes.insert(*path, d.n);
        }
    }
    let added = match (rtt_us.get(&Path::Tunnel), rtt_us.get(&Path::Kernel)) {
        (Some(a), Some(b)) => report::Rtt {
            p50: a.p50 - b.p50,
            p99: a.p99 - b.p99,
        },
        _ => report::Rtt { p50: 0.0, p99: 0.0 },
    };
    let many_sessions = if sessions > 1 {
        Some(many_round(
            st,
            upf,
            sessions,
            |test| {
                let w0 = worker_meter.read()?;
                let v = run_test(test, &ue_end(Path::Tunnel), &edge, &mut port, t)?;
                let w1 = worker_meter.read()?;
                Ok((v, worker_meter.shares(&w0, &w1, test.up())))
            },
            t.repeats,
            on_progress,
        )?)
    } else {
        None
    };
    let mut paths = p;
    drop(_echo);
    let measure_seconds = t0.elapsed().as_secs_f64();
    // Remove what the bench added now, so that a failure to do so is seen.
    let teardown = std::mem::take(&mut paths.teardown_errors);
    drop(paths);
    if !teardown.is_empty() {
        return Err(BedError::Request(format!(
            "removing what the bench added: {}",
            teardown.join("; ")
        )));
    }
    let generator_note = report::generator_note(&rows);
    Ok(DataplaneReport {
        exact,
        added_rtt_us: added,
        rtt_us,
        rtt_probes,
        idle_cpu_percent: idle.iter().map(|d| d.percent).sum(),
        idle_cpu: idle,
        idle_seconds: t.idle.as_secs_f64(),
        repeats: t.repeats,
        quick,
        setup,
        generator_note,
        many_sessions,
        measure_seconds,
        run_dir: st.run_dir.display().to_string(),
        rows,
        busiest_worker_share: shares
            .into_iter()
            .map(|(test, m)| (test.to_string(), m))
            .collect(),
        udp_drops: udp_drops
            .into_iter()
            .map(|(test, m)| (test.to_string(), m))
            .collect(),
        busy_cpu_percent: busy
            .into_iter()
            .map(|(test, m)| {
                let m = m
                    .into_iter()
                    .map(|(d, v)| (d, report::Cell::of(&v).map_or(0.0, |c| c.median)))
                    .collect();
                (test.to_string(), m)
            })
            .collect(),
        test_seconds: test_seconds
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    })
}

/// The round of `--sessions N`: path (a)'s tests with the N - 1 extra
/// sessions installed and with them released, alternating within each
/// repeat (installed then released in even repeats, the other way round in
/// odd ones), so both figures of a test come from the same minutes of the
/// machine's life; one set-up and one release per repeat.
fn many_round(
    st: &BedState,
    upf: &UpfPlan,
    sessions: usize,
    mut run: impl FnMut(Test) -> Result<(f64, BTreeMap<String, f64>), String>,
    repeats: usize,
    on_progress: &mut dyn FnMut(&str),
) -> Result<many::ManySessions, BedError> {
    let first = many::Extra::install(st, upf, sessions - 1, on_progress)?;
    let setup_seconds = first.setup_seconds;
    let mut extra = Some(first);
    let url = format!("http://{}/metrics", upf.metrics);
    let (_, text) =
        crate::bed::http_in(&st.ns(&upf.name), "GET", &url, None, Duration::from_secs(5))
            .map_err(BedError::Request)?;
    let upf_sessions = crate::bed::parse_prometheus(&text)
        .into_iter()
        .find(|(k, _)| k == "upf_sessions")
        .map_or(0, |(_, v)| v as u64);
    if upf_sessions < sessions as u64 {
        return Err(BedError::Request(format!(
            "{} holds {upf_sessions} sessions, not the {sessions} asked for",
            upf.name
        )));
    }
    // Per test: the figures and worker shares alone ([0]) and with the
    // extra sessions ([1]), one per repeat.
    let mut got: Vec<[many::Measured; 2]> = TESTS.iter().map(|_| Default::default()).collect();
    for rep in 0..repeats {
        let order = if rep % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for installed in order {
            if !installed {
                if let Some(e) = extra.take() {
                    e.finish()?;
                }
            } else if extra.is_none() {
                extra = Some(many::Extra::install(st, upf, sessions - 1, on_progress)?);
            }
            for ((name, test), g) in TESTS.iter().zip(got.iter_mut()) {
                on_progress(&format!(
                    "repeat {}/{repeats}, {}: {name} on {} ...",
                    rep + 1,
                    if installed {
                        format!("{sessions} sessions installed")
                    } else {
                        "the extra sessions released".to_string()
                    },
                    Path::Tunnel.title()
                ));
                let (x, by_daemon) = run(*test).map_err(|e| {
                    BedError::Request(format!(
                        "{name} with {} sessions: {e}",
                        if installed { sessions } else { 1 }
                    ))
                })?;
                g[usize::from(installed)].push(x, by_daemon);
            }
        }
    }
    if let Some(e) = extra.take() {
        e.finish()?;
    }
    let rows = TESTS
        .iter()
        .zip(got)
        .map(|((name, test), [one, many])| many::ManyRow::of(name, test.unit(), one, many))
        .collect();
    Ok(many::ManySessions {
        installed: sessions,
        upf_sessions,
        setup_seconds,
        rows,
    })
}

/// Runs one test once between the UE's end `ue` and the edge's, in the
/// test's direction; Gbit/s (TCP) or kpps (UDP).
fn run_test(test: Test, ue: &End, edge: &End, port: &mut u16, t: &Timing) -> Result<f64, String> {
    let (tx, rx) = if test.up() { (ue, edge) } else { (edge, ue) };
    let mut next = || {
        *port = if *port >= 60000 {
            FIRST_PORT
        } else {
            *port + 1
        };
        *port
    };
    match test {
        Test::Tcp { streams, .. } => {
            let bps = gen::tcp_bulk(tx, rx, next(), streams, t.tcp_warm, t.tcp_window)?;
            Ok(bps * 8.0 / 1e9)
        }
        Test::Udp { size, .. } => {
            let s = gen::search(
                |r| gen::udp_trial(tx, rx, next(), size, r, t.udp_trial),
                t.udp_steps,
            )?;
            if s.pps == 0.0 {
                let tried: Vec<String> = s
                    .trials
                    .iter()
                    .map(|x| format!("{:.0} pps: {:.2}% lost", x.offered, x.loss() * 100.0))
                    .collect();
                return Err(format!(
                    "no rate held under 0.1% loss ({})",
                    tried.join(", ")
                ));
            }
            Ok(s.pps / 1e3)
        }
    }
}

/// The CPU the daemons use, from their process CPU clocks (every thread's
/// run time in nanoseconds, as `clock_getcpuclockid` gives it).
/// /proc/PID/stat counts in ticks of 10 ms, a third of a percent over 3 s:
/// too coarse for a goal of 2% at idle.
struct CpuMeter {
    procs: Vec<(String, i32)>,
}

impl CpuMeter {
    fn new(st: &BedState, names: &[&str]) -> Result<CpuMeter, BedError> {
        let procs = names
            .iter()
            .map(|n| {
                st.proc(n).map(|p| (p.name.clone(), p.pid)).ok_or_else(|| {
                    BedError::Request(format!("no daemon {n} in the testbed's record"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CpuMeter { procs })
    }

    /// Each daemon's CPU clock now, with the time it was read.
    fn read(&self) -> Result<(Instant, Vec<u64>), BedError> {
        let v = self
            .procs
            .iter()
            .map(|(name, pid)| {
                cpu_ns(*pid).map_err(|e| {
                    BedError::Request(format!(
                        "CPU clock of {name} (pid {pid}): {e} (did the daemon exit?)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((Instant::now(), v))
    }

    /// Percent of one core each daemon used since `before`.
    fn since(&self, before: &(Instant, Vec<u64>)) -> Result<Vec<report::IdleCpu>, BedError> {
        let (t1, now) = self.read()?;
        let secs = t1.duration_since(before.0).as_secs_f64().max(1e-9);
        Ok(self
            .procs
            .iter()
            .zip(now.iter().zip(&before.1))
            .map(|((name, pid), (n, b))| report::IdleCpu {
                daemon: name.clone(),
                pid: *pid,
                percent: n.saturating_sub(*b) as f64 / 1e9 / secs * 100.0,
            })
            .collect())
    }
}

/// CPU time of process `pid` (all its threads), nanoseconds.
fn cpu_ns(pid: i32) -> std::io::Result<u64> {
    let mut clk: libc::clockid_t = 0;
    // SAFETY: clk is a valid out pointer.
    let r = unsafe { libc::clock_getcpuclockid(pid, &mut clk) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out pointer.
    if unsafe { libc::clock_gettime(clk, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// For people: the table, the round trips, idle CPU, and the notes.
pub fn print_human(r: &DataplaneReport) {
    println!(
        "\nuser plane: {} -> {} -> {} -> {} and back ({} repeat(s))\n",
        r.setup.get("ue").map_or("?", String::as_str),
        r.setup.get("gnb").map_or("?", String::as_str),
        r.setup.get("upf").map_or("?", String::as_str),
        r.setup.get("edge").map_or("?", String::as_str),
        r.repeats
    );
    print!("{}", report::markdown(r));
    println!(
        "(c) is {}; measured in {:.0} s",
        r.setup.get("kernel_tunnel").map_or("?", String::as_str),
        r.measure_seconds
    );
    let kind = |k: &str| -> f64 {
        r.test_seconds
            .iter()
            .filter(|(n, _)| n.starts_with(k))
            .map(|(_, v)| v)
            .sum()
    };
    println!(
        "time: TCP {:.0} s, UDP rate searches {:.0} s, round trips {:.0} s",
        kind("tcp"),
        kind("udp"),
        kind("rtt")
    );
    println!("report: {}/dataplane.md and dataplane.json", r.run_dir);
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_clock_of_this_process_moves() {
        let pid = std::process::id() as i32;
        let a = super::cpu_ns(pid).expect("own CPU clock");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_ns(pid).expect("again") > a);
        assert!(super::cpu_ns(-5).is_err());
    }
}
