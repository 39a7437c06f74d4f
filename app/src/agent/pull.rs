//! Pulls: the edge repository filled from the cloud repository, one pull
//! per application at a time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{Agent, AgentError};
use crate::repo::Installed;

impl Agent {
    /// Finds the application in the edge repository or pulls it.
    /// Returns (installed, pulled, pull time, bytes).
    pub(super) async fn ensure_app(
        self: &Arc<Self>,
        app: &str,
    ) -> Result<(Installed, bool, Duration, u64), AgentError> {
        let lock = {
            let mut l = self
                .pull_locks
                .lock()
                .map_err(|_| AgentError::Internal("pull lock poisoned".into()))?;
            l.entry(app.to_owned()).or_default().clone()
        };
        let _g = lock.lock().await;
        if let Some(i) = self.repo.get(app)? {
            return Ok((i, false, Duration::ZERO, 0));
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(AgentError::Stopping);
        }
        let me = self.clone();
        let name = app.to_owned();
        self.pulls_in_flight.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        let r = tokio::task::spawn_blocking(move || me.pull_blocking(&name)).await;
        self.pulls_in_flight.fetch_sub(1, Ordering::SeqCst);
        let elapsed = t0.elapsed();
        let r = r.map_err(|e| AgentError::Internal(e.to_string()))?;
        match r {
            Ok((installed, bytes)) => {
                self.m.pulls.fetch_add(1, Ordering::Relaxed);
                self.m.pull_bytes.fetch_add(bytes, Ordering::Relaxed);
                let us = elapsed.as_micros() as u64;
                self.m.pull_us_total.fetch_add(us, Ordering::Relaxed);
                self.m.last_pull_us.store(us, Ordering::Relaxed);
                info!(
                    app,
                    bytes,
                    ms = elapsed.as_secs_f64() * 1e3,
                    mbit_s = bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6,
                    "pulled from the cloud repository"
                );
                Ok((installed, true, elapsed, bytes))
            }
            Err(e) => {
                if !matches!(e, AgentError::AppNotFound { .. }) {
                    self.m.pull_failures.fetch_add(1, Ordering::Relaxed);
                }
                warn!(app, "pull failed: {e}");
                Err(e)
            }
        }
    }

    fn pull_blocking(&self, app: &str) -> Result<(Installed, u64), AgentError> {
        let url = format!("{}/apps/{app}", self.cloud);
        let mut resp = match self.http.get(&url).call() {
            Ok(r) => r,
            Err(e) => {
                return Err(AgentError::CloudUnreachable {
                    url: self.cloud.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(AgentError::AppNotFound {
                app: app.into(),
                edge: self.repo.dir().display().to_string(),
                cloud: self.cloud.clone(),
            });
        }
        if status != 200 {
            let body = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            return Err(AgentError::CloudStatus {
                url: self.cloud.clone(),
                app: app.into(),
                status,
                body,
            });
        }
        let len = resp.body().content_length();
        let reader = resp.body_mut().as_reader();
        let out = self
            .repo
            .install(app, reader, len, &self.cancel)
            .map_err(|source| AgentError::Pull {
                app: app.into(),
                url: self.cloud.clone(),
                source,
            })?;
        Ok((out.installed, out.bytes))
    }
}
