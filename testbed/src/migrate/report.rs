//! `testbed migrate`'s figures: one row per migration, their distributions
//! (p50/p99/max), `migrations.json`, `migrations.csv`, and the table for
//! people.

use serde::Serialize;

use super::api::{UeMigration, UeMigrationState};
use super::probe::{Census, IfBytes};
use wire::ctl::migration::MigrationKind;

/// The inter-edge link's counters around one migration.
#[derive(Debug, Clone, Serialize)]
pub struct CrossEdge {
    /// Link name.
    pub link: String,
    /// The interface read (in the first edge's namespace).
    pub iface: String,
    pub before: IfBytes,
    pub after: IfBytes,
}

/// One migration: the UE's figures, the SMF's phase times, and what the
/// testbed counted around it.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRow {
    /// 1, 2, ... in the run.
    pub n: u32,
    /// The migration's id (UE and SMF).
    pub id: u64,
    /// `csm`, `stop-and-copy` or `pre-copy`.
    pub method: String,
    /// The inter-edge and WAN links' rate during it (`--bandwidth`), Mbit/s.
    pub bandwidth_mbit: Option<u32>,
    /// Display freeze: the longest interval between displayed frames from
    /// the request to 1 s after the first destination frame (for the
    /// state-copy baselines, their downtime).
    pub freeze_ms: Option<f64>,
    /// State copy: the bytes the model's own ledger says it sent.
    pub bytes_ledger: Option<u64>,
    /// State copy: the source agent's time from the request to the
    /// destination's start.
    pub copy_ms: Option<f64>,
    /// State copy: rounds sent (the last one after the stop).
    pub copy_rounds: Option<u32>,
    pub from: String,
    pub to: String,
    /// `full` or `switch_only`.
    pub kind: String,
    /// `switched`, `completed` or `abandoned`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the selector decided a switch.
    pub switched: bool,
    /// When it decided (CLOCK_REALTIME ns): where to look in the UE's
    /// display log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_ns: Option<u64>,
    /// Switch decision to the first displayed frame with a destination
    /// contribution.
    pub downtime_ms: Option<f64>,
    /// Longest interval between new frames within 1 s of the switch, minus
    /// the p99 away from switches.
    pub stall_ms: Option<f64>,
    /// Of that interval, how long its closing frame was shown after it was
    /// due (the display thread's own share; with pacing only).
    pub stall_display_late_ms: Option<f64>,
    /// Where that interval ended, from the switch decision (ms, negative
    /// before it).
    pub stall_offset_ms: Option<f64>,
    /// Request to switch decision.
    pub migration_ms: Option<f64>,
    /// The parallel session's setup (SMF).
    pub setup_ms: Option<f64>,
    /// The destination instance's start (SMF).
    pub instance_start_ms: Option<f64>,
    pub ssim_at_switch: Option<f64>,
    pub min_displayed_ssim: Option<f64>,
    pub frames_blended: u32,
    pub inputs_resent: u64,
    /// Whether the UE's agent asked for it (latency trigger).
    pub triggered: bool,
    /// Bytes on the inter-edge link during the migration, both ways.
    pub cross_edge_bytes: Option<u64>,
    pub cross_edge: Option<CrossEdge>,
    /// Inputs the UE sent during the migration (by the UE's count, or when
    /// it reports none, by the logic server's highest sequence number).
    pub inputs_sent: u64,
    /// New holes in the logic server's applied sequence numbers.
    pub inputs_lost: u64,
    /// Writes the logic server applied while their session was a
    /// secondary (it checks each write it applies; null from a logic
    /// server that does not count them).
    pub secondary_writes_applied: Option<u64>,
    /// Writes from a secondary that the logic server dropped.
    pub secondary_writes_dropped: u64,
    /// For a full migration: whether the destination's repository had the
    /// application (the `--warm` setting).
    pub repo_warm: Option<bool>,
    /// The gap waited before this migration's request.
    pub gap_before_ms: f64,
    /// Wall time from the request to the end seen by the testbed.
    pub wall_ms: f64,
}

