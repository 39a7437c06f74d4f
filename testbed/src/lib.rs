//! `testbed`: brings the whole MiniEdgeCore 5G user plane up in network
//! namespaces (the topology from `topo`, then `upf`, `smf`, `gnb` and `ue`
//! daemons with configurations derived from it), checks each daemon's health,
//! shows status, and takes everything down again.
//!
//! - [`plan`]: the pure derivation of every daemon's configuration from a topology.
//! - [`bed`]: `up`, `down`, `status`, sessions; the run folder and state file.
//! - [`demo`]: the main job: up, a session per UPF, traffic through each, down.
//! - [`play`]: the snake game through one edge.
//! - [`dataplane`]: `testbed bench dataplane`, the user plane against the kernel's paths.
//! - [`migrate`]: CSM migrations back and forth between two edges, with their figures.
//! - [`probe`]: `testbed probe`, the trust boundaries tried from a UE and a rogue host.
//! - [`host`]: the host's CPUs, kernel preemption and CPU use, which every run report states.
//! - [`experiment`]: the paper's section V as `testbed migrate` runs, with plots and a report.

pub mod bed;
pub mod bench;
pub mod dataplane;
pub mod demo;
pub mod experiment;
pub mod host;
pub mod migrate;
pub mod plan;
pub mod play;
pub mod probe;
mod responder;

pub use bed::{down, status, up, BedError, BedState, Status, UpOpts};
pub use plan::{Plan, PlanError, Role};
