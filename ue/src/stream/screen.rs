//! The CSM display: the stream selector's driver (DESIGN.md section 5,
//! step 5). What it outputs is what is displayed.
//!
//! [`Screen`] runs in the display thread. It holds a reader of each
//! stream's buffer (streams come and go with the migrations: [`ScreenCmd`]),
//! keeps the latest frame of each, and at every wake-up asks the
//! [`Selector`] what to show: the chief's frame, the destination's, or a
//! blend of both ([`media::blend`]). SSIM of a new pair is the fast
//! downscaled-luma one ([`media::FastSsim`]), computed by a worker thread
//! ([`PairScorer`]) in the running screen, so that at the switch decision
//! the display thread only blends and shows (in a screen driven by hand
//! without a worker, inline). With pacing ([`Screen::with_pacing`]), a
//! frame taken from a buffer waits until its presentation time
//! ([`super::pacer`]) before the selector sees it; the thread wakes at that
//! instant. The display time of a frame is taken once it
//! is composed, before the measures that follow it (the SSIM against the
//! frame displayed before, the video file). Each displayed frame is
//! recorded ([`DisplayRecord`], with the destination's weight and the SSIM
//! against the frame displayed before it, the smoothness measure) and, if
//! asked, written to a Y4M file. The selector's decisions go out as
//! [`ScreenNote`]s to the UE's migration agent, which steers the input and
//! tells the network.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

use media::{FastSsim, Frame};

use super::buffer::{BufferReader, BufferedFrame, Wake};
use super::display::{wait_loop, DisplayHandle, DisplayOutcome, DisplayRecord, VideoOut};
use super::pacer::{Paced, PacingConfig, StreamPacer};
use super::scorer::{fast_ssim, PairScorer};
use super::selector::{Event, FrameRef, Output, Phase, Selector};
use super::{realtime_ns, StreamError};

/// What the migration agent tells the screen.
#[derive(Debug)]
pub enum ScreenCmd {
    /// A new stream's buffer (the destination's, before [`ScreenCmd::Begin`]).
    Add(BufferReader),
    /// Switch to this stream when the selector says so.
    Begin(Arc<str>),
    /// The stream is gone (released).
    Remove(Arc<str>),
}

/// What the screen tells the migration agent (times: CLOCK_REALTIME ns).
#[derive(Debug, Clone, PartialEq)]
pub enum ScreenNote {
    /// The switch to `dest` was decided on a pair of this SSIM.
    Decision { dest: Arc<str>, at: u64, ssim: f64 },
    /// The first displayed frame with a destination contribution.
    FirstDestFrame { at: u64 },
    /// The slide is over after `frames` blended frames: `chief` is shown.
    Switched {
        chief: Arc<str>,
        at: u64,
        frames: u32,
    },
    /// No pair was similar enough in time: `dest` given up, source kept.
    GaveUp { dest: Arc<str>, at: u64 },
    /// The migration could not begin (e.g. no such stream, or busy).
    Refused { dest: Arc<str>, reason: String },
}

/// The display thread's state.
#[derive(Debug)]
pub struct Screen {
    selector: Selector,
    readers: HashMap<Arc<str>, BufferReader>,
    latest: HashMap<Arc<str>, Arc<BufferedFrame>>,
    /// Presentation pacing (none: a frame is shown once decoded).
    pacing: Option<PacingConfig>,
    pacers: HashMap<Arc<str>, StreamPacer>,
    /// The delay the target's frames were last given (ns): at least the
    /// chief's ([`Screen::paced_due`]).
    target_delay: Option<u64>,
    /// After a switch, the delay the new chief keeps while it sinks to its
    /// own (ns).
    held: Option<u64>,
    /// The chief at the last paced frame (a change is a switch).
    chief_seen: Option<Arc<str>>,
    /// Frames taken from their buffer, waiting for their presentation
    /// time (CLOCK_REALTIME ns), oldest first (at most [`MAX_WAITING`]).
    pending: HashMap<Arc<str>, VecDeque<(Arc<BufferedFrame>, u64)>>,
    /// The due time of each stream's latest frame, by generation.
    due: HashMap<Arc<str>, (u64, u64)>,
    ssim: Option<FastSsim>,
    /// The pairs' SSIM off this thread (none: inline).
    scorer: Option<PairScorer>,
    blended: Frame,
    /// The frame displayed last (for the smoothness measure).
    prev: Option<Frame>,
    video: Option<VideoOut>,
    out: DisplayOutcome,
    displayed: Arc<AtomicU64>,
    cmds: Receiver<ScreenCmd>,
    notes: UnboundedSender<ScreenNote>,
}

