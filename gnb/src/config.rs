//! The gNB's configuration file (TOML). Every field but `name` has a
//! default matching the paper topology; see `gnb/examples/gnb.toml`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use ctlhttp::daemon::ConfigError;
use serde::{Deserialize, Serialize};

use crate::radio::RadioLink;

/// `gnb run --config FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GnbConfig {
    /// The gNB's name, given to the SMF in [`wire::ctl::GnbRef`].
    pub name: String,
    /// Interface towards the UEs.
    #[serde(default = "d_radio_iface")]
    pub radio_iface: String,
    /// The gNB's address on the radio interface (the UEs' gateway); the N1
    /// relay listens here.
    #[serde(default = "d_radio_addr")]
    pub radio_addr: Ipv4Addr,
    /// The gNB's N3 address: GTP-U is sent from and received on
    /// `n3_addr:2152`, and given to the SMF as the downlink F-TEID address.
    #[serde(default = "d_n3_addr")]
    pub n3_addr: Ipv4Addr,
    /// UDP port of GTP-U (2152; only tests change it).
    #[serde(default = "d_gtpu_port")]
    pub gtpu_port: u16,
    /// Control-plane address: the N2-lite API listens here.
    #[serde(default = "d_cp_addr")]
    pub cp_addr: Ipv4Addr,
    /// N2-lite API port.
    #[serde(default = "d_n2_port")]
    pub n2_port: u16,
    /// N1 relay port (on `radio_addr`).
    #[serde(default = "d_n1_port")]
    pub n1_port: u16,
    /// `IP:PORT` of the SMF's HTTP API (target of the N1 relay).
    #[serde(default = "d_smf_api")]
    pub smf_api: SocketAddr,
    /// Name of the TUN device.
    #[serde(default = "d_tun_name")]
    pub tun_name: String,
    /// MTU of the TUN device (1500 minus the outer IPv4, UDP and GTP-U
    /// headers with a PDU Session Container, so G-PDUs fit a 1500-byte N3).
    #[serde(default = "d_tun_mtu")]
    pub tun_mtu: u32,
    /// Routing table that sends traffic arriving on the radio interface
    /// into the TUN.
    #[serde(default = "d_table")]
    pub table: u32,
    /// Priority of the `iif RADIO lookup TABLE` rule.
    #[serde(default = "d_rule_priority")]
    pub rule_priority: u32,
    /// Set ip_forward=1 and rp_filter=0 in the gNB's namespace at start.
    #[serde(default = "d_true")]
    pub sysctl: bool,
    /// What the radio interface is: `"shared"` (a cell switch: a UE is the
    /// address and MAC it attached from), `"point-to-point"` (a veth to
    /// one UE: the UE attached on the link) or `"emulated-ues"` (one peer
    /// speaks for many UEs: benchmarks only, no isolation between them).
    /// See [`crate::radio`].
    #[serde(default)]
    pub radio_link: RadioLink,
    /// Install the radio-side packet filter ([`crate::firewall`], needs
    /// `nft`). `false` leaves the cp and N3 addresses reachable from the
    /// radio side and the uplink unchecked: for tests only.
    #[serde(default = "d_true")]
    pub radio_firewall: bool,
    /// Data-path workers, each with its own TUN queue and N3 socket (1 to
    /// 64; default: `MINEDGE_DP_WORKERS`, else one per CPU up to 4). The
    /// kernel spreads flows over them; one flow stays on one worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

fn d_radio_iface() -> String {
    "radio".into()
}
fn d_radio_addr() -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 1, 1)
}
fn d_n3_addr() -> Ipv4Addr {
    Ipv4Addr::new(10, 3, 0, 1)
}
fn d_gtpu_port() -> u16 {
    wire::gtpu::PORT
}
fn d_cp_addr() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 2)
}
fn d_n2_port() -> u16 {
    wire::ctl::GNB_N2_PORT
}
fn d_n1_port() -> u16 {
    wire::ctl::GNB_N1_PORT
}
fn d_smf_api() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), wire::ctl::SMF_PORT))
}
fn d_tun_name() -> String {
    "gtpu0".into()
}
fn d_tun_mtu() -> u32 {
    1500 - 20 - 8 - 16
}
fn d_table() -> u32 {
    100
}
fn d_rule_priority() -> u32 {
    100
}
fn d_true() -> bool {
    true
}

