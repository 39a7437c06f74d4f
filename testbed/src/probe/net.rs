//! What the probes stand on: the UE, gNB and UPF they use ([`Ctx`]), the
//! UE's PDU session ([`Session`]), a counting echo on the edge's N6
//! ([`Echo`]), the UE's route to its gNB for radio-sourced packets
//! ([`RadioRoute`]) and the rogue host on the cp and n3 switches
//! ([`Rogue`]). Each undoes what it made on drop ([`Undo`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wire::ctl::SessionInfo;

use crate::bed::{http_in, BedError, BedState};
use crate::dataplane::paths::ip;
use crate::plan::{GnbPlan, UePlan, UpfPlan};
use crate::responder::UdpResponder;

/// PDU session id of the probe's session.
pub const PSI: u8 = 13;
/// UDP port of the counting echo on the edge's N6 address.
pub const ECHO_PORT: u16 = 9003;
/// Routing table and rule preference of the UE's radio-sourced packets.
const RADIO_TABLE: &str = "2160";
const RADIO_PREF: &str = "95";

fn req(e: impl std::fmt::Display) -> BedError {
    BedError::Request(e.to_string())
}

/// The testbed and the nodes the probes use.
pub struct Ctx<'a> {
    /// The testbed.
    pub st: &'a BedState,
    /// The first UE.
    pub ue: &'a UePlan,
    /// Its gNB.
    pub gnb: &'a GnbPlan,
    /// The first UPF (the UE's session goes through it).
    pub upf: &'a UpfPlan,
    /// The UE's namespace.
    pub ue_ns: String,
}

impl<'a> Ctx<'a> {
    /// The first UE, its gNB and the first UPF.
    pub fn new(st: &'a BedState) -> Result<Ctx<'a>, BedError> {
        let (ue, gnb, upf) = crate::dataplane::first_path(st)?;
        Ok(Ctx {
            st,
            ue,
            gnb,
            upf,
            ue_ns: st.ns(&ue.name),
        })
    }

    /// The SMF's sessions (`GET /sessions` on its API).
    pub fn smf_sessions(&self) -> Result<Vec<SessionInfo>, BedError> {
        let url = format!("http://{}/sessions", self.st.plan.smf_api);
        let (code, text) = http_in(
            &self.st.ns(&self.st.plan.smf_node),
            "GET",
            &url,
            None,
            Duration::from_secs(5),
        )
        .map_err(req)?;
        if code != 200 {
            return Err(req(format!("{url}: HTTP {code}: {}", text.trim())));
        }
        serde_json::from_str(&text).map_err(|e| req(format!("{url}: {e}")))
    }

    /// A JSON document from the SMF's API.
    pub fn smf_json(&self, path: &str) -> Result<serde_json::Value, BedError> {
        let url = format!("http://{}{path}", self.st.plan.smf_api);
        let ns = self.st.ns(&self.st.plan.smf_node);
        let (_, text) = http_in(&ns, "GET", &url, None, Duration::from_secs(5)).map_err(req)?;
        serde_json::from_str(&text).map_err(|e| req(format!("{url}: {e}")))
    }

    /// A UPF's counters (its `/metrics`).
    pub fn upf_counters(&self, upf: &UpfPlan) -> Result<BTreeMap<String, f64>, BedError> {
        let url = format!("http://{}/metrics", upf.metrics);
        let (_, text) = http_in(
            &self.st.ns(&upf.name),
            "GET",
            &url,
            None,
            Duration::from_secs(5),
        )
        .map_err(req)?;
        Ok(crate::bed::parse_prometheus(&text).into_iter().collect())
    }

    /// Echo probes from `src` in the UE's namespace to the edge's echo:
    /// how many of `count` came back with `src` as the source seen.
    pub fn forwards(&self, src: Ipv4Addr, count: u32) -> Result<u32, BedError> {
        let target = SocketAddrV4::new(self.upf.edge_n6, ECHO_PORT);
        crate::demo::probe(&self.ue_ns, src, target, &self.upf.edge, count).map(|(n, _)| n)
    }
}

/// One undo step: what it undoes, and how.
type Step = (String, Box<dyn FnOnce() -> Result<(), String>>);

/// Undo steps, run in reverse on drop; failures go to the log.
#[derive(Default)]
pub struct Undo(Vec<Step>);

impl Undo {
    /// Adds a step named `what`.
    pub fn push(&mut self, what: String, f: impl FnOnce() -> Result<(), String> + 'static) {
        self.0.push((what, Box::new(f)));
    }

