//! Batched UDP I/O on IPv4 sockets: [`Slots`] of preallocated buffers,
//! [`recv_batch`] filling them with one `recvmmsg`, and an [`Outbox`] of
//! datagrams (each a range of a slot and a peer) sent with one `sendmmsg`.
//!
//! A datagram larger than its slot is received truncated and flagged
//! ([`Received::truncated`]) so that the caller counts and drops it.
//! Nothing here allocates after construction.
//!
//! Offloads, both optional with a fallback: with UDP GSO
//! ([`Outbox::set_gso`]) a run of queued datagrams to the same peer, all
//! of one size but the last (which may be shorter), goes as one message
//! with `UDP_SEGMENT` (the kernel cuts it into the datagrams; the slots are
//! gathered with an iovec each, nothing is copied). A kernel or route that
//! refuses it (`EIO`, `EINVAL`, `EMSGSIZE`: no checksum offload on the
//! route, a segment over the path MTU) turns GSO off for the outbox, the run is
//! sent again unsegmented and [`Sent::gso_refused`] tells the caller to
//! log it. With UDP GRO ([`enable_gro`]) the kernel may hand several
//! datagrams of one size in one slot; [`Received::seg`] is their size and
//! [`Received::segments`] walks them.
//!
//! Written here rather than taken from `quinn-udp`: its `UdpSocketState`
//! sends one `Transmit` (one destination, one contiguous buffer) per call
//! and receives into `IoSliceMut`s with its own metadata type, while the
//! data path needs a batch to many peers gathered from slots it
//! encapsulated in place, and `recvmmsg` into its own slots; the syscalls
//! and cmsgs it would wrap are a few dozen lines here.

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
    /// Exchanges slot `i`'s buffer with `buf` (one of the same size, into
    /// which something was built from the slot), without copying.
    pub fn swap(&mut self, i: usize, buf: &mut Box<[u8]>) {
        std::mem::swap(&mut self.bufs[i], buf);
    }
    /// The data part of slot `i` (after the headroom), to read into.
    pub fn data_mut(&mut self, i: usize) -> &mut [u8] {
        let h = self.headroom;
        &mut self.bufs[i][h..]
    }
}

/// One datagram (or, with GRO, several of one size) [`recv_batch`] put in
/// a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes in the slot (after the headroom).
    pub len: usize,
    /// Sender (0.0.0.0:0 if it was not IPv4).
    pub from: SocketAddrV4,
    /// The datagram was longer than the slot and was cut.
    pub truncated: bool,
    /// Size of each datagram in the slot: `len` unless GRO coalesced
    /// several (the last may be shorter).
    pub seg: usize,
}

impl Received {
    /// Nothing received (to fill arrays).
    pub const EMPTY: Received = Received {
        len: 0,
        from: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        truncated: false,
        seg: 0,
    };

    /// The datagrams in the slot, as ranges of its data (after the
    /// headroom); an empty datagram is one empty range.
    pub fn segments(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
        let (len, seg) = (self.len, self.seg.max(1));
        (0..len.div_ceil(seg).max(1)).map(move |k| k * seg..((k + 1) * seg).min(len))
    }
}

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Room for one cmsg with an int (UDP_GRO's size, UDP_SEGMENT's u16).
const CMSG_ROOM: usize = 64;
/// At most this many datagrams in one GSO message (the kernel's
/// UDP_MAX_SEGMENTS is 64 on older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// At most this many bytes in one GSO message (IPv4 payload limit).
const GSO_MAX_BYTES: usize = 65_507;

/// Asks the kernel to coalesce received datagrams (UDP_GRO).
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    topo::emu::setsockopt_int(fd, SOL_UDP, UDP_GRO, 1)
}

/// The UDP_GRO segment size in a received message's control data.
fn gro_size(m: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel filled msg_control up to msg_controllen; the CMSG
    // macros stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).ok().filter(|&v| v > 0);
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    None
}

