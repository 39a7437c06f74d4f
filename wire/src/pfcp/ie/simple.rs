//! Leaf IEs (TS 29.244 §8.2), one module a family, all re-exported here (and
//! from [`crate::pfcp::ie`]). Octet numbers in comments follow the spec:
//! octet 5 is the first octet of the value.
//!
//! Where an older release defines a shorter IE (Apply Action was one octet
//! before Rel-16, Reporting Triggers and Usage Report Trigger two), the
//! shorter form is accepted and the current one emitted. Octets beyond the
//! ones this implementation knows are ignored.

pub use super::detection::*;
pub use super::forwarding::*;
pub use super::node::*;
pub use super::qos::*;
pub use super::usage::*;