    /// `ip -n NS ARGS`, undone by the same with `del` for `add`.
    pub fn ip_add(&mut self, ns: &str, args: &[&str]) -> Result<(), BedError> {
        ip(ns, args).map_err(req)?;
        let del: Vec<String> = args
            .iter()
            .map(|a| if *a == "add" { "del" } else { a }.to_string())
            .collect();
        let ns = ns.to_string();
        self.push(format!("ip -n {ns} {}", del.join(" ")), move || {
            let a: Vec<&str> = del.iter().map(String::as_str).collect();
            ip(&ns, &a)
        });
        Ok(())
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some((what, f)) = self.0.pop() {
            if let Err(e) = f() {
                tracing::warn!("probe teardown, {what}: {e}");
            }
        }
    }
}

/// A PDU session through the UE daemon; released on drop.
pub struct Session {
    /// Its address.
    pub addr: Ipv4Addr,
    /// What the UE got.
    pub info: SessionInfo,
    url: String,
    ns: String,
    released: bool,
}

impl Session {
    /// Session [`PSI`] of the context's UE through the context's UPF.
    pub fn add(ctx: &Ctx<'_>) -> Result<Session, BedError> {
        Session::add_for(ctx, ctx.ue)
    }

    /// Session [`PSI`] of `ue` (through its daemon) via the context's UPF.
    pub fn add_for(ctx: &Ctx<'_>, ue: &UePlan) -> Result<Session, BedError> {
        let ns = ctx.st.ns(&ue.name);
        let base = format!("http://{}/sessions", ue.api);
        let body =
            serde_json::json!({"psi": PSI, "dnn": ctx.upf.dnn, "upf": ctx.upf.name}).to_string();
        let (code, text) =
            http_in(&ns, "POST", &base, Some(body), Duration::from_secs(10)).map_err(req)?;
        if code != 201 {
            return Err(req(format!(
                "PDU session {PSI} of {} via {}: HTTP {code}: {}",
                ue.name,
                ctx.upf.name,
                text.trim()
            )));
        }
        let info: SessionInfo =
            serde_json::from_str(&text).map_err(|e| req(format!("session answer {text}: {e}")))?;
        Ok(Session {
            addr: info.ue_addr,
            info,
            url: format!("{base}/{PSI}"),
            ns,
            released: false,
        })
    }

    fn delete(&mut self) -> Result<(), BedError> {
        self.released = true;
        match http_in(&self.ns, "DELETE", &self.url, None, Duration::from_secs(10)) {
            Ok((204 | 404, _)) => Ok(()),
            Ok((c, t)) => Err(req(format!(
                "releasing {}: HTTP {c}: {}",
                self.url,
                t.trim()
            ))),
            Err(e) => Err(req(e)),
        }
    }

    /// Releases it.
    pub fn release(mut self) -> Result<(), BedError> {
        self.delete()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.delete() {
                tracing::warn!("probe teardown: {e}");
            }
        }
    }
}

/// A UDP echo on the edge's N6 address that answers as `testbed demo`'s
/// does (`EDGE|SOURCE|payload`) and counts datagrams by source address.
pub struct Echo {
    /// Datagrams seen per source address.
    pub seen: Arc<Mutex<BTreeMap<IpAddr, u64>>>,
    _responder: UdpResponder,
}

impl Echo {
    /// Starts it in the context UPF's edge.
    pub fn start(ctx: &Ctx<'_>) -> Result<Echo, BedError> {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let (s2, edge) = (seen.clone(), ctx.upf.edge.clone());
        let r = UdpResponder::start(
            &ctx.st.ns(&ctx.upf.edge),
            SocketAddrV4::new(ctx.upf.edge_n6, ECHO_PORT),
            "probe echo",
            move |d, from, out| {
                if let Ok(mut m) = s2.lock() {
                    *m.entry(from.ip()).or_insert(0) += 1;
                }
                out.extend_from_slice(format!("{edge}|{}|", from.ip()).as_bytes());
                out.extend_from_slice(d);
            },
        )?;
        Ok(Echo {
            seen,
            _responder: r,
        })
    }

