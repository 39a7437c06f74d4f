//! The gNB's tunnel table: which UE address goes into which uplink tunnel,
//! and which downlink TEID belongs to which session.
//!
//! The data path reads an immutable [`Snapshot`] through an `ArcSwap` (no
//! lock, no allocation per packet); the control plane (N2-lite) changes the
//! table under a mutex and publishes a new snapshot. The snapshot's maps
//! are persistent (imbl): a change copies O(log n) nodes, not the table, so
//! setting up the n-th tunnel costs the same as the first. Counters are
//! atomics in each [`Tunnel`], shared by every snapshot that holds it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;

/// A tunnel operation the control plane asked for cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// The UE address already belongs to another session.
    #[error("UE address {addr} is already used by {ue_id} session {psi}")]
    AddressInUse {
        /// The address.
        addr: Ipv4Addr,
        /// The session that has it.
        ue_id: String,
        /// Its PDU session id.
        psi: u8,
    },
    /// No tunnel with this downlink TEID.
    #[error("no tunnel with downlink TEID {0}")]
    UnknownTeid(u32),
    /// Every TEID is taken.
    #[error("no free TEID")]
    NoFreeTeid,
}

/// Per-tunnel counters (read by `/metrics` and `/tunnels`).
#[derive(Debug, Default)]
pub struct TunnelCounters {
    /// Uplink packets encapsulated and sent.
    pub ul_packets: AtomicU64,
    /// Uplink bytes (inner packets).
    pub ul_bytes: AtomicU64,
    /// Uplink packets that could not be sent.
    pub ul_drops: AtomicU64,
    /// Downlink packets decapsulated and written to the TUN.
    pub dl_packets: AtomicU64,
    /// Downlink bytes (inner packets).
    pub dl_bytes: AtomicU64,
    /// Downlink packets dropped (TUN write failed, not IPv4).
    pub dl_drops: AtomicU64,
    /// End Markers received on this tunnel.
    pub end_markers: AtomicU64,
}

/// One session's tunnel.
#[derive(Debug)]
pub struct Tunnel {
    /// UE identity.
    pub ue_id: String,
    /// PDU session id.
    pub psi: u8,
    /// The UE's address in the session.
    pub ue_addr: Ipv4Addr,
    /// The gNB's TEID (downlink).
    pub dl_teid: u32,
    /// The UPF's TEID (uplink).
    pub ul_teid: u32,
    /// Where uplink G-PDUs go (UPF N3 address, port 2152).
    pub ul_peer: SocketAddr,
    /// QFI in the uplink PDU Session Container.
    pub qfi: u8,
    /// Replaced by a newer tunnel of the same session (path switch): no
    /// uplink goes here any more, downlink is still accepted until the End
    /// Marker.
    pub draining: AtomicBool,
    /// Counters.
    pub counters: TunnelCounters,
}

/// A tunnel as `/tunnels` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TunnelView {
    pub ue_id: String,
    pub pdu_session_id: u8,
    pub ue_addr: Ipv4Addr,
    pub dl_teid: u32,
    pub ul_teid: u32,
    pub ul_peer: SocketAddr,
    pub qfi: u8,
    pub draining: bool,
    pub ul_packets: u64,
    pub ul_bytes: u64,
    pub dl_packets: u64,
    pub dl_bytes: u64,
    pub dl_drops: u64,
    pub end_markers: u64,
}

impl Tunnel {
    /// The JSON view.
    pub fn view(&self) -> TunnelView {
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TunnelView {
            ue_id: self.ue_id.clone(),
            pdu_session_id: self.psi,
            ue_addr: self.ue_addr,
            dl_teid: self.dl_teid,
            ul_teid: self.ul_teid,
            ul_peer: self.ul_peer,
            qfi: self.qfi,
            draining: self.draining.load(Ordering::Relaxed),
            ul_packets: r(&c.ul_packets),
            ul_bytes: r(&c.ul_bytes),
            dl_packets: r(&c.dl_packets),
            dl_bytes: r(&c.dl_bytes),
            dl_drops: r(&c.dl_drops),
            end_markers: r(&c.end_markers),
        }
    }
}

