//! The topology model, its TOML file format, validation and a builder.
//!
//! A file is parsed into raw structs that keep the byte span of every value,
//! then validated completely into a [`Topology`]; every error names the
//! file, the line, the field and why. Nothing is created before validation.
//!
//! # File format
//!
//! ```toml
//! name = "paper"          # topology name; state is kept under it
//! prefix = ""             # optional, prepended to every namespace name
//!
//! [[node]]
//! name = "upf1"
//! kind = "host"           # default; or "switch" (a Linux bridge `br0` in its own namespace)
//! sysctl = { "net.ipv4.ip_forward" = "1" }          # net.* only (per namespace)
//! routes = [ { to = "10.45.0.0/16", via = "10.61.0.2" },
//!            { to = "default", via = "10.61.0.2" },  # "default6" for IPv6 without via
//!            { to = "10.9.0.0/24", dev = "n6" } ]    # on-link
//!
//! [[link]]
//! name = "n6a"            # optional; default "<a>-<b>"; used by `topo shape/capture`
//! a = { node = "upf1", ifname = "n6", addrs = ["10.61.0.1/30", "fd00:61::1/64"], mac = "02:00:00:00:00:01" }
//! b = { node = "edge1", ifname = "n6", addrs = ["10.61.0.2/30"] }   # ifname defaults to the peer's node name
//! mtu = 1500              # optional
//! shape = { rate = "1gbit", burst = "auto", delay = "10ms", jitter = "1ms", loss = "0.1%" }  # both directions
//! shape_ab = { rate = "200mbit" }    # overrides for a->b (egress of a); shape_ba for b->a
//! emulate = false         # true: place the delay/loss emulator even without delay/loss, so
//!                         # `topo shape --delay` works at run time on kernels without netem
//! ```
//!
//! Rates as tc: `bit` (or bare), `kbit`, `mbit`, `gbit`, `tbit`, binary `kibit`...,
//! byte rates `bps`, `kbps`, `mbps`, `gbps`; `none` = unlimited. Burst: `auto`
//! (2 ms at the rate, at least two frames) or a size (`64kb`, `250000b`).
//! Times: `s`, `ms`, `us`. Loss: a percentage. A link to a switch is a port on
//! its bridge and carries no address on the switch side.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::names::{self, NameError};
use crate::units::IfAddr;

mod builder;
mod raw;
mod validate;

pub use builder::{end, EndSpec, ShapeSpec, TopologyBuilder};
pub use validate::shape_from_strs;

/// The paper's topology (DESIGN.md section 1), embedded in the binary.
pub const PAPER_TOML: &str = include_str!("../../topologies/paper.toml");
/// A larger example: two gNBs with cell switches and six UEs on the same core.
pub const MULTI_UE_TOML: &str = include_str!("../../topologies/multi-ue.toml");

pub use crate::names::MAX_IFNAME;

/// An error in a topology description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {field}: {reason}")]
pub struct ConfigError {
    /// The file (or `<builder>`/`<embedded>` when there is none).
    pub file: String,
    /// 1-based line (0 when the error has no position, e.g. from the builder).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The field, as a path such as `link[2].a.node`.
    pub field: String,
    /// Why it is wrong.
    pub reason: String,
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A network namespace with interfaces, addresses and routes.
    #[default]
    Host,
    /// A Linux bridge in its own namespace; links to it are bridge ports.
    Switch,
}

/// A route in a node's main table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination; prefix 0 means default.
    pub to: IfAddr,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface (on-link route when `via` is absent).
    pub dev: Option<String>,
}

/// A node: a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node name (the namespace is `prefix + name`).
    pub name: String,
    /// Host or switch.
    pub kind: NodeKind,
    /// `net.*` sysctls written in the namespace, in order.
    pub sysctls: Vec<(String, String)>,
    /// Routes added after all addresses.
    pub routes: Vec<Route>,
}

/// Shaping of one direction of a link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Rate in bit/s (htb); None = unlimited.
    pub rate_bps: Option<u64>,
    /// htb burst in bytes; None = auto (about 2 ms at the rate).
    pub burst_bytes: Option<u64>,
    /// Added one-way delay.
    pub delay_us: u64,
    /// Delay jitter.
    pub jitter_us: u64,
    /// Loss in parts per million.
    pub loss_ppm: u32,
}

