//! The progress of a whole experiment on stderr: `testbed migrate`'s bar
//! (indicatif when stderr is a terminal, plain lines otherwise) over every
//! migration of every run; and the observer each run reports to.

use std::path::PathBuf;
use std::time::Instant;

use super::sampler::Sampler;
use crate::bed;
use crate::migrate::progress::Bar;
use crate::migrate::Observer;

/// The bar over the whole experiment.
pub struct Progress {
    bar: Bar,
    done: u64,
}

impl Progress {
    /// A bar of `total` migrations.
    pub fn new(total: u64) -> Progress {
        let mut bar = Bar::new();
        bar.begin(total);
        Progress { bar, done: 0 }
    }

    /// A line above the bar.
    pub fn line(&mut self, s: &str) {
        self.bar.line(s);
    }

    /// What is going on now.
    pub fn status(&mut self, s: &str) {
        self.bar.status(s);
    }

    /// `done` migrations of the experiment are over; `msg` says how the
    /// last went.
    pub fn step(&mut self, done: u64, msg: &str) {
        self.done = done;
        self.bar.step(done, msg);
    }

    /// Migrations over so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        self.bar.finish();
    }
}

/// The observer of one `testbed migrate` run inside an experiment: its
/// steps move the whole bar; once its testbed is up it starts the sampler.
pub struct RunObs<'a> {
    pub progress: &'a mut Progress,
    /// The bar's position when the run began.
    pub base: u64,
    pub label: String,
    pub state_dir: Option<PathBuf>,
    /// The run's own folder (to find its testbed among those up).
    pub run_dir: PathBuf,
    /// Whether the sampler polls the UE's displayed-frame count.
    pub frames: bool,
    /// Whether the sampler follows the edges' CPU, memory and traffic.
    pub edges: bool,
    pub sampler: Option<Sampler>,
    pub started: Instant,
    /// Seconds from the run's start until its testbed was up.
    pub bring_up_s: Option<f64>,
}

impl RunObs<'_> {
    fn testbed_up(&mut self) {
        self.bring_up_s = Some(self.started.elapsed().as_secs_f64());
        let want = self.run_dir.canonicalize().unwrap_or(self.run_dir.clone());
        let found = bed::load_all(self.state_dir.as_deref())
            .ok()
            .and_then(|all| all.into_iter().find(|s| s.run_dir == want));
        match found {
            Some(st) => self.sampler = Some(Sampler::start(&st, self.frames, self.edges)),
            None => self.progress.line(&format!(
                "[{}] the testbed's state was not found: nothing sampled",
                self.label
            )),
        }
    }
}

impl Observer for RunObs<'_> {
    fn line(&mut self, s: &str) {
        if s.starts_with("testbed `") && s.contains(" is up ") {
            self.testbed_up();
        }
        self.progress.line(&format!("[{}] {s}", self.label));
    }

    fn step(&mut self, done: u64, msg: &str) {
        self.progress
            .step(self.base + done, &format!("[{}] {msg}", self.label));
    }

    fn status(&mut self, msg: &str) {
        self.progress.status(&format!("{}: {msg}", self.label));
    }
}
