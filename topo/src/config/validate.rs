//! Parsing and validation: raw TOML (or a builder's raw values) to a
//! [`Topology`], every error naming the file, the line, the field and why.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::raw::{sp, RawShape, RawTopology};
use super::{ConfigError, Endpoint, Link, Node, NodeKind, Route, Shape, Topology, MAX_IFNAME};
use crate::names::{self, NameError};
use crate::units::{self, IfAddr};

/// Parses and validates TOML text; `file` is used in error messages.
pub(super) fn parse(text: &str, file: &str) -> Result<Topology, ConfigError> {
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

fn line_col(text: &str, off: usize) -> (usize, usize) {
    let off = off.min(text.len());
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

pub(super) struct Validator<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
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

    pub(super) fn validate(&self, raw: RawTopology) -> Result<Topology, ConfigError> {
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
        for (shape, field, why) in [
            ("rate = \"fast\"", "rate", "not a rate"),
            ("rate = \"10parsec\"", "rate", "unknown rate unit"),
            ("delay = \"10 fortnights\"", "delay", "unknown time unit"),
            ("loss = \"0.5\"", "loss", "percentage"),
            ("burst = \"huge\"", "burst", "not a size"),
            ("delay = \"1ms\", jitter = \"5ms\"", "jitter", "jitter"),
        ] {
            let field = format!("link[0].shape.{field}");
            check(&err(&mk(shape)), 12, &field, why);
        }
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
}
