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
//! | `edge*` | data network of the UPF whose `n6` it faces; an agent when linked to `cloud`; a migration edge of the SMF when it also has `cp` | `cp` (the agent, for the SMF) |
//!
//! A UPF serves one DNN named after its edge (`upf1` -> `edge1`), with the UE
//! pool that the edge routes back to the UPF's N6 address (paper topology:
//! `edge1` routes 10.45.0.0/16 via upf1, so upf1's pool is 10.45.0.0/16).
//!
//! Modules by job: `nodes` (reading the topology), `files` (each daemon's
//! configuration file), `app` (the application's daemons and accounts).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use topo::Topology;

mod app;
mod files;
mod nodes;
#[cfg(test)]
mod tests;

pub use app::{
    AppPlan, EdgePlan, AGENT_PORT, APP_PACKAGE_SIZE, CLOUD_STATS_PORT, CLOUD_SYNC_PORT, COPY_PORT,
    REPO_PORT,
};
pub use nodes::{iface_v4, supi_for};

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
    /// What its radio interface is: a veth to one UE, or a port on a cell
    /// switch that several UEs share (how its N1 relay tells UEs apart).
    #[serde(default)]
    pub radio_link: gnb::radio::RadioLink,
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

/// The CSM migration manager's timers (`[migration]` in smf.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationTimers {
    /// How long a migration's source stays copilot after the switch.
    pub countdown: Duration,
    /// The destination's session, pull and instance start, together.
    pub setup_timeout: Duration,
    /// From the destination's stream being ready to the UE's switch.
    pub switch_timeout: Duration,
}

impl Default for MigrationTimers {
    fn default() -> Self {
        MigrationTimers {
            countdown: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
            switch_timeout: Duration::from_secs(15),
        }
    }
}

/// What the plan takes besides the topology.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOpts {
    /// The SMF's migration timers.
    pub migration: MigrationTimers,
    /// Every gNB's radio link, instead of what the topology says (a veth is
    /// point-to-point, a switch shared): `EmulatedUes` for benchmarks that
    /// speak for many UEs from one namespace.
    pub radio_link: Option<gnb::radio::RadioLink>,
    /// The session MBR the SMF puts into every QER, kbit/s each way (0:
    /// none), instead of the SMF's default (1 Gbit/s): `bench dataplane`
    /// measures the data path, not the policy.
    pub session_mbr_kbps: Option<u64>,
}

impl Plan {
    /// Derives every daemon's configuration from the topology, with the
    /// default options. Pure: no I/O.
    pub fn derive(t: &Topology) -> Result<Plan, PlanError> {
        Self::derive_with(t, &PlanOpts::default())
    }

    /// Derives every daemon's configuration from the topology. Pure: no I/O.
    pub fn derive_with(t: &Topology, opts: &PlanOpts) -> Result<Plan, PlanError> {
        let smf_node = nodes::nodes_with_prefix(t, "core")
            .find(|n| *n == "core")
            .ok_or(PlanError::MissingNode {
                what: "node `core` (the SMF)",
            })?
            .to_string();
        let (smf_cp, _) = nodes::need(t, &smf_node, "cp", "SMF (N4 and API)")?;
        let smf_api = SocketAddr::from((smf_cp, wire::ctl::SMF_PORT));
        let upfs = nodes::upfs(t)?;
        let mut gnbs = nodes::gnbs(t)?;
        if let Some(link) = opts.radio_link {
            gnbs.iter_mut().for_each(|g| g.radio_link = link);
        }
        let ues = nodes::ues(t, &gnbs)?;

        // The application's daemons come last, but the SMF needs its edges.
        let mut app_daemons = Vec::new();
        let app = app::app_plan(t, &ues, &upfs, &mut app_daemons);
        let edges = app.as_ref().map(|a| a.edges.as_slice()).unwrap_or_default();
        let mut daemons = files::upf_daemons(t, &upfs, smf_cp);
        daemons.push(files::smf_daemon(
            &smf_node, smf_cp, smf_api, &upfs, &gnbs, edges, opts,
        ));
        daemons.extend(files::gnb_daemons(&gnbs, smf_api));
        daemons.extend(files::ue_daemons(&ues, &gnbs));
        daemons.extend(app_daemons);
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
    /// accounts and in the logic server's arguments; and the edge agents
    /// theirs, in their arguments and the SMF's `[[edge]]`.
    pub fn issue_tokens(&mut self) {
        let Some(app) = self.app.as_mut() else {
            return;
        };
        if app.agent_token == app::AGENT_TOKEN_PLACEHOLDER {
            let fresh = app::new_token();
            for d in self.daemons.iter_mut() {
                for a in d.args.iter_mut() {
                    *a = a.replace(app::AGENT_TOKEN_PLACEHOLDER, &fresh);
                }
                d.config = d.config.replace(app::AGENT_TOKEN_PLACEHOLDER, &fresh);
            }
            app.agent_token = fresh;
        }
        for (_, account, token) in app.accounts.iter_mut() {
            let placeholder = app::token_placeholder(account);
            if *token != placeholder {
                continue;
            }
            let fresh = app::new_token();
            for d in self.daemons.iter_mut().filter(|d| d.role == Role::Cloud) {
                for a in d.args.iter_mut() {
                    *a = a.replace(&placeholder, &fresh);
                }
                d.config = d.config.replace(&placeholder, &fresh);
            }
            *token = fresh;
        }
    }

    /// The edge agents' API token, once issued (`None` without the application).
    pub fn agent_token(&self) -> Option<&str> {
        self.app.as_ref().map(|a| a.agent_token.as_str())
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