impl MigrationRow {
    /// Fills in the UE's figures from a record (status or `DELETE /play`).
    pub fn take_ue(&mut self, m: &UeMigration) {
        self.kind = match m.kind {
            MigrationKind::Full => "full",
            MigrationKind::SwitchOnly => "switch_only",
        }
        .into();
        self.state = m.state.as_str().into();
        self.reason = m.reason.clone();
        self.switched = m.decided_ns.is_some()
            || matches!(
                m.state,
                UeMigrationState::Switched | UeMigrationState::Completed
            );
        self.decided_ns = m.decided_ns;
        self.downtime_ms = m.downtime_ms;
        self.migration_ms = m.migration_ms;
        self.ssim_at_switch = m.ssim_at_switch;
        self.frames_blended = m.frames_blended;
        self.inputs_resent = m.inputs_resent;
        self.triggered = m.triggered;
        self.stall_ms = m.stall_ms.or(self.stall_ms);
        self.stall_display_late_ms = m.stall_display_late_ms.or(self.stall_display_late_ms);
        self.stall_offset_ms = m.stall_offset_ms.or(self.stall_offset_ms);
        self.freeze_ms = m.freeze_ms.or(self.freeze_ms);
        self.min_displayed_ssim = m.min_displayed_ssim.or(self.min_displayed_ssim);
    }
}

/// A distribution: count, p50, p99, max (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub min: f64,
}

impl Dist {
    /// Of the values present; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Option<Dist> {
        let mut v: Vec<f64> = values
            .into_iter()
            .flatten()
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[i - 1]
        };
        Some(Dist {
            n: v.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
            min: v[0],
        })
    }
}

/// Every figure's distribution over the run, and its totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub migrations: usize,
    pub full: usize,
    pub switch_only: usize,
    pub switched: usize,
    pub abandoned: usize,
    pub downtime_ms: Option<Dist>,
    pub stall_ms: Option<Dist>,
    pub freeze_ms: Option<Dist>,
    pub migration_ms: Option<Dist>,
    pub setup_ms: Option<Dist>,
    pub instance_start_ms: Option<Dist>,
    pub ssim_at_switch: Option<Dist>,
    pub min_displayed_ssim: Option<Dist>,
    pub frames_blended: Option<Dist>,
    pub cross_edge_bytes: Option<Dist>,
    pub inputs_lost_per_migration: Option<Dist>,
    /// Inputs the UE sent in the whole play.
    pub inputs_sent: u64,
    /// Inputs the logic server applied for the account in the play.
    pub inputs_applied: u64,
    /// Sent and never applied (must be 0).
    pub inputs_lost: u64,
    /// Writes applied from a secondary (null: not counted by the logic server).
    pub secondary_writes_applied: Option<u64>,
    /// Writes from a secondary that the logic server dropped.
    pub secondary_writes_dropped: u64,
    /// The UE's render -> display latency over the play (what presentation
    /// pacing costs shows here), ms.
    pub render_to_display_ms: Option<ue::stream::report::Summary>,
    /// The UE's input -> display latency over the play, ms.
    pub input_to_display_ms: Option<ue::stream::report::Summary>,
    /// The UE's stall baseline: p99 frame interval away from switches.
    pub stall_p99_away_ms: Option<f64>,
    /// The UE's smoothness baseline: 1st percentile of the SSIM between
    /// consecutive displayed frames away from switches.
    pub smoothness_baseline: Option<f64>,
    /// Stall at instants away from every switch (the UE's control
    /// windows): what the same measure gives without a switch.
    pub stall_control_ms: Option<Dist>,
    /// Lowest consecutive-frame SSIM in the control windows.
    pub min_displayed_ssim_control: Option<Dist>,
    /// How many switches, and how many control windows, meet each goal
    /// (stall under 2 ms; smoothness: lowest SSIM at least the baseline
    /// minus 0.02).
    pub goals: GoalCounts,
    /// Whether the last source was released within the deadline.
    pub last_released: bool,
    /// The host's CPUs, kernel preemption and CPU use over the run.
    pub host: Option<crate::host::HostReport>,
    /// Notes on figures that could not be had.
    pub notes: Vec<String>,
    /// The run's settings and where its files are.
    pub settings: serde_json::Value,
}

