//! The run on a testbed that is up: the play through the first edge, the
//! migrations, the release of the last source, the figures.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use topo::Running;
use wire::ctl::migration::StreamParams;
use wire::ctl::SessionInfo;

use super::api::{
    cloud_count, set_warmth, Api, CloudCount, LatencyTrigger, PlayStart, Smf, Ue, UeMigration,
    UeStatus, APP,
};
use super::probe::{self, IfBytes};
use super::report::{csv, CrossEdge, MigrateReport, MigrationRow, Summary};
use super::{pause, wait_for, write_file, MigrateOpts, Observer, Trigger};
use crate::bed::{self, BedError, BedState};
use crate::plan::{UePlan, UpfPlan};
use crate::play::VIDEO_PORT;

mod end;
mod statecopy;

use end::{cleanup, settle, settle_cloud, settle_leaks, wait_release};

/// How often the UE's agent measures the latency to its serving edge
/// (latency trigger).
const LATENCY_PROBE_MS: u64 = 100;

/// The UE's record of every displayed frame, in the run folder.
pub const DISPLAY_LOG: &str = "display.jsonl";

fn req(e: impl std::fmt::Display) -> BedError {
    BedError::Request(e.to_string())
}

/// One of the two edges.
struct Edge {
    name: String,
    upf: UpfPlan,
    /// Its N6 address (instances' input).
    n6: Ipv4Addr,
    agent: Api,
    /// The link of its N6 (delayed by the latency trigger).
    n6_link: Option<String>,
    /// Its agent's state-copy listener (on the inter-edge link).
    copy: Option<SocketAddr>,
}

/// Everything the run talks to.
struct Ctx<'a> {
    st: &'a BedState,
    bin_dir: Option<&'a Path>,
    opts: &'a MigrateOpts,
    /// Longest wait for one migration.
    deadline: Duration,
    ue: UePlan,
    account: String,
    token: String,
    edges: [Edge; 2],
    ue_api: Ue,
    smf: Smf,
    cloud: Api,
    /// The inter-edge link: (name, interface, namespace of that interface).
    ie: Option<(String, String, String)>,
    /// The links `--bandwidth` shapes: the inter-edge link and the edges'
    /// WAN links to the cloud.
    shaped: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(
        st: &'a BedState,
        bin_dir: Option<&'a Path>,
        opts: &'a MigrateOpts,
        deadline: Duration,
    ) -> Result<Ctx<'a>, BedError> {
        let usage = |m: String| BedError::Usage(m);
        let app =
            st.plan.app.as_ref().ok_or_else(|| {
                usage("the topology has no `cloud` node: nothing to migrate".into())
            })?;
        let ue = st
            .plan
            .ues
            .first()
            .ok_or_else(|| usage("the topology has no UE (a node named ue*)".into()))?
            .clone();
        let (_, account, token) = app
            .accounts
            .iter()
            .find(|(u, _, _)| *u == ue.name)
            .ok_or_else(|| usage(format!("no account for {}", ue.name)))?
            .clone();
        let topology = probe::running(st)?.topology().clone();
        let mut edges = Vec::new();
        for e in app.edges.iter().filter(|e| e.migratable()) {
            let (Some(upf), Some(n6)) = (e.upf.as_deref().and_then(|u| st.plan.upf(u)), e.n6)
            else {
                continue;
            };
            edges.push(Edge {
                name: e.name.clone(),
                n6_link: probe::n6_link(&topology, &upf.name, &e.name),
                upf: upf.clone(),
                n6,
                agent: Api::new(format!("agent-{}", e.name), st.ns(&e.name), e.agent_api)
                    .with_token(st.plan.agent_token()),
                copy: e.copy,
            });
        }
        let known: Vec<_> = app.edges.iter().map(|e| e.name.clone()).collect();
        let mut it = edges.into_iter();
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            return Err(usage(format!(
                "migrations need two edges with an agent, a UPF and a cp address; the topology has {}",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )));
        };
        let ie = probe::inter_edge(&topology, &a.name, &b.name)
            .map(|(link, iface)| (link, iface, st.ns(&a.name)));
        let mut shaped: Vec<String> = ie.iter().map(|(l, _, _)| l.clone()).collect();
        shaped.extend(
            topology
                .links
                .iter()
                .filter(|l| {
                    let ends = [(&l.a.node, &l.b.node), (&l.b.node, &l.a.node)];
                    ends.iter()
                        .any(|(c, e)| **c == app.cloud && (**e == a.name || **e == b.name))
                })
                .map(|l| l.name.clone()),
        );
        let smf_ns = st.ns(&st.plan.smf_node);
        Ok(Ctx {
            ue_api: Ue(Api::new(&ue.name, st.ns(&ue.name), ue.api)),
            smf: Smf(Api::new("smf", smf_ns, st.plan.smf_api)),
            cloud: Api::new("cloud", st.ns(&app.cloud), app.cloud_stats),
            st,
            bin_dir,
            opts,
            deadline,
            ue,
            account,
            token,
            edges: [a, b],
            ie,
            shaped,
        })
    }

    fn ue_session(&self, args: &[String]) -> Result<String, BedError> {
        bed::ue_session(
            Some(self.st.state_dir.as_path()),
            self.bin_dir,
            &self.ue.name,
            args,
        )
    }

    fn sessions(&self) -> Result<Vec<SessionInfo>, BedError> {
        bed::ue_sessions(
            Some(self.st.state_dir.as_path()),
            self.bin_dir,
            &self.ue.name,
        )
    }

    /// The UE's address on its session `psi`.
    fn session_addr(&self, psi: u8) -> Result<Ipv4Addr, BedError> {
        bed::session_addr(&self.sessions()?, psi)
    }

    fn ie_bytes(&self) -> Result<Option<IfBytes>, BedError> {
        match &self.ie {
            Some((_, iface, ns)) => probe::if_bytes(ns, iface).map(Some),
            None => Ok(None),
        }
    }

    fn edge_index(&self, name: &str) -> Option<usize> {
        self.edges.iter().position(|e| e.name == name)
    }
}

