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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

/// What the UE knows of a decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub fn notify(&self) {
        let mut c = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *c = c.wrapping_add(1);
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

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    latest: ArcSwapOption<BufferedFrame>,
    generation: AtomicU64,
    wake: Option<Arc<Wake>>,
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
    let shared = Arc::new(Shared {
        name: name.into(),
        latest: ArcSwapOption::empty(),
        generation: AtomicU64::new(0),
        wake,
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

    /// Replaces the buffered frame with `frame`; returns its generation.
    pub fn publish(&mut self, info: FrameInfo, frame: media::Frame) -> u64 {
        self.generation += 1;
        let g = self.generation;
        self.shared.latest.store(Some(Arc::new(BufferedFrame {
            generation: g,
            info,
            frame,
        })));
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

    /// The latest frame, left in the buffer.
    pub fn latest(&self) -> Option<Arc<BufferedFrame>> {
        self.shared.latest.load_full()
    }

    /// The latest frame if its generation is above `seen`.
    pub fn newer_than(&self, seen: u64) -> Option<Arc<BufferedFrame>> {
        if self.generation() <= seen {
            return None;
        }
        self.latest().filter(|f| f.generation > seen)
    }
}
