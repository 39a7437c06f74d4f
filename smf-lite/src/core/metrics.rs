//! The SMF's counters and their Prometheus text exposition.

use ctlhttp::metrics::{Families, Histogram};

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
        self.metrics_text_with(|_| Ok(()))
    }

    /// Prometheus text exposition, with the families `extra` writes (what
    /// the daemon counts outside the core) after the core's. The families
    /// are copied out of `self` first: the collector owns what it writes.
    pub fn metrics_text_with<F>(&self, extra: F) -> String
    where
        F: Fn(&mut Families<'_>) -> std::fmt::Result + Send + Sync + 'static,
    {
        let m = self.metrics.clone();
        let states: Vec<(String, usize)> = SessionState::ALL
            .iter()
            .map(|st| {
                let n = self.sessions.values().filter(|s| s.state == *st).count();
                (format!("{st:?}"), n)
            })
            .collect();
        let associated: Vec<(String, u8)> = self
            .peers
            .iter()
            .map(|p| (p.name.clone(), u8::from(p.state == AssocState::Associated)))
            .collect();
        let pools: Vec<([(&str, String); 2], usize)> = self
            .peers
            .iter()
            .flat_map(|p| {
                p.dnns.iter().map(|d| {
                    (
                        [("upf", p.name.clone()), ("dnn", d.name.clone())],
                        d.pool.in_use(),
                    )
                })
            })
            .collect();
        ctlhttp::metrics::encode_fn(move |f| {
            write_counters(f, &m)?;
            f.gauge(
                "smf_sessions",
                "Sessions by state (TS 28.552 SM.SessionNbrMean and SM.SessionNbrMax sample it).",
                states.iter().map(|(st, n)| ([("state", st.as_str())], *n)),
            )?;
            f.gauge(
                "smf_upf_associated",
                "1 if the UPF has a PFCP association.",
                associated
                    .iter()
                    .map(|(u, a)| ([("upf", u.as_str())], u32::from(*a))),
            )?;
            f.gauge(
                "smf_pool_addresses_in_use",
                "UE addresses allocated.",
                pools.iter().map(|(l, n)| (l.clone(), *n)),
            )?;
            // The buckets are cumulative; the encoder wants each one's own.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = SETUP_BUCKETS
                .iter()
                .zip(m.setup_buckets)
                .map(|(b, n)| {
                    let own = n.saturating_sub(below);
                    below = n;
                    (*b, own)
                })
                .collect();
            f.histogram(
                "smf_session_setup_seconds",
                "API request to Session Modification Response.",
                [(
                    ctlhttp::metrics::NO_LABELS,
                    Histogram {
                        sum: m.setup_seconds_sum,
                        count: m.setup_seconds_count,
                        buckets: &buckets,
                    },
                )],
            )?;
            extra(f)
        })
    }
}

/// The SMF's counters.
fn write_counters(f: &mut Families<'_>, m: &Metrics) -> std::fmt::Result {
    let counters: [(&str, &str, u64); 14] = [
        ("smf_pfcp_tx_total", "PFCP messages sent.", m.pfcp_tx),
        ("smf_pfcp_rx_total", "PFCP messages received.", m.pfcp_rx),
        (
            "smf_pfcp_rx_errors_total",
            "PFCP datagrams that did not parse or match.",
            m.pfcp_rx_errors,
        ),
        (
            "smf_pfcp_retransmissions_total",
            "PFCP requests retransmitted (T1).",
            m.pfcp_retransmissions,
        ),
        (
            "smf_pfcp_timeouts_total",
            "PFCP requests given up after N1.",
            m.pfcp_timeouts,
        ),
        (
            "smf_pfcp_heartbeats_rx_total",
            "Heartbeat Requests answered.",
            m.heartbeats_rx,
        ),
        (
            "smf_pfcp_session_reports_total",
            "Session Report Requests answered (TS 28.552 SM.N4SessionReportSucc).",
            m.session_reports_rx,
        ),
        (
            "smf_sessions_created_total",
            "PDU sessions set up (TS 28.552 SM.PduSessionCreationSucc).",
            m.sessions_created,
        ),
        (
            "smf_sessions_failed_total",
            "PDU session setups that failed (TS 28.552 SM.PduSessionCreationFail; \
             SM.PduSessionCreationReq is the sum of this and the above).",
            m.sessions_failed,
        ),
        (
            "smf_sessions_released_total",
            "PDU sessions released.",
            m.sessions_released,
        ),
        (
            "smf_sessions_restored_total",
            "PDU sessions re-established after a UPF restart.",
            m.sessions_restored,
        ),
        (
            "smf_upf_restarts_total",
            "UPF restarts detected by Recovery Time Stamp.",
            m.upf_restarts,
        ),
        (
            "smf_n2_audit_deleted_total",
            "gNB tunnels no session accounted for, deleted after our restart.",
            m.n2_audit_deleted,
        ),
        (
            "smf_gnb_restarts_total",
            "gNB starts announced (their sessions' tunnels set up again).",
            m.gnb_restarts,
        ),
    ];
    for (name, help, v) in counters {
        f.counter_value(name, help, v)?;
    }
    Ok(())
}
