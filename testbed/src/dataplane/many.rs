//! `testbed bench dataplane --sessions N` (issue 15's goal "10,000 sessions
//! installed: throughput within 5% of one session"): N - 1 more sessions on
//! the measured gNB and UPF, set up by the SMF through its API (emulated
//! UEs without a namespace: each gets a PFCP session at the UPF and a
//! tunnel at the gNB, as a real UE's session does), then path (a) measured
//! again with all of them installed and with them released, alternating
//! within each repeat, so that a test's two figures come from the same
//! minutes (the first round's, minutes earlier and between other paths,
//! moved by more than the goal's 5% on these machines). Released again on
//! every way out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use wire::ctl::SessionRequest;

use crate::bed::{BedError, BedState};
use crate::plan::UpfPlan;

/// Requests in flight to the SMF while installing or releasing.
const IN_FLIGHT: usize = 64;

/// The UE id of extra session `k` (never a plan's UE).
fn ue_id(k: usize) -> String {
    format!("imsi-99800{k:010}")
}

/// One test's figure on path (a) with one session and with N.
#[derive(Clone, Debug, Serialize)]
pub struct ManyRow {
    /// Test name (`tcp-1-up`, ...).
    pub test: String,
    /// Gbit/s or kpps.
    pub unit: &'static str,
    /// Median with the measured session alone (the extra ones released),
    /// in this round.
    pub one: f64,
    /// Median with `installed` sessions.
    pub many: f64,
    /// The median of the repeats' ratios (with N / alone, each repeat's
    /// two figures measured minutes apart at most).
    pub ratio: f64,
    /// Each repeat's ratio.
    pub ratios: Vec<f64>,
    /// The busiest data-path worker's share of each daemon's packets
    /// during each repeat with `installed` sessions (by daemon): how the
    /// test's flows spread over the workers, which can move a figure as
    /// much as the sessions do.
    pub busiest_worker_share: BTreeMap<String, Vec<f64>>,
    /// The same with the measured session alone.
    pub busiest_worker_share_one: BTreeMap<String, Vec<f64>>,
}

/// One test's figures in one state (alone, or with the extra sessions),
/// a figure and the worker shares per repeat.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    values: Vec<f64>,
    shares: BTreeMap<String, Vec<f64>>,
}

impl Measured {
    /// Adds a repeat's figure and its busiest-worker share by daemon.
    pub fn push(&mut self, value: f64, shares: BTreeMap<String, f64>) {
        self.values.push(value);
        for (daemon, share) in shares {
            self.shares.entry(daemon).or_default().push(share);
        }
    }
}

/// The median of `v` (0 when empty).
fn median(v: &[f64]) -> f64 {
    crate::dataplane::report::Cell::of(v).map_or(0.0, |c| c.median)
}

impl ManyRow {
    /// The row of test `test` from its figures alone and with the extras
    /// (one per repeat each, in the same order).
    pub fn of(test: &str, unit: &'static str, one: Measured, many: Measured) -> ManyRow {
        let ratios: Vec<f64> = one
            .values
            .iter()
            .zip(&many.values)
            .map(|(o, m)| if *o > 0.0 { m / o } else { 0.0 })
            .collect();
        ManyRow {
            test: test.to_string(),
            unit,
            one: median(&one.values),
            many: median(&many.values),
            ratio: median(&ratios),
            ratios,
            busiest_worker_share: many.shares,
            busiest_worker_share_one: one.shares,
        }
    }
}

/// The second round of path (a).
#[derive(Clone, Debug, Serialize)]
pub struct ManySessions {
    /// Sessions installed on the gNB and the UPF in all (the measured one
    /// included).
    pub installed: usize,
    /// Sessions the UPF reported during the round (its `upf_sessions`).
    pub upf_sessions: u64,
    /// Seconds the SMF took to set up the extra ones.
    pub setup_seconds: f64,
    /// Per test.
    pub rows: Vec<ManyRow>,
}

/// The extra sessions, released on drop (also when a measurement fails).
pub struct Extra {
    ns: String,
    base: String,
    count: usize,
    /// Seconds the setups took.
    pub setup_seconds: f64,
}

impl Extra {
    /// Sets up `count` sessions through the SMF's API to `upf`; every one
    /// must succeed (what did is released on failure).
    pub fn install(
        st: &BedState,
        upf: &UpfPlan,
        count: usize,
        on_progress: &mut dyn FnMut(&str),
    ) -> Result<Extra, BedError> {
        let ns = st.ns(&st.plan.smf_node);
        let base = format!("http://{}/sessions", st.plan.smf_api);
        on_progress(&format!(
            "setting up {count} more sessions to {} through the SMF ...",
            upf.name
        ));
        let mut extra = Extra {
            ns,
            base,
            count,
            setup_seconds: 0.0,
        };
        let (dnn, name) = (upf.dnn.clone(), upf.name.clone());
        let url: Arc<str> = extra.base.clone().into();
        let t = Instant::now();
        let results = in_ns(&extra.ns, move || {
            crate::bench::in_flight_on_runtime(IN_FLIGHT, count, move |http, k| {
                let req = SessionRequest {
                    ue_id: ue_id(k),
                    pdu_session_id: 1,
                    dnn: dnn.clone(),
                    upf: Some(name.clone()),
                    gnb: None,
                };
                let url = url.clone();
                async move {
                    let body = serde_json::to_vec(&req).unwrap_or_default();
                    let r = http
                        .post_json(&url, body)
                        .await
                        .map_err(|e| e.to_string())?;
                    match r.status {
                        200 | 201 => Ok(()),
                        c => Err(format!("{}: HTTP {c}: {}", req.ue_id, r.text().trim())),
                    }
                }
            })
        })?;
        extra.setup_seconds = t.elapsed().as_secs_f64();
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if let Some(first) = failed.first() {
            return Err(BedError::Request(format!(
                "{} of {count} extra sessions not set up (the first: {first})",
                failed.len()
            )));
        }
        Ok(extra)
    }

    fn release(&self) -> Result<(), BedError> {
        let base: Arc<str> = self.base.clone().into();
        let count = self.count;
        let results = in_ns(&self.ns, move || {
            crate::bench::in_flight_on_runtime(IN_FLIGHT, count, move |http, k| {
                let url = format!("{base}/{}/1", ue_id(k));
                async move {
                    match http.delete(&url).await.map(|r| r.status) {
                        Ok(200 | 204 | 404) => Ok(()),
                        Ok(c) => Err(format!("{url}: HTTP {c}")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
        })?;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            return Err(BedError::Request(format!(
                "{failed} of {} extra sessions not released",
                self.count
            )));
        }
        Ok(())
    }

    /// Releases them now, saying if any was not.
    pub fn finish(mut self) -> Result<(), BedError> {
        let r = self.release();
        self.count = 0;
        r
    }
}

impl Drop for Extra {
    fn drop(&mut self) {
        if self.count > 0 {
            if let Err(e) = self.release() {
                tracing::warn!(error = %e, "extra sessions of the bench");
            }
        }
    }
}

/// Runs `f` in namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, BedError> {
    topo::netns::run_in_netns(ns, f)
        .map_err(|e| BedError::Request(format!("in {ns}: {e}")))?
        .map_err(|e| BedError::Request(format!("in {ns}: {e}")))
}
