//! The N6 TUN device: the one both daemons use, [`dpio::tun`] (ioctl and
//! netlink, no `ip` subprocess, every setup step's error reported).
//!
//! Opened with IFF_VNET_HDR and the offloads the kernel accepts
//! ([`Tun::open_offload`]: TSO4/TSO6 with checksum offload, USO4+USO6
//! where it takes them, step by step, logged): the downlink reads 64 KiB
//! super-packets and cuts them into segments for N3 (sent with UDP GSO),
//! the uplink joins in-order TCP segments into one TUN write
//! ([`dpio::offload`]). `MINEDGE_TUN_OFFLOAD=off` opens it without.

pub use dpio::tun::{Tun, TunError};

use crate::config::parse_cidr;

/// Creates the N6 TUN `name` with `queues` queues (one per data-path
/// worker) in the calling thread's namespace: non-blocking, MTU `mtu`, up,
/// with a route into it for every UE pool (IPv4 CIDRs; the configuration
/// was validated, an unparsable one is refused here too).
pub fn create(
    name: &str,
    queues: usize,
    mtu: u32,
    ue_pools: &[String],
) -> Result<Vec<Tun>, TunError> {
    let mut routes = Vec::with_capacity(ue_pools.len());
    for p in ue_pools {
        routes.push(parse_cidr(p).ok_or_else(|| TunError::BadRoute(p.clone()))?);
    }
    let (tuns, offloads) = Tun::open_offload_queues(name, queues)?;
    if offloads.tso() {
        tracing::info!(tun = name, queues = tuns.len(), "{offloads}");
    } else {
        tracing::warn!(tun = name, queues = tuns.len(), "{offloads}");
    }
    for t in &tuns {
        t.set_nonblocking()?;
    }
    tuns[0].bring_up(mtu, &routes)?;
    Ok(tuns)
}
