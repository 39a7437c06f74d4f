//! Every daemon's configuration, derived from a topology: a pure function
//! ([`Plan::derive`]) from a [`Topology`] to TOML texts and the addresses
//! that `up`, `status` and the health checks use.
//!
//! # Conventions the topology must follow
//!
//! Roles come from node names, addresses from interface names, as in
//! `topo/topologies/paper.toml` and `multi-ue.toml`:
//!
//! | node name | role | interfaces used |
//! |---|---|---|
//! | `core` | SMF | `cp` |
//! | `upf*` | UPF | `cp` (N4, metrics), `n3` (GTP-U), `n6` (towards its edge) |
//! | `gnb*` | gNB | `cp` (N2-lite), `n3` (GTP-U), `radio` (N1 relay, UEs' gateway) |
//! | `ue*` | UE | `radio` (its address must be in a gNB's radio subnet) |
//! | `edge*` | data network of the UPF whose `n6` it faces | - |
//!
//! A UPF serves one DNN named after its edge (`upf1` -> `edge1`), with the UE
//! pool that the edge routes back to the UPF's N6 address (paper topology:
//! `edge1` routes 10.45.0.0/16 via upf1, so upf1's pool is 10.45.0.0/16).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;
use topo::Topology;

/// The SMF's PFCP and the UPFs' PFCP port.
pub const PFCP_PORT: u16 = 8805;
/// Port of each UPF's metrics endpoint (on its cp address).
pub const UPF_METRICS_PORT: u16 = 9100;
/// The SMF's PFCP heartbeat interval: a restarted UPF is noticed (and its
/// sessions restored) within about this long.
pub const SMF_HEARTBEAT_MS: u64 = 1000;
/// Port of each UE daemon's API (on 127.0.0.1 in its namespace).
pub const UE_API_PORT: u16 = 7100;

/// The topology does not say what a daemon needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A node lacks an interface (or an IPv4 address on it).
    #[error("node `{node}` has no IPv4 address on an interface named `{ifname}` (needed for its {role})")]
    MissingIface {
        /// Node.
        node: String,
        /// Interface name looked for.
        ifname: &'static str,
        /// What it is needed for.
        role: &'static str,
    },
    /// A required node is missing.
    #[error("the topology has no {what}")]
    MissingNode {
        /// What was looked for.
        what: &'static str,
    },
    /// A UPF's N6 peer routes no pool back to it.
    #[error("edge `{edge}` has no route via {upf}'s N6 address {via}: cannot tell {upf}'s UE pool (add e.g. `routes = [{{ to = \"10.45.0.0/16\", via = \"{via}\" }}]` to `{edge}`)")]
    NoPool {
        /// UPF.
        upf: String,
        /// Its edge.
        edge: String,
        /// The UPF's N6 address.
        via: Ipv4Addr,
    },
    /// A UE whose radio address is in no gNB's radio subnet.
    #[error("UE `{ue}` ({addr}) is in no gNB's radio subnet")]
    NoGnb {
        /// UE.
        ue: String,
        /// Its radio address.
        addr: Ipv4Addr,
    },
}

/// What a daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// User Plane Function (`upf`).
    Upf,
    /// SMF (`smf`, crate smf-lite).
    Smf,
    /// gNB shim (`gnb`).
    Gnb,
    /// UE daemon (`ue`).
    Ue,
    /// Cloud logic server (`app cloud`).
    Cloud,
    /// Cloud application repository (`app repo-server`).
    Repo,
    /// Edge migration agent (`app agent`).
    Agent,
}

impl Role {
    /// The binary that runs it.
    pub fn binary(self) -> &'static str {
        match self {
            Role::Upf => "upf",
            Role::Smf => "smf",
            Role::Gnb => "gnb",
            Role::Ue => "ue",
            Role::Cloud | Role::Repo | Role::Agent => "app",
        }
    }
    /// The cargo package that builds the binary.
    pub fn package(self) -> &'static str {
        match self {
            Role::Upf => "upf",
            Role::Smf => "smf-lite",
            Role::Gnb => "gnb",
            Role::Ue => "ue",
            Role::Cloud | Role::Repo | Role::Agent => "app",
        }
    }
}

