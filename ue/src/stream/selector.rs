//! The CSM stream selector's decisions (issue 12, item 5; DESIGN.md
//! section 5, step 5; paper section III-C, smooth switching).
//!
//! [`Selector`] is a state machine without I/O, clock or threads: the
//! display thread (its driver) calls [`Selector::step`] once per display
//! tick with the latest frame of the chief's buffer and, during a
//! migration, of the destination's, and displays what the returned
//! [`Output`] says (composing a blend with [`media::blend`]); what it
//! outputs is what is displayed. Events ([`Event`]) are pulled with
//! [`Selector::poll_event`]; times are what the driver passes as `now`
//! (CLOCK_REALTIME ns, as the display records).
//!
//! A migration:
//!
//! 1. [`Selector::begin`] when the destination stream is ready (copilot):
//!    the selector keeps showing the source and compares each new pair of
//!    frames (at least one generation changed) with the SSIM function it
//!    is given, logging every value ([`Event::SsimSample`]).
//! 2. The first pair with SSIM at or above the threshold is the switch
//!    decision ([`Event::Decision`]). The output of that same step is the
//!    first blended frame, composed from the newest destination frame
//!    already decoded: n = 1, `a = 1/N` ([`Event::FirstDestContribution`],
//!    switch downtime zero frames).
//! 3. Each later new pair gives the next blended frame, `F_out = a F_d +
//!    (1 - a) F_s`, `a = min(n/N, 1)`; at n = N the destination is shown
//!    alone and becomes the chief ([`Event::Switched`]); the former source
//!    stays copilot, which the driver may release or switch back to with
//!    another [`Selector::begin`].
//! 4. If no pair is similar enough within the configured time, the
//!    migration is abandoned ([`Event::GaveUp`]) with the source untouched:
//!    it was the only stream shown.
//!
//! Each smooth-switching mechanism can be switched off on its own for the
//! ablations of the paper's Table V ([`Ablation`]): without the threshold
//! the first pair decides, without sliding N = 1 (a straight cut), and
//! without the one-frame buffer the buffers queue frames
//! ([`BufferMode::Fifo`]), which is the buffers' business, not the
//! selector's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use media::Frame;

use super::buffer::{BufferMode, BufferedFrame};

/// The paper's SSIM threshold (section V-F).
pub const DEFAULT_THRESHOLD: f64 = 0.85;
/// How long frame sliding lasts by default: N is this many seconds of
/// frames at the frame rate.
pub const DEFAULT_SLIDE: Duration = Duration::from_millis(200);
/// How long the selector waits for similar streams before giving up.
pub const DEFAULT_GIVE_UP: Duration = Duration::from_secs(5);
/// Queue length of the buffers in the No-Opt ablation.
pub const NO_OPT_FIFO_CAPACITY: usize = 32;

/// Errors of the selector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectorError {
    /// A setting is out of range.
    #[error("selector configuration: {0}")]
    Config(String),
    /// A migration is already in progress (watching or sliding).
    #[error("a switch to {0} is already in progress")]
    Busy(Arc<str>),
    /// The destination is the stream already shown.
    #[error("{0} is already the chief stream")]
    AlreadyChief(Arc<str>),
}

/// The selector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectorConfig {
    /// Switch when SSIM of the two latest frames is at least this.
    pub threshold: f64,
    /// N, the frames of the slide (at least 1; 1 is a straight cut).
    pub blend_frames: u32,
    /// Abandon the migration if no pair was similar enough this long after
    /// [`Selector::begin`].
    pub give_up_after: Duration,
    /// The SSIM threshold mechanism; off: the first pair decides.
    pub use_threshold: bool,
    /// The frame sliding mechanism; off: N = 1.
    pub use_sliding: bool,
}

