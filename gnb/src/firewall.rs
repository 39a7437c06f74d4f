//! The gNB's packet filter: nftables rules in the gNB's namespace that keep
//! the radio side to what DESIGN.md section 3 allows (issue 13 items 1, 4).
//!
//! The daemon installs one table, `inet minedge_gnb`, at start (replacing a
//! table a killed gNB left behind) and deletes it at stop:
//!
//! - input from the radio interface: only TCP to the N1 relay
//!   (`radio_addr:n1_port`); everything else is dropped, so nothing on the
//!   gNB's cp or N3 addresses (N2-lite, GTP-U, metrics) nor on the radio
//!   address answers the radio side, not even with a reset;
//! - forwarding from the radio interface: only into the TUN, and only
//!   packets whose source is a session address of the UE that sends them:
//!   the pair (source MAC, source address) must be in the set `ue_mac_addr`
//!   (a shared cell: the MAC of the UE's attachment, see [`crate::radio`]),
//!   or the address in `ue_addr` (a point-to-point link, or a tunnel set up
//!   for a UE that never attached through this gNB's N1 relay). Anything
//!   else is dropped and counted (`ul_not_own_session`): one UE sending
//!   with another UE's session address never enters that UE's tunnel.
//!   Nothing from the radio side is ever routed onto the cp or n3 switches;
//! - from the TUN (decapsulated downlink): only out of the radio interface;
//!   never delivered to the gNB itself.
//!
//! With it go two sysctls on the radio interface (`arp_ignore=1`,
//! `arp_announce=2`): the gNB answers ARP on the radio link only for its
//! radio address.
//!
//! It needs the `nft` program (Debian package `nftables`) and a kernel with
//! nf_tables: `nft` installs and removes the table and reads its counters;
//! the per-tunnel set elements change over netlink ([`crate::nftset`]). Without `nft` the daemon refuses to start and says so; the
//! configuration's `radio_firewall = false` runs it unprotected (tests of
//! other parts that cannot install nftables), with a warning.

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::nftset::{key_mac_v4, key_v4, SetSocket};
use crate::radio::Mac;

/// The table's name (one gNB per namespace).
pub const TABLE: &str = "minedge_gnb";

/// Counters of the table, as `/metrics` shows them (name, help).
pub const COUNTERS: [(&str, &str); 4] = [
    (
        "radio_in_dropped",
        "packets from the radio side to the gNB itself dropped (not N1)",
    ),
    (
        "ul_not_own_session",
        "uplink packets dropped: the source is not a session address of the sending UE",
    ),
    (
        "radio_fwd_dropped",
        "packets from the radio side to anywhere but the TUN dropped",
    ),
    (
        "tun_dropped",
        "packets from the TUN not going out of the radio interface dropped",
    ),
];

/// The filter could not be set.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` is not installed.
    #[error(
        "`nft` was not found: the gNB needs nftables (Debian package `nftables`) to keep the \
         radio side off its cp and N3 addresses and UEs out of each other's tunnels; install it, \
         or set `radio_firewall = false` in the gNB's configuration to run without that protection"
    )]
    NftMissing,
    /// `nft` could not be run.
    #[error("running nft: {0}")]
    Io(#[from] std::io::Error),
    /// `nft` refused the commands.
    #[error("nft refused `{commands}`: {stderr}")]
    Refused {
        /// The first line of what was sent.
        commands: String,
        /// What it said.
        stderr: String,
    },
}

/// What the filter is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallSpec {
    /// The radio interface.
    pub radio_iface: String,
    /// The gNB's radio address (the N1 relay).
    pub radio_addr: Ipv4Addr,
    /// The N1 relay's port.
    pub n1_port: u16,
    /// The TUN.
    pub tun: String,
}