impl Screen {
    /// A screen showing `first` (the selector's chief); commands arrive on
    /// `cmds`, notes go to `notes`.
    pub fn new(
        selector: Selector,
        first: BufferReader,
        cmds: Receiver<ScreenCmd>,
        notes: UnboundedSender<ScreenNote>,
    ) -> Screen {
        let mut readers = HashMap::new();
        readers.insert(first.name().clone(), first);
        Screen {
            selector,
            readers,
            latest: HashMap::new(),
            pacing: None,
            pacers: HashMap::new(),
            target_delay: None,
            held: None,
            chief_seen: None,
            pending: HashMap::new(),
            due: HashMap::new(),
            ssim: None,
            scorer: None,
            blended: Frame::new(2, 2),
            prev: None,
            video: None,
            out: DisplayOutcome::default(),
            displayed: Arc::new(AtomicU64::new(0)),
            cmds,
            notes,
        }
    }

    /// Scores the selector's frame pairs with `scorer` (its own thread)
    /// instead of inline.
    pub fn with_scorer(mut self, scorer: PairScorer) -> Screen {
        self.scorer = Some(scorer);
        self
    }

    /// Shows each frame at its presentation time ([`super::pacer`]).
    pub fn with_pacing(mut self, cfg: PacingConfig) -> Screen {
        self.pacing = Some(cfg);
        self
    }

    /// Also writes every displayed frame to the Y4M file `path`.
    pub fn with_video(mut self, path: &Path, fps: u32) -> Result<Screen, StreamError> {
        self.video = Some(VideoOut::create(path, fps)?);
        Ok(self)
    }

    fn command(&mut self, now: u64, c: ScreenCmd) {
        match c {
            ScreenCmd::Add(r) => {
                // A stream that comes back starts its pacing over.
                self.pacers.remove(r.name());
                self.due.remove(r.name());
                self.pending.remove(r.name());
                self.readers.insert(r.name().clone(), r);
            }
            ScreenCmd::Remove(name) => {
                self.readers.remove(&name);
                self.pacers.remove(&name);
                self.due.remove(&name);
                self.pending.remove(&name);
                // A source released during the slide (no delayed release)
                // keeps its last frame in the blend until the slide ends.
                let sliding = matches!(self.selector.phase(), Phase::Sliding { .. });
                if !(sliding && name == *self.selector.chief()) {
                    self.latest.remove(&name);
                }
            }
            ScreenCmd::Begin(dest) => {
                let r = if self.readers.contains_key(&dest) {
                    self.selector
                        .begin(now, dest.clone())
                        .map_err(|e| e.to_string())
                } else {
                    Err(format!("no stream named `{dest}`"))
                };
                match r {
                    Err(reason) => self.note(ScreenNote::Refused { dest, reason }),
                    Ok(()) => {
                        // Its last frame here is stale if it was shown
                        // before (a switch back): the next look takes its
                        // newest.
                        self.latest.remove(&dest);
                        // The blend's frame, at the source's size now, not
                        // at the first blended frame.
                        if let Some(f) = self.latest.get(self.selector.chief()) {
                            if (self.blended.width, self.blended.height)
                                != (f.frame.width, f.frame.height)
                            {
                                self.blended = f.frame.clone();
                            }
                        }
                    }
                }
            }
        }
    }