/// A [`recv_batch`] error that only means nothing came this time (would
/// block, timed out, interrupted): the loop polls again.
pub fn nothing_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Receives up to `BATCH` messages into `slots` with one `recvmmsg`,
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
    let mut ctrl = [[0u64; CMSG_ROOM / 8]; BATCH];
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
        m.msg_control = ctrl[i].as_mut_ptr().cast();
        m.msg_controllen = CMSG_ROOM as _;
    }
    // SAFETY: BATCH headers, each with one iovec into a live slot buffer,
    // a sockaddr_in and a control buffer of the stated lengths, all
    // outliving the call.
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
        let len = hdrs[i].msg_len as usize;
        out[i] = Received {
            len,
            from,
            truncated: hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            seg: gro_size(&hdrs[i].msg_hdr).unwrap_or(len),
        };
    }
    Ok(n)
}

/// Datagrams queued for one `sendmmsg`: ranges of [`Slots`] and peers.
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<(usize, usize, usize, SocketAddrV4)>,
    /// Bit per item: refused by the last flush.
    failed: Vec<u64>,
    gso: bool,
}

/// At most this many iovecs (datagrams) in one `sendmmsg` call.
const IOV_PER_CALL: usize = 1024;

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
    /// Messages that carried several datagrams (GSO).
    pub gso_messages: u64,
    /// The kernel refused GSO: it is off for this outbox from now on (the
    /// caller logs it once).
    pub gso_refused: bool,
}

impl Sent {
    fn refuse(&mut self, items: std::ops::Range<usize>, bits: &mut [u64]) {
        for j in items {
            self.errors += 1;
            if j < 64 {
                self.failed |= 1 << j;
            }
            if let Some(w) = bits.get_mut(j / 64) {
                *w |= 1 << (j % 64);
            }
        }
    }
}

