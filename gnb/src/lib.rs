//! gNB shim: UE traffic into GTP-U tunnels on N3 (DESIGN.md sections 3-4).
//!
//! The UE's packets arrive on the radio link; a policy rule
//! (`iif RADIO lookup TABLE`, TABLE: `default dev TUN`) hands them to the
//! TUN, where the [`datapath`] maps each by its source address to its
//! session's tunnel and sends it as a G-PDU (UL PDU Session Container with
//! the QFI) to the UPF. Downlink G-PDUs are matched by the gNB's own TEID and
//! written back to the TUN; a host route per session (`UE_ADDR dev RADIO`)
//! takes them to the UE. The SMF sets tunnels up and tears them down over
//! N2-lite; UEs ask for sessions through the N1 relay ([`api`]).
//!
//! - [`config`]: the TOML configuration;
//! - [`tunnels`]: the lock-free tunnel table (arc-swap snapshots);
//! - [`datapath`]: the uplink and downlink threads and their counters;
//! - [`api`]: N2-lite, `/tunnels`, `/metrics` (cp address); the N1 relay
//!   (radio address), which acts only for the UE a request comes from;
//! - [`radio`]: which UE is which radio peer (address and MAC, or the
//!   point-to-point link), bound at attach;
//! - [`firewall`]: nftables rules in the gNB's namespace: the radio side
//!   reaches only the N1 relay, a UE's uplink enters only its own tunnels;
//! - [`daemon`]: bring-up and tear-down;
//! - [`tun`]: the TUN device.
//!
//! Its rtnetlink helpers are `topo::netcfg`; its HTTP error answers, timing
//! summary, runtime and shutdown signal are `ctlhttp`'s (shared with `ue`).

pub mod api;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod firewall;
pub mod nftset;
pub mod radio;
pub mod tun;
pub mod tunnels;

pub use config::GnbConfig;
pub use daemon::{run, Gnb, GnbError};