/// One daemon to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DaemonPlan {
    /// Daemon name (`upf1`, `smf`, `gnb1`, `ue1`): file names, status lines.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The topology node (namespace) it runs in.
    pub node: String,
    /// File name of its configuration in the run folder's `configs/`.
    pub config_file: String,
    /// Its configuration (TOML).
    pub config: String,
    /// Where its HTTP API / metrics listen, reachable from inside `node`.
    pub api: SocketAddr,
    /// Command-line arguments, for daemons configured by arguments (the
    /// application's); empty: `run --config FILE`. `config` then holds
    /// them one per line, for the record.
    #[serde(default)]
    pub args: Vec<String>,
}

/// The application under test (issue 6), when the topology has a `cloud`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AppPlan {
    /// The cloud's node.
    pub cloud: String,
    /// Logic server metrics/stats (inside the cloud's namespace).
    pub cloud_stats: SocketAddr,
    /// Accounts: (UE node, account, token).
    pub accounts: Vec<(String, String, String)>,
    /// Edges with an agent.
    pub edges: Vec<EdgePlan>,
}

/// An edge with its migration agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EdgePlan {
    /// Node.
    pub name: String,
    /// The agent's API (inside the edge's namespace).
    pub agent_api: SocketAddr,
    /// The edge's N6 address (UEs reach its instances there).
    pub n6: Option<Ipv4Addr>,
    /// The cloud's address on this edge's WAN link.
    pub cloud_addr: Ipv4Addr,
}

/// Cloud logic server: state sync (TCP).
pub const CLOUD_SYNC_PORT: u16 = 7300;
/// Cloud logic server: metrics and stats (HTTP).
pub const CLOUD_STATS_PORT: u16 = 7301;
/// Cloud application repository (HTTP).
pub const REPO_PORT: u16 = 7310;
/// Edge migration agent (HTTP).
pub const AGENT_PORT: u16 = 7400;
/// Size of the application package the cloud repository publishes.
pub const APP_PACKAGE_SIZE: &str = "32MiB";

/// A UPF, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UpfPlan {
    /// Name (= node).
    pub name: String,
    /// PFCP address (cp).
    pub n4: SocketAddr,
    /// GTP-U address.
    pub n3: Ipv4Addr,
    /// Its N6 address.
    pub n6: Ipv4Addr,
    /// The edge node behind N6.
    pub edge: String,
    /// The edge's N6 address.
    pub edge_n6: Ipv4Addr,
    /// The DNN it serves (= the edge's name).
    pub dnn: String,
    /// UE pool, `a.b.c.d/len`.
    pub pool: String,
    /// Metrics endpoint (`/metrics`, `/stats`).
    pub metrics: SocketAddr,
}

/// A gNB, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GnbPlan {
    /// Name (= node).
    pub name: String,
    /// Radio address and prefix.
    pub radio: Ipv4Addr,
    /// Radio prefix length.
    pub radio_prefix: u8,
    /// N3 address.
    pub n3: Ipv4Addr,
    /// cp address.
    pub cp: Ipv4Addr,
    /// N1 relay (radio side).
    pub n1_api: SocketAddr,
    /// N2-lite API (cp side).
    pub n2_api: SocketAddr,
}

/// A UE, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UePlan {
    /// Name (= node).
    pub name: String,
    /// SUPI.
    pub ue_id: String,
    /// Its gNB.
    pub gnb: String,
    /// Its radio address.
    pub radio: Ipv4Addr,
    /// Its daemon's API (127.0.0.1 in its namespace).
    pub api: SocketAddr,
}

/// Everything `up` starts, derived from a topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Plan {
    /// Daemons in start order: UPFs, SMF, gNBs, UEs.
    pub daemons: Vec<DaemonPlan>,
    /// UPFs.
    pub upfs: Vec<UpfPlan>,
    /// The SMF's node.
    pub smf_node: String,
    /// The SMF's API (cp address).
    pub smf_api: SocketAddr,
    /// gNBs.
    pub gnbs: Vec<GnbPlan>,
    /// UEs.
    pub ues: Vec<UePlan>,
    /// The application under test, if the topology has a `cloud` node.
    #[serde(default)]
    pub app: Option<AppPlan>,
}

