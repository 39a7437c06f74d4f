//! The TUN device between the kernel's routing and the GTP-U data path:
//! the one both daemons use, [`dpio::tun`] (IFF_TUN | IFF_NO_PI, one IP
//! packet per read or write). The gNB opens it with [`Tun::open`] and
//! brings it up with `topo::netcfg` (netlink) in [`crate::daemon`].

pub use dpio::tun::{Tun, TunError};
