//! The TUN device of both daemons: IFF_TUN | IFF_NO_PI, one IP packet per
//! read or write; with [`Tun::open_offload`] also IFF_VNET_HDR and the
//! offloads the kernel accepts (TUNSETOFFLOAD), so that reads may return
//! TSO/USO super-packets and writes may pass coalesced ones, each with a
//! virtio-net header in front ([`crate::offload`]).
//!
//! [`Tun::open`] creates (or attaches to) the device by ioctl;
//! [`Tun::create`] also makes reads non-blocking, sets the MTU, brings the
//! link up and routes prefixes into it, by netlink in the calling thread's
//! namespace. Every step that fails is reported with the step and the
//! kernel's error; nothing runs `ip`.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use topo::nl::{NetlinkError, Nl};

use crate::offload::{complete_csum, VnetHdr, VNET_HDR_LEN};

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
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

/// TUNSETOFFLOAD: the reader completes partial checksums.
pub const TUN_F_CSUM: u32 = 0x01;
/// TUNSETOFFLOAD: IPv4 TCP super-packets.
pub const TUN_F_TSO4: u32 = 0x02;
/// TUNSETOFFLOAD: IPv6 TCP super-packets.
pub const TUN_F_TSO6: u32 = 0x04;
/// TUNSETOFFLOAD: IPv4 UDP super-packets (only with USO6).
pub const TUN_F_USO4: u32 = 0x20;
/// TUNSETOFFLOAD: IPv6 UDP super-packets (only with USO4).
pub const TUN_F_USO6: u32 = 0x40;

/// The environment variable that turns TUN offloads off (`off`, `0`,
/// `no`): the TUN is opened as without them, one packet per read.
pub const OFFLOAD_ENV: &str = "MINEDGE_TUN_OFFLOAD";

/// The offload sets asked for, best first: each refused one is recorded
/// and the next tried.
const OFFLOAD_STEPS: [(u32, &str); 3] = [
    (
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
        "csum+tso4+tso6+uso4+uso6",
    ),
    (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, "csum+tso4+tso6"),
    (TUN_F_CSUM, "csum"),
];

/// What [`Tun::open_offload`] got from the kernel, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffloadReport {
    /// Offloads on (TUN_F_* bits; 0: none).
    pub flags: u32,
    /// Turned off by [`OFFLOAD_ENV`].
    pub disabled: bool,
    /// What the kernel refused, with its error, in the order asked.
    pub refused: Vec<String>,
}

impl OffloadReport {
    /// TSO on: reads may return TCP super-packets, writes may pass them.
    pub fn tso(&self) -> bool {
        self.flags & TUN_F_TSO4 != 0
    }
}

impl std::fmt::Display for OffloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.disabled {
            return write!(
                f,
                "TUN offloads off ({OFFLOAD_ENV}), one packet per read and write"
            );
        }
        let on = OFFLOAD_STEPS
            .iter()
            .find(|s| s.0 == self.flags)
            .map_or("none", |s| s.1);
        write!(f, "TUN offloads: {on}")?;
        if !self.refused.is_empty() {
            write!(f, "; refused by the kernel: {}", self.refused.join(", "))?;
        }
        if self.flags == 0 {
            write!(f, "; one packet per read and write")?;
        }
        Ok(())
    }
}

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
    /// Opened with IFF_VNET_HDR: a virtio-net header precedes each packet.
    vnet: bool,
}

impl Tun {
    /// Creates (or attaches to) TUN `name` in the calling thread's network
    /// namespace. The link is left down and blocking.
    pub fn open(name: &str) -> Result<Tun, TunError> {
        Tun::open_flags(name, false, false)
    }

    /// Like [`open`](Self::open), with a virtio-net header in front of
    /// every packet and the best offloads the kernel accepts (TSO4/TSO6
    /// with checksum offload, USO4+USO6 where it takes them), falling back
    /// one step at a time; what it refused is in the report. With
    /// [`OFFLOAD_ENV`] set to `off`, or when the kernel takes none, the
    /// device is as [`open`](Self::open) makes it.
    pub fn open_offload(name: &str) -> Result<(Tun, OffloadReport), TunError> {
        Tun::open_offload_if(name, offloads_wanted())
    }

