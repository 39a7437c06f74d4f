//! A streaming client: one thread per stream, UDP -> RTP depacketizer ->
//! H.264 decoder -> the stream's one-frame buffer.
//!
//! The thread binds a UDP socket to the address it is given (the UE
//! session's address: an application picks a session by binding to its
//! address), so two streams on two PDU sessions are two clients. It never
//! stops on bad input: a datagram that is not RTP/H.264 is dropped and
//! counted, an access unit with a hole is counted and not decoded, a
//! decoder error is counted; the thread goes on with the next datagram.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::buffer::{BufferWriter, FrameInfo};
use super::{realtime_ns, StreamError};

/// How often the receiving thread looks at its stop flag when no datagram
/// comes.
const STOP_POLL: Duration = Duration::from_millis(20);
/// Largest datagram taken.
const MAX_DATAGRAM: usize = 65_536;
/// Socket receive buffer asked for (key frames come in bursts).
const RECV_BUFFER: usize = 4 << 20;

/// Octets of IP + UDP header counted per packet "on the wire": 28 for
/// IPv4 (20 + 8), 48 for IPv6 (40 + 8). No link layer, no GTP-U.
pub fn wire_overhead(addr: &SocketAddr) -> u64 {
    if addr.is_ipv4() {
        28
    } else {
        48
    }
}

#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    payload_bytes: AtomicU64,
    wire_bytes: AtomicU64,
    malformed: AtomicU64,
    incomplete: AtomicU64,
    decode_errors: AtomicU64,
    frames: AtomicU64,
    socket_errors: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

/// A snapshot of a stream's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStats {
    /// The stream's name.
    pub name: String,
    /// The address the client listens on.
    pub bind: Option<SocketAddr>,
    /// Datagrams received.
    pub packets: u64,
    /// UDP payload octets received.
    pub payload_bytes: u64,
    /// Octets on the wire: UDP payload + IP/UDP headers ([`wire_overhead`]).
    pub wire_bytes: u64,
    /// Datagrams the RTP/H.264 depacketizer rejected (dropped).
    pub malformed: u64,
    /// Access units with a hole (lost or malformed packet): not decoded.
    pub incomplete: u64,
    /// Access units the decoder rejected.
    pub decode_errors: u64,
    /// Frames decoded into the buffer.
    pub frames: u64,
    /// Receive errors of the socket.
    pub socket_errors: u64,
    /// RTP packets missing from sequence gaps.
    pub rtp_lost: u64,
    /// RTP packets late or duplicate (dropped).
    pub rtp_late: u64,
    /// Arrival of the first datagram (CLOCK_REALTIME ns, 0: none).
    pub first_ns: u64,
    /// Arrival of the last datagram (CLOCK_REALTIME ns, 0: none).
    pub last_ns: u64,
}

impl StreamStats {
    /// Bitrate on the wire between the first and the last datagram, in
    /// Mbit/s (0 with fewer than two datagrams).
    pub fn wire_mbit_s(&self) -> f64 {
        let span = self.last_ns.saturating_sub(self.first_ns);
        if self.packets < 2 || span == 0 {
            return 0.0;
        }
        self.wire_bytes as f64 * 8.0 / (span as f64 / 1e9) / 1e6
    }
}

/// One stream's receiving thread.
#[derive(Debug)]
pub struct StreamClient {
    name: Arc<str>,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl StreamClient {
    /// Binds `bind` (port 0 picks one) and starts the thread that decodes
    /// into `writer`'s buffer. The stream's name is the buffer's name.
    pub fn spawn(bind: SocketAddr, writer: BufferWriter) -> Result<StreamClient, StreamError> {
        let sock = bind_udp(bind)?;
        let local = sock.local_addr().map_err(StreamError::Io)?;
        sock.set_read_timeout(Some(STOP_POLL))
            .map_err(StreamError::Io)?;
        let name = writer.name().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
            let t = std::thread::Builder::new()
                .name(format!("stream-{name}"))
                .spawn(move || {
                    ctlhttp::rt::media_thread("stream");
                    // The decoder is made in the thread that uses it.
                    let decoder = match media::h264::Decoder::new() {
                        Ok(d) => {
                            let _ = ready_tx.send(Ok(()));
                            d
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    receive(sock, writer, decoder, &stop, &counters)
                })
                .map_err(StreamError::Io)?;
            match ready_rx.recv() {
                Ok(Ok(())) => t,
                Ok(Err(e)) => return Err(StreamError::Decoder(e)),
                Err(_) => return Err(StreamError::Panicked(format!("stream-{name}"))),
            }
        };
        tracing::info!(stream = %name, %local, "streaming client listening");
        Ok(StreamClient {
            name,
            local,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The counters now.
    pub fn stats(&self) -> StreamStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamStats {
            name: self.name.to_string(),
            bind: Some(self.local),
            packets: l(&c.packets),
            payload_bytes: l(&c.payload_bytes),
            wire_bytes: l(&c.wire_bytes),
            malformed: l(&c.malformed),
            incomplete: l(&c.incomplete),
            decode_errors: l(&c.decode_errors),
            frames: l(&c.frames),
            socket_errors: l(&c.socket_errors),
            rtp_lost: l(&c.lost),
            rtp_late: l(&c.late),
            first_ns: l(&c.first_ns),
            last_ns: l(&c.last_ns),
        }
    }

    /// Stops the thread, waits for it, and returns the final counters.
    pub fn stop(mut self) -> Result<StreamStats, StreamError> {
        self.halt()?;
        Ok(self.stats())
    }

    fn halt(&mut self) -> Result<(), StreamError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| StreamError::Panicked(format!("stream-{}", self.name))),
            None => Ok(()),
        }
    }
}

impl Drop for StreamClient {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            tracing::warn!("{e}");
        }
    }
}