    /// Refreshes the latest frame of `name` from its buffer: at once, or
    /// with pacing once its presentation time has come (frames wait in
    /// order; when more than [`MAX_WAITING`] wait, the oldest goes now).
    fn refresh(&mut self, name: &Arc<str>, now: u64) {
        let Some(r) = self.readers.get(name) else {
            return;
        };
        let seen = self
            .pending
            .get(name)
            .and_then(|q| q.back())
            .map(|(f, _)| f.generation)
            .or_else(|| self.latest.get(name).map(|f| f.generation))
            .unwrap_or(0);
        let newer = r.newer_than(seen);
        let Some(cfg) = self.pacing else {
            if let Some(f) = newer {
                self.latest.insert(name.clone(), f);
            }
            return;
        };
        let placed = newer.map(|f| {
            let i = &f.info;
            let paced = self.pacers.entry(name.clone()).or_default().place(
                &cfg,
                i.rtp_ts,
                i.rendered_ns,
                i.decoded_ns,
            );
            let due = self.paced_due(name, &cfg, paced);
            (f, due)
        });
        let queue = self.pending.entry(name.clone()).or_default();
        queue.extend(placed);
        let mut shown = None;
        while queue
            .front()
            .is_some_and(|(_, due)| *due <= now || queue.len() > MAX_WAITING)
        {
            shown = queue.pop_front();
        }
        if let Some((f, at)) = shown {
            self.due.insert(name.clone(), (f.generation, at));
            self.latest.insert(name.clone(), f);
        }
    }

    /// Frames displayed so far.
    pub fn displayed(&self) -> u64 {
        self.displayed.load(Ordering::Relaxed)
    }

    /// The earliest presentation time of a frame waiting for it.
    pub fn next_due(&self) -> Option<u64> {
        self.pending
            .values()
            .filter_map(|q| q.front().map(|(_, due)| *due))
            .min()
    }

    /// When a frame of `name` placed by its pacer is shown. The target of
    /// a migration waits at least as long as the chief: when the source's
    /// path is slower (the latency trigger's case), the destination's
    /// frames are held back so that the selector compares frames of the
    /// same render slot, the same game tick on both edges (with a delay of
    /// their own, a path slower by more than a tick would never let them
    /// look alike). After the switch the new chief keeps that delay and
    /// sinks to its own by the catch-up per frame, without a jump. A
    /// target slower than the chief (a new instance's first frames) keeps
    /// its own delay and does not hold the chief back.
    fn paced_due(&mut self, name: &Arc<str>, cfg: &PacingConfig, paced: Paced) -> u64 {
        if paced.delay_ns == 0 {
            return paced.due_ns;
        }
        let chief = self.selector.chief().clone();
        if self.chief_seen.as_ref() != Some(&chief) {
            let switched = self.chief_seen.is_some();
            self.held = self.target_delay.take().filter(|_| switched);
            self.chief_seen = Some(chief.clone());
        }
        let own = paced.delay_ns;
        let d = if self.selector.target() == Some(name) {
            let c = self.pacers.get(&chief).and_then(StreamPacer::delay_ns);
            let d = own.max(c.unwrap_or(0));
            self.target_delay = Some(d);
            d
        } else if *name == chief {
            match self.held {
                Some(h) if h > own => {
                    let step = u64::try_from(cfg.catch_up.as_nanos()).unwrap_or(u64::MAX);
                    self.held = Some(h.saturating_sub(step)).filter(|&n| n > own);
                    h
                }
                _ => {
                    self.held = None;
                    own
                }
            }
        } else {
            own
        };
        paced.due_ns.max(paced.sampled_ns.saturating_add(d))
    }

    /// Only the streams the selector looks at have frames waiting: the
    /// others' would be stale when they are looked at again.
    fn keep_pending_of(&mut self, chief: &Arc<str>, target: Option<&Arc<str>>) {
        self.pending
            .retain(|name, _| name == chief || Some(name) == target);
    }