impl SelectorConfig {
    /// CSM's settings at `fps` frames per second: threshold 0.85, N frames
    /// of about 0.2 s (at least 1), give up after 5 s, every mechanism on.
    pub fn at_fps(fps: u32) -> SelectorConfig {
        let n = (f64::from(fps) * DEFAULT_SLIDE.as_secs_f64()).round() as u32;
        SelectorConfig {
            threshold: DEFAULT_THRESHOLD,
            blend_frames: n.max(1),
            give_up_after: DEFAULT_GIVE_UP,
            use_threshold: true,
            use_sliding: true,
        }
    }

    /// N in use: `blend_frames`, or 1 without sliding.
    pub fn effective_n(&self) -> u32 {
        if self.use_sliding {
            self.blend_frames.max(1)
        } else {
            1
        }
    }

    fn validate(&self) -> Result<(), SelectorError> {
        if !self.threshold.is_finite() || !(-1.0..=1.0).contains(&self.threshold) {
            return Err(SelectorError::Config(format!(
                "threshold {} is not an SSIM value in -1..=1",
                self.threshold
            )));
        }
        if self.use_sliding && self.blend_frames == 0 {
            return Err(SelectorError::Config(
                "blend_frames must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SelectorConfig {
    /// [`SelectorConfig::at_fps`] at 60 fps (N = 12).
    fn default() -> SelectorConfig {
        SelectorConfig::at_fps(60)
    }
}

/// The variants of the paper's Table V.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ablation {
    /// All three mechanisms: SSIM threshold, frame sliding, one-frame
    /// buffer.
    Csm,
    /// SSIM threshold and one-frame buffer, no sliding.
    NoSliding,
    /// None of the three: the first pair decides, a straight cut, and
    /// buffers that queue frames.
    NoOpt,
}

impl Ablation {
    /// The selector's settings for this variant at `fps`.
    pub fn config(self, fps: u32) -> SelectorConfig {
        let c = SelectorConfig::at_fps(fps);
        match self {
            Ablation::Csm => c,
            Ablation::NoSliding => SelectorConfig {
                use_sliding: false,
                ..c
            },
            Ablation::NoOpt => SelectorConfig {
                use_sliding: false,
                use_threshold: false,
                ..c
            },
        }
    }

    /// How the streams' buffers work in this variant.
    pub fn buffer_mode(self) -> BufferMode {
        match self {
            Ablation::Csm | Ablation::NoSliding => BufferMode::OneFrame,
            Ablation::NoOpt => BufferMode::Fifo {
                capacity: NO_OPT_FIFO_CAPACITY,
            },
        }
    }
}

/// A frame as the selector sees it: its buffer generation and pixels.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    /// The buffer's generation of this frame.
    pub generation: u64,
    /// The pixels.
    pub frame: &'a Frame,
}

impl<'a> From<&'a BufferedFrame> for FrameRef<'a> {
    fn from(f: &'a BufferedFrame) -> FrameRef<'a> {
        FrameRef {
            generation: f.generation,
            frame: &f.frame,
        }
    }
}

/// What to display at this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output {
    /// Nothing new: keep the frame on screen.
    Nothing,
    /// The chief's (source's) frame of this generation.
    Source(u64),
    /// The destination's frame of this generation, alone.
    Dest(u64),
    /// `a * F_d + (1 - a) * F_s` of these generations ([`media::blend`]).
    Blend {
        /// The destination's weight, in `0..1`.
        a: f32,
        /// Generation of the source frame.
        source_gen: u64,
        /// Generation of the destination frame.
        dest_gen: u64,
    },
}

impl Output {
    /// The destination's weight in what is shown: 0 for the source alone,
    /// 1 for the destination alone, `a` for a blend; `None` for nothing.
    pub fn dest_weight(&self) -> Option<f32> {
        match *self {
            Output::Nothing => None,
            Output::Source(_) => Some(0.0),
            Output::Dest(_) => Some(1.0),
            Output::Blend { a, .. } => Some(a),
        }
    }
}

/// What happened, in order; pulled with [`Selector::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// SSIM of a new pair while waiting for similar streams.
    SsimSample {
        /// Source frame's generation.
        source_gen: u64,
        /// Destination frame's generation.
        dest_gen: u64,
        /// The value.
        value: f64,
    },
    /// The switch was decided on a pair of this SSIM.
    Decision {
        /// When.
        at: u64,
        /// SSIM of the deciding pair.
        ssim: f64,
    },
    /// The first output frame with a destination contribution (the end of
    /// the switch downtime).
    FirstDestContribution {
        /// When it was output.
        at: u64,
        /// Its place in the slide (1).
        n: u32,
    },
    /// The slide is over: the destination is the chief.
    Switched {
        /// When the destination was first shown alone.
        at: u64,
        /// The new chief.
        chief: Arc<str>,
    },
    /// No pair was similar enough in time: the migration is abandoned,
    /// the source still the chief.
    GaveUp {
        /// When.
        at: u64,
        /// The destination given up.
        dest: Arc<str>,
    },
}

