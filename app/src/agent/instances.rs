//! Instance supervision: starting an `app instance` child for a request,
//! waiting for it to be ready, learning when it sent its first frame,
//! stopping it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::process::{
    exit_parts, gauge, probe_metrics, tail, Proc, FIRST_FRAME_GAUGE, READY_GAUGE, SIMD_GAUGE,
};
use super::{Agent, AgentError, InstanceInfo, InstanceStatus, StartRequest, Started, Stopped};
use crate::instance::realtime_ns;
use crate::repo::{Installed, SNAKE_ENTRY};

/// What the readiness check found.
struct Ready {
    sdp: String,
    /// When the instance became ready, Unix ns.
    ready_ns: u64,
    /// When its first frame had been sent, if it had.
    first_frame_ns: Option<u64>,
    /// Its openh264 SIMD flags, when it has the assembly.
    h264_simd: Option<u32>,
}

/// Milliseconds from `from` to `to` (Unix ns; 0 if `to` is earlier).
fn ms_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}

/// An instance the agent started (listed until `DELETE`).
pub(super) struct Instance {
    pub(super) started: Started,
    /// When its start request arrived, Unix ns.
    received_ns: u64,
    /// Request to first frame sent, once known.
    first_frame_ms: OnceLock<f64>,
    sdp_path: PathBuf,
    since: Instant,
    pub(super) proc: Proc,
    pub(super) exit_logged: AtomicBool,
}

impl Instance {
    /// Its `first_frame_ms`: known, or asked of the instance (its metrics
    /// endpoint) while it runs.
    async fn first_frame_ms(&self) -> Option<f64> {
        if let Some(ms) = self.first_frame_ms.get() {
            return Some(*ms);
        }
        if self.proc.poll().is_some() {
            return None;
        }
        let text = probe_metrics(self.started.instance.metrics).await?;
        let t = gauge(&text, FIRST_FRAME_GAUGE).filter(|&t| t > 0)?;
        Some(
            *self
                .first_frame_ms
                .get_or_init(|| ms_between(self.received_ns, t)),
        )
    }

    /// Its status, the first frame asked for if not known yet.
    pub(super) async fn status_now(&self) -> InstanceStatus {
        self.first_frame_ms().await;
        self.status()
    }

    /// Its status from what is known.
    pub(super) fn status(&self) -> InstanceStatus {
        let st = self.proc.poll();
        let (exit_code, exit_signal) = exit_parts(st);
        InstanceStatus {
            instance: self.started.instance.clone(),
            state: if st.is_some() { "exited" } else { "running" }.into(),
            exit_code,
            exit_signal,
            uptime_ms: self.since.elapsed().as_millis() as u64,
            start_ms: self.started.start_ms,
            first_frame_ms: self.first_frame_ms.get().copied(),
        }
    }
}

