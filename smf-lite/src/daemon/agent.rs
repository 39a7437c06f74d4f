//! Calls to the edge agents (`app agent`) for the migration manager, each a
//! task on the SMF's runtime over the async client, and the latency probe
//! of the edges.
//!
//! A failed call (refused connection, timeout, error status, an answer
//! that does not decode) becomes a reason naming the edge and its agent;
//! pull and start results go back to the control thread as
//! [`Cmd::Agent`].

use super::{AgentDone, Cmd};
use crate::migration::StartedInstance;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, info_span, warn, Instrument};
use wire::ctl::migration::StreamParams;

/// Longest wait for an instance to stop (the agent's SIGTERM then SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of the agent's `POST /instances`.
#[derive(Debug, Serialize)]
pub(super) struct StartBody {
    pub app: String,
    pub account: String,
    pub token: String,
    pub ue: SocketAddr,
    #[serde(flatten)]
    pub params: StreamParams,
}

/// What the manager needs of the agent's answer to a start (it carries more).
#[derive(Debug, Deserialize)]
struct Started {
    id: String,
    input_port: u16,
    #[serde(default)]
    sdp: Option<String>,
    #[serde(default)]
    start_ms: Option<f64>,
}

/// The agent's answer to a pull.
#[derive(Debug, Deserialize)]
struct Pulled {
    pulled: bool,
    #[serde(default)]
    pull_ms: f64,
    #[serde(default)]
    bytes: u64,
}

pub(super) struct Agents {
    http: ctlhttp::Client,
    /// Per agent with a token: the client that sends it.
    authed: std::collections::HashMap<SocketAddr, ctlhttp::Client>,
    done: mpsc::Sender<Cmd>,
}

/// One call: which agent, what, and the body.
struct Call {
    edge: String,
    agent: SocketAddr,
    method: Method,
    path: String,
}

/// The agent calls there are.
#[derive(Clone, Debug)]
enum Method {
    Post(Vec<u8>),
    Delete,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Post(_) => "POST",
            Method::Delete => "DELETE",
        })
    }
}

impl Call {
    /// Makes the call; any failure is a reason naming the agent.
    async fn run(&self, http: &ctlhttp::Client) -> Result<Vec<u8>, String> {
        let url = format!("http://{}{}", self.agent, self.path);
        let at = format!("agent of {} at {}", self.edge, self.agent);
        let what = format!("{} {}", self.method, self.path);
        let r = match &self.method {
            Method::Post(body) => http.post_json(&url, body.clone()).await,
            Method::Delete => http.delete(&url).await,
        }
        .map_err(|e| match e {
            ctlhttp::Error::Timeout { timeout, .. } => {
                format!("{at}: {what}: no answer within {timeout:?}")
            }
            ctlhttp::Error::Transport { msg, .. } | ctlhttp::Error::Url { msg, .. } => {
                format!("{at}: {what}: {msg}")
            }
        })?;
        if r.status >= 300 {
            return Err(format!(
                "{at}: {what}: HTTP {}: {}",
                r.status,
                error_text(&r.body)
            ));
        }
        Ok(r.body.to_vec())
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, body: &[u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|e| {
            format!(
                "agent of {} at {}: {} {}: bad answer: {e}",
                self.edge, self.agent, self.method, self.path
            )
        })
    }
}

/// The agent's error text (`{"error": ..., "log"?: [...]}`), with the last
/// log line of an instance that failed to start.
fn error_text(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        let t = String::from_utf8_lossy(body);
        return t.chars().take(300).collect();
    };
    let mut s = v["error"].as_str().unwrap_or("(no error text)").to_owned();
    if let Some(last) = v["log"].as_array().and_then(|l| l.last()) {
        s.push_str(&format!(
            " (last log line: {})",
            last.as_str().unwrap_or("")
        ));
    }
    s
}

impl Agents {
    /// Pulls and starts must be answered within `timeout`; each edge's
    /// agent gets its token, if it has one (checked by `Config::validate`).
    pub fn new(
        timeout: Duration,
        edges: &[crate::config::EdgeConfig],
        done: mpsc::Sender<Cmd>,
    ) -> Agents {
        let http = ctlhttp::Client::new(timeout);
        let authed = edges
            .iter()
            .filter_map(|e| {
                let t = e.token.as_deref()?;
                match http.with_bearer(t) {
                    Ok(c) => Some((e.agent, c)),
                    Err(why) => {
                        warn!(edge = %e.name, "agent token not usable: {why}");
                        None
                    }
                }
            })
            .collect();
        Agents { http, authed, done }
    }