impl FirewallSpec {
    /// The whole table (interface names are checked by the configuration:
    /// letters, digits, `-`, `_`, `.`).
    pub fn ruleset(&self) -> String {
        let (r, t, ra, n1) = (&self.radio_iface, &self.tun, self.radio_addr, self.n1_port);
        let counters: String = COUNTERS
            .iter()
            .map(|(c, _)| format!("  counter {c} {{ }}\n"))
            .collect();
        format!(
            "table inet {TABLE} {{\n\
             {counters}\
             \x20 set ue_mac_addr {{ type ether_addr . ipv4_addr; }}\n\
             \x20 set ue_addr {{ type ipv4_addr; }}\n\
             \x20 chain input {{\n\
             \x20   type filter hook input priority filter; policy accept;\n\
             \x20   iifname \"{r}\" ip daddr {ra} tcp dport {n1} accept\n\
             \x20   iifname \"{r}\" counter name radio_in_dropped drop\n\
             \x20   iifname \"{t}\" counter name tun_dropped drop\n\
             \x20 }}\n\
             \x20 chain forward {{\n\
             \x20   type filter hook forward priority filter; policy accept;\n\
             \x20   iifname \"{r}\" oifname \"{t}\" ip saddr @ue_addr accept\n\
             \x20   iifname \"{r}\" oifname \"{t}\" ether saddr . ip saddr @ue_mac_addr accept\n\
             \x20   iifname \"{r}\" oifname \"{t}\" counter name ul_not_own_session drop\n\
             \x20   iifname \"{r}\" counter name radio_fwd_dropped drop\n\
             \x20   iifname \"{t}\" oifname \"{r}\" accept\n\
             \x20   iifname \"{t}\" counter name tun_dropped drop\n\
             \x20 }}\n\
             }}\n"
        )
    }
}

/// The installed filter and the uplink elements it holds.
#[derive(Debug)]
pub struct Firewall {
    /// Session address -> the MAC it is allowed from (None: any on the
    /// link); the lock also serialises the netlink calls.
    uplink: Mutex<HashMap<Ipv4Addr, Option<Mac>>>,
    /// Set elements change over netlink, not with a process per tunnel.
    sets: SetSocket,
}

/// The set and key of the element that lets `addr` in from `mac`.
fn element(addr: Ipv4Addr, mac: Option<Mac>) -> (&'static str, Vec<u8>) {
    match mac {
        Some(m) => ("ue_mac_addr", key_mac_v4(m, addr)),
        None => ("ue_addr", key_v4(addr)),
    }
}

