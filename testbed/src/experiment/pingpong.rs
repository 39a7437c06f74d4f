//! `pingpong`: migrations back and forth every T seconds (the UE's latency
//! see-sawing around the trigger's threshold, paper section III-C 6), with
//! delayed release (the source stays copilot for a countdown longer than
//! T, so every migration after the first is only a stream switch) and
//! without (countdown 0: the source goes at the switch, so every migration
//! is full: a new PDU session and a new instance each time).
//!
//! Per migration (`pingpong.csv`): its kind, downtime, migration time, the
//! phases the SMF's `GET /migrations` shows for it, and whether it made a
//! PDU session (`session_ready`) and an instance (`instance_ready`). Per
//! run (`pingpong-runs.csv`): sessions and instances created (the play's
//! first one, plus one per phase), the distinct instance ids the edge
//! agents' `GET /instances` showed for the account (a cross-check), and
//! what was held over time (`pingpong-held.csv`, sampled every 100 ms:
//! the service's sessions at the SMF's `GET /services` and the account's
//! instances at the agents), their mean and maximum, and instance-seconds.

use std::path::Path;

use super::plot::{self, Chart, Series};
use super::report::Section;
use super::table::{cell, spread, CsvOut, Spread, Table};
use super::{
    flags, header, migration_cells, pick, Config, ExpError, Experiment, Fail, Name, RunOut,
};

pub struct Pingpong;

const CSV: &str = "pingpong.csv";
const RUNS_CSV: &str = "pingpong-runs.csv";
const HELD_CSV: &str = "pingpong-held.csv";
/// Seconds between one migration's end and the next request.
const PERIOD_S: u32 = 2;
/// The countdown with delayed release (longer than the period).
const COUNTDOWN_S: u32 = 6;

const RUN_COLS: &[&str] = &[
    "release",
    "rep",
    "migrations",
    "full",
    "switch_only",
    "sessions_created",
    "instances_created",
    "instances_seen_at_agents",
    "sessions_mean",
    "sessions_max",
    "instances_mean",
    "instances_max",
    "instance_seconds",
    "duration_s",
];

impl Experiment for Pingpong {
    fn name(&self) -> Name {
        Name::Pingpong
    }