/// The counters read around a migration.
struct Counters {
    ie: Option<IfBytes>,
    /// The UE's count of inputs sent.
    sent: u64,
    cloud: CloudCount,
}

impl Counters {
    /// The counters now; `status`: the UE's, just read.
    fn read(ctx: &Ctx, status: &UeStatus) -> Result<Counters, BedError> {
        Ok(Counters {
            ie: ctx.ie_bytes()?,
            sent: status.inputs_sent,
            cloud: cloud_count(&ctx.cloud, &ctx.account)?,
        })
    }
}

/// Waits until the UE's migration `id` no longer runs; its record.
fn wait_ended(ctx: &Ctx, id: u64, what: &str) -> Result<UeMigration, BedError> {
    wait_for(ctx.opts, ctx.deadline, what, || {
        Ok(ctx
            .ue_api
            .status()?
            .migration(id)
            .filter(|m| !m.running())
            .cloned())
    })
}

/// Runs the whole session on a testbed that is up: the report, and the
/// run's namespaces (for the leak count after the testbed went down).
pub(super) fn session(
    st: &BedState,
    bin_dir: Option<&Path>,
    opts: &MigrateOpts,
    deadline: Duration,
    obs: &mut dyn Observer,
) -> Result<(MigrateReport, Vec<String>), BedError> {
    let ctx = Ctx::new(st, bin_dir, opts, deadline)?;
    let cloud0 = cloud_count(&ctx.cloud, &ctx.account)?;
    let cpu0 = crate::host::CpuTimes::now();
    let h264_simd = start_play(&ctx, obs)?;
    // From here on the play is stopped whatever happens.
    let mut running = match (opts.trigger, opts.bandwidths.is_empty()) {
        (Trigger::Command, true) => None,
        _ => Some(probe::running(st)?),
    };
    let mut notes = Vec::new();
    let body = (|| {
        let start = probe::census(st, &ctx.ue.name)?;
        if !opts.before.is_zero() {
            // The destination's repository is made warm now (CSM with
            // --warm, every state copy), not at the request: its pull is
            // no part of the load before the migration.
            if opts.warm || opts.method.is_state_copy() {
                set_warmth(&ctx.edges[1].agent, true, Duration::from_secs(15))?;
            }
            obs.status(&format!(
                "playing {:?} before the first migration",
                opts.before
            ));
            pause(opts, opts.before)?;
        }
        let rows = if opts.method.is_state_copy() {
            statecopy::copies(&ctx, &mut running, obs, &mut notes)?
        } else {
            migrations(&ctx, &mut running, obs, &mut notes)?
        };
        if !opts.after.is_zero() {
            obs.status(&format!(
                "playing {:?} after the last migration",
                opts.after
            ));
            pause(opts, opts.after)?;
        }
        obs.finish();
        let released = wait_release(&ctx, obs).is_ok();
        let leaks = settle_leaks(&ctx, &start)?;
        Ok::<_, BedError>((rows, released, leaks))
    })();
    if let Some(r) = running.as_mut() {
        for e in &ctx.edges {
            if let Some(l) = &e.n6_link {
                let _ = probe::set_delay(r, l, Duration::ZERO);
            }
        }
    }
    obs.status("stopping the play");
    let outcome = ctx.ue_api.stop();
    let host = crate::host::HostReport::since(cpu0, h264_simd);
    let sent_total = outcome.as_ref().map_or(0, |o| o.report.inputs_sent);
    let cloud_end = settle_cloud(&ctx, &cloud0, sent_total);
    cleanup(&ctx, obs);
    let (mut rows, released, leaks) = body?;
    let outcome = outcome?;
    let cloud_end = cloud_end?;
    for r in rows.iter_mut() {
        if let Some(m) = outcome.migrations.iter().find(|m| m.id == r.id) {
            r.take_ue(m);
        }
    }
    match ctx.smf.migrations() {
        Ok(recs) => {
            for r in rows.iter_mut() {
                if let Some(m) = recs.iter().find(|m| m.id == r.id) {
                    r.setup_ms = m.setup_ms;
                    r.instance_start_ms = m.instance_start_ms;
                }
            }
        }
        Err(e) => notes.push(format!("no SMF migration records: {e}")),
    }
    let mut summary = Summary::of(&rows);
    summary.inputs_sent = sent_total;
    summary.inputs_applied = cloud_end
        .inputs_applied
        .saturating_sub(cloud0.inputs_applied);
    summary.inputs_lost = sent_total.saturating_sub(summary.inputs_applied);
    summary.secondary_writes_applied = cloud_end.secondary_writes_applied;
    summary.secondary_writes_dropped = cloud_end
        .writes_dropped
        .saturating_sub(cloud0.writes_dropped);
    if cloud_end.secondary_writes_applied.is_none() {
        notes.push(
            "secondary writes applied: the logic server does not count them (it drops every write from a secondary: secondary_writes_dropped)".into(),
        );
    }
    if ctx.ie.is_none() {
        notes.push("cross-edge bytes: the topology has no link between the two edges".into());
    }
    if !released {
        notes.push("the last source was not released within the countdown and 15 s".into());
    }
    summary.render_to_display_ms = Some(outcome.report.render_to_display_ms.clone());
    summary.input_to_display_ms = Some(outcome.report.latency_ms.clone());
    summary.stall_p99_away_ms = outcome.stall_baseline_ms;
    summary.smoothness_baseline = outcome.smoothness_baseline;
    summary.with_controls(&rows, &outcome.controls);
    summary.last_released = released;
    summary.host = Some(host);
    summary.notes = notes;
    summary.settings = settings(&ctx);
    write_file(
        &st.run_dir,
        "migrations.json",
        &serde_json::to_string_pretty(&rows).map_err(req)?,
    )?;
    write_file(&st.run_dir, "migrations.csv", &csv(&rows))?;
    let namespaces = st.namespaces.iter().map(|(_, ns)| ns.clone()).collect();
    Ok((
        MigrateReport {
            migrations: rows,
            summary,
            leaks,
        },
        namespaces,
    ))
}

