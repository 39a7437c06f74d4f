//! The source agent's side of a state copy: the instance is frozen for
//! real, the destination started through its agent, and on any failure the
//! source runs again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::{info, warn};

use super::engine::{self, EngineError, Hooks};
use super::link::{LinkError, Sender};
use super::IO_TIMEOUT;
use crate::agent::api::{StateCopyReport, StateCopyRequest};
use crate::agent::instances::Instance;
use crate::agent::{Agent, AgentError, Started};
use crate::instance::realtime_ns;

/// Ids handed out by this process, and the last one.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// A migration id: Unix microseconds, unique within the agent (below 2^53,
/// so exact in any JSON reader).
fn migration_id() -> u64 {
    let now = realtime_ns() / 1000;
    let prev = LAST_ID
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
            Some(now.max(l + 1))
        })
        .unwrap_or(now); // the closure always returns Some
    now.max(prev + 1)
}

/// Marks an instance busy; unmarks it on drop.
struct Busy<'a>(&'a Agent, String);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.copy.busy.lock() {
            b.remove(&self.1);
        }
    }
}

/// The hooks: SIGSTOP of the source's process group, the destination's
/// `POST /instances`.
struct AgentHooks {
    inst: Arc<Instance>,
    http: ctlhttp::blocking::Client,
    url: String,
    /// The destination agent's token (the testbed gives all agents one).
    token: Option<String>,
    body: Vec<u8>,
    stopped: bool,
}

impl Hooks for AgentHooks {
    type Started = Started;

    fn stop_source(&mut self) -> Result<(), String> {
        if !self.inst.proc.signal(libc::SIGSTOP) {
            return Err("the source instance has exited".into());
        }
        self.stopped = true;
        Ok(())
    }

    fn start_destination(&mut self) -> Result<Started, String> {
        let http = match &self.token {
            Some(t) => self.http.with_bearer(t)?,
            None => self.http.clone(),
        };
        let r = http
            .post_json(&self.url, self.body.clone())
            .map_err(|e| format!("destination agent {e}"))?;
        let (status, text) = (r.status, r.text());
        if status != 201 {
            return Err(format!(
                "destination agent {} answered HTTP {status}: {}",
                self.url,
                text.trim()
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "destination agent {}: its answer is no start report: {e}",
                self.url
            )
        })
    }
}

fn status_of(e: &EngineError) -> u16 {
    match e {
        EngineError::Plan(_) => 400,
        EngineError::StopSource(_) => 409,
        EngineError::Cancelled | EngineError::Link(LinkError::Cancelled) => 503,
        EngineError::Link(_) | EngineError::Destination(_) => 502,
    }
}

impl Agent {
    /// Migrates instance `id` by state copy (see the module documentation).
    pub(in crate::agent) async fn state_copy(
        self: &Arc<Self>,
        id: &str,
        req: StateCopyRequest,
    ) -> Result<StateCopyReport, AgentError> {
        let fail = |status: u16, reason: String| AgentError::StateCopy {
            id: id.to_owned(),
            status,
            reason,
        };
        if self.cancel.load(Ordering::Relaxed) {
            return Err(AgentError::Stopping);
        }
        let inst = self.get(id)?;
        if let Some(st) = inst.proc.poll() {
            return Err(AgentError::NotRunning {
                id: id.to_owned(),
                state: format!("exited: {st}"),
            });
        }
        {
            let mut b = self
                .copy
                .busy
                .lock()
                .map_err(|_| AgentError::Internal("state-copy lock poisoned".into()))?;
            if !b.insert(id.to_owned()) {
                return Err(fail(409, "a state copy of it is in progress".into()));
            }
        }
        let _busy = Busy(self, id.to_owned());
        let mid = migration_id();
        let p = req.params;
        info!(id, migration_id = mid, method = %p.method, preset = %req.preset, scale = req.scale,
            to_copy = %req.to_copy, to_agent = %req.to_agent, "state copy requested");
        let body = serde_json::to_vec(&req.start)
            .map_err(|e| AgentError::Internal(format!("start request: {e}")))?;
        let mut hooks = AgentHooks {
            inst: inst.clone(),
            http: self.http.clone(),
            url: format!("{}/instances", req.to_agent),
            token: self.args.token.clone(),
            body,
            stopped: false,
        };
        let sent = self.copy.sent_bytes.clone();
        let cancel = self.cancel.clone();
        let to = req.to_copy;
        let r = tokio::task::spawn_blocking(move || {
            let out = Sender::connect(to, p.method, mid, IO_TIMEOUT)
                .map_err(EngineError::Link)
                .and_then(|tx| {
                    let mut tx = tx.count_into(sent).cancel_on(cancel.clone());
                    let r = engine::run(p, &mut tx, &mut hooks, &cancel);
                    r.map(|run| (run, tx.ledger().clone()))
                });
            if out.is_err() && hooks.stopped {
                // The freeze ends: the source streams again.
                hooks.inst.proc.signal(libc::SIGCONT);
            }
            out
        })
        .await
        .map_err(|e| AgentError::Internal(format!("state copy task: {e}")))?;
        let (run, ledger) = match r {
            Ok(x) => x,
            Err(e) => {
                self.copy.failures.fetch_add(1, Ordering::Relaxed);
                warn!(
                    id,
                    migration_id = mid,
                    "state copy failed, source resumed: {e}"
                );
                return Err(fail(status_of(&e), e.to_string()));
            }
        };
        // The source is destroyed, as a migrated VM's source is: SIGKILL of
        // its stopped group (a SIGTERM would wait for a SIGCONT, and the
        // resumed source would stream again).
        inst.proc.signal(libc::SIGKILL);
        let source = self.stop_instance(id).await?;
        self.copy.copies.fetch_add(1, Ordering::Relaxed);
        // The source's VM is destroyed: its memory goes.
        self.copy.release_image();
        info!(id, migration_id = mid, bytes_ledger = ledger.total(), rounds = ledger.rounds.len(),
            stop_to_started_ms = run.stop_to_started_ms, total_ms = run.total_ms,
            destination = %run.destination.instance.id, "state copy done, source ended");
        Ok(StateCopyReport {
            migration_id: mid,
            instance: id.to_owned(),
            method: p.method,
            preset: req.preset,
            scale: req.scale,
            params: p,
            to_copy: req.to_copy,
            to_agent: req.to_agent,
            payload_bytes: ledger.payload_bytes,
            framing_bytes: ledger.framing_bytes,
            bytes_ledger: ledger.total(),
            rounds: ledger.rounds,
            received_bytes: run.received_bytes,
            setup_ms: run.setup_ms,
            start_unix_ns: run.start_unix_ns,
            stop_unix_ns: run.stop_unix_ns,
            stop_to_started_ms: run.stop_to_started_ms,
            destination: run.destination,
            source,
            total_ms: run.total_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_ids_grow_and_stay_json_exact() {
        let a = migration_id();
        let b = migration_id();
        assert!(b > a);
        assert!(b < 1 << 53);
    }
}