    fn configs(&self, quick: bool) -> Vec<Config> {
        let count = pick(quick, 4, 10);
        vec![
            Config {
                label: "delayed".into(),
                count,
                flags: flags(&format!(
                    "--scene textured --countdown {COUNTDOWN_S}s --gap {PERIOD_S}s"
                )),
                video: false,
                edges: false,
                once: false,
            },
            Config {
                label: "none".into(),
                count,
                flags: flags(&format!("--scene textured --countdown 0 --gap {PERIOD_S}s")),
                video: false,
                edges: false,
                once: false,
            },
        ]
    }

    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
        let rep = out.rep.to_string();
        let (mut sessions_made, mut instances_made) = (1u32, 1u32);
        let rows: Vec<Vec<String>> = out
            .report
            .migrations
            .iter()
            .map(|m| {
                let rec = out.samples.smf_migrations.iter().find(|r| r.id == m.id);
                let has = |p: &str| rec.is_some_and(|r| r.phases.iter().any(|x| x.phase == p));
                let (session, instance) = (has("session_ready"), has("instance_ready"));
                sessions_made += u32::from(session);
                instances_made += u32::from(instance);
                let phases: Vec<String> = rec
                    .map(|r| {
                        r.phases
                            .iter()
                            .map(|p| format!("{}@{:.1}", p.phase, p.ms))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut r = vec![cfg.label.clone(), PERIOD_S.to_string(), rep.clone()];
                r.extend(migration_cells(m));
                r.extend([
                    u8::from(session).to_string(),
                    u8::from(instance).to_string(),
                    phases.join(" "),
                ]);
                r
            })
            .collect();
        let extra = ["session_created", "instance_created", "smf_phases"];
        CsvOut::new(dir, CSV, &header(&["release", "period_s", "rep"], &extra)).append(&rows)?;
        let held = &out.samples.held;
        let t0 = held.first().map_or(0, |h| h.t_ns);
        let series: Vec<Vec<String>> = held
            .iter()
            .map(|h| {
                vec![
                    cfg.label.clone(),
                    rep.clone(),
                    format!("{:.2}", (h.t_ns - t0) as f64 / 1e9),
                    h.sessions.to_string(),
                    h.instances.to_string(),
                ]
            })
            .collect();
        CsvOut::new(
            dir,
            HELD_CSV,
            &["release", "rep", "t_s", "sessions", "instances"],
        )
        .append(&series)?;
        let s = &out.report.summary;
        let sessions: Vec<f64> = held.iter().map(|h| f64::from(h.sessions)).collect();
        let instances: Vec<f64> = held.iter().map(|h| f64::from(h.instances)).collect();
        // Instance-seconds: each sample holds until the next.
        let inst_s: f64 = held
            .windows(2)
            .map(|w| f64::from(w[0].instances) * (w[1].t_ns - w[0].t_ns) as f64 / 1e9)
            .sum();
        let duration = held.last().map_or(0.0, |h| (h.t_ns - t0) as f64 / 1e9);
        let sp = |v: &[f64]| Spread::of(v);
        let run = vec![
            cfg.label.clone(),
            rep,
            s.migrations.to_string(),
            s.full.to_string(),
            s.switch_only.to_string(),
            sessions_made.to_string(),
            instances_made.to_string(),
            out.samples.instances_seen.len().to_string(),
            cell(sp(&sessions).map(|x| x.mean)),
            cell(sp(&sessions).map(|x| x.max)),
            cell(sp(&instances).map(|x| x.mean)),
            cell(sp(&instances).map(|x| x.max)),
            format!("{inst_s:.2}"),
            format!("{duration:.2}"),
        ];
        CsvOut::new(dir, RUNS_CSV, RUN_COLS).append(&[run])
    }

    fn sections(&self, dir: &Path) -> Result<Vec<Section>, ExpError> {
        let p = dir.join(CSV);
        let t = Table::read(&p)?;
        let runs_p = dir.join(RUNS_CSV);
        let runs = Table::read(&runs_p)?;
        let held = Table::read(&dir.join(HELD_CSV))?;
        let s = Fail::name(section(dir, &t, &runs), &p)?;
        Fail::name(plot_held(dir, s, &held), &runs_p).map(|s| vec![s])
    }
}

fn sum(v: &[f64]) -> String {
    format!("{:.0}", v.iter().sum::<f64>())
}

fn section(dir: &Path, t: &Table, runs: &Table) -> Result<Section, Fail> {
    let _ = dir;
    let mut s = Section::new(
        "## Ping-pong",
        format!(
        "Migrations back and forth between edge1 and edge2, the next requested {PERIOD_S} s after the last ended, \
with delayed release (countdown {COUNTDOWN_S} s, longer than the period) and without (countdown 0).\n\n\
The paper (section III-C 6, Delayed Release) gives no measurement, only the design: \"The delayed release configuration keeps the source edge working in copilot mode for a while after the stream switch\"; \
\"the previous steps from migration initiation to dual video streaming can all be skipped. The second-time migration only contains a stream switch. \
If another stream switch is triggered, the countdown timer will be reset.\" \
Sessions and instances created: the play's first, plus one per `session_ready` and `instance_ready` phase in the SMF's `GET /migrations` records \
(beside them, the distinct instance ids the edge agents' `GET /instances` showed for the account); held: the service's PDU sessions at the SMF's `GET /services` \
and the account's instances at the agents, sampled every 100 ms.\n\n"
        ),
    );
    let mut rows = Vec::new();
    for rel in t.distinct("release")? {
        let g = t.select("release", &rel)?;
        let r = runs.select("release", &rel)?;
        let full = g.count("kind", "full")?;
        let sw = g.count("kind", "switch_only")?;
        let m: Vec<f64> = g.numbers("migration_ms")?;
        rows.push(vec![
            if rel == "delayed" {
                format!("delayed release ({COUNTDOWN_S} s)")
            } else {
                "no delayed release".into()
            },
            g.rows.len().to_string(),
            format!("{full} / {sw}"),
            sum(&r.numbers("sessions_created")?),
            format!(
                "{} ({} seen at the agents)",
                sum(&r.numbers("instances_created")?),
                sum(&r.numbers("instances_seen_at_agents")?)
            ),
            spread(&g.numbers("downtime_ms")?, 2),
            spread(&m, 1),
            spread(&r.numbers("sessions_mean")?, 2),
            format!(
                "{:.0}",
                r.numbers("sessions_max")?
                    .iter()
                    .copied()
                    .fold(0.0, f64::max)
            ),
            spread(&r.numbers("instances_mean")?, 2),
            spread(&r.numbers("instance_seconds")?, 1),
        ]);
    }
    s.table(
        &[
            "release",
            "migrations",
            "full / switch-only",
            "sessions created",
            "instances created",
            "downtime ms",
            "migration time ms",
            "sessions held (mean)",
            "max",
            "instances held (mean)",
            "instance-seconds per run",
        ],
        &rows,
    );
    Ok(s)
}

/// The instances held over the first repetition of each configuration.
fn plot_held(dir: &Path, mut s: Section, held: &Table) -> Result<Section, Fail> {
    let mut series = Vec::new();
    for rel in held.distinct("release")? {
        let g = held.select("release", &rel)?.select("rep", "1")?;
        let t = g.numbers("t_s")?;
        let n = g.numbers("instances")?;
        series.push(Series {
            name: format!("release: {rel}"),
            points: t.into_iter().zip(n).collect(),
        });
    }
    let f = plot::lines(
        dir,
        "pingpong-instances",
        &Chart {
            title: "Ping-pong: the account's instances over time (rep 1)".into(),
            x_label: "time since the testbed was up (s)".into(),
            y_label: "instances".into(),
            series,
            steps: false,
            log_y: false,
        },
    )?;
    s.show(f, "instances held over time");
    Ok(s)
}