// ---- the daemons' configuration files (mirrors of their formats) ------------

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
    upf: Vec<SmfUpf>,
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
struct GnbToml {
    name: String,
    radio_iface: String,
    radio_addr: Ipv4Addr,
    n3_addr: Ipv4Addr,
    cp_addr: Ipv4Addr,
    smf_api: SocketAddr,
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

// ---- derivation -------------------------------------------------------------

fn token_placeholder(account: &str) -> String {
    format!("@TOKEN-{account}@")
}

/// A token nobody guesses: 128 bits from the kernel, hex.
fn new_token() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The application's daemons: logic server and repository in `cloud`, an
/// agent in every edge that has a WAN link to the cloud. Their accounts
/// (one per UE) get fresh tokens.
fn app_plan(
    t: &Topology,
    ues: &[UePlan],
    upfs: &[UpfPlan],
    daemons: &mut Vec<DaemonPlan>,
) -> Option<AppPlan> {
    let cloud = nodes_with_prefix(t, "cloud")
        .find(|n| *n == "cloud")?
        .to_string();
    let mut edges = Vec::new();
    for e in nodes_with_prefix(t, "edge") {
        // The cloud's address on a link between this edge and the cloud.
        let cloud_addr = t.links.iter().find_map(|l| {
            let (c, o) = if l.a.node == cloud {
                (&l.a, &l.b)
            } else {
                (&l.b, &l.a)
            };
            (c.node == cloud && o.node == e).then(|| {
                c.addrs.iter().find_map(|a| match a.addr {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
            })?
        });
        let Some(cloud_addr) = cloud_addr else {
            continue;
        };
        edges.push(EdgePlan {
            name: e.to_string(),
            agent_api: SocketAddr::from((Ipv4Addr::LOCALHOST, AGENT_PORT)),
            n6: upfs.iter().find(|u| u.edge == e).map(|u| u.edge_n6),
            cloud_addr,
        });
    }
    // Tokens are issued by `Plan::issue_tokens` when the testbed comes up:
    // derivation stays pure.
    let accounts: Vec<(String, String, String)> = ues
        .iter()
        .map(|u| (u.name.clone(), u.name.clone(), token_placeholder(&u.name)))
        .collect();
    let mut push = |name: &str, role: Role, node: &str, api: SocketAddr, args: Vec<String>| {
        daemons.push(DaemonPlan {
            name: name.into(),
            role,
            node: node.into(),
            config_file: format!("{name}.args"),
            config: args.join("\n") + "\n",
            api,
            args,
        });
    };
    let any = |port: u16| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).to_string();
    let mut cloud_args = vec![
        "cloud".to_string(),
        "--listen".into(),
        any(CLOUD_SYNC_PORT),
        "--metrics".into(),
        any(CLOUD_STATS_PORT),
    ];
    for (_, account, token) in &accounts {
        cloud_args.push("--account".into());
        cloud_args.push(format!("{account}:{token}"));
    }
    let cloud_stats = SocketAddr::from((Ipv4Addr::LOCALHOST, CLOUD_STATS_PORT));
    push("cloud", Role::Cloud, &cloud, cloud_stats, cloud_args);
    push(
        "repo",
        Role::Repo,
        &cloud,
        SocketAddr::from((Ipv4Addr::LOCALHOST, REPO_PORT)),
        vec![
            "repo-server".into(),
            "--listen".into(),
            any(REPO_PORT),
            "--dir".into(),
            "@RUN@/cloud-repo".into(),
            "--publish-snake".into(),
            APP_PACKAGE_SIZE.into(),
        ],
    );
    for e in &edges {
        push(
            &format!("agent-{}", e.name),
            Role::Agent,
            &e.name,
            e.agent_api,
            vec![
                "agent".into(),
                "--listen".into(),
                any(AGENT_PORT),
                "--repo".into(),
                format!("@RUN@/{}-repo", e.name),
                "--cloud-repo".into(),
                format!("http://{}:{REPO_PORT}", e.cloud_addr),
                "--cloud-sync".into(),
                SocketAddr::from((e.cloud_addr, CLOUD_SYNC_PORT)).to_string(),
                "--run-dir".into(),
                format!("@RUN@/{}", e.name),
                // Instances are named EDGE-iN at the cloud.
                "--name".into(),
                e.name.clone(),
            ],
        );
    }
    Some(AppPlan {
        cloud,
        cloud_stats,
        accounts,
        edges,
    })
}

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

fn need(
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

fn nodes_with_prefix<'a>(t: &'a Topology, p: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    t.nodes
        .iter()
        .filter(move |n| n.kind == topo::NodeKind::Host && n.name.starts_with(p))
        .map(|n| n.name.as_str())
}

impl Plan {
    /// Derives every daemon's configuration from the topology. Pure: no I/O.
    pub fn derive(t: &Topology) -> Result<Plan, PlanError> {
        let smf_node = nodes_with_prefix(t, "core")
            .find(|n| *n == "core")
            .ok_or(PlanError::MissingNode {
                what: "node `core` (the SMF)",
            })?
            .to_string();
        let (smf_cp, _) = need(t, &smf_node, "cp", "SMF (N4 and API)")?;
        let smf_api = SocketAddr::from((smf_cp, wire::ctl::SMF_PORT));

        // UPFs.
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

        // gNBs.
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
            });
        }
        if gnbs.is_empty() {
            return Err(PlanError::MissingNode {
                what: "gNB (a node named `gnb*`)",
            });
        }