/// What the data path looks up; immutable once published.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Uplink: UE address -> the session's current tunnel.
    pub by_ue: imbl::HashMap<Ipv4Addr, Arc<Tunnel>>,
    /// Downlink: the gNB's TEID -> tunnel (current and draining ones).
    pub by_teid: imbl::HashMap<u32, Arc<Tunnel>>,
}

/// The control plane's own indexes (under the table's mutex).
#[derive(Debug, Default)]
struct Ctl {
    /// (UE, PDU session id) -> its tunnels' TEIDs (current and draining).
    by_session: HashMap<(String, u8), Vec<u32>>,
    /// UE address -> how many tunnels (current or draining) carry it.
    addr_refs: HashMap<Ipv4Addr, usize>,
}

impl Ctl {
    /// Drops one reference to `addr`; whether it was the last.
    fn unref(&mut self, addr: Ipv4Addr) -> bool {
        match self.addr_refs.get_mut(&addr) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.addr_refs.remove(&addr);
                true
            }
        }
    }
}

/// What a change did, so the caller can fix routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The tunnel added or removed.
    pub tunnel: Arc<Tunnel>,
    /// The UE address no longer has any tunnel (remove its host route).
    pub addr_freed: bool,
    /// The add replaced an older tunnel of the same session (path switch);
    /// its TEID.
    pub replaced: Option<u32>,
}

impl PartialEq for Tunnel {
    fn eq(&self, other: &Self) -> bool {
        self.dl_teid == other.dl_teid
    }
}
impl Eq for Tunnel {}

/// The tunnel table.
#[derive(Debug)]
pub struct TunnelTable {
    snap: ArcSwap<Snapshot>,
    ctl: Mutex<Ctl>,
    next_teid: AtomicU32,
}

impl Default for TunnelTable {
    fn default() -> Self {
        TunnelTable::new()
    }
}

impl TunnelTable {
    /// An empty table; TEIDs are allocated from 1 upwards.
    pub fn new() -> TunnelTable {
        TunnelTable {
            snap: ArcSwap::from_pointee(Snapshot::default()),
            ctl: Mutex::new(Ctl::default()),
            next_teid: AtomicU32::new(1),
        }
    }

