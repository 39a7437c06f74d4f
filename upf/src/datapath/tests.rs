//! Token buckets, the packet buffer, URR thresholds and the data-path
//! signal queues.

use super::rule_state::{burst_for, MIN_BURST};
use super::*;
use crate::rules::VolumeThreshold;
use std::time::Duration;

#[test]
fn token_bucket_enforces_rate() {
    // 8 Mbit/s = 1 MB/s. Offer 1000-byte packets every 100 us (10 MB/s)
    // for one simulated second: about 1 MB plus the burst must pass.
    let b = TokenBucket::new(Some(8_000_000));
    let mut passed = 0u64;
    for i in 0..10_000u64 {
        if b.take(i * 100_000, 1000) {
            passed += 1000;
        }
    }
    let burst = burst_for(1_000_000);
    assert!(passed <= 1_000_000 + burst + 1000, "passed {passed}");
    assert!(passed >= 990_000, "passed {passed}");
}

#[test]
fn token_bucket_low_rate_keeps_fractions() {
    // 80 kbit/s = 10 kB/s, packets of 100 B offered every 1 ms (100 kB/s).
    let b = TokenBucket::new(Some(80_000));
    let mut passed = 0u64;
    for i in 0..10_000u64 {
        if b.take(i * 1_000_000, 100) {
            passed += 100;
        }
    }
    // 10 s at 10 kB/s = 100 kB, plus the initial burst.
    let expect = 100_000 + MIN_BURST;
    assert!(
        passed.abs_diff(expect) <= 200,
        "passed {passed}, expected ~{expect}"
    );
}

#[test]
fn unlimited_bucket() {
    let b = TokenBucket::new(None);
    assert!((0..1000).all(|_| b.take(0, 65535)));
}

#[test]
fn buffer_bounds() {
    let mut b = PacketBuffer::new(2, 100);
    assert!(b.push(&[1; 10]));
    assert!(b.push(&[2; 10]));
    assert!(!b.push(&[3; 10]), "packet bound");
    assert_eq!(b.pop(), Some(vec![1; 10]));
    assert!(!b.push(&[4; 95]), "byte bound");
    assert!(b.push(&[5; 90]));
    assert_eq!(b.len(), 2);
}

#[test]
fn urr_threshold_flag() {
    let u = UrrState::new(
        1,
        Some(VolumeThreshold {
            total: Some(1000),
            ..Default::default()
        }),
    );
    u.count(Direction::Uplink, 600);
    assert!(!u.threshold_hit.load(Ordering::Relaxed));
    u.count(Direction::Downlink, 400);
    assert!(u.threshold_hit.load(Ordering::Relaxed));
    assert_eq!(u.take(), (1, 600, 1, 400));
    assert_eq!(u.take(), (0, 0, 0, 0));
    let _ = Duration::ZERO;
}

#[test]
fn signals_queued_only_when_a_flag_is_set() {
    let q = Arc::new(DataSignals::new());
    let th = VolumeThreshold {
        total: Some(100),
        ..Default::default()
    };
    let u = UrrState::attached(3, Some(th), 42, q.clone());
    u.count(Direction::Uplink, 60);
    assert_eq!(q.take_thresholds(), vec![], "below the threshold");
    u.count(Direction::Uplink, 60);
    u.count(Direction::Downlink, 60);
    assert_eq!(q.take_thresholds(), vec![(42, 3)], "once while set");
    u.count(Direction::Uplink, 60);
    assert_eq!(q.take_thresholds(), vec![]);
    // The report clears the flag; the next crossing queues again.
    u.take();
    u.threshold_hit.store(false, Ordering::Release);
    u.count(Direction::Uplink, 150);
    assert_eq!(q.take_thresholds(), vec![(42, 3)]);

    let s = SessionShared::new(7, 10, 10_000, q.clone());
    assert!(s.buffer_packet(&[1; 10]));
    assert!(s.buffer_packet(&[2; 10]));
    assert_eq!(q.take_dl_data(), vec![7], "first packet of the episode");
    s.drain_buffer(|_| {});
    assert!(s.buffer_packet(&[3; 10]));
    assert_eq!(q.take_dl_data(), Vec::<u64>::new(), "flag not consumed yet");
    assert!(s.dl_data_pending.swap(false, Ordering::AcqRel));
    s.drain_buffer(|_| {});
    assert!(s.buffer_packet(&[4; 10]));
    assert_eq!(q.take_dl_data(), vec![7], "a new episode");
}