    /// [`open_offload`](Self::open_offload), or [`open`](Self::open) with
    /// a report that says offloads are off when `wanted` is false.
    pub fn open_offload_if(name: &str, wanted: bool) -> Result<(Tun, OffloadReport), TunError> {
        let (mut q, report) = Tun::open_queues_if(name, 1, wanted)?;
        Ok((q.remove(0), report))
    }

    /// [`open_offload`](Self::open_offload) with `queues` queues
    /// (IFF_MULTI_QUEUE when more than one; at least one is opened): the
    /// kernel spreads the packets it routes into the device over the
    /// queues by flow (a flow's packets are read from the queue its
    /// answers were last written to), so one worker per queue reads one
    /// share of the flows. Every queue has the same flags and offloads.
    pub fn open_offload_queues(
        name: &str,
        queues: usize,
    ) -> Result<(Vec<Tun>, OffloadReport), TunError> {
        Tun::open_queues_if(name, queues, offloads_wanted())
    }

    /// [`open_offload_queues`](Self::open_offload_queues), offloads only
    /// when `wanted`.
    pub fn open_queues_if(
        name: &str,
        queues: usize,
        wanted: bool,
    ) -> Result<(Vec<Tun>, OffloadReport), TunError> {
        let multi = queues > 1;
        let mut report = OffloadReport::default();
        let plain = |report| -> Result<(Vec<Tun>, OffloadReport), TunError> {
            Ok((
                Tun::open_more(Tun::open_flags(name, false, multi)?, queues)?,
                report,
            ))
        };
        if !wanted {
            report.disabled = true;
            return plain(report);
        }
        let tun = match Tun::open_flags(name, true, multi) {
            Ok(t) => t,
            Err(TunError::SetIff { source, .. }) => {
                report.refused.push(format!("IFF_VNET_HDR ({source})"));
                return plain(report);
            }
            Err(e) => return Err(e),
        };
        for (flags, what) in OFFLOAD_STEPS {
            match tun.set_offload(flags) {
                Ok(()) => {
                    report.flags = flags;
                    return Ok((Tun::open_more(tun, queues)?, report));
                }
                Err(e) => report.refused.push(format!("{what} ({e})")),
            }
        }
        // No offload at all: the device again without the header.
        drop(tun);
        plain(report)
    }

    /// `first` and the device's other queues up to `queues`, opened with
    /// `first`'s flags (the offloads are the device's, set once).
    fn open_more(first: Tun, queues: usize) -> Result<Vec<Tun>, TunError> {
        let multi = queues > 1;
        let mut all = Vec::with_capacity(queues.max(1));
        let (name, vnet) = (first.name.clone(), first.vnet);
        all.push(first);
        while all.len() < queues {
            all.push(Tun::open_flags(&name, vnet, multi)?);
        }
        Ok(all)
    }

