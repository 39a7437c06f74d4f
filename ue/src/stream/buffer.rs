//! The one-frame buffer of a stream (DESIGN.md section 5, step 5).
//!
//! Each streaming client thread owns the [`BufferWriter`] of its buffer and
//! is the only one that overwrites it; the display sink (and later the CSM
//! stream selector) hold [`BufferReader`]s and read without clearing. The
//! single-writer rule is structural: [`one_frame_buffer`] hands out exactly
//! one writer, the writer is neither `Clone` nor `Copy`, and its
//! [`BufferWriter::publish`] takes `&mut self`.
//!
//! The buffer holds an `Arc` of the latest decoded frame. Publishing swaps
//! the `Arc` (the previous frame is freed as soon as no reader holds it); a
//! read clones the `Arc`, never the pixels. Every publish increments the
//! buffer's generation, so a reader knows cheaply whether there is
//! something new ([`BufferReader::generation`]).
//!
//! The one-frame rule is one of the three smooth-switching mechanisms of
//! the paper (section III-C) and can be switched off for its ablations
//! ([`BufferMode`]): a buffer made by [`frame_buffer`] with
//! [`BufferMode::Fifo`] queues up to `capacity` frames that the reader
//! consumes oldest first through the same [`BufferReader::newer_than`],
//! so that under jitter frames accumulate and what is shown lags, as
//! without the mechanism. CSM and the No-Sliding ablation use the
//! one-frame buffer; No-Opt uses the FIFO (see
//! [`super::selector::Ablation`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;

/// What the UE knows of a decoded frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// The stream it came from (its name on the UE).
    pub source: Arc<str>,
    /// Frame sequence on this stream: 1 for the first decoded frame.
    pub seq: u64,
    /// RTP timestamp (90 kHz).
    pub rtp_ts: u32,
    /// World tick of the rendered state (RTP header extension id 1), if the
    /// frame carried it.
    pub tick: Option<u64>,
    /// The account's last applied input seq in the rendered world
    /// (extension id 2), if carried.
    pub input_seq: Option<u64>,
    /// Render time at the instance, CLOCK_REALTIME ns (extension id 3), if
    /// carried.
    pub rendered_ns: Option<u64>,
    /// When the last packet of the frame arrived (CLOCK_REALTIME ns).
    pub recv_ns: u64,
    /// When the frame was decoded (CLOCK_REALTIME ns).
    pub decoded_ns: u64,
}

/// A decoded frame with its metadata, as held by a one-frame buffer.
#[derive(Debug)]
pub struct BufferedFrame {
    /// The buffer's generation when this frame was published (1, 2, ...).
    pub generation: u64,
    /// The metadata.
    pub info: FrameInfo,
    /// The pixels (I420).
    pub frame: media::Frame,
}

/// Wakes a waiting reader (the display sink) when any buffer it watches is
/// written. Shared by several writers; waiting always has a timeout, so a
/// lost wake-up costs at most that timeout.
#[derive(Debug, Default)]
pub struct Wake {
    count: Mutex<u64>,
    cv: Condvar,
}

impl Wake {
    /// A new, shareable wake-up.
    pub fn new() -> Arc<Wake> {
        Arc::new(Wake::default())
    }

    /// Counter of notifications so far; pass it to [`Wake::wait`].
    pub fn count(&self) -> u64 {
        // A poisoned lock only means a notifier panicked mid-increment of a
        // plain integer: the value is still usable.
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signals every waiter.
    ///
    /// The lock is released before the waiters are woken: a woken waiter
    /// (the display thread, at real-time priority) that preempts the
    /// notifier on its core would otherwise find the lock still held and
    /// wait for the notifier, a normal thread, to be scheduled again, up to
    /// a scheduler tick behind the encoders and decoders (priority
    /// inversion).
    pub fn notify(&self) {
        {
            let mut c = self.count.lock().unwrap_or_else(|e| e.into_inner());
            *c = c.wrapping_add(1);
        }
        self.cv.notify_all();
    }

    /// Waits until the counter differs from `seen` or `timeout` passes;
    /// returns the counter.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let c = self.count.lock().unwrap_or_else(|e| e.into_inner());
        if *c != seen {
            return *c;
        }
        let (c, _) = self
            .cv
            .wait_timeout_while(c, timeout, |c| *c == seen)
            .unwrap_or_else(|e| e.into_inner());
        *c
    }
}

