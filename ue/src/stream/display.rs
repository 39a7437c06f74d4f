//! The display sink: shows the chief pilot's stream.
//!
//! Which stream is shown is a shared setting, [`Chief`]: today `ue play`
//! sets it once (the first stream); the CSM stream selector (a later
//! issue) will change it at a switch. The sink wakes when a buffer is
//! written (a [`Wake`]) and at least every millisecond, and displays the
//! chief's frame when its buffer holds a newer generation than the last one
//! it displayed from that stream. Each displayed frame is recorded
//! ([`DisplayRecord`]) and, if asked, appended to a Y4M file.
//!
//! There is no screen: "displayed" is the moment the sink takes the frame
//! (CLOCK_REALTIME), which is when a real player would hand it to the
//! screen.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::buffer::{BufferReader, BufferedFrame, Wake};
use super::y4m::Y4mWriter;
use super::{realtime_ns, StreamError};

/// The longest the sink sleeps between two looks at the chief's buffer.
pub const MAX_SLEEP: Duration = Duration::from_millis(1);

/// The shared setting naming the chief pilot's stream (the one shown).
/// Clones share the setting.
#[derive(Debug, Clone)]
pub struct Chief(Arc<ArcSwap<String>>);

impl Chief {
    /// The chief is the stream `name`.
    pub fn new(name: impl Into<String>) -> Chief {
        Chief(Arc::new(ArcSwap::from_pointee(name.into())))
    }

    /// Makes `name` the chief (takes effect at the sink's next look).
    pub fn set(&self, name: impl Into<String>) {
        self.0.store(Arc::new(name.into()));
    }

    /// The chief's name.
    pub fn get(&self) -> Arc<String> {
        self.0.load_full()
    }
}

/// One displayed frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DisplayRecord {
    /// When it was displayed (CLOCK_REALTIME ns).
    pub display_ns: u64,
    /// The stream it came from.
    pub source: String,
    /// Its sequence on that stream.
    pub seq: u64,
    /// Its buffer generation.
    pub generation: u64,
    /// RTP timestamp.
    pub rtp_ts: u32,
    /// World tick, if carried.
    pub tick: Option<u64>,
    /// Last applied input seq in the rendered world, if carried.
    pub input_seq: Option<u64>,
    /// Render time at the instance (CLOCK_REALTIME ns), if carried.
    pub rendered_ns: Option<u64>,
    /// When its last packet arrived (CLOCK_REALTIME ns).
    pub recv_ns: u64,
    /// When it was decoded (CLOCK_REALTIME ns).
    pub decoded_ns: u64,
    /// The destination's weight in what was shown during a CSM switch (0:
    /// the source alone, 1: the destination alone, between: a blend, whose
    /// other fields are the destination frame's).
    #[serde(default)]
    pub dest_weight: f32,
    /// SSIM (downscaled luma) against the frame displayed before it, where
    /// the CSM screen measures it (smoothness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssim_prev: Option<f32>,
    /// With presentation pacing, when the frame was due (CLOCK_REALTIME
    /// ns); `display_ns` later than this is the display's own delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ns: Option<u64>,
    /// With presentation pacing, the playout delay of the frame's stream
    /// when it was displayed (ns; its pacer's own, after the newest frame
    /// placed), to read where the delay rose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacer_delay_ns: Option<u64>,
    /// When the display thread began the look that showed it (CLOCK_REALTIME
    /// ns): `woke_ns - due_ns` is how late the thread woke, `display_ns -
    /// woke_ns` how long composing took (where the CSM screen records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub woke_ns: Option<u64>,
}

impl DisplayRecord {
    /// The record of `f` displayed alone at `display_ns`.
    pub fn of(f: &BufferedFrame, display_ns: u64) -> DisplayRecord {
        DisplayRecord {
            display_ns,
            source: f.info.source.to_string(),
            seq: f.info.seq,
            generation: f.generation,
            rtp_ts: f.info.rtp_ts,
            tick: f.info.tick,
            input_seq: f.info.input_seq,
            rendered_ns: f.info.rendered_ns,
            recv_ns: f.info.recv_ns,
            decoded_ns: f.info.decoded_ns,
            dest_weight: 0.0,
            ssim_prev: None,
            due_ns: None,
            pacer_delay_ns: None,
            woke_ns: None,
        }
    }
}

/// What a display run leaves.
#[derive(Debug, Clone, Default)]
pub struct DisplayOutcome {
    /// Every displayed frame, in display order.
    pub records: Vec<DisplayRecord>,
    /// Frames written to the video file.
    pub video_frames: u64,
    /// Frames not written (another size than the first).
    pub video_skipped: u64,
    /// Looks at the chief's buffer (wake-ups).
    pub polls: u64,
}

/// The displayed video as a Y4M file.
pub type VideoOut = Y4mWriter<BufWriter<File>>;

impl VideoOut {
    /// Creates (or truncates) `path`, announced at `fps`.
    pub fn create(path: &Path, fps: u32) -> Result<VideoOut, StreamError> {
        let f = File::create(path).map_err(StreamError::Video)?;
        Ok(Y4mWriter::new(BufWriter::new(f), fps))
    }

