//! The SMF's configuration: one TOML file, every field with a default except
//! the UPF list's names and addresses. Errors name the field.
//!
//! ```toml
//! node_id = "10.100.0.1"          # PFCP Node ID: IPv4 address or FQDN
//! n4_bind = "0.0.0.0:8805"        # PFCP socket
//! cp_addr = "10.100.0.1"          # IPv4 put into the CP F-SEID (default: n4_bind's or node_id's)
//! api_bind = "0.0.0.0:7000"       # HTTP API
//! qfi = 9
//! [mbr]
//! ul_kbps = 1000000
//! dl_kbps = 1000000
//! [timers]
//! t1_ms = 500
//! n1 = 3
//! heartbeat_ms = 5000
//! [[upf]]
//! name = "upf1"
//! n4 = "10.100.0.11:8805"
//! [[upf.dnn]]
//! name = "edge1"
//! pool = "10.60.0.0/16"
//! network_instance = "internet"
//! [migration]                     # CSM's migration manager (all optional)
//! countdown_ms = 10000            # delayed release of the old source
//! setup_timeout_ms = 10000        # session + pull + instance start
//! switch_timeout_ms = 15000       # stream_ready -> the UE's switch report
//! history = 1000                  # finished migrations kept for GET /migrations
//! latency_probe_ms = 1000         # how often the edges' latency is measured
//! [[edge]]                        # one table per edge (none: no migrations)
//! name = "edge1"
//! upf = "upf1"                    # must be a [[upf]] serving the edge's DNN
//! dnn = "edge1"                   # default: the edge's name
//! agent = "10.100.0.21:7100"      # the edge agent's HTTP API
//! app_server = "10.60.0.2"        # where UEs reach the edge's instances
//! token = "..."                   # the agent's API token (Authorization: Bearer), if it has one
//! ```

pub use crate::migration::EdgeConfig;
use crate::migration::MigrationConfig;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or type error (the message names the field).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value that parses but makes no sense.
    #[error("field `{field}`: {msg}")]
    Invalid { field: String, msg: String },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// PFCP Node ID: an IPv4 address or an FQDN.
    pub node_id: String,
    /// Local address of the PFCP (N4) socket.
    pub n4_bind: SocketAddr,
    /// IPv4 address advertised in the CP F-SEID; defaults to `n4_bind`'s
    /// address, or `node_id` if that is an address.
    pub cp_addr: Option<Ipv4Addr>,
    /// Local address of the HTTP API.
    pub api_bind: SocketAddr,
    /// QFI of every session's default QoS flow.
    pub qfi: u8,
    /// Session MBR put into the QER.
    pub mbr: Mbr,
    /// Usage report period in seconds put into the URR (0 = no periodic report).
    pub usage_report_period_s: u32,
    /// PFCP timers.
    pub timers: Timers,
    /// gNB used when a request names none (`smf session create` without --gnb).
    pub default_gnb: Option<wire::ctl::GnbRef>,
    /// Every gNB this SMF serves (`[[gnb]]`; `default_gnb` need not be
    /// repeated). After its start the SMF audits each of these and the
    /// default one: tunnels that no session of its new life accounts for
    /// are deleted. A gNB missing here keeps the tunnels of a dead SMF
    /// life until it restarts.
    pub gnb: Vec<wire::ctl::GnbRef>,
    /// The UPFs this SMF controls.
    pub upf: Vec<UpfConfig>,
    /// The migration manager's timers.
    pub migration: MigrationTimers,
    /// The edges CSM migrates between (`[[edge]]`); none: migration
    /// requests are refused.
    pub edge: Vec<EdgeConfig>,
}

/// `[migration]`: the migration manager's timers and limits, in ms.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationTimers {
    /// How long the old source stays copilot after a switch.
    pub countdown_ms: u64,
    /// How long the destination's session, pull and instance start may
    /// take together.
    pub setup_timeout_ms: u64,
    /// How long after `stream_ready` the UE may take to report its switch.
    pub switch_timeout_ms: u64,
    /// Finished migrations kept for `GET /migrations`.
    pub history: usize,
    /// Interval of the latency measure from the core to each edge's agent.
    pub latency_probe_ms: u64,
}

