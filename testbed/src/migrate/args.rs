//! `testbed migrate`'s command line, and the checks that turn it into
//! [`MigrateOpts`]: every bad value is refused with the option's name.

use std::path::PathBuf;
use std::time::Duration;

use super::{Gaps, LatencyOpts, MigrateOpts, Trigger};
use crate::bed::BedError;

/// `testbed migrate` (`testbed migrate --help` shows these texts).
#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    /// Topology file (default: the paper topology).
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Run folder for configs/, logs/, migrations.json and migrations.csv
    /// (default ./results/run-<UTC time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Prefix of every namespace name.
    #[arg(long)]
    pub prefix: Option<String>,
    /// One-way migrations to make: edge1 -> edge2 -> edge1 ...
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// The delayed release: how long the source stays copilot after a
    /// switch (the SMF's countdown). A migration back within it is only a
    /// stream switch.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub countdown: Duration,
    /// Time from the end of one migration to the next request (with the
    /// latency trigger: to raising the delay): a duration, or a
    /// comma-separated list used in turn (`15s,5s`). A gap at least the
    /// countdown also waits for the source's release. `auto`: alternately
    /// longer than the countdown (1.5 x countdown + 1 s: the next migration
    /// is full) and shorter (countdown / 2, less --latency-for with the
    /// latency trigger: switch-only), longer first; with the first
    /// migration full, more than half are full.
    #[arg(long, default_value = "auto", value_parser = parse_gaps)]
    pub gap: Gaps,
    /// What starts a migration: `command` (the testbed asks the UE's API,
    /// `POST /migrate`) or `latency` (the testbed raises the delay of the
    /// serving edge's N6 link, and the UE's agent asks by itself).
    #[arg(long, value_enum, default_value_t = Trigger::Command)]
    pub trigger: Trigger,
    /// Latency trigger: the latency to the serving edge above which the
    /// UE's agent asks for a migration.
    #[arg(long, default_value = "30ms", value_parser = parse_duration)]
    pub latency_threshold: Duration,
    /// Latency trigger: how long the latency must stay above the threshold.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub latency_for: Duration,
    /// Latency trigger: one-way delay added to the serving edge's N6 link
    /// (each direction; default twice the threshold).
    #[arg(long, value_parser = parse_duration)]
    pub latency_delay: Option<Duration>,
    /// Whether the destination's repository has the application before
    /// each full migration: `true` (pulled beforehand) or `false` (removed
    /// beforehand: the migration pulls it from the cloud).
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    pub warm: bool,
    /// The scene the instances render (`textured`, `snake`, `static`):
    /// SSIM is only meaningful on a textured, moving scene.
    #[arg(long, default_value = "textured")]
    pub scene: String,
    /// Frame width.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame height.
    #[arg(long, default_value_t = 360)]
    pub height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 60)]
    pub fps: u32,
    /// Encoder bitrate in bit/s (default: the agent's).
    #[arg(long)]
    pub bitrate: Option<u32>,
    /// Inputs per second of the UE's bot.
    #[arg(long, default_value_t = 10.0)]
    pub input_rate: f64,
    /// Write the displayed video to this file (Y4M).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Longest wait for one migration to end (default: the SMF's setup and
    /// switch timeouts plus 10 s).
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// Leave the testbed up afterwards (`testbed status`, `testbed down`).
    #[arg(long)]
    pub keep: bool,
    /// Print the report as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `10s`, `1.5s`, `500ms`, `250us`, `2m`; `0` alone.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("`{s}`: want a duration such as 10s, 1.5s or 500ms");
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && secs <= 86_400.0) {
        return Err(format!("`{s}`: at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `auto`, or durations separated by commas.
pub fn parse_gaps(s: &str) -> Result<Gaps, String> {
    if s.trim() == "auto" {
        return Ok(Gaps::Auto);
    }
    let v = s
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Gaps::List(v))
}

fn usage(msg: String) -> BedError {
    BedError::Usage(msg)
}

impl MigrateArgs {
    /// The options, checked; errors name the option.
    pub fn opts(&self) -> Result<MigrateOpts, BedError> {
        if !(1..=10_000).contains(&self.count) {
            return Err(usage(format!("--count {}: must be 1 to 10000", self.count)));
        }
        if self.countdown.is_zero() {
            return Err(usage(
                "--countdown 0: must be more than 0 (the source is kept as copilot that long)"
                    .into(),
            ));
        }
        if !(1..=240).contains(&self.fps) {
            return Err(usage(format!("--fps {}: must be 1 to 240", self.fps)));
        }
        for (name, v) in [("--width", self.width), ("--height", self.height)] {
            if v < 16 || v % 2 != 0 || v > 7680 {
                return Err(usage(format!("{name} {v}: must be even, 16 to 7680")));
            }
        }
        if !(self.input_rate > 0.0 && self.input_rate <= 1000.0) {
            return Err(usage(format!(
                "--input-rate {}: must be more than 0 and at most 1000",
                self.input_rate
            )));
        }
        if self.scene.is_empty()
            || !self
                .scene
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(usage(format!(
                "--scene `{}`: must be a scene name such as textured, snake or static",
                self.scene
            )));
        }
        if self.latency_threshold.is_zero() {
            return Err(usage("--latency-threshold 0: must be more than 0".into()));
        }
        if self
            .latency_delay
            .is_some_and(|d| d <= self.latency_threshold / 2)
        {
            return Err(usage(format!(
                "--latency-delay {:?}: must be more than half the threshold ({:?}) to cross it",
                self.latency_delay.unwrap_or_default(),
                self.latency_threshold
            )));
        }
        if let Gaps::List(v) = &self.gap {
            if v.is_empty() {
                return Err(usage("--gap: give at least one duration, or `auto`".into()));
            }
        }
        if self.deadline.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(usage("--deadline: must be at least 1s".into()));
        }
        let video = match &self.video {
            Some(v) => Some(
                std::path::absolute(v)
                    .map_err(|e| usage(format!("--video {}: {e}", v.display())))?,
            ),
            None => None,
        };
        Ok(MigrateOpts {
            count: self.count,
            countdown: self.countdown,
            gaps: self.gap.clone(),
            trigger: self.trigger,
            latency: LatencyOpts {
                threshold: self.latency_threshold,
                hold: self.latency_for,
                delay: self.latency_delay.unwrap_or(self.latency_threshold * 2),
            },
            warm: self.warm,
            scene: self.scene.clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate: self.bitrate,
            input_rate: self.input_rate,
            video,
            deadline: self.deadline,
            cancel: None,
        })
    }
}

