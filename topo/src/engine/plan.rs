//! The plan of `up`: which namespaces, veth pairs and emulators a topology
//! needs, with every interface index chosen, decided before anything is made.

use super::{EmuProc, ImpairMech, ImpairMode, LinkRun, UpOptions};
use crate::config::{Link, NodeKind, Topology};
use crate::state;
use crate::tc::{self, EgressState};

/// ifindex of the bridge in a switch's namespace.
pub(super) const BRIDGE_INDEX: u32 = 2;
/// Name of the bridge in a switch's namespace.
pub(super) const BRIDGE_NAME: &str = "br0";

/// A namespace to make.
pub(super) struct NsPlan {
    pub(super) name: String,
    /// Node name, None for the emulator namespace.
    pub(super) node: Option<String>,
    pub(super) kind: NodeKind,
    pub(super) sysctls: Vec<(String, String)>,
    /// The lo alias that tells this namespace is ours.
    pub(super) mark: String,
    /// The next free ifindex.
    pub(super) next_index: u32,
}

/// One end of a veth pair.
pub(super) struct End {
    /// Index of its namespace in [`Plan::namespaces`].
    pub(super) ns: usize,
    pub(super) ifname: String,
    pub(super) index: u32,
    /// The bridge it is enslaved to (ends in a switch).
    pub(super) master: Option<u32>,
    pub(super) mac: Option<[u8; 6]>,
}

/// A veth pair to make.
pub(super) struct VethPlan {
    /// The end whose namespace creates the pair.
    pub(super) a: End,
    /// The peer, placed directly in its namespace.
    pub(super) b: End,
    pub(super) mtu: Option<u32>,
    /// For error messages.
    pub(super) what: String,
}

/// Everything `up` makes.
pub(super) struct Plan {
    /// Whether netem realises delay/loss (else the userspace emulator).
    pub(super) netem: bool,
    /// One namespace per node, in topology order, then the emulator's.
    pub(super) namespaces: Vec<NsPlan>,
    /// Index of the emulator namespace in `namespaces`.
    pub(super) emu_ns: Option<usize>,
    pub(super) veths: Vec<VethPlan>,
    /// Run-time state of each link, in topology order.
    pub(super) links: Vec<LinkRun>,
    /// Emulators to start: link index and process (pid 0 until started).
    pub(super) emus: Vec<(usize, EmuProc)>,
}

/// Plans `topo`; emulator configurations go to `dir`, its state directory.
pub(super) fn plan(topo: &Topology, opts: &UpOptions, dir: &std::path::Path) -> Plan {
    let any_impaired = topo.links.iter().any(Link::impaired);
    let netem = match opts.impair {
        ImpairMode::Netem => true,
        ImpairMode::Userspace => false,
        ImpairMode::Auto => any_impaired && tc::netem_available(),
    };
    let mut namespaces = node_namespaces(topo);
    let emu_ns = (any_impaired && !netem).then(|| {
        namespaces.push(emulator_namespace(topo));
        namespaces.len() - 1
    });
    let mut p = Plan {
        netem,
        namespaces,
        emu_ns,
        veths: Vec::new(),
        links: Vec::new(),
        emus: Vec::new(),
    };
    for (li, l) in topo.links.iter().enumerate() {
        p.add_link(topo, dir, li, l);
    }
    p
}

/// Index of a node in the topology (and of its namespace in the plan).
pub(super) fn node_index(topo: &Topology, node: &str) -> usize {
    topo.nodes
        .iter()
        .position(|n| n.name == node)
        .unwrap_or_else(|| unreachable!("validated"))
}

fn mark(topo: &Topology) -> String {
    format!("minedge:{}:{}", topo.name, state::token())
}

