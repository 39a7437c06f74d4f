//! Byte-exact transfers on each path, before anything is measured: a fast
//! path that corrupts or loses bytes must not be reported as fast.
//!
//! - TCP both ways: 1 byte, a whole number of segments (`k * MSS`, the MSS
//!   read from the connected socket), the same plus 7 bytes (a last segment
//!   that does not fill the MSS), 1 MiB + 3, and 8 MiB; every byte is
//!   checked against its position's pattern and the length against what was
//!   written. On path (a) the sender's kernel hands the gNB or the UPF TSO
//!   super-packets through their TUN, which they cut into GTP-U datagrams.
//! - UDP through the edge's echo: single datagrams of 1 to 1400 bytes, each
//!   compared with what came back.
//! - UDP GSO both ways: one `UDP_SEGMENT` send of 10 full segments and a
//!   short one; the receiver gets 11 datagrams with the right sizes and
//!   bytes (USO super-packets in the daemons' TUN).
//! - Checksums are checked by the receiving kernels: their `InCsumErrors`
//!   (TCP and UDP, in the UE's and the edge's namespace) must not move.

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use serde::Serialize;

use super::gen::{connect_from, in_ns, End};
use super::report::Path;

/// One transfer's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Path it ran on.
    pub path: Path,
    /// e.g. `tcp-up-8388608`, `udp-echo-1400`, `udp-gso-down`.
    pub test: String,
    /// Bytes that were to arrive.
    pub bytes: u64,
    /// Arrived complete and unchanged.
    pub ok: bool,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The byte at position `i` of a transfer seeded `seed`.
fn pattern(seed: u32, i: u64) -> u8 {
    ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8
}

fn fill(seed: u32, start: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = pattern(seed, start + k as u64);
    }
}

