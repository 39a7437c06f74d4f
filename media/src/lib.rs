//! Video for the application under test (issue 6): I420 frames, SSIM,
//! H.264 through openh264, RTP (RFC 3550) with H.264 payloads (RFC 6184)
//! and an SDP file that ffmpeg/ffplay can play.
//!
//! Being built (issue 6); the API below is the contract the app crate and
//! the UE streaming client are written against.