#[cfg(test)]
impl MigrateArgs {
    /// The options with every default.
    pub(crate) fn default_opts() -> MigrateOpts {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: MigrateArgs,
        }
        #[allow(clippy::expect_used)]
        Cli::parse_from(["migrate"])
            .a
            .opts()
            .expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: MigrateArgs,
    }

    fn parse(args: &[&str]) -> Result<MigrateArgs, String> {
        Cli::try_parse_from(std::iter::once("migrate").chain(args.iter().copied()))
            .map(|c| c.a)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten s").is_err());
        assert!(parse_duration("5h").is_err());
        assert_eq!(
            parse_gaps("15s,5s"),
            Ok(Gaps::List(vec![
                Duration::from_secs(15),
                Duration::from_secs(5)
            ]))
        );
        assert_eq!(parse_gaps("auto"), Ok(Gaps::Auto));
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("defaults parse");
        let o = a.opts().expect("defaults are valid");
        assert_eq!(o.count, 10);
        assert_eq!(o.countdown, Duration::from_secs(10));
        assert_eq!(o.gaps, Gaps::Auto);
        assert_eq!(o.trigger, Trigger::Command);
        assert!(o.warm);
        assert_eq!(o.scene, "textured");
        assert_eq!(o.latency.delay, Duration::from_millis(60));
    }

    #[test]
    fn bad_values_name_their_option() {
        for (args, option) in [
            (&["--countdown", "soon"][..], "--countdown"),
            (&["--gap", "1s,x"][..], "--gap"),
            (&["--warm", "maybe"][..], "--warm"),
            (&["--trigger", "psychic"][..], "--trigger"),
            (&["--count", "many"][..], "--count"),
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert!(e.contains(option), "{args:?}: {e}");
        }
        for (args, option) in [
            (&["--count", "0"][..], "--count"),
            (&["--countdown", "0"][..], "--countdown"),
            (&["--width", "641"][..], "--width"),
            (&["--fps", "0"][..], "--fps"),
            (&["--scene", "a b"][..], "--scene"),
            (&["--latency-delay", "5ms"][..], "--latency-delay"),
            (&["--input-rate", "0"][..], "--input-rate"),
        ] {
            let a = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let e = a
                .opts()
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(e.to_string().starts_with(option), "{args:?}: {e}");
        }
        let a = parse(&["--warm", "false", "--gap", "2s", "--countdown", "1s"]).expect("parse");
        let o = a.opts().expect("valid");
        assert!(!o.warm);
        assert_eq!(o.gaps, Gaps::List(vec![Duration::from_secs(2)]));
    }
}
