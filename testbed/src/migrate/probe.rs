//! What `testbed migrate` reads besides the APIs: the inter-edge link's
//! interface counters, the census of what the run holds (for leaks), and
//! the delay of an edge's N6 link (the latency trigger).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;
use topo::{Dir, Running, StateDir};

use super::api::Api;
use crate::bed::{parse_prometheus, BedError, BedState};

fn req(e: impl std::fmt::Display) -> BedError {
    BedError::Request(e.to_string())
}

/// An interface's byte counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IfBytes {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl IfBytes {
    /// Bytes both ways since `before`.
    pub fn since(&self, before: &IfBytes) -> u64 {
        self.rx_bytes.saturating_sub(before.rx_bytes)
            + self.tx_bytes.saturating_sub(before.tx_bytes)
    }
}

/// The line of `ifname` in `/proc/net/dev` text.
pub fn parse_net_dev(text: &str, ifname: &str) -> Option<IfBytes> {
    text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // Receive: bytes packets errs drop fifo frame compressed multicast;
        // then transmit: bytes ...
        Some(IfBytes {
            rx_bytes: *f.first()?,
            tx_bytes: *f.get(8)?,
        })
    })
}

/// The counters of `ifname` in namespace `ns` (the kernel's, as in
/// `/sys/class/net/IF/statistics`, read from the namespace's own
/// `/proc/net/dev` by a thread inside it).
pub fn if_bytes(ns: &str, ifname: &str) -> Result<IfBytes, BedError> {
    let name = ifname.to_string();
    let text =
        topo::netns::run_in_netns(ns, || std::fs::read_to_string("/proc/thread-self/net/dev"))
            .map_err(req)?
            .map_err(|e| req(format!("{ns}: /proc/net/dev: {e}")))?;
    parse_net_dev(&text, &name).ok_or_else(|| req(format!("{ns}: no interface `{ifname}`")))
}

/// What the run holds: compared before the first migration and after the
/// last release, the difference is what the migrations leaked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Sessions at every UPF (`upf_sessions`).
    pub upf_sessions: i64,
    /// Tunnels at every gNB (`GET /tunnels`).
    pub gnb_tunnels: i64,
    /// Addresses from the UPFs' pools in the UE's namespace.
    pub ue_addresses: i64,
    /// Instances running at every agent (`GET /instances`).
    pub instances: i64,
    /// Processes in the run's namespaces.
    pub processes: i64,
    /// The run's namespaces that exist.
    pub namespaces: i64,
}

impl Census {
    /// Field by field, `self - start`.
    pub fn minus(&self, start: &Census) -> Census {
        Census {
            upf_sessions: self.upf_sessions - start.upf_sessions,
            gnb_tunnels: self.gnb_tunnels - start.gnb_tunnels,
            ue_addresses: self.ue_addresses - start.ue_addresses,
            instances: self.instances - start.instances,
            processes: self.processes - start.processes,
            namespaces: self.namespaces - start.namespaces,
        }
    }

    /// Whether every count is zero.
    pub fn is_zero(&self) -> bool {
        *self == Census::default()
    }
}

/// Counts what the testbed `st` holds now; `ue` is the UE's node.
pub fn census(st: &BedState, ue: &str) -> Result<Census, BedError> {
    let mut c = Census::default();
    for u in &st.plan.upfs {
        let api = Api::new(&u.name, st.ns(&u.name), u.metrics);
        let (code, text) = api.call("GET", "/metrics", None, Duration::from_secs(3))?;
        if code != 200 {
            return Err(req(format!("{}: /metrics: HTTP {code}", u.name)));
        }
        c.upf_sessions += parse_prometheus(&text)
            .iter()
            .find(|(k, _)| k == "upf_sessions")
            .map_or(0, |(_, v)| *v as i64);
    }
    for g in &st.plan.gnbs {
        let api = Api::new(&g.name, st.ns(&g.name), g.n2_api);
        let t: Vec<serde_json::Value> = api.get("/tunnels")?;
        c.gnb_tunnels += t.len() as i64;
    }
    for e in st.plan.app.iter().flat_map(|a| a.edges.iter()) {
        let api = Api::new(format!("agent-{}", e.name), st.ns(&e.name), e.agent_api)
            .with_token(st.plan.agent_token());
        let list: Vec<serde_json::Value> = api.get("/instances")?;
        c.instances += list
            .iter()
            .filter(|i| i["state"].as_str().is_none_or(|s| s == "running"))
            .count() as i64;
    }
    let pools: Vec<(Ipv4Addr, u8)> = st.plan.upfs.iter().filter_map(|u| net(&u.pool)).collect();
    c.ue_addresses = ue_addresses(&st.ns(ue), &pools)? as i64;
    let names: Vec<String> = st.namespaces.iter().map(|(_, ns)| ns.clone()).collect();
    let (procs, nss) = processes_in(&names);
    c.processes = procs as i64;
    c.namespaces = nss as i64;
    Ok(c)
}