fn settings(ctx: &Ctx) -> serde_json::Value {
    let o = ctx.opts;
    let gaps: Vec<u128> = (1..o.count).map(|i| o.gap(i).as_millis()).collect();
    serde_json::json!({
        "run_dir": ctx.st.run_dir.display().to_string(),
        "ue": ctx.ue.name,
        "edges": [ctx.edges[0].name, ctx.edges[1].name],
        "count": o.count,
        "method": o.method.as_str(),
        "preset": o.method.is_state_copy().then_some(o.preset.as_str()),
        "scale": o.method.is_state_copy().then_some(o.scale),
        "bandwidths_mbit": o.bandwidths,
        "countdown_ms": o.countdown.as_millis(),
        "gaps_ms": gaps,
        "trigger": o.trigger,
        "warm": o.warm,
        "scene": o.scene,
        "pacing": o.selector.use_pacing,
        "pacing_window_ms": o.selector.pacing_window_ms,
        "width": o.width,
        "height": o.height,
        "fps": o.fps,
        "inter_edge_link": ctx.ie.as_ref().map(|(l, _, _)| l.clone()),
    })
}

/// PDU session `psi` of the UE through `upf`.
fn add_session(ctx: &Ctx, psi: u8, upf: &UpfPlan, obs: &mut dyn Observer) -> Result<(), BedError> {
    obs.status(&format!("PDU session {psi} through {}", upf.name));
    let line = ctx.ue_session(&bed::add_args(psi, &upf.dnn, Some(&upf.name)))?;
    obs.line(line.trim());
    Ok(())
}

