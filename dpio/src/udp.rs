//! Batched UDP I/O on IPv4 sockets: [`Slots`] of preallocated buffers,
//! [`recv_batch`] filling them with one `recvmmsg`, and an [`Outbox`] of
//! datagrams (each a range of a slot and a peer) sent with one `sendmmsg`.
//!
//! A datagram larger than its slot is received truncated and flagged
//! ([`Received::truncated`]) so that the caller counts and drops it.
//! Nothing here allocates after construction.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

use crate::BATCH;

/// `BATCH` buffers of `headroom + cap` bytes; data goes in after the
/// headroom so that a header can be put in front in place.
#[derive(Debug)]
pub struct Slots {
    bufs: Vec<Box<[u8]>>,
    headroom: usize,
}

impl Slots {
    /// `BATCH` slots of `cap` bytes of data after `headroom` bytes.
    pub fn new(headroom: usize, cap: usize) -> Slots {
        Slots {
            bufs: (0..BATCH)
                .map(|_| vec![0u8; headroom + cap].into_boxed_slice())
                .collect(),
            headroom,
        }
    }
    /// Bytes in front of the data.
    pub fn headroom(&self) -> usize {
        self.headroom
    }
    /// Slot `i`, headroom included.
    pub fn buf(&self, i: usize) -> &[u8] {
        &self.bufs[i]
    }
    /// Slot `i`, headroom included, for in-place changes.
    pub fn buf_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i]
    }
    /// The data part of slot `i` (after the headroom), to read into.
    pub fn data_mut(&mut self, i: usize) -> &mut [u8] {
        let h = self.headroom;
        &mut self.bufs[i][h..]
    }
}

/// One datagram [`recv_batch`] put in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes in the slot (after the headroom).
    pub len: usize,
    /// Sender (0.0.0.0:0 if it was not IPv4).
    pub from: SocketAddrV4,
    /// The datagram was longer than the slot and was cut.
    pub truncated: bool,
}

/// Receives up to `BATCH` datagrams into `slots` with one `recvmmsg`,
/// waiting for the first as the socket's blocking mode and `SO_RCVTIMEO`
/// say (`WouldBlock`/`TimedOut` when none came) and taking only what is
/// already queued after it. Returns how many of `out` it filled.
pub fn recv_batch(fd: RawFd, slots: &mut Slots, out: &mut [Received; BATCH]) -> io::Result<usize> {
    let h = slots.headroom;
    let mut iov: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    // SAFETY: all-zero is a valid sockaddr_in and mmsghdr (null pointers,
    // zero lengths); every pointer is set below before the call.
    let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (i, buf) in slots.bufs.iter_mut().enumerate() {
        let data = &mut buf[h..];
        iov[i].write(libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        });
        let m = &mut hdrs[i].msg_hdr;
        m.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
        m.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        m.msg_iov = iov[i].as_mut_ptr();
        m.msg_iovlen = 1;
    }
    // SAFETY: BATCH headers, each with one iovec into a live slot buffer
    // and a sockaddr_in of the stated length, all outliving the call.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for i in 0..n {
        let a = &addrs[i];
        let from = if a.sin_family == libc::AF_INET as libc::sa_family_t {
            SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )
        } else {
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)
        };
        out[i] = Received {
            len: hdrs[i].msg_len as usize,
            from,
            truncated: hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(n)
}

/// Datagrams queued for one `sendmmsg`: ranges of [`Slots`] and peers.
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<(usize, usize, usize, SocketAddrV4)>,
}

/// What a [`Outbox::flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams sent.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Datagrams the kernel refused (each skipped, the rest still sent).
    pub errors: u64,
    /// Bit `i` set: the `i`-th datagram queued (of the first 64) was
    /// refused.
    pub failed: u64,
}

impl Outbox {
    /// Room for a batch.
    pub fn new() -> Outbox {
        Outbox {
            items: Vec::with_capacity(BATCH),
        }
    }
    /// The `i`-th datagram queued: (slot, start, end, peer).
    pub fn item(&self, i: usize) -> (usize, usize, usize, SocketAddrV4) {
        self.items[i]
    }
    /// Queues `slot[start..end]` for `to`.
    pub fn push(&mut self, slot: usize, start: usize, end: usize, to: SocketAddrV4) {
        self.items.push((slot, start, end, to));
    }
    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Sends everything queued with as few `sendmmsg` calls as the kernel
    /// allows; a datagram it refuses is counted in [`Sent::errors`] with
    /// its error in `last_error` and skipped. The items stay until
    /// [`clear`](Self::clear).
    pub fn flush(&mut self, fd: RawFd, slots: &Slots, last_error: &mut Option<io::Error>) -> Sent {
        let mut sent = Sent::default();
        let mut off = 0;
        while off < self.items.len() {
            let batch = &self.items[off..];
            let k = batch.len().min(BATCH);
            // SAFETY: all-zero is a valid sockaddr_in / mmsghdr / iovec.
            let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, &(slot, start, end, to)) in batch[..k].iter().enumerate() {
                let data = &slots.bufs[slot][start..end];
                addrs[i].sin_family = libc::AF_INET as libc::sa_family_t;
                addrs[i].sin_port = to.port().to_be();
                addrs[i].sin_addr.s_addr = u32::from(*to.ip()).to_be();
                iov[i] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                let m = &mut hdrs[i].msg_hdr;
                m.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
                m.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                m.msg_iov = &mut iov[i];
                m.msg_iovlen = 1;
            }
            // SAFETY: k headers pointing at live slot data (only read) and
            // sockaddr_ins on this stack frame.
            let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), k as libc::c_uint, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram failed: count it, go on after it.
                sent.errors += 1;
                if off < 64 {
                    sent.failed |= 1 << off;
                }
                *last_error = Some(e);
                off += 1;
                continue;
            }
            let r = r as usize;
            for h in &hdrs[..r] {
                sent.packets += 1;
                sent.bytes += u64::from(h.msg_len);
            }
            if r == 0 {
                // Nothing sent and no error: count the first as refused
                // rather than spin.
                sent.errors += 1;
                if off < 64 {
                    sent.failed |= 1 << off;
                }
            }
            off += r.max(1).min(k);
        }
        sent
    }

    /// Forgets what was queued (after [`flush`](Self::flush) and reading
    /// [`item`](Self::item)s).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// Asks for `bytes` of receive and send buffer on a socket (the kernel