/// A UDP socket bound to `addr` with a large receive buffer.
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, StreamError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_err = |source| StreamError::Bind { addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    if let Err(e) = s.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!("SO_RCVBUF {RECV_BUFFER}: {e}");
    }
    s.bind(&addr.into()).map_err(bind_err)?;
    Ok(s.into())
}

fn receive(
    sock: UdpSocket,
    mut writer: BufferWriter,
    mut decoder: media::h264::Decoder,
    stop: &AtomicBool,
    c: &Counters,
) {
    let name = writer.name().clone();
    let overhead = sock.local_addr().map(|a| wire_overhead(&a)).unwrap_or(28);
    let mut depack = media::rtp::Depacketizer::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                let k = c.socket_errors.fetch_add(1, Ordering::Relaxed);
                if k.is_power_of_two() || k == 0 {
                    tracing::warn!(stream = %name, "receive: {e} ({} so far)", k + 1);
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let now = realtime_ns();
        if c.packets.fetch_add(1, Ordering::Relaxed) == 0 {
            c.first_ns.store(now, Ordering::Relaxed);
        }
        c.last_ns.store(now, Ordering::Relaxed);
        c.payload_bytes.fetch_add(n as u64, Ordering::Relaxed);
        c.wire_bytes
            .fetch_add(n as u64 + overhead, Ordering::Relaxed);
        let mut next = match depack.push(&buf[..n]) {
            Ok(au) => au,
            Err(e) => {
                let k = c.malformed.fetch_add(1, Ordering::Relaxed);
                if k.is_power_of_two() || k == 0 {
                    tracing::debug!(stream = %name, "dropped datagram: {e} ({} so far)", k + 1);
                }
                continue;
            }
        };
        let d = depack.stats();
        c.lost.store(d.lost, Ordering::Relaxed);
        c.late.store(d.late, Ordering::Relaxed);
        // One datagram can finish two access units (a lost marker).
        while let Some(au) = next {
            decode(&mut decoder, au, now, &mut seq, &mut writer, c);
            next = depack.pop();
        }
    }
    tracing::debug!(stream = %name, frames = seq, "streaming client stopped");
}

fn decode(
    decoder: &mut media::h264::Decoder,
    au: media::rtp::AccessUnit,
    recv_ns: u64,
    seq: &mut u64,
    writer: &mut BufferWriter,
    c: &Counters,
) {
    if !au.complete {
        // A hole: decoding it would show a broken picture; the decoder
        // picks up again at the next frame (fully at the next IDR).
        c.incomplete.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match decoder.decode(&au.annexb) {
        Ok(Some(frame)) => {
            *seq += 1;
            let meta = au.meta;
            let info = FrameInfo {
                source: writer.name().clone(),
                seq: *seq,
                rtp_ts: au.timestamp,
                tick: meta.as_ref().map(|m| m.tick),
                input_seq: meta.as_ref().map(|m| m.input_seq),
                rendered_ns: meta.as_ref().map(|m| m.rendered_ns),
                recv_ns,
                decoded_ns: realtime_ns(),
            };
            writer.publish(info, frame);
            c.frames.fetch_add(1, Ordering::Relaxed);
        }
        Ok(None) => {}
        Err(e) => {
            let k = c.decode_errors.fetch_add(1, Ordering::Relaxed);
            if k.is_power_of_two() || k == 0 {
                tracing::debug!(stream = %writer.name(), "decode: {e} ({} so far)", k + 1);
            }
        }
    }
}
