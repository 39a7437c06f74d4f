//! `testbed bench sessions`: PDU session setup time and setup rate on a
//! running testbed (issue 5, DESIGN.md section 6).
//!
//! - Setup time: from the UE's request (`POST /sessions` to the UE daemon,
//!   which asks over N1 through the gNB) to the first packet that crosses
//!   the new tunnel: a UDP probe sent from the session's address as soon
//!   as the UE answers, timestamped by the echo server on the edge when it
//!   arrives (all namespaces share CLOCK_REALTIME). Each setup is released
//!   again before the next. The baseline, measured in the same run, is the
//!   round trip of a probe over a session that is already up: what the
//!   tunnel alone costs.
//! - Setup rate: `ues` distinct UEs ask the gNB's N1 relay at once
//!   (`concurrency` requests in flight from one client thread in the UE's
//!   namespace), through gNB,
//!   SMF and UPF, without the UE-side address installation (one UE daemon
//!   serves one UE). The baseline is the rate of the same client asking
//!   the gNB for its tunnel list: the ceiling of the client and HTTP path.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use wire::ctl::{SessionInfo, SessionRequest};

use crate::bed::{BedError, BedState};
use crate::plan::{UePlan, UpfPlan};
use crate::responder::UdpResponder;

/// UDP port of the bench's echo server on the edge.
pub const BENCH_ECHO_PORT: u16 = 9001;

/// Distribution of a set of durations, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dist {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile (nearest rank).
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Dist {
    /// From samples in nanoseconds; `None` without samples.
    pub fn of(ns: &[u64]) -> Option<Dist> {
        if ns.is_empty() {
            return None;
        }
        let mut v = ns.to_vec();
        v.sort_unstable();
        let rank = |p: usize| v[(p * v.len()).div_ceil(100).max(1) - 1] as f64 / 1e3;
        Some(Dist {
            n: v.len(),
            p50_us: rank(50),
            p99_us: rank(99),
            max_us: v[v.len() - 1] as f64 / 1e3,
            mean_us: v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e3,
        })
    }
}

/// Result of the setup-time bench.
#[derive(Debug, Clone, Serialize)]
pub struct SetupTimeReport {
    /// UE, UPF and edge used.
    pub ue: String,
    /// The UPF.
    pub upf: String,
    /// The edge the probes went to.
    pub edge: String,
    /// UE request -> first probe at the edge.
    pub setup: Dist,
    /// UE request -> the UE daemon's answer (session installed).
    pub answered: Dist,
    /// Baseline: probe round trip over an established session.
    pub baseline_rtt: Dist,
    /// Setups whose first probe never arrived (within 2 s).
    pub lost: usize,
    /// Where the time goes: the mean per setup that each daemon's own
    /// setup-time histogram (Prometheus sum and count, read before and
    /// after) recorded over the run, outermost first.
    pub stages: Vec<Stage>,
}

/// The mean time one daemon spent on a setup, from its own histogram.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// What the daemon measures.
    pub what: String,
    /// Mean per setup, microseconds.
    pub mean_us: f64,
    /// Setups it counted in the run.
    pub count: u64,
}

/// (sum seconds, count) of histogram `metric` at `url` in namespace `ns`.
fn histogram_sum_count(ns: &str, url: &str, metric: &str) -> Option<(f64, u64)> {
    let (code, body) = crate::bed::http_in(ns, "GET", url, None, Duration::from_secs(3)).ok()?;
    if code != 200 {
        return None;
    }
    let m = crate::bed::parse_prometheus(&body);
    let find = |suffix: &str| {
        let name = format!("{metric}_{suffix}");
        m.iter()
            .find(|(k, _)| k == &name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| *v)
    };
    Some((find("sum")?, find("count")? as u64))
}

/// The histograms the setup path keeps: (what, namespace, URL, metric).
fn stage_sources(st: &BedState, ue: &UePlan) -> Vec<(String, String, String, &'static str)> {
    let mut v = vec![
        (
            format!("{}: request -> session installed", ue.name),
            st.ns(&ue.name),
            format!("http://{}/metrics", ue.api),
            "ue_session_setup_seconds",
        ),
        (
            format!("{}: installing address, table and rule", ue.name),
            st.ns(&ue.name),
            format!("http://{}/metrics", ue.api),
            "ue_session_install_seconds",
        ),
    ];
    if let Some(g) = st.plan.gnbs.iter().find(|g| g.name == ue.gnb) {
        let (ns, url) = (st.ns(&g.name), format!("http://{}/metrics", g.n2_api));
        v.push((
            format!("{}: N1 request relayed to the SMF -> its answer", g.name),
            ns.clone(),
            url.clone(),
            "gnb_n1_establish_seconds",
        ));
        v.push((
            format!("{}: N2 tunnel setup (table, host route)", g.name),
            ns,
            url,
            "gnb_n2_setup_seconds",
        ));
    }
    if let Some(smf) = st.procs.iter().find(|p| p.role == crate::plan::Role::Smf) {
        v.push((
            "SMF: API request -> Session Modification Response".into(),
            smf.netns.clone(),
            format!("http://{}/metrics", st.plan.smf_api),
            "smf_session_setup_seconds",
        ));
    }
    v
}