/// Runs `nft -f -` with `commands` (one transaction: all or nothing).
fn nft(commands: &str) -> Result<String, FirewallError> {
    let mut child = match Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FirewallError::NftMissing)
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(commands.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(FirewallError::Refused {
            commands: commands.lines().next().unwrap_or_default().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Firewall {
    /// Installs the table (replacing a leftover one) in the calling thread's
    /// namespace.
    pub fn install(spec: &FirewallSpec) -> Result<Firewall, FirewallError> {
        // Declaring the table first makes the delete succeed when none is there.
        nft(&format!(
            "table inet {TABLE} {{ }}\ndelete table inet {TABLE}\n{}",
            spec.ruleset()
        ))?;
        Ok(Firewall {
            uplink: Mutex::new(HashMap::new()),
            sets: SetSocket::open()?,
        })
    }

    /// Lets `addr`'s uplink in from `mac` (None: from any MAC on the link),
    /// replacing what was allowed for it before.
    pub fn allow_uplink(&self, addr: Ipv4Addr, mac: Option<Mac>) -> Result<(), FirewallError> {
        // A poisoned lock only means a panic elsewhere; the map stays usable.
        let mut m = self.uplink.lock().unwrap_or_else(|e| e.into_inner());
        let old = m.get(&addr).copied();
        if old == Some(mac) {
            return Ok(());
        }
        if let Some(o) = old {
            self.delete(addr, o)?;
            m.remove(&addr);
        }
        let (set, key) = element(addr, mac);
        self.sets.change(true, TABLE, set, &key)?;
        m.insert(addr, mac);
        Ok(())
    }

    /// Stops `addr`'s uplink (its last tunnel is gone); what it was
    /// allowed from (`Some(None)`: any MAC; `None`: it was not allowed).
    pub fn forget_uplink(&self, addr: Ipv4Addr) -> Result<Option<Option<Mac>>, FirewallError> {
        let mut m = self.uplink.lock().unwrap_or_else(|e| e.into_inner());
        match m.remove(&addr) {
            Some(mac) => self.delete(addr, mac).map(|()| Some(mac)),
            None => Ok(None),
        }
    }

    /// Deletes an element; one that is gone already is fine.
    fn delete(&self, addr: Ipv4Addr, mac: Option<Mac>) -> Result<(), FirewallError> {
        let (set, key) = element(addr, mac);
        match self.sets.change(false, TABLE, set, &key) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map_err(FirewallError::from),
        }
    }

    /// Packets counted by each of [`COUNTERS`].
    pub fn counters(&self) -> Result<Vec<(&'static str, u64)>, FirewallError> {
        let text = nft_list_counters()?;
        Ok(parse_counters(&text))
    }

    /// Deletes the table.
    pub fn remove(&self) -> Result<(), FirewallError> {
        nft(&format!("delete table inet {TABLE}\n")).map(|_| ())
    }
}

fn nft_list_counters() -> Result<String, FirewallError> {
    let out = Command::new("nft")
        .args(["-j", "list", "counters", "table", "inet", TABLE])
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FirewallError::NftMissing,
            _ => e.into(),
        })?;
    if !out.status.success() {
        return Err(FirewallError::Refused {
            commands: format!("list counters table inet {TABLE}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The packet counts of [`COUNTERS`] in `nft -j list counters` output.
fn parse_counters(json: &str) -> Vec<(&'static str, u64)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    COUNTERS
        .iter()
        .map(|(name, _)| {
            let n = items
                .iter()
                .find(|i| i["counter"]["name"] == *name)
                .and_then(|i| i["counter"]["packets"].as_u64())
                .unwrap_or(0);
            (*name, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FirewallSpec {
        FirewallSpec {
            radio_iface: "radio".into(),
            radio_addr: Ipv4Addr::new(10, 10, 1, 1),
            n1_port: 7001,
            tun: "gtpu0".into(),
        }
    }

    #[test]
    fn ruleset_allows_n1_and_own_session_uplink_only() {
        let r = spec().ruleset();
        for line in [
            "iifname \"radio\" ip daddr 10.10.1.1 tcp dport 7001 accept",
            "iifname \"radio\" counter name radio_in_dropped drop",
            "iifname \"gtpu0\" counter name tun_dropped drop",
            "iifname \"radio\" oifname \"gtpu0\" ether saddr . ip saddr @ue_mac_addr accept",
            "iifname \"radio\" oifname \"gtpu0\" counter name ul_not_own_session drop",
            "iifname \"radio\" counter name radio_fwd_dropped drop",
            "iifname \"gtpu0\" oifname \"radio\" accept",
            "counter ul_not_own_session { }",
        ] {
            assert!(
                r.lines().any(|l| l.trim() == line),
                "missing `{line}` in\n{r}"
            );
        }
        // Every rule that accepts from the radio side is one of these three.
        let accepts: Vec<&str> = r
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("iifname \"radio\"") && l.ends_with("accept"))
            .collect();
        assert_eq!(accepts.len(), 3, "{accepts:?}");
    }

    #[test]
    fn elements_and_counters() {
        let mac = Mac([2, 0, 0, 0, 0, 5]);
        let a = Ipv4Addr::new(10, 45, 0, 2);
        assert_eq!(
            element(a, Some(mac)),
            ("ue_mac_addr", vec![2, 0, 0, 0, 0, 5, 0, 0, 10, 45, 0, 2])
        );
        assert_eq!(element(a, None), ("ue_addr", vec![10, 45, 0, 2]));
        // As nft 1.0.6 prints it.
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"counter": {"family": "inet", "name": "ul_not_own_session", "table": "minedge_gnb", "handle": 2, "packets": 7, "bytes": 588}},
            {"counter": {"family": "inet", "name": "radio_in_dropped", "table": "minedge_gnb", "handle": 1, "packets": 3, "bytes": 180}}]}"#;
        assert_eq!(
            parse_counters(json),
            vec![
                ("radio_in_dropped", 3),
                ("ul_not_own_session", 7),
                ("radio_fwd_dropped", 0),
                ("tun_dropped", 0)
            ]
        );
    }
}