    /// One look at `now`: commands, then what the selector says to show.
    /// Returns when to look again at the latest (a waiting frame's
    /// presentation time), if anything waits.
    pub fn poll(&mut self, now: u64) -> Result<Option<u64>, StreamError> {
        self.out.polls += 1;
        let mut lap = Laps::new(now);
        while let Ok(c) = self.cmds.try_recv() {
            self.command(now, c);
        }
        lap.mark();
        let chief = self.selector.chief().clone();
        let target = self.selector.target().cloned();
        self.keep_pending_of(&chief, target.as_ref());
        self.refresh(&chief, now);
        if let Some(t) = &target {
            self.refresh(t, now);
        }
        let source = self.latest.get(&chief).cloned();
        let dest = target.as_ref().and_then(|t| self.latest.get(t)).cloned();
        let (s, d) = (
            source.as_deref().map(FrameRef::from),
            dest.as_deref().map(FrameRef::from),
        );
        let output = match (&self.scorer, &source, &dest) {
            (Some(sc), Some(sf), Some(df)) => self
                .selector
                .step_scored(now, s, d, |_, _| sc.score(sf, df)),
            _ => {
                let ssim = &mut self.ssim;
                self.selector.step(now, s, d, |a, b| fast_ssim(ssim, a, b))
            }
        };
        lap.mark();
        self.show(now, output, source.as_deref(), dest.as_deref())?;
        lap.mark();
        self.forward_events();
        lap.mark();
        lap.warn_if_slow(output);
        Ok(self.next_due())
    }

    fn show(
        &mut self,
        now: u64,
        output: Output,
        source: Option<&BufferedFrame>,
        dest: Option<&BufferedFrame>,
    ) -> Result<(), StreamError> {
        let (frame, info, weight) = match (output, source, dest) {
            (Output::Source(_), Some(s), _) => (&s.frame, s, 0.0),
            (Output::Dest(_), _, Some(d)) => (&d.frame, d, 1.0),
            (Output::Blend { a, .. }, Some(s), Some(d)) => {
                media::blend(&s.frame, &d.frame, a, &mut self.blended)
                    .map_err(|e| StreamError::Config(format!("blend: {e}")))?;
                (&self.blended, d, a)
            }
            _ => return Ok(()),
        };
        // Displayed once composed: the time is taken after the blend, and
        // before what only measures or records what was displayed.
        let mut rec = DisplayRecord::of(info, realtime_ns().max(now));
        rec.woke_ns = Some(now);
        rec.dest_weight = weight;
        rec.due_ns = self
            .due
            .get(info.info.source.as_ref())
            .filter(|(g, _)| *g == info.generation)
            .map(|(_, at)| *at);
        rec.pacer_delay_ns = self
            .pacers
            .get(info.info.source.as_ref())
            .and_then(StreamPacer::delay_ns);
        rec.ssim_prev = match &self.prev {
            Some(p) => Some(fast_ssim(&mut self.ssim, p, frame) as f32),
            None => None,
        };
        if let Some(v) = &mut self.video {
            v.write(frame)?;
        }
        self.out.records.push(rec);
        self.displayed.fetch_add(1, Ordering::Relaxed);
        match &mut self.prev {
            Some(p) if p.width == frame.width && p.height == frame.height => {
                p.y.copy_from_slice(&frame.y);
                p.u.copy_from_slice(&frame.u);
                p.v.copy_from_slice(&frame.v);
            }
            p => *p = Some(frame.clone()),
        }
        Ok(())
    }

    fn note(&self, n: ScreenNote) {
        // The agent is gone only when the UE stops: nothing to tell then.
        let _ = self.notes.send(n);
    }