/// Where the selector is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Showing the chief; no migration.
    Idle,
    /// A migration began at `since`: showing the source, comparing pairs.
    Watching {
        /// When [`Selector::begin`] was called.
        since: u64,
    },
    /// Switch decided: `n` frames of the slide output so far.
    Sliding {
        /// Frames output since the decision.
        n: u32,
    },
}

/// The stream selector's state machine.
#[derive(Debug)]
pub struct Selector {
    config: SelectorConfig,
    chief: Arc<str>,
    target: Option<Arc<str>>,
    phase: Phase,
    /// Generation of the chief's frame last output alone.
    shown: Option<u64>,
    /// The last pair compared (watching) or composed (sliding).
    last_pair: Option<(u64, u64)>,
    events: VecDeque<Event>,
}

impl Selector {
    /// A selector showing the stream `chief`.
    pub fn new(config: SelectorConfig, chief: impl Into<Arc<str>>) -> Result<Self, SelectorError> {
        config.validate()?;
        Ok(Selector {
            config,
            chief: chief.into(),
            target: None,
            phase: Phase::Idle,
            shown: None,
            last_pair: None,
            events: VecDeque::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &SelectorConfig {
        &self.config
    }

    /// The stream shown (the source of a migration in progress).
    pub fn chief(&self) -> &Arc<str> {
        &self.chief
    }

    /// The destination of the migration in progress.
    pub fn target(&self) -> Option<&Arc<str>> {
        self.target.as_ref()
    }

    /// Where the selector is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the migration in progress will be given up if no pair is
    /// similar enough before (the driver should step by then).
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.phase {
            Phase::Watching { since } => Some(self.deadline(since)),
            _ => None,
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Starts a migration to the stream `dest`, whose frames are decoded
    /// from now on (copilot).
    pub fn begin(&mut self, now: u64, dest: impl Into<Arc<str>>) -> Result<(), SelectorError> {
        let dest = dest.into();
        if let Some(t) = &self.target {
            return Err(SelectorError::Busy(t.clone()));
        }
        if dest == self.chief {
            return Err(SelectorError::AlreadyChief(dest));
        }
        self.target = Some(dest);
        self.phase = Phase::Watching { since: now };
        self.last_pair = None;
        Ok(())
    }

    /// One display tick at `now`: `source` is the latest frame of the
    /// chief's buffer, `dest` that of the destination's (ignored without a
    /// migration); `ssim` compares two frames and is called only on a new
    /// pair while watching. Returns what to display.
    pub fn step(
        &mut self,
        now: u64,
        source: Option<FrameRef<'_>>,
        dest: Option<FrameRef<'_>>,
        mut ssim: impl FnMut(&Frame, &Frame) -> f64,
    ) -> Output {
        let frames = source.zip(dest).map(|(s, d)| (s.frame, d.frame));
        self.step_scored(now, source, dest, |_, _| frames.map(|(s, d)| ssim(s, d)))
    }

    /// [`Selector::step`] with the SSIM computed elsewhere (off the display
    /// thread): `score(source_gen, dest_gen)` is the SSIM of that pair if
    /// it is known yet. It is called only on a new pair while watching; a
    /// pair without a score is not compared yet (the source stays shown)
    /// and is asked for again at the next step.
    pub fn step_scored(
        &mut self,
        now: u64,
        source: Option<FrameRef<'_>>,
        dest: Option<FrameRef<'_>>,
        score: impl FnOnce(u64, u64) -> Option<f64>,
    ) -> Output {
        match self.phase {
            Phase::Idle => self.show_source(source),
            Phase::Watching { since } => {
                if now >= self.deadline(since) {
                    self.give_up(now);
                    return self.show_source(source);
                }
                let (Some(s), Some(d)) = (source, dest) else {
                    return self.show_source(source);
                };
                let pair = (s.generation, d.generation);
                if self.last_pair == Some(pair) {
                    return self.show_source(source);
                }
                let Some(value) = score(pair.0, pair.1) else {
                    return self.show_source(source);
                };
                self.last_pair = Some(pair);
                self.events.push_back(Event::SsimSample {
                    source_gen: pair.0,
                    dest_gen: pair.1,
                    value,
                });
                // NaN is not similar.
                let similar = value >= self.config.threshold;
                if self.config.use_threshold && !similar {
                    return self.show_source(source);
                }
                self.events.push_back(Event::Decision {
                    at: now,
                    ssim: value,
                });
                self.phase = Phase::Sliding { n: 0 };
                self.slide(now, pair, 0)
            }
            Phase::Sliding { n } => {
                let Some(d) = dest else {
                    return Output::Nothing;
                };
                // The source buffer is never cleared; if the driver has no
                // source frame, the last one composed stands.
                let last_s = self.last_pair.map_or(0, |p| p.0);
                let pair = (source.map_or(last_s, |s| s.generation), d.generation);
                if self.last_pair == Some(pair) {
                    return Output::Nothing;
                }
                self.slide(now, pair, n)
            }
        }
    }

    fn deadline(&self, since: u64) -> u64 {
        let d = u64::try_from(self.config.give_up_after.as_nanos()).unwrap_or(u64::MAX);
        since.saturating_add(d)
    }

    /// Outputs the chief's frame if it is not the one last output.
    fn show_source(&mut self, source: Option<FrameRef<'_>>) -> Output {
        match source {
            Some(s) if self.shown != Some(s.generation) => {
                self.shown = Some(s.generation);
                Output::Source(s.generation)
            }
            _ => Output::Nothing,
        }
    }

    /// The slide's frame n + 1 from `pair` (source, destination
    /// generations).
    fn slide(&mut self, now: u64, pair: (u64, u64), n: u32) -> Output {
        let n = n + 1;
        let big_n = self.config.effective_n();
        self.last_pair = Some(pair);
        if n == 1 {
            self.events
                .push_back(Event::FirstDestContribution { at: now, n });
        }
        if n < big_n {
            self.phase = Phase::Sliding { n };
            return Output::Blend {
                a: n as f32 / big_n as f32,
                source_gen: pair.0,
                dest_gen: pair.1,
            };
        }
        // a = 1: the destination alone, and now the chief.
        if let Some(t) = self.target.take() {
            self.chief = t;
        }
        self.events.push_back(Event::Switched {
            at: now,
            chief: self.chief.clone(),
        });
        self.phase = Phase::Idle;
        self.shown = Some(pair.1);
        self.last_pair = None;
        Output::Dest(pair.1)
    }

    fn give_up(&mut self, now: u64) {
        if let Some(dest) = self.target.take() {
            self.events.push_back(Event::GaveUp { at: now, dest });
        }
        self.phase = Phase::Idle;
        self.last_pair = None;
    }
}
