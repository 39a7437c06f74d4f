//! `all`: every experiment in one run folder and one report. Each
//! experiment's configurations run under its name (`bandwidth.csm-snake`,
//! ...) and record into its own CSV files; the report has every section.
//! `data` is not run on its own: Table IV comes from the `bandwidth` runs.
//! Besides the snake at every bandwidth, Minetest runs at 200 and 1000
//! Mbit/s in the first repetition only.

use std::path::Path;

use super::bandwidth::{self, Bandwidth};
use super::overhead::Overhead;
use super::pingpong::Pingpong;
use super::report::Section;
use super::smoothness::Smoothness;
use super::ssim_threshold::SsimThreshold;
use super::{Config, ExpError, Experiment, Name, RunOut};

pub struct All;

/// The experiments `all` runs, in order.
fn parts() -> [Box<dyn Experiment>; 5] {
    [
        Box::new(Bandwidth),
        Box::new(Overhead),
        Box::new(SsimThreshold),
        Box::new(Smoothness),
        Box::new(Pingpong),
    ]
}

/// The part a configuration label belongs to, and its label there.
fn split(label: &str) -> Option<(Box<dyn Experiment>, &str)> {
    let (name, rest) = label.split_once('.')?;
    parts()
        .into_iter()
        .find(|p| p.name().as_str() == name)
        .map(|p| (p, rest))
}

impl Experiment for All {
    fn name(&self) -> Name {
        Name::All
    }

    fn configs(&self, quick: bool) -> Vec<Config> {
        let mut out = Vec::new();
        for p in parts() {
            let mut cs = p.configs(quick);
            if p.name() == Name::Bandwidth {
                let mut m = bandwidth::configs(quick, "minetest", &bandwidth::QUICK_BANDWIDTHS);
                for c in &mut m {
                    c.once = true;
                }
                cs.extend(m);
            }
            for c in cs {
                out.push(Config {
                    label: format!("{}.{}", p.name().as_str(), c.label),
                    ..c
                });
            }
        }
        out
    }

    fn record(&self, dir: &Path, cfg: &Config, out: &RunOut) -> Result<(), ExpError> {
        let Some((p, label)) = split(&cfg.label) else {
            return Ok(());
        };
        let cfg = Config {
            label: label.to_string(),
            ..cfg.clone()
        };
        p.record(dir, &cfg, out)
    }

    fn sections(&self, dir: &Path) -> Result<Vec<Section>, ExpError> {
        let mut out: Vec<Section> = Vec::new();
        for p in parts() {
            // One part without data (its runs all failed) leaves a note,
            // not a missing report.
            match p.sections(dir) {
                Ok(s) => out.extend(s),
                Err(e) => out.push(Section {
                    heading: format!("## {} (no data)", p.name().as_str()),
                    body: format!("Its section could not be written: {e}\n"),
                    images: Vec::new(),
                }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_in_and_minetest_runs_once() {
        let c = All.configs(true);
        for p in parts() {
            let n = p.name().as_str();
            assert!(
                c.iter().any(|c| c.label.starts_with(&format!("{n}."))),
                "{n}"
            );
        }
        let m: Vec<_> = c.iter().filter(|c| c.label.contains("minetest")).collect();
        assert!(m.len() >= 3 && m.iter().all(|c| c.once));
        for c in &c {
            assert!(split(&c.label).is_some(), "{}", c.label);
            c.opts().expect("flags parse");
        }
    }
}
