//! GTP-U User Plane Function controlled over PFCP (N4).
//!
//! Not built yet: this crate is filled by issue 4. Its binary says so and
//! exits with an error rather than pretending to work.

/// The issue that delivers this crate's functionality.
pub const PENDING_ISSUE: u32 = 4;
