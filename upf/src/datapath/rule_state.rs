//! Per-rule state the packet threads change with atomics only: the QERs'
//! token buckets and the URRs' volume counters and thresholds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{Counter, DataSignals};
use crate::rules::VolumeThreshold;
use crate::sdf::Direction;

/// A token bucket updated with atomics only. Rate in bytes per second.
#[derive(Debug)]
pub struct TokenBucket {
    rate: AtomicU64,
    burst: AtomicU64,
    tokens: AtomicU64,
    last_ns: AtomicU64,
}

/// Bucket depth: this much time at the rate, but at least a few full-size
/// packets.
const BURST_NS: u64 = 20_000_000;
pub(super) const MIN_BURST: u64 = 3 * 1514;

pub(super) fn burst_for(rate: u64) -> u64 {
    ((u128::from(rate) * u128::from(BURST_NS) / 1_000_000_000) as u64).max(MIN_BURST)
}

impl TokenBucket {
    /// A full bucket for `rate_bps` bits per second (`None`: unlimited).
    pub fn new(rate_bps: Option<u64>) -> Self {
        let rate = rate_bps.map_or(0, |r| r / 8);
        let burst = burst_for(rate);
        TokenBucket {
            rate: AtomicU64::new(rate),
            burst: AtomicU64::new(burst),
            tokens: AtomicU64::new(burst),
            last_ns: AtomicU64::new(0),
        }
    }

    /// Change the rate (QER update), keeping the tokens.
    pub fn set_rate(&self, rate_bps: Option<u64>) {
        let rate = rate_bps.map_or(0, |r| r / 8);
        self.rate.store(rate, Ordering::Relaxed);
        self.burst.store(burst_for(rate), Ordering::Relaxed);
    }

    /// Take `len` bytes at time `now_ns`; `false` if there are not enough.
    pub fn take(&self, now_ns: u64, len: u64) -> bool {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return true; // unlimited
        }
        let burst = self.burst.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Acquire);
        if now_ns > last {
            let add = (u128::from(now_ns - last) * u128::from(rate) / 1_000_000_000) as u64;
            if add > 0 {
                // Advance the clock only by the time the whole tokens cover,
                // so fractions are not lost at low rates.
                let used_ns = (u128::from(add) * 1_000_000_000 / u128::from(rate)) as u64;
                if self
                    .last_ns
                    .compare_exchange(last, last + used_ns, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let _ = self
                        .tokens
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                            Some(t.saturating_add(add).min(burst))
                        });
                }
            }
        }
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(len))
            .is_ok()
    }
}

/// QER state: gates and one bucket per direction.
#[derive(Debug)]
pub struct QerState {
    /// QER ID.
    pub id: u32,
    /// Uplink bucket.
    pub ul: TokenBucket,
    /// Downlink bucket.
    pub dl: TokenBucket,
}

const NONE: u64 = u64::MAX;

/// URR volume counters and threshold, shared with the packet threads.
#[derive(Debug)]
pub struct UrrState {
    /// URR ID.
    pub id: u32,
    /// Uplink volume since the last report.
    pub ul: Counter,
    /// Downlink volume since the last report.
    pub dl: Counter,
    th_total: AtomicU64,
    th_ul: AtomicU64,
    th_dl: AtomicU64,
    /// Set by a packet that reaches the threshold; cleared by the report.
    /// Setting it (false -> true) queues (SEID, URR ID) on the session
    /// table's [`DataSignals`], if attached.
    pub threshold_hit: AtomicBool,
    /// The owning session's SEID and the queue to announce a threshold on.
    notify: Option<(u64, Arc<DataSignals>)>,
}

impl UrrState {
    /// New counters for URR `id`, not attached to any queue (the flag alone
    /// tells a threshold).
    pub fn new(id: u32, th: Option<VolumeThreshold>) -> Self {
        let s = UrrState {
            id,
            ul: Counter::default(),
            dl: Counter::default(),
            th_total: AtomicU64::new(NONE),
            th_ul: AtomicU64::new(NONE),
            th_dl: AtomicU64::new(NONE),
            threshold_hit: AtomicBool::new(false),
            notify: None,
        };
        s.set_threshold(th);
        s
    }

    /// New counters for URR `id` of session `seid`, announcing a reached
    /// threshold on `signals`.
    pub fn attached(
        id: u32,
        th: Option<VolumeThreshold>,
        seid: u64,
        signals: Arc<DataSignals>,
    ) -> Self {
        let mut s = Self::new(id, th);
        s.notify = Some((seid, signals));
        s
    }
    /// Replace the threshold.
    pub fn set_threshold(&self, th: Option<VolumeThreshold>) {
        let th = th.unwrap_or_default();
        self.th_total
            .store(th.total.unwrap_or(NONE), Ordering::Relaxed);
        self.th_ul
            .store(th.uplink.unwrap_or(NONE), Ordering::Relaxed);
        self.th_dl
            .store(th.downlink.unwrap_or(NONE), Ordering::Relaxed);
    }
    #[cfg(test)]
    pub(super) fn count(&self, dir: Direction, len: usize) {
        self.count_n(dir, 1, len as u64);
    }
    /// Counts `packets` packets of `bytes` bytes in all (a run of one
    /// PDR), then checks the thresholds.
    pub(super) fn count_n(&self, dir: Direction, packets: u64, bytes: u64) {
        let (c, th) = match dir {
            Direction::Uplink => (&self.ul, &self.th_ul),
            Direction::Downlink => (&self.dl, &self.th_dl),
        };
        c.packets.fetch_add(packets, Ordering::Relaxed);
        let v = c.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let total = self.ul.bytes.load(Ordering::Relaxed) + self.dl.bytes.load(Ordering::Relaxed);
        if (v >= th.load(Ordering::Relaxed) || total >= self.th_total.load(Ordering::Relaxed))
            // Already set (report not taken yet): nothing to write, no
            // lock; only the packet that sets it queues the URR.
            && !self.threshold_hit.load(Ordering::Relaxed)
            && !self.threshold_hit.swap(true, Ordering::AcqRel)
        {
            if let Some((seid, q)) = &self.notify {
                q.push_threshold(*seid, self.id);
            }
        }
    }
    /// Take the volumes (ul packets, ul bytes, dl packets, dl bytes) and
    /// reset them.
    pub fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.ul.packets.swap(0, Ordering::AcqRel),
            self.ul.bytes.swap(0, Ordering::AcqRel),
            self.dl.packets.swap(0, Ordering::AcqRel),
            self.dl.bytes.swap(0, Ordering::AcqRel),
        )
    }
}
