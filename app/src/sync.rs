//! The state-synchronization protocol between an application instance (edge)
//! and the cloud logic server, and a blocking client for instances.
//!
//! TCP; every message is a frame: a `u32` big-endian length, then that many
//! octets of serde_json. A frame longer than [`MAX_FRAME`] is refused (the
//! peer is broken or hostile; the connection is closed).
//!
//! Client -> server: [`ClientMsg`] (`Login`, `Write`, `Switch`, `Logout`).
//! Server -> client: [`ServerMsg`] (`LoginOk` with the world snapshot, then
//! one `Delta` per tick, `Role` when the session's role changes,
//! `WriteDropped` for a write that was not applied, `Error`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::game::{Delta, Dir, World};
use crate::input::Input;
pub use crate::session::{Role, SessionId};

/// Largest frame body accepted or sent (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Client -> server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Log in a new session of `account`.
    Login {
        /// The account (the player).
        account: String,
        /// Its secret.
        token: String,
        /// Free text naming the instance (for logs and stats).
        instance: String,
    },
    /// A player input, forwarded by the logic server iff this session is
    /// its account's primary.
    Write {
        /// The UE's input sequence number (from 1).
        seq: u64,
        /// New heading.
        dir: Dir,
        /// When the UE sent it (CLOCK_REALTIME ns).
        sent_ns: u64,
    },
    /// The switching signal: make this session primary.
    Switch,
    /// Log this session out (the server then closes the connection).
    Logout,
}

/// The reply to a successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOk {
    /// The session's number.
    pub session: SessionId,
    /// Its role.
    pub role: Role,
    /// The world now; `Delta`s for `snapshot.tick + 1` onwards follow.
    pub snapshot: World,
}

/// Server -> client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Logged in.
    LoginOk(LoginOk),
    /// One tick of the world.
    Delta(Delta),
    /// The session's role changed.
    Role {
        /// The new role.
        role: Role,
    },
    /// A write that was not applied.
    WriteDropped {
        /// Its sequence number.
        seq: u64,
        /// Why (e.g. "secondary").
        reason: String,
    },
    /// A request failed (wrong token, write before login, bad frame...).
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Errors of the protocol and the client.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Socket error.
    #[error("sync connection: {0}")]
    Io(#[from] std::io::Error),
    /// A frame body that is not the expected JSON message.
    #[error("malformed sync message: {0}")]
    Json(#[from] serde_json::Error),
    /// A frame longer than allowed.
    #[error("sync frame of {len} octets exceeds the limit of {max}")]
    TooLong {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer closed the connection.
    #[error("sync connection closed by the peer")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("sync connection closed in the middle of a frame ({0} octets pending)")]
    Truncated(usize),
    /// No message within the read timeout (the stream stays usable).
    #[error("no sync message within the read timeout")]
    Timeout,
    /// The server refused the login or a request.
    #[error("logic server refused: {0}")]
    Refused(String),
    /// A message that makes no sense at this point.
    #[error("unexpected sync message: {0}")]
    Unexpected(String),
    /// The writer's lock was poisoned by a panicking thread.
    #[error("sync writer poisoned")]
    Poisoned,
}

/// One frame: length prefix and JSON body.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, SyncError> {
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, msg)?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(SyncError::TooLong {
            len,
            max: MAX_FRAME,
        });
    }
    // Cannot truncate: len <= MAX_FRAME < u32::MAX.
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// I/O-free frame decoder: push the octets read, pull messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder with the [`MAX_FRAME`] limit.
    pub fn new() -> FrameDecoder {
        FrameDecoder::with_limit(MAX_FRAME)
    }

    /// A decoder refusing frames longer than `max`.
    pub fn with_limit(max: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max,
        }
    }

    /// Appends octets read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Octets held that do not make a complete frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame's body, if any. A frame longer than the
    /// limit is an error (and stays one: the stream cannot be resynced).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, SyncError> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > self.max {
            return Err(SyncError::TooLong { len, max: self.max });
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let body = self.start + 4..self.start + 4 + len;
        self.start += 4 + len;
        Ok(Some(&self.buf[body]))
    }

    /// The next complete message, if any. A malformed body is consumed and
    /// reported as [`SyncError::Json`].
    pub fn next_msg<T: DeserializeOwned>(&mut self) -> Result<Option<T>, SyncError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(body) => Ok(Some(serde_json::from_slice(body)?)),
        }
    }
}

