//! `testbed migrate`'s command line, and the checks that turn it into
//! [`MigrateOpts`]: every bad value is refused with the option's name.

use std::path::PathBuf;
use std::time::Duration;

use super::api::SelectorSettings;
use super::{Gaps, LatencyOpts, Method, MigrateOpts, Trigger};
use crate::bed::{BedArgs, BedError};

/// `testbed migrate` (`testbed migrate --help` shows these texts).
#[derive(clap::Args, Debug, Clone)]
#[command(mut_arg("run_dir", |a| a.help(
    "Run folder for configs/, logs/, migrations.json, migrations.csv and display.jsonl \
     (default ./results/run-<UTC time>)"
)))]
pub struct MigrateArgs {
    #[command(flatten)]
    pub bed: BedArgs,
    /// One-way migrations to make: edge1 -> edge2 -> edge1 ...
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// How the service moves: `csm`, or a state-copy baseline run by the
    /// edge agents over the inter-edge link (`stop-and-copy`, `pre-copy`:
    /// models of VM/container live migration with the paper's sizes, real
    /// bytes over the shaped link; the UE follows the destination's stream
    /// over a second session set up beforehand).
    #[arg(long, value_enum, default_value_t = Method::Csm)]
    pub method: Method,
    /// State copy: the calibrated workload, `snake` (about 1.5 GB moved by
    /// pre-copy at 1000 Mbit/s) or `minetest` (about 6.2 GB).
    #[arg(long, default_value = "snake")]
    pub preset: String,
    /// State copy: shrinks the image, set-up and stop threshold (0 < s <= 1;
    /// the dirty rate stays) for short runs.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Rate of the inter-edge and WAN links in Mbit/s, set with tc before
    /// each migration: one value, or a comma-separated list used in turn
    /// (`200,1000`); default: the topology's.
    #[arg(long, value_delimiter = ',')]
    pub bandwidth: Vec<u32>,
    /// The delayed release: how long the source stays copilot after a
    /// switch (the SMF's countdown). A migration back within it is only a
    /// stream switch. `0`: no delayed release, the source is released
    /// right after the switch (every migration is full).
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
    /// The stream selector's SSIM threshold of the switch (0 to 1).
    #[arg(long, default_value_t = 0.85)]
    pub ssim_threshold: f64,
    /// The selector's frame slide after the switch decision (N frames of
    /// this length at --fps; at least one frame).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub blend: Duration,
    /// The selector gives a migration up (the source untouched) when no
    /// frame pair was similar enough this long after the destination's
    /// stream was ready.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub give_up: Duration,
    /// Ablation: switch on the first frame pair, whatever its SSIM.
    #[arg(long)]
    pub no_threshold: bool,
    /// Ablation: no frame sliding, a straight cut to the destination.
    #[arg(long)]
    pub no_sliding: bool,
    /// Ablation: the streams' buffers queue frames instead of keeping the
    /// latest only.
    #[arg(long)]
    pub no_one_frame_buffer: bool,
    /// Show each frame when it is decoded instead of at its render slot
    /// plus a playout delay that covers the stream's jitter (not one of
    /// the paper's mechanisms: smoother display for a few ms of latency).
    #[arg(long)]
    pub no_pacing: bool,
    /// How long a late frame holds the playout delay up (longer: fewer
    /// uneven intervals, more latency).
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub pacing_window: Duration,
    /// Inputs the UE sends again to the destination at the switch (the
    /// cloud applies each once).
    #[arg(long, default_value_t = 8)]
    pub resend: usize,
    /// Keep playing this long before the first migration (the load before
    /// it: Fig. 9).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub before: Duration,
    /// Keep playing this long after the last migration.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub after: Duration,
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

/// The highest rate `--bandwidth` takes, Mbit/s (htb's 64-bit rates go
/// further, but a veth pair on one machine carries no more than this).
pub const MAX_MBIT: u32 = 100_000;

/// The default longest wait for one state copy (the full Minetest preset
/// takes about 300 s at 200 Mbit/s).
pub const STATE_COPY_DEADLINE: Duration = Duration::from_secs(600);

fn usage(msg: String) -> BedError {
    BedError::Usage(msg)
}

impl MigrateArgs {
    /// The options, checked; errors name the option.
    pub fn opts(&self) -> Result<MigrateOpts, BedError> {
        if !(1..=10_000).contains(&self.count) {
            return Err(usage(format!("--count {}: must be 1 to 10000", self.count)));
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
        if !matches!(self.preset.as_str(), "snake" | "minetest") {
            return Err(usage(format!(
                "--preset `{}`: must be snake or minetest",
                self.preset
            )));
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            return Err(usage(format!(
                "--scale {}: must be more than 0 and at most 1",
                self.scale
            )));
        }
        if let Some(b) = self.bandwidth.iter().find(|b| !(1..=MAX_MBIT).contains(*b)) {
            return Err(usage(format!(
                "--bandwidth {b}: tc cannot shape a veth to that; give 1 to {MAX_MBIT} Mbit/s"
            )));
        }
        let mut selector = self.selector()?;
        if self.method.is_state_copy() {
            // The UE shows the destination's first frame at once (there is
            // no similar pair to wait for: the source is frozen or gone),
            // and waits for it as long as a migration may take.
            selector.use_threshold = false;
            selector.use_sliding = false;
            selector.give_up_ms =
                u64::try_from(self.deadline.unwrap_or(STATE_COPY_DEADLINE).as_millis())
                    .unwrap_or(u64::MAX);
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
            method: self.method,
            preset: self.preset.clone(),
            scale: self.scale,
            bandwidths: self.bandwidth.clone(),
            before: self.before,
            after: self.after,
            countdown: self.countdown,
            gaps: self.gap.clone(),
            trigger: self.trigger,
            latency: LatencyOpts {
                threshold: self.latency_threshold,
                hold: self.latency_for,
                delay: self.latency_delay.unwrap_or(self.latency_threshold * 2),
            },
            warm: self.warm,
            selector,
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

impl MigrateArgs {
    /// The stream selector's settings, checked.
    fn selector(&self) -> Result<SelectorSettings, BedError> {
        let t = self.ssim_threshold;
        if !(0.0..=1.0).contains(&t) {
            return Err(usage(format!("--ssim-threshold {t}: must be 0 to 1")));
        }
        let frame = Duration::from_secs(1) / self.fps.max(1);
        if self.blend < frame && !self.no_sliding {
            return Err(usage(format!(
                "--blend {:?}: must be at least one frame ({frame:?} at --fps {}); --no-sliding for a cut",
                self.blend, self.fps
            )));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.give_up) {
            return Err(usage(format!(
                "--give-up {:?}: must be 100ms to 10m",
                self.give_up
            )));
        }
        let range = ue::stream::pacer::WINDOW_RANGE_MS;
        let window_ms = u64::try_from(self.pacing_window.as_millis()).unwrap_or(u64::MAX);
        if !range.contains(&window_ms) {
            return Err(usage(format!(
                "--pacing-window {:?}: must be {} ms to {} ms",
                self.pacing_window,
                range.start(),
                range.end()
            )));
        }
        if self.resend > 1000 {
            return Err(usage(format!(
                "--resend {}: must be 0 to 1000",
                self.resend
            )));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(SelectorSettings {
            threshold: t,
            blend_ms: ms(self.blend),
            give_up_ms: ms(self.give_up),
            use_threshold: !self.no_threshold,
            use_sliding: !self.no_sliding,
            use_one_frame_buffer: !self.no_one_frame_buffer,
            use_pacing: !self.no_pacing,
            pacing_window_ms: ms(self.pacing_window),
            resend: self.resend,
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
        // The selector's defaults are the UE's.
        assert_eq!(o.selector, SelectorSettings::default());
    }

    #[test]
    fn selector_settings_and_ablations() {
        let a = parse(&[
            "--ssim-threshold",
            "0.9",
            "--blend",
            "100ms",
            "--give-up",
            "3s",
            "--no-threshold",
            "--no-one-frame-buffer",
            "--no-pacing",
            "--pacing-window",
            "5s",
            "--resend",
            "0",
        ])
        .expect("parse");
        let s = a.opts().expect("valid").selector;
        assert_eq!(
            s,
            SelectorSettings {
                threshold: 0.9,
                blend_ms: 100,
                give_up_ms: 3000,
                use_threshold: false,
                use_sliding: true,
                use_one_frame_buffer: false,
                use_pacing: false,
                pacing_window_ms: 5000,
                resend: 0,
            }
        );
        // Without sliding the blend's length does not matter.
        let a = parse(&["--no-sliding", "--blend", "0"]).expect("parse");
        assert!(!a.opts().expect("valid").selector.use_sliding);
        // Countdown 0: the source is released right after the switch.
        let a = parse(&["--countdown", "0"]).expect("parse");
        assert_eq!(a.opts().expect("valid").countdown, Duration::ZERO);
    }

    #[test]
    fn bad_values_name_their_option() {
        for (args, option) in [
            (&["--countdown", "soon"][..], "--countdown"),
            (&["--gap", "1s,x"][..], "--gap"),
            (&["--warm", "maybe"][..], "--warm"),
            (&["--trigger", "psychic"][..], "--trigger"),
            (&["--count", "many"][..], "--count"),
            (&["--ssim-threshold", "high"][..], "--ssim-threshold"),
            (&["--blend", "long"][..], "--blend"),
            (&["--give-up", "1"][..], "--give-up"),
            (&["--resend", "x"][..], "--resend"),
            (&["--pacing-window", "long"][..], "--pacing-window"),
            (&["--method", "teleport"][..], "--method"),
            (&["--bandwidth", "fast"][..], "--bandwidth"),
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert!(e.contains(option), "{args:?}: {e}");
        }
        for (args, option) in [
            (&["--count", "0"][..], "--count"),
            (&["--ssim-threshold", "1.5"][..], "--ssim-threshold"),
            (&["--ssim-threshold=-0.1"][..], "--ssim-threshold"),
            (&["--blend", "1ms"][..], "--blend"),
            (&["--give-up", "10ms"][..], "--give-up"),
            (&["--resend", "5000"][..], "--resend"),
            (&["--pacing-window", "50ms"][..], "--pacing-window"),
            (&["--pacing-window", "2m"][..], "--pacing-window"),
            (&["--width", "641"][..], "--width"),
            (&["--fps", "0"][..], "--fps"),
            (&["--scene", "a b"][..], "--scene"),
            (&["--latency-delay", "5ms"][..], "--latency-delay"),
            (&["--input-rate", "0"][..], "--input-rate"),
            (&["--bandwidth", "200,0"][..], "--bandwidth"),
            (&["--bandwidth", "200000"][..], "--bandwidth"),
            (&["--scale", "0"][..], "--scale"),
            (&["--scale", "2"][..], "--scale"),
            (&["--preset", "doom"][..], "--preset"),
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
