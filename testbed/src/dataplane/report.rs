//! The report of `testbed bench dataplane`: medians and spread of each
//! test on each path, the ratios, the round trips, and how it is printed
//! (terminal table, Markdown, JSON).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bench::Dist;

/// The three paths, in the order of the table's columns.
pub const PATHS: [Path; 3] = [Path::Kernel, Path::KernelTunnel, Path::Tunnel];

/// One of the three paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// (b) the kernel routes plain IP.
    Kernel,
    /// (c) a kernel VXLAN tunnel on N3.
    KernelTunnel,
    /// (a) GTP-U through `gnb` and `upf`.
    Tunnel,
}

impl Path {
    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            Path::Kernel => "kernel (b)",
            Path::KernelTunnel => "kernel VXLAN (c)",
            Path::Tunnel => "gnb+upf GTP-U (a)",
        }
    }
}

/// Median and range of a test's repeats on one path.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cell {
    /// Median.
    pub median: f64,
    /// Smallest repeat.
    pub min: f64,
    /// Largest repeat.
    pub max: f64,
    /// Every repeat.
    pub samples: Vec<f64>,
}

impl Cell {
    /// From the repeats (`None` without any).
    pub fn of(samples: &[f64]) -> Option<Cell> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Cell {
            median,
            min: v[0],
            max: v[n - 1],
            samples: samples.to_vec(),
        })
    }
    /// Spread as +-% of the median (half the range).
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            return 0.0;
        }
        (self.max - self.min) / 2.0 / self.median * 100.0
    }
}

/// A row of the table (the JSON's `rows`).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `tcp-1-up` ...
    pub test: String,
    /// `Gbit/s` or `kpps`.
    pub unit: &'static str,
    /// Median on (b).
    pub kernel: f64,
    /// Median on (c).
    pub kernel_tunnel: f64,
    /// Median on (a).
    pub tunnel: f64,
    /// (a)/(b).
    pub ratio: f64,
    /// (a)/(c).
    pub ratio_kernel_tunnel: f64,
    /// Median, range and repeats per path.
    pub spread: BTreeMap<Path, Cell>,
}

impl Row {
    /// From each path's repeats.
    pub fn new(test: &str, unit: &'static str, by_path: &BTreeMap<Path, Vec<f64>>) -> Row {
        let spread: BTreeMap<Path, Cell> = by_path
            .iter()
            .filter_map(|(p, v)| Some((*p, Cell::of(v)?)))
            .collect();
        let m = |p: Path| spread.get(&p).map_or(0.0, |c| c.median);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Row {
            test: test.to_string(),
            unit,
            kernel: m(Path::Kernel),
            kernel_tunnel: m(Path::KernelTunnel),
            tunnel: m(Path::Tunnel),
            ratio: ratio(m(Path::Tunnel), m(Path::Kernel)),
            ratio_kernel_tunnel: ratio(m(Path::Tunnel), m(Path::KernelTunnel)),
            spread,
        }
    }
}

/// Round trip p50 and p99, microseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Rtt {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Rtt {
    /// From a distribution.
    pub fn of(d: &Dist) -> Rtt {
        Rtt {
            p50: d.p50_us,
            p99: d.p99_us,
        }
    }
}

