//! The TUN device of both daemons: IFF_TUN | IFF_NO_PI, one IP packet per
//! read or write.
//!
//! [`Tun::open`] creates (or attaches to) the device by ioctl;
//! [`Tun::create`] also makes reads non-blocking, sets the MTU, brings the
//! link up and routes prefixes into it, by netlink in the calling thread's
//! namespace. Every step that fails is reported with the step and the
//! kernel's error; nothing runs `ip`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use topo::nl::{NetlinkError, Nl};

/// Errors creating or configuring a TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// /dev/net/tun could not be opened.
    #[error("open /dev/net/tun: {0}")]
    Open(io::Error),
    /// The name is empty, has a NUL or is longer than 15 bytes.
    #[error("bad TUN name {0:?}: 1 to 15 bytes, no NUL")]
    BadName(String),
    /// TUNSETIFF failed (name in use by another kind of device, no
    /// permission).
    #[error("TUNSETIFF {name}: {source}")]
    SetIff {
        /// Device name.
        name: String,
        /// Cause.
        source: io::Error,
    },
    /// F_GETFL or F_SETFL failed.
    #[error("fcntl {op} on TUN {name}: {source}")]
    Fcntl {
        /// Which call.
        op: &'static str,
        /// Device name.
        name: String,
        /// Cause.
        source: io::Error,
    },
    /// The device has no interface index (it vanished).
    #[error("interface index of TUN {name}: {source}")]
    Index {
        /// Device name.
        name: String,
        /// Cause.
        source: io::Error,
    },
    /// A route to put into the device is not an IPv4 CIDR.
    #[error("route {0:?} is not an IPv4 CIDR (a.b.c.d/n)")]
    BadRoute(String),
    /// A netlink request of the setup failed.
    #[error("TUN {name}: {source}")]
    Netlink {
        /// Device name.
        name: String,
        /// The request and the kernel's answer.
        source: NetlinkError,
    },
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TUN queue. The device disappears (with its routes) when the last
/// handle is closed.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Creates (or attaches to) TUN `name` in the calling thread's network
    /// namespace. The link is left down and blocking.
    pub fn open(name: &str) -> Result<Tun, TunError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(TunError::BadName(name.into()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(TunError::Open)?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (d, s) in req.name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays
        // out (16-byte name, short flags, padded to 40 bytes); `req` lives
        // across the call.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if r < 0 {
            return Err(TunError::SetIff {
                name: name.into(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(Tun {
            file,
            name: name.into(),
        })
    }

    /// [`open`](Self::open), then non-blocking reads and
    /// [`bring_up`](Self::bring_up).
    pub fn create(name: &str, mtu: u32, routes: &[(Ipv4Addr, u8)]) -> Result<Tun, TunError> {
        let tun = Tun::open(name)?;
        tun.set_nonblocking()?;
        tun.bring_up(mtu, routes)?;
        Ok(tun)
    }

    /// Sets MTU `mtu` and a transmit queue of [`TXQUEUELEN`] packets,
    /// brings the link up and routes each of `routes` into it (replacing
    /// a route of the same prefix), by netlink in the calling thread's
    /// namespace.
    pub fn bring_up(&self, mtu: u32, routes: &[(Ipv4Addr, u8)]) -> Result<(), TunError> {
        let name = &self.name;
        let index = self.index()?;
        let nl_err = |source| TunError::Netlink {
            name: name.clone(),
            source,
        };
        let mut nl = Nl::new().map_err(nl_err)?;
        nl.queue(
            link_up(index, mtu),
            0,
            format!("set {name} mtu {mtu} txqueuelen {TXQUEUELEN} up"),
        );
        for (a, len) in routes {
            nl.queue(
                topo::nl::new_route(IpAddr::V4(*a), *len, None, Some(index)),
                NLM_F_CREATE | NLM_F_REPLACE,
                format!("route replace {a}/{len} dev {name}"),
            );
        }
        nl.flush().map_err(nl_err)
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's interface index.
    pub fn index(&self) -> Result<u32, TunError> {
        let c = std::ffi::CString::new(self.name.as_str())
            .map_err(|_| TunError::BadName(self.name.clone()))?;
        // SAFETY: a NUL-terminated string that outlives the call.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if i == 0 {
            return Err(TunError::Index {
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(i)
    }

    /// The file descriptor (for `poll` with other descriptors).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Another handle on the same queue (for a second data-path thread).
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun {
            file: self.file.try_clone()?,
            name: self.name.clone(),
        })
    }

    /// Sets O_NONBLOCK (on the open file, so every clone shares it): reads
    /// return `WouldBlock` when the queue is empty.
    pub fn set_nonblocking(&self) -> Result<(), TunError> {
        let fd = self.file.as_raw_fd();
        let err = |op| TunError::Fcntl {
            op,
            name: self.name.clone(),
            source: io::Error::last_os_error(),
        };
        // SAFETY: fcntl on a file descriptor this struct owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(err("F_GETFL"));
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(err("F_SETFL O_NONBLOCK"));
        }
        Ok(())
    }

    /// Waits until a packet can be read, at most `timeout`; `Ok(false)` on
    /// timeout or signal.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        wait_readable(self.file.as_raw_fd(), timeout)
    }

    /// Reads one packet into `buf` (`WouldBlock` when non-blocking and
    /// empty).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one packet.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        (&self.file).write(pkt)
    }
}

/// Waits until `fd` is readable, at most `timeout`; `Ok(false)` on timeout
/// or signal.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd that outlives the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// Packets the kernel queues for the reader of a TUN (the default is 500):
/// the packets a burst from the kernel side (a `sendmmsg` of a batch, a
/// TCP window) may put there while the reader's thread waits for a core.
pub const TXQUEUELEN: u32 = 4096;

const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;

/// RTM_SETLINK: MTU and IFF_UP.
fn link_up(index: u32, mtu: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m.attributes.push(LinkAttribute::TxQueueLen(TXQUEUELEN));
    RouteNetlinkMessage::SetLink(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for n in ["", "sixteen-chars-xx", "a\0b"] {
            assert!(matches!(Tun::open(n), Err(TunError::BadName(_))), "{n:?}");
        }
    }

    #[test]
    #[ignore = "needs root: creates a namespace and a TUN"]
    fn create_sets_mtu_up_and_routes_by_netlink() {
        testkit::require_root();
        let ns = testkit::Netns::new(&testkit::unique("dpt")).expect("netns");
        let route = (Ipv4Addr::new(10, 77, 0, 0), 16);
        let tun = ns
            .run(move || Tun::create("dptun0", 1420, &[route]))
            .expect("run in netns")
            .expect("create");
        let link = ns.ip(&["-o", "link", "show", "dptun0"]).expect("ip link");
        assert!(link.contains("mtu 1420"), "{link}");
        assert!(link.contains(",UP"), "{link}");
        assert!(link.contains(&format!("qlen {TXQUEUELEN}")), "{link}");
        let routes = ns
            .ip(&["route", "show", "dev", "dptun0"])
            .expect("ip route");
        assert!(routes.contains("10.77.0.0/16"), "{routes}");
        drop(tun);
        // A setup step the kernel refuses is reported with the step.
        let bad = ns
            .run(|| Tun::create("dptun1", 1420, &[(Ipv4Addr::new(10, 78, 0, 0), 40)]).map(|_| ()))
            .expect("run in netns");
        let msg = bad.expect_err("prefix 40 refused").to_string();
        assert!(
            msg.contains("route replace 10.78.0.0/40 dev dptun1"),
            "{msg}"
        );
    }
}