        // UEs.
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

        // Configuration files.
        let mut daemons = Vec::new();
        for u in &upfs {
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
                },
                metrics: UpfMetrics { addr: u.metrics },
            };
            daemons.push(DaemonPlan {
                name: u.name.clone(),
                role: Role::Upf,
                node: u.name.clone(),
                config_file: format!("{}.toml", u.name),
                config: to_toml(&cfg),
                api: u.metrics,
                args: Vec::new(),
            });
        }
        let smf = SmfToml {
            node_id: smf_cp.to_string(),
            n4_bind: SocketAddr::from((smf_cp, PFCP_PORT)),
            cp_addr: smf_cp,
            api_bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, wire::ctl::SMF_PORT)),
            timers: SmfTimers {
                heartbeat_ms: SMF_HEARTBEAT_MS,
            },
            default_gnb: gnbs.first().map(|g| SmfGnbRef {
                name: g.name.clone(),
                n2_api: g.n2_api.to_string(),
            }),
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
        };
        daemons.push(DaemonPlan {
            name: "smf".into(),
            role: Role::Smf,
            node: smf_node.clone(),
            config_file: "smf.toml".into(),
            config: to_toml(&smf),
            api: smf_api,
            args: Vec::new(),
        });
        for g in &gnbs {
            let cfg = GnbToml {
                name: g.name.clone(),
                radio_iface: "radio".into(),
                radio_addr: g.radio,
                n3_addr: g.n3,
                cp_addr: g.cp,
                smf_api,
            };
            daemons.push(DaemonPlan {
                name: g.name.clone(),
                role: Role::Gnb,
                node: g.name.clone(),
                config_file: format!("{}.toml", g.name),
                config: to_toml(&cfg),
                api: g.n2_api,
                args: Vec::new(),
            });
        }
        for u in &ues {
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
            daemons.push(DaemonPlan {
                name: u.name.clone(),
                role: Role::Ue,
                node: u.name.clone(),
                config_file: format!("{}.toml", u.name),
                config: to_toml(&cfg),
                api: u.api,
                args: Vec::new(),
            });
        }
        let app = app_plan(t, &ues, &upfs, &mut daemons);
        Ok(Plan {
            daemons,
            upfs,
            smf_node,
            smf_api,
            gnbs,
            ues,
            app,
        })
    }

    /// Gives every account a fresh token (128 random bits), in the
    /// accounts and in the logic server's arguments.
    pub fn issue_tokens(&mut self) {
        let Some(app) = self.app.as_mut() else {
            return;
        };
        for (_, account, token) in app.accounts.iter_mut() {
            let placeholder = token_placeholder(account);
            if *token != placeholder {
                continue;
            }
            let fresh = new_token();
            for d in self.daemons.iter_mut().filter(|d| d.role == Role::Cloud) {
                for a in d.args.iter_mut() {
                    *a = a.replace(&placeholder, &fresh);
                }
                d.config = d.config.replace(&placeholder, &fresh);
            }
            *token = fresh;
        }
    }

    /// The edge of this name (with an agent).
    pub fn edge(&self, name: &str) -> Option<&EdgePlan> {
        self.app.as_ref()?.edges.iter().find(|e| e.name == name)
    }

    /// The daemon of this name.
    pub fn daemon(&self, name: &str) -> Option<&DaemonPlan> {
        self.daemons.iter().find(|d| d.name == name)
    }

    /// The UPF of this name.
    pub fn upf(&self, name: &str) -> Option<&UpfPlan> {
        self.upfs.iter().find(|u| u.name == name)
    }

    /// The UE of this name.
    pub fn ue(&self, name: &str) -> Option<&UePlan> {
        self.ues.iter().find(|u| u.name == name)
    }

    /// DNN -> UPF.
    pub fn dnns(&self) -> BTreeMap<String, String> {
        self.upfs
            .iter()
            .map(|u| (u.dnn.clone(), u.name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> Plan {
        Plan::derive(&Topology::paper_default()).expect("paper topology derives")
    }

    #[test]
    fn paper_addresses_and_pools() {
        let p = paper();
        let names: Vec<_> = p.daemons.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "upf1",
                "upf2",
                "smf",
                "gnb1",
                "ue1",
                "cloud",
                "repo",
                "agent-edge1",
                "agent-edge2"
            ]
        );
        let app = p.app.as_ref().expect("the paper topology has a cloud");
        let edges: Vec<_> = app
            .edges
            .iter()
            .map(|e| (e.name.as_str(), e.n6, e.cloud_addr))
            .collect();
        assert_eq!(
            edges,
            [
                (
                    "edge1",
                    Some(Ipv4Addr::new(10, 61, 0, 2)),
                    Ipv4Addr::new(10, 71, 0, 2)
                ),
                (
                    "edge2",
                    Some(Ipv4Addr::new(10, 62, 0, 2)),
                    Ipv4Addr::new(10, 72, 0, 2)
                )
            ]
        );
        assert_eq!(p.smf_node, "core");
        assert_eq!(p.smf_api.to_string(), "10.0.0.1:7000");
        let u1 = p.upf("upf1").expect("upf1");
        assert_eq!(u1.n4.to_string(), "10.0.0.11:8805");
        assert_eq!(u1.n3, Ipv4Addr::new(10, 3, 0, 11));
        assert_eq!(u1.n6, Ipv4Addr::new(10, 61, 0, 1));
        assert_eq!((u1.edge.as_str(), u1.dnn.as_str()), ("edge1", "edge1"));
        assert_eq!(u1.edge_n6, Ipv4Addr::new(10, 61, 0, 2));
        assert_eq!(u1.pool, "10.45.0.0/16");
        let u2 = p.upf("upf2").expect("upf2");
        assert_eq!(u2.n4.to_string(), "10.0.0.12:8805");
        assert_eq!(u2.n3, Ipv4Addr::new(10, 3, 0, 12));
        assert_eq!(
            (u2.edge.as_str(), u2.pool.as_str()),
            ("edge2", "10.46.0.0/16")
        );
        let g = &p.gnbs[0];
        assert_eq!(g.n1_api.to_string(), "10.10.1.1:7001");
        assert_eq!(g.n2_api.to_string(), "10.0.0.2:7002");
        assert_eq!(g.n3, Ipv4Addr::new(10, 3, 0, 1));
        let ue = p.ue("ue1").expect("ue1");
        assert_eq!(ue.ue_id, "imsi-001010000000001");
        assert_eq!(ue.gnb, "gnb1");
        assert_eq!(p.dnns().get("edge2").map(String::as_str), Some("upf2"));
    }

    #[test]
    fn tokens_are_fresh_and_reach_the_logic_server() {
        let (mut a, mut b) = (paper(), paper());
        a.issue_tokens();
        b.issue_tokens();
        let token = |p: &Plan| p.app.as_ref().expect("app").accounts[0].2.clone();
        assert_ne!(token(&a), token(&b), "a fresh token per testbed");
        assert!(!token(&a).contains('@'));
        let cloud = a.daemon("cloud").expect("cloud");
        assert!(
            cloud.args.contains(&format!("ue1:{}", token(&a))),
            "{:?}",
            cloud.args
        );
        assert!(!cloud.config.contains("@TOKEN"), "{}", cloud.config);
    }

    #[test]
    fn derive_is_pure_and_prefix_independent() {
        let a = paper();
        assert_eq!(a, paper(), "same input, same output");
        let t = Topology::paper_default()
            .with_prefix("zz-")
            .expect("prefix");
        assert_eq!(
            Plan::derive(&t).expect("derives"),
            a,
            "addresses do not depend on the namespace prefix"
        );
    }

    /// The application's command line, parsed by its own argument types.
    #[derive(clap::Parser)]
    struct AppCli {
        #[command(subcommand)]
        cmd: AppCmd,
    }
    #[derive(clap::Subcommand)]
    enum AppCmd {
        Cloud(app::cloud::CloudArgs),
        RepoServer(app::repo::RepoServerArgs),
        Agent(app::agent::AgentArgs),
    }

    fn app_args(d: &DaemonPlan) -> AppCmd {
        use clap::Parser;
        let argv = std::iter::once("app".to_string()).chain(d.args.iter().cloned());
        AppCli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{}: {e}\n{:?}", d.name, d.args))
            .cmd
    }

    #[test]
    fn generated_configs_parse_with_each_daemons_own_parser() {
        let mut p = paper();
        p.issue_tokens();
        for d in &p.daemons {
            match d.role {
                Role::Cloud => {
                    let AppCmd::Cloud(c) = app_args(d) else {
                        panic!("{d:?}")
                    };
                    assert_eq!(c.listen.port(), CLOUD_SYNC_PORT);
                    assert_eq!(c.metrics.port(), CLOUD_STATS_PORT);
                    assert_eq!(c.account.len(), 1, "{:?}", c.account);
                    let (name, token) = c.account[0].split_once(':').expect("NAME:TOKEN");
                    assert_eq!(name, "ue1");
                    assert_eq!(token.len(), 32, "128-bit token in hex");
                    let app = p.app.as_ref().expect("app plan");
                    assert_eq!(app.accounts[0].2, token);
                }
                Role::Repo => {
                    let AppCmd::RepoServer(c) = app_args(d) else {
                        panic!("{d:?}")
                    };
                    assert_eq!(c.listen.port(), REPO_PORT);
                    assert_eq!(c.publish_snake, 32 << 20);
                    assert!(c.dir.starts_with("@RUN@"), "{:?}", c.dir);
                }
                Role::Agent => {
                    let AppCmd::Agent(c) = app_args(d) else {
                        panic!("{d:?}")
                    };
                    let (edge, cloud) = match d.node.as_str() {
                        "edge1" => ("edge1", "10.71.0.2"),
                        "edge2" => ("edge2", "10.72.0.2"),
                        other => panic!("agent on {other}"),
                    };
                    assert_eq!(d.name, format!("agent-{edge}"));
                    assert_eq!(c.listen.port(), AGENT_PORT);
                    assert_eq!(c.cloud_sync, format!("{cloud}:{CLOUD_SYNC_PORT}"));
                    assert_eq!(c.cloud_repo, format!("http://{cloud}:{REPO_PORT}"));
                    // Its instances are told apart at the cloud by the edge.
                    assert_eq!(c.name, edge);
                }
                Role::Upf => {
                    let c = upf::config::Config::from_toml(&d.config)
                        .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.config));
                    let u = p.upf(&d.name).expect("upf");
                    assert_eq!(c.n3.addrs, vec![u.n3]);
                    assert_eq!(c.n4.addr, u.n4);
                    assert_eq!(
                        c.n4.smf,
                        vec!["10.0.0.1:8805".parse::<SocketAddr>().unwrap()]
                    );
                    assert_eq!(c.n6.ue_pools, vec![u.pool.clone()]);
                    assert_eq!(c.metrics.addr, u.metrics);
                }
                Role::Smf => {
                    let c = smf_lite::Config::parse(&d.config)
                        .unwrap_or_else(|e| panic!("smf: {e}\n{}", d.config));
                    assert_eq!(c.cp_ipv4(), Some(Ipv4Addr::new(10, 0, 0, 1)));
                    assert_eq!(c.api_bind.port(), 7000);
                    assert_eq!(c.timers.heartbeat_ms, SMF_HEARTBEAT_MS);
                    let got: Vec<_> = c
                        .upf
                        .iter()
                        .map(|u| (u.name.as_str(), u.n4.to_string(), u.dnn[0].pool.as_str()))
                        .collect();
                    assert_eq!(
                        got,
                        [
                            ("upf1", "10.0.0.11:8805".to_string(), "10.45.0.0/16"),
                            ("upf2", "10.0.0.12:8805".to_string(), "10.46.0.0/16")
                        ]
                    );
                    let g = c.default_gnb.expect("default gNB");
                    assert_eq!(
                        (g.name.as_str(), g.n2_api.as_str()),
                        ("gnb1", "10.0.0.2:7002")
                    );
                }
                Role::Gnb => {
                    let c = gnb::GnbConfig::from_toml(&d.config, &d.config_file)
                        .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.config));
                    assert_eq!(c.n1_api().to_string(), "10.10.1.1:7001");
                    assert_eq!(c.n2_api().to_string(), "10.0.0.2:7002");
                    assert_eq!(c.n3_addr, Ipv4Addr::new(10, 3, 0, 1));
                    assert_eq!(c.smf_api.to_string(), "10.0.0.1:7000");
                }
                Role::Ue => {
                    let c = ue::UeConfig::from_toml(&d.config, &d.config_file)
                        .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.config));
                    assert_eq!(c.ue_id, "imsi-001010000000001");
                    assert_eq!(c.gnb_n1.to_string(), "10.10.1.1:7001");
                    assert_eq!(c.api, d.api);
                }
            }
        }
    }

    #[test]
    fn multi_ue_topology_maps_ues_to_their_cells() {
        let p = Plan::derive(&Topology::multi_ue()).expect("multi-ue derives");
        assert_eq!(p.gnbs.len(), 2);
        assert_eq!(p.ues.len(), 6);
        let ue4 = p.ue("ue4").expect("ue4");
        assert_eq!(ue4.gnb, "gnb2");
        assert_eq!(p.ue("ue1").expect("ue1").gnb, "gnb1");
        // The SMF's UPF list and pools are the same as in the paper topology.
        assert_eq!(p.upfs, paper().upfs);
    }

    #[test]
    fn errors_say_what_is_missing() {
        let t = Topology::builder("x")
            .host("core")
            .host("upf1")
            .host("edge1")
            .switch("cp")
            .link(
                "cp-core",
                topo::end("core").ifname("cp").addr("10.0.0.1/24"),
                topo::end("cp"),
            )
            .link(
                "cp-upf1",
                topo::end("upf1").ifname("cp").addr("10.0.0.11/24"),
                topo::end("cp"),
            )
            .link(
                "n6a",
                topo::end("upf1").ifname("n6").addr("10.61.0.1/30"),
                topo::end("edge1").ifname("n6").addr("10.61.0.2/30"),
            )
            .build()
            .expect("valid topology");
        let e = Plan::derive(&t).expect_err("no n3 on upf1");
        assert_eq!(
            e,
            PlanError::MissingIface {
                node: "upf1".into(),
                ifname: "n3",
                role: "UPF (N3)"
            }
        );
        assert!(e.to_string().contains("`n3`"), "{e}");
        let t2 = Topology::builder("y").host("upf1").build().expect("valid");
        let e = Plan::derive(&t2).expect_err("no core");
        assert!(e.to_string().contains("core"), "{e}");
    }

    #[test]
    fn supi() {
        assert_eq!(supi_for("ue1"), "imsi-001010000000001");
        assert_eq!(supi_for("ue42"), "imsi-001010000000042");
    }
}
