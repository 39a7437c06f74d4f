//! Wire formats shared by the MiniEdgeCore daemons.
//!
//! - [`gtpu`]: GTP-U v1 (3GPP TS 29.281) with the PDU Session Container
//!   extension header (TS 38.415): zero-copy packet views for the data path,
//!   owned `Repr`s for the control messages.
//! - [`pfcp`]: PFCP (3GPP TS 29.244): owned, structured messages and IEs with
//!   parse/emit pairs.
//!
//! Every parser accepts arbitrary bytes: malformed input gives a typed error,
//! never a panic and never a read past the buffer.

pub mod ctl;
pub mod gtpu;
pub mod input;
pub mod pfcp;
