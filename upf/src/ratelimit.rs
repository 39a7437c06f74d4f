//! Token buckets per peer address, bounded in the number of peers, with
//! the caller's clock: what limits the Error Indications the UPF sends
//! (TS 29.281 section 7.3.1 leaves the rate to the implementation; a flood
//! of G-PDUs for unknown TEIDs must not become a flood of answers).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-peer token buckets.
#[derive(Debug)]
pub struct PeerBuckets {
    rate: f64,
    burst: f64,
    max_peers: usize,
    peers: HashMap<Ipv4Addr, Bucket>,
}

impl PeerBuckets {
    /// `rate` tokens per second per peer, at most `burst` saved (0: never
    /// any), at most `max_peers` peers tracked at once.
    pub fn new(rate: f64, burst: f64, max_peers: usize) -> Self {
        PeerBuckets {
            rate,
            burst: burst.max(0.0),
            max_peers: max_peers.max(1),
            peers: HashMap::new(),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * self.rate).min(self.burst);
        b.last = now;
    }

    /// Take a token of `peer` at `now`; `false` when it has none left.
    ///
    /// A peer not tracked yet starts with a full bucket. When `max_peers`
    /// are tracked, the peers whose buckets have refilled are forgotten
    /// (they are as if new); if none has, a new peer gets nothing until
    /// one has (so a flood from many source addresses is bounded too).
    pub fn allow(&mut self, peer: Ipv4Addr, now: Instant) -> bool {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.max_peers {
            let (rate, burst) = (self.rate, self.burst);
            self.peers.retain(|_, b| {
                let dt = now.saturating_duration_since(b.last).as_secs_f64();
                b.tokens + dt * rate < burst
            });
            if self.peers.len() >= self.max_peers {
                return false;
            }
        }
        let mut b = self.peers.get(&peer).copied().unwrap_or(Bucket {
            tokens: self.burst,
            last: now,
        });
        self.refill(&mut b, now);
        let ok = b.tokens >= 1.0;
        if ok {
            b.tokens -= 1.0;
        }
        self.peers.insert(peer, b);
        ok
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    #[test]
    fn burst_then_rate_per_peer() {
        let t0 = Instant::now();
        let mut b = PeerBuckets::new(10.0, 5.0, 16);
        let first: usize = (0..100).filter(|_| b.allow(ip(1), t0)).count();
        assert_eq!(first, 5, "the burst");
        assert!(b.allow(ip(2), t0), "another peer has its own bucket");
        // One simulated second of a flood at 1000/s: 10 more.
        let passed = (1..=1000)
            .filter(|i| b.allow(ip(1), t0 + Duration::from_millis(*i)))
            .count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn bounded_in_peers() {
        let t0 = Instant::now();
        let mut b = PeerBuckets::new(1.0, 2.0, 4);
        for n in 0..4 {
            assert!(b.allow(ip(n), t0));
        }
        assert!(!b.allow(ip(99), t0), "table full of busy peers");
        assert_eq!(b.tracked(), 4);
        // Once their buckets refilled, old peers make room.
        assert!(b.allow(ip(99), t0 + Duration::from_secs(2)));
        assert!(b.tracked() <= 4);
        // A flood from 10 000 addresses never grows the table.
        for n in 0..10_000 {
            b.allow(ip(1000 + n), t0 + Duration::from_secs(2));
        }
        assert!(b.tracked() <= 4);
    }
}