/// Session 1 through the first edge's UPF, an instance at its agent, the
/// UE's play; returns once the UE displays frames, with the instance's
/// openh264 SIMD flags (as its agent reports them).
fn start_play(ctx: &Ctx, obs: &mut dyn Observer) -> Result<Option<u32>, BedError> {
    let o = ctx.opts;
    let a = &ctx.edges[0];
    let psi = 1u8;
    add_session(ctx, psi, &a.upf, obs)?;
    let ue_addr = ctx.session_addr(psi)?;
    if o.method.is_state_copy() {
        // The state copies' destination streams over a session of its own,
        // set up now (the UE follows it: see `statecopy`).
        statecopy::second_session(ctx, obs)?;
    }
    obs.status(&format!("instance at {}", a.name));
    let inst: serde_json::Value = a.agent.expect(
        "POST",
        "/instances",
        Some(instance_body(ctx, ue_addr).to_string()),
        &[201],
        Duration::from_secs(120),
    )?;
    let id = inst["id"].as_str().unwrap_or_default().to_string();
    let input_port = inst["input_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| req(format!("agent answer without input_port: {inst}")))?;
    obs.line(&format!(
        "instance {id} on {} (pulled: {}, start {} ms), streaming to {ue_addr}:{VIDEO_PORT}",
        a.name, inst["pulled"], inst["start_ms"]
    ));
    let play = PlayStart {
        app: APP.into(),
        account: ctx.account.clone(),
        token: ctx.token.clone(),
        edge: a.name.clone(),
        psi,
        instance: id,
        input: SocketAddr::from((a.n6, input_port)),
        stream_port: VIDEO_PORT,
        params: StreamParams {
            width: Some(o.width),
            height: Some(o.height),
            fps: Some(o.fps),
            bitrate: o.bitrate,
            scene: (o.scene != "snake").then(|| o.scene.clone()),
        },
        input_rate: Some(o.input_rate),
        video: o.video.as_ref().map(|v| v.display().to_string()),
        display_log: Some(ctx.st.run_dir.join(DISPLAY_LOG).display().to_string()),
        selector: o.selector.clone(),
        trigger: (o.trigger == Trigger::Latency).then(|| LatencyTrigger {
            threshold_ms: o.latency.threshold.as_secs_f64() * 1e3,
            for_ms: u64::try_from(o.latency.hold.as_millis()).unwrap_or(u64::MAX),
            probe_ms: LATENCY_PROBE_MS,
        }),
    };
    ctx.ue_api.play(&play)?;
    obs.status(&format!("{} waits for the first frame", ctx.ue.name));
    let what = "the UE to display a frame and register its service with the SMF";
    wait_for(o, Duration::from_secs(20), what, || {
        let s = ctx.ue_api.status()?;
        if let Some(e) = s.registration_error {
            return Err(req(format!("the SMF refused the UE's service: {e}")));
        }
        Ok((s.frames_displayed > 0 && s.registered).then_some(()))
    })?;
    obs.line(&format!("{} plays through {}", ctx.ue.name, a.name));
    Ok(inst["h264_simd"]
        .as_u64()
        .and_then(|f| u32::try_from(f).ok()))
}

/// The `POST /instances` body of the UE's instance streaming to `ue_addr`.
fn instance_body(ctx: &Ctx, ue_addr: Ipv4Addr) -> serde_json::Value {
    let o = ctx.opts;
    let mut body = serde_json::json!({
        "app": APP,
        "account": ctx.account,
        "token": ctx.token,
        "ue": format!("{ue_addr}:{VIDEO_PORT}"),
        "width": o.width,
        "height": o.height,
        "fps": o.fps,
    });
    // The agent's default scene is the game's own (`snake`).
    if o.scene != "snake" {
        body["scene"] = o.scene.clone().into();
    }
    if let Some(b) = o.bitrate {
        body["bitrate"] = b.into();
    }
    body
}

/// Waits out the gap before a migration or a copy (saying so), if any.
fn pause_gap(o: &MigrateOpts, obs: &mut dyn Observer, gap: Duration) -> Result<(), BedError> {
    if !gap.is_zero() {
        obs.status(&format!("gap of {gap:?}"));
        pause(o, gap)?;
    }
    Ok(())
}

/// The migrations, one after the other.
fn migrations(
    ctx: &Ctx,
    running: &mut Option<Running>,
    obs: &mut dyn Observer,
    notes: &mut Vec<String>,
) -> Result<Vec<MigrationRow>, BedError> {
    let o = ctx.opts;
    let mut rows = Vec::new();
    let mut seen: HashSet<u64> = ctx
        .ue_api
        .status()?
        .migrations
        .iter()
        .map(|m| m.id)
        .collect();
    begin(ctx, obs, notes)?;
    for i in 0..o.count {
        let gap = o.gap(i);
        pause_gap(o, obs, gap)?;
        if i > 0 && gap >= o.countdown {
            // The next one is meant to be full: wait until the source is
            // gone (with --countdown 0, released right after the switch).
            let _ = wait_release(ctx, obs);
        }
        let bandwidth = set_bandwidth(ctx, running, i, obs)?;
        // The UE's view: no migration in progress (a switched one is
        // finished once the SMF confirmed it).
        let status = wait_for(o, ctx.deadline, "the UE's last migration to finish", || {
            let s = ctx.ue_api.status()?;
            Ok(s.migrating.is_none().then_some(s))
        })?;
        // The SMF's record says who serves; the UE's display follows once
        // its blend is over.
        let svc = ctx
            .smf
            .service(&ctx.ue.ue_id)?
            .ok_or_else(|| req(format!("the SMF has no service of {}", ctx.ue.ue_id)))?;
        let serving = ctx
            .edge_index(&svc.serving.edge)
            .ok_or_else(|| req(format!("the SMF serves the UE from `{}`", svc.serving.edge)))?;
        let (from, to) = (&ctx.edges[serving], &ctx.edges[1 - serving]);
        if status.serving != from.name {
            let what = format!("the UE to display {}'s stream", from.name);
            let shown = wait_for(o, Duration::from_secs(5), &what, || {
                let s = ctx.ue_api.status()?;
                Ok((s.serving == from.name).then_some(()))
            });
            if let Err(e) = shown {
                if o.cancelled() {
                    return Err(e);
                }
                notes.push(format!(
                    "before migration {}: the UE's status showed {} serving, the SMF {} ({e})",
                    i + 1,
                    status.serving,
                    from.name
                ));
            }
        }
        let copilot_at_to = svc.copilot.is_some_and(|c| c.edge == to.name);
        let repo_warm = if copilot_at_to {
            None
        } else {
            obs.status(&format!(
                "making {}'s repository {}",
                to.name,
                if o.warm { "warm" } else { "cold" }
            ));
            set_warmth(&to.agent, o.warm, Duration::from_secs(15))?;
            Some(o.warm)
        };
        let before = Counters::read(ctx, &status)?;
        obs.status(&format!(
            "migration {} of {}: {} -> {}",
            i + 1,
            o.count,
            from.name,
            to.name
        ));
        let t0 = Instant::now();
        let id = match (o.trigger, running.as_mut()) {
            (Trigger::Latency, Some(r)) => latency_trigger(ctx, r, from, to, &seen)?,
            _ => ctx.ue_api.migrate(&to.name)?.id,
        };
        seen.insert(id);
        let m = wait_ended(ctx, id, &format!("migration {id} to end"))?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut row = measure_after(ctx, i, &m, before, repo_warm, gap, wall_ms)?;
        row.bandwidth_mbit = bandwidth;
        let msg = format!(
            "{} -> {} {} {}: downtime {} ms, migration {} ms",
            row.from,
            row.to,
            row.kind,
            row.state,
            row.downtime_ms.map_or("-".into(), |x| format!("{x:.1}")),
            row.migration_ms.map_or("-".into(), |x| format!("{x:.0}")),
        );
        obs.step(u64::from(i + 1), &msg);
        rows.push(row);
    }
    Ok(rows)
}

/// Sets the shaped links' rate for migration `i` if `--bandwidth` asks
/// (the links' other shaping stays); the rate set, Mbit/s.
fn set_bandwidth(
    ctx: &Ctx,
    running: &mut Option<Running>,
    i: u32,
    obs: &mut dyn Observer,
) -> Result<Option<u32>, BedError> {
    let Some(mbit) = ctx.opts.bandwidth(i) else {
        return Ok(None);
    };
    let r = running
        .as_mut()
        .ok_or_else(|| req("--bandwidth: the running topology is not attached"))?;
    if ctx.shaped.is_empty() {
        return Err(BedError::Usage(
            "--bandwidth: the topology has no inter-edge or WAN link to shape".into(),
        ));
    }
    obs.status(&format!("{} at {mbit} Mbit/s", ctx.shaped.join(", ")));
    for l in &ctx.shaped {
        probe::set_rate(r, l, u64::from(mbit) * 1_000_000).map_err(|e| {
            req(format!(
                "--bandwidth {mbit}: tc could not set it on {l}: {e}"
            ))
        })?;
    }
    Ok(Some(mbit))
}

/// Before the first migration: a quiet inter-edge link (or a note that
/// its bytes include earlier traffic), then the progress's total.
fn begin(ctx: &Ctx, obs: &mut dyn Observer, notes: &mut Vec<String>) -> Result<(), BedError> {
    if let Err(e) = wait_quiet_link(ctx, obs) {
        if ctx.opts.cancelled() {
            return Err(e);
        }
        notes.push(format!(
            "cross-edge bytes include traffic from before the run: {e}"
        ));
    }
    obs.begin(u64::from(ctx.opts.count));
    Ok(())
}

/// Waits until the inter-edge link has been quiet for 2 s (at most 20 s):
/// in its first seconds it carries the kernel's own link-up chatter (IPv6
/// duplicate address detection and MLD reports), which is no migration's.
fn wait_quiet_link(ctx: &Ctx, obs: &mut dyn Observer) -> Result<(), BedError> {
    let quiet_for = Duration::from_secs(2);
    let mut last = (ctx.ie_bytes()?, Instant::now());
    if last.0.is_none() {
        return Ok(());
    }
    obs.status("waiting for the inter-edge link to be quiet");
    wait_for(
        ctx.opts,
        Duration::from_secs(20),
        "a quiet inter-edge link",
        || {
            let now = ctx.ie_bytes()?;
            if now != last.0 {
                last = (now, Instant::now());
            }
            Ok((last.1.elapsed() >= quiet_for).then_some(()))
        },
    )
}

/// Raises the delay of `from`'s N6 link (and lowers `to`'s) until the
/// UE's agent asks for a migration; its id.
fn latency_trigger(
    ctx: &Ctx,
    r: &mut Running,
    from: &Edge,
    to: &Edge,
    seen: &HashSet<u64>,
) -> Result<u64, BedError> {
    let o = ctx.opts;
    let link = |e: &Edge| {
        e.n6_link
            .clone()
            .ok_or_else(|| req(format!("no N6 link of {} to delay", e.name)))
    };
    probe::set_delay(r, &link(to)?, Duration::ZERO)?;
    probe::set_delay(r, &link(from)?, o.latency.delay)?;
    wait_for(
        o,
        o.latency.hold + Duration::from_secs(15),
        "the UE's agent to ask for a migration",
        || {
            let s = ctx.ue_api.status()?;
            Ok(s.migrations
                .iter()
                .map(|m| m.id)
                .find(|id| !seen.contains(id)))
        },
    )
}

/// The row of a migration that ended: the counters after it (the logic
/// server's given up to 1 s to fill holes that reordering left).
fn measure_after(
    ctx: &Ctx,
    i: u32,
    m: &UeMigration,
    before: Counters,
    repo_warm: Option<bool>,
    gap: Duration,
    wall_ms: f64,
) -> Result<MigrationRow, BedError> {
    let cloud = settle(
        Duration::from_secs(1),
        ctx.opts,
        || cloud_count(&ctx.cloud, &ctx.account),
        |c| c.holes() <= before.cloud.holes(),
    )?;
    let ie = ctx.ie_bytes()?;
    let status: UeStatus = ctx.ue_api.status()?;
    let cross_edge = match (&ctx.ie, before.ie, ie) {
        (Some((link, iface, _)), Some(b), Some(a)) => Some(CrossEdge {
            link: link.clone(),
            iface: iface.clone(),
            before: b,
            after: a,
        }),
        _ => None,
    };
    let mut row = MigrationRow {
        n: i + 1,
        method: ctx.opts.method.as_str().into(),
        bandwidth_mbit: None,
        freeze_ms: None,
        bytes_ledger: None,
        copy_ms: None,
        copy_rounds: None,
        id: m.id,
        from: m.from.clone(),
        to: m.to.clone(),
        kind: String::new(),
        state: String::new(),
        reason: None,
        switched: false,
        decided_ns: None,
        downtime_ms: None,
        stall_ms: None,
        stall_display_late_ms: None,
        stall_offset_ms: None,
        migration_ms: None,
        setup_ms: None,
        instance_start_ms: None,
        ssim_at_switch: None,
        min_displayed_ssim: None,
        frames_blended: 0,
        inputs_resent: 0,
        triggered: false,
        cross_edge_bytes: cross_edge.as_ref().map(|c| c.after.since(&c.before)),
        cross_edge,
        inputs_sent: status.inputs_sent.saturating_sub(before.sent),
        inputs_lost: cloud.holes().saturating_sub(before.cloud.holes()),
        secondary_writes_applied: cloud
            .secondary_writes_applied
            .map(|n| n.saturating_sub(before.cloud.secondary_writes_applied.unwrap_or(0))),
        secondary_writes_dropped: cloud
            .writes_dropped
            .saturating_sub(before.cloud.writes_dropped),
        repo_warm,
        gap_before_ms: gap.as_secs_f64() * 1e3,
        wall_ms,
    };
    row.take_ue(m);
    Ok(row)
}