    fn forward_events(&mut self) {
        while let Some(e) = self.selector.poll_event() {
            let note = match e {
                Event::SsimSample { value, .. } => {
                    tracing::debug!(ssim = value, "frame pair");
                    continue;
                }
                Event::Decision { at, ssim } => {
                    let dest = self.selector.target().cloned().unwrap_or_else(|| "".into());
                    tracing::info!(%dest, ssim, "switch decided");
                    ScreenNote::Decision { dest, at, ssim }
                }
                Event::FirstDestContribution { at, .. } => ScreenNote::FirstDestFrame {
                    // The frame just shown (composed after the decision).
                    at: self.out.records.last().map_or(at, |r| r.display_ns),
                },
                Event::Switched { at, chief } => {
                    // Frames of streams removed during the slide go now.
                    let readers = &self.readers;
                    self.latest.retain(|name, _| readers.contains_key(name));
                    ScreenNote::Switched {
                        chief,
                        at,
                        frames: self.selector.config().effective_n(),
                    }
                }
                Event::GaveUp { at, dest } => {
                    tracing::warn!(%dest, "streams never became similar: switch given up");
                    ScreenNote::GaveUp { dest, at }
                }
            };
            self.note(note);
        }
    }

    /// Ends the screen: flushes the video file.
    pub fn finish(mut self) -> Result<DisplayOutcome, StreamError> {
        if let Some(v) = self.video.take() {
            v.finish_into(&mut self.out)?;
        }
        Ok(self.out)
    }

    /// Runs the screen in its own thread, woken by `wake`.
    pub fn spawn(mut self, wake: Arc<Wake>) -> Result<DisplayHandle, StreamError> {
        let displayed = self.displayed.clone();
        if self.scorer.is_none() {
            self.scorer = Some(PairScorer::spawn(Some(wake.clone()))?);
        }
        DisplayHandle::spawn("screen", displayed, move |stop| {
            display_thread_priority();
            wait_loop(Some(&wake), stop, || self.poll(realtime_ns()))?;
            self.finish()
        })
    }
}

/// Real-time priority (SCHED_FIFO) of the display thread: as desktop
/// compositors get theirs (Mutter and KWin ask rtkit for SCHED_RR), so
/// that a paced frame is shown at its time on a busy machine too. Under
/// the normal scheduler a waking thread may wait for the next tick (up to
/// 4 ms here) while the encoders and decoders run. The kernel's
/// real-time throttling still bounds what it can take.
pub const DISPLAY_RT_PRIORITY: libc::c_int = 2;

/// Niceness of the display thread when real-time priority is refused.
pub const DISPLAY_NICE: libc::c_int = -10;

/// Raises the calling (display) thread's priority to
/// [`DISPLAY_RT_PRIORITY`], above the threads that bring it frames (else
/// [`DISPLAY_NICE`]).
fn display_thread_priority() {
    ctlhttp::rt::raise("display", DISPLAY_RT_PRIORITY, DISPLAY_NICE);
}

/// With pacing, the most frames of a stream that wait for their time
/// (133 ms at 60 fps, more than the longest playout delay).
pub const MAX_WAITING: usize = 8;

/// A poll of the display taking longer than this is logged, phase by phase.
const SLOW_POLL_NS: u64 = 20_000_000;

/// The phases of one poll (commands, selector, show, notes), to log a slow one.
struct Laps {
    start: u64,
    marks: [u64; 4],
    n: usize,
}

impl Laps {
    fn new(start: u64) -> Laps {
        Laps {
            start,
            marks: [start; 4],
            n: 0,
        }
    }

    fn mark(&mut self) {
        if let Some(m) = self.marks.get_mut(self.n) {
            *m = realtime_ns();
            self.n += 1;
        }
    }

    fn warn_if_slow(&self, output: Output) {
        let end = self.marks[3];
        if end.saturating_sub(self.start) < SLOW_POLL_NS {
            return;
        }
        let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
        tracing::warn!(
            commands_ms = ms(self.start, self.marks[0]),
            selector_ms = ms(self.marks[0], self.marks[1]),
            show_ms = ms(self.marks[1], self.marks[2]),
            notes_ms = ms(self.marks[2], self.marks[3]),
            ?output,
            "slow display poll"
        );
    }
}
