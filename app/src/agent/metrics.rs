//! The agent's counters and their Prometheus text (`GET /metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

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
        let mut rows: Vec<(&str, &str, &str, String)> = vec![
            (
                "agent_requests_unauthorized_total",
                "counter",
                "requests refused (401) for a missing or wrong token",
                ld(&m.unauthorized).to_string(),
            ),
            (
                "agent_instances_started_total",
                "counter",
                "instances started",
                ld(&m.starts).to_string(),
            ),
            (
                "agent_instance_start_failures_total",
                "counter",
                "instance starts that failed",
                ld(&m.start_failures).to_string(),
            ),
            (
                "agent_instances_stopped_total",
                "counter",
                "instances stopped by DELETE or shutdown",
                ld(&m.stops).to_string(),
            ),
            (
                "agent_instances_running",
                "gauge",
                "instances whose process runs",
                running.to_string(),
            ),
            (
                "agent_instances_exited",
                "gauge",
                "instances whose process exited (until DELETE)",
                exited.to_string(),
            ),
            (
                "agent_pulls_total",
                "counter",
                "applications pulled from the cloud repository",
                ld(&m.pulls).to_string(),
            ),
            (
                "agent_pull_failures_total",
                "counter",
                "pulls that failed (unreachable, bad package)",
                ld(&m.pull_failures).to_string(),
            ),
            (
                "agent_pull_bytes_total",
                "counter",
                "package bytes pulled",
                ld(&m.pull_bytes).to_string(),
            ),
            (
                "agent_pull_seconds_total",
                "counter",
                "time spent pulling",
                format!("{:.6}", ld(&m.pull_us_total) as f64 / 1e6),
            ),
            (
                "agent_last_pull_seconds",
                "gauge",
                "duration of the last successful pull",
                format!("{:.6}", ld(&m.last_pull_us) as f64 / 1e6),
            ),
            (
                "agent_bad_requests_total",
                "counter",
                "requests answered 400",
                ld(&m.bad_requests).to_string(),
            ),
            (
                "agent_app_not_found_total",
                "counter",
                "starts for an application in no repository",
                ld(&m.not_found).to_string(),
            ),
            (
                "agent_switches_total",
                "counter",
                "switch requests forwarded",
                ld(&m.switches).to_string(),
            ),
            (
                "agent_apps_removed_total",
                "counter",
                "applications removed from the edge repository (DELETE /apps/{app})",
                ld(&m.removals).to_string(),
            ),
        ];
        rows.extend(self.copy.metrics_rows());
        let mut o = String::new();
        for (name, kind, help, v) in rows {
            o.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        o
    }
}