/// How a buffer hands frames to its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferMode {
    /// The paper's asynchronous one-frame buffer: a publish overwrites the
    /// frame, reads never clear it, [`BufferReader::newer_than`] skips to
    /// the newest frame.
    OneFrame,
    /// The ablation without it: a queue of at most `capacity` frames (the
    /// oldest is dropped when full, at least 1), which
    /// [`BufferReader::newer_than`] consumes oldest first. Meant for one
    /// consuming reader: readers share the queue.
    Fifo {
        /// Most frames queued.
        capacity: usize,
    },
}

#[derive(Debug)]
struct Fifo {
    capacity: usize,
    queue: Mutex<VecDeque<Arc<BufferedFrame>>>,
    dropped: AtomicU64,
}

impl Fifo {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<BufferedFrame>>> {
        // A poisoned lock only means a holder panicked between two queue
        // operations, each of which leaves the queue consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    latest: ArcSwapOption<BufferedFrame>,
    generation: AtomicU64,
    wake: Option<Arc<Wake>>,
    fifo: Option<Fifo>,
}

/// The only handle that writes a one-frame buffer. Not `Clone`: move it
/// into the thread that receives the stream.
#[derive(Debug)]
pub struct BufferWriter {
    shared: Arc<Shared>,
    generation: u64,
}

/// A read handle on a one-frame buffer; reading never clears it.
#[derive(Debug, Clone)]
pub struct BufferReader {
    shared: Arc<Shared>,
}

/// A one-frame buffer for the stream `name`: its single writer and a
/// reader (clone the reader for more). `wake`, if given, is notified on
/// every publish.
pub fn one_frame_buffer(
    name: impl Into<Arc<str>>,
    wake: Option<Arc<Wake>>,
) -> (BufferWriter, BufferReader) {
    frame_buffer(name, BufferMode::OneFrame, wake)
}

/// A buffer for the stream `name` that works as `mode` says: its single
/// writer and a reader. `wake`, if given, is notified on every publish.
pub fn frame_buffer(
    name: impl Into<Arc<str>>,
    mode: BufferMode,
    wake: Option<Arc<Wake>>,
) -> (BufferWriter, BufferReader) {
    let fifo = match mode {
        BufferMode::OneFrame => None,
        BufferMode::Fifo { capacity } => Some(Fifo {
            capacity: capacity.max(1),
            queue: Mutex::new(VecDeque::with_capacity(capacity.max(1) + 1)),
            dropped: AtomicU64::new(0),
        }),
    };
    let shared = Arc::new(Shared {
        name: name.into(),
        latest: ArcSwapOption::empty(),
        generation: AtomicU64::new(0),
        wake,
        fifo,
    });
    (
        BufferWriter {
            shared: shared.clone(),
            generation: 0,
        },
        BufferReader { shared },
    )
}

impl BufferWriter {
    /// The stream's name.
    pub fn name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// Replaces the buffered frame with `frame` (in FIFO mode: queues it,
    /// dropping the oldest if the queue is full); returns its generation.
    pub fn publish(&mut self, info: FrameInfo, frame: media::Frame) -> u64 {
        self.generation += 1;
        let g = self.generation;
        let f = Arc::new(BufferedFrame {
            generation: g,
            info,
            frame,
        });
        if let Some(fifo) = &self.shared.fifo {
            let mut q = fifo.lock();
            q.push_back(f.clone());
            while q.len() > fifo.capacity {
                q.pop_front();
                fifo.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.shared.latest.store(Some(f));
        // After the store: a reader that sees generation g finds a frame of
        // generation >= g.
        self.shared.generation.store(g, Ordering::Release);
        if let Some(w) = &self.shared.wake {
            w.notify();
        }
        g
    }
}

impl BufferReader {
    /// The stream's name.
    pub fn name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// Generation of the latest frame (0: none yet). Cheap: one atomic load.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// How the buffer hands out frames.
    pub fn mode(&self) -> BufferMode {
        match &self.shared.fifo {
            None => BufferMode::OneFrame,
            Some(f) => BufferMode::Fifo {
                capacity: f.capacity,
            },
        }
    }

    /// The latest frame published, left in the buffer (in both modes).
    pub fn latest(&self) -> Option<Arc<BufferedFrame>> {
        self.shared.latest.load_full()
    }

    /// The next frame to show after generation `seen`: in one-frame mode
    /// the latest frame if its generation is above `seen` (frames in
    /// between are gone); in FIFO mode the oldest queued frame above
    /// `seen`, taken out of the queue (older ones are discarded).
    pub fn newer_than(&self, seen: u64) -> Option<Arc<BufferedFrame>> {
        if self.generation() <= seen {
            return None;
        }
        let Some(fifo) = &self.shared.fifo else {
            return self.latest().filter(|f| f.generation > seen);
        };
        let mut q = fifo.lock();
        while let Some(f) = q.pop_front() {
            if f.generation > seen {
                return Some(f);
            }
        }
        None
    }

    /// Frames waiting in the queue (always 0 in one-frame mode).
    pub fn queued(&self) -> usize {
        self.shared.fifo.as_ref().map_or(0, |f| f.lock().len())
    }

    /// Frames dropped because the queue was full (0 in one-frame mode).
    pub fn dropped(&self) -> u64 {
        self.shared
            .fifo
            .as_ref()
            .map_or(0, |f| f.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(seq: u64) -> FrameInfo {
        FrameInfo {
            source: "s".into(),
            seq,
            ..Default::default()
        }
    }

    /// A reader that looks once per display tick, fed by a jittery writer:
    /// bursts of three frames, then two ticks with none (one frame per
    /// tick on average). Returns the generation shown at each tick and the
    /// largest backlog seen.
    fn shown_under_jitter(mode: BufferMode) -> (Vec<u64>, usize) {
        let (mut w, r) = frame_buffer("s", mode, None);
        let (mut shown, mut last, mut backlog) = (Vec::new(), 0, 0);
        for tick in 0..12u64 {
            if tick % 3 == 0 {
                for _ in 0..3 {
                    w.publish(info(0), media::Frame::new(2, 2));
                }
            }
            backlog = backlog.max(r.queued());
            if let Some(f) = r.newer_than(last) {
                last = f.generation;
            }
            shown.push(last);
        }
        (shown, backlog)
    }

    #[test]
    fn one_frame_flushes_and_fifo_lags_under_jitter() {
        let (one, backlog) = shown_under_jitter(BufferMode::OneFrame);
        // The newest frame at once: 3 at tick 0, 6 at tick 3, ...
        assert_eq!(one, [3, 3, 3, 6, 6, 6, 9, 9, 9, 12, 12, 12]);
        assert_eq!(backlog, 0);
        let (fifo, backlog) = shown_under_jitter(BufferMode::Fifo { capacity: 8 });
        // One frame per tick, oldest first: each burst is shown late.
        assert_eq!(fifo, (1..=12).collect::<Vec<u64>>());
        assert_eq!(backlog, 3);
    }

    #[test]
    fn fifo_is_bounded_and_keeps_the_reader_api() {
        let (mut w, r) = frame_buffer("s", BufferMode::Fifo { capacity: 2 }, None);
        assert_eq!(r.mode(), BufferMode::Fifo { capacity: 2 });
        assert!(r.newer_than(0).is_none());
        for _ in 0..5 {
            w.publish(info(0), media::Frame::new(2, 2));
        }
        assert_eq!((r.queued(), r.dropped(), r.generation()), (2, 3, 5));
        // latest() is the newest and does not consume.
        assert_eq!(r.latest().map(|f| f.generation), Some(5));
        assert_eq!(r.queued(), 2);
        // Frames at or below `seen` are discarded, not returned.
        assert_eq!(r.newer_than(4).map(|f| f.generation), Some(5));
        assert_eq!(r.queued(), 0);
        assert!(r.newer_than(0).is_none(), "consumed");
        let (_, one) = one_frame_buffer("o", None);
        assert_eq!(
            (one.mode(), one.queued(), one.dropped()),
            (BufferMode::OneFrame, 0, 0)
        );
    }
}
