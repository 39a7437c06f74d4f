//! State-copy migration: the paper's VM and container live-migration
//! baselines, modelled with real bytes over the inter-edge link. These are
//! models of VM/container migration with the paper's sizes, not a
//! hypervisor: the image is pseudo-random bytes of the preset's size, the
//! dirty rate a parameter; the source instance really freezes (SIGSTOP of
//! its process group) while the remainder crosses the link.
//!
//! - [`plan`]: the planner (stop-and-copy, pre-copy), free of I/O, and the
//!   calibrated presets (snake, minetest) with `scale`.
//! - [`frame`]: the copy link's header and acknowledgement.
//! - [`link`]: the blocking sender (with its ledger) and receiver.
//! - [`engine`]: the planner driven on the real clock over a sender.
//! - `migrate` (private): the agent's side, `POST /instances/{id}/statecopy`
//!   on the source agent and the copy listener (`--copy-listen`) on the
//!   destination agent, `GET /statecopy`.
//!
//! # API
//!
//! `POST /instances/{id}/statecopy` `{method: "stop-and-copy"|"pre-copy",
//! preset?: "snake"|"minetest" (default snake), image_bytes?,
//! dirty_bytes_per_s?, setup_ms?, max_rounds?, stop_threshold_bytes?,
//! scale? (0 < s <= 1, default 1), to_copy: "IP:PORT", to_agent:
//! "http://HOST:PORT", start: {a `POST /instances` body}}`: the preset's
//! values, the given fields over them, then the scale. The agent connects to
//! `to_copy`, waits the set-up, copies the rounds while the instance
//! streams, SIGSTOPs it, copies the remainder, ends the copy (the receiver
//! confirms its byte count), `POST`s `start` to `to_agent`'s `/instances`,
//! then ends the source (SIGKILL of its stopped process group, as a
//! migrated VM's source is destroyed; the cloud sees its connection close)
//! and answers 200 [`crate::agent::api::StateCopyReport`]. Errors: 400
//! naming the field, 404 unknown instance, 409 an instance not running or
//! already being copied, 502 the copy listener or the destination agent
//! failing, 503 the agent stopping; on every error the source instance
//! runs again (SIGCONT) and stays the agent's.
//!
//! `GET /statecopy` -> `{received: [Received...], bytes_sent_total,
//! bytes_received_total}`: what this agent's copy listener received (the
//! last 32 migrations) and the counters.

pub mod engine;
pub mod frame;
pub mod link;
mod migrate;
pub mod plan;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctlhttp::metrics::Kind;
use serde::Serialize;
use tracing::{info, warn};

use link::Received;

/// How long a copy connection may stay silent.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Received migrations kept for `GET /statecopy`.
const KEEP: usize = 32;

/// The agent's state-copy state: instances being copied, what the copy
/// listener received, counters.
#[derive(Default)]
pub(super) struct CopyState {
    busy: Mutex<HashSet<String>>,
    received: Mutex<VecDeque<Received>>,
    sent_bytes: Arc<AtomicU64>,
    received_bytes: AtomicU64,
    copies: AtomicU64,
    failures: AtomicU64,
    /// The memory of the last copy received (the migrated VM's, here now);
    /// released when this agent's instance is copied away or the next
    /// copy arrives.
    image: Mutex<Option<link::Image>>,
}

/// At most this much of a received image is kept in memory, and at most
/// half the memory available when the copy starts.
const IMAGE_MAX: u64 = 8 << 30;

/// What a new image may hold: [`IMAGE_MAX`] or half of `MemAvailable`.
fn image_limit() -> usize {
    let avail = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let limit = avail.map_or(IMAGE_MAX, |a| (a / 2).min(IMAGE_MAX));
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The answer to `GET /statecopy`.
#[derive(Debug, Clone, Serialize)]
pub struct CopyStatus {
    /// What the copy listener received, oldest first.
    pub received: Vec<Received>,
    /// Bytes written by this agent's state copies (payload and headers).
    pub bytes_sent_total: u64,
    /// Bytes read by its copy listener (payload and headers).
    pub bytes_received_total: u64,
}

impl CopyState {
    /// Frees the held image (this agent's instance left by a copy).
    pub(super) fn release_image(&self) {
        let old = self.image.lock().map(|mut i| i.take()).unwrap_or(None);
        if let Some(i) = old {
            info!(bytes = i.len(), "state copy image released");
        }
    }

    pub(super) fn status(&self) -> CopyStatus {
        CopyStatus {
            received: self
                .received
                .lock()
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
            bytes_sent_total: self.sent_bytes.load(Ordering::Relaxed),
            bytes_received_total: self.received_bytes.load(Ordering::Relaxed),
        }
    }

    /// Rows for the agent's Prometheus text.
    pub(super) fn metrics_rows(&self) -> Vec<(&'static str, Kind, &'static str, u64)> {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            (
                "agent_statecopy_bytes_sent_total",
                Kind::Counter,
                "bytes written by state copies (payload and headers)",
                ld(&self.sent_bytes),
            ),
            (
                "agent_statecopy_bytes_received_total",
                Kind::Counter,
                "bytes read by the copy listener (payload and headers)",
                ld(&self.received_bytes),
            ),
            (
                "agent_statecopies_total",
                Kind::Counter,
                "state copies that started their destination",
                ld(&self.copies),
            ),
            (
                "agent_statecopy_failures_total",
                Kind::Counter,
                "state copies that failed (the source runs again)",
                ld(&self.failures),
            ),
        ]
    }
}

/// Serves the copy listener: one blocking receiver per connection.
pub(super) fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<CopyState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (s, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!("copy listener: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let s = match s
                .into_std()
                .and_then(|s| s.set_nonblocking(false).map(|_| s))
            {
                Ok(s) => s,
                Err(e) => {
                    warn!(%peer, "copy listener: {e}");
                    continue;
                }
            };
            let st = state.clone();
            tokio::task::spawn_blocking(move || {
                // A new VM arrives: the one held before is gone.
                st.release_image();
                let mut image = link::Image::new(image_limit());
                let r = link::receive(s, &st.received_bytes, IO_TIMEOUT, &mut image);
                if r.complete {
                    if let Ok(mut held) = st.image.lock() {
                        *held = Some(image);
                    }
                }
                match &r.error {
                    None => info!(%peer, migration_id = r.migration_id, rounds = r.rounds.len(),
                        payload_bytes = r.payload_bytes, "state copy received"),
                    Some(e) => warn!(%peer, migration_id = r.migration_id,
                        payload_bytes = r.payload_bytes, "state copy receive failed: {e}"),
                }
                if let Ok(mut l) = st.received.lock() {
                    if l.len() == KEEP {
                        l.pop_front();
                    }
                    l.push_back(r);
                }
            });
        }
    })
}
