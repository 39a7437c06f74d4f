//! What an experiment watches beside `testbed migrate`'s own figures,
//! polled from a thread while a run's testbed is up:
//!
//! - the UE's count of displayed frames against the clock (every 10 ms),
//!   to find a switch decision's frame in the displayed video, and the
//!   UE's migration records (each decision's time);
//! - what the service holds (every 100 ms): PDU sessions (the SMF's
//!   `GET /services`: serving and copilot endpoints) and the account's
//!   instances at the edge agents (`GET /instances`), and every instance
//!   seen;
//! - the SMF's migration records (`GET /migrations`, every 100 ms);
//! - if asked, each edge's load (every 200 ms, [`EdgeSample`]): the CPU
//!   time and resident memory of the processes in its namespace (agent and
//!   instances) and the byte counters of its interfaces.
//!
//! A request that fails (the testbed going down) is skipped.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wire::ctl::migration::MigrationRecord;

use crate::bed::BedState;
use crate::migrate::api::{Api, Smf, Ue, UeMigration};

/// What the service held at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// CLOCK_REALTIME, ns.
    pub t_ns: u64,
    /// The service's PDU sessions (serving, copilot) at the SMF.
    pub sessions: u32,
    /// The account's instances at all edge agents.
    pub instances: u32,
}

/// One edge's load at one moment (cumulative counters: rates come from
/// differences).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeSample {
    /// CLOCK_REALTIME, ns.
    pub t_ns: u64,
    pub edge: String,
    /// CPU seconds (user and system) of the processes now in its namespace.
    pub cpu_s: f64,
    /// Their resident memory.
    pub rss_bytes: u64,
    /// Bytes received and sent on its interfaces (loopback left out).
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Everything polled during one run.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// (CLOCK_REALTIME ns, frames displayed so far).
    pub frames: Vec<(u64, u64)>,
    /// The UE's migration records, as last seen.
    pub ue_migrations: Vec<UeMigration>,
    pub held: Vec<Held>,
    /// The SMF's migration records, as last seen.
    pub smf_migrations: Vec<MigrationRecord>,
    /// Every instance id seen at an agent for the account.
    pub instances_seen: BTreeSet<String>,
    /// The edges' load (when asked).
    pub edges: Vec<EdgeSample>,
}

impl Samples {
    /// The number of frames displayed before `t_ns` (interpolated
    /// between the two samples around it): the index in the displayed
    /// video of the first frame shown at or after `t_ns`.
    pub fn frame_at(&self, t_ns: u64) -> Option<usize> {
        let i = self.frames.partition_point(|&(t, _)| t <= t_ns);
        let (t0, n0) = *self.frames.get(i.checked_sub(1)?)?;
        let Some(&(t1, n1)) = self.frames.get(i) else {
            return Some(n0 as usize);
        };
        let f = (t_ns - t0) as f64 / (t1 - t0).max(1) as f64;
        Some((n0 as f64 + f * (n1.saturating_sub(n0)) as f64).round() as usize)
    }
}

/// CLOCK_REALTIME now, ns.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A polling thread; [`Sampler::stop`] ends it and gives its samples.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Samples>>,
}

/// CPU seconds and resident bytes of the processes of each namespace
/// inode in `inodes`, from /proc.
fn proc_load(inodes: &[u64]) -> Vec<(f64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let mut out = vec![(0.0, 0u64); inodes.len()];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(m) = std::fs::metadata(e.path().join("ns/net")) else {
            continue;
        };
        let Some(k) = inodes.iter().position(|&i| i == m.ino()) else {
            continue;
        };
        // utime and stime are fields 14 and 15, after the `(comm)`.
        if let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) {
            let rest = stat.rsplit_once(')').map_or("", |x| x.1);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            out[k].0 += (t(11) + t(12)) / tick;
        }
        if let Ok(statm) = std::fs::read_to_string(e.path().join("statm")) {
            let rss = statm
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok());
            out[k].1 += rss.unwrap_or(0) * page;
        }
    }
    out
}

