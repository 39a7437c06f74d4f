//! A GTP-U User Plane Function: PFCP (TS 29.244) on N4, GTP-U (TS 29.281)
//! on N3, a TUN device on N6.
//!
//! Layers, from the inside out:
//! - [`sdf`], [`packet`], [`rules`]: the UPF's own rule model (PDR, FAR,
//!   QER, URR) and SDF matching; independent of the wire types.
//! - [`session`]: the I/O-free session table (time passed in, outputs
//!   pulled: usage reports, End Markers, buffer flushes), compiling
//!   [`datapath::Snapshot`]s.
//! - [`datapath`]: per-packet decisions over a snapshot; lock-free
//!   counters, QER token buckets, URR volumes, the BUFF queue.
//! - [`gtp`]: GTP-U encap/decap on caller buffers, over `wire::gtpu`.
//! - [`pfcp_map`]: PFCP IEs (`wire::pfcp`) to and from the rule model,
//!   with the cause and Offending IE of every refusal.
//! - [`protect`]: destinations a UE's packet is never delivered to (the
//!   UPF's own addresses, the core's networks); [`ratelimit`]: per-peer
//!   token buckets (Error Indications).
//! - [`config`], [`tun`], [`daemon`], [`n3`], [`n4`], [`metrics`]: the
//!   daemon.
//!
//! Trust (DESIGN.md section 3): a session's G-PDUs are accepted only from
//! the peer its FARs tunnel to on that side (the gNB for uplink), a UE's
//! uplink never reaches a protected destination, a PFCP peer is its Node
//! ID and address together, and bad input on N3 and N4 is counted, logged
//! a few lines a second per cause, and changes nothing.
//!
//! Run it in-process with [`daemon::Upf::start`] (in the calling thread's
//! network namespace) or as the `upf` binary:
//!
//! ```text
//! upf run --config upf.toml          # until SIGINT/SIGTERM
//! upf stats [--addr 127.0.0.1:9100] [--prometheus]
//! upf check-config upf.toml          # prints the configuration with defaults
//! ```
//!
//! `upf.example.toml` in this crate documents every configuration field.

pub mod config;
pub mod daemon;
pub mod datapath;
pub mod gtp;
pub mod metrics;
pub mod n3;
pub mod n4;
pub mod packet;
pub mod pfcp_map;
pub mod protect;
pub mod ratelimit;
pub mod rules;
pub mod sdf;
pub mod session;
pub mod tun;
