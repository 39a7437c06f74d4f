//! The retransmission store: responses kept so that a retransmitted
//! request (same peer address, same sequence number, same bytes) gets the
//! same answer and is executed once (TS 29.244 §6.4).
//!
//! Bounded three ways: entries older than the lifetime go; past the total
//! bound the oldest entry is evicted; past the per-peer bound (by peer IP
//! address, whatever its ports) that peer's oldest entry is evicted, so
//! that one peer cannot push out the others' answers. A peer that restarted
//! (new Recovery Time Stamp) loses all its entries: answers of its previous
//! life are never replayed to the new one.
//!
//! A request is recognised by a keyed hash of its bytes (keys drawn per
//! process, so a peer cannot make another request collide with a stored
//! one): the same sequence number with other contents is a new request.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Default bound on stored responses.
pub const MAX_ENTRIES: usize = 8192;
/// Default bound on stored responses per peer address.
pub const MAX_PER_PEER: usize = 2048;

type Key = (SocketAddr, u32);

#[derive(Debug)]
struct Entry {
    id: u64,
    at: Instant,
    digest: u64,
    response: Vec<u8>,
}

/// Stored responses, bounded in time, in count and per peer.
#[derive(Debug)]
pub struct ReplayStore {
    ttl: Duration,
    max: usize,
    max_per_peer: usize,
    hasher: RandomState,
    entries: HashMap<Key, Entry>,
    /// Insertion order (ids grow with time): the oldest first.
    order: BTreeMap<u64, Key>,
    /// Each peer address's entries, by id.
    by_peer: HashMap<IpAddr, BTreeSet<u64>>,
    next_id: u64,
    evicted: u64,
}

impl ReplayStore {
    /// An empty store keeping responses `ttl`, at most `max` of them and
    /// `max_per_peer` per peer address.
    pub fn new(ttl: Duration, max: usize, max_per_peer: usize) -> ReplayStore {
        ReplayStore {
            ttl,
            max: max.max(1),
            max_per_peer: max_per_peer.max(1),
            hasher: RandomState::new(),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            by_peer: HashMap::new(),
            next_id: 0,
            evicted: 0,
        }
    }

    /// The digest a request is recognised by.
    pub fn digest(&self, request: &[u8]) -> u64 {
        self.hasher.hash_one(request)
    }

    /// The stored response to this request, if it is a retransmission.
    pub fn lookup(&self, from: SocketAddr, seq: u32, digest: u64) -> Option<&[u8]> {
        self.entries
            .get(&(from, seq))
            .filter(|e| e.digest == digest)
            .map(|e| e.response.as_slice())
    }

