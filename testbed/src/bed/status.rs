//! `testbed status`: each daemon's liveness and Prometheus counters, and
//! the SMF's and gNBs' views (UPFs, sessions, tunnels).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::http::{get_json, http_in};
use super::process::alive;
use super::record::load_one;
use super::BedError;
use crate::plan::Role;

/// One daemon in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Namespace.
    pub netns: String,
    /// pid.
    pub pid: i32,
    /// Whether it runs.
    pub running: bool,
    /// API address.
    pub api: String,
    /// Log.
    pub log: PathBuf,
    /// Its counters: Prometheus samples (name{labels} -> value).
    pub counters: Vec<(String, f64)>,
    /// Why counters are missing, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `testbed status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Topology.
    pub topology: String,
    /// Run folder.
    pub run_dir: PathBuf,
    /// Daemons.
    pub daemons: Vec<DaemonStatus>,
    /// The SMF's UPF view (`GET /upfs`).
    pub upfs: serde_json::Value,
    /// PDU sessions (`GET /sessions` of the SMF).
    pub sessions: serde_json::Value,
    /// Tunnels of each gNB (`GET /tunnels`).
    pub tunnels: Vec<(String, serde_json::Value)>,
}

/// Parses Prometheus text into (series, value), skipping comments.
pub fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.trim().rsplit_once(' ')?;
            Some((k.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Gathers the status of the testbed that is up.
pub fn status(state_dir_opt: Option<&Path>) -> Result<Status, BedError> {
    let st = load_one(state_dir_opt)?;
    let mut daemons = Vec::new();
    for p in &st.procs {
        let running = alive(p);
        let url = match p.role {
            Role::Smf => format!("http://{}/metrics", st.plan.smf_api),
            _ => format!("http://{}/metrics", p.api),
        };
        let (counters, error) = if !running {
            (Vec::new(), Some("not running".to_string()))
        } else if url.is_empty() {
            (Vec::new(), None)
        } else {
            match http_in(&p.netns, "GET", &url, None, Duration::from_secs(3)) {
                Ok((200, body)) => (parse_prometheus(&body), None),
                Ok((code, body)) => (
                    Vec::new(),
                    Some(format!("{url}: HTTP {code}: {}", body.trim())),
                ),
                Err(e) => (Vec::new(), Some(e)),
            }
        };
        daemons.push(DaemonStatus {
            name: p.name.clone(),
            role: p.role,
            netns: p.netns.clone(),
            pid: p.pid,
            running,
            api: p.api.clone(),
            log: p.log.clone(),
            counters,
            error,
        });
    }
    let smf_ns = st.ns(&st.plan.smf_node);
    let err = |e: String| serde_json::json!({ "error": e });
    let sessions =
        get_json(&smf_ns, &format!("http://{}/sessions", st.plan.smf_api)).unwrap_or_else(err);
    let upfs = get_json(&smf_ns, &format!("http://{}/upfs", st.plan.smf_api)).unwrap_or_else(err);
    let tunnels = st
        .plan
        .gnbs
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                get_json(&st.ns(&g.name), &format!("http://{}/tunnels", g.n2_api))
                    .unwrap_or_else(err),
            )
        })
        .collect();
    Ok(Status {
        topology: st.topology.clone(),
        run_dir: st.run_dir.clone(),
        daemons,
        upfs,
        sessions,
        tunnels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_parse() {
        let v = parse_prometheus("# HELP x\nx_total 3\ny{a=\"b c\"} 1.5\n\n");
        assert_eq!(
            v,
            vec![("x_total".into(), 3.0), ("y{a=\"b c\"}".into(), 1.5)]
        );
    }

    /// What the daemons serve (ctlhttp::metrics): HELP and TYPE lines,
    /// escaped label values, histograms.
    #[test]
    fn prometheus_parse_reads_what_the_daemons_encode() {
        let text = ctlhttp::metrics::encode_fn(|f| {
            f.counter(
                "upf_drops_total",
                "Drops (a \\ in help).",
                [([("reason", "a \"b\" c")], 4u64)],
            )?;
            f.histogram(
                "ue_session_setup_seconds",
                "Setup.",
                [(
                    [("ue", "ue1")],
                    ctlhttp::metrics::Histogram {
                        sum: 0.5,
                        count: 2,
                        buckets: &[(0.001, 1)],
                    },
                )],
            )
        });
        let v = parse_prometheus(&text);
        assert_eq!(
            v,
            vec![
                ("upf_drops_total{reason=\"a \\\"b\\\" c\"}".into(), 4.0),
                (
                    "ue_session_setup_seconds_bucket{ue=\"ue1\",le=\"0.001\"}".into(),
                    1.0
                ),
                (
                    "ue_session_setup_seconds_bucket{ue=\"ue1\",le=\"+Inf\"}".into(),
                    2.0
                ),
                ("ue_session_setup_seconds_sum{ue=\"ue1\"}".into(), 0.5),
                ("ue_session_setup_seconds_count{ue=\"ue1\"}".into(), 2.0),
            ],
            "{text}"
        );
    }
}