/// `a.b.c.d/len`.
fn net(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    Some((a.parse().ok()?, l.parse().ok()?))
}

fn in_net(a: Ipv4Addr, (n, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(n) & mask
}

/// IPv4 addresses in namespace `ns` inside one of `pools`.
fn ue_addresses(ns: &str, pools: &[(Ipv4Addr, u8)]) -> Result<usize, BedError> {
    let out = topo::engine::command_in(ns, "ip")?
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map_err(|e| req(format!("ip addr in {ns}: {e}")))?;
    Ok(count_pool_addrs(
        &String::from_utf8_lossy(&out.stdout),
        pools,
    ))
}

/// Addresses of `ip -4 -o addr show` output inside one of `pools`.
pub fn count_pool_addrs(text: &str, pools: &[(Ipv4Addr, u8)]) -> usize {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet")?;
            let (a, _) = w.next()?.split_once('/')?;
            a.parse::<Ipv4Addr>().ok()
        })
        .filter(|a| pools.iter().any(|p| in_net(*a, *p)))
        .count()
}

/// (processes whose network namespace is one of `names`, how many of
/// `names` exist in /run/netns).
pub fn processes_in(names: &[String]) -> (usize, usize) {
    use std::os::unix::fs::MetadataExt;
    let inodes: HashSet<u64> = names
        .iter()
        .filter_map(|n| std::fs::metadata(format!("{}/{n}", topo::netns::NETNS_RUN_DIR)).ok())
        .map(|m| m.ino())
        .collect();
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_link(e.path().join("ns/net")).ok())
        .filter_map(|l| {
            let s = l.to_string_lossy().into_owned();
            s.strip_prefix("net:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .filter(|ino| inodes.contains(ino))
        .count();
    (procs, inodes.len())
}

/// How many of `names` exist as namespaces.
pub fn namespaces_left(names: &[String]) -> usize {
    names.iter().filter(|n| topo::netns::exists(n)).count()
}

/// The link that carries `edge`'s N6 (its UPF's `n6` to the edge).
pub fn n6_link(t: &topo::Topology, upf: &str, edge: &str) -> Option<String> {
    t.links
        .iter()
        .find(|l| {
            let ends = [(&l.a, &l.b), (&l.b, &l.a)];
            ends.iter()
                .any(|(u, e)| u.node == upf && u.ifname == "n6" && e.node == edge)
        })
        .map(|l| l.name.clone())
}

/// The inter-edge link between `a` and `b`: its name and `a`'s interface.
pub fn inter_edge(t: &topo::Topology, a: &str, b: &str) -> Option<(String, String)> {
    t.links.iter().find_map(|l| {
        if l.a.node == a && l.b.node == b {
            Some((l.name.clone(), l.a.ifname.clone()))
        } else if l.b.node == a && l.a.node == b {
            Some((l.name.clone(), l.b.ifname.clone()))
        } else {
            None
        }
    })
}

/// The running topology of the testbed.
pub fn running(st: &BedState) -> Result<Running, BedError> {
    Ok(Running::attach(
        &st.topology,
        &StateDir::new(&st.state_dir),
    )?)
}

/// Sets the added one-way delay of `link`, both directions, on top of the
/// shaping its topology gives it (the userspace emulator where the kernel
/// has no netem: the link must have it, see `emulate = true`).
pub fn set_delay(r: &mut Running, link: &str, delay: Duration) -> Result<(), BedError> {
    let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
    reshape(r, link, |s| s.delay_us = us)
}

/// Sets the rate of `link`, both directions, keeping the rest of its
/// shaping (tc's htb, or the emulator on an emulated link).
pub fn set_rate(r: &mut Running, link: &str, rate_bps: u64) -> Result<(), BedError> {
    reshape(r, link, |s| {
        s.rate_bps = Some(rate_bps);
        // The burst follows the new rate (about 2 ms of it).
        s.burst_bytes = None;
    })
}

/// Shapes both directions of `link` as its topology does, changed by `f`.
fn reshape(
    r: &mut Running,
    link: &str,
    f: impl Fn(&mut topo::config::Shape),
) -> Result<(), BedError> {
    let l = r
        .topology()
        .link(link)
        .cloned()
        .ok_or_else(|| req(format!("no link `{link}`")))?;
    for (dir, base) in [(Dir::Ab, l.shape_ab), (Dir::Ba, l.shape_ba)] {
        let mut s = base;
        f(&mut s);
        r.shape(link, dir, &s)?;
    }
    Ok(())
}

/// The paper topology with its UPFs' N6 links emulated, so that their
/// delay can change at run time (the latency trigger) on a kernel
/// without netem.
pub fn paper_with_emulated_n6() -> Result<String, BedError> {
    let t = topo::Topology::paper_default();
    let n6: Vec<String> = t
        .links
        .iter()
        .filter(|l| l.a.ifname == "n6" || l.b.ifname == "n6")
        .map(|l| format!("name = \"{}\"", l.name))
        .collect();
    let mut out = String::new();
    for line in topo::config::PAPER_TOML.lines() {
        out.push_str(line);
        out.push('\n');
        if n6.iter().any(|x| line.trim() == x) {
            out.push_str("emulate = true\n");
        }
    }
    let check = topo::Topology::from_toml_str(&out, "<paper with emulated N6>")?;
    let emulated = check.links.iter().filter(|l| l.emulate).count();
    if emulated != n6.len() || n6.is_empty() {
        return Err(req(
            "could not mark the paper topology's N6 links as emulated",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n    \
             ie: 4242 7 0 0 0 0 0 0 999 3 0 0 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(text, "ie"),
            Some(IfBytes {
                rx_bytes: 4242,
                tx_bytes: 999
            })
        );
        assert_eq!(parse_net_dev(text, "i"), None);
        let b = IfBytes {
            rx_bytes: 5000,
            tx_bytes: 1000,
        };
        assert_eq!(b.since(&parse_net_dev(text, "ie").expect("ie")), 758 + 1);
    }

    #[test]
    fn pool_addresses_are_counted() {
        let text = "2: radio    inet 10.10.1.2/24 brd 10.10.1.255 scope global radio\\       valid_lft forever\n\
                    2: radio    inet 10.45.0.3/32 scope global radio\\       valid_lft forever\n\
                    2: radio    inet 10.46.0.9/32 scope global radio\\       valid_lft forever\n";
        let pools = [
            net("10.45.0.0/16").expect("pool"),
            net("10.46.0.0/16").expect("pool"),
        ];
        assert_eq!(count_pool_addrs(text, &pools), 2);
        assert_eq!(count_pool_addrs(text, &pools[..1]), 1);
    }

    #[test]
    fn census_difference() {
        let a = Census {
            upf_sessions: 1,
            instances: 1,
            processes: 12,
            ..Census::default()
        };
        let b = Census {
            upf_sessions: 2,
            ..a
        };
        assert!(a.minus(&a).is_zero());
        assert_eq!(b.minus(&a).upf_sessions, 1);
        assert!(!b.minus(&a).is_zero());
    }

    #[test]
    fn links_of_the_paper_topology() {
        let t = topo::Topology::paper_default();
        assert_eq!(n6_link(&t, "upf1", "edge1").as_deref(), Some("n6a"));
        assert_eq!(n6_link(&t, "upf2", "edge2").as_deref(), Some("n6b"));
        assert_eq!(n6_link(&t, "upf1", "edge2"), None);
        assert_eq!(
            inter_edge(&t, "edge1", "edge2"),
            Some(("interedge".to_string(), "ie".to_string()))
        );
        let text = paper_with_emulated_n6().expect("patched");
        let p = topo::Topology::from_toml_str(&text, "x").expect("valid");
        let emulated: Vec<_> = p
            .links
            .iter()
            .filter(|l| l.emulate)
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(emulated, ["n6a", "n6b"]);
    }
}