    /// The current snapshot (data path: `load()` and look up; no lock).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snap.load()
    }

    /// The current snapshot's maps, to change (O(1): persistent maps).
    fn cloned(&self) -> Snapshot {
        Snapshot::clone(&self.snap.load())
    }

    fn alloc_teid(&self, s: &Snapshot) -> Result<u32, TunnelError> {
        for _ in 0..1_000_000 {
            let t = self.next_teid.fetch_add(1, Ordering::Relaxed);
            if t != 0 && !s.by_teid.contains_key(&t) {
                return Ok(t);
            }
        }
        Err(TunnelError::NoFreeTeid)
    }

    /// Adds a tunnel for `(ue_id, psi)`. If the session already has one
    /// (path switch), the new tunnel takes the uplink at once and the old
    /// one is marked draining: its downlink is still delivered until an End
    /// Marker arrives on it.
    pub fn add(
        &self,
        ue_id: &str,
        psi: u8,
        ue_addr: Ipv4Addr,
        ul_teid: u32,
        ul_peer: SocketAddr,
        qfi: u8,
    ) -> Result<Change, TunnelError> {
        // A poisoned mutex only means another request panicked; every
        // change is made on copies and published at its end, so go on.
        let mut ctl = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = self.cloned();
        let mut replaced = None;
        if let Some(old) = s.by_ue.get(&ue_addr) {
            if old.ue_id != ue_id || old.psi != psi {
                return Err(TunnelError::AddressInUse {
                    addr: ue_addr,
                    ue_id: old.ue_id.clone(),
                    psi: old.psi,
                });
            }
        }
        let dl_teid = self.alloc_teid(&s)?;
        // The same session on another address would be a new session: the
        // old tunnel drains as well.
        let key = (ue_id.to_owned(), psi);
        for teid in ctl.by_session.get(&key).into_iter().flatten() {
            let Some(t) = s.by_teid.get(teid) else {
                continue;
            };
            if !t.draining.load(Ordering::Relaxed) {
                t.draining.store(true, Ordering::Relaxed);
                replaced = Some(t.dl_teid);
                if t.ue_addr != ue_addr {
                    s.by_ue.remove(&t.ue_addr);
                }
            }
        }
        let t = Arc::new(Tunnel {
            ue_id: ue_id.into(),
            psi,
            ue_addr,
            dl_teid,
            ul_teid,
            ul_peer,
            qfi,
            draining: AtomicBool::new(false),
            counters: TunnelCounters::default(),
        });
        s.by_ue.insert(ue_addr, t.clone());
        s.by_teid.insert(dl_teid, t.clone());
        ctl.by_session.entry(key).or_default().push(dl_teid);
        *ctl.addr_refs.entry(ue_addr).or_default() += 1;
        self.snap.store(Arc::new(s));
        Ok(Change {
            tunnel: t,
            addr_freed: false,
            replaced,
        })
    }

    /// Removes the tunnel with downlink TEID `dl_teid`; removing a session's
    /// current tunnel also removes its draining predecessors.
    pub fn remove(&self, dl_teid: u32) -> Result<Change, TunnelError> {
        let mut ctl = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = self.cloned();
        let t = s
            .by_teid
            .remove(&dl_teid)
            .ok_or(TunnelError::UnknownTeid(dl_teid))?;
        let key = (t.ue_id.clone(), t.psi);
        let mut addr_freed = ctl.unref(t.ue_addr);
        let teids = ctl.by_session.remove(&key).unwrap_or_default();
        if t.draining.load(Ordering::Relaxed) {
            let rest: Vec<u32> = teids.into_iter().filter(|&x| x != dl_teid).collect();
            if !rest.is_empty() {
                ctl.by_session.insert(key, rest);
            }
        } else {
            for teid in teids.into_iter().filter(|&x| x != dl_teid) {
                if let Some(o) = s.by_teid.remove(&teid) {
                    if ctl.unref(o.ue_addr) && o.ue_addr == t.ue_addr {
                        addr_freed = true;
                    }
                }
            }
        }
        if s.by_ue
            .get(&t.ue_addr)
            .is_some_and(|c| c.dl_teid == dl_teid)
        {
            s.by_ue.remove(&t.ue_addr);
        }
        self.snap.store(Arc::new(s));
        Ok(Change {
            tunnel: t,
            addr_freed,
            replaced: None,
        })
    }

    /// Every tunnel, ordered by downlink TEID.
    pub fn list(&self) -> Vec<Arc<Tunnel>> {
        let mut v: Vec<_> = self.snap.load().by_teid.values().cloned().collect();
        v.sort_by_key(|t| t.dl_teid);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.3.0.2:2152".parse().expect("literal")
    }

    #[test]
    fn add_lookup_remove() {
        let tt = TunnelTable::new();
        let a: Ipv4Addr = "10.45.0.2".parse().expect("literal");
        let c = tt.add("imsi-1", 1, a, 100, peer(), 9).expect("add");
        let s = tt.load();
        assert_eq!(s.by_ue[&a].ul_teid, 100);
        assert_eq!(s.by_teid[&c.tunnel.dl_teid].ue_addr, a);
        let e = tt.add("imsi-2", 1, a, 101, peer(), 9).expect_err("in use");
        assert!(matches!(e, TunnelError::AddressInUse { .. }));
        let r = tt.remove(c.tunnel.dl_teid).expect("remove");
        assert!(r.addr_freed);
        assert!(tt.load().by_ue.is_empty());
        assert_eq!(
            tt.remove(c.tunnel.dl_teid),
            Err(TunnelError::UnknownTeid(c.tunnel.dl_teid))
        );
    }

    #[test]
    fn path_switch_drains_old_tunnel() {
        let tt = TunnelTable::new();
        let a: Ipv4Addr = "10.45.0.2".parse().expect("literal");
        let old = tt.add("imsi-1", 1, a, 100, peer(), 9).expect("add").tunnel;
        let c = tt.add("imsi-1", 1, a, 200, peer(), 9).expect("switch");
        assert_eq!(c.replaced, Some(old.dl_teid));
        let s = tt.load();
        assert_eq!(s.by_ue[&a].ul_teid, 200);
        assert!(s.by_teid[&old.dl_teid].draining.load(Ordering::Relaxed));
        // End Marker path: removing the draining one keeps the new one.
        let r = tt.remove(old.dl_teid).expect("remove old");
        assert!(!r.addr_freed);
        assert_eq!(tt.load().by_ue[&a].ul_teid, 200);
    }
}
