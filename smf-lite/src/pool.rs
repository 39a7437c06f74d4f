//! UE address pool: next-fit allocation over an IPv4 prefix, so a freed
//! address is not handed out again before the rest of the pool was used.

use crate::config::Ipv4Net;
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Addresses of one prefix, minus network and broadcast addresses
/// (a /32 is a single address).
#[derive(Debug, Clone)]
pub struct AddrPool {
    net: Ipv4Net,
    first: u32,
    size: u32,
    cursor: u32,
    used: HashSet<u32>,
}

impl AddrPool {
    pub fn new(net: Ipv4Net) -> Self {
        let base = u32::from(net.addr);
        let (first, size) = if net.len == 32 {
            (base, 1)
        } else {
            let span = 1u64 << (32 - net.len);
            (base + 1, (span - 2) as u32)
        };
        AddrPool {
            net,
            first,
            size,
            cursor: 0,
            used: HashSet::new(),
        }
    }

    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// Usable addresses.
    pub fn capacity(&self) -> u32 {
        self.size
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// The next free address, or `None` when every address is in use.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        if self.used.len() as u64 >= u64::from(self.size) {
            return None;
        }
        loop {
            let a = self.first + self.cursor;
            self.cursor = (self.cursor + 1) % self.size;
            if self.used.insert(a) {
                return Some(Ipv4Addr::from(a));
            }
        }
    }

    /// Marks `a` as used (restoring state); false if taken or outside.
    pub fn reserve(&mut self, a: Ipv4Addr) -> bool {
        let v = u32::from(a);
        v >= self.first && v - self.first < self.size && self.used.insert(v)
    }

    /// Returns `a` to the pool; false if it was not allocated.
    pub fn free(&mut self, a: Ipv4Addr) -> bool {
        self.used.remove(&u32::from(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_all_then_none_and_no_reuse_in_use() {
        let mut p = AddrPool::new("10.0.0.0/29".parse().expect("valid"));
        assert_eq!(p.capacity(), 6);
        let got: Vec<_> = (0..6).map(|_| p.allocate().expect("free")).collect();
        assert_eq!(got[0], Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(got[5], Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!(p.allocate(), None);
        assert!(p.free(got[2]));
        assert!(!p.free(got[2]));
        assert_eq!(p.allocate(), Some(got[2]));
        let mut p = AddrPool::new("10.0.0.7/32".parse().expect("valid"));
        assert_eq!(p.allocate(), Some(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(p.allocate(), None);
    }

    #[test]
    fn next_fit_does_not_reuse_freed_address_at_once() {
        let mut p = AddrPool::new("10.0.0.0/24".parse().expect("valid"));
        let a = p.allocate().expect("free");
        p.free(a);
        let b = p.allocate().expect("free");
        assert_ne!(a, b);
    }
}