impl Outbox {
    /// Room for a batch, GSO off.
    pub fn new() -> Outbox {
        Outbox::with_capacity(BATCH)
    }
    /// Room for `n` datagrams (a batch of segmented super-packets), GSO
    /// off.
    pub fn with_capacity(n: usize) -> Outbox {
        Outbox {
            items: Vec::with_capacity(n),
            failed: vec![0; n.div_ceil(64)],
            gso: false,
        }
    }
    /// Did the last [`flush`](Self::flush) fail to send the `i`-th
    /// datagram queued?
    pub fn failed(&self, i: usize) -> bool {
        self.failed
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// Send runs of same-size datagrams to one peer as GSO messages.
    pub fn set_gso(&mut self, on: bool) {
        self.gso = on;
    }
    /// Is GSO on (asked for and not refused)?
    pub fn gso(&self) -> bool {
        self.gso
    }
    /// The `i`-th datagram queued: (slot, start, end, peer).
    pub fn item(&self, i: usize) -> (usize, usize, usize, SocketAddrV4) {
        self.items[i]
    }
    /// Queues `slot[start..end]` for `to`.
    pub fn push(&mut self, slot: usize, start: usize, end: usize, to: SocketAddrV4) {
        self.items.push((slot, start, end, to));
        if self.items.len() > self.failed.len() * 64 {
            self.failed.push(0);
        }
    }
    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The end (exclusive) of the message that starts at item `from`: with
    /// GSO, the run to the same peer of datagrams of the first one's size,
    /// the last possibly shorter; without, the one datagram.
    fn run_end(&self, from: usize, limit: usize) -> usize {
        let (_, s0, e0, to) = self.items[from];
        let size = e0 - s0;
        let mut end = from + 1;
        if !self.gso || size == 0 {
            return end;
        }
        let mut bytes = size;
        while end < limit && end - from < GSO_MAX_SEGMENTS {
            let (_, s, e, t) = self.items[end];
            let len = e - s;
            if t != to || len > size || len == 0 || bytes + len > GSO_MAX_BYTES {
                break;
            }
            bytes += len;
            end += 1;
            if len < size {
                break;
            }
        }
        end
    }

    /// Sends everything queued with as few `sendmmsg` calls as the kernel
    /// allows (with GSO, a run to one peer as one message); a datagram it
    /// refuses is counted in [`Sent::errors`] with its error in
    /// `last_error` and skipped. The items stay until
    /// [`clear`](Self::clear).
    pub fn flush(&mut self, fd: RawFd, slots: &Slots, last_error: &mut Option<io::Error>) -> Sent {
        let mut sent = Sent::default();
        self.failed.iter_mut().for_each(|w| *w = 0);
        let mut off = 0;
        while off < self.items.len() {
            let limit = self.items.len().min(off + IOV_PER_CALL);
            // The messages of this call: ranges of items.
            let mut msgs = [(0usize, 0usize); BATCH];
            let mut k = 0;
            let mut at = off;
            while at < limit && k < BATCH {
                let end = self.run_end(at, limit);
                msgs[k] = (at, end);
                k += 1;
                at = end;
            }
            // SAFETY: all-zero is a valid sockaddr_in / mmsghdr / iovec.
            let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
            let mut iov: [libc::iovec; IOV_PER_CALL] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            let mut ctrl = [[0u64; CMSG_ROOM / 8]; BATCH];
            for (m, &(a, b)) in msgs[..k].iter().enumerate() {
                let to = self.items[a].3;
                addrs[m].sin_family = libc::AF_INET as libc::sa_family_t;
                addrs[m].sin_port = to.port().to_be();
                addrs[m].sin_addr.s_addr = u32::from(*to.ip()).to_be();
                for j in a..b {
                    let (slot, start, end, _) = self.items[j];
                    let data = &slots.bufs[slot][start..end];
                    iov[j - off] = libc::iovec {
                        iov_base: data.as_ptr() as *mut libc::c_void,
                        iov_len: data.len(),
                    };
                }
                let h = &mut hdrs[m].msg_hdr;
                h.msg_name = (&mut addrs[m] as *mut libc::sockaddr_in).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_iov = &mut iov[a - off];
                h.msg_iovlen = (b - a) as _;
                if b - a > 1 {
                    let (_, s0, e0, _) = self.items[a];
                    let seg = (e0 - s0) as u16;
                    h.msg_control = ctrl[m].as_mut_ptr().cast();
                    // SAFETY: CMSG_SPACE of a u16 fits in CMSG_ROOM; the
                    // header and its data are written inside ctrl[m].
                    unsafe {
                        h.msg_controllen = libc::CMSG_SPACE(2) as _;
                        let c = libc::CMSG_FIRSTHDR(h);
                        (*c).cmsg_level = SOL_UDP;
                        (*c).cmsg_type = UDP_SEGMENT;
                        (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
                    }
                }
            }
            // SAFETY: k headers pointing at live slot data (only read),
            // iovecs, sockaddr_ins and cmsgs on this stack frame.
            let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), k as libc::c_uint, 0) };
            let (a, b) = msgs[0];
            let done = if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if b - a > 1
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE)
                    )
                {
                    // No GSO on this path: off for good, the run again
                    // as single datagrams.
                    self.gso = false;
                    sent.gso_refused = true;
                    *last_error = Some(e);
                    continue;
                }
                // The first message failed: count it, go on after it.
                sent.refuse(a..b, &mut self.failed);
                *last_error = Some(e);
                1
            } else if r == 0 {
                // Nothing sent and no error: count the first as refused
                // rather than spin.
                sent.refuse(a..b, &mut self.failed);
                1
            } else {
                let r = r as usize;
                for (m, &(a, b)) in msgs[..r].iter().enumerate() {
                    sent.packets += (b - a) as u64;
                    sent.bytes += u64::from(hdrs[m].msg_len);
                    if b - a > 1 {
                        sent.gso_messages += 1;
                    }
                }
                r
            };
            off = msgs[done - 1].1;
        }
        sent
    }

    /// Forgets what was queued (after [`flush`](Self::flush) and reading
    /// [`item`](Self::item)s).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// Receive and send buffer of an N3 socket, the gNB's and the UPF's: 16 MiB
