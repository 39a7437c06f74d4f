//! Building a [`Topology`] in code, with the same validation as files.

use super::raw::{sp, RawEnd, RawLink, RawNode, RawRoute, RawShape, RawTopology};
use super::validate::Validator;
use super::{ConfigError, Topology};

impl Topology {
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
}

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
    /// The last node added with that name.
    fn last_node(&mut self, name: &str) -> Option<&mut RawNode> {
        self.raw
            .nodes
            .iter_mut()
            .rev()
            .find(|n| n.name.get_ref() == name)
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
        if let Some(n) = self.last_node(node) {
            let t = n.sysctl.get_or_insert_with(|| sp(toml::Table::new()));
            t.get_mut()
                .insert(key.into(), toml::Value::String(value.into()));
        }
        self
    }
    /// Adds a route on `node` (`to` is a prefix or "default").
    pub fn route(mut self, node: &str, to: &str, via: &str) -> Self {
        if let Some(n) = self.last_node(node) {
            n.routes.push(sp(RawRoute {
                to: sp(to.into()),
                via: Some(sp(via.into())),
                dev: None,
            }));
        }
        self
    }
    /// Adds an unshaped link.
    pub fn link(self, name: &str, a: EndSpec, b: EndSpec) -> Self {
        self.push_link(name, a, b, None)
    }
    /// Adds a link shaped the same in both directions.
    pub fn shaped_link(self, name: &str, a: EndSpec, b: EndSpec, shape: ShapeSpec) -> Self {
        self.push_link(name, a, b, Some(shape))
    }
    fn push_link(mut self, name: &str, a: EndSpec, b: EndSpec, shape: Option<ShapeSpec>) -> Self {
        self.raw.links.push(RawLink {
            name: Some(sp(name.into())),
            a: sp(a.0),
            b: sp(b.0),
            shape: shape.map(|s| sp(s.0)),
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
