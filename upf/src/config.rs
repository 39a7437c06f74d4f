//! The UPF's configuration file (TOML). Every field has a default, unknown
//! fields are refused, and errors name the field.
//!
//! ```toml
//! node_id = "10.0.4.2"            # PFCP Node ID: IPv4, IPv6 or FQDN
//! log_level = "info"              # tracing filter; RUST_LOG overrides
//!
//! [n4]
//! addr = "0.0.0.0:8805"           # PFCP server
//! heartbeat_interval_ms = 5000    # 0 disables heartbeats towards the SMF
//! heartbeat_retries = 3
//! t1_ms = 3000                    # Session Report Request resend timer
//! n1 = 3                          # ... and resends
//! smf = ["10.0.0.1:8805"]         # set up the association with these SMFs at
//!                                 # start (default: none, wait for the SMF)
//!
//! [n3]
//! addrs = ["10.0.3.2"]            # GTP-U addresses (port 2152); the first
//!                                 # goes into F-TEIDs the UPF chooses
//! port = 2152
//!
//! [n6]
//! tun = "upf0"                    # TUN device towards the data network
//! mtu = 1500
//! ue_pools = ["10.60.0.0/16"]     # routed into the TUN at start
//! protected_nets = ["10.0.0.0/24"] # never delivered to from a UE (default:
//!                                 # the subnets of the N4 and N3 interfaces)
//!
//! network_instances = ["internet"]
//!
//! [limits]
//! max_sessions = 10000
//! max_pdrs_per_session = 64
//! max_rules_per_session = 64      # FARs, QERs, URRs (each) per session
//! max_sessions_per_peer = 10000   # sessions of one SMF (Node ID)
//! max_buffer_packets = 1024       # per session
//! max_buffer_bytes = 2097152      # per session
//!
//! [metrics]
//! addr = "127.0.0.1:9100"         # HTTP: /metrics (Prometheus), /stats (JSON)
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

use crate::protect::{LocalAddr, Net, Protected};
use crate::session::Limits;

/// Errors loading a configuration: the daemons' one configuration error.
pub use ctlhttp::daemon::ConfigError;

/// Whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PFCP Node ID (IPv4, IPv6 or FQDN).
    pub node_id: String,
    /// Log filter.
    pub log_level: String,
    /// N4 (PFCP).
    pub n4: N4Config,
    /// N3 (GTP-U).
    pub n3: N3Config,
    /// N6 (TUN).
    pub n6: N6Config,
    /// Network instances served.
    pub network_instances: Vec<String>,
    /// Limits.
    pub limits: LimitsConfig,
    /// Metrics endpoint.
    pub metrics: MetricsConfig,
}

/// `[n4]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct N4Config {
    /// PFCP listen address.
    pub addr: SocketAddr,
    /// Heartbeat Request interval towards associated SMFs; 0 disables.
    pub heartbeat_interval_ms: u64,
    /// Unanswered heartbeats before the association is dropped.
    pub heartbeat_retries: u32,
    /// T1: wait for a response to a Session Report Request before resending.
    pub t1_ms: u64,
    /// N1: resends of an unanswered Session Report Request.
    pub n1: u32,
    /// SMFs (PFCP addresses) this UPF sets up an association with at start
    /// (UPF-initiated, TS 29.244 §6.2.6.2), retried until one answers. An
    /// SMF that receives it while it believes it is associated learns
    /// that the UPF restarted, even within the second its Recovery Time
    /// Stamp cannot tell apart. Empty: wait for the SMF.
    pub smf: Vec<SocketAddr>,
}

/// `[n3]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct N3Config {
    /// Local GTP-U addresses.
    pub addrs: Vec<Ipv4Addr>,
    /// GTP-U port.
    pub port: u16,
    /// Error Indications (answers to G-PDUs for unknown TEIDs) per second
    /// and peer; as many may go out at once. 0: none are sent.
    pub error_indications_per_s: f64,
    /// Data-path workers (1 to 64), each with its own N6 TUN queue, an N3
    /// socket per address and a downlink source port; absent:
    /// `MINEDGE_DP_WORKERS`, else one per CPU up to 4. The kernel spreads
    /// flows over them; one flow stays on one worker.
    pub workers: Option<usize>,
}

