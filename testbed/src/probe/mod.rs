//! `testbed probe` (issue 13 item 8): a black-box check of the trust
//! boundaries of DESIGN.md section 3, from where an attacker would stand.
//!
//! On the default testbed (brought up for the run, or the one that is up
//! with `--running`), the first UE gets a PDU session, then:
//!
//! - (a) [`scan`]: from the UE's namespace, a TCP and UDP port scan of every
//!   core address (SMF, gNB, UPFs, agents, cloud: their cp, N3, N6, WAN and
//!   inter-edge addresses) and of the control ports on the edges' N6
//!   addresses, once through the session and once on the radio link; the
//!   echo on the edge's N6 (the data network) and the gNB's N1 relay on the
//!   radio link must answer, as positive controls;
//! - (b) [`pfcp`]: PFCP from the wrong address (Association Release with
//!   the SMF's Node ID, Session Deletion of the UE's session, an
//!   Association Release to the SMF with a UPF's Node ID) from the UE's
//!   session address, its radio address and a rogue host on the cp switch;
//!   the associations and sessions must stay as they were;
//! - (c) [`spoof`]: another UE's address as source on the radio link, and
//!   a G-PDU with another UE's uplink TEID through the session, on the radio
//!   link and from the rogue on N3: nothing may arrive at the edge from the
//!   other UE's address;
//! - (d) [`flood`]: from a rogue host attached to the cp and n3 switches
//!   ([`net::Rogue`]), malformed datagrams to the UPFs' N3 and N4, the
//!   SMF's N4 and the gNB's N3: no daemon dies, each writes fewer than 100
//!   log lines and grows by less than 10 MB, and the session still forwards.
//!
//! One [`Check`] per property, PASS or FAIL with the measured figure.
//! Everything the probe adds (routes, addresses, the rogue namespace, the
//! other UE's session) is removed by guards, also when a step fails.

use std::time::Duration;

use serde::Serialize;

use crate::bed::{self, BedArgs, BedError, BedState, UpOpts};

pub mod flood;
pub mod net;
pub mod pfcp;
pub mod scan;
pub mod spoof;

/// `testbed probe`'s options (besides the global --state-dir and --bin-dir).
#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub bed: BedArgs,
    /// Probe the testbed that is up (`testbed up`) instead of bringing one
    /// up; it stays up.
    #[arg(long, conflicts_with_all = ["topology", "run_dir", "prefix", "keep"])]
    pub running: bool,
    /// Leave the testbed up afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Malformed datagrams of the flood, in all.
    #[arg(long, default_value_t = 100_000)]
    pub datagrams: u64,
    /// The flood's rate, datagrams per second (at most).
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// For CI: 10,000 datagrams and fewer ports scanned.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One property and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`ports-via-session`...).
    pub property: String,
    /// Whether it holds.
    pub pass: bool,
    /// `PASS` or `FAIL`.
    pub verdict: &'static str,
    /// The measured figure, for people.
    pub figure: String,
    /// What was found (the reachable ports, the counters...).
    pub details: serde_json::Value,
}

impl Check {
    /// A check of `property` that holds when `pass`.
    pub fn new(property: &str, pass: bool, figure: String, details: serde_json::Value) -> Check {
        Check {
            property: property.to_string(),
            pass,
            verdict: if pass { "PASS" } else { "FAIL" },
            figure,
            details,
        }
    }
}

/// What `testbed probe` found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The run folder of the testbed probed.
    pub run_dir: String,
    /// The UE the probes came from.
    pub ue: String,
    /// Its session address.
    pub session_addr: String,
    /// One line per property.
    pub checks: Vec<Check>,
    /// Whether the testbed was left up.
    pub kept: bool,
}

impl ProbeReport {
    /// The properties that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.property.as_str())
            .collect()
    }
}

/// How much the run does.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Fewer ports scanned.
    pub quick: bool,
    /// Flood size.
    pub datagrams: u64,
    /// Flood rate, per second.
    pub rate: u64,
}

