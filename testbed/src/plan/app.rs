//! The application under test (issue 6): logic server and repository in
//! `cloud`, a migration agent in every edge linked to the cloud, and the
//! accounts of the UEs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use topo::Topology;

use super::nodes::{iface_v4, nodes_with_prefix};
use super::{DaemonPlan, Role, UePlan, UpfPlan};

/// Cloud logic server: state sync (TCP).
pub const CLOUD_SYNC_PORT: u16 = 7300;
/// Cloud logic server: metrics and stats (HTTP).
pub const CLOUD_STATS_PORT: u16 = 7301;
/// Cloud application repository (HTTP).
pub const REPO_PORT: u16 = 7310;
/// Edge migration agent (HTTP).
pub const AGENT_PORT: u16 = 7400;
/// Edge agent's state-copy listener (TCP, on the inter-edge link).
pub const COPY_PORT: u16 = 7410;
/// Size of the application package the cloud repository publishes.
pub const APP_PACKAGE_SIZE: &str = "32MiB";

/// The application under test, when the topology has a `cloud`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPlan {
    /// The cloud's node.
    pub cloud: String,
    /// Logic server metrics/stats (inside the cloud's namespace).
    pub cloud_stats: SocketAddr,
    /// Accounts: (UE node, account, token).
    pub accounts: Vec<(String, String, String)>,
    /// Edges with an agent.
    pub edges: Vec<EdgePlan>,
    /// The edge agents' API token (`Authorization: Bearer`), one per
    /// testbed; the SMF and the testbed's own calls send it.
    #[serde(default)]
    pub agent_token: String,
}

/// An edge with its migration agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgePlan {
    /// Node.
    pub name: String,
    /// The agent's API (inside the edge's namespace).
    pub agent_api: SocketAddr,
    /// The edge's N6 address (UEs reach its instances there).
    pub n6: Option<Ipv4Addr>,
    /// The cloud's address on this edge's WAN link.
    pub cloud_addr: Ipv4Addr,
    /// The UPF whose N6 faces this edge (sessions to the edge go through it).
    #[serde(default)]
    pub upf: Option<String>,
    /// The agent's API as the SMF reaches it (the edge's `cp` address), if
    /// the edge is on the control-plane network: the edge is then one of
    /// the SMF's migration edges (`[[edge]]` in smf.toml) when a UPF serves it.
    #[serde(default)]
    pub smf_agent: Option<SocketAddr>,
    /// The agent's state-copy listener (`--copy-listen`), on the edge's
    /// side of its link to another edge (the state-copy baselines cross
    /// that link); none without such a link.
    #[serde(default)]
    pub copy: Option<SocketAddr>,
}

impl EdgePlan {
    /// Whether the SMF's migration manager knows this edge.
    pub fn migratable(&self) -> bool {
        self.upf.is_some() && self.n6.is_some() && self.smf_agent.is_some()
    }
}

/// Stands for the agents' token until `Plan::issue_tokens`.
pub(super) const AGENT_TOKEN_PLACEHOLDER: &str = "@AGENT-TOKEN@";

pub(super) fn token_placeholder(account: &str) -> String {
    format!("@TOKEN-{account}@")
}

/// A token nobody guesses: 128 bits from the kernel, hex.
pub(super) fn new_token() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The cloud's IPv4 address on a link between `edge` and `cloud`.
fn cloud_addr_towards(t: &Topology, cloud: &str, edge: &str) -> Option<Ipv4Addr> {
    t.links.iter().find_map(|l| {
        let (c, o) = if l.a.node == cloud {
            (&l.a, &l.b)
        } else {
            (&l.b, &l.a)
        };
        (c.node == cloud && o.node == edge).then(|| {
            c.addrs.iter().find_map(|a| match a.addr {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
        })?
    })
}

/// `edge`'s IPv4 address on its link to another edge (`edge*`).
fn inter_edge_addr(t: &Topology, edge: &str) -> Option<Ipv4Addr> {
    t.links.iter().find_map(|l| {
        let (e, o) = if l.a.node == edge {
            (&l.a, &l.b)
        } else {
            (&l.b, &l.a)
        };
        (e.node == edge && o.node != edge && o.node.starts_with("edge")).then(|| {
            e.addrs.iter().find_map(|a| match a.addr {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
        })?
    })
}

/// Where `edge`'s agent listens: its cp address, where the SMF and the
/// testbed reach it, never its N6 address (a UE reaches the edge there);
/// without a cp link, loopback (only the testbed, inside the edge).
fn agent_listen(t: &Topology, edge: &str) -> SocketAddr {
    let host = iface_v4(t, edge, "cp").map_or(Ipv4Addr::LOCALHOST, |(a, _)| a);
    SocketAddr::from((host, AGENT_PORT))
}

/// The application's daemons: logic server and repository in `cloud`, an
/// agent in every edge that has a WAN link to the cloud. Their accounts
/// (one per UE) get placeholder tokens (see `Plan::issue_tokens`).
pub(super) fn app_plan(
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
        let Some(cloud_addr) = cloud_addr_towards(t, &cloud, e) else {
            continue;
        };
        let upf = upfs.iter().find(|u| u.edge == e);
        edges.push(EdgePlan {
            name: e.to_string(),
            agent_api: agent_listen(t, e),
            n6: upf.map(|u| u.edge_n6),
            cloud_addr,
            upf: upf.map(|u| u.name.clone()),
            smf_agent: iface_v4(t, e, "cp").map(|(a, _)| SocketAddr::from((a, AGENT_PORT))),
            copy: inter_edge_addr(t, e).map(|a| SocketAddr::from((a, COPY_PORT))),
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
    // The cloud's sync and repository serve every edge over that edge's
    // WAN link (one address each, and one --listen): any address of the
    // cloud, which has nothing but WAN links (each UPF protects the WAN
    // subnets, so no UE reaches them). Its metrics only on loopback: only
    // the testbed reads them, from inside the cloud.
    let any = |port: u16| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).to_string();
    let cloud_stats = SocketAddr::from((Ipv4Addr::LOCALHOST, CLOUD_STATS_PORT));
    let mut cloud_args = vec![
        "cloud".to_string(),
        "--listen".into(),
        any(CLOUD_SYNC_PORT),
        "--metrics".into(),
        cloud_stats.to_string(),
    ];
    for (_, account, token) in &accounts {
        cloud_args.push("--account".into());
        cloud_args.push(format!("{account}:{token}"));
    }
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
        let mut args = vec![
            "agent".into(),
            "--listen".into(),
            e.agent_api.to_string(),
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
            "--token".into(),
            AGENT_TOKEN_PLACEHOLDER.into(),
        ];
        // Instances take input on the edge's N6 address only: where the
        // UE reaches them, and nowhere on the cp, WAN or inter-edge side.
        if let Some(n6) = e.n6 {
            args.push("--input-host".into());
            args.push(n6.to_string());
        }
        // The state-copy baselines' receiver, on the inter-edge link.
        if let Some(c) = e.copy {
            args.push("--copy-listen".into());
            args.push(c.to_string());
        }
        push(
            &format!("agent-{}", e.name),
            Role::Agent,
            &e.name,
            e.agent_api,
            args,
        );
    }
    Some(AppPlan {
        cloud,
        cloud_stats,
        accounts,
        edges,
        agent_token: AGENT_TOKEN_PLACEHOLDER.into(),
    })
}
