//! SSIM of the stream selector's frame pairs, off the display thread.
//!
//! While the selector watches a migration, every new pair of latest frames
//! (source, destination) must be compared. Doing it in the display thread
//! puts the SSIM (a few hundred microseconds at 640x360) between the
//! switch decision and the first blended frame. [`PairScorer`] does it in
//! its own thread instead: the display thread asks for the pair it holds
//! ([`PairScorer::score`], which answers at once with the value if that
//! pair is scored, else queues it), the worker scores the newest pair
//! asked for (an older one not yet taken is replaced: only the latest pair
//! matters) and wakes the display thread, whose next step finds the value
//! and, if the pair is similar enough, decides and blends at once.
//!
//! Pairs are told apart by the frames themselves (the same `Arc`s), not
//! by generation numbers, which restart with every new stream.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use media::{FastSsim, Frame};

use super::buffer::{BufferedFrame, Wake};
use super::StreamError;

type Pair = (Arc<BufferedFrame>, Arc<BufferedFrame>);

#[derive(Default)]
struct Slot {
    /// The pair to score next.
    job: Option<Pair>,
    /// The pair asked for last (queued, being scored, or done).
    asked: Option<Pair>,
    /// The pair scored last, and its SSIM.
    done: Option<(Pair, f64)>,
    /// Pairs scored so far.
    scored: u64,
    stop: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    cv: Condvar,
    /// Notified when a score is ready (the display thread's wake-up).
    wake: Option<Arc<Wake>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A poisoned lock holds plain data still valid to read.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The SSIM worker thread of a screen.
pub struct PairScorer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PairScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairScorer")
            .field("scored", &self.scored())
            .finish()
    }
}

fn same(a: &Pair, s: &Arc<BufferedFrame>, d: &Arc<BufferedFrame>) -> bool {
    Arc::ptr_eq(&a.0, s) && Arc::ptr_eq(&a.1, d)
}

impl PairScorer {
    /// Starts the worker; `wake` is notified after each score.
    pub fn spawn(wake: Option<Arc<Wake>>) -> Result<PairScorer, StreamError> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            cv: Condvar::new(),
            wake,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pair-ssim".into())
            .spawn(move || work(&s))
            .map_err(StreamError::Io)?;
        Ok(PairScorer {
            shared,
            thread: Some(thread),
        })
    }

    /// The SSIM of the pair `(s, d)` if it is scored; otherwise `None`,
    /// and the pair is queued (once) in place of any pair not yet taken.
    pub fn score(&self, s: &Arc<BufferedFrame>, d: &Arc<BufferedFrame>) -> Option<f64> {
        let mut slot = self.shared.lock();
        if let Some((p, v)) = &slot.done {
            if same(p, s, d) {
                return Some(*v);
            }
        }
        if slot.asked.as_ref().is_some_and(|p| same(p, s, d)) {
            return None;
        }
        let pair = (s.clone(), d.clone());
        slot.asked = Some(pair.clone());
        slot.job = Some(pair);
        drop(slot);
        self.shared.cv.notify_one();
        None
    }

    /// Pairs scored so far.
    pub fn scored(&self) -> u64 {
        self.shared.lock().scored
    }
}

impl Drop for PairScorer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn work(shared: &Shared) {
    let mut ssim = None;
    loop {
        let pair = {
            let mut slot = shared.lock();
            loop {
                if slot.stop {
                    return;
                }
                if let Some(p) = slot.job.take() {
                    break p;
                }
                slot = shared.cv.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let v = fast_ssim(&mut ssim, &pair.0.frame, &pair.1.frame);
        {
            let mut slot = shared.lock();
            slot.done = Some((pair, v));
            slot.scored += 1;
        }
        if let Some(w) = &shared.wake {
            w.notify();
        }
    }
}

/// SSIM of two frames on the downscaled luma plane (0 for frames that
/// cannot be compared, e.g. of different sizes: not similar).
pub(crate) fn fast_ssim(s: &mut Option<FastSsim>, a: &Frame, b: &Frame) -> f64 {
    let fresh = || FastSsim::new(a.width, a.height);
    let f = s.get_or_insert_with(fresh);
    match f.score(a, b) {
        Ok(v) => v,
        Err(_) => {
            *f = fresh();
            f.score(a, b).unwrap_or(0.0)
        }
    }
}
