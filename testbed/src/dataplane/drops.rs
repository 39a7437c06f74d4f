//! Where a UDP rate search's excess was dropped: the kernel's drop
//! counters of every namespace on the path (UDP socket buffer overflows,
//! interface and TUN queue drops), read before and after each UDP test.
//! The search overloads the path on purpose (its first trial is
//! unpaced), so what grows is where the path gives way first.

use std::collections::BTreeMap;

use super::exact::snmp;
use super::gen::in_ns;

/// Counter name (`node/what`) -> value.
pub type Counters = BTreeMap<String, u64>;

/// The namespaces to read, each with the node name that labels it.
#[derive(Debug, Clone)]
pub struct Census {
    nss: Vec<(String, String)>,
}

impl Census {
    /// Reads `(label, namespace)` pairs.
    pub fn new(nss: Vec<(String, String)>) -> Census {
        Census { nss }
    }

    /// Every counter now.
    pub fn read(&self) -> Result<Counters, String> {
        let mut out = Counters::new();
        for (label, ns) in &self.nss {
            let (snmp, dev) = in_ns(ns, "reading /proc/thread-self/net", || {
                Ok((
                    std::fs::read_to_string("/proc/thread-self/net/snmp")?,
                    std::fs::read_to_string("/proc/thread-self/net/dev")?,
                ))
            })?;
            for (what, v) in udp_drops(&snmp)? {
                out.insert(format!("{label}/udp {what}"), v);
            }
            for (iface, rx, tx) in dev_drops(&dev) {
                out.insert(format!("{label}/{iface} rx_dropped"), rx);
                out.insert(format!("{label}/{iface} tx_dropped"), tx);
            }
        }
        Ok(out)
    }
}

/// The counters that grew from `before` to `after`, by how much (an
/// interface that appeared in between counts from zero).
pub fn grew(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .filter_map(|(k, &v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Adds `more` into `into`.
pub fn add(into: &mut Counters, more: Counters) {
    for (k, v) in more {
        *into.entry(k).or_default() += v;
    }
}

/// UDP's receive and send buffer overflows of `/proc/net/snmp`.
fn udp_drops(text: &str) -> Result<Vec<(&'static str, u64)>, String> {
    ["RcvbufErrors", "SndbufErrors"]
        .into_iter()
        .map(|f| Ok((f, snmp(text, "Udp:", f)?)))
        .collect()
}

/// `(interface, rx dropped, tx dropped)` of `/proc/net/dev` (after the
/// name: 8 receive fields, the 4th of them drops, then 8 transmit fields,
/// the 4th of them drops).
fn dev_drops(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            (f.len() >= 12).then(|| (name.trim().to_string(), f[3], f[11]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_udp_buffer_overflows_and_interface_drops() {
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    Udp: 10 2 7 5 6 1 0\n";
        assert_eq!(
            udp_drops(snmp).expect("Udp counters"),
            [("RcvbufErrors", 6), ("SndbufErrors", 1)]
        );
        assert!(udp_drops("Ip: 1\nIp: 2\n").is_err());
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
                   tun0: 1000 10 0 3 0 0 0 0 2000 20 0 9 0 0 0 0\n";
        assert_eq!(
            dev_drops(dev),
            [("lo".to_string(), 0, 0), ("tun0".to_string(), 3, 9)]
        );
    }

    #[test]
    fn only_what_grew_is_reported() {
        let before: Counters = [("a".to_string(), 5), ("b".to_string(), 1)].into();
        let after: Counters = [
            ("a".to_string(), 5),
            ("b".to_string(), 4),
            ("c".to_string(), 2),
        ]
        .into();
        let g = grew(&before, &after);
        assert_eq!(g, [("b".to_string(), 3), ("c".to_string(), 2)].into());
        let mut sum = Counters::new();
        add(&mut sum, g.clone());
        add(&mut sum, g);
        assert_eq!(sum["b"], 6);
    }
}
