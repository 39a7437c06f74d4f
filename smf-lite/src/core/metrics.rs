//! The SMF's counters and their Prometheus text exposition.

use super::{AssocState, SessionState, Smf};

/// Counters, rendered by [`Smf::metrics_text`].
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub pfcp_tx: u64,
    pub pfcp_rx: u64,
    pub pfcp_rx_errors: u64,
    pub pfcp_retransmissions: u64,
    pub pfcp_timeouts: u64,
    pub heartbeats_rx: u64,
    pub session_reports_rx: u64,
    pub sessions_created: u64,
    pub sessions_failed: u64,
    pub sessions_released: u64,
    pub sessions_restored: u64,
    pub upf_restarts: u64,
    /// gNB tunnels no session accounted for, deleted by an audit.
    pub n2_audit_deleted: u64,
    /// gNBs that announced their start.
    pub gnb_restarts: u64,
    pub setup_seconds_sum: f64,
    pub setup_seconds_count: u64,
    /// Cumulative counts for [`SETUP_BUCKETS`].
    pub setup_buckets: [u64; SETUP_BUCKETS.len()],
}

/// Bucket bounds (seconds) of the setup-time histogram.
pub const SETUP_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.2, 1.0];

impl Metrics {
    /// A session set up in `secs` (API request to its activation).
    pub(super) fn record_setup(&mut self, secs: f64) {
        self.sessions_created += 1;
        self.setup_seconds_sum += secs;
        self.setup_seconds_count += 1;
        for (b, n) in SETUP_BUCKETS.iter().zip(self.setup_buckets.iter_mut()) {
            if secs <= *b {
                *n += 1;
            }
        }
    }
}

impl Smf {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let m = &self.metrics;
        let mut o = String::new();
        let counters: [(&str, &str, u64); 14] = [
            ("smf_pfcp_tx_total", "PFCP messages sent", m.pfcp_tx),
            ("smf_pfcp_rx_total", "PFCP messages received", m.pfcp_rx),
            (
                "smf_pfcp_rx_errors_total",
                "PFCP datagrams that did not parse or match",
                m.pfcp_rx_errors,
            ),
            (
                "smf_pfcp_retransmissions_total",
                "PFCP requests retransmitted (T1)",
                m.pfcp_retransmissions,
            ),
            (
                "smf_pfcp_timeouts_total",
                "PFCP requests given up after N1",
                m.pfcp_timeouts,
            ),
            (
                "smf_pfcp_heartbeats_rx_total",
                "Heartbeat Requests answered",
                m.heartbeats_rx,
            ),
            (
                "smf_pfcp_session_reports_total",
                "Session Report Requests answered",
                m.session_reports_rx,
            ),
            (
                "smf_sessions_created_total",
                "PDU sessions set up",
                m.sessions_created,
            ),
            (
                "smf_sessions_failed_total",
                "PDU session setups that failed",
                m.sessions_failed,
            ),
            (
                "smf_sessions_released_total",
                "PDU sessions released",
                m.sessions_released,
            ),
            (
                "smf_sessions_restored_total",
                "PDU sessions re-established after a UPF restart",
                m.sessions_restored,
            ),
            (
                "smf_upf_restarts_total",
                "UPF restarts detected by Recovery Time Stamp",
                m.upf_restarts,
            ),
            (
                "smf_n2_audit_deleted_total",
                "gNB tunnels no session accounted for, deleted after our restart",
                m.n2_audit_deleted,
            ),
            (
                "smf_gnb_restarts_total",
                "gNB starts announced (their sessions' tunnels set up again)",
                m.gnb_restarts,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP smf_sessions Sessions by state\n# TYPE smf_sessions gauge"
        );
        for st in SessionState::ALL {
            let n = self.sessions.values().filter(|s| s.state == st).count();
            let _ = writeln!(o, "smf_sessions{{state=\"{st:?}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP smf_upf_associated 1 if the UPF has a PFCP association\n# TYPE smf_upf_associated gauge"
        );
        for p in &self.peers {
            let _ = writeln!(
                o,
                "smf_upf_associated{{upf=\"{}\"}} {}",
                p.name,
                u8::from(p.state == AssocState::Associated)
            );
        }
        let _ = writeln!(
            o,
            "# HELP smf_pool_addresses_in_use UE addresses allocated\n# TYPE smf_pool_addresses_in_use gauge"
        );
        for p in &self.peers {
            for d in &p.dnns {
                let _ = writeln!(
                    o,
                    "smf_pool_addresses_in_use{{upf=\"{}\",dnn=\"{}\"}} {}",
                    p.name,
                    d.name,
                    d.pool.in_use()
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP smf_session_setup_seconds API request to Session Modification Response\n# TYPE smf_session_setup_seconds histogram"
        );
        for (b, n) in SETUP_BUCKETS.iter().zip(m.setup_buckets) {
            let _ = writeln!(o, "smf_session_setup_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "smf_session_setup_seconds_bucket{{le=\"+Inf\"}} {}\nsmf_session_setup_seconds_sum {}\nsmf_session_setup_seconds_count {}",
            m.setup_seconds_count, m.setup_seconds_sum, m.setup_seconds_count
        );
        o
    }
}
