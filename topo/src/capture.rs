//! `topo capture`: AF_PACKET capture on one link end, written as classic pcap.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::engine::{Running, TopoError};

/// A capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Error.
        source: std::io::Error,
    },
    /// Namespace problem.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CaptureError {
    let what = what.into();
    move |source| CaptureError::Io { what, source }
}

/// Snap length written in the pcap header.
pub const SNAPLEN: u32 = 262_144;

/// Writes classic pcap (microsecond timestamps, Ethernet link type).
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut w: W) -> std::io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        w.write_all(&h)?;
        Ok(PcapWriter { w })
    }

    /// Writes one record.
    pub fn write(&mut self, ts: SystemTime, data: &[u8], orig_len: usize) -> std::io::Result<()> {
        let d = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(d.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&d.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(orig_len as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// When to stop.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop when this becomes true (e.g. set by a SIGINT handler).
    pub stop: Option<Arc<AtomicBool>>,
}

/// Opens an AF_PACKET socket bound to `ifname` in namespace `ns`.
pub fn open_socket(ns: &str, ifname: &str) -> Result<OwnedFd, CaptureError> {
    let ifname = ifname.to_string();
    crate::netns::run_in_netns(ns, move || -> Result<OwnedFd, CaptureError> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        if fd < 0 {
            return Err(io("socket(AF_PACKET)")(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh valid descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let idx = nix::net::if_::if_nametoindex(ifname.as_str())
            .map_err(|e| io(format!("interface `{ifname}`"))(e.into()))?;
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx as i32;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r != 0 {
            return Err(io(format!("bind to `{ifname}`"))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(fd)
    })?
}

/// Captures on an open socket into `out` until a stop condition; returns packets written.
pub fn capture_fd(fd: &OwnedFd, out: &Path, opts: &CaptureOptions) -> Result<u64, CaptureError> {
    let f = std::fs::File::create(out).map_err(io(format!("create {}", out.display())))?;
    let mut w = PcapWriter::new(std::io::BufWriter::new(f)).map_err(io("write pcap header"))?;
    let mut buf = vec![0u8; SNAPLEN as usize];
    let t0 = Instant::now();
    let mut n = 0u64;
    loop {
        if opts.count.is_some_and(|c| n >= c) {
            break;
        }
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            break;
        }
        let mut wait_ms = 100i32;
        if let Some(d) = opts.duration {
            let el = t0.elapsed();
            if el >= d {
                break;
            }
            wait_ms = wait_ms.min((d - el).as_millis() as i32 + 1);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io("poll")(e));
        }
        if r == 0 {
            continue;
        }
        // SAFETY: buf is valid for buf.len() bytes.
        let len = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if len < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
            ) {
                continue;
            }
            return Err(io("recv")(e));
        }
        let orig = len as usize;
        let caplen = orig.min(buf.len());
        w.write(SystemTime::now(), &buf[..caplen], orig)
            .map_err(io("write pcap"))?;
        n += 1;
    }
    w.finish().map_err(io("flush pcap"))?;
    Ok(n)
}

/// Which end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// End a.
    A,
    /// End b.
    B,
}

/// Resolves `LINK[:a|b]` to (namespace, interface).
pub fn resolve(r: &Running, spec: &str) -> Result<(String, String), TopoError> {
    let (link, side) = match spec.rsplit_once(':') {
        Some((l, "a")) => (l, Side::A),
        Some((l, "b")) => (l, Side::B),
        Some((_, s)) => {
            return Err(TopoError::Unsupported(format!(
                "`{s}` is not a link end (use LINK:a or LINK:b)"
            )))
        }
        None => (spec, Side::A),
    };
    let t = r.topology();
    let l = t
        .link(link)
        .ok_or_else(|| TopoError::unknown_link(t, link))?;
    let e = if side == Side::A { &l.a } else { &l.b };
    Ok((t.ns_name(&e.node), e.ifname.clone()))
}
