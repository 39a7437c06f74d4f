//! The UE migration agent's own trigger: the latency to the serving edge,
//! measured continuously; a migration asked for when it stays high.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::super::api::MigrateRequest;
use super::super::LatencyTrigger;
use super::Service;

/// The agent's decision, free of I/O and of the clock: round trips in,
/// "ask for a migration now" out.
#[derive(Debug, Default)]
pub(super) struct LatencyWatch {
    /// When the latency went above the threshold (ms on the caller's clock).
    high_since_ms: Option<u64>,
}

impl LatencyWatch {
    /// A probe at `now_ms` measured `rtt_ms` (an unanswered probe counts as
    /// its timeout: an edge that stopped answering is the worst latency).
    /// True when the latency has stayed above `t.threshold_ms` for
    /// `t.for_ms`; the watch then starts over.
    pub(super) fn sample(&mut self, t: &LatencyTrigger, now_ms: u64, rtt_ms: f64) -> bool {
        if rtt_ms <= t.threshold_ms {
            self.high_since_ms = None;
            return false;
        }
        let since = *self.high_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) >= t.for_ms {
            self.high_since_ms = None;
            return true;
        }
        false
    }

    /// A migration runs: what was measured before it does not count.
    pub(super) fn reset(&mut self) {
        self.high_since_ms = None;
    }
}

impl Service {
    /// Measures the round trip to the serving edge every `t.probe_ms` and
    /// asks for a migration when it stays above `t.threshold_ms` for
    /// `t.for_ms` (not while a migration runs).
    pub(super) async fn watch_latency(self: Arc<Service>, t: LatencyTrigger) {
        let mut watch = LatencyWatch::default();
        let mut warned = false;
        let t0 = Instant::now();
        loop {
            // Pacing of the probe (its period), not synchronisation.
            tokio::time::sleep(Duration::from_millis(t.probe_ms.max(10))).await;
            let target = {
                let st = self.state();
                if st.current.is_some() {
                    watch.reset();
                    continue;
                }
                st.streams
                    .get(&st.serving)
                    .and_then(|s| Some((s.input?, s.sock.local_addr().ok()?)))
            };
            let Some((to, from)) = target else { continue };
            let rtt = match probe_rtt(from, to).await {
                Probe::Rtt(d) => d,
                Probe::Unanswered => PROBE_TIMEOUT,
                Probe::Failed(e) => {
                    if !warned {
                        warn!(error = %e, "latency probe could not be sent (said once)");
                        warned = true;
                    }
                    continue;
                }
            };
            let ms = rtt.as_secs_f64() * 1e3;
            let now_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            if watch.sample(&t, now_ms, ms) {
                info!(
                    latency_ms = ms,
                    "latency to the serving edge stayed high: asking for a migration"
                );
                if let Err(e) = self.migrate(MigrateRequest { to: None }, true).await {
                    warn!(error = %e, "triggered migration refused");
                }
            }
        }
    }
}

/// How long a probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a probe found.
enum Probe {
    Rtt(Duration),
    /// No answer within [`PROBE_TIMEOUT`], or the edge unreachable.
    Unanswered,
    /// Not sent (socket or bind error).
    Failed(std::io::Error),
}

/// Round trip to the edge: a TCP SYN to a closed port on its address is
/// answered by a RST (or a SYN-ACK): either way, one round trip.
async fn probe_rtt(from: SocketAddr, to: SocketAddr) -> Probe {
    let sock = match tokio::net::TcpSocket::new_v4()
        .and_then(|s| s.bind(SocketAddr::new(from.ip(), 0)).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return Probe::Failed(e),
    };
    let t0 = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, sock.connect(SocketAddr::new(to.ip(), 9))).await {
        Ok(Ok(_)) => Probe::Rtt(t0.elapsed()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Rtt(t0.elapsed()),
        // Unreachable or timed out: the edge cannot be reached.
        Ok(Err(_)) | Err(_) => Probe::Unanswered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> LatencyTrigger {
        LatencyTrigger {
            threshold_ms: 50.0,
            for_ms: 300,
            probe_ms: 100,
        }
    }

    #[test]
    fn asks_once_the_latency_stayed_high_for_the_time_then_starts_over() {
        let t = trigger();
        let mut w = LatencyWatch::default();
        // High from 100 ms on: asked at 400 (300 ms high), not before.
        let asked: Vec<u64> = (1..=12u64)
            .map(|k| k * 100)
            .filter(|&now| w.sample(&t, now, 80.0))
            .collect();
        // Then it starts over: 400 + 100 (first high again) + 300.
        assert_eq!(asked, [400, 800, 1200]);
    }

    #[test]
    fn one_low_sample_or_a_running_migration_starts_the_wait_over() {
        let t = trigger();
        let mut w = LatencyWatch::default();
        assert!(!w.sample(&t, 0, 80.0));
        assert!(!w.sample(&t, 200, 80.0));
        // At the threshold is not above it.
        assert!(!w.sample(&t, 250, 50.0));
        assert!(!w.sample(&t, 300, 80.0));
        assert!(!w.sample(&t, 500, 80.0));
        assert!(w.sample(&t, 600, 80.0));
        assert!(!w.sample(&t, 700, 80.0));
        w.reset();
        assert!(!w.sample(&t, 900, 80.0));
        assert!(w.sample(&t, 1200, 80.0));
    }

    #[test]
    fn an_unanswered_probe_counts_as_high() {
        let t = trigger();
        let mut w = LatencyWatch::default();
        let timeout = PROBE_TIMEOUT.as_secs_f64() * 1e3;
        assert!(!w.sample(&t, 0, timeout));
        assert!(w.sample(&t, 300, timeout));
    }
}