/// `[n6]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct N6Config {
    /// TUN device name.
    pub tun: String,
    /// TUN MTU.
    pub mtu: u32,
    /// UE address pools (CIDR) routed into the TUN.
    pub ue_pools: Vec<String>,
    /// Networks (CIDR) an uplink packet is never delivered to, besides the
    /// UPF's own addresses (always). Absent: the subnets of the UPF's
    /// interfaces that carry its N4 address (or Node ID) and N3 addresses.
    pub protected_nets: Option<Vec<String>>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sessions.
    pub max_sessions: usize,
    /// PDRs per session.
    pub max_pdrs_per_session: usize,
    /// FARs, QERs and URRs per session (each).
    pub max_rules_per_session: usize,
    /// Sessions one PFCP peer (Node ID) may have.
    pub max_sessions_per_peer: usize,
    /// Buffered packets per session.
    pub max_buffer_packets: usize,
    /// Buffered bytes per session.
    pub max_buffer_bytes: usize,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// HTTP listen address; port 0 picks one.
    pub addr: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: "127.0.0.1".into(),
            log_level: "info".into(),
            n4: N4Config::default(),
            n3: N3Config::default(),
            n6: N6Config::default(),
            network_instances: vec!["internet".into()],
            limits: LimitsConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for N4Config {
    fn default() -> Self {
        N4Config {
            addr: SocketAddr::from(([0, 0, 0, 0], 8805)),
            heartbeat_interval_ms: 5000,
            heartbeat_retries: 3,
            t1_ms: 3000,
            n1: 3,
            smf: Vec::new(),
        }
    }
}

impl Default for N3Config {
    fn default() -> Self {
        N3Config {
            addrs: vec![Ipv4Addr::LOCALHOST],
            port: crate::gtp::PORT,
            error_indications_per_s: 10.0,
            workers: None,
        }
    }
}

impl Default for N6Config {
    fn default() -> Self {
        N6Config {
            tun: "upf0".into(),
            mtu: 1500,
            ue_pools: vec!["10.60.0.0/16".into()],
            protected_nets: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_sessions: l.max_sessions,
            max_pdrs_per_session: l.max_pdrs_per_session,
            max_rules_per_session: l.max_rules_per_session,
            max_sessions_per_peer: l.max_sessions,
            max_buffer_packets: l.max_buffer_packets,
            max_buffer_bytes: l.max_buffer_bytes,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

/// PFCP Node ID forms (TS 29.244 §8.2.38).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeId {
    /// IPv4 address.
    V4(Ipv4Addr),
    /// IPv6 address.
    V6(std::net::Ipv6Addr),
    /// FQDN.
    Fqdn(String),
}

impl NodeId {
    /// Parse: an IP literal, else an FQDN (labels of letters, digits, `-`).
    pub fn parse(s: &str) -> Option<NodeId> {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Some(NodeId::V4(a)),
            Ok(IpAddr::V6(a)) => Some(NodeId::V6(a)),
            Err(_) => {
                let ok = !s.is_empty()
                    && s.len() <= 253
                    && s.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                ok.then(|| NodeId::Fqdn(s.to_string()))
            }
        }
    }
}

/// Parse `a.b.c.d/n`.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let len: u8 = l.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((a.parse().ok()?, len))
}