    /// Datagrams seen from `src` so far.
    pub fn from(&self, src: Ipv4Addr) -> u64 {
        self.seen
            .lock()
            .map(|m| m.get(&IpAddr::V4(src)).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// A rule and route in the UE's namespace that send what leaves from its
/// radio address to the gNB (as an app that sets its own routes would):
/// the radio link's side of the scan.
pub struct RadioRoute {
    _undo: Undo,
}

impl RadioRoute {
    /// Adds them.
    pub fn add(ctx: &Ctx<'_>) -> Result<RadioRoute, BedError> {
        let mut u = Undo::default();
        RadioRoute::route_from(&mut u, ctx, ctx.ue.radio)?;
        let gw = ctx.gnb.radio.to_string();
        u.ip_add(
            &ctx.ue_ns,
            &[
                "route",
                "add",
                "default",
                "via",
                &gw,
                "dev",
                "radio",
                "table",
                RADIO_TABLE,
            ],
        )?;
        Ok(RadioRoute { _undo: u })
    }

    /// A rule that sends what leaves from `src` over the radio table.
    pub fn route_from(u: &mut Undo, ctx: &Ctx<'_>, src: Ipv4Addr) -> Result<(), BedError> {
        let a = format!("{src}/32");
        u.ip_add(
            &ctx.ue_ns,
            &[
                "rule",
                "add",
                "from",
                &a,
                "lookup",
                RADIO_TABLE,
                "pref",
                RADIO_PREF,
            ],
        )
    }
}

/// A rogue host: namespace `<prefix>rogue` with a port on the cp switch
/// and one on the n3 switch, an unused address on each. The namespace
/// (and with it both veth pairs) is deleted on drop.
pub struct Rogue {
    /// Its namespace.
    pub ns: String,
    /// Its cp address.
    pub cp: Ipv4Addr,
    /// Its N3 address.
    pub n3: Ipv4Addr,
    _undo: Undo,
}

impl Rogue {
    /// Makes it and attaches it to the switches `cp` and `n3`.
    pub fn attach(ctx: &Ctx<'_>) -> Result<Rogue, BedError> {
        let st = ctx.st;
        let ns = format!("{}rogue", st.prefix);
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .output()
            .map_err(|e| req(format!("running `ip netns add`: {e}")))?;
        if !out.status.success() {
            return Err(req(format!(
                "ip netns add {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut undo = Undo::default();
        let ns2 = ns.clone();
        undo.push(format!("ip netns del {ns}"), move || {
            let out = std::process::Command::new("ip")
                .args(["netns", "del", &ns2])
                .output()
                .map_err(|e| e.to_string())?;
            match out.status.success() {
                true => Ok(()),
                false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            }
        });
        ip(&ns, &["link", "set", "lo", "up"]).map_err(req)?;
        let smf_cp = match st.plan.smf_api.ip() {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => return Err(req("the SMF's API is not IPv4")),
        };
        let cp = Rogue::port(ctx, &ns, "cp", &st.ns(&st.plan.smf_node), "cp", smf_cp)?;
        let n3 = Rogue::port(ctx, &ns, "n3", &st.ns(&ctx.gnb.name), "n3", ctx.gnb.n3)?;
        Ok(Rogue {
            ns,
            cp,
            n3,
            _undo: undo,
        })
    }

    /// A veth from the rogue's `ifname` to switch `switch`, with the
    /// highest free host address of the subnet that address `peer` (of
    /// namespace `peer_ns`) is on.
    fn port(
        ctx: &Ctx<'_>,
        ns: &str,
        ifname: &str,
        peer_ns: &str,
        switch: &str,
        peer: Ipv4Addr,
    ) -> Result<Ipv4Addr, BedError> {
        let sw_ns = ctx.st.ns(switch);
        let len = prefix_len(peer_ns, peer)?;
        let taken = used_addrs(ctx);
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let net = u32::from(peer) & mask;
        let bcast = net | !mask;
        let addr = (net + 1..bcast)
            .rev()
            .map(Ipv4Addr::from)
            .find(|a| !taken.contains(a))
            .ok_or_else(|| req(format!("no free address on {switch} for the rogue")))?;
        ip(
            ns,
            &[
                "link", "add", ifname, "type", "veth", "peer", "name", "rogue", "netns", &sw_ns,
            ],
        )
        .map_err(req)?;
        ip(&sw_ns, &["link", "set", "rogue", "master", "br0", "up"]).map_err(req)?;
        let a = format!("{addr}/{len}");
        ip(ns, &["addr", "add", &a, "dev", ifname]).map_err(req)?;
        ip(ns, &["link", "set", ifname, "up"]).map_err(req)?;
        Ok(addr)
    }

    /// A UDP socket in the rogue's namespace bound to `src`.
    pub fn socket(&self, src: Ipv4Addr) -> Result<UdpSocket, BedError> {
        udp_in(&self.ns, src)
    }
}

/// A UDP socket made in namespace `ns`, bound to `src` (any port).
pub fn udp_in(ns: &str, src: Ipv4Addr) -> Result<UdpSocket, BedError> {
    topo::netns::run_in_netns(ns, move || {
        // The rogue's address may still be tentative for a moment.
        crate::probe::wait_until(Duration::from_secs(3), || {
            UdpSocket::bind(SocketAddr::from((src, 0))).ok()
        })
    })
    .map_err(req)?
    .ok_or_else(|| req(format!("cannot bind a UDP socket to {src} in {ns}")))
}

/// The prefix length of `addr` in namespace `ns`.
fn prefix_len(ns: &str, addr: Ipv4Addr) -> Result<u8, BedError> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show"])
        .output()
        .map_err(|e| req(format!("running `ip`: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("{addr}/");
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&want)?.parse().ok())
        .ok_or_else(|| req(format!("{addr} is not an address in {ns}")))
}

/// Every address of the plan (the rogue must not take one).
fn used_addrs(ctx: &Ctx<'_>) -> Vec<Ipv4Addr> {
    let p = &ctx.st.plan;
    let mut v = Vec::new();
    for u in &p.upfs {
        v.extend([u.n3, u.n6, u.edge_n6]);
        if let IpAddr::V4(a) = u.n4.ip() {
            v.push(a);
        }
    }
    for g in &p.gnbs {
        v.extend([g.radio, g.n3, g.cp]);
    }
    if let IpAddr::V4(a) = p.smf_api.ip() {
        v.push(a);
    }
    for e in p.app.iter().flat_map(|a| &a.edges) {
        if let Some(SocketAddr::V4(a)) = e.smf_agent {
            v.push(*a.ip());
        }
    }
    v
}
