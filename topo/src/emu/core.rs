//! The I/O-free core of the link emulator: one direction of an impaired link.
//!
//! [`ImpairedQueue`] decides, for every frame pushed into it, whether the frame is
//! lost (seeded PRNG), dropped because the queue is full (drop-tail), or queued
//! with a due time of `now + delay ± jitter`. Frames leave in FIFO order: a frame
//! is never released before one received earlier, so jitter delays frames but never
//! reorders them (reordering would make TCP through a jittery link retransmit
//! spuriously). A consequence is that the due time of a frame is
//! `max(now + delay + jitter_sample, due time of the previous frame)`, also after a
//! configuration change that shortens the delay.
//!
//! The core reads no clock: every call takes `now`. Frame bytes live in one
//! preallocated byte ring; the driver receives straight into [`ImpairedQueue::rx_slot`]
//! and commits the length, so nothing is allocated per frame.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Impairment;

/// Queue bounds for one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most frames queued at once; further frames are dropped (drop-tail).
    pub max_frames: usize,
    /// Most bytes queued at once; further frames are dropped (drop-tail).
    pub max_bytes: usize,
    /// Largest frame accepted (size of the receive slot handed to the driver).
    pub max_frame_len: usize,
}

impl Default for QueueLimits {
    /// 16 MiB / 32768 frames per direction (2 Gbit/s × 64 ms). Frames up to
    /// 64 KiB + headers (GSO super-packets with a virtio-net header). Under
    /// sustained traffic the whole ring gets touched: ~16 MiB resident per direction.
    fn default() -> Self {
        QueueLimits {
            max_frames: 32 * 1024,
            max_bytes: 16 * 1024 * 1024,
            max_frame_len: 65536 + 4096,
        }
    }
}

/// What happened to a committed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Queued; it becomes due at this instant.
    Queued { due: Instant },
    /// Dropped by the loss impairment.
    Lost,
    /// Dropped because the queue was full (frames or bytes).
    QueueFull,
    /// Not queued: empty, or longer than `max_frame_len`.
    Invalid,
}

/// Counters of one direction (kept by the core, no I/O involved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames committed (all verdicts).
    pub received: u64,
    /// Frames queued.
    pub queued: u64,
    /// Frames handed out by [`ImpairedQueue::pop_due`].
    pub released: u64,
    /// Frames dropped by the loss impairment.
    pub lost: u64,
    /// Frames dropped because the queue was full.
    pub queue_full: u64,
    /// Frames rejected as empty or too long.
    pub invalid: u64,
}

/// Small, fast, seedable PRNG (SplitMix64). Deterministic across platforms.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for our n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    off: usize,
    len: usize,
    due: Instant,
}

/// Where the next received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Offset in the ring.
    Ring(usize),
    /// The ring has no room: the scratch buffer (the frame will be dropped).
    Scratch,
}

/// One direction of an impaired link: loss, delay, jitter, bounded FIFO queue.
#[derive(Debug)]
pub struct ImpairedQueue {
    impairment: Impairment,
    rng: SplitMix64,
    limits: QueueLimits,
    ring: Box<[u8]>,
    scratch: Box<[u8]>,
    queue: VecDeque<Slot>,
    queued_bytes: usize,
    last_due: Option<Instant>,
    pending: Option<Pending>,
    stats: QueueStats,
}

impl ImpairedQueue {
    /// A queue applying `impairment`, its random decisions drawn from `seed`.
    ///
    /// Allocates the ring (`max_bytes + 2 × max_frame_len`) once; pages are touched
    /// only as frames use them.
    pub fn new(impairment: Impairment, seed: u64, limits: QueueLimits) -> Self {
        let limits = QueueLimits {
            max_frames: limits.max_frames.max(1),
            max_bytes: limits.max_bytes.max(1),
            max_frame_len: limits.max_frame_len.max(1),
        };
        let ring_len = limits.max_bytes + 2 * limits.max_frame_len;
        ImpairedQueue {
            impairment,
            rng: SplitMix64::new(seed),
            limits,
            ring: vec![0u8; ring_len].into_boxed_slice(),
            scratch: vec![0u8; limits.max_frame_len].into_boxed_slice(),
            queue: VecDeque::with_capacity(limits.max_frames),
            queued_bytes: 0,
            last_due: None,
            pending: None,
            stats: QueueStats::default(),
        }
    }

