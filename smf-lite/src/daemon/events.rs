//! The UEs' N1 event lists and their long poll.
//!
//! The control thread appends (a short lock, no await); a long poll waits
//! outside it, on a watch channel of the UE's latest `seq`. Each UE keeps
//! its last [`EVENTS_KEPT`] events, numbered 1, 2, ...; the entry of a UE
//! that only ever polled is dropped when its last poll ends.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use wire::ctl::migration::{UeEvent, UeEventKind, UeEvents, EVENTS_KEPT};

struct UeLog {
    events: VecDeque<UeEvent>,
    /// The latest `seq` (0: none yet).
    seq: watch::Sender<u64>,
}

impl UeLog {
    fn new() -> UeLog {
        UeLog {
            events: VecDeque::new(),
            seq: watch::Sender::new(0),
        }
    }

    fn after(&self, after: u64) -> UeEvents {
        UeEvents {
            first_seq: self.events.front().map_or(0, |e| e.seq),
            events: self
                .events
                .iter()
                .filter(|e| e.seq > after)
                .cloned()
                .collect(),
        }
    }

    /// Never had an event, and nobody waits on it.
    fn idle(&self) -> bool {
        self.events.is_empty() && *self.seq.borrow() == 0 && self.seq.receiver_count() == 0
    }
}

/// Every UE's event list; cheap to clone (clones share it).
#[derive(Clone, Default)]
pub(super) struct Events {
    inner: Arc<Mutex<HashMap<String, UeLog>>>,
}

impl Events {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, UeLog>> {
        // A panic while holding it leaves the lists consistent (each change
        // is one push or pop): go on with them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event to the UE's list and wakes its long polls.
    pub fn push(&self, ue_id: &str, migration: u64, at_ns: u64, kind: UeEventKind) {
        let mut map = self.lock();
        let log = map.entry(ue_id.to_owned()).or_insert_with(UeLog::new);
        let seq = *log.seq.borrow() + 1;
        log.events.push_back(UeEvent {
            seq,
            migration,
            at_ns,
            kind,
        });
        while log.events.len() > EVENTS_KEPT {
            log.events.pop_front();
        }
        log.seq.send_replace(seq);
    }

    /// The UE's events after `after`: at once if there are any, else when
    /// one arrives or `wait` has passed (then none).
    pub async fn poll(&self, ue_id: &str, after: u64, wait: Duration) -> UeEvents {
        let mut rx = {
            let mut map = self.lock();
            let log = map.entry(ue_id.to_owned()).or_insert_with(UeLog::new);
            let now = log.after(after);
            if !now.events.is_empty() || wait.is_zero() {
                if log.idle() {
                    map.remove(ue_id);
                }
                return now;
            }
            Waiting {
                events: self,
                ue_id,
                rx: Some(log.seq.subscribe()),
            }
        };
        if let Some(rx) = rx.rx.as_mut() {
            // Err: the list was dropped meanwhile; the answer is empty then.
            let _ = tokio::time::timeout(wait, rx.wait_for(|&seq| seq > after)).await;
        }
        let answer = self.lock().get(ue_id).map(|l| l.after(after));
        answer.unwrap_or(UeEvents {
            first_seq: 0,
            events: Vec::new(),
        })
    }

    /// How many UEs have a list (for tests of the cleanup).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A long poll in progress: when it ends (answered, timed out, or the
/// client gone), a list that only served polls is dropped.
struct Waiting<'a> {
    events: &'a Events,
    ue_id: &'a str,
    rx: Option<watch::Receiver<u64>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.rx = None;
        let mut map = self.events.lock();
        if map.get(self.ue_id).is_some_and(UeLog::idle) {
            map.remove(self.ue_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn released(psi: u8) -> UeEventKind {
        UeEventKind::Released {
            edge: "edge1".into(),
            pdu_session_id: psi,
        }
    }

    #[tokio::test]
    async fn answers_at_once_when_pending_else_waits_bounded() {
        let ev = Events::default();
        ev.push("ue1", 1, 10, released(1));
        ev.push("ue1", 1, 11, released(2));
        let t0 = Instant::now();
        let r = ev.poll("ue1", 0, Duration::from_secs(20)).await;
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!((r.first_seq, r.events.len()), (1, 2));
        assert_eq!(r.events[1].seq, 2);
        let r = ev.poll("ue1", 1, Duration::from_secs(20)).await;
        assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
        // Nothing after 2: waits the whole (short) wait, answers empty.
        let t0 = Instant::now();
        let r = ev.poll("ue1", 2, Duration::from_millis(150)).await;
        assert!(t0.elapsed() >= Duration::from_millis(150));
        assert!(r.events.is_empty());
        assert_eq!(r.first_seq, 1);
        // A poll of a UE without events leaves nothing behind.
        assert!(ev
            .poll("ue2", 0, Duration::from_millis(10))
            .await
            .events
            .is_empty());
        assert!(ev.poll("ue2", 0, Duration::ZERO).await.events.is_empty());
        assert_eq!(ev.len(), 1);
    }

    #[tokio::test]
    async fn a_waiting_poll_wakes_on_push_and_lists_stay_bounded() {
        let ev = Events::default();
        let ev2 = ev.clone();
        let waiter = tokio::spawn(async move {
            let t0 = Instant::now();
            let r = ev2.poll("ue1", 0, Duration::from_secs(20)).await;
            (t0.elapsed(), r)
        });
        // Wait (with a deadline) for the poll to be parked, then push.
        let deadline = Instant::now() + Duration::from_secs(5);
        while ev
            .lock()
            .get("ue1")
            .is_none_or(|l| l.seq.receiver_count() == 0)
        {
            assert!(Instant::now() < deadline, "poll never waited");
            tokio::task::yield_now().await;
        }
        ev.push("ue1", 3, 1, released(1));
        let (took, r) = waiter.await.expect("join");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].migration, 3);
        for i in 0..(EVENTS_KEPT as u64 + 10) {
            ev.push("ue1", 3, i, released(1));
        }
        let r = ev.poll("ue1", 0, Duration::ZERO).await;
        assert_eq!(r.events.len(), EVENTS_KEPT);
        assert_eq!(r.first_seq, 12);
        assert_eq!(
            r.events.last().map(|e| e.seq),
            Some(EVENTS_KEPT as u64 + 11)
        );
    }
}
