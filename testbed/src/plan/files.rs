//! The daemons' configuration files: mirrors of their TOML formats, filled
//! from the derived UPFs, gNBs and UEs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::{
    DaemonPlan, EdgePlan, GnbPlan, PlanOpts, Role, UePlan, UpfPlan, PFCP_PORT, SMF_HEARTBEAT_MS,
};

#[derive(Serialize)]
struct UpfToml {
    node_id: String,
    log_level: String,
    network_instances: Vec<String>,
    n4: UpfN4,
    n3: UpfN3,
    n6: UpfN6,
    metrics: UpfMetrics,
}
#[derive(Serialize)]
struct UpfN4 {
    addr: SocketAddr,
    /// The UPF sets up the association itself at start, so that the SMF
    /// sees a restart at once (even within the Recovery Time Stamp's second).
    smf: Vec<SocketAddr>,
}
#[derive(Serialize)]
struct UpfN3 {
    addrs: Vec<Ipv4Addr>,
}
#[derive(Serialize)]
struct UpfN6 {
    tun: String,
    ue_pools: Vec<String>,
    /// Never delivered to from a UE: every subnet of the topology but this
    /// UPF's N6 link (the data network) and its pool.
    protected_nets: Vec<String>,
}
#[derive(Serialize)]
struct UpfMetrics {
    addr: SocketAddr,
}

#[derive(Serialize)]
struct SmfToml {
    node_id: String,
    n4_bind: SocketAddr,
    cp_addr: Ipv4Addr,
    api_bind: SocketAddr,
    timers: SmfTimers,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_gnb: Option<SmfGnbRef>,
    /// Every gNB (`[[gnb]]`): the SMF audits each after its start.
    gnb: Vec<SmfGnbRef>,
    upf: Vec<SmfUpf>,
    /// The CSM migration manager's edges (`[[edge]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    edge: Vec<SmfEdge>,
    /// Its timers (`[migration]`).
    migration: SmfMigration,
    /// The session MBR (`[mbr]`; absent: the SMF's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    mbr: Option<SmfMbr>,
}
#[derive(Serialize)]
struct SmfMbr {
    ul_kbps: u64,
    dl_kbps: u64,
}
#[derive(Serialize)]
struct SmfTimers {
    heartbeat_ms: u64,
}
#[derive(Serialize)]
struct SmfGnbRef {
    name: String,
    n2_api: String,
}
impl SmfGnbRef {
    fn of(g: &GnbPlan) -> SmfGnbRef {
        SmfGnbRef {
            name: g.name.clone(),
            n2_api: g.n2_api.to_string(),
        }
    }
}
#[derive(Serialize)]
struct SmfUpf {
    name: String,
    n4: SocketAddr,
    dnn: Vec<SmfDnn>,
}
#[derive(Serialize)]
struct SmfDnn {
    name: String,
    pool: String,
    network_instance: String,
}
#[derive(Serialize)]
struct SmfEdge {
    name: String,
    upf: String,
    dnn: String,
    agent: SocketAddr,
    app_server: Ipv4Addr,
    token: String,
}
#[derive(Serialize)]
struct SmfMigration {
    countdown_ms: u64,
    setup_timeout_ms: u64,
    switch_timeout_ms: u64,
}

#[derive(Serialize)]
struct GnbToml {
    name: String,
    radio_iface: String,
    radio_addr: Ipv4Addr,
    n3_addr: Ipv4Addr,
    cp_addr: Ipv4Addr,
    smf_api: SocketAddr,
    radio_link: gnb::radio::RadioLink,
}

#[derive(Serialize)]
struct UeToml {
    ue_id: String,
    radio_iface: String,
    gnb_n1: SocketAddr,
    api: SocketAddr,
}

fn to_toml<T: Serialize>(v: &T) -> String {
    // Structs of strings, addresses and vectors always serialize.
    toml::to_string(v).unwrap_or_default()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn daemon(name: &str, role: Role, node: &str, config: String, api: SocketAddr) -> DaemonPlan {
    DaemonPlan {
        name: name.into(),
        role,
        node: node.into(),
        config_file: format!("{name}.toml"),
        config,
        api,
        args: Vec::new(),
    }
}

/// The subnets of every link of `t` (cp, n3, radio, WAN, inter-edge, the
/// other UPFs' N6) but the one of `u`'s N6 address and its UE pool: what a
/// UE must not reach through `u`. The UPF adds its own addresses.
fn upf_protected_nets(t: &topo::Topology, u: &UpfPlan) -> Vec<String> {
    let net = |a: Ipv4Addr, len: u8| {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(len.min(32)))
            .unwrap_or(0);
        (u32::from(a) & mask, mask, len)
    };
    let overlaps =
        |(n1, m1, _): (u32, u32, u8), (n2, m2, _): (u32, u32, u8)| n1 & m2 == n2 || n2 & m1 == n1;
    let pool = u
        .pool
        .split_once('/')
        .and_then(|(a, l)| Some(net(a.parse().ok()?, l.parse().ok()?)));
    let n6 = net(u.n6, 32);
    let mut nets = Vec::new();
    for a in t
        .links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .flat_map(|e| &e.addrs)
    {
        let std::net::IpAddr::V4(v4) = a.addr else {
            continue;
        };
        let n = net(v4, a.prefix);
        if !overlaps(n, n6) && !pool.is_some_and(|p| overlaps(p, n)) && !nets.contains(&n) {
            nets.push(n);
        }
    }
    nets.iter()
        .map(|(a, _, len)| format!("{}/{len}", Ipv4Addr::from(*a)))
        .collect()
}

