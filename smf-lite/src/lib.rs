//! Minimal SMF: PDU sessions, address/TEID/SEID allocation, PFCP client, CSM migration manager.
//!
//! Not built yet: this crate is filled by issue 5. Its binary says so and
//! exits with an error rather than pretending to work.

/// The issue that delivers this crate's functionality.
pub const PENDING_ISSUE: u32 = 5;