/// CPU a daemon used at idle.
#[derive(Clone, Debug, Serialize)]
pub struct IdleCpu {
    /// Daemon name.
    pub daemon: String,
    /// pid.
    pub pid: i32,
    /// Percent of one core.
    pub percent: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct DataplaneReport {
    /// One row per test.
    pub rows: Vec<Row>,
    /// Byte-exact transfers on every path, before the measurements.
    pub exact: Vec<super::exact::Check>,
    /// RTT of (a) minus RTT of (b), microseconds.
    pub added_rtt_us: Rtt,
    /// RTT per path under light load (probes pooled over the repeats).
    pub rtt_us: BTreeMap<Path, Rtt>,
    /// Probes answered per path.
    pub rtt_probes: BTreeMap<Path, usize>,
    /// `gnb` and `upf` together, percent of one core, at idle.
    pub idle_cpu_percent: f64,
    /// Each of them.
    pub idle_cpu: Vec<IdleCpu>,
    /// Seconds the idle CPU was read over.
    pub idle_seconds: f64,
    /// Repeats.
    pub repeats: usize,
    /// Quick mode.
    pub quick: bool,
    /// Who carried what: UE, gNB, UPF, edge, addresses.
    pub setup: BTreeMap<String, String>,
    /// Said when the kernel path shows the generator may be the limit.
    pub generator_note: Option<String>,
    /// Path (a) again with many sessions installed (`--sessions N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub many_sessions: Option<super::many::ManySessions>,
    /// CPU (percent of one core, median over the repeats) that each of
    /// `gnb` and `upf` used during each test on path (a); for UDP, over
    /// the whole rate search.
    pub busy_cpu_percent: BTreeMap<String, BTreeMap<String, f64>>,
    /// The busiest data-path worker's share of the packets each of `gnb`
    /// and `upf` took in during each test on path (a), per repeat (1.0:
    /// one worker carried it all; 1/N: even over N workers).
    pub busiest_worker_share: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    /// The kernel's drop counters (`node/udp RcvbufErrors`, `node/IFACE
    /// tx_dropped`, ...) that grew during each UDP test's rate searches,
    /// per path, summed over the repeats: where the path gave way when
    /// the search overloaded it.
    pub udp_drops: BTreeMap<String, BTreeMap<Path, BTreeMap<String, u64>>>,
    /// Wall seconds each test took, summed over paths and repeats
    /// (`rtt`: the round trips).
    pub test_seconds: BTreeMap<String, f64>,
    /// Wall time of the measurements (without bring-up), seconds.
    pub measure_seconds: f64,
    /// Run folder.
    pub run_dir: String,
}

/// The kernel path's floor below which the generator may be the limit.
pub const GEN_TCP_GBIT: f64 = 10.0;
/// Same, 64-byte UDP.
pub const GEN_UDP64_KPPS: f64 = 350.0;

/// A note when path (b) shows less than the generator should reach.
pub fn generator_note(rows: &[Row]) -> Option<String> {
    let best = |prefix: &str| {
        rows.iter()
            .filter(|r| r.test.starts_with(prefix))
            .map(|r| r.kernel)
            .fold(0.0, f64::max)
    };
    let (tcp, udp) = (best("tcp-"), best("udp-64-"));
    let mut why = Vec::new();
    if tcp < GEN_TCP_GBIT {
        why.push(format!("TCP {tcp:.1} Gbit/s < {GEN_TCP_GBIT} Gbit/s"));
    }
    if udp < GEN_UDP64_KPPS {
        why.push(format!("64-B UDP {udp:.0} kpps < {GEN_UDP64_KPPS} kpps"));
    }
    (!why.is_empty()).then(|| {
        format!(
            "the kernel path (b) shows {}: the generator (or the load on this machine) may be the bottleneck",
            why.join(", ")
        )
    })
}

fn fmt_cell(c: Option<&Cell>) -> String {
    match c {
        Some(c) if c.samples.len() > 1 => format!("{:.2} ±{:.0}%", c.median, c.spread_pct()),
        Some(c) => format!("{:.2}", c.median),
        None => "-".into(),
    }
}

/// "Byte-exact: ..." per path, naming what failed.
fn exact_line(checks: &[super::exact::Check]) -> String {
    let mut s = String::from("\nByte-exact transfers before measuring (TCP 1 B to 8 MiB both ways, k*MSS and k*MSS+7; UDP echo 1-1400 B; UDP GSO both ways; receivers' checksum counters):");
    for p in PATHS {
        let of: Vec<_> = checks.iter().filter(|c| c.path == p).collect();
        let bad: Vec<&str> = of
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.test.as_str())
            .collect();
        s.push_str(&format!(
            " {} {}/{}",
            p.title(),
            of.len() - bad.len(),
            of.len()
        ));
        if !bad.is_empty() {
            s.push_str(&format!(" (FAILED: {})", bad.join(", ")));
        }
        s.push(';');
    }
    s.pop();
    s.push_str(".\n");
    s
}