/// Result of the setup-rate bench.
#[derive(Debug, Clone, Serialize)]
pub struct SetupRateReport {
    /// Distinct UEs.
    pub ues: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Sessions established.
    pub established: usize,
    /// Failed requests (first error kept in `first_error`).
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Wall time of all setups, seconds.
    pub seconds: f64,
    /// Sessions per second.
    pub rate: f64,
    /// Per-request latency under that load.
    pub latency: Option<Dist>,
    /// Baseline: GET /n1/sessions at the gNB's N1 relay per second, same client.
    pub baseline_rate: f64,
    /// Releases that failed afterwards.
    pub release_failed: usize,
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends probes from `src` to `target` every 2 ms until one comes back
/// (2 s at most); returns (edge arrival ns of the first probe that got
/// through, reply time ns).
fn first_through(src: Ipv4Addr, target: SocketAddrV4) -> Result<Option<(u64, u64)>, String> {
    let sock = UdpSocket::bind(SocketAddr::from((src, 0))).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    while t0.elapsed() < Duration::from_secs(2) {
        sock.send_to(b"first", target).map_err(|e| e.to_string())?;
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 8 {
                let mut q = [0u8; 8];
                q.copy_from_slice(&buf[..8]);
                return Ok(Some((u64::from_be_bytes(q), realtime_ns())));
            }
        }
    }
    Ok(None)
}

/// The first UE of the topology: the one the benches drive.
fn first_ue(st: &BedState) -> Result<&UePlan, BedError> {
    st.plan
        .ues
        .first()
        .ok_or_else(|| BedError::Usage("the topology has no UE (a node named ue*)".into()))
}

/// The UPF named, or the first one.
fn pick_upf<'a>(st: &'a BedState, upf: Option<&str>) -> Result<&'a UpfPlan, BedError> {
    match upf {
        Some(name) => st
            .plan
            .upf(name)
            .ok_or_else(|| BedError::Usage(format!("no UPF named `{name}` in the topology"))),
        None => st
            .plan
            .upfs
            .first()
            .ok_or_else(|| BedError::Usage("the topology has no UPF".into())),
    }
}

