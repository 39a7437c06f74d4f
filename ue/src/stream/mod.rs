//! The UE streaming client (issue 6, item 4; DESIGN.md section 5).
//!
//! - [`buffer`]: the one-frame buffer of a stream: one writer (its
//!   receiving thread), readers that never clear it.
//! - [`client`]: [`StreamClient`], one thread per stream: UDP bound to the
//!   session's address -> RTP/H.264 depacketizer -> decoder -> buffer.
//! - [`display`]: [`DisplaySink`], shows the chief pilot's buffer (a shared
//!   setting, [`Chief`], that the CSM stream selector will change), records
//!   every displayed frame, writes the displayed video as Y4M ([`y4m`]).
//! - [`bot`]: [`InputBot`], plays the game: numbered inputs to the chief
//!   pilot's input address ([`InputTarget`], changeable at run time).
//! - [`selector`]: the CSM stream selector's decisions ([`Selector`]), a
//!   state machine: SSIM threshold, frame sliding, give-up, ablations.
//! - [`pacer`]: when a frame is shown: its render slot plus a playout
//!   delay that covers the stream's jitter ([`pacer::StreamPacer`]).
//! - [`scorer`]: [`scorer::PairScorer`], the selector's pair SSIM in its
//!   own thread.
//! - [`report`]: frames displayed, frame interval, input -> display
//!   latency, bitrate on the wire ([`PlayReport`]).
//! - [`play`]: all of it for a while, the `ue play` command.
//!
//! Times are CLOCK_REALTIME nanoseconds: all namespaces share that clock,
//! so the instance's render time and the UE's display time compare.

pub mod bot;
pub mod buffer;
pub mod client;
pub mod display;
pub mod pacer;
pub mod play;
pub mod report;
pub mod scorer;
pub mod screen;
pub mod selector;
pub mod y4m;

use std::net::SocketAddr;

pub use bot::{BotConfig, BotOutcome, InputBot, InputTarget, Policy, SentInput};
pub use buffer::{
    frame_buffer, one_frame_buffer, BufferMode, BufferReader, BufferWriter, BufferedFrame,
    FrameInfo, Wake,
};
pub use client::{StreamClient, StreamStats};
pub use display::{Chief, DisplayHandle, DisplayOutcome, DisplayRecord, DisplaySink};
pub use play::{PlayConfig, StreamSpec};
pub use report::PlayReport;
pub use selector::{Ablation, Event, FrameRef, Output, Phase, Selector, SelectorConfig};

/// Errors of the streaming client.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Could not bind a socket.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Socket or thread I/O.
    #[error("I/O: {0}")]
    Io(std::io::Error),
    /// Writing or reading the video file.
    #[error("video file: {0}")]
    Video(std::io::Error),
    /// A Y4M stream that cannot be read.
    #[error("Y4M: {0}")]
    Y4m(String),
    /// The H.264 decoder could not be made.
    #[error("H.264 decoder: {0}")]
    Decoder(media::MediaError),
    /// A thread panicked.
    #[error("thread {0} panicked")]
    Panicked(String),
    /// Bad settings.
    #[error("{0}")]
    Config(String),
}

/// Now, CLOCK_REALTIME, ns since the Unix epoch (0 before 1970).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
