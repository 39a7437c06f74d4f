//! `topo`: network namespace topologies with veth links, Linux bridges and
//! tc shaping — the Mininet replacement of MiniEdgeCore.
//!
//! ```no_run
//! use topo::{Topology, UpOptions};
//! let t = Topology::paper_default().with_prefix("demo-")?;
//! let running = topo::up(&t, &UpOptions::default())?.guard(); // downs on drop
//! let out = running.command("cloud", "ip")?.args(["addr"]).output()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers: [`config`] (model, TOML format, validation, builder), [`netns`]
//! (namespaces like `ip netns`), [`nl`] (batched rtnetlink), [`netcfg`]
//! (async rtnetlink addresses, rules and routes for the daemons), [`tc`] (htb,
//! netem), [`emu`] (userspace delay/loss emulator), [`engine`] (up, down,
//! shape), [`show`] (status), [`capture`] (pcap).

pub mod capture;
pub mod config;
pub mod emu;
pub mod engine;
pub mod names;
pub mod netcfg;
pub mod netns;
pub mod nl;
pub mod show;
pub mod state;
pub mod tc;
pub mod units;

pub use config::{
    end, ConfigError, Endpoint, Link, Node, NodeKind, Shape, ShapeSpec, Topology, TopologyBuilder,
};
pub use engine::{
    down, down_all, list, up, Dir, DownReport, ImpairMech, ImpairMode, RunInfo, Running, TopoError,
    TopoGuard, UpOptions,
};
pub use state::StateDir;
