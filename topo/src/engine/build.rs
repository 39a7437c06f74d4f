//! `up`: take the topology's lock, make everything in named steps, and roll
//! back through `down` if any step fails or is interrupted.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::emulator::start_emulators;
use super::plan::{self, node_index, NsPlan, Plan, VethPlan};
use super::teardown::down_locked;
use super::workers::{create_namespaces, par_each, write_sysctls, Made};
use super::{LinkRun, RunInfo, Running, TopoError, UpOptions};
use crate::config::Topology;
use crate::netns;
use crate::nl::{self, LinkSpec};
use crate::state::{Entry, Journal, StateDir, TopoLock};
use crate::tc;

/// Brings a topology up. On failure everything made is removed again.
pub fn up(topo: &Topology, opts: &UpOptions) -> Result<Running, TopoError> {
    let state = opts.state();
    let name = topo.name.clone();
    // A Topology's fields are public: check again what becomes paths and names.
    topo.check_names()?;
    netns::ensure_run_dir()?;
    let lock = lock_for_up(&state, &name)?;
    check_nothing_left(&state, &name)?;
    let mut journal = Journal::open(&state, &name)?;
    let mut step: &'static str = "prepare";
    let t0 = Instant::now();
    let res = build(topo, opts, &state, &mut journal, &mut step);
    match res {
        Ok((info, timings)) => {
            drop(lock);
            tracing::info!(
                "topology `{name}` is up: {} namespaces, {} links in {:.1} ms",
                topo.nodes.len(),
                topo.links.len(),
                t0.elapsed().as_secs_f64() * 1e3
            );
            Ok(Running {
                state,
                info,
                timings,
            })
        }
        Err(e) => {
            tracing::error!("up of `{name}` failed at step `{step}`: {e}; rolling back");
            let n = roll_back(&name, &state);
            drop(lock);
            Err(TopoError::UpFailed {
                topo: name,
                step,
                rolled_back: n,
                source: Box::new(e),
            })
        }
    }
}