    /// The client for `agent` (with its token, if it has one).
    fn http(&self, agent: SocketAddr) -> ctlhttp::Client {
        self.authed.get(&agent).unwrap_or(&self.http).clone()
    }

    /// `POST /apps/{app}/pull`; answered with [`AgentDone::Pulled`].
    pub fn pull(&self, mig: u64, edge: String, agent: SocketAddr, app: String) {
        let call = Call {
            path: format!("/apps/{app}/pull"),
            method: Method::Post(b"{}".to_vec()),
            edge,
            agent,
        };
        let (http, done) = (self.http(call.agent), self.done.clone());
        let task = async move {
            info!(edge = %call.edge, %app, "pull requested");
            let result = match call.run(&http).await {
                Ok(body) => call.decode::<Pulled>(&body).map(|p| {
                    info!(edge = %call.edge, pulled = p.pulled, pull_ms = p.pull_ms, bytes = p.bytes, "pull done");
                }),
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                warn!("pull failed: {e}");
            }
            let _ = done
                .send(Cmd::Agent(AgentDone::Pulled { mig, result }))
                .await;
        };
        tokio::spawn(task.instrument(info_span!("mig", id = mig)));
    }

    /// `POST /instances`; answered with [`AgentDone::Started`].
    pub fn start(&self, mig: u64, edge: String, agent: SocketAddr, body: StartBody) {
        let call = Call {
            path: "/instances".into(),
            // Strings, an address and numbers: serializing cannot fail.
            method: Method::Post(serde_json::to_vec(&body).unwrap_or_default()),
            edge,
            agent,
        };
        let (http, done) = (self.http(call.agent), self.done.clone());
        let task = async move {
            info!(edge = %call.edge, app = %body.app, ue = %body.ue, "instance start requested");
            let result = match call.run(&http).await {
                Ok(b) => call.decode::<Started>(&b).map(|s| StartedInstance {
                    instance: s.id,
                    input_port: s.input_port,
                    sdp: s.sdp,
                    start_ms: s.start_ms,
                }),
                Err(e) => Err(e),
            };
            match &result {
                Ok(s) => {
                    info!(edge = %call.edge, instance = %s.instance, input_port = s.input_port,
                    start_ms = ?s.start_ms, "instance started")
                }
                Err(e) => warn!("instance start failed: {e}"),
            }
            let _ = done
                .send(Cmd::Agent(AgentDone::Started { mig, result }))
                .await;
        };
        tokio::spawn(task.instrument(info_span!("mig", id = mig)));
    }

    /// `DELETE /instances/{id}`; nobody waits for the answer.
    pub fn stop(&self, edge: String, agent: SocketAddr, instance: String) {
        let call = Call {
            path: format!("/instances/{instance}"),
            method: Method::Delete,
            edge,
            agent,
        };
        let http = self.http(call.agent).with_timeout(STOP_TIMEOUT);
        tokio::spawn(async move {
            match call.run(&http).await {
                Ok(_) => info!(edge = %call.edge, %instance, "instance stopped"),
                Err(e) => warn!(%instance, "instance stop failed: {e}"),
            }
        });
    }
}

/// Measures each edge's latency from the core every `every`: the time of a
/// TCP connect and `GET /healthz` to its agent (a new connection each
/// time), `None` when it does not answer 200 within `every`. Each round
/// goes to the control thread as [`Cmd::Latency`].
pub(super) async fn probe_loop(
    edges: Vec<(String, SocketAddr)>,
    every: Duration,
    tx: mpsc::Sender<Cmd>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut set = JoinSet::new();
        for (name, agent) in &edges {
            let (name, agent) = (name.clone(), *agent);
            set.spawn(async move { (name, probe(agent, every).await) });
        }
        let mut round = Vec::with_capacity(edges.len());
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                round.push(r);
            }
        }
        if tx.send(Cmd::Latency(round)).await.is_err() {
            return;
        }
    }
}

async fn probe(agent: SocketAddr, timeout: Duration) -> Option<Duration> {
    // A client of its own: its connection is new, and closed after.
    let http = ctlhttp::Client::new(timeout);
    let t0 = Instant::now();
    let r = http.get(&format!("http://{agent}/healthz")).await.ok()?;
    (r.status == 200).then(|| t0.elapsed())
}