/// Writes one message (blocking).
pub fn write_msg<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), SyncError> {
    let frame = encode(msg)?;
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// The sending half of a [`SyncClient`]: cheap to clone, usable from any
/// thread (e.g. the instance's input thread).
#[derive(Debug, Clone)]
pub struct SyncWriter {
    stream: Arc<Mutex<TcpStream>>,
}

impl SyncWriter {
    fn send(&self, msg: &ClientMsg) -> Result<(), SyncError> {
        let frame = encode(msg)?;
        let mut s = self.stream.lock().map_err(|_| SyncError::Poisoned)?;
        s.write_all(&frame)?;
        Ok(())
    }

    /// Sends an input as a write.
    pub fn write(&self, input: &Input) -> Result<(), SyncError> {
        self.send(&ClientMsg::Write {
            seq: input.seq,
            dir: input.dir,
            sent_ns: input.sent_ns,
        })
    }

    /// Sends the switching signal (this session becomes primary; the
    /// server confirms with `ServerMsg::Role`).
    pub fn switch(&self) -> Result<(), SyncError> {
        self.send(&ClientMsg::Switch)
    }

    /// Logs the session out; the server closes the connection, after which
    /// [`SyncClient::recv`] returns [`SyncError::Closed`].
    pub fn logout(&self) -> Result<(), SyncError> {
        self.send(&ClientMsg::Logout)
    }

    /// Sends any client message (tests, tools).
    pub fn send_raw(&self, msg: &ClientMsg) -> Result<(), SyncError> {
        self.send(msg)
    }
}

/// A blocking client of the logic server: one logged-in session.
#[derive(Debug)]
pub struct SyncClient {
    stream: TcpStream,
    writer: SyncWriter,
    dec: FrameDecoder,
    buf: Vec<u8>,
}

impl SyncClient {
    /// Connects and logs in; returns the client and the login reply (with
    /// the world snapshot). A refused login is [`SyncError::Refused`] with
    /// the server's message.
    pub fn connect<A: ToSocketAddrs>(
        addr: A,
        account: &str,
        token: &str,
        instance: &str,
    ) -> Result<(SyncClient, LoginOk), SyncError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut c = SyncClient {
            writer: SyncWriter {
                stream: Arc::new(Mutex::new(stream.try_clone()?)),
            },
            stream,
            dec: FrameDecoder::new(),
            buf: vec![0u8; 64 * 1024],
        };
        c.writer.send(&ClientMsg::Login {
            account: account.to_string(),
            token: token.to_string(),
            instance: instance.to_string(),
        })?;
        match c.recv()? {
            ServerMsg::LoginOk(ok) => Ok((c, ok)),
            ServerMsg::Error { message } => Err(SyncError::Refused(message)),
            other => Err(SyncError::Unexpected(format!(
                "{other:?} instead of a login reply"
            ))),
        }
    }

    /// The next message from the server (blocking, or until the read
    /// timeout: [`SyncError::Timeout`], after which the client is still
    /// usable).
    pub fn recv(&mut self) -> Result<ServerMsg, SyncError> {
        loop {
            if let Some(m) = self.dec.next_msg()? {
                return Ok(m);
            }
            let n = match self.stream.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(SyncError::Timeout);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return match self.dec.pending() {
                    0 => Err(SyncError::Closed),
                    p => Err(SyncError::Truncated(p)),
                };
            }
            self.dec.push(&self.buf[..n]);
        }
    }

    /// Sets the read timeout of [`SyncClient::recv`] (`None`: block).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> Result<(), SyncError> {
        self.stream.set_read_timeout(t)?;
        Ok(())
    }

    /// A sending half.
    pub fn writer(&self) -> SyncWriter {
        self.writer.clone()
    }

    /// Closes the connection without logging out (the server treats it as
    /// a logout of this session).
    pub fn close(&self) {
        // Best effort: the socket may already be gone.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip() {
        let msgs = vec![
            ClientMsg::Login {
                account: "alice".into(),
                token: "t".into(),
                instance: "edge1".into(),
            },
            ClientMsg::Write {
                seq: 9,
                dir: Dir::Left,
                sent_ns: 5,
            },
            ClientMsg::Switch,
            ClientMsg::Logout,
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend(encode(m).expect("small"));
        }
        // Length prefix is big-endian over the JSON body.
        let first = encode(&ClientMsg::Switch).expect("small");
        assert_eq!(&first[..4], &(first.len() as u32 - 4).to_be_bytes());
        assert_eq!(&first[4..], b"\"Switch\"");
        // Fed one octet at a time.
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            while let Some(m) = d.next_msg::<ClientMsg>().expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(got, msgs);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn server_messages_round_trip() {
        let msgs = vec![
            ServerMsg::LoginOk(LoginOk {
                session: 3,
                role: Role::Secondary,
                snapshot: World::new(64, 36, 1),
            }),
            ServerMsg::Delta(Delta {
                tick: 1,
                events: vec![crate::game::Event::Join { player: "a".into() }],
            }),
            ServerMsg::Role {
                role: Role::Primary,
            },
            ServerMsg::WriteDropped {
                seq: 4,
                reason: "secondary".into(),
            },
            ServerMsg::Error {
                message: "x".into(),
            },
        ];
        let mut d = FrameDecoder::new();
        for m in &msgs {
            d.push(&encode(m).expect("small"));
        }
        for m in &msgs {
            assert_eq!(d.next_msg::<ServerMsg>().expect("valid").as_ref(), Some(m));
        }
    }

    #[test]
    fn oversized_and_malformed() {
        let mut d = FrameDecoder::new();
        d.push(&((MAX_FRAME as u32) + 1).to_be_bytes());
        match d.next_msg::<ClientMsg>() {
            Err(SyncError::TooLong { len, max }) => {
                assert_eq!((len, max), (MAX_FRAME + 1, MAX_FRAME));
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        let mut d = FrameDecoder::new();
        d.push(&[0, 0, 0, 3, b'{', b'x', b'}']);
        d.push(&encode(&ClientMsg::Switch).expect("small"));
        assert!(matches!(d.next_msg::<ClientMsg>(), Err(SyncError::Json(_))));
        // The malformed frame was consumed; the next one decodes.
        assert_eq!(
            d.next_msg::<ClientMsg>().expect("valid"),
            Some(ClientMsg::Switch)
        );
        let big = "x".repeat(MAX_FRAME);
        assert!(matches!(
            encode(&ClientMsg::Login {
                account: big,
                token: String::new(),
                instance: String::new()
            }),
            Err(SyncError::TooLong { .. })
        ));
    }

    proptest! {
        /// The decoder survives arbitrary octets in arbitrary chunks: no
        /// panic, and it never claims more than it holds.
        #[test]
        fn decoder_survives_garbage(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = FrameDecoder::with_limit(256);
            for c in &chunks {
                d.push(c);
                for _ in 0..8 {
                    match d.next_msg::<ServerMsg>() {
                        Ok(Some(_)) | Err(SyncError::Json(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                prop_assert!(d.pending() <= chunks.iter().map(Vec::len).sum::<usize>());
            }
        }

        /// Valid frames split at arbitrary points decode to the same messages.
        #[test]
        fn arbitrary_splits(seqs in prop::collection::vec(1u64..u64::MAX, 1..20), cut in prop::collection::vec(1usize..40, 1..50)) {
            let msgs: Vec<ClientMsg> = seqs.iter().map(|&seq| ClientMsg::Write { seq, dir: Dir::Up, sent_ns: seq }).collect();
            let wire: Vec<u8> = msgs.iter().flat_map(|m| encode(m).expect("small")).collect();
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < wire.len() {
                let n = cut[i % cut.len()].min(wire.len() - at);
                d.push(&wire[at..at + n]);
                at += n;
                i += 1;
                while let Some(m) = d.next_msg::<ClientMsg>().expect("valid") {
                    got.push(m);
                }
            }
            prop_assert_eq!(got, msgs);
        }
    }
}