/// Setup time over `n` setups of PDU session `psi` of the first UE, to
/// `upf` (default: the first UPF).
pub fn setup_time(
    st: &BedState,
    n: usize,
    upf: Option<&str>,
    on_progress: &mut dyn FnMut(&str),
) -> Result<SetupTimeReport, BedError> {
    let ue = first_ue(st)?;
    let u = pick_upf(st, upf)?;
    let target = SocketAddrV4::new(u.edge_n6, BENCH_ECHO_PORT);
    // Answers each probe with its arrival time (CLOCK_REALTIME ns, 8
    // octets BE), then the probe.
    let _echo = UdpResponder::start(&st.ns(&u.edge), target, "bench echo", |d, _, out| {
        out.extend_from_slice(&realtime_ns().to_be_bytes());
        out.extend_from_slice(d);
    })?;
    let (api, dnn, upf_name) = (ue.api, u.dnn.clone(), u.name.clone());
    // A PDU session id the UE does not hold (the last one).
    let psi = 15u8;
    on_progress(&format!(
        "{n} setups of session {psi} of {} via {} to {} ...",
        ue.name, u.name, u.edge
    ));
    let sources = stage_sources(st, ue);
    let before: Vec<_> = sources
        .iter()
        .map(|(_, ns, url, m)| histogram_sum_count(ns, url, m))
        .collect();
    let ns = st.ns(&ue.name);
    let r = topo::netns::run_in_netns(&ns, move || -> Result<_, String> {
        // Made on the namespace thread: its connections are the UE's.
        let a = ctlhttp::blocking::Client::new(Duration::from_secs(10));
        let base = format!("http://{api}/sessions");
        let body = serde_json::json!({"psi": psi, "dnn": dnn, "upf": upf_name}).to_string();
        let (mut setup, mut answered, mut lost) = (Vec::with_capacity(n), Vec::with_capacity(n), 0);
        let mut rtt = Vec::new();
        for i in 0..n {
            let t0 = realtime_ns();
            let r = a
                .post_json(&base, body.clone())
                .map_err(|e| e.to_string())?;
            let (code, text) = (r.status, r.text());
            let t_ans = realtime_ns();
            if code != 201 {
                return Err(format!("setup {i}: HTTP {code}: {}", text.trim()));
            }
            let info: SessionInfo =
                serde_json::from_str(&text).map_err(|e| format!("setup {i}: {e}: {text}"))?;
            let first = first_through(info.ue_addr, target);
            if i == 0 {
                // Baseline: round trips over this established session.
                let sock = UdpSocket::bind(SocketAddr::from((info.ue_addr, 0)))
                    .map_err(|e| e.to_string())?;
                sock.set_read_timeout(Some(Duration::from_millis(500)))
                    .map_err(|e| e.to_string())?;
                let mut buf = [0u8; 64];
                for _ in 0..n.clamp(10, 1000) {
                    let t = Instant::now();
                    sock.send_to(b"rtt", target).map_err(|e| e.to_string())?;
                    if sock.recv(&mut buf).is_ok() {
                        rtt.push(t.elapsed().as_nanos() as u64);
                    }
                }
            }
            let del = a
                .delete(&format!("{base}/{psi}"))
                .map_err(|e| e.to_string())?
                .status;
            if del != 204 {
                return Err(format!("release after setup {i}: HTTP {del}"));
            }
            answered.push(t_ans.saturating_sub(t0));
            match first? {
                Some((edge_at, _)) => setup.push(edge_at.saturating_sub(t0)),
                None => lost += 1,
            }
        }
        Ok((setup, answered, rtt, lost))
    })
    .map_err(|e| BedError::Request(format!("bench in {ns}: {e}")))?
    .map_err(BedError::Request)?;
    let (setup, answered, rtt, lost) = r;
    let stages = sources
        .iter()
        .zip(before)
        .filter_map(|((what, ns, url, m), b)| {
            let (s0, c0) = b?;
            let (s1, c1) = histogram_sum_count(ns, url, m)?;
            let count = c1.checked_sub(c0).filter(|&c| c > 0)?;
            Some(Stage {
                what: what.clone(),
                mean_us: (s1 - s0) / count as f64 * 1e6,
                count,
            })
        })
        .collect();
    let none = || BedError::Request("no setup got a packet through".into());
    Ok(SetupTimeReport {
        ue: ue.name.clone(),
        upf: u.name.clone(),
        edge: u.edge.clone(),
        setup: Dist::of(&setup).ok_or_else(none)?,
        answered: Dist::of(&answered).ok_or_else(none)?,
        baseline_rtt: Dist::of(&rtt).ok_or_else(none)?,
        lost,
        stages,
    })
}

