//! `topo show`: nodes, interfaces, addresses, shaping and counters of a
//! running topology, read live through netlink.

use std::fmt::Write as _;

use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use serde::Serialize;

use crate::config::{NodeKind, Shape};
use crate::engine::{describe_shape, ImpairMech, Running, TopoError};
use crate::nl::Nl;

/// One interface as the kernel sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IfStatus {
    /// Name.
    pub name: String,
    /// ifindex.
    pub index: u32,
    /// MAC.
    pub mac: String,
    /// Administratively up.
    pub up: bool,
    /// MTU.
    pub mtu: u32,
    /// Bridge ifindex, if a port.
    pub master: Option<u32>,
    /// Addresses (`ADDR/LEN`).
    pub addrs: Vec<String>,
    /// Received packets.
    pub rx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Drops (rx + tx).
    pub dropped: u64,
}

/// One node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// host or switch.
    pub kind: NodeKind,
    /// Namespace.
    pub netns: String,
    /// Interfaces (without lo).
    pub interfaces: Vec<IfStatus>,
}

/// One direction of a link.
#[derive(Clone, Debug, Serialize)]
pub struct DirStatus {
    /// Configured shaping.
    pub shape: Shape,
    /// Summary such as `rate 1gbit burst 250000B delay 10ms`.
    pub summary: String,
    /// Rate mechanism (`htb` or `none`).
    pub rate_mechanism: String,
    /// Delay/loss mechanism (`none`, `netem`, `userspace-emu pid N`).
    pub impairment_mechanism: String,
}

/// One link.
#[derive(Clone, Debug, Serialize)]
pub struct LinkStatus {
    /// Name.
    pub name: String,
    /// `node:ifname` of end a.
    pub a: String,
    /// `node:ifname` of end b.
    pub b: String,
    /// a to b.
    pub ab: DirStatus,
    /// b to a.
    pub ba: DirStatus,
    /// Emulator pid and whether it is alive.
    pub emulator: Option<(i32, bool)>,
}

/// The whole topology.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Topology name.
    pub name: String,
    /// Namespace prefix.
    pub prefix: String,
    /// Nodes.
    pub nodes: Vec<NodeStatus>,
    /// Links.
    pub links: Vec<LinkStatus>,
}

/// Reads the live status of a running topology.
pub fn status(r: &Running) -> Result<Status, TopoError> {
    let t = r.topology();
    let mut nodes = Vec::new();
    for n in &t.nodes {
        let ns = t.ns_name(&n.name);
        let ifs = r.run_in(&n.name, read_interfaces)??;
        nodes.push(NodeStatus {
            name: n.name.clone(),
            kind: n.kind,
            netns: ns,
            interfaces: ifs,
        });
    }
    let mut links = Vec::new();
    for (l, lr) in t.links.iter().zip(&r.info().links) {
        let imp = match (lr.impair, &lr.emu) {
            (ImpairMech::UserspaceEmu, Some(e)) => format!("userspace-emu pid {}", e.pid),
            (ImpairMech::Netem, _) => "netem".into(),
            _ => "none".into(),
        };
        let dir = |s: &Shape, htb: bool| DirStatus {
            shape: s.clone(),
            summary: describe_shape(s),
            rate_mechanism: if htb { "htb".into() } else { "none".into() },
            impairment_mechanism: if s.impaired() || lr.impair == ImpairMech::UserspaceEmu {
                imp.clone()
            } else {
                "none".into()
            },
        };
        links.push(LinkStatus {
            name: l.name.clone(),
            a: format!("{}:{}", l.a.node, l.a.ifname),
            b: format!("{}:{}", l.b.node, l.b.ifname),
            ab: dir(&lr.shape_ab, lr.egress_a.htb),
            ba: dir(&lr.shape_ba, lr.egress_b.htb),
            emulator: lr
                .emu
                .as_ref()
                .map(|e| (e.pid, crate::state::proc_start_time(e.pid) == Some(e.start))),
        });
    }
    Ok(Status {
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        nodes,
        links,
    })
}

fn read_interfaces() -> Result<Vec<IfStatus>, TopoError> {
    let mut nl = Nl::new()?;
    let links = nl.links()?;
    let addrs = nl.addresses()?;
    let mut out = Vec::new();
    for l in links {
        let mut s = IfStatus {
            index: l.header.index,
            up: l.header.flags.contains(LinkFlags::Up),
            ..Default::default()
        };
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => s.name = n.clone(),
                LinkAttribute::Address(m) => {
                    s.mac = m
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                LinkAttribute::Mtu(m) => s.mtu = *m,
                LinkAttribute::Controller(m) => s.master = Some(*m),
                LinkAttribute::Stats64(st) => {
                    s.rx_packets = st.rx_packets;
                    s.rx_bytes = st.rx_bytes;
                    s.tx_packets = st.tx_packets;
                    s.tx_bytes = st.tx_bytes;
                    s.dropped = st.rx_dropped + st.tx_dropped;
                }
                _ => {}
            }
        }
        if s.name == "lo" {
            continue;
        }
        for a in &addrs {
            if a.header.index != l.header.index {
                continue;
            }
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                a.attributes.iter().find_map(|x| {
                    if let AddressAttribute::Address(ip) = x {
                        Some(*ip)
                    } else {
                        None
                    }
                })
            });
            if let Some(ip) = ip {
                if ip.is_ipv6()
                    && matches!(ip, std::net::IpAddr::V6(v) if v.segments()[0] == 0xfe80)
                {
                    continue;
                }
                s.addrs.push(format!("{ip}/{}", a.header.prefix_len));
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Renders the status as text.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "topology {} (namespace prefix {:?})", s.name, s.prefix);
    let _ = writeln!(o, "\nNODES");
    for n in &s.nodes {
        let _ = writeln!(
            o,
            "  {} [{}] netns {}",
            n.name,
            if n.kind == NodeKind::Switch {
                "switch"
            } else {
                "host"
            },
            n.netns
        );
        for i in &n.interfaces {
            let _ = writeln!(
                o,
                "    {:<10} {} {:<4} mtu {:<5} {}{}  rx {} pkts {} B  tx {} pkts {} B{}",
                i.name,
                i.mac,
                if i.up { "up" } else { "down" },
                i.mtu,
                i.addrs.join(" "),
                if i.master.is_some() {
                    "(bridge port)"
                } else {
                    ""
                },
                i.rx_packets,
                i.rx_bytes,
                i.tx_packets,
                i.tx_bytes,
                if i.dropped > 0 {
                    format!("  dropped {}", i.dropped)
                } else {
                    String::new()
                }
            );
        }
    }
    let _ = writeln!(o, "\nLINKS");
    for l in &s.links {
        let _ = writeln!(o, "  {:<10} {} <-> {}", l.name, l.a, l.b);
        for (d, ds) in [("a->b", &l.ab), ("b->a", &l.ba)] {
            let _ = writeln!(
                o,
                "    {d}: {:<40} rate: {:<4} delay/loss: {}",
                ds.summary, ds.rate_mechanism, ds.impairment_mechanism
            );
        }
        if let Some((pid, alive)) = l.emulator {
            let _ = writeln!(
                o,
                "    emulator pid {pid} ({})",
                if alive { "running" } else { "NOT RUNNING" }
            );
        }
    }
    o
}