impl Default for MigrationTimers {
    fn default() -> Self {
        let m = MigrationConfig::default();
        MigrationTimers {
            countdown_ms: m.countdown_ms,
            setup_timeout_ms: m.setup_timeout_ms,
            switch_timeout_ms: m.switch_timeout_ms,
            history: m.history,
            latency_probe_ms: 1000,
        }
    }
}

impl MigrationTimers {
    /// The manager's configuration.
    pub fn manager(&self) -> MigrationConfig {
        MigrationConfig {
            countdown_ms: self.countdown_ms,
            setup_timeout_ms: self.setup_timeout_ms,
            switch_timeout_ms: self.switch_timeout_ms,
            history: self.history,
        }
    }
    pub fn latency_probe(&self) -> Duration {
        Duration::from_millis(self.latency_probe_ms)
    }
}

/// Maximum bit rate of a session, kbit/s.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Mbr {
    pub ul_kbps: u64,
    pub dl_kbps: u64,
}

/// TS 29.244 T1/N1 and the heartbeat interval.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    /// Retransmission timer T1, milliseconds.
    pub t1_ms: u64,
    /// Retransmissions N1 before giving up.
    pub n1: u32,
    /// Interval of our Heartbeat Requests (and of association retries), ms.
    pub heartbeat_ms: u64,
}

/// One UPF.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpfConfig {
    /// Name used in requests (`upf`), in SessionInfo and the API.
    pub name: String,
    /// The UPF's PFCP address.
    pub n4: SocketAddr,
    /// Data networks it serves, each with its UE address pool.
    #[serde(default)]
    pub dnn: Vec<DnnConfig>,
}

/// A DNN served by a UPF.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnnConfig {
    /// Data network name.
    pub name: String,
    /// UE address pool, `A.B.C.D/len`.
    pub pool: String,
    /// Network Instance put into PDIs and Forwarding Parameters; default: the DNN name.
    #[serde(default)]
    pub network_instance: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: "127.0.0.1".into(),
            n4_bind: SocketAddr::from(([0, 0, 0, 0], wire::pfcp::PFCP_PORT)),
            cp_addr: None,
            api_bind: SocketAddr::from(([0, 0, 0, 0], wire::ctl::SMF_PORT)),
            qfi: 9,
            mbr: Mbr::default(),
            usage_report_period_s: 0,
            timers: Timers::default(),
            default_gnb: None,
            gnb: Vec::new(),
            upf: Vec::new(),
            migration: MigrationTimers::default(),
            edge: Vec::new(),
        }
    }
}

impl Default for Mbr {
    fn default() -> Self {
        Mbr {
            ul_kbps: 1_000_000,
            dl_kbps: 1_000_000,
        }
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1_ms: 500,
            n1: 3,
            heartbeat_ms: 5000,
        }
    }
}

impl Timers {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}