/// The TCP transfers, as (segments, extra): `segments * MSS + extra`
/// bytes: 1 B, 44 full segments, 44 and a short one, 1 MiB + 3, 8 MiB.
const TCP_SIZES: [(u64, u64); 5] = [(0, 1), (44, 0), (44, 7), (0, (1 << 20) + 3), (0, 8 << 20)];
/// UDP GSO: segment size and full segments per send.
const GSO_SIZE: usize = 1000;
const GSO_FULL: usize = 10;
const GSO_TAIL: usize = 333;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Every check on `path`, from `ue` (the path's UE address) to `edge` and
/// back, with the edge's UDP echo at `echo`; `port` is the next free TCP
/// and UDP port on both ends.
pub fn run(path: Path, ue: &End, edge: &End, echo: SocketAddrV4, port: &mut u16) -> Vec<Check> {
    let mut out = Vec::new();
    let csum_before = csum_errors(ue, edge);
    let mut seed = 1u32;
    for up in [true, false] {
        let (tx, rx) = if up { (ue, edge) } else { (edge, ue) };
        let dir = if up { "up" } else { "down" };
        for (segments, extra) in TCP_SIZES {
            seed += 1;
            *port += 1;
            let r = tcp_once(tx, rx, *port, seed, segments, extra);
            let (bytes, error) = match r {
                Ok((n, e)) => (n, e),
                Err(e) => (0, Some(e)),
            };
            out.push(Check {
                path,
                test: format!("tcp-{dir}-{bytes}"),
                bytes,
                ok: error.is_none(),
                error,
            });
        }
        seed += 1;
        *port += 1;
        let e = udp_gso(tx, rx, *port, seed).err();
        out.push(Check {
            path,
            test: format!("udp-gso-{dir}"),
            bytes: (GSO_FULL * GSO_SIZE + GSO_TAIL) as u64,
            ok: e.is_none(),
            error: e,
        });
    }
    for len in [1usize, 2, 63, 64, 512, 1000, 1200, 1400] {
        seed += 1;
        let e = udp_echo(ue, echo, seed, len).err();
        out.push(Check {
            path,
            test: format!("udp-echo-{len}"),
            bytes: len as u64,
            ok: e.is_none(),
            error: e,
        });
    }
    let csum_after = csum_errors(ue, edge);
    let error = match (csum_before, csum_after) {
        (Ok(b), Ok(a)) if a == b => None,
        (Ok(b), Ok(a)) => Some(format!(
            "receive checksum errors (TCP, UDP) in the UE's and edge's namespaces went from {b:?} to {a:?}"
        )),
        (Err(e), _) | (_, Err(e)) => Some(e),
    };
    out.push(Check {
        path,
        test: "checksums".into(),
        bytes: 0,
        ok: error.is_none(),
        error,
    });
    out
}

/// One TCP transfer of `segments * MSS + extra` bytes from `tx` to a listener on `rx`:
/// (bytes, None) when they all arrived unchanged.
fn tcp_once(
    tx: &End,
    rx: &End,
    port: u16,
    seed: u32,
    segments: u64,
    extra: u64,
) -> Result<(u64, Option<String>), String> {
    let at = SocketAddrV4::new(rx.addr, port);
    let l = in_ns(&rx.ns, "TCP listener", move || TcpListener::bind(at))?;
    let mut c = in_ns(&tx.ns, "TCP connect", {
        let src = tx.addr;
        move || connect_from(src, at)
    })?;
    let (mut s, _) = l.accept().map_err(|e| format!("accept on {at}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let n = segments * u64::from(mss(&c)?) + extra;
    let reader = std::thread::spawn(move || -> (u64, Option<String>) {
        let mut buf = vec![0u8; 1 << 16];
        let mut want = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, None),
                Ok(k) => {
                    fill(seed, got, &mut want[..k]);
                    if let Some(i) = (0..k).find(|&i| buf[i] != want[i]) {
                        return (
                            got,
                            Some(format!(
                                "byte {} is {:#04x}, sent {:#04x}",
                                got + i as u64,
                                buf[i],
                                want[i]
                            )),
                        );
                    }
                    got += k as u64;
                }
                Err(e) => return (got, Some(format!("read after {got} bytes: {e}"))),
            }
        }
    });
    c.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut chunk = vec![0u8; 1 << 16];
    let mut sent = 0u64;
    let mut write_err = None;
    while sent < n {
        let k = (n - sent).min(chunk.len() as u64) as usize;
        fill(seed, sent, &mut chunk[..k]);
        if let Err(e) = c.write_all(&chunk[..k]) {
            write_err = Some(format!("write after {sent} bytes: {e}"));
            break;
        }
        sent += k as u64;
    }
    // The reader ends at the end of the stream, or at the reset or the
    // timeout that a failed write leads to.
    let _ = c.shutdown(std::net::Shutdown::Write);
    let (got, err) = reader.join().map_err(|_| "reader panicked".to_string())?;
    let err = err
        .or(write_err)
        .or_else(|| (got != n).then(|| format!("{got} of {n} bytes arrived")));
    Ok((n, err))
}

/// The MSS of a connected TCP socket.
fn mss(s: &std::net::TcpStream) -> Result<u32, String> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out pointers of the given size.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 || v <= 0 {
        return Err(format!("TCP_MAXSEG: {}", std::io::Error::last_os_error()));
    }
    Ok(v as u32)
}

/// One datagram of `len` bytes to the echo and back, unchanged.
fn udp_echo(ue: &End, echo: SocketAddrV4, seed: u32, len: usize) -> Result<(), String> {
    let src = ue.addr;
    let s = in_ns(&ue.ns, "UDP socket", move || {
        let s = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
        s.connect(echo)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(s)
    })?;
    let mut d = vec![0u8; len];
    fill(seed, 0, &mut d);
    let mut buf = vec![0u8; 2048];
    // Up to 3 tries: a datagram may be lost; a changed one is an error.
    for _ in 0..3 {
        s.send(&d).map_err(|e| format!("send: {e}"))?;
        match s.recv(&mut buf) {
            Ok(k) if buf[..k] == d[..] => return Ok(()),
            Ok(k) => return Err(format!("sent {len} bytes, {k} came back changed")),
            Err(_) => continue,
        }
    }
    Err(format!("no echo of a {len}-byte datagram in 3 tries"))
}