impl Config {
    /// Parse and validate TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let c: Config = ctlhttp::daemon::parse_toml(text, "<string>")?;
        c.validate()?;
        Ok(c)
    }

    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let c: Config = ctlhttp::daemon::load_toml(path)?;
        c.validate()?;
        Ok(c)
    }

    /// Check values that types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inv = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if NodeId::parse(&self.node_id).is_none() {
            return inv(
                "node_id",
                format!("{:?} is neither an IP address nor an FQDN", self.node_id),
            );
        }
        if self.n3.addrs.is_empty() {
            return inv("n3.addrs", "at least one address is needed".into());
        }
        if let Some(n) = self.n3.workers.filter(|n| !(1..=64).contains(n)) {
            return inv("n3.workers", format!("{n}: must be between 1 and 64"));
        }
        if self.n6.tun.is_empty() || self.n6.tun.len() > 15 {
            return inv("n6.tun", format!("{:?}: 1 to 15 characters", self.n6.tun));
        }
        if !(576..=65535).contains(&self.n6.mtu) {
            return inv("n6.mtu", format!("{} not in 576..=65535", self.n6.mtu));
        }
        for p in &self.n6.ue_pools {
            if parse_cidr(p).is_none() {
                return inv(
                    "n6.ue_pools",
                    format!("{p:?} is not an IPv4 CIDR (a.b.c.d/n)"),
                );
            }
        }
        let pools: Vec<Net> = self
            .n6
            .ue_pools
            .iter()
            .filter_map(|p| parse_cidr(p))
            .map(|(a, l)| Net::new(a, l))
            .collect();
        for p in self.n6.protected_nets.iter().flatten() {
            let Some((a, l)) = parse_cidr(p) else {
                return inv(
                    "n6.protected_nets",
                    format!("{p:?} is not an IPv4 CIDR (a.b.c.d/n)"),
                );
            };
            let net = Net::new(a, l);
            if let Some(pool) = pools.iter().find(|pool| pool.overlaps(&net)) {
                return inv(
                    "n6.protected_nets",
                    format!("{p:?} overlaps the UE pool {pool}: UEs could not reach each other"),
                );
            }
        }
        let ei = self.n3.error_indications_per_s;
        if !(ei.is_finite() && ei >= 0.0) {
            return inv("n3.error_indications_per_s", format!("{ei}: a rate >= 0"));
        }
        if self.limits.max_sessions == 0 {
            return inv("limits.max_sessions", "must be at least 1".into());
        }
        for (field, v) in [
            (
                "limits.max_pdrs_per_session",
                self.limits.max_pdrs_per_session,
            ),
            (
                "limits.max_rules_per_session",
                self.limits.max_rules_per_session,
            ),
            (
                "limits.max_sessions_per_peer",
                self.limits.max_sessions_per_peer,
            ),
        ] {
            if v == 0 {
                return inv(field, "must be at least 1".into());
            }
        }
        Ok(())
    }

    /// The destinations an uplink packet is never delivered to, for a UPF
    /// whose namespace has the addresses `local` (see [`crate::protect`]).
    pub fn protected(&self, local: &[LocalAddr]) -> Protected {
        let mut core: Vec<Ipv4Addr> = self.n3.addrs.clone();
        match self.n4.addr.ip() {
            IpAddr::V4(a) if !a.is_unspecified() => core.push(a),
            _ => {
                if let Some(NodeId::V4(a)) = NodeId::parse(&self.node_id) {
                    core.push(a);
                }
            }
        }
        let configured: Option<Vec<Net>> = self.n6.protected_nets.as_ref().map(|v| {
            v.iter()
                .filter_map(|p| parse_cidr(p))
                .map(|(a, l)| Net::new(a, l))
                .collect()
        });
        Protected::build(local, &core, configured.as_deref())
    }

    /// The session limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_sessions: self.limits.max_sessions,
            max_pdrs_per_session: self.limits.max_pdrs_per_session,
            max_rules_per_session: self.limits.max_rules_per_session,
            max_buffer_packets: self.limits.max_buffer_packets,
            max_buffer_bytes: self.limits.max_buffer_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::from_toml("").expect("valid"), Config::default());
    }

    #[test]
    fn full_file() {
        let c = Config::from_toml(
            r#"
            node_id = "upf1.example.org"
            log_level = "debug"
            network_instances = ["internet", "ims"]
            [n4]
            addr = "10.0.4.2:8805"
            heartbeat_interval_ms = 0
            [n3]
            addrs = ["10.0.3.2", "10.0.3.3"]
            [n6]
            tun = "n6x"
            ue_pools = ["10.60.0.0/16", "10.61.0.0/24"]
            [limits]
            max_sessions = 5
            [metrics]
            addr = "127.0.0.1:0"
            "#,
        )
        .expect("valid");
        assert_eq!(
            NodeId::parse(&c.node_id),
            Some(NodeId::Fqdn("upf1.example.org".into()))
        );
        assert_eq!(c.n3.addrs.len(), 2);
        assert_eq!(c.n3.port, 2152, "default kept");
        assert_eq!(c.limits().max_sessions, 5);
        assert_eq!(c.limits().max_pdrs_per_session, 64, "default kept");
        assert_eq!(c.n4.heartbeat_interval_ms, 0);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml("[n6]\nue_pools = [\"10.60.0.0\"]").expect_err("bad pool");
        assert!(e.to_string().contains("n6.ue_pools"), "{e}");
        let e = Config::from_toml("[n3]\naddrs = [\"nope\"]").expect_err("bad addr");
        assert!(e.to_string().contains("addrs"), "{e}");
        let e = Config::from_toml("[n6]\ntunn = \"x\"").expect_err("unknown field");
        assert!(e.to_string().contains("tunn"), "{e}");
        let e = Config::from_toml("node_id = \"bad name!\"").expect_err("bad node id");
        assert!(e.to_string().contains("node_id"), "{e}");
        let e = Config::from_toml("[limits]\nmax_sessions = 0").expect_err("zero");
        assert!(e.to_string().contains("limits.max_sessions"), "{e}");
        let e = Config::from_toml("[n6]\ntun = \"a-very-long-tun-name\"").expect_err("long");
        assert!(e.to_string().contains("n6.tun"), "{e}");
        let e = Config::from_toml("[n3]\nworkers = 0").expect_err("no worker");
        assert!(e.to_string().contains("n3.workers"), "{e}");
        let c = Config::from_toml("[n3]\nworkers = 2").expect("valid");
        assert_eq!(c.n3.workers, Some(2));
    }

    #[test]
    fn example_file_is_valid() {
        let c = Config::from_toml(include_str!("../upf.example.toml")).expect("valid");
        assert_eq!(c.n3.addrs, vec![Ipv4Addr::new(10, 3, 0, 11)]);
        assert_eq!(c.limits, Config::default().limits);
    }

    #[test]
    fn node_id_forms() {
        assert_eq!(
            NodeId::parse("10.0.0.1"),
            Some(NodeId::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert!(matches!(NodeId::parse("2001:db8::1"), Some(NodeId::V6(_))));
        assert!(matches!(NodeId::parse("smf.core"), Some(NodeId::Fqdn(_))));
        assert_eq!(NodeId::parse(""), None);
        assert_eq!(NodeId::parse("a..b"), None);
    }
}