fn node_namespaces(topo: &Topology) -> Vec<NsPlan> {
    topo.nodes
        .iter()
        .map(|n| NsPlan {
            name: topo.ns_name(&n.name),
            node: Some(n.name.clone()),
            kind: n.kind,
            sysctls: n.sysctls.clone(),
            mark: mark(topo),
            next_index: if n.kind == NodeKind::Switch {
                BRIDGE_INDEX + 1
            } else {
                2
            },
        })
        .collect()
}

fn emulator_namespace(topo: &Topology) -> NsPlan {
    NsPlan {
        name: topo.emu_ns_name(),
        node: None,
        kind: NodeKind::Host,
        sysctls: vec![
            ("net.ipv6.conf.all.disable_ipv6".into(), "1".into()),
            ("net.ipv6.conf.default.disable_ipv6".into(), "1".into()),
        ],
        mark: mark(topo),
        next_index: 2,
    }
}

impl Plan {
    /// Plans the veth pair(s) of link `li`: one pair, or two through the
    /// emulator namespace when the userspace emulator realises its delay/loss.
    fn add_link(&mut self, topo: &Topology, dir: &std::path::Path, li: usize, l: &Link) {
        let (na, nb) = (node_index(topo, &l.a.node), node_index(topo, &l.b.node));
        let impair = if !l.impaired() {
            ImpairMech::None
        } else if self.netem {
            ImpairMech::Netem
        } else {
            ImpairMech::UserspaceEmu
        };
        if let (Some(e), ImpairMech::UserspaceEmu) = (self.emu_ns, impair) {
            let (pa, pb) = (format!("e{li}a"), format!("e{li}b"));
            let a = self.end(na, &l.a.ifname, l.a.mac);
            let ea = self.end(e, &pa, None);
            let what = format!(
                "veth {}:{} <-> emulator:{pa} (link {})",
                l.a.node, l.a.ifname, l.name
            );
            self.add_veth(a, ea, l.mtu, what);
            let eb = self.end(e, &pb, None);
            let b = self.end(nb, &l.b.ifname, l.b.mac);
            let what = format!(
                "veth emulator:{pb} <-> {}:{} (link {})",
                l.b.node, l.b.ifname, l.name
            );
            self.add_veth(eb, b, l.mtu, what);
            let config = dir.join(format!("emu-{}.json", l.name));
            let netns = self.namespaces[e].name.clone();
            self.emus.push((
                li,
                EmuProc {
                    pid: 0,
                    start: 0,
                    config,
                    netns,
                    port_a: pa,
                    port_b: pb,
                },
            ));
        } else {
            let a = self.end(na, &l.a.ifname, l.a.mac);
            let b = self.end(nb, &l.b.ifname, l.b.mac);
            let what = format!(
                "veth {}:{} <-> {}:{} (link {})",
                l.a.node, l.a.ifname, l.b.node, l.b.ifname, l.name
            );
            self.add_veth(a, b, l.mtu, what);
        }
        self.links.push(LinkRun {
            name: l.name.clone(),
            shape_ab: l.shape_ab.clone(),
            shape_ba: l.shape_ba.clone(),
            egress_a: EgressState::default(),
            egress_b: EgressState::default(),
            impair,
            emu: None,
        });
    }

    /// An end in namespace `ns`, taking its next ifindex.
    fn end(&mut self, ns: usize, ifname: &str, mac: Option<[u8; 6]>) -> End {
        let p = &mut self.namespaces[ns];
        let index = p.next_index;
        p.next_index += 1;
        End {
            ns,
            ifname: ifname.into(),
            index,
            master: (p.kind == NodeKind::Switch).then_some(BRIDGE_INDEX),
            mac,
        }
    }

    fn add_veth(&mut self, a: End, b: End, mtu: Option<u32>, what: String) {
        // Only the creating end takes a master at creation: put a switch end
        // first. The peer's master (both ends in switches) is set afterwards.
        let (a, b) = if b.master.is_some() && a.master.is_none() {
            (b, a)
        } else {
            (a, b)
        };
        self.veths.push(VethPlan { a, b, mtu, what });
    }
}