/// Linux's UDP_SEGMENT socket option (linux/udp.h).
const UDP_SEGMENT: libc::c_int = 103;

/// One UDP GSO send from `tx` to a socket on `rx`: the datagrams must
/// arrive cut at `GSO_SIZE`, each unchanged.
fn udp_gso(tx: &End, rx: &End, port: u16, seed: u32) -> Result<(), String> {
    let at = SocketAddrV4::new(rx.addr, port);
    let r = in_ns(&rx.ns, "UDP receiver", move || {
        let s = UdpSocket::bind(at)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(s)
    })?;
    let src = tx.addr;
    let s = in_ns(&tx.ns, "UDP GSO sender", move || {
        UdpSocket::bind(SocketAddrV4::new(src, 0))
    })?;
    let v = GSO_SIZE as libc::c_int;
    // SAFETY: v is a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("UDP_SEGMENT: {}", std::io::Error::last_os_error()));
    }
    let total = GSO_FULL * GSO_SIZE + GSO_TAIL;
    let mut d = vec![0u8; total];
    fill(seed, 0, &mut d);
    // A lost datagram gets the whole send repeated (at most 3 times).
    'attempt: for _ in 0..3 {
        s.send_to(&d, at).map_err(|e| format!("GSO send: {e}"))?;
        let mut buf = vec![0u8; 65536];
        let mut off = 0;
        while off < total {
            let want = GSO_SIZE.min(total - off);
            match r.recv(&mut buf) {
                Ok(k) if k == want && buf[..k] == d[off..off + k] => off += k,
                Ok(k) => {
                    return Err(format!(
                        "datagram at offset {off}: {k} bytes, expected {want} unchanged"
                    ))
                }
                Err(_) => {
                    // Drain what is left of this attempt before the next.
                    while r.recv(&mut buf).is_ok() {}
                    continue 'attempt;
                }
            }
        }
        return Ok(());
    }
    Err(format!(
        "a {total}-byte GSO send did not arrive whole in 3 tries"
    ))
}

/// (TCP, UDP) InCsumErrors of the UE's and the edge's namespaces.
fn csum_errors(ue: &End, edge: &End) -> Result<Vec<(u64, u64)>, String> {
    [ue, edge]
        .iter()
        .map(|e| {
            let text = in_ns(&e.ns, "reading /proc/thread-self/net/snmp", || {
                std::fs::read_to_string("/proc/thread-self/net/snmp")
            })?;
            Ok((
                snmp(&text, "Tcp:", "InCsumErrors")?,
                snmp(&text, "Udp:", "InCsumErrors")?,
            ))
        })
        .collect()
}

/// A counter of /proc/net/snmp: the header line and the values line that
/// start with `proto`.
pub(super) fn snmp(text: &str, proto: &str, field: &str) -> Result<u64, String> {
    let mut lines = text.lines().filter(|l| l.starts_with(proto));
    let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
        return Err(format!("no {proto} lines in /proc/net/snmp"));
    };
    let i = h
        .split_whitespace()
        .position(|x| x == field)
        .ok_or_else(|| format!("no {proto} {field} in /proc/net/snmp"))?;
    v.split_whitespace()
        .nth(i)
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| format!("{proto} {field}: no value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_counter_by_header() {
        let t = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm InSegs InCsumErrors\nTcp: 1 55 3\nUdp: InDatagrams InCsumErrors\nUdp: 9 0\n";
        assert_eq!(snmp(t, "Tcp:", "InCsumErrors"), Ok(3));
        assert_eq!(snmp(t, "Udp:", "InCsumErrors"), Ok(0));
        assert!(snmp(t, "Icmp:", "InCsumErrors").is_err());
    }

    #[test]
    fn pattern_differs_by_seed_and_position() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill(1, 0, &mut a);
        fill(2, 0, &mut b);
        assert_ne!(a, b);
        fill(1, 1, &mut b);
        assert_ne!(a, b);
        let distinct: std::collections::BTreeSet<u8> = a.iter().copied().collect();
        assert!(distinct.len() > 30, "{distinct:?}");
    }
}