/// Takes the topology's lock without blocking on another `up` or `down`.
fn lock_for_up(state: &StateDir, name: &str) -> Result<TopoLock, TopoError> {
    // Wait a little: a lock can linger for microseconds in a child forked
    // (not yet exec'd) by another thread of this process.
    let waited = Instant::now();
    loop {
        if let Some(l) = state.lock(name, false)? {
            return Ok(l);
        }
        if waited.elapsed() > Duration::from_secs(3) {
            return Err(TopoError::Busy(name.into()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fails if the topology is up, or an earlier `up` left state behind.
fn check_nothing_left(state: &StateDir, name: &str) -> Result<(), TopoError> {
    let j = state.read_journal(name)?;
    if j.contains(&Entry::Complete) {
        return Err(TopoError::AlreadyUp(name.into()));
    }
    if !j.is_empty() || state.topo_dir(name)?.join("running.json").exists() {
        return Err(TopoError::Leftover(name.into()));
    }
    Ok(())
}

/// Removes what a failed `up` made (the lock is held); how many objects.
fn roll_back(name: &str, state: &StateDir) -> usize {
    let n = match down_locked(name, state) {
        Ok(r) => r.namespaces + r.processes,
        Err(e2) => {
            tracing::error!("rollback of `{name}` failed: {e2}");
            0
        }
    };
    tracing::info!("rolled back {n} objects");
    n
}

pub(super) fn check_cancel(opts: &UpOptions) -> Result<(), TopoError> {
    match &opts.cancel {
        Some(c) if c.load(Ordering::Relaxed) => Err(TopoError::Interrupted),
        _ => Ok(()),
    }
}

fn fault(opts: &UpOptions, step: &str) -> Result<(), TopoError> {
    if opts.fault.as_deref() == Some(step) {
        return Err(TopoError::Injected(step.into()));
    }
    check_cancel(opts)
}

type Timings = Vec<(&'static str, Duration)>;

/// Names the step under way (for the error of a failed `up`) and times each.
struct Steps<'a> {
    current: &'a mut &'static str,
    opts: &'a UpOptions,
    since: Instant,
    timings: Timings,
}

impl Steps<'_> {
    /// Runs step `name`, records its duration, then fails if a test injects
    /// a fault after this step or `up` was cancelled.
    fn run<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> Result<T, TopoError>,
    ) -> Result<T, TopoError> {
        *self.current = name;
        let out = f()?;
        let took = self.since.elapsed();
        self.timings.push((name, took));
        tracing::debug!("step {name}: {:.1} ms", took.as_secs_f64() * 1e3);
        self.since = Instant::now();
        fault(self.opts, name)?;
        Ok(out)
    }
}

fn build(
    topo: &Topology,
    opts: &UpOptions,
    state: &StateDir,
    journal: &mut Journal,
    step: &mut &'static str,
) -> Result<(RunInfo, Timings), TopoError> {
    let mut steps = Steps {
        current: step,
        opts,
        since: Instant::now(),
        timings: Vec::new(),
    };
    state.write_json(&topo.name, "topology.json", topo)?;
    let mut plan = plan::plan(topo, opts, &state.topo_dir(&topo.name)?);
    let mut made = steps.run("namespaces", || make_namespaces(&plan, opts, journal))?;
    steps.run("links", || make_links(&plan.veths, &mut made, opts))?;
    steps.run("addresses", || configure(topo, &plan, made, opts))?;
    steps.run("shaping", || {
        shape_links(topo, &plan.namespaces, &mut plan.links, plan.netem)
    })?;
    steps.run("emulators", || {
        let emus = std::mem::take(&mut plan.emus);
        start_emulators(topo, opts, state, journal, emus, &mut plan.links)
    })?;
    *steps.current = "finish";
    let info = finish(topo, state, journal, plan)?;
    Ok((info, steps.timings))
}

/// Journals every namespace with its mark before it exists, then creates
/// them (a test can stop after N with the fault `namespaces:N`).
fn make_namespaces(
    plan: &Plan,
    opts: &UpOptions,
    journal: &mut Journal,
) -> Result<Vec<Made>, TopoError> {
    let plans = &plan.namespaces;
    journal.append(
        &plans
            .iter()
            .map(|p| Entry::Netns {
                name: p.name.clone(),
                mark: p.mark.clone(),
            })
            .collect::<Vec<_>>(),
    )?;
    let limit: Option<usize> = opts
        .fault
        .as_deref()
        .and_then(|f| f.strip_prefix("namespaces:"))
        .and_then(|n| n.parse().ok());
    let made = create_namespaces(plans, opts, limit)?;
    if let Some(n) = limit {
        if n < plans.len() {
            return Err(TopoError::Injected(format!("namespaces:{n}")));
        }
    }
    Ok(made)
}

/// Netlink requests for each namespace, by namespace index.
type Work = Vec<Vec<nl::RouteNetlinkMessageWhat>>;

fn no_work(namespaces: usize) -> Work {
    (0..namespaces).map(|_| Vec::new()).collect()
}

/// Creates the veth pairs. Each pair is created from a socket in the
/// namespace of its first end (so ifindexes are looked up there, never in
/// ours), the peer placed directly in its namespace: nothing appears here.
fn make_links(veths: &[VethPlan], made: &mut [Made], opts: &UpOptions) -> Result<(), TopoError> {
    let mut work = no_work(made.len());
    for v in veths {
        let sa = LinkSpec {
            name: &v.a.ifname,
            index: v.a.index,
            netns_fd: None,
            master: v.a.master,
            mac: v.a.mac,
            mtu: v.mtu,
        };
        let sb = LinkSpec {
            name: &v.b.ifname,
            index: v.b.index,
            netns_fd: Some(made[v.b.ns].fd.as_raw_fd()),
            master: None,
            mac: v.b.mac,
            mtu: v.mtu,
        };
        work[v.a.ns].push((nl::new_veth(&sa, &sb), v.what.clone()));
    }
    par_each(made, work, opts, |_, m, work| {
        for (msg, what) in work {
            m.nl.queue(msg, nl::CREATE, what);
        }
        m.nl.flush()?;
        Ok(())
    })
}

/// Sysctls, peers up, addresses and routes: one batch per namespace, in
/// parallel. Closes the namespaces' handles when done.
fn configure(
    topo: &Topology,
    plan: &Plan,
    mut made: Vec<Made>,
    opts: &UpOptions,
) -> Result<(), TopoError> {
    let mut work = no_work(plan.namespaces.len());
    peers_up(&plan.veths, &mut work);
    addresses(topo, plan, &mut work);
    routes(topo, &plan.veths, &mut work);
    par_each(&mut made, work, opts, |i, m, work| {
        let p = &plan.namespaces[i];
        if p.node.is_some() && !p.sysctls.is_empty() {
            netns::enter_fd(&m.fd)?;
            write_sysctls(p)?;
        }
        for (msg, what) in work {
            let flags = if matches!(msg, netlink_packet_route::RouteNetlinkMessage::SetLink(_)) {
                0
            } else {
                nl::CREATE
            };
            m.nl.queue(msg, flags, what);
        }
        m.nl.flush()?;
        Ok(())
    })
}

/// Sets each peer end up (and into its bridge when it is in a switch).
fn peers_up(veths: &[VethPlan], work: &mut Work) {
    for v in veths {
        work[v.b.ns].push((
            nl::set_link(v.b.index, true, None, v.b.master),
            format!("set {} up", v.b.ifname),
        ));
    }
}

/// The addresses of each node's interfaces.
fn addresses(topo: &Topology, plan: &Plan, work: &mut Work) {
    for v in &plan.veths {
        for e in [&v.a, &v.b] {
            let Some(node) = plan.namespaces[e.ns].node.as_deref() else {
                continue;
            };
            let ep = topo
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .find(|x| x.node == node && x.ifname == e.ifname);
            if let Some(ep) = ep {
                for a in &ep.addrs {
                    work[e.ns].push((
                        nl::new_addr(e.index, a.addr, a.prefix),
                        format!("address {a} on {node}:{}", e.ifname),
                    ));
                }
            }
        }
    }
}

/// Each node's routes, with the ifindex of the device they name.
fn routes(topo: &Topology, veths: &[VethPlan], work: &mut Work) {
    for (i, n) in topo.nodes.iter().enumerate() {
        for r in &n.routes {
            let oif = r.dev.as_ref().and_then(|d| {
                veths
                    .iter()
                    .flat_map(|v| [&v.a, &v.b])
                    .find(|e| e.ns == i && &e.ifname == d)
                    .map(|e| e.index)
            });
            work[i].push((
                nl::new_route(r.to.addr, r.to.prefix, r.via, oif),
                format!(
                    "route {} via {} on {}",
                    r.to,
                    r.via.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                    n.name
                ),
            ));
        }
    }
}

/// Installs each link's shaping on both egresses: one tc batch per node, in parallel.
fn shape_links(
    topo: &Topology,
    namespaces: &[NsPlan],
    links: &mut [LinkRun],
    netem: bool,
) -> Result<(), TopoError> {
    let mut per_ns: Vec<Vec<String>> = (0..topo.nodes.len()).map(|_| Vec::new()).collect();
    for (l, lr) in topo.links.iter().zip(links.iter_mut()) {
        let (na, nb) = (node_index(topo, &l.a.node), node_index(topo, &l.b.node));
        per_ns[na].extend(tc::commands(
            &l.a.ifname,
            &mut lr.egress_a,
            &l.shape_ab,
            netem,
        ));
        per_ns[nb].extend(tc::commands(
            &l.b.ifname,
            &mut lr.egress_b,
            &l.shape_ba,
            netem,
        ));
    }
    std::thread::scope(|s| -> Result<(), TopoError> {
        let hs: Vec<_> = per_ns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(i, c)| {
                let ns = namespaces[i].name.clone();
                s.spawn(move || tc::run_batch(&ns, c))
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| TopoError::Unsupported("tc thread panicked".into()))??;
        }
        Ok(())
    })
}

/// Records what is up (`running.json`) and marks the journal complete.
fn finish(
    topo: &Topology,
    state: &StateDir,
    journal: &mut Journal,
    plan: Plan,
) -> Result<RunInfo, TopoError> {
    let info = RunInfo {
        topology: topo.clone(),
        emu_ns: plan.emu_ns.map(|i| plan.namespaces[i].name.clone()),
        links: plan.links,
        netem: plan.netem,
    };
    state.write_json(&topo.name, "running.json", &info)?;
    journal.append(&[Entry::Complete])?;
    Ok(info)
}