/// The table as Markdown (also what the terminal shows).
pub fn markdown(r: &DataplaneReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "| test | unit | {} | {} | {} | (a)/(b) | (a)/(c) |\n|---|---|---:|---:|---:|---:|---:|\n",
        PATHS[0].title(),
        PATHS[1].title(),
        PATHS[2].title()
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} |\n",
            row.test,
            row.unit,
            fmt_cell(row.spread.get(&Path::Kernel)),
            fmt_cell(row.spread.get(&Path::KernelTunnel)),
            fmt_cell(row.spread.get(&Path::Tunnel)),
            row.ratio,
            row.ratio_kernel_tunnel
        ));
    }
    type Pick = fn(&Rtt) -> f64;
    let quantiles: [(&str, Pick); 2] = [("p50", |x| x.p50), ("p99", |x| x.p99)];
    for (q, f) in quantiles {
        let v = |p: Path| {
            r.rtt_us
                .get(&p)
                .map_or("-".into(), |x| format!("{:.0}", f(x)))
        };
        s.push_str(&format!(
            "| rtt-{q} | µs | {} | {} | {} | +{:.0} µs | |\n",
            v(Path::Kernel),
            v(Path::KernelTunnel),
            v(Path::Tunnel),
            f(&r.added_rtt_us)
        ));
    }
    s.push_str(&exact_line(&r.exact));
    s.push_str(&format!(
        "\nMedian of {} repeat(s), ± half the range. UDP: the highest rate with under 0.1% loss \
         (64- or 1400-byte payloads, sendmmsg batches). RTT: 64-byte UDP ping-pong, one probe \
         in flight, probes pooled over the repeats. Idle CPU of gnb+upf: {:.2}% of a core \
         over {:.0} s ({}).\n",
        r.repeats,
        r.idle_cpu_percent,
        r.idle_seconds,
        r.idle_cpu
            .iter()
            .map(|d| format!("{} {:.2}%", d.daemon, d.percent))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !r.busy_cpu_percent.is_empty() {
        s.push_str("\nCPU of the daemons during each test on path (a), percent of one core (UDP: over the rate search):\n\n| test | ");
        let names: Vec<&String> = r
            .busy_cpu_percent
            .values()
            .next()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        s.push_str(
            &names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
        );
        s.push_str(" |\n|---|");
        s.push_str(&"---:|".repeat(names.len()));
        s.push('\n');
        for row in &r.rows {
            if let Some(m) = r.busy_cpu_percent.get(&row.test) {
                let cells: Vec<String> = names
                    .iter()
                    .map(|n| m.get(*n).map_or("-".into(), |v| format!("{v:.0}%")))
                    .collect();
                s.push_str(&format!("| {} | {} |\n", row.test, cells.join(" | ")));
            }
        }
    }
    if !r.busiest_worker_share.is_empty() {
        s.push_str(
            "\nThe busiest data-path worker's share of what each daemon took in during each test on \
             path (a), per repeat (100%: one worker carried it all; a test of few flows lands on \
             one worker or several as the kernel hashes them to TUN queues):\n\n\
             | test | daemon | share per repeat |\n|---|---|---|\n",
        );
        for row in &r.rows {
            for (daemon, v) in r.busiest_worker_share.get(&row.test).into_iter().flatten() {
                s.push_str(&format!("| {} | {daemon} | {} |\n", row.test, percents(v)));
            }
        }
    }
    if !r.udp_drops.is_empty() {
        s.push_str(
            "\nKernel drop counters that grew during the UDP rate searches (all trials, the unpaced \
             first one included: where each path gives way when overloaded), summed over the repeats:\n\n\
             | test | path | counters |\n|---|---|---|\n",
        );
        for (test, paths) in &r.udp_drops {
            for (path, c) in paths {
                let list = if c.is_empty() {
                    "none".to_string()
                } else {
                    c.iter()
                        .map(|(k, v)| format!("{k} +{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                s.push_str(&format!("| {test} | {} | {list} |\n", path.title()));
            }
        }
    }
    if let Some(m) = &r.many_sessions {
        s.push_str(&format!(
            "\nPath (a) with {} sessions installed on its gNB and UPF (the UPF reported {}; \
             the SMF set up the extra ones in {:.1} s) and with them released, alternating \
             within each of {} repeat(s): medians, the median of the repeats' ratios and each \
             repeat's, and the busiest worker's share per repeat in each state (shares that \
             differ: the flows spread otherwise over the workers, which moves a figure too):\n\n\
             | test | unit | 1 session | {} sessions | ratio | ratio per repeat | busiest worker, 1 session | busiest worker, {} sessions |\n\
             |---|---|---:|---:|---:|---|---|---|\n",
            m.installed, m.upf_sessions, m.setup_seconds, r.repeats, m.installed, m.installed
        ));
        let by_daemon = |m: Option<&BTreeMap<String, Vec<f64>>>| {
            let cells: Vec<String> = m
                .into_iter()
                .flatten()
                .map(|(daemon, v)| format!("{daemon} {}", percents(v)))
                .collect();
            if cells.is_empty() {
                "-".to_string()
            } else {
                cells.join("; ")
            }
        };
        for row in &m.rows {
            s.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} |\n",
                row.test,
                row.unit,
                row.one,
                row.many,
                row.ratio,
                row.ratios
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                by_daemon(Some(&row.busiest_worker_share_one)),
                by_daemon(Some(&row.busiest_worker_share)),
            ));
        }
    }
    if let Some(n) = &r.generator_note {
        s.push_str(&format!("\nNote: {n}.\n"));
    }
    s
}

/// Shares as whole percents, comma-separated.
fn percents(v: &[f64]) -> String {
    let list: Vec<String> = v.iter().map(|x| format!("{:.0}%", x * 100.0)).collect();
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_median_and_spread() {
        let c = Cell::of(&[3.0, 1.0, 2.0, 10.0]).expect("cell");
        assert_eq!((c.median, c.min, c.max), (2.5, 1.0, 10.0));
        assert!((c.spread_pct() - 180.0).abs() < 1e-9);
        assert_eq!(Cell::of(&[]), None);
    }

    #[test]
    fn row_ratios_and_generator_note() {
        let by: BTreeMap<Path, Vec<f64>> = [
            (Path::Kernel, vec![12.0]),
            (Path::KernelTunnel, vec![6.0]),
            (Path::Tunnel, vec![3.0]),
        ]
        .into();
        let r = Row::new("tcp-1-up", "Gbit/s", &by);
        assert_eq!((r.ratio, r.ratio_kernel_tunnel), (0.25, 0.5));
        let note = generator_note(&[r]).expect("no UDP row: note");
        assert!(note.contains("64-B UDP 0 kpps"), "{note}");
        assert!(!note.contains("TCP"), "{note}");
    }
}