    /// Flushes the file; its counts go into `out`.
    pub fn finish_into(self, out: &mut DisplayOutcome) -> Result<(), StreamError> {
        out.video_frames = self.written();
        out.video_skipped = self.skipped();
        self.finish()?;
        Ok(())
    }
}

/// A display thread's loop: `poll` at every wake-up of `wake`, at the
/// instant `poll` last asked for (a frame's presentation time,
/// CLOCK_REALTIME ns), or at the latest every [`MAX_SLEEP`], until `stop`.
pub fn wait_loop(
    wake: Option<&Wake>,
    stop: &AtomicBool,
    mut poll: impl FnMut() -> Result<Option<u64>, StreamError>,
) -> Result<(), StreamError> {
    let mut seen = wake.map(|w| w.count()).unwrap_or(0);
    while !stop.load(Ordering::Relaxed) {
        let next = match poll() {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("display stopped: {e}");
                return Err(e);
            }
        };
        let timeout = next.map_or(MAX_SLEEP, |at| {
            Duration::from_nanos(at.saturating_sub(realtime_ns())).min(MAX_SLEEP)
        });
        if timeout.is_zero() {
            continue;
        }
        match wake {
            Some(w) => seen = w.wait(seen, timeout),
            None => std::thread::sleep(timeout),
        }
    }
    Ok(())
}

/// The display sink.
#[derive(Debug)]
pub struct DisplaySink {
    readers: Vec<BufferReader>,
    chief: Chief,
    wake: Option<Arc<Wake>>,
    /// Last displayed generation per stream.
    shown: HashMap<Arc<str>, u64>,
    video: Option<VideoOut>,
    out: DisplayOutcome,
    displayed: Arc<AtomicU64>,
}

impl DisplaySink {
    /// A sink over the buffers `readers`, showing the one `chief` names;
    /// `wake` is the one the buffers notify (if any).
    pub fn new(readers: Vec<BufferReader>, chief: Chief, wake: Option<Arc<Wake>>) -> DisplaySink {
        DisplaySink {
            readers,
            chief,
            wake,
            shown: HashMap::new(),
            video: None,
            out: DisplayOutcome::default(),
            displayed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Also writes every displayed frame to the Y4M file `path` (created
    /// or truncated), announced at `fps`.
    pub fn with_video(mut self, path: &Path, fps: u32) -> Result<DisplaySink, StreamError> {
        self.video = Some(VideoOut::create(path, fps)?);
        Ok(self)
    }

    /// The shared chief setting.
    pub fn chief(&self) -> &Chief {
        &self.chief
    }

    /// One look: displays the chief's latest frame if it is newer than the
    /// last one displayed from that stream, at `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Result<Option<&DisplayRecord>, StreamError> {
        self.out.polls += 1;
        let chief = self.chief.get();
        let Some(reader) = self.readers.iter().find(|r| **r.name() == **chief) else {
            return Ok(None);
        };
        let seen = self.shown.get(reader.name()).copied().unwrap_or(0);
        let Some(f) = reader.newer_than(seen) else {
            return Ok(None);
        };
        self.shown.insert(reader.name().clone(), f.generation);
        if let Some(v) = &mut self.video {
            v.write(&f.frame)?;
        }
        self.out.records.push(DisplayRecord::of(&f, now_ns));
        self.displayed.fetch_add(1, Ordering::Relaxed);
        Ok(self.out.records.last())
    }

    /// Records so far.
    pub fn records(&self) -> &[DisplayRecord] {
        &self.out.records
    }

    /// Ends the sink: flushes the video file.
    pub fn finish(mut self) -> Result<DisplayOutcome, StreamError> {
        if let Some(v) = self.video.take() {
            v.finish_into(&mut self.out)?;
        }
        Ok(self.out)
    }

    /// Runs the sink in its own thread until [`DisplayHandle::stop`].
    pub fn spawn(mut self) -> Result<DisplayHandle, StreamError> {
        let displayed = self.displayed.clone();
        DisplayHandle::spawn("display", displayed, move |stop| {
            let wake = self.wake.clone();
            wait_loop(wake.as_deref(), stop, || {
                self.poll(realtime_ns()).map(|_| None)
            })?;
            self.finish()
        })
    }
}

/// A display sink running in its thread.
#[derive(Debug)]
pub struct DisplayHandle {
    stop: Arc<AtomicBool>,
    displayed: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<DisplayOutcome, StreamError>>>,
}

impl DisplayHandle {
    /// Runs `run` (a display loop that returns when the flag it is given
    /// is set) in a thread named `name`; `displayed` is its frame count.
    pub fn spawn(
        name: &str,
        displayed: Arc<AtomicU64>,
        run: impl FnOnce(&AtomicBool) -> Result<DisplayOutcome, StreamError> + Send + 'static,
    ) -> Result<DisplayHandle, StreamError> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&s))
            .map_err(StreamError::Io)?;
        Ok(DisplayHandle {
            stop,
            displayed,
            thread: Some(thread),
        })
    }

    /// Frames displayed so far.
    pub fn displayed(&self) -> u64 {
        self.displayed.load(Ordering::Relaxed)
    }

    /// Stops the sink and returns what it displayed.
    pub fn stop(mut self) -> Result<DisplayOutcome, StreamError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| StreamError::Panicked("display".into()))?,
            None => Ok(DisplayOutcome::default()),
        }
    }
}

impl Drop for DisplayHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
