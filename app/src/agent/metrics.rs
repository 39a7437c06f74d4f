//! The agent's counters and their Prometheus text (`GET /metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use ctlhttp::metrics::{Kind, NO_LABELS};

use super::Agent;

#[derive(Default)]
pub(super) struct Metrics {
    pub(super) starts: AtomicU64,
    pub(super) start_failures: AtomicU64,
    pub(super) stops: AtomicU64,
    pub(super) pulls: AtomicU64,
    pub(super) pull_failures: AtomicU64,
    pub(super) pull_bytes: AtomicU64,
    pub(super) pull_us_total: AtomicU64,
    pub(super) last_pull_us: AtomicU64,
    pub(super) bad_requests: AtomicU64,
    pub(super) not_found: AtomicU64,
    pub(super) switches: AtomicU64,
    pub(super) removals: AtomicU64,
    /// Requests refused for a missing or wrong token.
    pub(super) unauthorized: AtomicU64,
}

impl Agent {
    pub(super) fn metrics_text(&self) -> String {
        let (running, exited) = self
            .instances
            .lock()
            .map(|l| {
                let r = l.values().filter(|i| i.proc.poll().is_none()).count();
                (r, l.len() - r)
            })
            .unwrap_or((0, 0));
        let m = &self.m;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: Vec<(&str, Kind, &str, u64)> = vec![
            (
                "agent_requests_unauthorized_total",
                Kind::Counter,
                "requests refused (401) for a missing or wrong token",
                ld(&m.unauthorized),
            ),
            (
                "agent_instances_started_total",
                Kind::Counter,
                "instances started",
                ld(&m.starts),
            ),
            (
                "agent_instance_start_failures_total",
                Kind::Counter,
                "instance starts that failed",
                ld(&m.start_failures),
            ),
            (
                "agent_instances_stopped_total",
                Kind::Counter,
                "instances stopped by DELETE or shutdown",
                ld(&m.stops),
            ),
            (
                "agent_instances_running",
                Kind::Gauge,
                "instances whose process runs",
                running as u64,
            ),
            (
                "agent_instances_exited",
                Kind::Gauge,
                "instances whose process exited (until DELETE)",
                exited as u64,
            ),
            (
                "agent_pulls_total",
                Kind::Counter,
                "applications pulled from the cloud repository",
                ld(&m.pulls),
            ),
            (
                "agent_pull_failures_total",
                Kind::Counter,
                "pulls that failed (unreachable, bad package)",
                ld(&m.pull_failures),
            ),
            (
                "agent_pull_bytes_total",
                Kind::Counter,
                "package bytes pulled",
                ld(&m.pull_bytes),
            ),
            (
                "agent_bad_requests_total",
                Kind::Counter,
                "requests answered 400",
                ld(&m.bad_requests),
            ),
            (
                "agent_app_not_found_total",
                Kind::Counter,
                "starts for an application in no repository",
                ld(&m.not_found),
            ),
            (
                "agent_switches_total",
                Kind::Counter,
                "switch requests forwarded",
                ld(&m.switches),
            ),
            (
                "agent_apps_removed_total",
                Kind::Counter,
                "applications removed from the edge repository (DELETE /apps/{app})",
                ld(&m.removals),
            ),
        ];
        let seconds: [(&str, Kind, &str, f64); 2] = [
            (
                "agent_pull_seconds_total",
                Kind::Counter,
                "time spent pulling",
                ld(&m.pull_us_total) as f64 / 1e6,
            ),
            (
                "agent_last_pull_seconds",
                Kind::Gauge,
                "duration of the last successful pull",
                ld(&m.last_pull_us) as f64 / 1e6,
            ),
        ];
        let copy = self.copy.metrics_rows();
        ctlhttp::metrics::encode_fn(move |f| {
            for (name, kind, help, v) in rows.iter().chain(&copy) {
                f.single(*kind, name, help, NO_LABELS, *v)?;
            }
            for (name, kind, help, v) in &seconds {
                f.single(*kind, name, help, NO_LABELS, *v)?;
            }
            Ok(())
        })
    }
}
