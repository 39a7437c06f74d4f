//! Pulls: the edge repository filled from the cloud repository, one pull
//! per application at a time; the pull-only request and the removal of an
//! application, which make the repository warm or cold on purpose.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::error::bad;
use super::{Agent, AgentError, Pulled, Removed};
use crate::repo::{self, Installed};

/// An application found or pulled for a request.
pub(super) struct Ensured {
    /// The application in the edge repository.
    pub(super) installed: Installed,
    /// Whether it was pulled for this request.
    pub(super) pulled: bool,
    /// Time of the pull (0 when not pulled).
    pub(super) pull_time: Duration,
    /// Package bytes pulled (0 when not pulled).
    pub(super) bytes: u64,
    /// Keeps the application from being removed while the request goes on.
    _use: AppUse,
}

/// A user of an application in the edge repository (a start in progress);
/// counted in `Agent::app_users` until dropped.
pub(super) struct AppUse {
    agent: Arc<Agent>,
    app: String,
}

impl Drop for AppUse {
    fn drop(&mut self) {
        if let Ok(mut u) = self.agent.app_users.lock() {
            if let Some(n) = u.get_mut(&self.app) {
                *n -= 1;
                if *n == 0 {
                    u.remove(&self.app);
                }
            }
        }
    }
}

impl Agent {
    /// The lock that serializes pulls and removals of `app`.
    fn app_lock(&self, app: &str) -> Result<Arc<tokio::sync::Mutex<()>>, AgentError> {
        let mut l = self
            .pull_locks
            .lock()
            .map_err(|_| AgentError::Internal("pull lock poisoned".into()))?;
        Ok(l.entry(app.to_owned()).or_default().clone())
    }

    /// Counts a user of `app` (taken under its lock, so that a removal
    /// waiting for the lock sees it).
    fn use_app(self: &Arc<Self>, app: &str) -> AppUse {
        if let Ok(mut u) = self.app_users.lock() {
            *u.entry(app.to_owned()).or_default() += 1;
        }
        AppUse {
            agent: self.clone(),
            app: app.to_owned(),
        }
    }

    /// Finds the application in the edge repository or pulls it (one pull
    /// per application at a time; the others wait for it).
    pub(super) async fn ensure_app(self: &Arc<Self>, app: &str) -> Result<Ensured, AgentError> {
        let lock = self.app_lock(app)?;
        let _g = lock.lock().await;
        if let Some(installed) = self.repo.get(app)? {
            return Ok(Ensured {
                installed,
                pulled: false,
                pull_time: Duration::ZERO,
                bytes: 0,
                _use: self.use_app(app),
            });
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
                Ok(Ensured {
                    installed,
                    pulled: true,
                    pull_time: elapsed,
                    bytes,
                    _use: self.use_app(app),
                })
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
        let mut resp = match self.http.get_reader(&url) {
            Ok(r) => r,
            Err(e) => {
                return Err(AgentError::CloudUnreachable {
                    url: self.cloud.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let status = resp.status;
        if status == 404 {
            return Err(AgentError::AppNotFound {
                app: app.into(),
                edge: self.repo.dir().display().to_string(),
                cloud: self.cloud.clone(),
            });
        }
        if status != 200 {
            let mut body = String::new();
            let _ = (&mut resp).take(4096).read_to_string(&mut body);
            return Err(AgentError::CloudStatus {
                url: self.cloud.clone(),
                app: app.into(),
                status,
                body,
            });
        }
        let len = resp.content_length;
        let out = self
            .repo
            .install(app, resp, len, &self.cancel)
            .map_err(|source| AgentError::Pull {
                app: app.into(),
                url: self.cloud.clone(),
                source,
            })?;
        Ok((out.installed, out.bytes))
    }

    /// `POST /apps/{app}/pull`: makes the edge repository warm.
    pub(super) async fn pull_only(self: &Arc<Self>, app: &str) -> Result<Pulled, AgentError> {
        repo::check_name(app).map_err(|e| bad("app", e.to_string()))?;
        if self.cancel.load(Ordering::Relaxed) {
            return Err(AgentError::Stopping);
        }
        let e = self.ensure_app(app).await?;
        Ok(Pulled {
            app: app.to_owned(),
            version: e.installed.manifest.version.clone(),
            pulled: e.pulled,
            pull_ms: e.pull_time.as_secs_f64() * 1e3,
            bytes: e.bytes,
        })
    }

    /// `DELETE /apps/{app}`: makes the edge repository cold again, unless
    /// an instance of the application runs or starts.
    pub(super) async fn remove_app(self: &Arc<Self>, app: &str) -> Result<Removed, AgentError> {
        repo::check_name(app).map_err(|e| bad("app", e.to_string()))?;
        let lock = self.app_lock(app)?;
        let _g = lock.lock().await;
        // A start counts as a user from its ensure_app (under this lock)
        // until its instance is listed; so look at the users first.
        let starting = self
            .app_users
            .lock()
            .map_err(|_| AgentError::Internal("app users lock poisoned".into()))?
            .get(app)
            .copied()
            .unwrap_or(0);
        let instances: Vec<String> = self
            .instances
            .lock()
            .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
            .values()
            .filter(|i| i.started.instance.app == app && i.proc.poll().is_none())
            .map(|i| i.started.instance.id.clone())
            .collect();
        if starting > 0 || !instances.is_empty() {
            return Err(AgentError::AppInUse {
                app: app.to_owned(),
                instances,
                starting,
            });
        }
        let repo = self.repo.clone();
        let name = app.to_owned();
        let removed = tokio::task::spawn_blocking(move || repo.remove(&name))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        let manifest = removed.ok_or_else(|| AgentError::AppNotInstalled(app.to_owned()))?;
        self.m.removals.fetch_add(1, Ordering::Relaxed);
        info!(app, version = %manifest.version, "removed from the edge repository");
        Ok(Removed {
            app: app.to_owned(),
            version: manifest.version,
        })
    }
}