/// caps it at `net.core.rmem_max`/`wmem_max`; as root, SO_*BUFFORCE
/// passes the cap). A burst of a batch's size from a peer must fit.
pub fn set_buffers(fd: RawFd, bytes: libc::c_int) -> io::Result<()> {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let set = |opt| {
            // SAFETY: setsockopt on a caller's socket with a c_int value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(force) < 0 && set(plain) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends one datagram (control messages, outside batches).
pub fn send_to(fd: RawFd, data: &[u8], to: SocketAddrV4) -> io::Result<usize> {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = to.port().to_be();
    a.sin_addr.s_addr = u32::from(*to.ip()).to_be();
    // SAFETY: data and a are valid for the stated lengths during the call.
    let r = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            0,
            (&a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn v4(s: &UdpSocket) -> SocketAddrV4 {
        match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        }
    }

    /// Datagrams of every size from 1 to 1500 and a few at the slot's
    /// limit go out in batches and come back byte-exact, in order, with
    /// their sender; one longer than a slot is flagged truncated.
    #[test]
    fn batches_carry_datagrams_byte_exact() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let cap = 2000;
        let mut tx = Slots::new(8, cap);
        let mut rx = Slots::new(8, cap);
        let mut ob = Outbox::new();
        let mut got = [Received {
            len: 0,
            from: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            truncated: false,
        }; BATCH];
        let pattern = |len: usize, seed: usize| -> Vec<u8> {
            (0..len).map(|i| (i * 31 + seed * 7) as u8).collect()
        };
        let sizes: Vec<usize> = (1..=1500).step_by(7).chain([cap - 1, cap]).collect();
        for chunk in sizes.chunks(BATCH) {
            for (i, &len) in chunk.iter().enumerate() {
                let p = pattern(len, i);
                tx.buf_mut(i)[8..8 + len].copy_from_slice(&p);
                ob.push(i, 8, 8 + len, v4(&b));
            }
            let mut err = None;
            let s = ob.flush(a.as_raw_fd(), &tx, &mut err);
            ob.clear();
            assert_eq!(s.packets as usize, chunk.len(), "{err:?}");
            assert_eq!(s.bytes as usize, chunk.iter().sum::<usize>());
            let mut seen = 0;
            while seen < chunk.len() {
                let n = recv_batch(b.as_raw_fd(), &mut rx, &mut got).unwrap();
                for (k, r) in got[..n].iter().enumerate() {
                    let len = chunk[seen + k];
                    assert_eq!(r.len, len);
                    assert!(!r.truncated);
                    assert_eq!(r.from, v4(&a));
                    assert_eq!(&rx.buf(k)[8..8 + len], &pattern(len, seen + k)[..]);
                }
                seen += n;
            }
        }
        a.send_to(&vec![1u8; cap + 1], v4(&b)).unwrap();
        let n = recv_batch(b.as_raw_fd(), &mut rx, &mut got).unwrap();
        assert_eq!(n, 1);
        assert!(got[0].truncated);
    }

    /// A datagram the kernel refuses is counted and the rest still go.
    #[test]
    fn a_refused_datagram_does_not_stop_the_batch() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut tx = Slots::new(0, 100);
        let mut ob = Outbox::new();
        tx.buf_mut(0)[..3].copy_from_slice(b"one");
        tx.buf_mut(1)[..3].copy_from_slice(b"two");
        ob.push(0, 0, 3, v4(&b));
        // Port 0 is refused with EINVAL.
        ob.push(1, 0, 3, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        ob.push(1, 0, 3, v4(&b));
        let mut err = None;
        let s = ob.flush(a.as_raw_fd(), &tx, &mut err);
        assert_eq!((s.packets, s.errors, s.failed), (2, 1, 0b010), "{err:?}");
        assert!(err.is_some());
        assert_eq!(ob.len(), 3);
        ob.clear();
        assert!(ob.is_empty());
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
    }
}
