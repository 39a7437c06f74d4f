//! Waiting for a daemon to become ready: its health check, by role.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::http::{get_json, http_in};
use super::process::log_tail;
use super::{BedError, BedState, ProcRec};
use crate::plan::Role;

/// Polls the health check of `rec` until it passes; how long that took.
/// Fails when its process (`child`) exits, when it is not healthy after
/// `timeout`, or when `cancel` is set.
pub(super) fn wait_ready(
    st: &BedState,
    rec: &ProcRec,
    child: &mut Child,
    timeout: Duration,
    cancel: Option<&AtomicBool>,
) -> Result<Duration, BedError> {
    let t = Instant::now();
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(BedError::Interrupted);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(not_ready(rec, format!("exited with {status}")));
        }
        match check(st, rec) {
            Ok(()) => return Ok(t.elapsed()),
            Err(why) if t.elapsed() > timeout => {
                return Err(not_ready(
                    rec,
                    format!("not healthy after {timeout:?}: {why}"),
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn not_ready(rec: &ProcRec, reason: String) -> BedError {
    BedError::NotReady {
        daemon: rec.name.clone(),
        reason,
        log: rec.log.clone(),
        tail: log_tail(&rec.log, 4000),
    }
}

/// One health check: Ok(()) when ready, Err(why not yet) otherwise.
fn check(st: &BedState, rec: &ProcRec) -> Result<(), String> {
    match rec.role {
        Role::Upf => {
            let url = format!("http://{}/metrics", rec.api);
            let (code, body) = http_in(&rec.netns, "GET", &url, None, Duration::from_secs(2))?;
            if code == 200 && !body.is_empty() {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {code}"))
            }
        }
        Role::Smf => {
            let url = format!("http://{}/upfs", st.plan.smf_api);
            let v = get_json(&rec.netns, &url)?;
            let list = v.as_array().ok_or(format!("{url}: not a list"))?;
            let mut waiting = Vec::new();
            for u in &st.plan.upfs {
                let state = list
                    .iter()
                    .find(|x| x["name"] == u.name.as_str())
                    .and_then(|x| x["state"].as_str())
                    .unwrap_or("absent");
                if state != "associated" {
                    waiting.push(format!("{} is {state}", u.name));
                }
            }
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(format!("PFCP associations not up: {}", waiting.join(", ")))
            }
        }
        Role::Gnb => {
            let url = format!("http://{}/tunnels", rec.api);
            get_json(&rec.netns, &url).map(|_| ())
        }
        Role::Ue => {
            let url = format!("http://{}/sessions", rec.api);
            get_json(&rec.netns, &url).map(|_| ())
        }
        Role::Cloud => get_json(&rec.netns, &format!("http://{}/stats", rec.api)).map(|_| ()),
        Role::Repo => get_json(&rec.netns, &format!("http://{}/apps", rec.api)).map(|_| ()),
        Role::Agent => {
            let url = format!("http://{}/healthz", rec.api);
            let (code, body) = http_in(&rec.netns, "GET", &url, None, Duration::from_secs(2))?;
            if code == 200 {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {code}: {}", body.trim()))
            }
        }
    }
}
