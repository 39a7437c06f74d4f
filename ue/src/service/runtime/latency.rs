//! The UE migration agent's own trigger: the latency to the serving edge,
//! measured continuously; a migration asked for when it stays high.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::super::api::MigrateRequest;
use super::super::LatencyTrigger;
use super::Service;

impl Service {
    /// Measures the round trip to the serving edge every `t.probe_ms` and
    /// asks for a migration when it stays above `t.threshold_ms` for
    /// `t.for_ms` (not while a migration runs).
    pub(super) async fn watch_latency(self: Arc<Service>, t: LatencyTrigger) {
        let mut high_since: Option<Instant> = None;
        loop {
            // Pacing of the probe (its period), not synchronisation.
            tokio::time::sleep(Duration::from_millis(t.probe_ms.max(10))).await;
            let target = {
                let st = self.state();
                if st.current.is_some() {
                    high_since = None;
                    continue;
                }
                st.streams
                    .get(&st.serving)
                    .and_then(|s| Some((s.input?, s.sock.local_addr().ok()?)))
            };
            let Some((to, from)) = target else { continue };
            let Some(rtt) = probe_rtt(from, to).await else {
                continue;
            };
            let ms = rtt.as_secs_f64() * 1e3;
            if ms <= t.threshold_ms {
                high_since = None;
                continue;
            }
            let since = *high_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(t.for_ms) {
                info!(
                    latency_ms = ms,
                    "latency to the serving edge stayed high: asking for a migration"
                );
                if let Err(e) = self.migrate(MigrateRequest { to: None }, true).await {
                    warn!(error = %e, "triggered migration refused");
                }
                high_since = None;
            }
        }
    }
}

/// Round trip to the edge: a TCP SYN to a closed port on its address is
/// answered by a RST (or a SYN-ACK): either way, one round trip.
async fn probe_rtt(from: SocketAddr, to: SocketAddr) -> Option<Duration> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(from.ip(), 0)).ok()?;
    let t0 = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        sock.connect(SocketAddr::new(to.ip(), 9)),
    )
    .await;
    match r {
        Ok(Ok(_)) => Some(t0.elapsed()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(t0.elapsed()),
        _ => None,
    }
}
