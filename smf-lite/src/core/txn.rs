//! Our PFCP requests in flight: what each is for, its bytes for T1
//! retransmission, its deadline and the retransmissions left (N1).

use super::SessionKey;
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
    pub(super) fn is_node(&self) -> bool {
        matches!(self, TxnKind::Heartbeat | TxnKind::Association)
    }
}

/// A request of ours waiting for its response.
pub(super) struct Txn {
    pub(super) upf: usize,
    pub(super) data: Vec<u8>,
    pub(super) deadline: Instant,
    pub(super) retries_left: u32,
    pub(super) kind: TxnKind,
}
