//! Which data-path workers carried a test on path (a): the per-worker
//! packet counters of `gnb` and `upf` (their `/metrics`) read around the
//! test. A flow stays on one worker through both daemons, and the kernel
//! picks the TUN queue of a flow that no queue has written by its hash, so
//! a test of few flows can land on one worker or spread over several: the
//! busiest worker's share says which, run by run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bed::{http_in, parse_prometheus, BedState};
use crate::plan::{GnbPlan, UpfPlan};

/// The counter of the packets each daemon's workers took in from the side
/// a test's data enters it: the TUN for the gNB uplink and the UPF
/// downlink, N3 for the others.
fn family(daemon: Daemon, up: bool) -> &'static str {
    match (daemon, up) {
        (Daemon::Gnb, true) => "gnb_worker_tun_rx_packets_total",
        (Daemon::Gnb, false) => "gnb_worker_n3_rx_packets_total",
        (Daemon::Upf, true) => "upf_worker_n3_rx_packets_total",
        (Daemon::Upf, false) => "upf_worker_n6_rx_packets_total",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Gnb,
    Upf,
}

/// Each worker's count of `family` in a Prometheus text, by worker index
/// (label `worker`); empty when the family is not there.
pub fn per_worker(text: &str, family: &str) -> Vec<u64> {
    let mut by: BTreeMap<usize, u64> = BTreeMap::new();
    for (key, value) in parse_prometheus(text) {
        let Some(labels) = key.strip_prefix(family).and_then(|l| l.strip_prefix('{')) else {
            continue;
        };
        let worker = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("worker=\""))
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok());
        if let Some(k) = worker {
            *by.entry(k).or_default() += value as u64;
        }
    }
    let n = by.keys().next_back().map_or(0, |k| k + 1);
    (0..n).map(|k| by.get(&k).copied().unwrap_or(0)).collect()
}

/// The busiest worker's share of what all workers took between two reads
/// (1.0: one worker took it all); None when nothing was taken.
pub fn busiest_share(before: &[u64], after: &[u64]) -> Option<f64> {
    let d: Vec<u64> = after
        .iter()
        .enumerate()
        .map(|(k, a)| a.saturating_sub(before.get(k).copied().unwrap_or(0)))
        .collect();
    let total: u64 = d.iter().sum();
    let max = d.iter().copied().max()?;
    (total > 0).then(|| max as f64 / total as f64)
}

/// Reads the two daemons' per-worker counters.
pub struct Meter {
    gnb: (String, String, String),
    upf: (String, String, String),
}

/// One read: the gNB's and the UPF's `/metrics` texts.
pub struct Read {
    gnb: String,
    upf: String,
}

impl Meter {
    /// For the gNB and UPF of path (a).
    pub fn new(st: &BedState, gnb: &GnbPlan, upf: &UpfPlan) -> Meter {
        Meter {
            gnb: (
                gnb.name.clone(),
                st.ns(&gnb.name),
                format!("http://{}/metrics", gnb.n2_api),
            ),
            upf: (
                upf.name.clone(),
                st.ns(&upf.name),
                format!("http://{}/metrics", upf.metrics),
            ),
        }
    }

    /// Both daemons' counters now.
    pub fn read(&self) -> Result<Read, String> {
        let get = |(name, ns, url): &(String, String, String)| match http_in(
            ns,
            "GET",
            url,
            None,
            Duration::from_secs(5),
        ) {
            Ok((200, body)) => Ok(body),
            Ok((code, _)) => Err(format!("{name}: {url}: HTTP {code}")),
            Err(e) => Err(format!("{name}: {url}: {e}")),
        };
        Ok(Read {
            gnb: get(&self.gnb)?,
            upf: get(&self.upf)?,
        })
    }

    /// The busiest worker's share in each daemon (by name) between two
    /// reads around a test whose data goes up (UE to edge) or down.
    pub fn shares(&self, before: &Read, after: &Read, up: bool) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (daemon, name, b, a) in [
            (Daemon::Gnb, &self.gnb.0, &before.gnb, &after.gnb),
            (Daemon::Upf, &self.upf.0, &before.upf, &after.upf),
        ] {
            let f = family(daemon, up);
            if let Some(s) = busiest_share(&per_worker(b, f), &per_worker(a, f)) {
                out.insert(name.clone(), s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_workers_share_from_two_reads() {
        let t0 = "# TYPE gnb_worker_n3_rx_packets_total counter\n\
                  gnb_worker_n3_rx_packets_total{gnb=\"gnb1\",worker=\"0\"} 10\n\
                  gnb_worker_n3_rx_packets_total{gnb=\"gnb1\",worker=\"1\"} 5\n\
                  gnb_worker_n3_rx_packets_total_other{worker=\"0\"} 99\n";
        let t1 = "gnb_worker_n3_rx_packets_total{gnb=\"gnb1\",worker=\"0\"} 40\n\
                  gnb_worker_n3_rx_packets_total{gnb=\"gnb1\",worker=\"1\"} 15\n";
        let f = "gnb_worker_n3_rx_packets_total";
        assert_eq!(per_worker(t0, f), vec![10, 5]);
        assert_eq!(per_worker(t1, f), vec![40, 15]);
        let s = busiest_share(&per_worker(t0, f), &per_worker(t1, f)).expect("a share");
        assert!((s - 0.75).abs() < 1e-9, "{s}");
        // One worker took it all; nothing taken; a family that is absent.
        assert_eq!(busiest_share(&[3, 7], &[3, 9]), Some(1.0));
        assert_eq!(busiest_share(&[3, 7], &[3, 7]), None);
        assert_eq!(
            per_worker(t0, "upf_worker_n6_rx_packets_total"),
            Vec::<u64>::new()
        );
        assert_eq!(busiest_share(&[], &[]), None);
    }
}
