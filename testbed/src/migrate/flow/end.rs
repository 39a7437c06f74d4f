//! The end of a run: the last source released, the counts settled back
//! to where they started, the testbed left as `up` left it.

use std::time::{Duration, Instant};

use super::super::api::{cloud_count, CloudCount};
use super::super::probe::{self, Census};
use super::super::{wait_for, MigrateOpts, Observer};
use super::Ctx;
use crate::bed::BedError;

/// Waits until the SMF shows the UE's service without a copilot (the last
/// source released), at most the countdown and 15 s.
pub(super) fn wait_release(ctx: &Ctx, obs: &mut dyn Observer) -> Result<(), BedError> {
    obs.status("waiting for the countdown to release the source");
    wait_for(
        ctx.opts,
        ctx.opts.countdown + Duration::from_secs(15),
        "the SMF to release the copilot",
        || {
            let s = ctx.smf.service(&ctx.ue.ue_id)?;
            Ok(s.is_none_or(|s| s.copilot.is_none()).then_some(()))
        },
    )
}

/// What the run holds beyond `start`, once it stopped changing towards it
/// (an instance being stopped may take a moment to exit): at most 5 s.
pub(super) fn settle_leaks(ctx: &Ctx, start: &Census) -> Result<Census, BedError> {
    settle(
        Duration::from_secs(5),
        ctx.opts,
        || Ok(probe::census(ctx.st, &ctx.ue.name)?.minus(start)),
        Census::is_zero,
    )
}

/// The logic server's count once it applied the `sent` inputs (or 3 s).
pub(super) fn settle_cloud(
    ctx: &Ctx,
    start: &CloudCount,
    sent: u64,
) -> Result<CloudCount, BedError> {
    settle(
        Duration::from_secs(3),
        ctx.opts,
        || cloud_count(&ctx.cloud, &ctx.account),
        |c| c.inputs_applied.saturating_sub(start.inputs_applied) >= sent,
    )
}

/// Reads `read` until `done` says its value settled, at most `timeout`
/// (or Ctrl-C); the last value.
pub(super) fn settle<T>(
    timeout: Duration,
    opts: &MigrateOpts,
    mut read: impl FnMut() -> Result<T, BedError>,
    done: impl Fn(&T) -> bool,
) -> Result<T, BedError> {
    let t = Instant::now();
    loop {
        let v = read()?;
        if done(&v) || t.elapsed() > timeout || opts.cancelled() {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Leaves the testbed as `up` left it: the account's instances stopped,
/// the UE's sessions released (best effort; a testbed not kept goes down
/// anyway).
pub(super) fn cleanup(ctx: &Ctx, obs: &mut dyn Observer) {
    for e in &ctx.edges {
        let Ok(list) = e.agent.get::<Vec<serde_json::Value>>("/instances") else {
            continue;
        };
        for i in list.iter().filter(|i| i["account"] == ctx.account.as_str()) {
            if let Some(id) = i["id"].as_str() {
                let _ = e.agent.call(
                    "DELETE",
                    &format!("/instances/{id}"),
                    None,
                    Duration::from_secs(15),
                );
            }
        }
    }
    if let Ok(sessions) = ctx.sessions() {
        for s in sessions {
            let r = ctx.ue_session(&["del".into(), "--psi".into(), s.pdu_session_id.to_string()]);
            if let Err(e) = r {
                obs.line(&format!("releasing session {}: {e}", s.pdu_session_id));
            }
        }
    }
}