    /// TUNSETOFFLOAD with `flags`.
    fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes an unsigned long by value.
        let r = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                TUNSETOFFLOAD as _,
                flags as libc::c_ulong,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn open_flags(name: &str, vnet: bool, multi: bool) -> Result<Tun, TunError> {
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
            flags: IFF_TUN
                | IFF_NO_PI
                | if vnet { IFF_VNET_HDR } else { 0 }
                | if multi { IFF_MULTI_QUEUE } else { 0 },
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
            vnet,
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
            vnet: self.vnet,
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

    /// Opened with a virtio-net header in front of every packet.
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Reads one packet into `buf` (`WouldBlock` when non-blocking and
    /// empty). On a device with offloads, a partial checksum is completed
    /// and a super-packet is refused (`InvalidData`): read those with
    /// [`recv_vnet`](Self::recv_vnet).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.vnet {
            return (&self.file).read(buf);
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        let n = self.recv_vnet(&mut hdr, buf)?;
        let h = VnetHdr::parse(&hdr).unwrap_or_default();
        if h.is_gso() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TUN super-packet",
            ));
        }
        complete_csum(&mut buf[..n], &h)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n)
    }

    /// Reads one packet into `buf` and its virtio-net header into `hdr`
    /// (all zero on a device without the header); returns the packet's
    /// length.
    pub fn recv_vnet(&self, hdr: &mut [u8; VNET_HDR_LEN], buf: &mut [u8]) -> io::Result<usize> {
        if !self.vnet {
            *hdr = [0; VNET_HDR_LEN];
            return (&self.file).read(buf);
        }
        let n = (&self.file).read_vectored(&mut [IoSliceMut::new(hdr), IoSliceMut::new(buf)])?;
        n.checked_sub(VNET_HDR_LEN).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "TUN read shorter than its virtio-net header",
            )
        })
    }

    /// Writes one packet (behind a plain virtio-net header on a device
    /// with offloads).
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        if !self.vnet {
            return (&self.file).write(pkt);
        }
        let n =
            (&self.file).write_vectored(&[IoSlice::new(&[0; VNET_HDR_LEN]), IoSlice::new(pkt)])?;
        Ok(n.saturating_sub(VNET_HDR_LEN))
    }

    /// Writes a frame as it is: a virtio-net header and a packet on a
    /// device with offloads (a [`crate::offload::Coalescer`]'s), a packet
    /// on one without.
    pub fn send_frame(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }
}

/// Offloads unless [`OFFLOAD_ENV`] turns them off.
fn offloads_wanted() -> bool {
    !std::env::var(OFFLOAD_ENV).is_ok_and(|v| offloads_off(&v))
}

/// Does a value of [`OFFLOAD_ENV`] turn offloads off?
pub fn offloads_off(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "off" | "0" | "no" | "false"
    )
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
/// 16384 (was 4096): `testbed bench dataplane` showed the gNB's TUN queue
/// dropping during 1400-byte UDP at about 100 kpps, on two vCPUs where the
/// reader waits behind senders and the other daemon. The price: when the
/// reader cannot keep up at all, a full queue holds about 100 ms of packets
/// at 150 kpps (25 ms before).
pub const TXQUEUELEN: u32 = 16384;

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
    fn offload_switch_values() {
        for v in ["off", "OFF", "0", "no", "false "] {
            assert!(offloads_off(v), "{v}");
        }
        for v in ["", "on", "1", "yes"] {
            assert!(!offloads_off(v), "{v}");
        }
        let r = OffloadReport {
            flags: TUN_F_CSUM,
            disabled: false,
            refused: vec!["csum+tso4+tso6 (Invalid argument)".into()],
        };
        assert!(!r.tso());
        assert_eq!(
            r.to_string(),
            "TUN offloads: csum; refused by the kernel: csum+tso4+tso6 (Invalid argument)"
        );
    }

    /// This kernel takes TSO4/TSO6 with USO4+USO6 on a TUN with a
    /// virtio-net header (ethtool shows them on); turned off, the device
    /// has no header and says so.
    #[test]
    #[ignore = "needs root: creates a namespace and a TUN"]
    fn offloads_are_negotiated_or_turned_off() {
        testkit::require_root();
        let ns = testkit::Netns::new(&testkit::unique("dpo")).expect("netns");
        let (tun, rep) = ns
            .run(|| Tun::open_offload_if("dpotun0", true))
            .expect("run in netns")
            .expect("open");
        assert!(tun.vnet());
        assert_eq!(
            rep.flags,
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
            "{rep}"
        );
        assert!(rep.refused.is_empty(), "{rep}");
        drop(tun);
        let (tun, rep) = ns
            .run(|| Tun::open_offload_if("dpotun1", false))
            .expect("run in netns")
            .expect("open");
        assert!(!tun.vnet());
        assert!(rep.disabled && !rep.tso());
        assert!(rep.to_string().contains("offloads off"), "{rep}");
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
