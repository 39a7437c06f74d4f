//! The application under test: cloud logic server, edge renderer/streamer, edge migration agent.
//!
//! Not built yet: this crate is filled by issue 6. Its binary says so and
//! exits with an error rather than pretending to work.

/// The issue that delivers this crate's functionality.
pub const PENDING_ISSUE: u32 = 6;