impl Shape {
    /// Whether delay, jitter or loss are set (needs netem or the emulator).
    pub fn impaired(&self) -> bool {
        self.delay_us > 0 || self.jitter_us > 0 || self.loss_ppm > 0
    }
    /// The burst used for the rate: explicit, or about 2 ms at the rate (at least 2 full frames).
    pub fn effective_burst(&self) -> Option<u64> {
        let rate = self.rate_bps?;
        Some(self.burst_bytes.unwrap_or_else(|| auto_burst(rate)))
    }
}

/// About 2 ms worth of bytes at `rate_bps`, at least 2 frames of 1514 bytes
/// (DESIGN.md section 7: tc's default burst reaches 63% at 1 Gbit/s).
pub fn auto_burst(rate_bps: u64) -> u64 {
    (rate_bps / 8 / 500).max(2 * 1514)
}

/// One end of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Node name.
    pub node: String,
    /// Interface name in the node's namespace.
    pub ifname: String,
    /// Addresses (none on a switch port).
    pub addrs: Vec<IfAddr>,
    /// Fixed MAC address, if any.
    pub mac: Option<[u8; 6]>,
}

/// A point-to-point link (veth pair), or a switch port when an end is a switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Link name, used by `topo shape` and `topo capture`.
    pub name: String,
    /// End a.
    pub a: Endpoint,
    /// End b.
    pub b: Endpoint,
    /// Shaping of traffic from a to b (egress of a).
    pub shape_ab: Shape,
    /// Shaping of traffic from b to a (egress of b).
    pub shape_ba: Shape,
    /// MTU of both ends, if set.
    pub mtu: Option<u32>,
    /// Put a delay/loss mechanism on the link even when the file sets no
    /// delay or loss, so that `topo shape` can add them at run time.
    #[serde(default)]
    pub emulate: bool,
}

impl Link {
    /// Whether this link needs a delay/loss mechanism.
    pub fn impaired(&self) -> bool {
        self.emulate || self.shape_ab.impaired() || self.shape_ba.impaired()
    }
}

/// A validated topology.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Name; state is kept under it.
    pub name: String,
    /// Prepended to every namespace name.
    pub prefix: String,
    /// Nodes in file order.
    pub nodes: Vec<Node>,
    /// Links in file order.
    pub links: Vec<Link>,
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn from_file(path: &Path) -> Result<Topology, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            field: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `file` is used in error messages.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Topology, ConfigError> {
        validate::parse(text, file)
    }

    /// The embedded paper topology (DESIGN.md section 1).
    pub fn paper_default() -> Topology {
        // The embedded file is checked by a unit test; failing here is a build defect.
        #[allow(clippy::expect_used)]
        Self::from_toml_str(PAPER_TOML, "<embedded paper.toml>")
            .expect("embedded paper.toml is valid")
    }

    /// The embedded multi-UE example.
    pub fn multi_ue() -> Topology {
        #[allow(clippy::expect_used)]
        Self::from_toml_str(MULTI_UE_TOML, "<embedded multi-ue.toml>")
            .expect("embedded multi-ue.toml is valid")
    }

    /// Returns a copy with another namespace prefix (validated).
    pub fn with_prefix(&self, prefix: &str) -> Result<Topology, ConfigError> {
        names::prefix(prefix).map_err(|e| ConfigError {
            file: "<option>".into(),
            line: 0,
            col: 0,
            field: "prefix".into(),
            reason: e.to_string(),
        })?;
        let mut t = self.clone();
        t.prefix = prefix.to_string();
        Ok(t)
    }

    /// Checks every name that becomes a path, a namespace or an interface
    /// (validation does this for files and builders; a `Topology` made or
    /// deserialized otherwise is checked again by `up`).
    pub fn check_names(&self) -> Result<(), NameError> {
        names::topology(&self.name)?;
        names::prefix(&self.prefix)?;
        for n in &self.nodes {
            names::node(&n.name)?;
        }
        for l in &self.links {
            names::link(&l.name)?;
            for e in [&l.a, &l.b] {
                names::node(&e.node)?;
                names::ifname(&e.ifname)?;
            }
        }
        Ok(())
    }

    /// Looks a node up by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Looks a link up by name.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Namespace name of a node.
    pub fn ns_name(&self, node: &str) -> String {
        format!("{}{}", self.prefix, node)
    }

    /// Namespace of the delay/loss emulator of this topology.
    pub fn emu_ns_name(&self) -> String {
        format!("{}{}-emu", self.prefix, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_are_valid() {
        let p = Topology::paper_default();
        assert_eq!(p.nodes.len(), 10);
        assert!(p.link("wan1").is_some());
        let m = Topology::multi_ue();
        assert!(m.nodes.iter().filter(|n| n.name.starts_with("ue")).count() >= 6);
    }
}