    /// Keep `response` to the request `(from, seq, digest)` answered at
    /// `now`, evicting what the bounds require.
    pub fn insert(
        &mut self,
        now: Instant,
        from: SocketAddr,
        seq: u32,
        digest: u64,
        response: Vec<u8>,
    ) {
        let key = (from, seq);
        self.remove(&key);
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            key,
            Entry {
                id,
                at: now,
                digest,
                response,
            },
        );
        self.order.insert(id, key);
        let peer = self.by_peer.entry(from.ip()).or_default();
        peer.insert(id);
        let over_peer = (peer.len() > self.max_per_peer)
            .then(|| peer.first().copied())
            .flatten();
        if let Some(oldest) = over_peer {
            self.evict(oldest);
        }
        while self.entries.len() > self.max {
            let Some((&oldest, _)) = self.order.first_key_value() else {
                break;
            };
            self.evict(oldest);
        }
    }

    /// Drop entries older than the lifetime.
    pub fn expire(&mut self, now: Instant) {
        while let Some(next) = self.next_expiry() {
            if now < next {
                break;
            }
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            self.remove(&key);
        }
    }

    /// When the oldest entry expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        let (_, key) = self.order.first_key_value()?;
        self.entries.get(key).map(|e| e.at + self.ttl)
    }

    /// Forget every response to `peer` (it restarted); how many went.
    pub fn drop_peer(&mut self, peer: IpAddr) -> usize {
        let ids = self.by_peer.remove(&peer).unwrap_or_default();
        for id in &ids {
            if let Some(key) = self.order.remove(id) {
                self.entries.remove(&key);
            }
        }
        ids.len()
    }

    /// Stored responses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stored responses of one peer address.
    pub fn len_of(&self, peer: IpAddr) -> usize {
        self.by_peer.get(&peer).map_or(0, BTreeSet::len)
    }

    /// Entries evicted by the count bounds so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn evict(&mut self, id: u64) {
        if let Some(key) = self.order.get(&id).copied() {
            self.remove(&key);
            self.evicted += 1;
        }
    }

    fn remove(&mut self, key: &Key) {
        let Some(e) = self.entries.remove(key) else {
            return;
        };
        self.order.remove(&e.id);
        if let Some(ids) = self.by_peer.get_mut(&key.0.ip()) {
            ids.remove(&e.id);
            if ids.is_empty() {
                self.by_peer.remove(&key.0.ip());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 4, i], port))
    }

    #[test]
    fn same_bytes_replayed_other_bytes_not() {
        let t0 = Instant::now();
        let mut s = ReplayStore::new(Duration::from_secs(60), 10, 10);
        let d = s.digest(b"request");
        s.insert(t0, addr(1, 8805), 7, d, b"answer".to_vec());
        assert_eq!(s.lookup(addr(1, 8805), 7, d), Some(&b"answer"[..]));
        assert_eq!(s.lookup(addr(1, 8805), 7, s.digest(b"other")), None);
        assert_eq!(s.lookup(addr(1, 8806), 7, d), None, "another port");
        assert_eq!(s.lookup(addr(2, 8805), 7, d), None, "another peer");
    }

    #[test]
    fn bounded_by_time_count_and_peer() {
        let t0 = Instant::now();
        let mut s = ReplayStore::new(Duration::from_secs(60), 100, 10);
        // One peer floods with many ports: it keeps its last 10 only.
        for i in 0..1000u32 {
            let t = t0 + Duration::from_millis(u64::from(i));
            s.insert(t, addr(9, 1000 + (i % 50) as u16), i, 1, vec![0; 8]);
        }
        assert_eq!(s.len_of(addr(9, 0).ip()), 10);
        assert!(s.lookup(addr(9, 1000 + 999 % 50), 999, 1).is_some());
        assert!(s.lookup(addr(9, 1000), 0, 1).is_none(), "oldest evicted");
        // Many peers: the total bound holds, the oldest go first.
        for p in 0..50u8 {
            for q in 0..5u32 {
                s.insert(
                    t0 + Duration::from_secs(1),
                    addr(100 + p, 8805),
                    q,
                    1,
                    vec![],
                );
            }
        }
        assert_eq!(s.len(), 100);
        assert_eq!(
            s.len_of(addr(9, 0).ip()),
            0,
            "the flood's entries were the oldest"
        );
        assert!(s.evicted() > 0);
        // Time: all expire 60 s after they were stored.
        assert_eq!(s.next_expiry(), Some(t0 + Duration::from_secs(61)));
        s.expire(t0 + Duration::from_secs(61));
        assert!(s.is_empty());
        assert!(s.by_peer.is_empty() && s.order.is_empty());
    }

    #[test]
    fn a_restarted_peer_loses_its_answers_only() {
        let t0 = Instant::now();
        let mut s = ReplayStore::new(Duration::from_secs(60), 100, 100);
        s.insert(t0, addr(1, 8805), 1, 1, vec![1]);
        s.insert(t0, addr(1, 40000), 2, 1, vec![2]);
        s.insert(t0, addr(2, 8805), 1, 1, vec![3]);
        assert_eq!(s.drop_peer(addr(1, 0).ip()), 2);
        assert!(s.lookup(addr(1, 8805), 1, 1).is_none());
        assert!(s.lookup(addr(2, 8805), 1, 1).is_some());
        assert_eq!(s.len(), 1);
    }
}
