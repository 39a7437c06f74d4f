//! The copy link, blocking: the [`Sender`] (source agent) writes each
//! round's header and payload and waits for the receiver's acknowledgement,
//! so a round's duration is the link's; [`receive`] (destination agent)
//! reads, checks and counts. The sender's [`Ledger`] counts what it wrote:
//! payload (the image bytes of the plan) and framing (headers). The
//! receiver's acknowledgements (24 bytes a round) go the other way and are
//! not in the ledger.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::frame::{Ack, FrameError, Header, Kind, ACK_LEN, HEADER_LEN};
use super::plan::Method;

/// Errors of the copy link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The receiver's copy listener could not be reached.
    #[error("cannot connect to the copy listener {to}: {source}")]
    Connect {
        /// Where.
        to: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("copy link {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A frame did not parse.
    #[error("copy link: {0}")]
    Frame(#[from] FrameError),
    /// The peer broke the protocol.
    #[error("copy link: {0}")]
    Protocol(String),
    /// The agent is stopping.
    #[error("cancelled")]
    Cancelled,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Io { what, source }
}

/// One round as the sender saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSent {
    /// 1-based.
    pub round: u32,
    /// Payload bytes written.
    pub bytes: u64,
    /// Whether the source ran during it.
    pub source_running: bool,
    /// From the header's write to the acknowledgement's arrival.
    pub ms: f64,
    /// Payload bytes the receiver acknowledged.
    pub acked_bytes: u64,
}

/// The sender's own count of what it wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Every round.
    pub rounds: Vec<RoundSent>,
    /// Payload bytes written.
    pub payload_bytes: u64,
    /// Header bytes written (a header per round and the end frame).
    pub framing_bytes: u64,
}

impl Ledger {
    /// Everything written.
    pub fn total(&self) -> u64 {
        self.payload_bytes + self.framing_bytes
    }
}

/// Chunk size of writes and reads.
const CHUNK: usize = 256 << 10;

/// The payload: pseudo-random bytes (a page image compresses badly too).
fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The sending end of one migration.
pub struct Sender {
    stream: TcpStream,
    method: Method,
    id: u64,
    buf: Vec<u8>,
    ledger: Ledger,
    next_round: u32,
    sent: Option<Arc<AtomicU64>>,
    cancel: Option<Arc<AtomicBool>>,
}

impl Sender {
    /// Connects to the copy listener at `to` (reads and writes time out
    /// after `timeout`).
    pub fn connect(
        to: SocketAddr,
        method: Method,
        id: u64,
        timeout: Duration,
    ) -> Result<Sender, LinkError> {
        let stream = TcpStream::connect_timeout(&to, timeout)
            .map_err(|source| LinkError::Connect { to, source })?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .and_then(|_| stream.set_nodelay(true))
            .map_err(io_err("socket options"))?;
        Ok(Sender {
            stream,
            method,
            id,
            buf: pattern(),
            ledger: Ledger::default(),
            next_round: 1,
            sent: None,
            cancel: None,
        })
    }

    /// Adds every byte written to `c` as well.
    pub fn count_into(mut self, c: Arc<AtomicU64>) -> Sender {
        self.sent = Some(c);
        self
    }

    /// Stops between chunks once `c` is set.
    pub fn cancel_on(mut self, c: Arc<AtomicBool>) -> Sender {
        self.cancel = Some(c);
        self
    }

