//! The three paths of `testbed bench dataplane` in the same namespaces:
//!
//! - (a) `tunnel`: a real PDU session of the first UE (the UE daemon asks
//!   over N1; the gNB and UPF carry it as GTP-U on N3);
//! - (b) `kernel`: a second UE address, [`KERNEL_UE`], that the kernels of
//!   the UE, gNB, UPF and edge namespaces route as plain IP over the same
//!   veths (radio, N3, N6);
//! - (c) `kernel_tunnel`: a third UE address, [`VXLAN_UE`], that the gNB
//!   and the UPF carry through a kernel VXLAN tunnel on N3 (UDP port
//!   [`VXLAN_PORT`]: the daemons hold 2152 on their N3 addresses).
//!
//! Everything added (addresses, rules, routes, tables, the VXLAN devices,
//! the accept rule in the gNB's packet filter, the PDU session) is
//! recorded as it is made and removed again by [`Paths`]' drop, also when
//! the run fails half-way.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use wire::ctl::SessionInfo;

use crate::bed::BedState;
use crate::plan::{GnbPlan, UePlan, UpfPlan};

/// The UE's address on the kernel-routed path (b).
pub const KERNEL_UE: Ipv4Addr = Ipv4Addr::new(10, 250, 1, 2);
/// The UE's address on the kernel-tunnel path (c).
pub const VXLAN_UE: Ipv4Addr = Ipv4Addr::new(10, 250, 2, 2);
/// The VXLAN device's address in the gNB (the UPF's is the next one).
const VXLAN_GNB: Ipv4Addr = Ipv4Addr::new(10, 250, 3, 1);
const VXLAN_UPF: Ipv4Addr = Ipv4Addr::new(10, 250, 3, 2);
/// VXLAN's UDP port (IANA): the daemons stay up, holding 2152 on N3.
pub const VXLAN_PORT: u16 = 4789;
const VXLAN_DEV: &str = "mebench0";
const VXLAN_VNI: &str = "4242";
/// Routing tables (UE: one per path, so that a path MTU learnt on one is
/// not used by the other; gNB: uplink of each path).
const TABLE_KERNEL: &str = "2150";
const TABLE_VXLAN: &str = "2151";
/// The PDU session id the bench uses.
const PSI: u8 = 14;
/// Comment on the gNB filter's accept rule (found again by it).
const NFT_COMMENT: &str = "testbed bench dataplane";

/// The three paths, set up; torn down on drop.
pub struct Paths {
    /// The session's address (path a).
    pub session: Ipv4Addr,
    /// Namespaces.
    pub ue_ns: String,
    /// The edge behind the UPF.
    pub edge_ns: String,
    /// The edge's N6 address (where the sinks listen).
    pub edge_addr: Ipv4Addr,
    undo: Vec<Undo>,
    /// What happened during teardown that did not work.
    pub teardown_errors: Vec<String>,
}

enum Undo {
    Ip { ns: String, args: Vec<String> },
    NftRule { ns: String },
    Session { ns: String, url: String },
}

