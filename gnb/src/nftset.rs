//! Set elements of the gNB's nftables table over netlink
//! (`NFT_MSG_NEWSETELEM` / `NFT_MSG_DELSETELEM` in one nfnetlink batch).
//!
//! A tunnel setup opens the uplink filter for its session address; running
//! `nft` for that costs about 4 ms (a process per call: 4.4 ms per element
//! measured here), sixty times the rest of an N2 setup (66 µs). One batch
//! on a netlink socket opened once in the gNB's namespace does the same in
//! microseconds. The table itself, its rules and counters stay with `nft`
//! (once at start and stop, and for `/metrics`).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::radio::Mac;

// include/uapi/linux/netfilter/nf_tables.h (not in the libc crate).
/// `NFTA_SET_ELEM_LIST_TABLE`.
const LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
const LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
const LIST_ELEMENTS: u16 = 3;
/// `NFTA_LIST_ELEM`.
const LIST_ELEM: u16 = 1;
/// `NFTA_SET_ELEM_KEY`.
const ELEM_KEY: u16 = 1;
/// `NFTA_DATA_VALUE`.
const DATA_VALUE: u16 = 1;

const NESTED: u16 = libc::NLA_F_NESTED as u16;

/// The key of an `ipv4_addr` set.
pub fn key_v4(addr: Ipv4Addr) -> Vec<u8> {
    addr.octets().to_vec()
}

/// The key of an `ether_addr . ipv4_addr` set: each part padded to a
/// 32-bit register (6 + 2 + 4 octets).
pub fn key_mac_v4(mac: Mac, addr: Ipv4Addr) -> Vec<u8> {
    let mut k = mac.0.to_vec();
    k.extend_from_slice(&[0, 0]);
    k.extend_from_slice(&addr.octets());
    k
}

fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

fn nested(buf: &mut Vec<u8>, ty: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let mut b = Vec::new();
    inner(&mut b);
    attr(buf, ty | NESTED, &b);
}

/// One netlink message with an nfgenmsg header.
fn message(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, body: &[u8]) {
    let len = 16 + 4 + body.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, libc::NFNETLINK_V0 as u8]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(body);
}

/// The batch that adds (or deletes) one element with `key` in `table`'s
/// `set` (family inet); the element message asks for an ack, with `seq`.
pub fn batch(add: bool, table: &str, set: &str, key: &[u8], seq: u32) -> Vec<u8> {
    let cstr = |s: &str| [s.as_bytes(), &[0]].concat();
    let mut body = Vec::new();
    attr(&mut body, LIST_TABLE, &cstr(table));
    attr(&mut body, LIST_SET, &cstr(set));
    nested(&mut body, LIST_ELEMENTS, |b| {
        nested(b, LIST_ELEM, |b| {
            nested(b, ELEM_KEY, |b| attr(b, DATA_VALUE, key));
        })
    });
    let (op, extra) = if add {
        (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE)
    } else {
        (libc::NFT_MSG_DELSETELEM, 0)
    };
    let subsys = libc::NFNL_SUBSYS_NFTABLES as u16;
    let batch_res = subsys;
    let mut out = Vec::new();
    message(
        &mut out,
        libc::NFNL_MSG_BATCH_BEGIN as u16,
        libc::NLM_F_REQUEST as u16,
        seq,
        libc::AF_UNSPEC as u8,
        batch_res,
        &[],
    );
    message(
        &mut out,
        (subsys << 8) | op as u16,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | extra) as u16,
        seq,
        libc::NFPROTO_INET as u8,
        0,
        &body,
    );
    message(
        &mut out,
        libc::NFNL_MSG_BATCH_END as u16,
        libc::NLM_F_REQUEST as u16,
        seq,
        libc::AF_UNSPEC as u8,
        batch_res,
        &[],
    );
    out
}

/// A netfilter netlink socket in the namespace of the thread that opened it.
#[derive(Debug)]
pub struct SetSocket {
    fd: OwnedFd,
    seq: AtomicU32,
}

