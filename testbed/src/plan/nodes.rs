//! Reading the topology: addresses of named interfaces, and the UPFs, gNBs
//! and UEs it has, by the naming conventions of the module's table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use topo::Topology;

use super::{GnbPlan, PlanError, UePlan, UpfPlan, PFCP_PORT, UE_API_PORT, UPF_METRICS_PORT};

/// The first IPv4 address (with prefix) of `node`'s interface `ifname`.
pub fn iface_v4(t: &Topology, node: &str, ifname: &str) -> Option<(Ipv4Addr, u8)> {
    t.links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .filter(|e| e.node == node && e.ifname == ifname)
        .flat_map(|e| e.addrs.iter())
        .find_map(|a| match a.addr {
            IpAddr::V4(v4) => Some((v4, a.prefix)),
            IpAddr::V6(_) => None,
        })
}

pub(super) fn need(
    t: &Topology,
    node: &str,
    ifname: &'static str,
    role: &'static str,
) -> Result<(Ipv4Addr, u8), PlanError> {
    iface_v4(t, node, ifname).ok_or_else(|| PlanError::MissingIface {
        node: node.into(),
        ifname,
        role,
    })
}

fn in_subnet(a: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    u32::from(a) & mask == u32::from(net) & mask
}

/// `ue7` -> `imsi-001010000000007` (MCC 001, MNC 01, test network).
pub fn supi_for(name: &str) -> String {
    let digits: String = name.chars().filter(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    format!("imsi-00101{n:010}")
}

pub(super) fn nodes_with_prefix<'a>(
    t: &'a Topology,
    p: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    t.nodes
        .iter()
        .filter(move |n| n.kind == topo::NodeKind::Host && n.name.starts_with(p))
        .map(|n| n.name.as_str())
}

/// Every `upf*` node: its addresses, its edge (the peer of its `n6`) and
/// the pool that edge routes back to it.
pub(super) fn upfs(t: &Topology) -> Result<Vec<UpfPlan>, PlanError> {
    let mut upfs = Vec::new();
    for name in nodes_with_prefix(t, "upf") {
        let (cp, _) = need(t, name, "cp", "UPF (N4)")?;
        let (n3, _) = need(t, name, "n3", "UPF (N3)")?;
        let (n6, _) = need(t, name, "n6", "UPF (N6)")?;
        let peer = t
            .links
            .iter()
            .find_map(|l| {
                if l.a.node == name && l.a.ifname == "n6" {
                    Some(&l.b)
                } else if l.b.node == name && l.b.ifname == "n6" {
                    Some(&l.a)
                } else {
                    None
                }
            })
            .ok_or(PlanError::MissingIface {
                node: name.into(),
                ifname: "n6",
                role: "UPF (N6)",
            })?;
        let edge = peer.node.clone();
        let edge_n6 = peer
            .addrs
            .iter()
            .find_map(|a| match a.addr {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .ok_or(PlanError::MissingIface {
                node: edge.clone(),
                ifname: "n6",
                role: "edge (N6)",
            })?;
        let pool = t
            .node(&edge)
            .into_iter()
            .flat_map(|n| n.routes.iter())
            .find(|r| r.via == Some(IpAddr::V4(n6)) && r.to.prefix > 0)
            .map(|r| r.to.to_string())
            .ok_or_else(|| PlanError::NoPool {
                upf: name.into(),
                edge: edge.clone(),
                via: n6,
            })?;
        upfs.push(UpfPlan {
            name: name.into(),
            n4: SocketAddr::from((cp, PFCP_PORT)),
            n3,
            n6,
            dnn: edge.clone(),
            edge,
            edge_n6,
            pool,
            metrics: SocketAddr::from((cp, UPF_METRICS_PORT)),
        });
    }
    if upfs.is_empty() {
        return Err(PlanError::MissingNode {
            what: "UPF (a node named `upf*`)",
        });
    }
    Ok(upfs)
}

/// Every `gnb*` node.
pub(super) fn gnbs(t: &Topology) -> Result<Vec<GnbPlan>, PlanError> {
    let mut gnbs = Vec::new();
    for name in nodes_with_prefix(t, "gnb") {
        let (radio, radio_prefix) = need(t, name, "radio", "gNB (radio side, N1 relay)")?;
        let (n3, _) = need(t, name, "n3", "gNB (N3)")?;
        let (cp, _) = need(t, name, "cp", "gNB (N2-lite)")?;
        gnbs.push(GnbPlan {
            name: name.into(),
            radio,
            radio_prefix,
            n3,
            cp,
            n1_api: SocketAddr::from((radio, wire::ctl::GNB_N1_PORT)),
            n2_api: SocketAddr::from((cp, wire::ctl::GNB_N2_PORT)),
            radio_link: radio_link(t, name),
        });
    }
    if gnbs.is_empty() {
        return Err(PlanError::MissingNode {
            what: "gNB (a node named `gnb*`)",
        });
    }
    Ok(gnbs)
}

/// A gNB's radio interface on a switch is a shared cell; on a veth to a
/// host it is a point-to-point link to that one UE.
fn radio_link(t: &Topology, gnb: &str) -> gnb::radio::RadioLink {
    let peer = t.links.iter().find_map(|l| {
        if l.a.node == gnb && l.a.ifname == "radio" {
            Some(&l.b.node)
        } else if l.b.node == gnb && l.b.ifname == "radio" {
            Some(&l.a.node)
        } else {
            None
        }
    });
    let on_switch = peer.is_some_and(|p| {
        t.nodes
            .iter()
            .any(|n| &n.name == p && n.kind == topo::NodeKind::Switch)
    });
    if on_switch {
        gnb::radio::RadioLink::Shared
    } else {
        gnb::radio::RadioLink::PointToPoint
    }
}

/// Every `ue*` node, with the gNB whose radio subnet it is in.
pub(super) fn ues(t: &Topology, gnbs: &[GnbPlan]) -> Result<Vec<UePlan>, PlanError> {
    let mut ues = Vec::new();
    for name in nodes_with_prefix(t, "ue") {
        let (radio, _) = need(t, name, "radio", "UE (radio)")?;
        let g = gnbs
            .iter()
            .find(|g| in_subnet(radio, g.radio, g.radio_prefix))
            .ok_or(PlanError::NoGnb {
                ue: name.into(),
                addr: radio,
            })?;
        ues.push(UePlan {
            name: name.into(),
            ue_id: supi_for(name),
            gnb: g.name.clone(),
            radio,
            api: SocketAddr::from((Ipv4Addr::LOCALHOST, UE_API_PORT)),
        });
    }
    Ok(ues)
}
