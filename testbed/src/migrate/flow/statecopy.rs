//! The state-copy baselines (`--method stop-and-copy|pre-copy`): the edge
//! agents copy the UE's instance edge1 -> edge2 -> ... over the inter-edge
//! link (`POST /instances/{id}/statecopy` at the source agent: a model of
//! VM/container live migration with the preset's sizes, real bytes over
//! the shaped link, the source really frozen), and the UE follows.
//!
//! How the UE gets the destination's stream: before the play, the testbed
//! sets up a second PDU session, to the other edge's UPF (the UE holds one
//! session per edge for the whole run). The destination instance streams
//! to the UE's address on that session. Just before each copy the testbed
//! tells the UE to follow that edge (`POST /follow`, no SMF involved): the
//! UE opens a streaming client there and its selector watches, with the
//! threshold and the slide off, so the destination's first decoded frame
//! is shown at once. This was chosen over moving the UE's address with the
//! instance (what a VM's IP does) because the 5G core here anchors an
//! address at one UPF: a session to the destination is what a UE would
//! need anyway, and it is set up before the copy so that it adds nothing
//! to the freeze. The destination's input port is known once the copy has
//! started it; the testbed then gives it to the UE (a second `POST
//! /follow`), and the UE's inputs go there.
//!
//! Per copy: the display freeze measured on the UE's displayed frames
//! (the downtime of these baselines), migration time (the UE's request to
//! the destination's first shown frame), the model's ledger of bytes sent
//! and the inter-edge interface's counters.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use topo::Running;

use super::super::api::UeMigration;
use super::super::report::MigrationRow;
use super::super::{Gaps, Observer};
use super::{
    begin, measure_after, pause_gap, req, set_bandwidth, set_warmth, wait_ended, write_file,
    Counters, Ctx, Edge,
};
use crate::bed::BedError;

/// The PDU session the UE holds to edge `k` (0 or 1).
fn psi_of(k: usize) -> u8 {
    k as u8 + 1
}

/// The UE's session to the second edge (the first's is the play's).
pub(super) fn second_session(ctx: &Ctx, obs: &mut dyn Observer) -> Result<(), BedError> {
    super::add_session(ctx, psi_of(1), &ctx.edges[1].upf, obs)
}

/// The wait before copy `i`: the `--gap` list, or 1 s with `auto` (the
/// countdown means nothing here).
fn gap(ctx: &Ctx, i: u32) -> Duration {
    match (&ctx.opts.gaps, i) {
        (_, 0) => Duration::ZERO,
        (Gaps::Auto, _) => Duration::from_secs(1),
        _ => ctx.opts.gap(i),
    }
}

/// The copies, one after the other, back and forth.
pub(super) fn copies(
    ctx: &Ctx,
    running: &mut Option<Running>,
    obs: &mut dyn Observer,
    notes: &mut Vec<String>,
) -> Result<Vec<MigrationRow>, BedError> {
    let o = ctx.opts;
    if ctx.ie.is_none() || ctx.edges.iter().any(|e| e.copy.is_none()) {
        return Err(BedError::Usage(format!(
            "--method {}: the state copy crosses the link between {} and {}, and the topology has none",
            o.method.as_str(),
            ctx.edges[0].name,
            ctx.edges[1].name
        )));
    }
    begin(ctx, obs, notes)?;
    let mut rows = Vec::new();
    let mut serving = 0;
    for i in 0..o.count {
        let g = gap(ctx, i);
        pause_gap(o, obs, g)?;
        let bandwidth = set_bandwidth(ctx, running, i, obs)?;
        let mut row = one(ctx, i, serving, g, obs)?;
        row.bandwidth_mbit = bandwidth;
        let msg = format!(
            "{} -> {} {} at {} Mbit/s: migration {} ms, {} bytes",
            row.from,
            row.to,
            o.method.as_str(),
            bandwidth.map_or("-".into(), |b| b.to_string()),
            row.migration_ms.map_or("-".into(), |x| format!("{x:.0}")),
            row.bytes_ledger.unwrap_or(0),
        );
        obs.step(u64::from(i + 1), &msg);
        rows.push(row);
        serving = 1 - serving;
    }
    Ok(rows)
}

