//! The N6 TUN device: IFF_TUN | IFF_NO_PI, plain read/write of IP packets.
//!
//! Where the next order of magnitude would come from (DESIGN §7): open with
//! IFF_VNET_HDR, enable TSO/USO with TUNSETOFFLOAD (USO4 and USO6 together),
//! and read/write 64 KiB super-packets with a virtio-net header in front;
//! pair that with UDP_SEGMENT/UDP_GRO on the N3 socket. Not done yet: this
//! is one packet per syscall.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

/// Errors creating or configuring the TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// /dev/net/tun could not be opened.
    #[error("open /dev/net/tun: {0}")]
    Open(io::Error),
    /// TUNSETIFF failed (name in use, no permission).
    #[error("TUNSETIFF {name}: {source}")]
    SetIff {
        /// Device name.
        name: String,
        /// Cause.
        source: io::Error,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {reason}")]
    Ip {
        /// Arguments.
        args: String,
        /// stderr or spawn error.
        reason: String,
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

/// An open TUN device. Closing it (drop) removes the device and its routes.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

/// Run `ip` with these arguments in the calling thread's network namespace.
pub fn ip(args: &[&str]) -> Result<(), TunError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| TunError::Ip {
            args: args.join(" "),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(TunError::Ip {
            args: args.join(" "),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl Tun {
    /// Create TUN `name` in the calling thread's network namespace, set its
    /// MTU, bring it up and route `routes` (CIDR strings) into it.
    pub fn create(name: &str, mtu: u32, routes: &[String]) -> Result<Tun, TunError> {
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
        let cname = CString::new(name).map_err(|_| TunError::SetIff {
            name: name.into(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        let bytes = cname.as_bytes();
        if bytes.len() >= libc::IFNAMSIZ {
            return Err(TunError::SetIff {
                name: name.into(),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        for (d, s) in req.name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq
        // lays out (16-byte name, short flags, padded to 40 bytes).
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if r < 0 {
            return Err(TunError::SetIff {
                name: name.into(),
                source: io::Error::last_os_error(),
            });
        }
        // Non-blocking reads: the reader polls when the queue is empty.
        // SAFETY: F_GETFL/F_SETFL on a valid fd.
        unsafe {
            let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let mtu = mtu.to_string();
        ip(&["link", "set", "dev", name, "mtu", &mtu, "up"])?;
        for r in routes {
            ip(&["route", "replace", r, "dev", name])?;
        }
        Ok(Tun {
            file,
            name: name.to_string(),
        })
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another handle on the same queue (for a second thread).
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun {
            file: self.file.try_clone()?,
            name: self.name.clone(),
        })
    }

    /// Wait until readable, at most `timeout`. `Ok(false)` on timeout.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
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

    /// Read one packet.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Write one packet.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: pkt is valid for pkt.len() bytes.
        let n = unsafe { libc::write(self.file.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}
