//! The engine: drives the [`Planner`] on the real clock, copying its rounds
//! over a [`Sender`]; stopping the source and starting the destination are
//! the caller's [`Hooks`]. Blocking (run it on a blocking thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::info;

use super::link::{LinkError, Sender};
use super::plan::{Action, Params, PlanError, Planner};
use crate::instance::realtime_ns;

/// What the engine asks of its caller.
pub trait Hooks {
    /// What starting the destination gives.
    type Started;
    /// Stops the source (the freeze begins).
    fn stop_source(&mut self) -> Result<(), String>;
    /// Starts the destination.
    fn start_destination(&mut self) -> Result<Self::Started, String>;
}

/// Errors of a run; the caller undoes what its hooks did.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad parameters.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// The copy link failed.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The source could not be stopped.
    #[error("cannot stop the source: {0}")]
    StopSource(String),
    /// The destination did not start.
    #[error("the destination did not start: {0}")]
    Destination(String),
    /// The agent is stopping.
    #[error("cancelled")]
    Cancelled,
}

/// What a run did (the ledger is the sender's).
#[derive(Debug, Clone)]
pub struct Run<S> {
    /// The set-up phase.
    pub setup_ms: f64,
    /// When the run began (Unix ns).
    pub start_unix_ns: u64,
    /// When the source was stopped (Unix ns).
    pub stop_unix_ns: u64,
    /// From the source's stop to the destination's having started.
    pub stop_to_started_ms: f64,
    /// From the beginning to the destination's having started.
    pub total_ms: f64,
    /// Payload bytes the receiver counted in all.
    pub received_bytes: u64,
    /// What the destination's start gave.
    pub destination: S,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs migration `p` over `tx`; `cancel` stops it between steps.
pub fn run<H: Hooks>(
    p: Params,
    tx: &mut Sender,
    hooks: &mut H,
    cancel: &AtomicBool,
) -> Result<Run<H::Started>, EngineError> {
    let t0 = Instant::now();
    let start_unix_ns = realtime_ns();
    let mut pl = Planner::new(p, Duration::ZERO)?;
    info!(method = %p.method, image_bytes = p.image_bytes, dirty_bytes_per_s = p.dirty_bytes_per_s,
        setup_ms = p.setup_ms, max_rounds = p.max_rounds, stop_threshold_bytes = p.stop_threshold_bytes,
        "state copy: set-up");
    let mut setup_ms = 0.0;
    let mut stop: Option<(Instant, u64)> = None;
    let mut received_bytes = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        match pl.next(t0.elapsed()) {
            Action::Wait { until } => {
                let left = until.saturating_sub(t0.elapsed());
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
            Action::Copy {
                round,
                bytes,
                source_running,
            } => {
                if round == 1 {
                    setup_ms = ms(t0.elapsed());
                }
                let r = tx.send_round(bytes, source_running)?;
                info!(
                    round,
                    bytes,
                    source_running,
                    ms = r.ms,
                    "state copy: round copied"
                );
            }
            Action::StopSource => {
                if pl.rounds().is_empty() {
                    setup_ms = ms(t0.elapsed());
                }
                hooks.stop_source().map_err(EngineError::StopSource)?;
                stop = Some((Instant::now(), realtime_ns()));
                info!(rounds = pl.rounds().len(), "state copy: source stopped");
            }
            Action::StartDestination => {
                received_bytes = tx.finish()?;
                let s = hooks
                    .start_destination()
                    .map_err(EngineError::Destination)?;
                info!(received_bytes, "state copy: destination started");
                let (at, stop_unix_ns) = stop.ok_or(EngineError::StopSource(
                    "the plan never stopped the source".into(),
                ))?;
                return Ok(Run {
                    setup_ms,
                    start_unix_ns,
                    stop_unix_ns,
                    stop_to_started_ms: ms(at.elapsed()),
                    total_ms: ms(t0.elapsed()),
                    received_bytes,
                    destination: s,
                });
            }
            Action::Done => {
                return Err(EngineError::Destination(format!(
                    "the plan ended without starting it ({received_bytes} bytes received)"
                )))
            }
        }
    }
}
