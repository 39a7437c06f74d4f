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

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::names::{self, NameError};
use crate::units::{self, IfAddr};

/// The paper's topology (DESIGN.md section 1), embedded in the binary.
pub const PAPER_TOML: &str = include_str!("../topologies/paper.toml");
/// A larger example: two gNBs with cell switches and six UEs on the same core.
pub const MULTI_UE_TOML: &str = include_str!("../topologies/multi-ue.toml");

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
        let raw: RawTopology = toml::from_str(text).map_err(|e| {
            let (line, col, field) = match e.span() {
                Some(sp) => {
                    let (l, c) = line_col(text, sp.start);
                    let snippet = text.get(sp.clone()).unwrap_or("").trim();
                    let field = if !snippet.is_empty()
                        && snippet.len() < 40
                        && snippet
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        snippet.to_string()
                    } else {
                        "(syntax)".to_string()
                    };
                    (l, c, field)
                }
                None => (0, 0, "(syntax)".to_string()),
            };
            ConfigError {
                file: file.into(),
                line,
                col,
                field,
                reason: e.message().trim().to_string(),
            }
        })?;
        Validator { file, text }.validate(raw)
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

    /// Starts a programmatic topology.
    pub fn builder(name: &str) -> TopologyBuilder {
        TopologyBuilder {
            raw: RawTopology {
                name: sp(name.to_string()),
                prefix: None,
                nodes: Vec::new(),
                links: Vec::new(),
            },
        }
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

fn line_col(text: &str, off: usize) -> (usize, usize) {
    let off = off.min(text.len());
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

// ---- raw file format -------------------------------------------------------

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    name: Spanned<String>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    #[serde(default, rename = "node")]
    nodes: Vec<RawNode>,
    #[serde(default, rename = "link")]
    links: Vec<RawLink>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    sysctl: Option<Spanned<toml::Table>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    to: Spanned<String>,
    #[serde(default)]
    via: Option<Spanned<String>>,
    #[serde(default)]
    dev: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawLink {
    #[serde(default)]
    name: Option<Spanned<String>>,
    a: Spanned<RawEnd>,
    b: Spanned<RawEnd>,
    #[serde(default)]
    shape: Option<Spanned<RawShape>>,
    #[serde(default)]
    shape_ab: Option<Spanned<RawShape>>,
    #[serde(default)]
    shape_ba: Option<Spanned<RawShape>>,
    #[serde(default)]
    mtu: Option<Spanned<u32>>,
    #[serde(default)]
    emulate: Option<bool>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawEnd {
    node: Spanned<String>,
    #[serde(default)]
    ifname: Option<Spanned<String>>,
    #[serde(default)]
    addrs: Vec<Spanned<String>>,
    #[serde(default)]
    mac: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RawShape {
    #[serde(default)]
    rate: Option<Spanned<String>>,
    #[serde(default)]
    burst: Option<Spanned<String>>,
    #[serde(default)]
    delay: Option<Spanned<String>>,
    #[serde(default)]
    jitter: Option<Spanned<String>>,
    #[serde(default)]
    loss: Option<Spanned<String>>,
}

// ---- validation ------------------------------------------------------------

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Validator<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<T, ConfigError> {
        let (line, col) = if span == (0..0) && self.text.is_empty() {
            (0, 0)
        } else {
            line_col(self.text, span.start)
        };
        Err(ConfigError {
            file: self.file.into(),
            line,
            col,
            field: field.into(),
            reason: reason.into(),
        })
    }

    /// An error from a name check, at `span`.
    fn name<T>(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        check: Result<(), NameError>,
        ok: T,
    ) -> Result<T, ConfigError> {
        match check {
            Ok(()) => Ok(ok),
            Err(e) => self.err(span, field, e.to_string()),
        }
    }

    fn validate(&self, raw: RawTopology) -> Result<Topology, ConfigError> {
        let name = raw.name.get_ref().clone();
        self.name(raw.name.span(), "name", names::topology(&name), ())?;
        let prefix = match &raw.prefix {
            Some(p) => self.name(
                p.span(),
                "prefix",
                names::prefix(p.get_ref()),
                p.get_ref().clone(),
            )?,
            None => String::new(),
        };
        if raw.nodes.is_empty() {
            return self.err(raw.name.span(), "node", "the topology has no [[node]]");
        }
        let mut nodes = Vec::new();
        let mut kinds: HashMap<String, NodeKind> = HashMap::new();
        for (i, rn) in raw.nodes.iter().enumerate() {
            let f = |s: &str| format!("node[{i}].{s}");
            let n = rn.name.get_ref();
            self.name(rn.name.span(), f("name"), names::node(n), ())?;
            let kind = match rn.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
                None | Some(("host", _)) => NodeKind::Host,
                Some(("switch", _)) => NodeKind::Switch,
                Some((k, span)) => {
                    return self.err(
                        span,
                        f("kind"),
                        format!("unknown kind `{k}` (use \"host\" or \"switch\")"),
                    )
                }
            };
            if kinds.insert(n.clone(), kind).is_some() {
                return self.err(
                    rn.name.span(),
                    f("name"),
                    format!("duplicate node name `{n}`"),
                );
            }
            let mut sysctls = Vec::new();
            if let Some(t) = &rn.sysctl {
                for (k, v) in t.get_ref() {
                    let val = match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Boolean(b) => (*b as u8).to_string(),
                        _ => {
                            return self.err(
                                t.span(),
                                f(&format!("sysctl.\"{k}\"")),
                                "value must be a string or an integer",
                            )
                        }
                    };
                    if !k.starts_with("net.")
                        || k.contains("..")
                        || !k.chars().all(|c| {
                            c.is_ascii_alphanumeric()
                                || c == '.'
                                || c == '_'
                                || c == '-'
                                || c == '/'
                        })
                    {
                        return self.err(
                            t.span(),
                            f(&format!("sysctl.\"{k}\"")),
                            "only per-namespace `net.*` sysctls may be set (others would change the host)",
                        );
                    }
                    if kind == NodeKind::Switch && k.starts_with("net.ipv4.conf.") {
                        // allowed, harmless
                    }
                    sysctls.push((k.clone(), val));
                }
            }
            nodes.push(Node {
                name: n.clone(),
                kind,
                sysctls,
                routes: Vec::new(),
            });
        }

        // Links.
        let mut links: Vec<Link> = Vec::new();
        let mut ifnames: HashSet<(String, String)> = HashSet::new();
        let mut addrs_seen: HashMap<IpAddr, String> = HashMap::new();
        let mut link_names: HashSet<String> = HashSet::new();
        for (i, rl) in raw.links.iter().enumerate() {
            let mut ends = Vec::new();
            for (side, re) in [("a", &rl.a), ("b", &rl.b)] {
                let f = |s: &str| format!("link[{i}].{side}.{s}");
                let node = re.get_ref().node.get_ref();
                let Some(kind) = kinds.get(node) else {
                    return self.err(
                        re.get_ref().node.span(),
                        f("node"),
                        format!("unknown node `{node}` (not declared as a [[node]])"),
                    );
                };
                if *kind == NodeKind::Switch && !re.get_ref().addrs.is_empty() {
                    return self.err(
                        re.get_ref().addrs[0].span(),
                        f("addrs"),
                        format!("`{node}` is a switch: its ports carry no addresses"),
                    );
                }
                ends.push((side, re, *kind));
            }
            let (a_node, b_node) = (
                ends[0].1.get_ref().node.get_ref().clone(),
                ends[1].1.get_ref().node.get_ref().clone(),
            );
            if a_node == b_node {
                return self.err(
                    rl.b.get_ref().node.span(),
                    format!("link[{i}].b.node"),
                    "a link needs two different nodes",
                );
            }
            let mut eps = Vec::new();
            for (idx, (side, re, _kind)) in ends.iter().enumerate() {
                let f = |s: &str| format!("link[{i}].{side}.{s}");
                let r = re.get_ref();
                let peer = if idx == 0 { &b_node } else { &a_node };
                let (ifname, ifspan) = match &r.ifname {
                    Some(s) => (s.get_ref().clone(), s.span()),
                    None => (peer.chars().take(MAX_IFNAME).collect::<String>(), re.span()),
                };
                self.name(ifspan.clone(), f("ifname"), names::ifname(&ifname), ())?;
                if _kind == &NodeKind::Switch && ifname == "br0" {
                    return self.err(
                        ifspan,
                        f("ifname"),
                        "`br0` is the bridge of a switch; pick another port name",
                    );
                }
                if !ifnames.insert((r.node.get_ref().clone(), ifname.clone())) {
                    return self.err(
                        ifspan,
                        f("ifname"),
                        format!(
                            "duplicate interface `{ifname}` on node `{}`{}",
                            r.node.get_ref(),
                            if r.ifname.is_none() {
                                " (derived from the peer's name; set `ifname`)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
                let mut addrs = Vec::new();
                for (j, a) in r.addrs.iter().enumerate() {
                    let ia = match IfAddr::parse(a.get_ref()) {
                        Ok(x) => x,
                        Err(e) => return self.err(a.span(), f(&format!("addrs[{j}]")), e),
                    };
                    if let Some(prev) = addrs_seen.insert(ia.addr, format!("link[{i}].{side}")) {
                        return self.err(
                            a.span(),
                            f(&format!("addrs[{j}]")),
                            format!("duplicate address {} (already on {prev})", ia.addr),
                        );
                    }
                    addrs.push(ia);
                }
                let mac = match &r.mac {
                    Some(m) => match parse_mac(m.get_ref()) {
                        Some(x) => Some(x),
                        None => {
                            return self.err(
                                m.span(),
                                f("mac"),
                                format!(
                                    "`{}` is not a unicast MAC like \"02:00:00:00:00:01\"",
                                    m.get_ref()
                                ),
                            )
                        }
                    },
                    None => None,
                };
                eps.push(Endpoint {
                    node: r.node.get_ref().clone(),
                    ifname,
                    addrs,
                    mac,
                });
            }
            let b = eps.pop().unwrap_or_else(|| unreachable!("two ends pushed"));
            let a = eps.pop().unwrap_or_else(|| unreachable!("two ends pushed"));
            let (name, nspan) = match &rl.name {
                Some(n) => (n.get_ref().clone(), n.span()),
                None => (format!("{}-{}", a.node, b.node), rl.a.span()),
            };
            self.name(
                nspan.clone(),
                format!("link[{i}].name"),
                names::link(&name),
                (),
            )?;
            if !link_names.insert(name.clone()) {
                return self.err(
                    nspan,
                    format!("link[{i}].name"),
                    format!(
                        "duplicate link name `{name}`{}",
                        if rl.name.is_none() {
                            " (derived from the node names; set `name`)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            let base = match &rl.shape {
                Some(s) => {
                    self.shape(s.get_ref(), &format!("link[{i}].shape"), &Shape::default())?
                }
                None => Shape::default(),
            };
            let shape_ab = match &rl.shape_ab {
                Some(s) => self.shape(s.get_ref(), &format!("link[{i}].shape_ab"), &base)?,
                None => base.clone(),
            };
            let shape_ba = match &rl.shape_ba {
                Some(s) => self.shape(s.get_ref(), &format!("link[{i}].shape_ba"), &base)?,
                None => base.clone(),
            };
            let mtu = match &rl.mtu {
                Some(m) if !(68..=65535).contains(m.get_ref()) => {
                    return self.err(
                        m.span(),
                        format!("link[{i}].mtu"),
                        "mtu must be 68 to 65535",
                    )
                }
                Some(m) => Some(*m.get_ref()),
                None => None,
            };
            links.push(Link {
                name,
                a,
                b,
                shape_ab,
                shape_ba,
                mtu,
                emulate: rl.emulate.unwrap_or(false),
            });
        }

        // Routes (after links so `dev` and gateways can be checked).
        for (i, rn) in raw.nodes.iter().enumerate() {
            let node_name = rn.name.get_ref();
            let kind = kinds[node_name];
            let my_addrs: Vec<(&str, IfAddr)> = links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|e| &e.node == node_name)
                .flat_map(|e| e.addrs.iter().map(move |a| (e.ifname.as_str(), *a)))
                .collect();
            let my_ifs: HashSet<&str> = links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|e| &e.node == node_name)
                .map(|e| e.ifname.as_str())
                .collect();
            for (j, rr) in rn.routes.iter().enumerate() {
                let f = |s: &str| format!("node[{i}].routes[{j}].{s}");
                if kind == NodeKind::Switch {
                    return self.err(
                        rr.span(),
                        format!("node[{i}].routes"),
                        "a switch has no routes",
                    );
                }
                let r = rr.get_ref();
                let via = match &r.via {
                    Some(v) => match v.get_ref().parse::<IpAddr>() {
                        Ok(ip) => Some((ip, v.span())),
                        Err(_) => {
                            return self.err(
                                v.span(),
                                f("via"),
                                format!("`{}` is not an IP address", v.get_ref()),
                            )
                        }
                    },
                    None => None,
                };
                let to_s = r.to.get_ref().trim();
                let to = if to_s == "default" || to_s == "default6" {
                    let v6 = to_s == "default6"
                        || via.as_ref().map(|(ip, _)| ip.is_ipv6()).unwrap_or(false);
                    IfAddr {
                        addr: if v6 {
                            IpAddr::V6(0u128.into())
                        } else {
                            IpAddr::V4(0u32.into())
                        },
                        prefix: 0,
                    }
                } else {
                    let ia = match IfAddr::parse(to_s) {
                        Ok(x) => x,
                        Err(e) => return self.err(r.to.span(), f("to"), e),
                    };
                    if ia.network() != ia.addr {
                        return self.err(
                            r.to.span(),
                            f("to"),
                            format!(
                                "`{to_s}` has host bits set (did you mean {}/{}?)",
                                ia.network(),
                                ia.prefix
                            ),
                        );
                    }
                    ia
                };
                if let Some((ip, span)) = via.clone() {
                    if ip.is_ipv4() != to.addr.is_ipv4() {
                        return self.err(
                            span,
                            f("via"),
                            "gateway and destination are of different IP versions",
                        );
                    }
                    if r.dev.is_none() && !my_addrs.iter().any(|(_, a)| a.contains(ip)) {
                        return self.err(
                            span,
                            f("via"),
                            format!("gateway {ip} is on none of `{node_name}`'s subnets"),
                        );
                    }
                }
                let dev = match &r.dev {
                    Some(d) => {
                        if !my_ifs.contains(d.get_ref().as_str()) {
                            return self.err(
                                d.span(),
                                f("dev"),
                                format!("`{node_name}` has no interface `{}`", d.get_ref()),
                            );
                        }
                        Some(d.get_ref().clone())
                    }
                    None => None,
                };
                if via.is_none() && dev.is_none() {
                    return self.err(
                        rr.span(),
                        f("via"),
                        "a route needs `via` (gateway) or `dev`",
                    );
                }
                nodes[i].routes.push(Route {
                    to,
                    via: via.map(|v| v.0),
                    dev,
                });
            }
        }
        Ok(Topology {
            name,
            prefix,
            nodes,
            links,
        })
    }

    fn shape(&self, s: &RawShape, f: &str, base: &Shape) -> Result<Shape, ConfigError> {
        let mut out = base.clone();
        if let Some(r) = &s.rate {
            out.rate_bps = if r.get_ref() == "none" {
                None
            } else {
                Some(
                    units::parse_rate(r.get_ref())
                        .or_else(|e| self.err(r.span(), format!("{f}.rate"), e))?,
                )
            };
        }
        if let Some(b) = &s.burst {
            out.burst_bytes = if b.get_ref() == "auto" {
                None
            } else {
                Some(
                    units::parse_size(b.get_ref())
                        .or_else(|e| self.err(b.span(), format!("{f}.burst"), e))?,
                )
            };
        }
        if let Some(d) = &s.delay {
            out.delay_us = units::parse_time_us(d.get_ref())
                .or_else(|e| self.err(d.span(), format!("{f}.delay"), e))?;
        }
        if let Some(d) = &s.jitter {
            out.jitter_us = units::parse_time_us(d.get_ref())
                .or_else(|e| self.err(d.span(), format!("{f}.jitter"), e))?;
        }
        if let Some(d) = &s.loss {
            out.loss_ppm = units::parse_percent_ppm(d.get_ref())
                .or_else(|e| self.err(d.span(), format!("{f}.loss"), e))?;
        }
        if out.jitter_us > 0 && out.delay_us == 0 {
            let span = s.jitter.as_ref().map(|j| j.span()).unwrap_or(0..0);
            return self.err(span, format!("{f}.jitter"), "jitter needs a delay");
        }
        if out.jitter_us > out.delay_us {
            let span = s.jitter.as_ref().map(|j| j.span()).unwrap_or(0..0);
            return self.err(
                span,
                format!("{f}.jitter"),
                "jitter larger than the delay would reorder below zero delay",
            );
        }
        Ok(out)
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    (m[0] & 1 == 0).then_some(m)
}

/// Parses a shape from the same strings a file uses (for the CLI and API).
pub fn shape_from_strs(
    rate: Option<&str>,
    burst: Option<&str>,
    delay: Option<&str>,
    jitter: Option<&str>,
    loss: Option<&str>,
    base: &Shape,
) -> Result<Shape, ConfigError> {
    let s = RawShape {
        rate: rate.map(|x| sp(x.to_string())),
        burst: burst.map(|x| sp(x.to_string())),
        delay: delay.map(|x| sp(x.to_string())),
        jitter: jitter.map(|x| sp(x.to_string())),
        loss: loss.map(|x| sp(x.to_string())),
    };
    Validator {
        file: "<command line>",
        text: "",
    }
    .shape(&s, "shape", base)
}

// ---- builder ---------------------------------------------------------------

/// Builds a [`Topology`] in code; `build()` runs the same validation as files.
#[derive(Clone, Debug)]
pub struct TopologyBuilder {
    raw: RawTopology,
}

/// One end for [`TopologyBuilder::link`]: `end("h1").ifname("eth0").addr("10.0.0.1/24")`.
#[derive(Clone, Debug)]
pub struct EndSpec(RawEnd);

/// Starts an end on `node`.
pub fn end(node: &str) -> EndSpec {
    EndSpec(RawEnd {
        node: sp(node.into()),
        ifname: None,
        addrs: Vec::new(),
        mac: None,
    })
}

impl EndSpec {
    /// Interface name.
    pub fn ifname(mut self, n: &str) -> Self {
        self.0.ifname = Some(sp(n.into()));
        self
    }
    /// Adds an address `ADDR/LEN`.
    pub fn addr(mut self, a: &str) -> Self {
        self.0.addrs.push(sp(a.into()));
        self
    }
}

/// Shaping given as strings, for the builder: `ShapeSpec::rate("200mbit")`.
#[derive(Clone, Debug, Default)]
pub struct ShapeSpec(RawShape);

impl ShapeSpec {
    /// A rate limit.
    pub fn rate(r: &str) -> Self {
        ShapeSpec(RawShape {
            rate: Some(sp(r.into())),
            ..Default::default()
        })
    }
    /// Sets the burst.
    pub fn burst(mut self, b: &str) -> Self {
        self.0.burst = Some(sp(b.into()));
        self
    }
    /// Sets a delay.
    pub fn delay(mut self, d: &str) -> Self {
        self.0.delay = Some(sp(d.into()));
        self
    }
    /// Sets jitter.
    pub fn jitter(mut self, d: &str) -> Self {
        self.0.jitter = Some(sp(d.into()));
        self
    }
    /// Sets loss (`"0.1%"`).
    pub fn loss(mut self, l: &str) -> Self {
        self.0.loss = Some(sp(l.into()));
        self
    }
}

impl TopologyBuilder {
    /// Namespace prefix.
    pub fn prefix(mut self, p: &str) -> Self {
        self.raw.prefix = Some(sp(p.into()));
        self
    }
    fn node(mut self, name: &str, kind: &str) -> Self {
        self.raw.nodes.push(RawNode {
            name: sp(name.into()),
            kind: Some(sp(kind.into())),
            sysctl: None,
            routes: Vec::new(),
        });
        self
    }
    /// Adds a host.
    pub fn host(self, name: &str) -> Self {
        self.node(name, "host")
    }
    /// Adds a switch.
    pub fn switch(self, name: &str) -> Self {
        self.node(name, "switch")
    }
    /// Sets a sysctl on the last node added with that name.
    pub fn sysctl(mut self, node: &str, key: &str, value: &str) -> Self {
        if let Some(n) = self
            .raw
            .nodes
            .iter_mut()
            .rev()
            .find(|n| n.name.get_ref() == node)
        {
            let t = n.sysctl.get_or_insert_with(|| sp(toml::Table::new()));
            t.get_mut()
                .insert(key.into(), toml::Value::String(value.into()));
        }
        self
    }
    /// Adds a route on `node` (`to` is a prefix or "default").
    pub fn route(mut self, node: &str, to: &str, via: &str) -> Self {
        if let Some(n) = self
            .raw
            .nodes
            .iter_mut()
            .rev()
            .find(|n| n.name.get_ref() == node)
        {
            n.routes.push(sp(RawRoute {
                to: sp(to.into()),
                via: Some(sp(via.into())),
                dev: None,
            }));
        }
        self
    }
    /// Adds an unshaped link.
    pub fn link(mut self, name: &str, a: EndSpec, b: EndSpec) -> Self {
        self.raw.links.push(RawLink {
            name: Some(sp(name.into())),
            a: sp(a.0),
            b: sp(b.0),
            shape: None,
            shape_ab: None,
            shape_ba: None,
            mtu: None,
            emulate: None,
        });
        self
    }
    /// Adds a link shaped the same in both directions.
    pub fn shaped_link(mut self, name: &str, a: EndSpec, b: EndSpec, shape: ShapeSpec) -> Self {
        self.raw.links.push(RawLink {
            name: Some(sp(name.into())),
            a: sp(a.0),
            b: sp(b.0),
            shape: Some(sp(shape.0)),
            shape_ab: None,
            shape_ba: None,
            mtu: None,
            emulate: None,
        });
        self
    }
    /// Validates and returns the topology.
    pub fn build(self) -> Result<Topology, ConfigError> {
        Validator {
            file: "<builder>",
            text: "",
        }
        .validate(self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        match Topology::from_toml_str(text, "t.toml") {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    }

    const BASE: &str = "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"s\"\nkind = \"switch\"\n";

    #[test]
    fn embedded_files_are_valid() {
        let p = Topology::paper_default();
        assert_eq!(p.nodes.len(), 10);
        assert!(p.link("wan1").is_some());
        let m = Topology::multi_ue();
        assert!(m.nodes.iter().filter(|n| n.name.starts_with("ue")).count() >= 6);
    }

    #[test]
    fn good_file() {
        let t = Topology::from_toml_str(
            &format!("{BASE}[[link]]\nname = \"l\"\na = {{ node = \"a\", ifname = \"eth0\", addrs = [\"10.0.0.1/24\", \"fd00::1/64\"] }}\nb = {{ node = \"b\", addrs = [\"10.0.0.2/24\"] }}\nshape = {{ rate = \"10gbit\", delay = \"10ms\" }}\nshape_ba = {{ rate = \"100mbit\", burst = \"64kb\" }}\n"),
            "t.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let l = &t.links[0];
        assert_eq!(l.b.ifname, "a");
        assert_eq!(l.shape_ab.rate_bps, Some(10_000_000_000));
        assert_eq!(l.shape_ab.delay_us, 10_000);
        assert_eq!(l.shape_ba.rate_bps, Some(100_000_000));
        assert_eq!(l.shape_ba.burst_bytes, Some(65536));
        assert_eq!(l.shape_ba.delay_us, 10_000);
        assert_eq!(l.shape_ab.effective_burst(), Some(2_500_000));
    }

    fn check(e: &ConfigError, line: usize, field: &str, why: &str) {
        assert_eq!(e.file, "t.toml", "{e}");
        assert_eq!(e.line, line, "{e}");
        assert_eq!(e.field, field, "{e}");
        assert!(
            e.reason.contains(why),
            "reason `{}` lacks `{why}`",
            e.reason
        );
        let s = e.to_string();
        assert!(s.starts_with(&format!("t.toml:{line}:")), "{s}");
    }

    #[test]
    fn unknown_node_in_link() {
        let e = err(&format!(
            "{BASE}[[link]]\na = {{ node = \"a\" }}\nb = {{ node = \"zz\" }}\n"
        ));
        check(&e, 11, "link[0].b.node", "unknown node `zz`");
    }

    #[test]
    fn duplicate_node() {
        let e = err(&format!("{BASE}[[node]]\nname = \"a\"\n"));
        check(&e, 10, "node[3].name", "duplicate node name `a`");
    }

    #[test]
    fn duplicate_address() {
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\", addrs = [\"10.0.0.1/24\"] }}\nb = {{ node = \"b\", addrs = [\"10.0.0.1/24\"] }}\n"));
        check(&e, 11, "link[0].b.addrs[0]", "duplicate address 10.0.0.1");
    }

    #[test]
    fn bad_prefix_len() {
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\", addrs = [\"10.0.0.1/40\"] }}\nb = {{ node = \"b\" }}\n"));
        check(&e, 10, "link[0].a.addrs[0]", "longer than /32");
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\", addrs = [\"10.0.0.1\"] }}\nb = {{ node = \"b\" }}\n"));
        check(&e, 10, "link[0].a.addrs[0]", "prefix length");
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\", addrs = [\"10.0.0.999/24\"] }}\nb = {{ node = \"b\" }}\n"));
        check(&e, 10, "link[0].a.addrs[0]", "not an IPv4 or IPv6");
    }

    #[test]
    fn bad_rate_delay_loss_burst() {
        let mk = |s: &str| {
            format!("{BASE}[[link]]\na = {{ node = \"a\" }}\nb = {{ node = \"b\" }}\nshape = {{ {s} }}\n")
        };
        check(
            &err(&mk("rate = \"fast\"")),
            12,
            "link[0].shape.rate",
            "not a rate",
        );
        check(
            &err(&mk("rate = \"10parsec\"")),
            12,
            "link[0].shape.rate",
            "unknown rate unit",
        );
        check(
            &err(&mk("delay = \"10 fortnights\"")),
            12,
            "link[0].shape.delay",
            "unknown time unit",
        );
        check(
            &err(&mk("loss = \"0.5\"")),
            12,
            "link[0].shape.loss",
            "percentage",
        );
        check(
            &err(&mk("burst = \"huge\"")),
            12,
            "link[0].shape.burst",
            "not a size",
        );
        check(
            &err(&mk("delay = \"1ms\", jitter = \"5ms\"")),
            12,
            "link[0].shape.jitter",
            "jitter",
        );
    }

    #[test]
    fn long_ifname() {
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\", ifname = \"averyveryverylongname\" }}\nb = {{ node = \"b\" }}\n"));
        check(&e, 10, "link[0].a.ifname", "is 21 bytes long; at most 15");
    }

    #[test]
    fn names_that_would_be_paths_are_refused() {
        let e = err("name = \"../..\"\n[[node]]\nname = \"a\"\n");
        check(&e, 1, "name", "topology name `../..` contains \"/\"");
        let e = err("name = \"t\"\nprefix = \"-x\"\n[[node]]\nname = \"a\"\n");
        check(&e, 2, "prefix", "prefix `-x` starts with `-`");
        let e = err("name = \"t\"\n[[node]]\nname = \"a..b\"\n");
        check(&e, 3, "node[0].name", "node name `a..b` contains `..`");
        let e = err(&format!(
            "{BASE}[[link]]\nname = \"..\"\na = {{ node = \"a\" }}\nb = {{ node = \"b\" }}\n"
        ));
        check(&e, 10, "link[0].name", "link name `..` contains `..`");
        let e = err(&format!(
            "{BASE}[[link]]\na = {{ node = \"a\", ifname = \"x/y\" }}\nb = {{ node = \"b\" }}\n"
        ));
        check(
            &e,
            10,
            "link[0].a.ifname",
            "interface name `x/y` contains \"/\"",
        );
        let e = Topology::paper_default()
            .with_prefix("../")
            .map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.contains("prefix `../` contains \"/\"")),
            "{e:?}"
        );
    }

    #[test]
    fn duplicate_ifname_and_link_name() {
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\" }}\nb = {{ node = \"s\" }}\n[[link]]\na = {{ node = \"a\" }}\nb = {{ node = \"s\" }}\n"));
        check(
            &e,
            13,
            "link[1].a.ifname",
            "duplicate interface `s` on node `a`",
        );
        let e = err(&format!("{BASE}[[link]]\nname = \"x\"\na = {{ node = \"a\" }}\nb = {{ node = \"s\" }}\n[[link]]\nname = \"x\"\na = {{ node = \"b\" }}\nb = {{ node = \"s\" }}\n"));
        check(&e, 14, "link[1].name", "duplicate link name `x`");
    }

    #[test]
    fn switch_port_with_address() {
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\" }}\nb = {{ node = \"s\", addrs = [\"10.0.0.9/24\"] }}\n"));
        check(&e, 11, "link[0].b.addrs", "switch");
    }

    #[test]
    fn unknown_field_and_syntax() {
        let e = err(&format!(
            "{BASE}[[link]]\na = {{ node = \"a\" }}\nb = {{ node = \"b\" }}\nspeed = \"1gbit\"\n"
        ));
        assert_eq!(e.line, 12, "{e}");
        assert_eq!(e.field, "speed", "{e}");
        assert!(e.reason.contains("unknown field"), "{e}");
        let e = err("name = \"t\"\n[[node]\nname = \"a\"\n");
        assert_eq!(e.line, 2, "{e}");
        let e = err(&format!(
            "{BASE}[[node]]\nname = \"c\"\nkind = \"router\"\n"
        ));
        check(&e, 11, "node[3].kind", "unknown kind `router`");
        let e = err("[[node]]\nname = \"a\"\n");
        assert!(e.reason.contains("name"), "{e}");
    }

    #[test]
    fn routes_and_sysctls() {
        let e = err(&format!("{BASE}[[link]]\na = {{ node = \"a\", addrs = [\"10.0.0.1/24\"] }}\nb = {{ node = \"b\", addrs = [\"10.0.0.2/24\"] }}\n[[node]]\nname = \"r\"\nroutes = [ {{ to = \"10.9.0.0/16\", via = \"10.0.0.2\" }} ]\n"));
        check(&e, 14, "node[3].routes[0].via", "on none of `r`'s subnets");
        let e = err(&format!("{BASE}[[node]]\nname = \"r\"\nroutes = [ {{ to = \"10.9.0.1/16\", via = \"10.0.0.2\" }} ]\n"));
        check(&e, 11, "node[3].routes[0].to", "host bits");
        let e = err(&format!(
            "{BASE}[[node]]\nname = \"r\"\nsysctl = {{ \"kernel.panic\" = \"1\" }}\n"
        ));
        check(&e, 11, "node[3].sysctl.\"kernel.panic\"", "net.*");
        let e = err(&format!("{BASE}[[node]]\nname = \"r\"\nroutes = [ {{ to = \"default\", via = \"not-an-ip\" }} ]\n"));
        check(&e, 11, "node[3].routes[0].via", "not an IP address");
    }

    #[test]
    fn builder_validates() {
        let t = Topology::builder("b")
            .prefix("x-")
            .host("h1")
            .host("h2")
            .link(
                "l",
                end("h1").addr("10.0.0.1/24"),
                end("h2").addr("10.0.0.2/24"),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.ns_name("h1"), "x-h1");
        let e = Topology::builder("b")
            .host("h1")
            .link("l", end("h1"), end("nope"))
            .build();
        assert!(
            matches!(e, Err(ConfigError { ref field, .. }) if field == "link[0].b.node"),
            "{e:?}"
        );
    }
}