impl Summary {
    /// The distributions and counts of `rows`.
    pub fn of(rows: &[MigrationRow]) -> Summary {
        let f = |g: fn(&MigrationRow) -> Option<f64>| Dist::of(rows.iter().map(g));
        Summary {
            migrations: rows.len(),
            full: rows.iter().filter(|r| r.kind == "full").count(),
            switch_only: rows.iter().filter(|r| r.kind == "switch_only").count(),
            switched: rows.iter().filter(|r| r.switched).count(),
            abandoned: rows.iter().filter(|r| r.state == "abandoned").count(),
            downtime_ms: f(|r| r.downtime_ms),
            stall_ms: f(|r| r.stall_ms),
            freeze_ms: f(|r| r.freeze_ms),
            migration_ms: f(|r| r.migration_ms),
            setup_ms: f(|r| r.setup_ms),
            instance_start_ms: f(|r| r.instance_start_ms),
            ssim_at_switch: f(|r| r.ssim_at_switch),
            min_displayed_ssim: f(|r| r.min_displayed_ssim),
            frames_blended: f(|r| Some(f64::from(r.frames_blended))),
            cross_edge_bytes: f(|r| r.cross_edge_bytes.map(|b| b as f64)),
            inputs_lost_per_migration: f(|r| Some(r.inputs_lost as f64)),
            ..Summary::default()
        }
    }
}

/// Windows meeting a goal, of those measured: `[met, of]`.
pub type MetOf = [usize; 2];

/// The stall and smoothness goals, counted at the switches and at
/// the control windows of the same run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoalCounts {
    pub stall_switches: MetOf,
    pub stall_controls: MetOf,
    pub smoothness_switches: MetOf,
    pub smoothness_controls: MetOf,
    /// Switches that missed the stall goal because of the display thread:
    /// the closing frame's lateness after its due time is at least half
    /// the stall, and without it the gap would have met the goal. The
    /// other misses are frames that came to the UE later than the
    /// stream's playout delay allowed.
    pub stall_misses_display_late: usize,
    /// The gaps behind the stall misses, each counted once: two switches
    /// less than 2 s apart both see a gap between them (the window is 1 s
    /// either side).
    pub stall_miss_gaps: usize,
    /// Where the misses' gaps ended, from their switch decisions: the
    /// earliest and the latest (ms, negative before the decision).
    pub stall_miss_offsets_ms: Option<[f64; 2]>,
}

/// The stall goal (DESIGN.md section 6): under 2 ms.
pub const STALL_GOAL_MS: f64 = 2.0;
/// The smoothness goal's tolerance under the baseline.
pub const SMOOTHNESS_TOLERANCE: f64 = 0.02;

fn met_of(v: impl Iterator<Item = Option<f64>>, ok: impl Fn(f64) -> bool) -> MetOf {
    v.flatten()
        .fold([0, 0], |[m, n], x| [m + usize::from(ok(x)), n + 1])
}

