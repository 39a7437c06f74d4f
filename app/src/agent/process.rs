//! Instance processes: a child whose pid is never signalled after it is
//! reaped, its stop (SIGTERM, then SIGKILL), its log's tail, and the
//! readiness probe of its metrics endpoint.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A child process whose pid stays valid until it is reaped, which happens
/// only under the lock: signals are never sent to a reused pid.
pub(super) struct Proc {
    pub(super) pid: u32,
    inner: Mutex<(Child, Option<ExitStatus>)>,
}

impl Proc {
    /// Takes charge of a just-spawned child.
    pub(super) fn new(child: Child) -> Proc {
        Proc {
            pid: child.id(),
            inner: Mutex::new((child, None)),
        }
    }

    /// The exit status, if it has exited (reaps it).
    pub(super) fn poll(&self) -> Option<ExitStatus> {
        let Ok(mut g) = self.inner.lock() else {
            return None;
        };
        if g.1.is_none() {
            if let Ok(Some(st)) = g.0.try_wait() {
                g.1 = Some(st);
            }
        }
        g.1
    }

    /// Sends `sig` to the process group (the child is its leader) unless
    /// it has exited. Returns false if it had.
    pub(super) fn signal(&self, sig: i32) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        if g.1.is_none() {
            if let Ok(Some(st)) = g.0.try_wait() {
                g.1 = Some(st);
            }
        }
        if g.1.is_some() {
            return false;
        }
        let pid = self.pid as i32;
        // SAFETY: plain kill(2) on a pid that is our unreaped child (and the
        // leader of its own process group), so it cannot have been reused.
        unsafe {
            if libc::kill(-pid, sig) != 0 {
                libc::kill(pid, sig);
            }
        }
        true
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and wait. Returns the exit
    /// status and whether SIGKILL was needed.
    pub(super) async fn stop(&self, grace: Duration) -> (Option<ExitStatus>, bool) {
        if !self.signal(libc::SIGTERM) {
            return (self.poll(), false);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.poll() {
                return (Some(st), false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.signal(libc::SIGKILL);
        for _ in 0..500 {
            if let Some(st) = self.poll() {
                return (Some(st), true);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (None, true)
    }
}

pub(super) fn exit_parts(st: Option<ExitStatus>) -> (Option<i32>, Option<i32>) {
    match st {
        None => (None, None),
        Some(s) => (s.code(), s.signal()),
    }
}

/// Reads the last `n` lines of a file (from its last 64 KiB).
pub(super) fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(65536);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// The instance's gauge of the time it became ready (Unix ns).
pub(super) const READY_GAUGE: &str = "app_instance_ready_unix_ns";
/// The instance's gauge of the time its first frame had been sent (Unix
/// ns, 0 before).
pub(super) const FIRST_FRAME_GAUGE: &str = "app_instance_first_frame_unix_ns";
/// The instance's gauge of its openh264 SIMD flags (0: no assembly).
pub(super) const SIMD_GAUGE: &str = "app_instance_h264_simd_flags";

/// `GET /metrics` at `addr`: the response body when an HTTP server answers
/// within 500 ms (what arrived by then, if it keeps the connection open),
/// None otherwise.
pub(super) async fn probe_metrics(addr: SocketAddr) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    let mut s = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    tokio::time::timeout_at(
        deadline,
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\nConnection: close\r\n\r\n"),
    )
    .await
    .ok()?
    .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < 1 << 20 {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if !buf.starts_with(b"HTTP/") {
        return None;
    }
    let text = String::from_utf8_lossy(&buf);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some(body.to_owned())
}

/// The value of the unlabelled or labelled sample `name` in Prometheus
/// text (the first one, if several).
pub(super) fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = match rest.strip_prefix('{') {
            Some(labels) => labels.split_once('}')?.1,
            None => rest,
        };
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        rest.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_from_prometheus_text() {
        let t = "# HELP app_instance_ready_unix_ns x\n# TYPE app_instance_ready_unix_ns gauge\n\
                 app_instance_ready_unix_ns_other 5\n\
                 app_instance_ready_unix_ns{instance=\"e-i1\"} 1700000000123456789\n\
                 app_instance_first_frame_unix_ns 0\nfake_frames_total 3\n";
        assert_eq!(gauge(t, READY_GAUGE), Some(1_700_000_000_123_456_789));
        assert_eq!(gauge(t, FIRST_FRAME_GAUGE), Some(0));
        assert_eq!(gauge(t, "fake_frames_total"), Some(3));
        assert_eq!(gauge(t, "app_instance_missing"), None);
        assert_eq!(gauge("x{a=\"1\"} nope\n", "x"), None);
    }
}