    /// What was written so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn write(&mut self, n: usize, header: Option<[u8; HEADER_LEN]>) -> Result<(), LinkError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(LinkError::Cancelled);
        }
        let (bytes, what): (&[u8], _) = match &header {
            Some(h) => (h, "header"),
            None => (&self.buf[..n], "payload"),
        };
        self.stream
            .write_all(bytes)
            .map_err(io_err(format!("write {what}")))?;
        let n = bytes.len() as u64;
        if header.is_some() {
            self.ledger.framing_bytes += n;
        } else {
            self.ledger.payload_bytes += n;
        }
        if let Some(c) = &self.sent {
            c.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }

    fn header(&mut self, kind: Kind, length: u64) -> Result<u32, LinkError> {
        let round = self.next_round;
        let h = Header {
            method: self.method,
            kind,
            migration_id: self.id,
            round,
            length,
        };
        self.write(0, Some(h.emit()))?;
        Ok(round)
    }

    fn read_ack(&mut self, round: u32) -> Result<Ack, LinkError> {
        let mut b = [0u8; ACK_LEN];
        self.stream
            .read_exact(&mut b)
            .map_err(io_err(format!("read the acknowledgement of round {round}")))?;
        let a = Ack::parse(&b)?;
        if a.round != round || a.migration_id != self.id {
            return Err(LinkError::Protocol(format!(
                "acknowledgement of round {} of migration {} where round {round} of {} was due",
                a.round, a.migration_id, self.id
            )));
        }
        Ok(a)
    }

    /// Copies `bytes` as the next round and waits for its acknowledgement.
    pub fn send_round(
        &mut self,
        bytes: u64,
        source_running: bool,
    ) -> Result<&RoundSent, LinkError> {
        let t0 = Instant::now();
        let kind = if source_running {
            Kind::Live
        } else {
            Kind::Stopped
        };
        let round = self.header(kind, bytes)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            self.write(n, None)?;
            left -= n as u64;
        }
        let a = self.read_ack(round)?;
        if a.bytes != bytes {
            return Err(LinkError::Protocol(format!(
                "round {round}: the receiver counted {} of {bytes} bytes",
                a.bytes
            )));
        }
        self.next_round += 1;
        self.ledger.rounds.push(RoundSent {
            round,
            bytes,
            source_running,
            ms: t0.elapsed().as_secs_f64() * 1e3,
            acked_bytes: a.bytes,
        });
        let last = self.ledger.rounds.len() - 1;
        Ok(&self.ledger.rounds[last])
    }

    /// Sends the end frame; returns the receiver's total of payload bytes,
    /// which must be the ledger's.
    pub fn finish(&mut self) -> Result<u64, LinkError> {
        let round = self.header(Kind::End, 0)?;
        let a = self.read_ack(round)?;
        if a.bytes != self.ledger.payload_bytes {
            return Err(LinkError::Protocol(format!(
                "the receiver counted {} payload bytes in all, the sender wrote {}",
                a.bytes, self.ledger.payload_bytes
            )));
        }
        Ok(a.bytes)
    }
}

/// One round as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundReceived {
    /// 1-based.
    pub round: u32,
    /// Payload bytes read.
    pub bytes: u64,
    /// Whether the sender said the source was running.
    pub source_running: bool,
}

/// What the receiver got from one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// The migration (0 when not even a header arrived).
    pub migration_id: u64,
    /// Its method, once a header arrived.
    pub method: Option<Method>,
    /// The sender's address.
    pub from: SocketAddr,
    /// Every round read.
    pub rounds: Vec<RoundReceived>,
    /// Payload bytes read.
    pub payload_bytes: u64,
    /// Header bytes read.
    pub framing_bytes: u64,
    /// Whether the end frame arrived.
    pub complete: bool,
    /// Why it ended early.
    pub error: Option<String>,
}

/// The memory a received copy fills at the destination, as a migrated VM's
/// memory there: the first round is written into it as it arrives (its
/// pages become resident then, not at allocation), later rounds' dirty
/// pages overwrite it in turn. At most `limit` bytes are kept; the rest is
/// read and counted only.
#[derive(Debug, Default)]
pub struct Image {
    mem: Vec<u8>,
    limit: usize,
    /// Where the next dirty page lands (rounds after the first).
    at: usize,
}

impl Image {
    /// An empty image keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Image {
        Image {
            mem: Vec::new(),
            limit,
            at: 0,
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.mem.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.mem.is_empty()
    }