impl Summary {
    /// Adds the control windows' figures and counts both goals at the
    /// switches of `rows` and at the controls.
    pub fn with_controls(
        &mut self,
        rows: &[MigrationRow],
        controls: &[ue::service::ControlWindow],
    ) {
        self.stall_control_ms = Dist::of(controls.iter().map(|c| c.stall_ms));
        self.min_displayed_ssim_control = Dist::of(controls.iter().map(|c| c.min_ssim));
        let stall_ok = |x: f64| x < STALL_GOAL_MS;
        let floor = self.smoothness_baseline.map(|b| b - SMOOTHNESS_TOLERANCE);
        let smooth_ok = |x: f64| floor.is_some_and(|f| x >= f);
        // The switches whose stall missed the goal, with that stall.
        let misses: Vec<(&MigrationRow, f64)> = rows
            .iter()
            .filter_map(|r| r.stall_ms.filter(|&st| !stall_ok(st)).map(|st| (r, st)))
            .collect();
        // A gap is known by when it ended (two gaps end at least a frame
        // apart; the offset's float rounding is far under 1 ms); a miss
        // without that is a gap of its own.
        let mut ends: Vec<f64> = misses
            .iter()
            .filter_map(|(r, _)| Some(r.decided_ns? as f64 + r.stall_offset_ms? * 1e6))
            .collect();
        ends.sort_by(f64::total_cmp);
        let distinct =
            usize::from(!ends.is_empty()) + ends.windows(2).filter(|w| w[1] - w[0] > 1e6).count();
        self.goals = GoalCounts {
            stall_switches: met_of(rows.iter().map(|r| r.stall_ms), stall_ok),
            stall_controls: met_of(controls.iter().map(|c| c.stall_ms), stall_ok),
            smoothness_switches: met_of(rows.iter().map(|r| r.min_displayed_ssim), smooth_ok),
            smoothness_controls: met_of(controls.iter().map(|c| c.min_ssim), smooth_ok),
            stall_misses_display_late: misses
                .iter()
                .filter(|(r, st)| {
                    r.stall_display_late_ms
                        .is_some_and(|late| late >= st / 2.0 && stall_ok(st - late))
                })
                .count(),
            stall_miss_gaps: distinct + (misses.len() - ends.len()),
            stall_miss_offsets_ms: misses
                .iter()
                .filter_map(|(r, _)| r.stall_offset_ms)
                .fold(None, |m, x| {
                    Some(m.map_or([x, x], |[lo, hi]: [f64; 2]| [lo.min(x), hi.max(x)]))
                }),
        };
    }
}

/// `testbed migrate`'s report (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub migrations: Vec<MigrationRow>,
    pub summary: Summary,
    /// What the run held after the last release beyond what it held before
    /// the first migration; `namespaces`: the run's namespaces left after
    /// the testbed went down (when it was not kept).
    pub leaks: Census,
}

