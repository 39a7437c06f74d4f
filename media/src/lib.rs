//! Video for the application under test (issue 6): I420 frames, SSIM,
//! H.264 through openh264, RTP (RFC 3550) with H.264 payloads (RFC 6184)
//! and an SDP file that ffmpeg/ffplay can play.
//!
//! - [`Frame`]: an I420 picture, the unit the renderer writes, the encoder
//!   reads and the decoder returns.
//! - [`ssim()`]: the structural similarity of two frames' luma (Wang et al.
//!   2004), what the tests use to say "the same picture"; [`FastSsim`]:
//!   the CSM stream selector's per-frame-pair measure on downscaled luma.
//! - [`blend()`]: frame sliding's weighted mean of two frames.
//! - [`h264`]: a real-time H.264 encoder and a decoder (openh264), Annex B
//!   access units in and out.
//! - [`rtp`]: the RTP packet view and `Repr`, the RFC 8285 header extension
//!   carrying [`rtp::FrameMeta`], the RFC 6184 packetizer (single NAL unit
//!   and FU-A) and the depacketizer.
//! - [`sdp`]: the session description of such a stream.

mod blend;
mod frame;
pub mod h264;
pub mod rtp;
pub mod sdp;
mod ssim;

pub use blend::{blend, BlendError};
pub use frame::{rgb_to_yuv, Frame};
pub use ssim::{ssim, FastSsim, SsimError};

/// What can go wrong with frames and the codec.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The codec needs even, non-zero dimensions.
    #[error(
        "frame size {width}x{height} is not supported (width and height must be even and non-zero)"
    )]
    FrameSize {
        /// Width asked for.
        width: u16,
        /// Height asked for.
        height: u16,
    },
    /// A frame's planes do not have the lengths its dimensions imply.
    #[error("frame {width}x{height} has planes of {y}/{u}/{v} octets, expected {ey}/{ec}/{ec}")]
    PlaneSize {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
        /// Luma plane length.
        y: usize,
        /// Cb plane length.
        u: usize,
        /// Cr plane length.
        v: usize,
        /// Expected luma length.
        ey: usize,
        /// Expected chroma length.
        ec: usize,
    },
    /// A frame given to an encoder differs in size from its configuration.
    #[error("frame of {got_w}x{got_h} given to an encoder configured for {want_w}x{want_h}")]
    SizeMismatch {
        /// Frame width.
        got_w: u16,
        /// Frame height.
        got_h: u16,
        /// Configured width.
        want_w: u16,
        /// Configured height.
        want_h: u16,
    },
    /// The encoder configuration is out of range.
    #[error("bad encoder configuration: {0}")]
    Config(String),
    /// openh264's encoder failed.
    #[error("H.264 encoder: {0}")]
    Encoder(String),
    /// openh264's decoder failed (corrupt or incomplete bitstream).
    #[error("H.264 decoder: {0}")]
    Decoder(String),
}