impl Effort {
    /// From the options.
    pub fn of(a: &ProbeArgs) -> Result<Effort, BedError> {
        let datagrams = if a.quick { 10_000 } else { a.datagrams };
        if !(1..=10_000_000).contains(&datagrams) {
            return Err(BedError::Usage(format!(
                "--datagrams {datagrams}: must be 1 to 10,000,000"
            )));
        }
        if !(100..=1_000_000).contains(&a.rate) {
            return Err(BedError::Usage(format!(
                "--rate {}: must be 100 to 1,000,000 datagrams per second",
                a.rate
            )));
        }
        Ok(Effort {
            quick: a.quick,
            datagrams,
            rate: a.rate,
        })
    }
}

/// Brings the testbed up (or takes the running one), probes, and takes it
/// down again unless kept or it was running before.
pub fn run(
    a: &ProbeArgs,
    dirs: &UpOpts,
    on_progress: &mut dyn FnMut(&str),
) -> Result<ProbeReport, BedError> {
    let effort = Effort::of(a)?;
    if a.running {
        let st = bed::load_one(dirs.state_dir.as_deref())?;
        let mut r = probe(&st, &effort, on_progress)?;
        r.kept = true;
        return Ok(r);
    }
    let opts = a.bed.up_opts(dirs);
    let (mut r, kept) =
        bed::up_run_down(&opts, a.keep, on_progress, |st, p| probe(st, &effort, p))?;
    r.kept = kept;
    Ok(r)
}

/// The probes on a testbed that is up.
fn probe(
    st: &BedState,
    effort: &Effort,
    on_progress: &mut dyn FnMut(&str),
) -> Result<ProbeReport, BedError> {
    let ctx = net::Ctx::new(st)?;
    let session = net::Session::add(&ctx)?;
    on_progress(&format!(
        "{}: session {} via {} ({})",
        ctx.ue.name, session.addr, ctx.upf.name, ctx.upf.edge
    ));
    let echo = net::Echo::start(&ctx)?;
    let radio = net::RadioRoute::add(&ctx)?;
    let mut checks = Vec::new();

    on_progress("(a) port scan of the core from the UE: through the session and on the radio link");
    checks.extend(scan::run(&ctx, &session, &echo, effort)?);

    on_progress("(b) PFCP from the wrong address");
    let rogue = net::Rogue::attach(&ctx)?;
    checks.push(pfcp::run(&ctx, &session, &rogue)?);

    on_progress("(c) another UE's address and uplink TEID");
    checks.extend(spoof::run(&ctx, &session, &rogue, &echo)?);

    on_progress(&format!(
        "(d) {} malformed datagrams at up to {}/s to the UPFs' N3 and N4, the SMF's N4 and the gNB's N3",
        effort.datagrams, effort.rate
    ));
    checks.extend(flood::run(&ctx, &session, &rogue, &echo, effort)?);

    drop(rogue);
    drop(radio);
    drop(echo);
    let addr = session.addr;
    session.release()?;
    Ok(ProbeReport {
        run_dir: st.run_dir.display().to_string(),
        ue: ctx.ue.name.clone(),
        session_addr: addr.to_string(),
        checks,
        kept: false,
    })
}

/// The report for people: one line per property.
pub fn print_human(r: &ProbeReport) {
    println!(
        "\ntestbed probe: {} with session {} (run folder {})",
        r.ue, r.session_addr, r.run_dir
    );
    let w = r.checks.iter().map(|c| c.property.len()).max().unwrap_or(0);
    for c in &r.checks {
        println!("  {:<w$}  {}  {}", c.property, c.verdict, c.figure);
    }
    let failed = r.failed();
    if failed.is_empty() {
        println!("every property holds");
    } else {
        println!("{} of {} properties FAIL", failed.len(), r.checks.len());
    }
}

/// Polls `f` every 20 ms until it gives a value or `timeout` passes.
pub(crate) fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