/// Each UPF's daemon.
pub(super) fn upf_daemons(
    t: &topo::Topology,
    upfs: &[UpfPlan],
    smf_cp: Ipv4Addr,
) -> Vec<DaemonPlan> {
    upfs.iter()
        .map(|u| {
            let cfg = UpfToml {
                node_id: u.n4.ip().to_string(),
                log_level: "info".into(),
                network_instances: vec![u.dnn.clone()],
                n4: UpfN4 {
                    addr: u.n4,
                    smf: vec![SocketAddr::from((smf_cp, PFCP_PORT))],
                },
                n3: UpfN3 { addrs: vec![u.n3] },
                n6: UpfN6 {
                    tun: "n6tun".into(),
                    ue_pools: vec![u.pool.clone()],
                    protected_nets: upf_protected_nets(t, u),
                },
                metrics: UpfMetrics { addr: u.metrics },
            };
            daemon(&u.name, Role::Upf, &u.name, to_toml(&cfg), u.metrics)
        })
        .collect()
}

/// The SMF's daemon: its UPFs and their pools, the first gNB as default,
/// and the migration manager's edges (those with an agent the SMF reaches
/// and a UPF serving them) and timers, and the session MBR if `opts` sets one.
pub(super) fn smf_daemon(
    node: &str,
    smf_cp: Ipv4Addr,
    api: SocketAddr,
    upfs: &[UpfPlan],
    gnbs: &[GnbPlan],
    edges: &[EdgePlan],
    opts: &PlanOpts,
) -> DaemonPlan {
    let timers = &opts.migration;
    let smf = SmfToml {
        node_id: smf_cp.to_string(),
        n4_bind: SocketAddr::from((smf_cp, PFCP_PORT)),
        cp_addr: smf_cp,
        // On the cp address only (DESIGN.md section 3): gNBs and the
        // testbed reach it there; nothing on N6 or the radio side may.
        api_bind: api,
        timers: SmfTimers {
            heartbeat_ms: SMF_HEARTBEAT_MS,
        },
        default_gnb: gnbs.first().map(SmfGnbRef::of),
        gnb: gnbs.iter().map(SmfGnbRef::of).collect(),
        upf: upfs
            .iter()
            .map(|u| SmfUpf {
                name: u.name.clone(),
                n4: u.n4,
                dnn: vec![SmfDnn {
                    name: u.dnn.clone(),
                    pool: u.pool.clone(),
                    network_instance: u.dnn.clone(),
                }],
            })
            .collect(),
        edge: edges
            .iter()
            .filter_map(|e| {
                let upf = upfs.iter().find(|u| u.edge == e.name)?;
                Some(SmfEdge {
                    name: e.name.clone(),
                    upf: upf.name.clone(),
                    dnn: upf.dnn.clone(),
                    agent: e.smf_agent?,
                    app_server: e.n6?,
                    token: super::app::AGENT_TOKEN_PLACEHOLDER.into(),
                })
            })
            .collect(),
        migration: SmfMigration {
            countdown_ms: ms(timers.countdown),
            setup_timeout_ms: ms(timers.setup_timeout),
            switch_timeout_ms: ms(timers.switch_timeout),
        },
        mbr: opts.session_mbr_kbps.map(|k| SmfMbr {
            ul_kbps: k,
            dl_kbps: k,
        }),
    };
    daemon("smf", Role::Smf, node, to_toml(&smf), api)
}

/// Each gNB's daemon.
pub(super) fn gnb_daemons(gnbs: &[GnbPlan], smf_api: SocketAddr) -> Vec<DaemonPlan> {
    gnbs.iter()
        .map(|g| {
            let cfg = GnbToml {
                name: g.name.clone(),
                radio_iface: "radio".into(),
                radio_addr: g.radio,
                n3_addr: g.n3,
                cp_addr: g.cp,
                smf_api,
                radio_link: g.radio_link,
            };
            daemon(&g.name, Role::Gnb, &g.name, to_toml(&cfg), g.n2_api)
        })
        .collect()
}

/// Each UE's daemon (`ue run`: it runs until stopped, its sessions and its
/// CSM play included).
pub(super) fn ue_daemons(ues: &[UePlan], gnbs: &[GnbPlan]) -> Vec<DaemonPlan> {
    ues.iter()
        .map(|u| {
            let g = gnbs
                .iter()
                .find(|g| g.name == u.gnb)
                .map(|g| g.n1_api)
                .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            let cfg = UeToml {
                ue_id: u.ue_id.clone(),
                radio_iface: "radio".into(),
                gnb_n1: g,
                api: u.api,
            };
            daemon(&u.name, Role::Ue, &u.name, to_toml(&cfg), u.api)
        })
        .collect()
}

#[cfg(test)]
mod upf_tests {
    use super::super::Plan;

    #[test]
    fn upf_protects_every_subnet_but_its_n6_link_and_pool() {
        let p = Plan::derive(&topo::Topology::paper_default()).expect("paper");
        let upf1 = p.daemons.iter().find(|d| d.name == "upf1").expect("upf1");
        let c = upf::config::Config::from_toml(&upf1.config).expect("valid upf.toml");
        let nets = c.n6.protected_nets.expect("written");
        for n in [
            "10.0.0.0/24",
            "10.3.0.0/24",
            "10.10.1.0/24",
            "10.71.0.0/30",
            "10.62.0.0/30",
        ] {
            assert!(nets.iter().any(|x| x == n), "{n} in {nets:?}");
        }
        assert!(!nets.iter().any(|x| x == "10.61.0.0/30"), "its own N6 link");
        assert!(!nets.iter().any(|x| x.starts_with("10.45.")), "its pool");
    }
}