    /// Room for the first round's `bytes` (within the limit): reserved, not
    /// touched, so the resident memory grows with the bytes written.
    fn reserve(&mut self, bytes: u64) {
        let want = usize::try_from(bytes).unwrap_or(usize::MAX).min(self.limit);
        self.mem.reserve_exact(want.saturating_sub(self.mem.len()));
    }

    /// Writes `data` of round `round`.
    fn write(&mut self, round: u32, data: &[u8]) {
        if round == 1 {
            let room = self.limit.saturating_sub(self.mem.len());
            self.mem.extend_from_slice(&data[..data.len().min(room)]);
            return;
        }
        let len = self.mem.len();
        if len == 0 {
            return;
        }
        let mut data = data;
        while !data.is_empty() {
            let at = self.at % len;
            let n = data.len().min(len - at);
            self.mem[at..at + n].copy_from_slice(&data[..n]);
            self.at = at + n;
            data = &data[n..];
        }
    }
}

/// Reads one migration from `stream` (reads time out after `timeout`),
/// adding every byte read to `counter`, the payload written into `image`.
pub fn receive(
    stream: TcpStream,
    counter: &AtomicU64,
    timeout: Duration,
    image: &mut Image,
) -> Received {
    let from = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut r = Received {
        migration_id: 0,
        method: None,
        from,
        rounds: Vec::new(),
        payload_bytes: 0,
        framing_bytes: 0,
        complete: false,
        error: None,
    };
    if let Err(e) = receive_into(stream, counter, timeout, &mut r, image) {
        r.error = Some(e.to_string());
    }
    r
}

fn receive_into(
    mut s: TcpStream,
    counter: &AtomicU64,
    timeout: Duration,
    r: &mut Received,
    image: &mut Image,
) -> Result<(), LinkError> {
    s.set_read_timeout(Some(timeout))
        .and_then(|_| s.set_write_timeout(Some(timeout)))
        .and_then(|_| s.set_nodelay(true))
        .map_err(io_err("socket options"))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut hb = [0u8; HEADER_LEN];
        s.read_exact(&mut hb).map_err(io_err("read a header"))?;
        r.framing_bytes += HEADER_LEN as u64;
        counter.fetch_add(HEADER_LEN as u64, Ordering::Relaxed);
        let h = Header::parse(&hb)?;
        let want_round = r.rounds.len() as u32 + 1;
        if r.method.is_none() {
            r.method = Some(h.method);
            r.migration_id = h.migration_id;
        }
        if Some(h.method) != r.method || h.migration_id != r.migration_id || h.round != want_round {
            return Err(LinkError::Protocol(format!(
                "header {h:?} where round {want_round} of migration {} ({:?}) was due",
                r.migration_id, r.method
            )));
        }
        if h.kind == Kind::End {
            acknowledge(&mut s, &h, r.payload_bytes)?;
            r.complete = true;
            return Ok(());
        }
        let mut left = h.length;
        if h.round == 1 {
            image.reserve(h.length);
        }
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let n = s.read(&mut buf[..want]).map_err(io_err("read payload"))?;
            image.write(h.round, &buf[..n]);
            if n == 0 {
                return Err(LinkError::Protocol(format!(
                    "the sender closed round {} with {left} of {} bytes missing",
                    h.round, h.length
                )));
            }
            left -= n as u64;
            r.payload_bytes += n as u64;
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        r.rounds.push(RoundReceived {
            round: h.round,
            bytes: h.length,
            source_running: h.kind == Kind::Live,
        });
        acknowledge(&mut s, &h, h.length)?;
    }
}

/// Acknowledges the frame `h`, `bytes` counted.
fn acknowledge(s: &mut TcpStream, h: &Header, bytes: u64) -> Result<(), LinkError> {
    let ack = Ack {
        round: h.round,
        migration_id: h.migration_id,
        bytes,
    };
    s.write_all(&ack.emit()).map_err(io_err(format!(
        "write the acknowledgement of round {}",
        h.round
    )))
}