impl Agent {
    fn build_command(
        &self,
        req: &StartRequest,
        installed: &Installed,
        name: &str,
        input_port: u16,
        metrics: SocketAddr,
        sdp: &Path,
    ) -> Command {
        // Defaults from the manifest, overridden by the request; the agent
        // owns the connection flags.
        let mut flags: BTreeMap<String, String> = installed.manifest.args.clone();
        const OWNED: [&str; 8] = [
            "cloud",
            "account",
            "token",
            "name",
            "ue",
            "bind",
            "input-listen",
            "sdp",
        ];
        flags.retain(|k, _| !OWNED.contains(&k.as_str()) && k != "metrics");
        for (k, v) in [
            ("width", req.width),
            ("height", req.height),
            ("fps", req.fps),
            ("bitrate", req.bitrate),
        ] {
            if let Some(v) = v {
                flags.insert(k.into(), v.to_string());
            }
        }
        if let Some(scene) = req.scene {
            flags.insert("scene".into(), scene.to_string());
        }
        let mut cmd = Command::new(&self.app_bin);
        cmd.arg("instance")
            .arg("--cloud")
            .arg(&self.args.cloud_sync)
            .arg("--account")
            .arg(&req.account)
            .arg("--token")
            .arg(&req.token)
            .arg("--name")
            .arg(name)
            .arg("--ue")
            .arg(req.ue.to_string())
            .arg("--bind")
            .arg(self.args.instance_bind.to_string())
            .arg("--input-listen")
            .arg(SocketAddr::new(self.args.input_host, input_port).to_string());
        for (k, v) in &flags {
            cmd.arg(format!("--{k}")).arg(v);
        }
        cmd.arg("--sdp")
            .arg(sdp)
            .arg("--metrics")
            .arg(metrics.to_string())
            .current_dir(&installed.dir)
            .stdin(Stdio::null())
            .process_group(0);
        // An agent killed outright (SIGKILL, a crash) takes its instances
        // along: the kernel sends them SIGTERM when the thread that started
        // them dies (a runtime worker, alive as long as the agent).
        let agent_pid = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls async-signal-safe functions (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The agent died before the prctl: nobody would stop us.
                if libc::getppid() as u32 != agent_pid {
                    return Err(std::io::Error::other("the agent is gone"));
                }
                Ok(())
            });
        }
        cmd
    }

    /// Starts an instance for `req`, received at `received_ns` (Unix ns):
    /// the application is found or pulled, the process spawned and waited
    /// for until ready.
    pub(super) async fn start_instance(
        self: &Arc<Self>,
        req: StartRequest,
        received_ns: u64,
    ) -> Result<Started, AgentError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(AgentError::Stopping);
        }
        // Held until the instance is listed: no removal of the app meanwhile.
        let app = self.ensure_app(&req.app).await?;
        let installed = &app.installed;
        if installed.manifest.entry != SNAKE_ENTRY {
            return Err(AgentError::UnsupportedEntry {
                app: req.app.clone(),
                entry: installed.manifest.entry.clone(),
            });
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("i{n}");
        let name = format!("{}-{id}", self.args.name);
        let lease = self.lease_ports()?;
        let input_port = lease.input;
        let metrics = SocketAddr::new(self.args.metrics_host, lease.metrics);
        let log_path = self.run_dir.join(format!("{id}.log"));
        let sdp_path = self.run_dir.join(format!("{id}.sdp"));
        let _ = fs::remove_file(&sdp_path);
        let log = File::create(&log_path).map_err(|source| AgentError::Setup {
            what: log_path.display().to_string(),
            source,
        })?;
        let log2 = log.try_clone().map_err(|source| AgentError::Setup {
            what: log_path.display().to_string(),
            source,
        })?;
        let mut cmd = self.build_command(&req, installed, &name, input_port, metrics, &sdp_path);
        cmd.stdout(log).stderr(log2);
        let cleanup = |what: &str| {
            let _ = fs::remove_file(&sdp_path);
            let _ = fs::remove_file(&log_path);
            self.m.start_failures.fetch_add(1, Ordering::Relaxed);
            warn!(%id, app = %req.app, "start failed: {what}");
        };
        let t0 = Instant::now();
        let spawned_ns = realtime_ns();
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("cannot run {}: {e}", self.app_bin.display());
                cleanup(&reason);
                return Err(AgentError::StartFailed {
                    id,
                    app: req.app.clone(),
                    reason,
                    log: Vec::new(),
                });
            }
        };
        let proc = Proc::new(child);
        let deadline = t0 + Self::secs(self.args.start_timeout);
        let ready = match self.wait_ready(&proc, &sdp_path, metrics, deadline).await {
            Ok(r) => r,
            Err(reason) => {
                proc.stop(Duration::from_secs(1)).await;
                let log = tail(&log_path, 20);
                cleanup(&reason);
                return Err(AgentError::StartFailed {
                    id,
                    app: req.app.clone(),
                    reason,
                    log,
                });
            }
        };
        let started = Started {
            instance: InstanceInfo {
                id: id.clone(),
                app: req.app.clone(),
                version: installed.manifest.version.clone(),
                account: req.account.clone(),
                name,
                pid: proc.pid,
                ue: req.ue,
                input_port,
                metrics,
                log: log_path,
                h264_simd: ready.h264_simd,
            },
            sdp: ready.sdp,
            pulled: app.pulled,
            pull_ms: app.pull_time.as_secs_f64() * 1e3,
            pull_bytes: app.bytes,
            start_ms: ms_between(received_ns, ready.ready_ns),
            spawn_ms: ms_between(spawned_ns, ready.ready_ns),
            first_frame_ms: ready.first_frame_ns.map(|t| ms_between(received_ns, t)),
        };
        let inst = Arc::new(Instance {
            started: started.clone(),
            received_ns,
            first_frame_ms: OnceLock::new(),
            sdp_path,
            since: t0,
            proc,
            exit_logged: AtomicBool::new(false),
        });
        if let Some(ms) = started.first_frame_ms {
            let _ = inst.first_frame_ms.set(ms);
        }
        {
            let mut l = self
                .instances
                .lock()
                .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?;
            l.insert(id.clone(), inst.clone());
        }
        drop(lease);
        drop(app);
        // The agent may have begun stopping while this start finished.
        if self.cancel.load(Ordering::Relaxed) {
            self.stop_instance(&id).await.ok();
            return Err(AgentError::Stopping);
        }
        self.m.starts.fetch_add(1, Ordering::Relaxed);
        info!(
            %id, app = %started.instance.app, account = %started.instance.account, pid = started.instance.pid,
            input_port, %metrics, pulled = started.pulled, pull_ms = started.pull_ms,
            start_ms = started.start_ms, "instance started"
        );
        Ok(started)
    }

    /// Waits until the instance has written its SDP file and its metrics
    /// endpoint answers; the error is why it is not ready.
    async fn wait_ready(
        &self,
        proc: &Proc,
        sdp_path: &Path,
        metrics: SocketAddr,
        deadline: Instant,
    ) -> Result<Ready, String> {
        loop {
            if let Some(st) = proc.poll() {
                return Err(format!("it exited ({st}) before it was ready"));
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err("the agent is stopping".into());
            }
            let sdp_ready = fs::metadata(sdp_path).is_ok_and(|m| m.len() > 0);
            if sdp_ready {
                if let Some(text) = probe_metrics(metrics).await {
                    let seen_ns = realtime_ns();
                    // Still alive after answering?
                    if let Some(st) = proc.poll() {
                        return Err(format!("it exited ({st}) right after starting"));
                    }
                    let sdp = fs::read_to_string(sdp_path).map_err(|e| {
                        format!("cannot read its SDP file {}: {e}", sdp_path.display())
                    })?;
                    let reported = |g| gauge(&text, g).filter(|&t| t > 0);
                    return Ok(Ready {
                        sdp,
                        // The instance's own word, else when the agent saw it.
                        ready_ns: reported(READY_GAUGE).unwrap_or(seen_ns),
                        first_frame_ns: reported(FIRST_FRAME_GAUGE),
                        h264_simd: reported(SIMD_GAUGE).and_then(|f| u32::try_from(f).ok()),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {:.1} s (SDP file {}, metrics {metrics} {})",
                    self.args.start_timeout,
                    if sdp_ready { "written" } else { "missing" },
                    if sdp_ready {
                        "not answering"
                    } else {
                        "not checked"
                    }
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) fn get(&self, id: &str) -> Result<Arc<Instance>, AgentError> {
        self.instances
            .lock()
            .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
            .get(id)
            .cloned()
            .ok_or_else(|| AgentError::NoInstance(id.into()))
    }

    pub(super) async fn stop_instance(&self, id: &str) -> Result<Stopped, AgentError> {
        let inst = self
            .instances
            .lock()
            .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?
            .remove(id)
            .ok_or_else(|| AgentError::NoInstance(id.into()))?;
        let t0 = Instant::now();
        let already_exited = inst.proc.poll().is_some();
        let (st, killed) = inst.proc.stop(Self::secs(self.args.stop_timeout)).await;
        let _ = fs::remove_file(&inst.sdp_path);
        let (exit_code, exit_signal) = exit_parts(st);
        self.m.stops.fetch_add(1, Ordering::Relaxed);
        info!(id, ?exit_code, ?exit_signal, killed, "instance stopped");
        Ok(Stopped {
            id: id.into(),
            exit_code,
            exit_signal,
            killed,
            already_exited,
            stop_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    pub(super) async fn stop_all(&self) {
        let ids: Vec<String> = self
            .instances
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        let futs = ids.iter().map(|id| self.stop_instance(id));
        futures::future::join_all(futs).await;
    }
}
