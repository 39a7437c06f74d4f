//! Our PFCP requests in flight: what each is for, its bytes for T1
//! retransmission, its deadline and the retransmissions left (N1).
//!
//! [`Txns`] finds a transaction by (UPF, sequence number) in O(1) when its
//! response comes, keeps the deadlines ordered so that the next timer and
//! the due transactions are read without a scan, and knows each UPF's
//! association and heartbeat transactions.

use super::SessionKey;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// What a request of ours is for.
#[derive(Debug, Clone)]
pub(super) enum TxnKind {
    Association,
    Heartbeat,
    Establish {
        key: SessionKey,
        gen: u64,
    },
    Modify {
        key: SessionKey,
        gen: u64,
    },
    Delete {
        key: SessionKey,
        gen: u64,
    },
    /// Deleting what a failed setup left; nobody waits for it.
    Cleanup,
}

impl TxnKind {
    /// Part of the association rather than of a session.
    fn is_node(&self) -> bool {
        matches!(self, TxnKind::Heartbeat | TxnKind::Association)
    }
}

/// A request of ours waiting for its response.
pub(super) struct Txn {
    pub(super) upf: usize,
    pub(super) data: Vec<u8>,
    /// Change it through [`Txns::rearm`] only: the deadline index follows it.
    deadline: Instant,
    pub(super) retries_left: u32,
    pub(super) kind: TxnKind,
}

impl Txn {
    pub(super) fn new(
        upf: usize,
        data: Vec<u8>,
        deadline: Instant,
        retries: u32,
        kind: TxnKind,
    ) -> Txn {
        Txn {
            upf,
            data,
            deadline,
            retries_left: retries,
            kind,
        }
    }

    /// The PFCP message type its response must have.
    pub(super) fn response_type(&self) -> Option<u8> {
        self.data.get(1).map(|t| t + 1)
    }
}

/// A transaction's key: (UPF index, sequence number).
pub(super) type TxnKey = (usize, u32);

/// The transactions in flight, indexed.
#[derive(Default)]
pub(super) struct Txns {
    by_key: HashMap<TxnKey, Txn>,
    /// (deadline, key) of every transaction: the next to expire first.
    by_deadline: BTreeSet<(Instant, TxnKey)>,
    /// Keys of the association and heartbeat transactions, by UPF.
    node: BTreeSet<TxnKey>,
}

impl Txns {
    pub(super) fn contains(&self, key: TxnKey) -> bool {
        self.by_key.contains_key(&key)
    }

    pub(super) fn get(&self, key: TxnKey) -> Option<&Txn> {
        self.by_key.get(&key)
    }

    /// Adds the transaction `seq` of `t.upf` (replacing one with that key).
    pub(super) fn insert(&mut self, seq: u32, t: Txn) {
        let key = (t.upf, seq);
        self.remove(key);
        self.by_deadline.insert((t.deadline, key));
        if t.kind.is_node() {
            self.node.insert(key);
        }
        self.by_key.insert(key, t);
    }

    pub(super) fn remove(&mut self, key: TxnKey) -> Option<Txn> {
        let t = self.by_key.remove(&key)?;
        self.unindex(key, &t);
        Some(t)
    }

    fn unindex(&mut self, key: TxnKey, t: &Txn) {
        self.by_deadline.remove(&(t.deadline, key));
        self.node.remove(&key);
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    /// Keys of the transactions whose deadline is `now` or earlier, the
    /// earliest first.
    pub(super) fn due(&self, now: Instant) -> Vec<TxnKey> {
        self.by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, k)| *k)
            .collect()
    }

    /// Moves the deadline of `key` to `deadline`; returns the transaction.
    pub(super) fn rearm(&mut self, key: TxnKey, deadline: Instant) -> Option<&mut Txn> {
        let t = self.by_key.get_mut(&key)?;
        self.by_deadline.remove(&(t.deadline, key));
        t.deadline = deadline;
        self.by_deadline.insert((deadline, key));
        Some(t)
    }

    /// Drops the association and heartbeat transactions of `upf`.
    pub(super) fn remove_node(&mut self, upf: usize) {
        let keys: Vec<TxnKey> = self
            .node
            .range((upf, 0)..=(upf, u32::MAX))
            .copied()
            .collect();
        for k in keys {
            self.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn txn(upf: usize, at: Instant, kind: TxnKind) -> Txn {
        Txn::new(upf, vec![0x20, 5, 0, 8], at, 3, kind)
    }

    #[test]
    fn deadlines_come_out_in_order_and_follow_rearm_and_remove() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut x = Txns::default();
        x.insert(7, txn(0, t0 + ms(30), TxnKind::Cleanup));
        x.insert(8, txn(1, t0 + ms(10), TxnKind::Heartbeat));
        x.insert(7, txn(1, t0 + ms(20), TxnKind::Association));
        assert_eq!(x.by_key.len(), 3);
        assert_eq!(x.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(x.due(t0 + ms(20)), vec![(1, 8), (1, 7)]);
        assert!(x.due(t0 + ms(9)).is_empty());

        assert!(x.rearm((1, 8), t0 + ms(40)).is_some());
        assert_eq!(x.next_deadline(), Some(t0 + ms(20)));
        assert_eq!(x.due(t0 + ms(40)), vec![(1, 7), (0, 7), (1, 8)]);

        assert!(x.remove((1, 7)).is_some());
        assert!(x.remove((1, 7)).is_none());
        assert_eq!(x.due(t0 + ms(40)), vec![(0, 7), (1, 8)]);
        assert!(x.rearm((1, 7), t0).is_none());
    }

    #[test]
    fn remove_node_drops_only_that_upfs_association_and_heartbeats() {
        let t0 = Instant::now();
        let mut x = Txns::default();
        x.insert(1, txn(0, t0, TxnKind::Heartbeat));
        x.insert(2, txn(0, t0, TxnKind::Association));
        x.insert(3, txn(0, t0, TxnKind::Cleanup));
        x.insert(4, txn(1, t0, TxnKind::Heartbeat));
        x.remove_node(0);
        assert!(!x.contains((0, 1)) && !x.contains((0, 2)));
        assert!(x.contains((0, 3)) && x.contains((1, 4)));
        assert_eq!(x.due(t0), vec![(0, 3), (1, 4)]);
    }

    #[test]
    fn replacing_a_key_leaves_one_indexed_entry() {
        let t0 = Instant::now();
        let mut x = Txns::default();
        x.insert(9, txn(0, t0, TxnKind::Heartbeat));
        x.insert(9, txn(0, t0, TxnKind::Heartbeat));
        assert_eq!(x.by_key.len(), 1);
        assert_eq!(x.due(t0), vec![(0, 9)]);
        x.remove_node(0);
        assert_eq!(x.by_key.len(), 0);
        assert_eq!(x.next_deadline(), None);
    }
}
