//! The N6 TUN device: the one both daemons use, [`dpio::tun`] (ioctl and
//! netlink, no `ip` subprocess, every setup step's error reported).
//!
//! Where the next order of magnitude would come from (DESIGN §7): open with
//! IFF_VNET_HDR, enable TSO/USO with TUNSETOFFLOAD (USO4 and USO6 together),
//! and read/write 64 KiB super-packets with a virtio-net header in front;
//! pair that with UDP_SEGMENT/UDP_GRO on the N3 socket. Not done yet: one
//! packet per TUN read or write (N3 is batched with recvmmsg/sendmmsg).

pub use dpio::tun::{Tun, TunError};

use crate::config::parse_cidr;

/// Creates the N6 TUN `name` in the calling thread's namespace: non-blocking,
/// MTU `mtu`, up, with a route into it for every UE pool (IPv4 CIDRs; the
/// configuration was validated, an unparsable one is refused here too).
pub fn create(name: &str, mtu: u32, ue_pools: &[String]) -> Result<Tun, TunError> {
    let mut routes = Vec::with_capacity(ue_pools.len());
    for p in ue_pools {
        routes.push(parse_cidr(p).ok_or_else(|| TunError::BadRoute(p.clone()))?);
    }
    Tun::create(name, mtu, &routes)
}