impl SetSocket {
    /// Opens it (1 s receive timeout for the ack).
    pub fn open() -> io::Result<SetSocket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor this function owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        topo::emu::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        Ok(SetSocket {
            fd,
            seq: AtomicU32::new(1),
        })
    }

    /// Adds (or deletes) the element `key` of `table`'s `set`. Callers
    /// serialise calls (one ack is read per call).
    pub fn change(&self, add: bool, table: &str, set: &str, key: &[u8]) -> io::Result<()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg = batch(add, table, set, key, seq);
        // SAFETY: send(2) of an initialised buffer on our fd.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: recv(2) into a buffer we own, of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(errno) = ack_of(&buf[..n as usize], seq) {
                return match errno {
                    0 => Ok(()),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
        }
    }
}

/// The error code of the `NLMSG_ERROR` (ack) for `seq` in a datagram.
fn ack_of(mut d: &[u8], seq: u32) -> Option<i32> {
    let u32_at = |d: &[u8], i: usize| {
        d.get(i..i + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    while d.len() >= 16 {
        let len = u32_at(d, 0)? as usize;
        let ty = u16::from_ne_bytes([d[4], d[5]]);
        let s = u32_at(d, 8)?;
        if ty == libc::NLMSG_ERROR as u16 && s == seq {
            return u32_at(d, 16).map(|e| -(e as i32));
        }
        let step = (len + 3) & !3;
        if len < 16 || step > d.len() {
            return None;
        }
        d = &d[step..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_register_aligned() {
        let a = Ipv4Addr::new(10, 45, 0, 2);
        assert_eq!(key_v4(a), vec![10, 45, 0, 2]);
        assert_eq!(
            key_mac_v4(Mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]), a),
            vec![2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0, 10, 45, 0, 2]
        );
    }

    #[test]
    fn batch_layout() {
        let b = batch(true, "t", "s", &[10, 45, 0, 2], 7);
        // begin (20) + element message + end (20)
        let begin = &b[..20];
        assert_eq!(
            u32::from_ne_bytes([begin[0], begin[1], begin[2], begin[3]]),
            20
        );
        assert_eq!(u16::from_ne_bytes([begin[4], begin[5]]), 16);
        assert_eq!(&begin[18..20], &10u16.to_be_bytes());
        let m = &b[20..];
        let len = u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize;
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), (10 << 8) | 12);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 0x401 | 0x4);
        assert_eq!(m[16], libc::NFPROTO_INET as u8);
        // table "t\0" padded to 8, set "s\0" padded to 8, then the nest:
        // elements(4) > elem(4) > key(4) > value(4 + 4) = 20.
        assert_eq!(len, 20 + 8 + 8 + 20);
        assert_eq!(&m[20..26], &[6, 0, 1, 0, b't', 0]);
        assert_eq!(&m[len - 4..len], &[10, 45, 0, 2]);
        assert_eq!(b.len(), 20 + len + 20);
        let del = batch(false, "t", "s", &[1, 2, 3, 4], 8);
        assert_eq!(u16::from_ne_bytes([del[24], del[25]]), (10 << 8) | 14);
    }

    #[test]
    fn ack_parsing() {
        let mut d = Vec::new();
        // An NLMSG_ERROR for seq 5 with -ENOENT, then one for seq 6 with 0.
        for (seq, err) in [(5u32, -libc::ENOENT), (6, 0)] {
            d.extend_from_slice(&36u32.to_ne_bytes());
            d.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
            d.extend_from_slice(&0u16.to_ne_bytes());
            d.extend_from_slice(&seq.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.extend_from_slice(&err.to_ne_bytes());
            d.extend_from_slice(&[0u8; 16]);
        }
        assert_eq!(ack_of(&d, 5), Some(libc::ENOENT));
        assert_eq!(ack_of(&d, 6), Some(0));
        assert_eq!(ack_of(&d, 7), None);
        assert_eq!(ack_of(&d[..10], 5), None);
    }
}