/// Setup rate: `ues` UEs ask at once through the first gNB's N1 relay.
pub fn setup_rate(
    st: &BedState,
    ues: usize,
    concurrency: usize,
    upf: Option<&str>,
    on_progress: &mut dyn FnMut(&str),
) -> Result<SetupRateReport, BedError> {
    let ue = first_ue(st)?;
    let gnb = st
        .plan
        .gnbs
        .iter()
        .find(|g| g.name == ue.gnb)
        .ok_or_else(|| BedError::Usage(format!("no gNB for {}", ue.name)))?;
    let u = pick_upf(st, upf)?;
    let concurrency = concurrency.clamp(1, ues.max(1));
    on_progress(&format!(
        "{ues} UEs ask for a session at once ({concurrency} requests in flight, via {} and {}) ...",
        gnb.name, u.name
    ));
    let n1: Arc<str> = format!("http://{}", gnb.n1_api).into();
    let (dnn, upf_name) = (u.dnn.clone(), u.name.clone());
    let ns = st.ns(&ue.name);
    let r = topo::netns::run_in_netns(&ns, move || {
        // One client thread (this one, in the UE's namespace) with
        // `concurrency` requests in flight: the load generator should not
        // take the CPU the daemons under test need.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        rt.block_on(async move {
            let http = ctlhttp::Client::new(Duration::from_secs(30));
            // Baseline: the same client, a request the gNB answers by itself.
            let base_n = ues.max(concurrency);
            let t = Instant::now();
            let url: Arc<str> = format!("{n1}/n1/sessions").into();
            in_flight(concurrency, base_n, |_| {
                let (http, url) = (http.clone(), url.clone());
                async move { http.get(&url).await.map(|_| ()).map_err(|e| e.to_string()) }
            })
            .await;
            let baseline_rate = base_n as f64 / t.elapsed().as_secs_f64();

            let t = Instant::now();
            let setups = in_flight(concurrency, ues, |k| {
                let (http, n1) = (http.clone(), n1.clone());
                let req = SessionRequest {
                    ue_id: format!("imsi-99900{k:010}"),
                    pdu_session_id: 1,
                    dnn: dnn.clone(),
                    upf: Some(upf_name.clone()),
                    gnb: None,
                };
                async move {
                    let body = serde_json::to_vec(&req).unwrap_or_default();
                    let t1 = Instant::now();
                    let r = http
                        .post_json(&format!("{n1}/n1/sessions"), body)
                        .await
                        .map_err(|e| e.to_string())?;
                    match r.status {
                        200 | 201 => Ok(t1.elapsed().as_nanos() as u64),
                        c => Err(format!("HTTP {c}: {}", r.text().trim())),
                    }
                }
            })
            .await;
            let seconds = t.elapsed().as_secs_f64();
            // Release them all again.
            let releases = in_flight(concurrency, ues, |k| {
                let (http, n1) = (http.clone(), n1.clone());
                async move {
                    let url = format!("{n1}/n1/sessions/imsi-99900{k:010}/1");
                    match http.delete(&url).await.map(|r| r.status) {
                        Ok(200 | 204 | 404) => Ok(()),
                        Ok(c) => Err(format!("HTTP {c}")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await;
            let mut lat = Vec::with_capacity(ues);
            let (mut failed, mut first_error) = (0, None);
            for r in setups {
                match r {
                    Ok(d) => lat.push(d),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            Ok(SetupRateReport {
                ues,
                concurrency,
                established: lat.len(),
                failed,
                first_error,
                seconds,
                rate: lat.len() as f64 / seconds,
                latency: Dist::of(&lat),
                baseline_rate,
                release_failed: releases.iter().filter(|r| r.is_err()).count(),
            })
        })
    })
    .map_err(|e| BedError::Request(format!("bench in {ns}: {e}")))?
    .map_err(|e: String| BedError::Request(format!("bench in {ns}: {e}")))?;
    Ok(r)
}

/// [`in_flight`] on a one-thread runtime of its own, each call given a
/// shared HTTP client (30 s timeout): for a load from one thread of the
/// namespace the caller runs in.
pub(crate) fn in_flight_on_runtime<T, F>(
    concurrency: usize,
    n: usize,
    f: impl Fn(ctlhttp::Client, usize) -> F,
) -> Result<Vec<Result<T, String>>, String>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let http = ctlhttp::Client::new(Duration::from_secs(30));
    Ok(rt.block_on(in_flight(concurrency, n, |k| f(http.clone(), k))))
}

/// Runs `f(0..n)` with at most `concurrency` of them in flight (tasks on
/// the current runtime); the results in order.
async fn in_flight<T, F>(
    concurrency: usize,
    n: usize,
    f: impl Fn(usize) -> F,
) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let fut = f(k);
        tasks.push(tokio::spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Dist;

    #[test]
    fn dist_nearest_rank() {
        assert_eq!(Dist::of(&[]), None);
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).rev().collect();
        let d = Dist::of(&v).expect("100 samples");
        assert_eq!(
            (d.n, d.p50_us, d.p99_us, d.max_us),
            (100, 50.0, 99.0, 100.0)
        );
        assert!((d.mean_us - 50.5).abs() < 1e-9);
    }
}

/// Both session benches on a testbed of their own.
#[derive(Debug, Clone, Serialize)]
pub struct SessionsReport {
    /// Configs and logs.
    pub run_dir: String,
    /// Setup time.
    pub setup_time: Option<SetupTimeReport>,
    /// Setup rate.
    pub setup_rate: Option<SetupRateReport>,
}

/// Brings a testbed up, runs the setup-time bench (`setups` > 0) and the
/// setup-rate bench (`ues` > 0), and takes it down again, also on failure.
pub fn sessions(
    opts: &crate::bed::UpOpts,
    setups: usize,
    ues: usize,
    concurrency: usize,
    upf: Option<&str>,
    on_progress: &mut dyn FnMut(&str),
) -> Result<SessionsReport, BedError> {
    let mut opts = opts.clone();
    if ues > 0 {
        // The rate bench speaks for `ues` UE ids from the first UE's
        // namespace: its gNB must not bind one UE to the radio link.
        opts.plan.radio_link = Some(gnb::radio::RadioLink::EmulatedUes);
        on_progress("gNBs run with radio_link = \"emulated-ues\" (many UE ids from one namespace; no UE binding)");
    }
    let (r, _) = crate::bed::up_run_down(&opts, false, on_progress, |st, on_progress| {
        let setup_time = if setups > 0 {
            Some(setup_time(st, setups, upf, on_progress)?)
        } else {
            None
        };
        let setup_rate = if ues > 0 {
            Some(setup_rate(st, ues, concurrency, upf, on_progress)?)
        } else {
            None
        };
        Ok(SessionsReport {
            run_dir: st.run_dir.display().to_string(),
            setup_time,
            setup_rate,
        })
    })?;
    Ok(r)
}