    /// The impairment applied to frames committed from now on.
    pub fn impairment(&self) -> &Impairment {
        &self.impairment
    }

    /// Replace the impairment; frames already queued keep their due time.
    pub fn set_impairment(&mut self, impairment: Impairment) {
        self.impairment = impairment;
    }

    /// The limits in force.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// Counters so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// When the oldest queued frame becomes due (the driver sleeps until then).
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|s| s.due)
    }

    /// Offset in the ring where a frame of `max_frame_len` fits, if any.
    fn free_offset(&self) -> Option<usize> {
        let need = self.limits.max_frame_len;
        let cap = self.ring.len();
        let (Some(front), Some(back)) = (self.queue.front(), self.queue.back()) else {
            return Some(0);
        };
        let tail = back.off + back.len;
        if back.off >= front.off {
            // Not wrapped: used region is [front.off, tail).
            if cap - tail >= need {
                Some(tail)
            } else if front.off >= need {
                Some(0)
            } else {
                None
            }
        } else if front.off - tail >= need {
            // Wrapped: free region is [tail, front.off).
            Some(tail)
        } else {
            None
        }
    }

    /// Buffer of `max_frame_len` bytes to receive the next frame into; then call
    /// [`commit`](Self::commit) with the length received. Calling it again without
    /// committing returns the same place.
    pub fn rx_slot(&mut self) -> &mut [u8] {
        let pending = match self.free_offset() {
            Some(off) => Pending::Ring(off),
            None => Pending::Scratch,
        };
        self.pending = Some(pending);
        match pending {
            Pending::Ring(off) => &mut self.ring[off..off + self.limits.max_frame_len],
            Pending::Scratch => &mut self.scratch[..],
        }
    }

    /// Decide the fate of the `len` bytes just written into [`rx_slot`](Self::rx_slot),
    /// received at `now`.
    pub fn commit(&mut self, now: Instant, len: usize) -> Verdict {
        self.stats.received += 1;
        let pending = self.pending.take();
        if len == 0 || len > self.limits.max_frame_len {
            self.stats.invalid += 1;
            return Verdict::Invalid;
        }
        if self.impairment.loss_ppm > 0
            && self.rng.below(1_000_000) < u64::from(self.impairment.loss_ppm)
        {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        let off = match pending {
            Some(Pending::Ring(off)) => off,
            // No slot handed out, or only the scratch one: the ring is full.
            Some(Pending::Scratch) | None => {
                self.stats.queue_full += 1;
                return Verdict::QueueFull;
            }
        };
        if self.queue.len() >= self.limits.max_frames
            || self.queued_bytes + len > self.limits.max_bytes
        {
            self.stats.queue_full += 1;
            return Verdict::QueueFull;
        }
        let due = self.due_time(now);
        self.queue.push_back(Slot { off, len, due });
        self.queued_bytes += len;
        self.last_due = Some(due);
        self.stats.queued += 1;
        Verdict::Queued { due }
    }

    /// Copy `frame` in and commit it (convenience for tests and simulations).
    pub fn push(&mut self, now: Instant, frame: &[u8]) -> Verdict {
        if frame.is_empty() || frame.len() > self.limits.max_frame_len {
            self.pending = None;
            self.stats.received += 1;
            self.stats.invalid += 1;
            return Verdict::Invalid;
        }
        let slot = self.rx_slot();
        slot[..frame.len()].copy_from_slice(frame);
        self.commit(now, frame.len())
    }

    fn due_time(&mut self, now: Instant) -> Instant {
        let delay_ns = self.impairment.delay_us.saturating_mul(1000);
        let jitter_ns = self.impairment.jitter_us.saturating_mul(1000);
        let total_ns = if jitter_ns == 0 {
            delay_ns
        } else {
            // Uniform in [delay - jitter, delay + jitter], clamped at zero.
            let span = jitter_ns.saturating_mul(2).saturating_add(1);
            let sample = self.rng.below(span);
            (delay_ns + sample).saturating_sub(jitter_ns)
        };
        let due = now + Duration::from_nanos(total_ns);
        match self.last_due {
            Some(last) if last > due => last,
            _ => due,
        }
    }

    /// The oldest frame if it is due at `now`, removed from the queue. The slice
    /// stays valid until the next mutable call.
    pub fn pop_due(&mut self, now: Instant) -> Option<&[u8]> {
        let front = *self.queue.front()?;
        if front.due > now {
            return None;
        }
        self.queue.pop_front();
        self.queued_bytes -= front.len;
        self.stats.released += 1;
        Some(&self.ring[front.off..front.off + front.len])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn imp(delay_us: u64, jitter_us: u64, loss_ppm: u32) -> Impairment {
        Impairment {
            delay_us,
            jitter_us,
            loss_ppm,
        }
    }

    fn small() -> QueueLimits {
        QueueLimits {
            max_frames: 1000,
            max_bytes: 64 * 1024,
            max_frame_len: 2048,
        }
    }

    #[test]
    fn exact_delay() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(10_000, 0, 0), 1, small());
        assert_eq!(
            q.push(t0, b"hello"),
            Verdict::Queued {
                due: t0 + Duration::from_millis(10)
            }
        );
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(10)));
        assert!(q.pop_due(t0 + Duration::from_micros(9_999)).is_none());
        assert_eq!(
            q.pop_due(t0 + Duration::from_millis(10)),
            Some(&b"hello"[..])
        );
        assert!(q.is_empty());
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn zero_delay_is_due_immediately() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(Impairment::default(), 1, small());
        q.push(t0, b"a");
        assert_eq!(q.pop_due(t0), Some(&b"a"[..]));
    }

    #[test]
    fn jitter_within_bounds_and_spread() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(10_000, 2_000, 0), 7, small());
        let mut min = u64::MAX;
        let mut max = 0;
        // Push frames far apart in time so FIFO clamping never applies.
        for i in 0..2000u64 {
            let now = t0 + Duration::from_millis(100 * i);
            let Verdict::Queued { due } = q.push(now, b"x") else {
                panic!("not queued")
            };
            let d = (due - now).as_micros() as u64;
            min = min.min(d);
            max = max.max(d);
            assert!(q.pop_due(due).is_some());
        }
        assert!(min >= 8_000 && max <= 12_000, "min {min} max {max}");
        // Uniform over ±2 ms: 2000 samples reach close to both ends.
        assert!(min < 8_100 && max > 11_900, "min {min} max {max}");
    }

    #[test]
    fn jitter_larger_than_delay_clamps_at_zero() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(100, 1_000, 0), 3, small());
        for i in 0..500u64 {
            let now = t0 + Duration::from_millis(10 * i);
            let Verdict::Queued { due } = q.push(now, b"x") else {
                panic!()
            };
            assert!(due >= now && due <= now + Duration::from_micros(1_100));
            q.pop_due(due).unwrap();
        }
    }

    #[test]
    fn loss_ratio_with_fixed_seed() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(0, 0, 100_000), 42, small());
        let n = 100_000;
        let mut lost = 0;
        for _ in 0..n {
            match q.push(t0, b"x") {
                Verdict::Lost => lost += 1,
                Verdict::Queued { .. } => {
                    q.pop_due(t0).unwrap();
                }
                v => panic!("{v:?}"),
            }
        }
        // 10% of 100000: σ ≈ 95, allow ±5σ.
        assert!((9_525..=10_475).contains(&lost), "lost {lost}");
        assert_eq!(q.stats().lost, lost);
        assert_eq!(q.stats().released, n - lost);
    }

    #[test]
    fn same_seed_same_decisions() {
        let t0 = Instant::now();
        let run = |seed| {
            let mut q = ImpairedQueue::new(imp(1000, 500, 300_000), seed, small());
            (0..200)
                .map(|i| {
                    let now = t0 + Duration::from_millis(i * 10);
                    let v = q.push(now, b"x");
                    while q.pop_due(now + Duration::from_secs(1)).is_some() {}
                    v.clone_due(now)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    trait CloneDue {
        fn clone_due(&self, now: Instant) -> Option<Duration>;
    }
    impl CloneDue for Verdict {
        fn clone_due(&self, now: Instant) -> Option<Duration> {
            match self {
                Verdict::Queued { due } => Some(*due - now),
                _ => None,
            }
        }
    }

    #[test]
    fn no_loss_and_full_loss() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(0, 0, 0), 1, small());
        for _ in 0..1000 {
            assert!(matches!(q.push(t0, b"x"), Verdict::Queued { .. }));
            q.pop_due(t0).unwrap();
        }
        q.set_impairment(imp(0, 0, 1_000_000));
        for _ in 0..1000 {
            assert_eq!(q.push(t0, b"x"), Verdict::Lost);
        }
    }

    #[test]
    fn fifo_order_kept_under_jitter() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(5_000, 4_000, 0), 9, small());
        // 500 frames 10 µs apart: jitter samples would reorder them, FIFO must not.
        let mut last_due = t0;
        for i in 0..500u32 {
            let now = t0 + Duration::from_micros(10 * u64::from(i));
            let Verdict::Queued { due } = q.push(now, &i.to_be_bytes()) else {
                panic!()
            };
            assert!(due >= last_due);
            last_due = due;
        }
        let mut expect = 0u32;
        let mut now = t0;
        while !q.is_empty() {
            now = q.next_due().unwrap().max(now);
            while let Some(f) = q.pop_due(now) {
                assert_eq!(f, &expect.to_be_bytes());
                expect += 1;
            }
        }
        assert_eq!(expect, 500);
    }

    #[test]
    fn config_change_mid_stream() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(50_000, 0, 0), 1, small());
        assert_eq!(
            q.push(t0, b"old"),
            Verdict::Queued {
                due: t0 + Duration::from_millis(50)
            }
        );
        // Shorter delay: the new frame would be due at 11 ms but waits behind the
        // old one (no reordering); the old frame keeps its 50 ms.
        q.set_impairment(imp(10_000, 0, 0));
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(
            q.push(t1, b"new1"),
            Verdict::Queued {
                due: t0 + Duration::from_millis(50)
            }
        );
        assert!(q.pop_due(t0 + Duration::from_millis(49)).is_none());
        assert_eq!(q.pop_due(t0 + Duration::from_millis(50)), Some(&b"old"[..]));
        assert_eq!(
            q.pop_due(t0 + Duration::from_millis(50)),
            Some(&b"new1"[..])
        );
        // Once the old backlog has drained the new delay applies exactly.
        let t2 = t0 + Duration::from_millis(60);
        assert_eq!(
            q.push(t2, b"new2"),
            Verdict::Queued {
                due: t2 + Duration::from_millis(10)
            }
        );
        // Longer delay applies to frames after the change only.
        q.set_impairment(imp(30_000, 0, 0));
        let t3 = t2 + Duration::from_millis(1);
        assert_eq!(
            q.push(t3, b"new3"),
            Verdict::Queued {
                due: t3 + Duration::from_millis(30)
            }
        );
        assert_eq!(
            q.pop_due(t3 + Duration::from_millis(30)),
            Some(&b"new2"[..])
        );
        assert_eq!(
            q.pop_due(t3 + Duration::from_millis(30)),
            Some(&b"new3"[..])
        );
    }

    #[test]
    fn drop_tail_on_frame_limit() {
        let t0 = Instant::now();
        let limits = QueueLimits {
            max_frames: 10,
            ..small()
        };
        let mut q = ImpairedQueue::new(imp(1000, 0, 0), 1, limits);
        for i in 0..10u8 {
            assert!(matches!(q.push(t0, &[i]), Verdict::Queued { .. }));
        }
        assert_eq!(q.push(t0, &[10]), Verdict::QueueFull);
        assert_eq!(q.stats().queue_full, 1);
        // The queued ones are intact and in order.
        let later = t0 + Duration::from_millis(1);
        for i in 0..10u8 {
            assert_eq!(q.pop_due(later), Some(&[i][..]));
        }
        assert!(matches!(q.push(later, &[11]), Verdict::Queued { .. }));
    }

    #[test]
    fn drop_tail_on_byte_limit() {
        let t0 = Instant::now();
        let limits = QueueLimits {
            max_frames: 1000,
            max_bytes: 5000,
            max_frame_len: 1500,
        };
        let mut q = ImpairedQueue::new(imp(1000, 0, 0), 1, limits);
        let frame = [0xabu8; 1000];
        for _ in 0..5 {
            assert!(matches!(q.push(t0, &frame), Verdict::Queued { .. }));
        }
        assert_eq!(q.queued_bytes(), 5000);
        assert_eq!(q.push(t0, &frame), Verdict::QueueFull);
        assert!(matches!(q.push(t0, &[1; 0]), Verdict::Invalid));
        assert!(matches!(q.push(t0, &[1; 1501]), Verdict::Invalid));
    }

    #[test]
    fn ring_wraps_and_keeps_contents() {
        // Frames of varying sizes through a small ring many times over: every frame
        // comes out intact, in order, and the ring never hands out overlapping space.
        let t0 = Instant::now();
        let limits = QueueLimits {
            max_frames: 64,
            max_bytes: 8000,
            max_frame_len: 1500,
        };
        let mut q = ImpairedQueue::new(imp(0, 0, 0), 1, limits);
        let mut rng = SplitMix64::new(11);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        let mut buf = [0u8; 1500];
        for _ in 0..20_000 {
            if rng.below(3) > 0 {
                let len = 4 + rng.below(1497) as usize;
                buf[..4].copy_from_slice(&next_in.to_be_bytes());
                for (k, b) in buf[4..len].iter_mut().enumerate() {
                    *b = (next_in as usize + k) as u8;
                }
                match q.push(t0, &buf[..len]) {
                    Verdict::Queued { .. } => next_in += 1,
                    Verdict::QueueFull => {}
                    v => panic!("{v:?}"),
                }
            } else if let Some(f) = q.pop_due(t0) {
                let id = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                assert_eq!(id, next_out);
                for (k, b) in f[4..].iter().enumerate() {
                    assert_eq!(*b, (id as usize + k) as u8);
                }
                next_out += 1;
            }
        }
        assert!(next_out > 1000, "{next_out}");
    }

    #[test]
    fn never_full_below_the_byte_limit() {
        // Whatever the fragmentation of the ring, a frame that keeps the queue within
        // its byte and frame limits is accepted.
        let t0 = Instant::now();
        let limits = QueueLimits {
            max_frames: 1000,
            max_bytes: 10_000,
            max_frame_len: 1000,
        };
        let mut q = ImpairedQueue::new(imp(0, 0, 0), 1, limits);
        let mut rng = SplitMix64::new(3);
        for _ in 0..50_000 {
            let len = 1 + rng.below(1000) as usize;
            if q.queued_bytes() + len <= limits.max_bytes && rng.below(2) == 0 {
                assert!(matches!(
                    q.push(t0, &vec![1u8; len]),
                    Verdict::Queued { .. }
                ));
            } else {
                q.pop_due(t0);
            }
        }
        assert_eq!(q.stats().queue_full, 0);
    }

    #[test]
    fn byte_limit_counts_bytes_not_slots() {
        let t0 = Instant::now();
        let limits = QueueLimits {
            max_frames: 1000,
            max_bytes: 100,
            max_frame_len: 100,
        };
        // The ring (max_bytes + 2 × max_frame_len) always has a full slot free
        // while the byte limit holds, so the byte limit is what drops here.
        let mut q = ImpairedQueue::new(imp(1000, 0, 0), 1, limits);
        let mut queued = 0;
        for _ in 0..10 {
            if matches!(q.push(t0, &[7u8; 40]), Verdict::Queued { .. }) {
                queued += 1;
            }
        }
        assert_eq!(queued, 2); // byte limit 100 → two frames of 40
        assert_eq!(q.stats().queue_full, 8);
    }

    #[test]
    fn rx_slot_commit_without_copy() {
        let t0 = Instant::now();
        let mut q = ImpairedQueue::new(imp(0, 0, 0), 1, small());
        let slot = q.rx_slot();
        assert_eq!(slot.len(), 2048);
        slot[..3].copy_from_slice(b"abc");
        assert!(matches!(q.commit(t0, 3), Verdict::Queued { .. }));
        // A slot that is lost is reused by the next frame.
        assert_eq!(q.pop_due(t0), Some(&b"abc"[..]));
    }
}