/// (was 4: with 4 the N3 receive buffers overflowed during 1400-byte UDP
/// bursts while a packet thread waited for a core, `RcvbufErrors` in
/// `testbed bench dataplane`'s drop table; the default ~200 KiB overflows
/// at any burst of G-PDUs).
pub const N3_BUFFER: libc::c_int = 16 << 20;

/// Asks for `bytes` of receive and send buffer on a socket (the kernel
/// caps it at `net.core.rmem_max`/`wmem_max`; as root, SO_*BUFFORCE
/// passes the cap). A burst of a batch's size from a peer must fit.
pub fn set_buffers(fd: RawFd, bytes: libc::c_int) -> io::Result<()> {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // The capped option when the forcing one is refused (not root).
        if topo::emu::setsockopt_int(fd, libc::SOL_SOCKET, force, bytes).is_err() {
            topo::emu::setsockopt_int(fd, libc::SOL_SOCKET, plain, bytes)?;
        }
    }
    Ok(())
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
        let mut got = [Received::EMPTY; BATCH];
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

    /// Runs of one size go out as GSO messages and come back byte-exact,
    /// as single datagrams to a socket without GRO and coalesced (walked
    /// with `segments`) to one with GRO: a full batch of one size, a run
    /// with a short last datagram, a peer change in the middle of a run,
    /// 1-byte datagrams.
    #[test]
    fn gso_runs_carry_datagrams_byte_exact_with_and_without_gro() {
        for gro in [false, true] {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            for s in [&b, &c] {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                if gro {
                    enable_gro(s.as_raw_fd()).unwrap();
                }
            }
            let mut tx = Slots::new(16, 2000);
            let mut rx = Slots::new(0, 65536);
            let mut got = [Received::EMPTY; BATCH];
            let mut ob = Outbox::new();
            ob.set_gso(true);
            // (size, to c rather than b) per datagram of a batch.
            let cases: Vec<Vec<(usize, bool)>> = vec![
                vec![(1200, false); BATCH],
                (0..7)
                    .map(|i| (if i == 6 { 300 } else { 1000 }, false))
                    .collect(),
                (0..10).map(|i| (1400, i >= 5)).collect(),
                vec![(1, false); 3],
            ];
            for case in &cases {
                let mut want: Vec<(bool, Vec<u8>)> = Vec::new();
                for (i, &(len, to_c)) in case.iter().enumerate() {
                    let p: Vec<u8> = (0..len).map(|k| (k * 13 + i * 101) as u8).collect();
                    tx.buf_mut(i)[16..16 + len].copy_from_slice(&p);
                    ob.push(i, 16, 16 + len, v4(if to_c { &c } else { &b }));
                    want.push((to_c, p));
                }
                let mut err = None;
                let s = ob.flush(a.as_raw_fd(), &tx, &mut err);
                ob.clear();
                assert_eq!(s.packets as usize, case.len(), "{err:?}");
                assert!(!s.gso_refused, "{err:?}");
                assert!(s.gso_messages >= 1);
                for (sock, is_c) in [(&b, false), (&c, true)] {
                    let expect: Vec<&Vec<u8>> =
                        want.iter().filter(|w| w.0 == is_c).map(|w| &w.1).collect();
                    let mut seen = Vec::new();
                    while seen.len() < expect.len() {
                        let n = recv_batch(sock.as_raw_fd(), &mut rx, &mut got).unwrap();
                        for (k, r) in got[..n].iter().enumerate() {
                            assert!(!r.truncated);
                            for seg in r.segments() {
                                seen.push(rx.buf(k)[seg].to_vec());
                            }
                        }
                    }
                    assert_eq!(seen.len(), expect.len(), "gro {gro}");
                    for (s, e) in seen.iter().zip(&expect) {
                        assert_eq!(&s[..], &e[..], "gro {gro}");
                    }
                }
            }
        }
    }

    /// A path whose MTU is below the GSO segment size makes the kernel
    /// refuse GSO (EMSGSIZE): the outbox turns it off, says so, and the run
    /// still arrives byte-exact as single (fragmented) datagrams.
    #[test]
    #[ignore = "needs root: a namespace with lo at MTU 1280"]
    fn refused_gso_falls_back_to_single_datagrams() {
        testkit::require_root();
        let ns = testkit::Netns::new(&testkit::unique("dpg")).expect("netns");
        ns.ip(&["link", "set", "lo", "mtu", "1280"]).expect("mtu");
        let (sent, gso_after, got) = ns
            .run(|| {
                let a = UdpSocket::bind("127.0.0.1:0").unwrap();
                let b = UdpSocket::bind("127.0.0.1:0").unwrap();
                b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut tx = Slots::new(0, 2000);
                let mut ob = Outbox::new();
                ob.set_gso(true);
                for i in 0..4 {
                    tx.buf_mut(i)[..1400].fill(i as u8 + 1);
                    ob.push(i, 0, 1400, v4(&b));
                }
                let mut err = None;
                let sent = ob.flush(a.as_raw_fd(), &tx, &mut err);
                let mut got = Vec::new();
                let mut buf = [0u8; 2000];
                for _ in 0..4 {
                    let n = b.recv(&mut buf).unwrap();
                    got.push(buf[..n].to_vec());
                }
                (sent, ob.gso(), got)
            })
            .expect("run in netns");
        assert!(sent.gso_refused);
        assert!(!gso_after, "GSO is off after a refusal");
        assert_eq!((sent.packets, sent.errors, sent.gso_messages), (4, 0, 0));
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &vec![i as u8 + 1; 1400]);
        }
    }

    #[test]
    fn segments_walk_a_coalesced_slot() {
        let r = Received {
            len: 2500,
            seg: 1000,
            ..Received::EMPTY
        };
        let segs: Vec<_> = r.segments().collect();
        assert_eq!(segs, vec![0..1000, 1000..2000, 2000..2500]);
        let one = Received {
            len: 700,
            seg: 700,
            ..Received::EMPTY
        };
        assert_eq!(one.segments().collect::<Vec<_>>(), vec![0..700]);
        let empty = Received::EMPTY;
        assert_eq!(empty.segments().collect::<Vec<_>>(), vec![0..0]);
    }

    /// More datagrams than a batch (a segmented super-packet's worth) go
    /// in one flush; a refused one past the 64th is still reported.
    #[test]
    fn a_large_outbox_is_sent_and_failures_reported_per_item() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        set_buffers(b.as_raw_fd(), 4 << 20).unwrap();
        let mut tx = Slots::new(0, 100_000);
        let mut ob = Outbox::with_capacity(200);
        ob.set_gso(true);
        for k in 0..150 {
            tx.buf_mut(0)[k * 600..k * 600 + 600].fill(k as u8);
            let to = if k == 70 {
                SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
            } else {
                v4(&b)
            };
            ob.push(0, k * 600, k * 600 + 600, to);
        }
        let mut err = None;
        let s = ob.flush(a.as_raw_fd(), &tx, &mut err);
        assert_eq!((s.packets, s.errors), (149, 1), "{err:?}");
        assert!(ob.failed(70) && !ob.failed(69) && !ob.failed(71));
        let mut buf = [0u8; 700];
        for k in (0..150).filter(|&k| k != 70) {
            assert_eq!(b.recv(&mut buf).unwrap(), 600);
            assert_eq!(buf[0], k as u8);
        }
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