/// The edges' load now.
fn edge_samples(edges: &[(String, String)]) -> Vec<EdgeSample> {
    use std::os::unix::fs::MetadataExt as _;
    let inodes: Vec<u64> = edges
        .iter()
        .map(|(_, ns)| {
            std::fs::metadata(format!("{}/{ns}", topo::netns::NETNS_RUN_DIR)).map_or(0, |m| m.ino())
        })
        .collect();
    let load = proc_load(&inodes);
    let t_ns = now_ns();
    edges
        .iter()
        .zip(load)
        .filter_map(|((edge, ns), (cpu_s, rss_bytes))| {
            let text = topo::netns::run_in_netns(ns, || {
                std::fs::read_to_string("/proc/thread-self/net/dev")
            })
            .ok()?
            .ok()?;
            let (mut rx, mut tx) = (0, 0);
            for l in text.lines().skip(2) {
                let Some((name, _)) = l.split_once(':') else {
                    continue;
                };
                if name.trim() == "lo" {
                    continue;
                }
                if let Some(b) = crate::migrate::probe::parse_net_dev(&text, name.trim()) {
                    rx += b.rx_bytes;
                    tx += b.tx_bytes;
                }
            }
            Some(EdgeSample {
                t_ns,
                edge: edge.clone(),
                cpu_s,
                rss_bytes,
                rx_bytes: rx,
                tx_bytes: tx,
            })
        })
        .collect()
}

struct Targets {
    ue: Ue,
    ue_id: String,
    account: String,
    smf: Smf,
    agents: Vec<Api>,
    /// (edge, namespace).
    edges: Vec<(String, String)>,
}

impl Targets {
    fn of(st: &BedState) -> Option<Targets> {
        let ue = st.plan.ues.first()?;
        let app = st.plan.app.as_ref()?;
        let account = app
            .accounts
            .iter()
            .find(|(u, _, _)| *u == ue.name)?
            .1
            .clone();
        Some(Targets {
            ue: Ue(Api::new(&ue.name, st.ns(&ue.name), ue.api)),
            ue_id: ue.ue_id.clone(),
            account,
            smf: Smf(Api::new("smf", st.ns(&st.plan.smf_node), st.plan.smf_api)),
            agents: app
                .edges
                .iter()
                .map(|e| {
                    Api::new(format!("agent-{}", e.name), st.ns(&e.name), e.agent_api)
                        .with_token(st.plan.agent_token())
                })
                .collect(),
            edges: app
                .edges
                .iter()
                .map(|e| (e.name.clone(), st.ns(&e.name)))
                .collect(),
        })
    }

    fn held(&self, s: &mut Samples) {
        let Ok(svc) = self.smf.service(&self.ue_id) else {
            return;
        };
        // The serving endpoint, and the copilot if any.
        let sessions = svc.map_or(0, |s| 1 + u32::from(s.copilot.is_some()));
        let mut instances = 0;
        for a in &self.agents {
            let Ok(list) = a.get::<Vec<serde_json::Value>>("/instances") else {
                continue;
            };
            for i in list
                .iter()
                .filter(|i| i["account"] == self.account.as_str())
            {
                instances += 1;
                if let Some(id) = i["id"].as_str() {
                    s.instances_seen.insert(format!("{}/{id}", a.what));
                }
            }
        }
        s.held.push(Held {
            t_ns: now_ns(),
            sessions,
            instances,
        });
    }
}

impl Sampler {
    /// Starts polling the testbed `st`; the frame count only if `frames`,
    /// the edges' load only if `edges`.
    pub fn start(st: &BedState, frames: bool, edges: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Targets::of(st);
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut s = Samples::default();
            let Some(t) = targets else { return s };
            let mut slow = Instant::now();
            let mut load = Instant::now();
            let mut first = true;
            while !flag.load(Ordering::SeqCst) {
                if frames {
                    let t0 = now_ns();
                    if let Ok(u) = t.ue.status() {
                        // The middle of the request: the count was read then.
                        let t1 = now_ns();
                        s.frames.push((t0 + (t1 - t0) / 2, u.frames_displayed));
                        s.ue_migrations = u.migrations;
                    }
                }
                if first || slow.elapsed() >= Duration::from_millis(100) {
                    slow = Instant::now();
                    t.held(&mut s);
                    if let Ok(m) = t.smf.migrations() {
                        s.smf_migrations = m;
                    }
                    if !frames {
                        if let Ok(u) = t.ue.status() {
                            s.ue_migrations = u.migrations;
                        }
                    }
                }
                if edges && (first || load.elapsed() >= Duration::from_millis(200)) {
                    load = Instant::now();
                    s.edges.extend(edge_samples(&t.edges));
                }
                first = false;
                std::thread::sleep(Duration::from_millis(10));
            }
            s
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops polling; what was polled.
    pub fn stop(mut self) -> Samples {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_index_at_a_time_is_interpolated() {
        let s = Samples {
            frames: vec![(1_000, 10), (2_000, 20), (3_000, 20)],
            ..Samples::default()
        };
        assert_eq!(s.frame_at(500), None);
        assert_eq!(s.frame_at(1_000), Some(10));
        assert_eq!(s.frame_at(1_500), Some(15));
        assert_eq!(s.frame_at(2_500), Some(20));
        assert_eq!(s.frame_at(9_000), Some(20));
    }
}