/// Runs `ip -n NS ARGS`; its stderr in the error.
pub(crate) fn ip(ns: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .map_err(|e| format!("running `ip`: {e} (iproute2 is needed)"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`ip -n {ns} {}`: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn nft(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .output()
        .map_err(|e| format!("running `nft` in {ns}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`nft {}` in {ns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Paths {
    /// Sets the three paths up between the first UE and the edge of `upf`.
    pub fn setup(
        st: &BedState,
        ue: &UePlan,
        gnb: &GnbPlan,
        upf: &UpfPlan,
    ) -> Result<Paths, String> {
        let mut p = Paths {
            session: Ipv4Addr::UNSPECIFIED,
            ue_ns: st.ns(&ue.name),
            edge_ns: st.ns(&upf.edge),
            edge_addr: upf.edge_n6,
            undo: Vec::new(),
            teardown_errors: Vec::new(),
        };
        // On an error, `p`'s drop removes what was made so far.
        p.session(ue, upf)?;
        let n3 = N3 {
            gnb_ns: st.ns(&gnb.name),
            upf_ns: st.ns(&upf.name),
            gnb,
            upf,
        };
        p.kernel_routes(&n3)?;
        p.vxlan(&n3)?;
        Ok(p)
    }

    /// `ip` in `ns`, with the command that undoes it.
    fn ip_undo(&mut self, ns: &str, args: &[&str], undo: &[&str]) -> Result<(), String> {
        ip(ns, args)?;
        self.undo.push(Undo::Ip {
            ns: ns.to_string(),
            args: undo.iter().map(|s| s.to_string()).collect(),
        });
        Ok(())
    }

    /// An `ip ... add ...` whose undo is the same with `del`.
    fn ip_add(&mut self, ns: &str, args: &[&str]) -> Result<(), String> {
        let del: Vec<&str> = args
            .iter()
            .map(|a| if *a == "add" { "del" } else { a })
            .collect();
        self.ip_undo(ns, args, &del)
    }

    /// Path (a): a PDU session through the UE daemon.
    fn session(&mut self, ue: &UePlan, upf: &UpfPlan) -> Result<(), String> {
        let base = format!("http://{}/sessions", ue.api);
        let body = serde_json::json!({"psi": PSI, "dnn": upf.dnn, "upf": upf.name}).to_string();
        let (code, text) = crate::bed::http_in(
            &self.ue_ns,
            "POST",
            &base,
            Some(body),
            Duration::from_secs(10),
        )?;
        if code != 201 {
            return Err(format!(
                "PDU session {PSI} of {} via {}: HTTP {code}: {}",
                ue.name,
                upf.name,
                text.trim()
            ));
        }
        let info: SessionInfo =
            serde_json::from_str(&text).map_err(|e| format!("session answer {text}: {e}"))?;
        self.session = info.ue_addr;
        self.undo.push(Undo::Session {
            ns: self.ue_ns.clone(),
            url: format!("{base}/{PSI}"),
        });
        Ok(())
    }

    /// The UE's side of paths (b) and (c), the plain routes of (b) and the
    /// edge's routes back for both.
    fn kernel_routes(&mut self, n: &N3<'_>) -> Result<(), String> {
        let (gnb_ns, upf_ns, gnb, upf) = (n.gnb_ns.as_str(), n.upf_ns.as_str(), n.gnb, n.upf);
        let ue_ns = self.ue_ns.clone();
        let gw = gnb.radio.to_string();
        for (addr, table, pref) in [
            (KERNEL_UE, TABLE_KERNEL, "90"),
            (VXLAN_UE, TABLE_VXLAN, "91"),
        ] {
            let a = format!("{addr}/32");
            self.ip_add(&ue_ns, &["addr", "add", &a, "dev", "radio"])?;
            self.ip_add(
                &ue_ns,
                &[
                    "route", "add", "default", "via", &gw, "dev", "radio", "table", table,
                ],
            )?;
            self.ip_add(
                &ue_ns,
                &["rule", "add", "from", &a, "lookup", table, "pref", pref],
            )?;
            // Downlink in the gNB: out of the radio interface.
            self.ip_add(gnb_ns, &["route", "add", &a, "dev", "radio"])?;
            let n6 = upf.n6.to_string();
            let edge_ns = self.edge_ns.clone();
            self.ip_add(&edge_ns, &["route", "add", &a, "via", &n6])?;
        }
        // (b): the gNB sends the uplink to the UPF's N3 address (before
        // its own rule that sends the radio side into its TUN); the UPF
        // sends the downlink to the gNB's N3 address.
        let hop = Hop {
            ue: KERNEL_UE,
            up_via: upf.n3,
            up_dev: "n3",
            down_via: gnb.n3,
            table: TABLE_KERNEL,
            pref: "90",
        };
        self.n3_hop(gnb_ns, upf_ns, &hop)?;
        self.allow_in_gnb_filter(gnb_ns)
    }

    /// The gNB's packet filter lets the radio side forward only into its
    /// TUN: an accept rule at the head of its forward chain for the two
    /// kernel paths' UE addresses (the filter is then traversed on every
    /// path alike).
    fn allow_in_gnb_filter(&mut self, gnb_ns: &str) -> Result<(), String> {
        let table = gnb::firewall::TABLE;
        if nft(gnb_ns, &["list", "table", "inet", table]).is_err() {
            return Ok(()); // radio_firewall = false: nothing to let through
        }
        let rule = format!(
            "iifname \"radio\" ip saddr {{ {KERNEL_UE}, {VXLAN_UE} }} accept comment \"{NFT_COMMENT}\""
        );
        nft(gnb_ns, &["insert", "rule", "inet", table, "forward", &rule])?;
        self.undo.push(Undo::NftRule {
            ns: gnb_ns.to_string(),
        });
        Ok(())
    }

    /// Path (c): VXLAN between the gNB's and the UPF's N3 addresses.
    fn vxlan(&mut self, n: &N3<'_>) -> Result<(), String> {
        let (gnb_ns, upf_ns, gnb, upf) = (n.gnb_ns.as_str(), n.upf_ns.as_str(), n.gnb, n.upf);
        let port = VXLAN_PORT.to_string();
        for (ns, local, remote, addr) in [
            (gnb_ns, gnb.n3, upf.n3, VXLAN_GNB),
            (upf_ns, upf.n3, gnb.n3, VXLAN_UPF),
        ] {
            let (l, r) = (local.to_string(), remote.to_string());
            self.ip_undo(
                ns,
                &[
                    "link", "add", VXLAN_DEV, "type", "vxlan", "id", VXLAN_VNI, "local", &l,
                    "remote", &r, "dstport", &port, "dev", "n3",
                ],
                &["link", "del", VXLAN_DEV],
            )
            .map_err(|e| {
                if e.contains("Unknown device type") || e.contains("not supported") {
                    format!("{e}: this kernel has no VXLAN (module `vxlan`, CONFIG_VXLAN), which the kernel-tunnel path (c) needs")
                } else {
                    e
                }
            })?;
            ip(
                ns,
                &["addr", "add", &format!("{addr}/30"), "dev", VXLAN_DEV],
            )?;
            ip(ns, &["link", "set", VXLAN_DEV, "up"])?;
        }
        let hop = Hop {
            ue: VXLAN_UE,
            up_via: VXLAN_UPF,
            up_dev: VXLAN_DEV,
            down_via: VXLAN_GNB,
            table: TABLE_VXLAN,
            pref: "91",
        };
        self.n3_hop(gnb_ns, upf_ns, &hop)
    }

    /// The gNB-UPF hop of a kernel path: the gNB routes `hop.ue`'s uplink
    /// from the radio side through its own table (a rule before the gNB's
    /// rule that sends the radio side into its TUN), the UPF routes the
    /// downlink back.
    fn n3_hop(&mut self, gnb_ns: &str, upf_ns: &str, hop: &Hop) -> Result<(), String> {
        let ue = format!("{}/32", hop.ue);
        let (up, down) = (hop.up_via.to_string(), hop.down_via.to_string());
        let (dev, table, pref) = (hop.up_dev, hop.table, hop.pref);
        let route = [
            "route", "add", "default", "via", &up, "dev", dev, "table", table,
        ];
        self.ip_add(gnb_ns, &route)?;
        let rule = [
            "rule", "add", "from", &ue, "iif", "radio", "lookup", table, "pref", pref,
        ];
        self.ip_add(gnb_ns, &rule)?;
        self.ip_add(upf_ns, &["route", "add", &ue, "via", &down])
    }
}

/// The gNB and the UPF of the paths, with their namespaces.
struct N3<'a> {
    gnb_ns: String,
    upf_ns: String,
    gnb: &'a GnbPlan,
    upf: &'a UpfPlan,
}

/// A kernel path's hop over N3.
struct Hop {
    /// The UE's address on the path.
    ue: Ipv4Addr,
    /// Uplink next hop from the gNB, and the device towards it.
    up_via: Ipv4Addr,
    up_dev: &'static str,
    /// Downlink next hop from the UPF.
    down_via: Ipv4Addr,
    /// The gNB's table for the uplink and its rule's priority.
    table: &'static str,
    pref: &'static str,
}

impl Drop for Paths {
    fn drop(&mut self) {
        while let Some(u) = self.undo.pop() {
            let r = match u {
                Undo::Ip { ns, args } => {
                    let a: Vec<&str> = args.iter().map(String::as_str).collect();
                    ip(&ns, &a)
                }
                Undo::NftRule { ns } => delete_nft_rule(&ns),
                Undo::Session { ns, url } => {
                    crate::bed::http_in(&ns, "DELETE", &url, None, Duration::from_secs(10))
                        .and_then(|(c, t)| match c {
                            204 | 404 => Ok(()),
                            c => Err(format!("releasing {url}: HTTP {c}: {}", t.trim())),
                        })
                }
            };
            if let Err(e) = r {
                tracing::warn!("dataplane teardown: {e}");
                self.teardown_errors.push(e);
            }
        }
    }
}

/// Deletes the accept rule (by its handle) from the gNB's forward chain.
fn delete_nft_rule(ns: &str) -> Result<(), String> {
    let table = gnb::firewall::TABLE;
    let listing = nft(ns, &["-a", "list", "chain", "inet", table, "forward"])?;
    for line in listing.lines().filter(|l| l.contains(NFT_COMMENT)) {
        if let Some(h) = line.rsplit("# handle ").next().map(str::trim) {
            nft(
                ns,
                &["delete", "rule", "inet", table, "forward", "handle", h],
            )?;
        }
    }
    Ok(())
}
