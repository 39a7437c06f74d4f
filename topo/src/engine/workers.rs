//! Namespace work on worker threads: creating the namespaces of a plan, and
//! running a work list inside each (workers enter namespaces and go back to
//! their own before ending).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::build::check_cancel;
use super::plan::{NsPlan, BRIDGE_INDEX, BRIDGE_NAME};
use super::{TopoError, UpOptions};
use crate::config::NodeKind;
use crate::netns;
use crate::nl::{self, Nl};

/// A namespace made by `up`: its handle and a netlink socket inside it.
pub(super) struct Made {
    pub(super) fd: OwnedFd,
    pub(super) nl: Nl,
}

fn threads(opts: &UpOptions) -> usize {
    if opts.threads == 0 {
        2
    } else {
        opts.threads
    }
}

/// Creates namespaces in parallel; each is marked (lo alias) and its lo set
/// up before it becomes visible under /run/netns; switches get their bridge.
pub(super) fn create_namespaces(
    plans: &[NsPlan],
    opts: &UpOptions,
    limit: Option<usize>,
) -> Result<Vec<Made>, TopoError> {
    let n = limit.unwrap_or(usize::MAX).min(plans.len());
    let slots: Vec<Mutex<Option<Made>>> = (0..plans.len()).map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: Mutex<Option<TopoError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads(opts) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || failed.load(Ordering::Relaxed) {
                    return;
                }
                let r = check_cancel(opts).and_then(|()| create_one(&plans[i]));
                match r {
                    Ok(m) => {
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(m);
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut fe) = first_err.lock() {
                            fe.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().ok().flatten() {
        return Err(e);
    }
    let out: Vec<Made> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect();
    if out.len() < n {
        return Err(TopoError::Unsupported("namespace worker failed".into()));
    }
    Ok(out)
}

fn create_one(p: &NsPlan) -> Result<Made, TopoError> {
    // The thread ends up inside the new namespace; it is a scoped worker, so
    // go back to where we were before returning to be tidy.
    let orig = netns::current()?;
    let mut nl_slot = None;
    let r = netns::create_here(&p.name, || -> Result<(), TopoError> {
        let mut nl = Nl::new()?;
        nl.queue(
            nl::set_link(1, true, Some(&p.mark), None),
            0,
            format!("mark and bring up lo in `{}`", p.name),
        );
        if p.kind == NodeKind::Switch {
            nl.queue(
                nl::new_bridge(BRIDGE_NAME, BRIDGE_INDEX),
                nl::CREATE,
                format!("bridge in `{}`", p.name),
            );
        }
        nl.flush()?;
        if p.node.is_none() {
            // The emulator namespace: no IPv6 chatter on its ports.
            write_sysctls(p)?;
        }
        nl_slot = Some(nl);
        Ok(())
    });
    let fd = netns::current();
    netns::enter_fd(&orig)?;
    r?;
    tracing::debug!("created namespace {}", p.name);
    let nl = nl_slot.ok_or_else(|| TopoError::Unsupported("netlink socket missing".into()))?;
    Ok(Made { fd: fd?, nl })
}

pub(super) fn write_sysctls(p: &NsPlan) -> Result<(), TopoError> {
    for (k, v) in &p.sysctls {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|source| TopoError::Sysctl {
            node: p.node.clone().unwrap_or_else(|| p.name.clone()),
            key: k.clone(),
            value: v.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Runs `f` for each namespace with its work list, on worker threads (which
/// may enter namespaces; they go back to their own before ending).
pub(super) fn par_each<W: Send>(
    made: &mut [Made],
    work: Vec<W>,
    opts: &UpOptions,
    f: impl Fn(usize, &mut Made, W) -> Result<(), TopoError> + Sync,
) -> Result<(), TopoError> {
    let items: Vec<Mutex<Option<(&mut Made, W)>>> = made
        .iter_mut()
        .zip(work)
        .map(|x| Mutex::new(Some(x)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_err: Mutex<Option<TopoError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads(opts) {
            s.spawn(|| {
                let orig = match netns::current() {
                    Ok(o) => o,
                    Err(e) => {
                        if let Ok(mut fe) = first_err.lock() {
                            fe.get_or_insert(e.into());
                        }
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                        break;
                    }
                    let Some((m, w)) = items[i].lock().ok().and_then(|mut x| x.take()) else {
                        continue;
                    };
                    if let Err(e) = f(i, m, w) {
                        if let Ok(mut fe) = first_err.lock() {
                            fe.get_or_insert(e);
                        }
                    }
                }
                let _ = netns::enter_fd(&orig);
            });
        }
    });
    match first_err.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
