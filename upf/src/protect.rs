//! Destinations a UE's packet is never delivered to: the UPF's own
//! addresses and the protected (core) networks, checked per uplink packet
//! by [`crate::datapath::Snapshot::uplink`] whatever the routes say.
//!
//! The set is built once at start ([`Protected::build`]): every address of
//! the UPF's network interfaces (a /32 each, so the UPF's own services are
//! unreachable from the user plane whatever they bind to), 127.0.0.0/8,
//! and either `n6.protected_nets` from the configuration or, without it,
//! the subnets of the interfaces that carry the UPF's N4 address (or its
//! Node ID, when N4 listens on 0.0.0.0) and its N3 addresses: the cp and
//! n3 switches of the testbed.

use std::io;
use std::net::Ipv4Addr;

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// Network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Net {
    /// The prefix of `len` bits containing `addr`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Net {
        let len = len.min(32);
        Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        }
    }

    /// Does the prefix contain `a`?
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & mask(self.len) == u32::from(self.addr)
    }

    /// Do the two prefixes share an address?
    pub fn overlaps(&self, o: &Net) -> bool {
        self.contains(o.addr) || o.contains(self.addr)
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// An address of the UPF's namespace with its interface's prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
}

/// The protected destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    nets: Vec<Net>,
}

impl Protected {
    /// Nothing protected (tests of other rules; the daemon always builds).
    pub fn none() -> Self {
        Self::default()
    }

    /// These prefixes exactly.
    pub fn from_nets(nets: Vec<Net>) -> Self {
        Protected { nets }
    }

    /// The set for a UPF whose namespace has the addresses `local`, whose
    /// core-side addresses (N4 or Node ID, N3) are `core`, with the
    /// configured `configured` networks (`None`: the subnets of `local`
    /// addresses that are in `core`).
    pub fn build(local: &[LocalAddr], core: &[Ipv4Addr], configured: Option<&[Net]>) -> Self {
        let mut nets = vec![Net::new(Ipv4Addr::LOCALHOST, 8)];
        nets.extend(local.iter().map(|l| Net::new(l.addr, 32)));
        match configured {
            Some(c) => nets.extend_from_slice(c),
            None => nets.extend(
                local
                    .iter()
                    .filter(|l| core.contains(&l.addr))
                    .map(|l| Net::new(l.addr, l.prefix)),
            ),
        }
        // Keep a prefix only if no other one already covers it (the check
        // is a linear scan: keep it short).
        let mut out: Vec<Net> = Vec::new();
        nets.sort_by_key(|n| n.len);
        for n in nets {
            if !out.iter().any(|o| o.contains(n.addr)) {
                out.push(n);
            }
        }
        Protected { nets: out }
    }

    /// Is `dst` protected?
    #[inline]
    pub fn contains(&self, dst: Ipv4Addr) -> bool {
        self.nets.iter().any(|n| n.contains(dst))
    }

    /// The prefixes, for logs and metrics.
    pub fn nets(&self) -> &[Net] {
        &self.nets
    }
}

/// Every IPv4 address of the calling thread's network namespace, with its
/// prefix length (`getifaddrs`), but those put on `lo` outside 127.0.0.0/8
/// (which is protected whole): such an address is a host of the data
/// network that a setup placed in the UPF's namespace on purpose (a test's
/// echo server), not an address the UPF's services use.
pub fn local_addrs() -> io::Result<Vec<LocalAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it names.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated interface name.
        let on_lo = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_bytes() == b"lo";
        // SAFETY: AF_INET: both are sockaddr_in.
        let (a, m) = unsafe {
            (
                *(ifa.ifa_addr as *const libc::sockaddr_in),
                *(ifa.ifa_netmask as *const libc::sockaddr_in),
            )
        };
        let addr = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
        if on_lo && !addr.is_loopback() {
            continue;
        }
        out.push(LocalAddr {
            addr,
            prefix: u32::from_be(m.sin_addr.s_addr).count_ones() as u8,
        });
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// upf1 of the paper topology, for tests: its namespace's addresses (cp,
/// n3, n6, lo) and its core-side ones (N4, N3), and the set they make.
#[cfg(test)]
pub(crate) fn paper_upf1() -> Protected {
    let la = |a: [u8; 4], prefix| LocalAddr {
        addr: Ipv4Addr::from(a),
        prefix,
    };
    let local = [
        la([10, 0, 0, 11], 24),
        la([10, 3, 0, 11], 24),
        la([10, 61, 0, 1], 30),
        la([127, 0, 0, 1], 8),
    ];
    let core = [Ipv4Addr::new(10, 0, 0, 11), Ipv4Addr::new(10, 3, 0, 11)];
    Protected::build(&local, &core, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn la(a: [u8; 4], prefix: u8) -> LocalAddr {
        LocalAddr {
            addr: Ipv4Addr::from(a),
            prefix,
        }
    }

    #[test]
    fn defaults_are_own_addresses_and_core_subnets() {
        let p = paper_upf1();
        for a in [
            "10.0.0.1",
            "10.0.0.21",
            "10.3.0.1",
            "10.61.0.1",
            "127.0.0.9",
        ] {
            assert!(p.contains(a.parse().expect("address")), "{a} protected");
        }
        for a in ["10.61.0.2", "10.71.0.2", "8.8.8.8", "10.45.0.7"] {
            assert!(!p.contains(a.parse().expect("address")), "{a} reachable");
        }
        // 127/8, cp /24, n3 /24, the N6 address; lo's /32 is inside 127/8.
        assert_eq!(p.nets().len(), 4, "{:?}", p.nets());
    }

    #[test]
    fn configured_nets_replace_the_subnets_not_the_own_addresses() {
        let local = [la([10, 0, 0, 11], 24), la([10, 61, 0, 1], 30)];
        let core = [Ipv4Addr::new(10, 0, 0, 11)];
        let nets = [Net::new(Ipv4Addr::new(10, 10, 0, 0), 16)];
        let p = Protected::build(&local, &core, Some(&nets));
        assert!(p.contains(Ipv4Addr::new(10, 10, 1, 1)));
        assert!(p.contains(Ipv4Addr::new(10, 0, 0, 11)), "own address");
        assert!(
            !p.contains(Ipv4Addr::new(10, 0, 0, 1)),
            "cp subnet not configured"
        );
        assert!(p.contains(Ipv4Addr::new(10, 61, 0, 1)));
        assert!(!p.contains(Ipv4Addr::new(10, 61, 0, 2)), "the edge");
    }

    #[test]
    fn prefixes() {
        let n = Net::new(Ipv4Addr::new(10, 3, 0, 77), 24);
        assert_eq!(n.to_string(), "10.3.0.0/24");
        assert!(n.contains(Ipv4Addr::new(10, 3, 0, 1)));
        assert!(!n.contains(Ipv4Addr::new(10, 3, 1, 1)));
        assert!(Net::new(Ipv4Addr::UNSPECIFIED, 0).contains(Ipv4Addr::BROADCAST));
        assert!(n.overlaps(&Net::new(Ipv4Addr::new(10, 0, 0, 0), 8)));
        assert!(!n.overlaps(&Net::new(Ipv4Addr::new(10, 4, 0, 0), 16)));
    }

    #[test]
    fn reads_this_namespace() {
        let l = local_addrs().expect("getifaddrs");
        assert!(l
            .iter()
            .any(|a| a.addr == Ipv4Addr::LOCALHOST && a.prefix == 8));
    }
}