/// `POST /instances/{id}/statecopy` at the source agent `agent`: the
/// agent's report. The copy may take minutes: the request runs in a
/// thread of its own, and Ctrl-C does not wait for it (the testbed going
/// down ends it).
fn copy(
    ctx: &Ctx,
    agent: &super::Api,
    id: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, BedError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (agent, path, deadline) = (
        agent.clone(),
        format!("/instances/{id}/statecopy"),
        ctx.deadline,
    );
    std::thread::spawn(move || {
        let r = agent.expect("POST", &path, Some(body.to_string()), &[200], deadline);
        let _ = tx.send(r);
    });
    loop {
        if ctx.opts.cancelled() {
            return Err(BedError::Interrupted);
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => return r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(req(
                    "the state-copy request's thread ended without an answer",
                ))
            }
        }
    }
}

/// `POST /follow` to the UE with `body`; the follow's record.
fn follow(ctx: &Ctx, body: serde_json::Value) -> Result<UeMigration, BedError> {
    ctx.ue_api.0.expect(
        "POST",
        "/follow",
        Some(body.to_string()),
        &[200],
        Duration::from_secs(10),
    )
}

/// The account's instance at `e` (the one the UE is shown).
fn instance_at(ctx: &Ctx, e: &Edge) -> Result<String, BedError> {
    let list: Vec<serde_json::Value> = e.agent.get("/instances")?;
    list.iter()
        .filter(|i| i["account"] == ctx.account.as_str())
        .find_map(|i| i["id"].as_str().map(str::to_string))
        .ok_or_else(|| req(format!("{} runs no instance of {}", e.name, ctx.account)))
}

/// The `POST /instances/{id}/statecopy` body: copy to `to`, whose agent
/// starts the UE's instance streaming to the UE's session there.
fn copy_body(ctx: &Ctx, to: &Edge, psi: u8) -> Result<serde_json::Value, BedError> {
    let o = ctx.opts;
    let copy = to
        .copy
        .ok_or_else(|| req(format!("{} has no state-copy listener", to.name)))?;
    let ue_addr = ctx.session_addr(psi)?;
    // The destination agent's API is on the cp side only (DESIGN.md
    // section 3): the copy's bytes cross the inter-edge link, its start
    // request the cp switch.
    Ok(serde_json::json!({
        "method": o.method.as_str(),
        "preset": o.preset,
        "scale": o.scale,
        "to_copy": copy.to_string(),
        "to_agent": to.agent.base,
        "start": super::instance_body(ctx, ue_addr),
    }))
}

/// One copy from edge `from` to the other; its row.
fn one(
    ctx: &Ctx,
    i: u32,
    from: usize,
    g: Duration,
    obs: &mut dyn Observer,
) -> Result<MigrationRow, BedError> {
    let o = ctx.opts;
    let (a, b) = (&ctx.edges[from], &ctx.edges[1 - from]);
    let psi = psi_of(1 - from);
    let id = instance_at(ctx, a)?;
    let body = copy_body(ctx, b, psi)?;
    // The image carries the application: the destination does not pull it.
    set_warmth(&b.agent, true, Duration::from_secs(15))?;
    let before = Counters::read(ctx, &ctx.ue_api.status()?)?;
    obs.status(&format!(
        "{} {} of {}: {} -> {}",
        o.method.as_str(),
        i + 1,
        o.count,
        a.name,
        b.name
    ));
    let t0 = Instant::now();
    let followed = follow(ctx, serde_json::json!({"edge": b.name, "psi": psi}))?;
    let report = copy(ctx, &a.agent, &id, body)?;
    let port = report["destination"]["input_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| {
            req(format!(
                "state-copy report without the destination's input_port: {report}"
            ))
        })?;
    let input = SocketAddr::from((b.n6, port));
    follow(
        ctx,
        serde_json::json!({"edge": b.name, "psi": psi, "input": input}),
    )?;
    obs.status(&format!("{} waits for {}'s stream", ctx.ue.name, b.name));
    let m = wait_ended(
        ctx,
        followed.id,
        &format!("the UE to show {}'s stream", b.name),
    )?;
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut row = measure_after(ctx, i, &m, before, None, g, wall_ms)?;
    row.bytes_ledger = report["bytes_ledger"].as_u64();
    row.copy_ms = report["total_ms"].as_f64();
    row.copy_rounds = report["rounds"]
        .as_array()
        .and_then(|r| u32::try_from(r.len()).ok());
    // The agent's whole report (rounds, times, destination) beside the CSV.
    let text = serde_json::to_string_pretty(&report).map_err(req)?;
    write_file(&ctx.st.run_dir, &format!("statecopy-{}.json", i + 1), &text)?;
    Ok(row)
}