/// An IPv4 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl std::str::FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not A.B.C.D/LEN"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .map_err(|_| format!("`{l}` is not a prefix length"))?;
        if len > 32 {
            return Err(format!("prefix length {len} > 32"));
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if u32::from(addr) & !mask != 0 {
            return Err(format!("`{s}` has host bits set"));
        }
        Ok(Ipv4Net { addr, len })
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    /// The PFCP Node ID.
    pub fn pfcp_node_id(&self) -> wire::pfcp::NodeId {
        match self.node_id.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => wire::pfcp::NodeId::Ipv4(a),
            Ok(IpAddr::V6(a)) => wire::pfcp::NodeId::Ipv6(a),
            Err(_) => wire::pfcp::NodeId::fqdn(&self.node_id),
        }
    }

    /// The address for the CP F-SEID.
    pub fn cp_ipv4(&self) -> Option<Ipv4Addr> {
        if let Some(a) = self.cp_addr {
            return Some(a);
        }
        match self.n4_bind.ip() {
            IpAddr::V4(a) if !a.is_unspecified() => return Some(a),
            _ => {}
        }
        self.node_id.parse().ok()
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.is_empty() {
            return Err(invalid("node_id", "must not be empty"));
        }
        if self.cp_ipv4().is_none() {
            return Err(invalid(
                "cp_addr",
                "needed when n4_bind is 0.0.0.0 and node_id is not an IPv4 address",
            ));
        }
        if !(1..=63).contains(&self.qfi) {
            return Err(invalid("qfi", "must be 1..=63"));
        }
        if self.timers.t1_ms == 0 {
            return Err(invalid("timers.t1_ms", "must be > 0"));
        }
        if self.timers.heartbeat_ms == 0 {
            return Err(invalid("timers.heartbeat_ms", "must be > 0"));
        }
        self.validate_gnbs()?;
        let mut names = std::collections::HashSet::new();
        let mut pools: Vec<(String, Ipv4Net)> = Vec::new();
        for (i, u) in self.upf.iter().enumerate() {
            if u.name.is_empty() {
                return Err(invalid(format!("upf[{i}].name"), "must not be empty"));
            }
            if !names.insert(u.name.clone()) {
                return Err(invalid(
                    format!("upf[{i}].name"),
                    format!("`{}` appears twice", u.name),
                ));
            }
            if self.upf[..i].iter().any(|o| o.n4 == u.n4) {
                return Err(invalid(
                    format!("upf[{i}].n4"),
                    format!("{} is used by another UPF", u.n4),
                ));
            }
            let mut dnns = std::collections::HashSet::new();
            for (j, d) in u.dnn.iter().enumerate() {
                let f = format!("upf[{i}].dnn[{j}]");
                if d.name.is_empty() {
                    return Err(invalid(format!("{f}.name"), "must not be empty"));
                }
                if !dnns.insert(d.name.clone()) {
                    return Err(invalid(
                        format!("{f}.name"),
                        "DNN listed twice for this UPF",
                    ));
                }
                let net: Ipv4Net = d
                    .pool
                    .parse()
                    .map_err(|m| invalid(format!("{f}.pool"), m))?;
                if net.len > 30 && net.len != 32 {
                    // /31 has no usable host once network/broadcast are skipped.
                    return Err(invalid(
                        format!("{f}.pool"),
                        "prefix too long (use /32 or <= /30)",
                    ));
                }
                for (other, o) in &pools {
                    if overlaps(net, *o) {
                        return Err(invalid(
                            format!("{f}.pool"),
                            format!("{net} overlaps {o} of {other}"),
                        ));
                    }
                }
                pools.push((format!("{}/{}", u.name, d.name), net));
            }
        }
        self.validate_migration()
    }

    /// `[[gnb]]` and `default_gnb`: names given, API addresses that parse,
    /// one address per name.
    fn validate_gnbs(&self) -> Result<(), ConfigError> {
        let listed = self
            .gnb
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("gnb[{i}]"), g));
        let all: Vec<_> = self
            .default_gnb
            .iter()
            .map(|g| ("default_gnb".to_string(), g))
            .chain(listed)
            .collect();
        for (i, (f, g)) in all.iter().enumerate() {
            if g.name.is_empty() {
                return Err(invalid(format!("{f}.name"), "must not be empty"));
            }
            if g.n2_api.parse::<SocketAddr>().is_err() {
                return Err(invalid(
                    format!("{f}.n2_api"),
                    format!("`{}` is not IP:PORT", g.n2_api),
                ));
            }
            if let Some((of, o)) = all[..i].iter().find(|(_, o)| o.name == g.name) {
                if o.n2_api != g.n2_api {
                    return Err(invalid(
                        format!("{f}.n2_api"),
                        format!(
                            "gNB `{}` is at {} in {of}, {} here",
                            g.name, o.n2_api, g.n2_api
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every gNB the configuration names (default first), each once.
    pub fn known_gnbs(&self) -> Vec<wire::ctl::GnbRef> {
        let mut out: Vec<wire::ctl::GnbRef> = Vec::new();
        for g in self.default_gnb.iter().chain(&self.gnb) {
            if !out.iter().any(|o| o.name == g.name) {
                out.push(g.clone());
            }
        }
        out
    }

    /// `[migration]` and `[[edge]]`: timers that can fire, edges with
    /// unique names, anchored at a configured UPF that serves their DNN.
    fn validate_migration(&self) -> Result<(), ConfigError> {
        let m = &self.migration;
        for (f, v) in [
            ("setup_timeout_ms", m.setup_timeout_ms),
            ("switch_timeout_ms", m.switch_timeout_ms),
            ("latency_probe_ms", m.latency_probe_ms),
        ] {
            if v == 0 {
                return Err(invalid(format!("migration.{f}"), "must be > 0"));
            }
        }
        for (i, e) in self.edge.iter().enumerate() {
            let f = format!("edge[{i}]");
            if e.name.is_empty() {
                return Err(invalid(format!("{f}.name"), "must not be empty"));
            }
            if self.edge[..i].iter().any(|o| o.name == e.name) {
                return Err(invalid(
                    format!("{f}.name"),
                    format!("`{}` appears twice", e.name),
                ));
            }
            let Some(upf) = self.upf.iter().find(|u| u.name == e.upf) else {
                return Err(invalid(
                    format!("{f}.upf"),
                    format!("no [[upf]] named `{}`", e.upf),
                ));
            };
            if !upf.dnn.iter().any(|d| d.name == e.dnn()) {
                return Err(invalid(
                    if e.dnn.is_some() {
                        format!("{f}.dnn")
                    } else {
                        format!("{f}.name")
                    },
                    format!(
                        "UPF `{}` does not serve DNN `{}` (an edge's DNN defaults to its name)",
                        e.upf,
                        e.dnn()
                    ),
                ));
            }
            if e.agent.ip().is_unspecified() || e.agent.port() == 0 {
                return Err(invalid(
                    format!("{f}.agent"),
                    format!("{} is not an address to call", e.agent),
                ));
            }
            if e.app_server.is_unspecified() {
                return Err(invalid(
                    format!("{f}.app_server"),
                    "must be a specific address",
                ));
            }
            if let Some(t) = &e.token {
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        format!("{f}.token"),
                        "must be printable ASCII without spaces, and not empty",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    let len = a.len.min(b.len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a.addr) & mask == u32::from(b.addr) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses() {
        let text = include_str!("../examples/smf.toml");
        let c = Config::parse(text).expect("example config is valid");
        assert_eq!(c.upf.len(), 2);
        assert_eq!(c.upf[0].dnn[0].name, "edge1");
        assert_eq!(c.edge.len(), 2);
        assert_eq!(c.edge[1].dnn(), "edge2");
    }

    #[test]
    #[allow(clippy::unwrap_used)] // a test: a panic is the failure report
    fn defaults_and_errors_name_the_field() {
        let c = Config::parse("").expect("empty config is valid");
        assert_eq!(c.timers.n1, 3);
        assert_eq!(c.qfi, 9);
        let e = Config::parse("qfi = 0").unwrap_err().to_string();
        assert!(e.contains("qfi"), "{e}");
        let e = Config::parse("bogus = 1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = Config::parse(
            "[[upf]]\nname='a'\nn4='127.0.0.1:1'\n[[upf.dnn]]\nname='x'\npool='10.0.0.1/24'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("upf[0].dnn[0].pool"), "{e}");
        let e = Config::parse(
            "[[upf]]\nname='a'\nn4='127.0.0.1:1'\n[[upf.dnn]]\nname='x'\npool='10.0.0.0/24'\n\
             [[upf]]\nname='b'\nn4='127.0.0.1:2'\n[[upf.dnn]]\nname='y'\npool='10.0.0.128/25'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("upf[1].dnn[0].pool") && e.contains("overlaps"),
            "{e}"
        );
        let e = Config::parse("[timers]\nt1 = 5").unwrap_err().to_string();
        assert!(e.contains("t1"), "{e}");
    }

    const UPFS: &str =
        "[[upf]]\nname='upf1'\nn4='127.0.0.1:1'\n[[upf.dnn]]\nname='edge1'\npool='10.60.0.0/24'\n\
         [[upf]]\nname='upf2'\nn4='127.0.0.1:2'\n[[upf.dnn]]\nname='edge2'\npool='10.61.0.0/24'\n";

    fn edge(name: &str, upf: &str, extra: &str) -> String {
        format!(
            "[[edge]]\nname='{name}'\nupf='{upf}'\nagent='127.0.0.1:7100'\napp_server='10.60.0.2'\n{extra}"
        )
    }

    #[test]
    fn edges_and_migration_timers() {
        let c = Config::parse(UPFS).expect("no edges is valid");
        assert!(c.edge.is_empty());
        assert_eq!(c.migration.countdown_ms, 10_000);
        assert_eq!(c.migration.latency_probe_ms, 1000);
        let text = format!(
            "{UPFS}[migration]\ncountdown_ms = 300\nsetup_timeout_ms = 2000\n\
             switch_timeout_ms = 3000\n{}{}",
            edge("edge1", "upf1", ""),
            edge("e2", "upf2", "dnn='edge2'\ntoken='t0k3n'\n")
        );
        let c = Config::parse(&text).expect("valid");
        assert_eq!(c.edge.len(), 2);
        assert_eq!(c.edge[1].dnn(), "edge2");
        assert_eq!(
            (c.edge[0].token.as_deref(), c.edge[1].token.as_deref()),
            (None, Some("t0k3n"))
        );
        let m = c.migration.manager();
        assert_eq!(
            (m.countdown_ms, m.setup_timeout_ms, m.switch_timeout_ms),
            (300, 2000, 3000)
        );
        // Round trip through check-config's output.
        let again = toml::to_string_pretty(&c).expect("serializes");
        assert_eq!(Config::parse(&again).expect("reparses"), c);
    }

    #[test]
    fn edge_and_migration_errors_name_the_field() {
        let cases: [(String, &str); 11] = [
            (edge("edge1", "upf9", ""), "edge[0].upf"),
            (format!("{}{}", edge("edge1", "upf1", ""), edge("edge1", "upf1", "")), "edge[1].name"),
            (edge("", "upf1", ""), "edge[0].name"),
            (edge("edgeX", "upf1", ""), "edge[0].name"),
            (edge("e", "upf1", "dnn='edge2'\n"), "edge[0].dnn"),
            (edge("edge1", "upf1", "token=''\n"), "edge[0].token"),
            (edge("edge1", "upf1", "token='a b'\n"), "edge[0].token"),
            (edge("edge1", "upf1", "colour='red'\n"), "colour"),
            (
                "[[edge]]\nname='edge1'\nupf='upf1'\nagent='0.0.0.0:7100'\napp_server='10.60.0.2'\n"
                    .into(),
                "edge[0].agent",
            ),
            ("[migration]\nsetup_timeout_ms = 0\n".into(), "migration.setup_timeout_ms"),
            ("[migration]\ncountdown = '10s'\n".into(), "countdown"),
        ];
        for (extra, field) in cases {
            let e = Config::parse(&format!("{UPFS}{extra}"))
                .expect_err(field)
                .to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let e = Config::parse(&format!("{UPFS}[[edge]]\nname='edge1'\nupf='upf1'\n"))
            .expect_err("agent missing")
            .to_string();
        assert!(e.contains("agent"), "{e}");
    }

    #[test]
    fn gnbs_listed_once_each_with_their_address() {
        let dflt = "[default_gnb]\nname='gnb1'\nn2_api='10.0.0.2:7002'\n";
        let g = |n: &str, a: &str| format!("[[gnb]]\nname='{n}'\nn2_api='{a}'\n");
        let c = Config::parse(&format!(
            "{dflt}{}{}",
            g("gnb2", "10.0.0.3:7002"),
            g("gnb1", "10.0.0.2:7002")
        ))
        .expect("valid");
        let names: Vec<_> = c.known_gnbs().into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["gnb1", "gnb2"], "default first, each once");
        for (text, field, why) in [
            (g("gnb2", "gnb2.local:7002"), "gnb[0].n2_api", "IP:PORT"),
            (g("", "10.0.0.3:7002"), "gnb[0].name", "empty"),
            (
                format!("{dflt}{}", g("gnb1", "10.0.0.9:7002")),
                "gnb[0].n2_api",
                "10.0.0.2:7002",
            ),
            (
                "[default_gnb]\nname='gnb1'\nn2_api='x'\n".into(),
                "default_gnb.n2_api",
                "`x`",
            ),
        ] {
            let e = Config::parse(&text).expect_err(field).to_string();
            assert!(e.contains(field) && e.contains(why), "{field}: {e}");
        }
    }
}
