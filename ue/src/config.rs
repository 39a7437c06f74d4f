//! The UE's configuration file (TOML); see `ue/examples/ue.toml`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The configuration could not be read or is invalid (the gNB's error
/// type: same file format rules, same messages).
pub use ctlhttp::daemon::ConfigError;

/// A session to establish when the daemon starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// PDU session id, 1..=15.
    pub psi: u8,
    /// Data network name.
    #[serde(default = "d_dnn")]
    pub dnn: String,
    /// Ask for this UPF instead of selection by DNN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upf: Option<String>,
}

/// `ue run --config FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UeConfig {
    /// The UE's identity (SUPI), e.g. `imsi-001010000000001`.
    pub ue_id: String,
    /// The interface towards the gNB.
    #[serde(default = "d_radio_iface")]
    pub radio_iface: String,
    /// `IP:PORT` of the gNB's N1 relay.
    #[serde(default = "d_gnb_n1")]
    pub gnb_n1: SocketAddr,
    /// Next hop of every session's default route (default: the N1 relay's
    /// address, i.e. the gNB's radio address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Session `psi` uses routing table `table_base + psi`. Several UEs in
    /// one namespace need distinct bases (at least 16 apart).
    #[serde(default = "d_table_base")]
    pub table_base: u32,
    /// Priority of the `from UE_ADDR lookup TABLE` rules.
    #[serde(default = "d_rule_priority")]
    pub rule_priority: u32,
    /// Where the daemon's HTTP API listens (the CLI talks to it).
    #[serde(default = "d_api")]
    pub api: SocketAddr,
    /// Sessions to establish at start.
    #[serde(default)]
    pub sessions: Vec<SessionSpec>,
}

fn d_dnn() -> String {
    "internet".into()
}
fn d_radio_iface() -> String {
    "radio".into()
}
fn d_gnb_n1() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 10, 1, 1), wire::ctl::GNB_N1_PORT))
}
fn d_table_base() -> u32 {
    1000
}
fn d_rule_priority() -> u32 {
    100
}
/// Default address of the UE daemon's API.
pub const DEFAULT_API: &str = "127.0.0.1:7100";
fn d_api() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 7100))
}

impl UeConfig {
    /// A configuration with every default and this UE id.
    pub fn with_id(ue_id: &str) -> UeConfig {
        UeConfig {
            ue_id: ue_id.into(),
            radio_iface: d_radio_iface(),
            gnb_n1: d_gnb_n1(),
            gateway: None,
            table_base: d_table_base(),
            rule_priority: d_rule_priority(),
            api: d_api(),
            sessions: Vec::new(),
        }
    }

    /// Parses and validates TOML text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<UeConfig, ConfigError> {
        let cfg: UeConfig = ctlhttp::daemon::parse_toml(text, path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<UeConfig, ConfigError> {
        let cfg: UeConfig = ctlhttp::daemon::load_toml(path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The TOML form.
    pub fn to_toml(&self) -> String {
        // A struct of plain fields always serializes.
        toml::to_string(self).unwrap_or_default()
    }

    /// The gateway of the session routes.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        match (self.gateway, self.gnb_n1.ip()) {
            (Some(g), _) => Some(g),
            (None, std::net::IpAddr::V4(a)) => Some(a),
            (None, std::net::IpAddr::V6(_)) => None,
        }
    }

    /// The routing table of session `psi`.
    pub fn table(&self, psi: u8) -> u32 {
        self.table_base + u32::from(psi)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        if self.ue_id.is_empty() || self.ue_id.contains('/') {
            return bad("ue_id", "must be a non-empty SUPI without '/'");
        }
        if self.radio_iface.is_empty() || self.radio_iface.len() >= 16 {
            return bad(
                "radio_iface",
                "must be an interface name of 1 to 15 characters",
            );
        }
        if self.gateway().is_none() {
            return bad("gateway", "needed when gnb_n1 is not an IPv4 address");
        }
        if self.table_base == 0 || self.table_base.checked_add(16).is_none() {
            return bad("table_base", "must be between 1 and 2^32-17");
        }
        let tables = self.table_base..=self.table_base + 15;
        if tables.contains(&253) || tables.contains(&254) || tables.contains(&255) {
            return bad(
                "table_base",
                "tables table_base..=table_base+15 must avoid 253-255",
            );
        }
        if self.rule_priority == 0 || self.rule_priority >= 32766 {
            return bad("rule_priority", "must be between 1 and 32765");
        }
        for s in &self.sessions {
            if !(1..=15).contains(&s.psi) {
                return bad("sessions.psi", "PDU session ids are 1..=15");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = UeConfig::from_toml("ue_id = \"imsi-1\"", "x").expect("valid");
        assert_eq!(c, UeConfig::with_id("imsi-1"));
        assert_eq!(c.gateway(), Some(Ipv4Addr::new(10, 10, 1, 1)));
        assert_eq!(c.table(2), 1002);
        assert_eq!(
            UeConfig::from_toml(&c.to_toml(), "y").expect("round trip"),
            c
        );
        let e = UeConfig::from_toml("ue_id = \"a\"\ngnb_n1 = \"nowhere\"", "f").expect_err("bad");
        assert!(e.to_string().contains("gnb_n1"), "{e}");
        let e = UeConfig::from_toml("ue_id = \"a\"\n[[sessions]]\npsi = 0", "f").expect_err("psi");
        assert!(e.to_string().contains("sessions.psi"), "{e}");
        let e = UeConfig::from_toml("ue_id = \"a\"\ntable_base = 250", "f").expect_err("tables");
        assert!(e.to_string().contains("table_base"), "{e}");
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../examples/ue.toml");
        let c = UeConfig::from_toml(text, "examples/ue.toml").expect("example is valid");
        assert_eq!(c.sessions.len(), 2);
    }
}
