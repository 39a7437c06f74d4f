//! Minimal SMF (issue 5): PDU sessions over PFCP (N4) and N2-lite.
//!
//! - [`core`]: the I/O-free state machine ([`core::Smf`]): PFCP associations,
//!   heartbeats, T1/N1 retransmission, UPF restart recovery, the session flow
//!   of DESIGN.md section 4, address pools, SEIDs.
//! - [`daemon`]: the tokio driver (UDP N4 socket, axum HTTP API, N2 calls).
//! - [`config`]: the TOML configuration; [`client`]: HTTP clients (N2-lite,
//!   the SMF API); [`pool`]: UE address pools.

pub mod client;
pub mod config;
pub mod core;
pub mod daemon;
pub mod migration;
pub mod pool;

pub use crate::config::Config;
pub use crate::core::{Action, Smf, SmfError};