impl GnbConfig {
    /// A configuration with every default and this name.
    pub fn with_name(name: &str) -> GnbConfig {
        GnbConfig {
            name: name.into(),
            radio_iface: d_radio_iface(),
            radio_addr: d_radio_addr(),
            n3_addr: d_n3_addr(),
            gtpu_port: d_gtpu_port(),
            cp_addr: d_cp_addr(),
            n2_port: d_n2_port(),
            n1_port: d_n1_port(),
            smf_api: d_smf_api(),
            tun_name: d_tun_name(),
            tun_mtu: d_tun_mtu(),
            table: d_table(),
            rule_priority: d_rule_priority(),
            sysctl: true,
            radio_link: RadioLink::default(),
            radio_firewall: true,
            workers: None,
        }
    }

    /// Parses and validates TOML text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<GnbConfig, ConfigError> {
        let cfg: GnbConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<GnbConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        GnbConfig::from_toml(&text, &p)
    }

    /// The TOML form (for generated configurations).
    pub fn to_toml(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        if self.name.is_empty() {
            return bad("name", "must not be empty");
        }
        for (field, v) in [
            ("radio_iface", &self.radio_iface),
            ("tun_name", &self.tun_name),
        ] {
            // Also what makes them safe to quote in the nftables rules.
            if let Err(e) = topo::names::ifname(v) {
                return Err(ConfigError::Invalid {
                    field,
                    reason: e.to_string(),
                });
            }
        }
        if self.workers.is_some_and(|n| !(1..=64).contains(&n)) {
            return bad("workers", "must be between 1 and 64");
        }
        if self.tun_mtu < 576 || self.tun_mtu > 65535 {
            return bad("tun_mtu", "must be between 576 and 65535");
        }
        if self.table == 0 || (253..=255).contains(&self.table) {
            return bad("table", "must not be 0 or a reserved table (253-255)");
        }
        if self.rule_priority == 0 || self.rule_priority >= 32766 {
            return bad("rule_priority", "must be between 1 and 32765");
        }
        if self.gtpu_port == 0 || self.n1_port == 0 || self.n2_port == 0 {
            return bad("gtpu_port/n1_port/n2_port", "ports must not be 0");
        }
        Ok(())
    }

    /// Where the N2-lite API listens, as given to the SMF.
    pub fn n2_api(&self) -> SocketAddr {
        SocketAddr::from((self.cp_addr, self.n2_port))
    }

    /// Where the N1 relay listens.
    pub fn n1_api(&self) -> SocketAddr {
        SocketAddr::from((self.radio_addr, self.n1_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in() {
        let c = GnbConfig::from_toml("name = \"gnb1\"", "x").expect("valid");
        assert_eq!(c, GnbConfig::with_name("gnb1"));
        assert_eq!(c.n2_api().to_string(), "10.0.0.2:7002");
        let back = GnbConfig::from_toml(&c.to_toml(), "y").expect("round trip");
        assert_eq!(back, c);
    }

    #[test]
    fn errors_name_the_field() {
        let e = GnbConfig::from_toml("name = \"g\"\nn3_addr = \"10.3.0\"", "f.toml")
            .expect_err("bad address");
        assert!(e.to_string().contains("n3_addr"), "{e}");
        let e = GnbConfig::from_toml("name = \"g\"\ntabel = 5", "f.toml").expect_err("typo");
        assert!(e.to_string().contains("tabel"), "{e}");
        let e = GnbConfig::from_toml("radio_iface = \"r\"", "f.toml").expect_err("no name");
        assert!(e.to_string().contains("name"), "{e}");
        let e = GnbConfig::from_toml("name = \"g\"\nworkers = 0", "f.toml").expect_err("workers");
        assert!(e.to_string().contains("`workers`"), "{e}");
        let c = GnbConfig::from_toml("name = \"g\"\nworkers = 2", "f.toml").expect("valid");
        assert_eq!(c.workers, Some(2));
        let e = GnbConfig::from_toml("name = \"g\"\ntable = 254", "f.toml").expect_err("table");
        assert!(e.to_string().contains("`table`"), "{e}");
        let e = GnbConfig::from_toml("name = \"g\"\ntun_name = \"a\\\"b\"", "f.toml")
            .expect_err("quote in an interface name");
        assert!(e.to_string().contains("tun_name"), "{e}");
        let c = GnbConfig::from_toml("name = \"g\"\nradio_link = \"point-to-point\"", "f.toml")
            .expect("valid");
        assert_eq!(c.radio_link, RadioLink::PointToPoint);
        let e = GnbConfig::from_toml("name = \"g\"\nradio_link = \"p2p\"", "f.toml")
            .expect_err("unknown kind");
        assert!(
            e.to_string().contains("radio_link") || e.to_string().contains("p2p"),
            "{e}"
        );
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../examples/gnb.toml");
        GnbConfig::from_toml(text, "examples/gnb.toml").expect("example is valid");
    }
}