impl MigrateReport {
    /// Whether the run met CSM's invariants: every migration switched, no
    /// input lost, nothing leaked.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let s = &self.summary;
        if s.switched < s.migrations {
            p.push(format!(
                "{} of {} migrations did not switch",
                s.migrations - s.switched,
                s.migrations
            ));
        }
        // A state copy loses the inputs sent to the frozen source: a
        // figure of the baseline, not a fault.
        let csm = s.settings["method"].as_str().is_none_or(|m| m == "csm");
        if s.inputs_lost > 0 && csm {
            p.push(format!("{} inputs were never applied", s.inputs_lost));
        }
        if !self.leaks.is_zero() {
            p.push(format!("leaks: {:?}", self.leaks));
        }
        p
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// `migrations.csv`: one line per migration, the raw inter-edge counters
/// included.
pub fn csv(rows: &[MigrationRow]) -> String {
    let mut s = String::from(
        "n,id,from,to,kind,state,downtime_ms,stall_ms,migration_ms,setup_ms,instance_start_ms,\
ssim_at_switch,min_displayed_ssim,frames_blended,inputs_resent,cross_edge_bytes,\
ie_rx_before,ie_tx_before,ie_rx_after,ie_tx_after,inputs_sent,inputs_lost,\
secondary_writes_applied,secondary_writes_dropped,repo_warm,gap_before_ms,wall_ms,\
method,bandwidth_mbit,freeze_ms,bytes_ledger,copy_ms,copy_rounds,stall_display_late_ms,\
stall_offset_ms\n",
    );
    for r in rows {
        let ie = r.cross_edge.as_ref();
        let cells = [
            r.n.to_string(),
            r.id.to_string(),
            r.from.clone(),
            r.to.clone(),
            r.kind.clone(),
            r.state.clone(),
            opt(&r.downtime_ms),
            opt(&r.stall_ms),
            opt(&r.migration_ms),
            opt(&r.setup_ms),
            opt(&r.instance_start_ms),
            opt(&r.ssim_at_switch),
            opt(&r.min_displayed_ssim),
            r.frames_blended.to_string(),
            r.inputs_resent.to_string(),
            opt(&r.cross_edge_bytes),
            opt(&ie.map(|c| c.before.rx_bytes)),
            opt(&ie.map(|c| c.before.tx_bytes)),
            opt(&ie.map(|c| c.after.rx_bytes)),
            opt(&ie.map(|c| c.after.tx_bytes)),
            r.inputs_sent.to_string(),
            r.inputs_lost.to_string(),
            opt(&r.secondary_writes_applied),
            r.secondary_writes_dropped.to_string(),
            opt(&r.repo_warm),
            format!("{:.0}", r.gap_before_ms),
            format!("{:.1}", r.wall_ms),
            r.method.clone(),
            opt(&r.bandwidth_mbit),
            opt(&r.freeze_ms),
            opt(&r.bytes_ledger),
            opt(&r.copy_ms),
            opt(&r.copy_rounds),
            opt(&r.stall_display_late_ms),
            opt(&r.stall_offset_ms),
        ];
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1}"))
}

/// The report for people.
pub fn print_human(r: &MigrateReport) {
    println!(
        "\n{:>3} {:<6} {:<6} {:<11} {:<9} {:>9} {:>8} {:>8} {:>10} {:>8} {:>8} {:>6} {:>5} {:>10} {:>5} {:>4}",
        "#", "FROM", "TO", "KIND", "STATE", "DOWNTIME", "STALL", "FREEZE", "MIGRATION", "SETUP", "INSTANCE",
        "SSIM", "BLEND", "X-EDGE", "SENT", "LOST"
    );
    for m in &r.migrations {
        println!(
            "{:>3} {:<6} {:<6} {:<11} {:<9} {:>9} {:>8} {:>8} {:>10} {:>8} {:>8} {:>6} {:>5} {:>10} {:>5} {:>4}",
            m.n,
            m.from,
            m.to,
            m.kind,
            m.state,
            ms(m.downtime_ms),
            ms(m.stall_ms),
            ms(m.freeze_ms),
            ms(m.migration_ms),
            ms(m.setup_ms),
            ms(m.instance_start_ms),
            m.ssim_at_switch.map_or("-".into(), |x| format!("{x:.3}")),
            m.frames_blended,
            m.cross_edge_bytes.map_or("-".into(), |b| b.to_string()),
            m.inputs_sent,
            m.inputs_lost
        );
    }
    let s = &r.summary;
    println!(
        "\n{} migrations: {} full, {} switch-only; {} switched, {} abandoned",
        s.migrations, s.full, s.switch_only, s.switched, s.abandoned
    );
    println!("{:<34} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
    let rows: [(&str, &Option<Dist>); 13] = [
        ("switch downtime (ms)", &s.downtime_ms),
        ("display stall (ms)", &s.stall_ms),
        ("  same, no switch (control) (ms)", &s.stall_control_ms),
        ("lowest displayed SSIM", &s.min_displayed_ssim),
        ("  same, no switch (control)", &s.min_displayed_ssim_control),
        ("display freeze (ms)", &s.freeze_ms),
        ("migration time (ms)", &s.migration_ms),
        ("parallel session setup (ms)", &s.setup_ms),
        ("destination instance start (ms)", &s.instance_start_ms),
        ("SSIM at the switch", &s.ssim_at_switch),
        ("frames blended", &s.frames_blended),
        ("cross-edge bytes", &s.cross_edge_bytes),
        ("inputs lost", &s.inputs_lost_per_migration),
    ];
    for (name, d) in rows {
        match d {
            Some(d) => println!("{name:<34} {:>10.3} {:>10.3} {:>10.3}", d.p50, d.p99, d.max),
            None => println!("{name:<34} {:>10} {:>10} {:>10}", "-", "-", "-"),
        }
    }
    let lat = |l: &Option<ue::stream::report::Summary>| {
        l.as_ref().map_or("-".into(), |l| {
            let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.1}"));
            format!("p50 {} / p99 {} ms", f(l.p50), f(l.p99))
        })
    };
    println!(
        "display latency: render -> display {}; input -> display {} (pacing: {})",
        lat(&s.render_to_display_ms),
        lat(&s.input_to_display_ms),
        if s.settings["pacing"] == true {
            "on"
        } else {
            "off"
        }
    );
    let g = &s.goals;
    let of = |m: &MetOf| format!("{}/{}", m[0], m[1]);
    println!(
        "goals met at switches / at control windows (no switch): stall < {STALL_GOAL_MS} ms {} / {}; smoothness {} / {}",
        of(&g.stall_switches),
        of(&g.stall_controls),
        of(&g.smoothness_switches),
        of(&g.smoothness_controls)
    );
    let misses = g.stall_switches[1] - g.stall_switches[0];
    if misses > 0 {
        let place = g.stall_miss_offsets_ms.map_or(String::new(), |[lo, hi]| {
            format!(", ending {lo:+.0} to {hi:+.0} ms from their switch decision")
        });
        println!(
            "stall misses at switches: {misses} ({} distinct gap{}{place}; a gap within 1 s of two switches counts at both), {} of them the display thread showing a frame late (the others: a frame late to the UE)",
            g.stall_miss_gaps,
            if g.stall_miss_gaps == 1 { "" } else { "s" },
            g.stall_misses_display_late
        );
    }
    println!(
        "inputs: {} sent, {} applied by the logic server, {} lost; secondary writes applied: {}",
        s.inputs_sent,
        s.inputs_applied,
        s.inputs_lost,
        s.secondary_writes_applied
            .map_or("not counted by the logic server".into(), |n| n.to_string())
    );
    let l = &r.leaks;
    println!(
        "leaks: {} UPF sessions, {} gNB tunnels, {} UE addresses, {} instances, {} processes, {} namespaces",
        l.upf_sessions, l.gnb_tunnels, l.ue_addresses, l.instances, l.processes, l.namespaces
    );
    if let Some(h) = &s.host {
        println!("{}", h.line());
    }
    for n in &s.notes {
        println!("note: {n}");
    }
    if let Some(dir) = s.settings["run_dir"].as_str() {
        println!("migrations.json, migrations.csv, configs and logs: {dir}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u32, kind: &str, downtime: Option<f64>) -> MigrationRow {
        MigrationRow {
            n,
            id: u64::from(n),
            method: "csm".into(),
            bandwidth_mbit: None,
            freeze_ms: None,
            bytes_ledger: None,
            copy_ms: None,
            copy_rounds: None,
            from: "edge1".into(),
            to: "edge2".into(),
            kind: kind.into(),
            state: "completed".into(),
            reason: None,
            switched: downtime.is_some(),
            decided_ns: None,
            downtime_ms: downtime,
            stall_ms: None,
            stall_display_late_ms: None,
            stall_offset_ms: None,
            migration_ms: Some(100.0 * f64::from(n)),
            setup_ms: None,
            instance_start_ms: None,
            ssim_at_switch: Some(0.9),
            min_displayed_ssim: None,
            frames_blended: 12,
            inputs_resent: 0,
            triggered: false,
            cross_edge_bytes: Some(0),
            cross_edge: None,
            inputs_sent: 10,
            inputs_lost: 0,
            secondary_writes_applied: None,
            secondary_writes_dropped: 0,
            repo_warm: None,
            gap_before_ms: 0.0,
            wall_ms: 1.0,
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let d = Dist::of((1..=100).map(|x| Some(f64::from(x)))).expect("values");
        assert_eq!(
            (d.n, d.p50, d.p99, d.max, d.min),
            (100, 50.0, 99.0, 100.0, 1.0)
        );
        let d = Dist::of([Some(3.0), None, Some(1.0)]).expect("values");
        assert_eq!((d.n, d.p50, d.p99, d.max), (2, 1.0, 3.0, 3.0));
        assert_eq!(Dist::of([None, Some(f64::NAN)]), None);
    }

    #[test]
    fn summary_counts_and_problems() {
        let rows = vec![
            row(1, "full", Some(8.0)),
            row(2, "switch_only", Some(6.0)),
            row(3, "full", None),
        ];
        let s = Summary::of(&rows);
        assert_eq!(
            (s.migrations, s.full, s.switch_only, s.switched),
            (3, 2, 1, 2)
        );
        assert_eq!(s.downtime_ms.map(|d| d.max), Some(8.0));
        assert_eq!(s.migration_ms.map(|d| d.p50), Some(200.0));
        let r = MigrateReport {
            migrations: rows,
            summary: s,
            leaks: Census::default(),
        };
        assert_eq!(r.problems(), ["1 of 3 migrations did not switch"]);
    }

    #[test]
    fn csv_has_a_line_per_migration_and_every_column() {
        let text = csv(&[row(1, "full", Some(8.0)), row(2, "switch_only", None)]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let cols = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == cols), "{text}");
        assert!(
            lines[1].starts_with("1,1,edge1,edge2,full,completed,8,"),
            "{text}"
        );
        assert!(lines[2].contains(",switch_only,completed,,"), "{text}");
    }

    #[test]
    fn goals_are_counted_at_switches_and_at_controls() {
        let mut rows = vec![row(1, "full", Some(0.1)), row(2, "full", Some(0.1))];
        rows[0].stall_ms = Some(1.0);
        rows[0].min_displayed_ssim = Some(0.50);
        rows[1].stall_ms = Some(3.0);
        rows[1].min_displayed_ssim = Some(0.40);
        let c = |stall: f64, ssim: f64| ue::service::ControlWindow {
            at_ns: 0,
            stall_ms: Some(stall),
            min_ssim: Some(ssim),
        };
        let controls = [c(0.5, 0.49), c(2.5, 0.2), c(-1.0, 0.48), c(2.0, 0.6)];
        let mut s = Summary::of(&rows);
        s.smoothness_baseline = Some(0.5);
        s.with_controls(&rows, &controls);
        assert_eq!(s.goals.stall_switches, [1, 2]);
        assert_eq!(s.goals.stall_controls, [2, 4]);
        // The miss (3 ms) is the display's only when its lateness takes it
        // under 2 ms and is at least half of it.
        assert_eq!(s.goals.stall_misses_display_late, 0);
        rows[1].stall_display_late_ms = Some(0.5);
        s.with_controls(&rows, &controls);
        assert_eq!(s.goals.stall_misses_display_late, 0);
        rows[1].stall_ms = Some(2.05);
        rows[1].stall_display_late_ms = Some(0.1);
        s.with_controls(&rows, &controls);
        assert_eq!(
            s.goals.stall_misses_display_late, 0,
            "a sliver is not the cause"
        );
        rows[1].stall_ms = Some(3.0);
        rows[1].stall_display_late_ms = Some(1.5);
        s.with_controls(&rows, &controls);
        assert_eq!(s.goals.stall_misses_display_late, 1);
        // One miss, not placed: one gap, no offsets.
        assert_eq!(s.goals.stall_miss_gaps, 1);
        assert_eq!(s.goals.stall_miss_offsets_ms, None);
        // Two switches 500 ms apart that see the same gap, 600 ms after
        // the first: one gap; a third miss with a gap of its own.
        let mut three = vec![rows[1].clone(), rows[1].clone(), rows[1].clone()];
        let at = 1_796_642_939_190_030_039u64;
        for (r, (decided_ms, off)) in
            three
                .iter_mut()
                .zip([(0, 600.0), (500, 100.0), (3_000, -70.0)])
        {
            r.decided_ns = Some(at + decided_ms * 1_000_000);
            r.stall_offset_ms = Some(off);
        }
        s.with_controls(&three, &controls);
        assert_eq!(s.goals.stall_switches, [0, 3]);
        assert_eq!(s.goals.stall_miss_gaps, 2);
        assert_eq!(s.goals.stall_miss_offsets_ms, Some([-70.0, 600.0]));
        s.with_controls(&rows, &controls);
        // At least 0.5 - 0.02.
        assert_eq!(s.goals.smoothness_switches, [1, 2]);
        assert_eq!(s.goals.smoothness_controls, [3, 4]);
        let d = s.stall_control_ms.expect("controls");
        assert_eq!((d.n, d.min, d.max), (4, -1.0, 2.5));
        // No baseline: smoothness cannot be met.
        s.smoothness_baseline = None;
        s.with_controls(&rows, &[]);
        assert_eq!(s.goals.smoothness_switches, [0, 2]);
        assert_eq!(s.goals.stall_controls, [0, 0]);
        assert!(s.stall_control_ms.is_none());
    }
}
