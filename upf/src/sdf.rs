//! SDF filters: the IPFilterRule subset that PFCP Flow Descriptions carry.
//!
//! Syntax (TS 29.212 §5.4.2 IPFilterRule, as referenced by TS 29.244 §5.2.1A
//! and §8.2.5):
//!
//! ```text
//! permit out <proto> from <addr>[/<n>] [<ports>] to <addr>[/<n>] [<ports>]
//! ```
//!
//! `<proto>` is `ip` (any) or a protocol number (`17`, `6`); the names `udp`,
//! `tcp` and `icmp` are accepted too. `<addr>` is an IPv4 address, `any`, or
//! `assigned` (the UE's address). `<ports>` is a comma list of ports or
//! `lo-hi` ranges.
//!
//! Direction: a Flow Description is written for the downlink, "out" towards
//! the UE: `from` is the remote (data network) side, `to` is the UE. For an
//! uplink PDR the same text is matched with source and destination swapped,
//! as TS 29.244 §5.2.1A and the SMFs that follow it (open5gs, free5gc) do.

use std::net::Ipv4Addr;

use crate::packet::FiveTuple;

/// Why a Flow Description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdfError {
    /// The text ended before the rule was complete.
    #[error("flow description truncated: {0:?}")]
    Truncated(String),
    /// Only `permit` rules make sense in a PDI.
    #[error("flow description action must be \"permit\", got {0:?}")]
    Action(String),
    /// Only `out` is defined by TS 29.212 for Flow Descriptions.
    #[error("flow description direction must be \"out\", got {0:?}")]
    Direction(String),
    /// Protocol neither `ip`, a known name, nor a number 0..=255.
    #[error("bad protocol {0:?}")]
    Protocol(String),
    /// An address, prefix length or IPv6 address (not supported).
    #[error("bad or unsupported address {0:?}")]
    Address(String),
    /// A port or port range.
    #[error("bad port list {0:?}")]
    Ports(String),
    /// A keyword other than `from`/`to` where one was expected.
    #[error("expected {expected:?}, got {got:?}")]
    Keyword {
        /// The keyword required here.
        expected: &'static str,
        /// What the text had instead.
        got: String,
    },
    /// Options after the rule (e.g. `frag`, `tcpflags`) are not supported.
    #[error("unsupported option {0:?}")]
    Option(String),
}

/// An address part of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrMatch {
    /// `any`.
    Any,
    /// `assigned`: the UE's address, resolved when matching.
    Assigned,
    /// An IPv4 prefix.
    Prefix {
        /// Network address (host bits cleared).
        addr: Ipv4Addr,
        /// Prefix length, 0..=32.
        len: u8,
    },
}

impl AddrMatch {
    fn matches(&self, ip: Ipv4Addr, ue: Option<Ipv4Addr>) -> bool {
        match *self {
            AddrMatch::Any => true,
            AddrMatch::Assigned => ue.is_none_or(|u| u == ip),
            AddrMatch::Prefix { addr, len } => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(ip) & mask == u32::from(addr)
            }
        }
    }
}

/// A flow description, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowDescription {
    /// IP protocol number; `None` for `ip` (any).
    pub protocol: Option<u8>,
    /// `from` address (the remote side).
    pub from: AddrMatch,
    /// `from` ports; empty means any.
    pub from_ports: Vec<(u16, u16)>,
    /// `to` address (the UE side).
    pub to: AddrMatch,
    /// `to` ports; empty means any.
    pub to_ports: Vec<(u16, u16)>,
}

/// Direction in which a packet is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the UE (N3 -> N6).
    Uplink,
    /// Towards the UE (N6 -> N3).
    Downlink,
}

fn ports_match(list: &[(u16, u16)], port: Option<u16>) -> bool {
    if list.is_empty() {
        return true;
    }
    match port {
        Some(p) => list.iter().any(|&(lo, hi)| lo <= p && p <= hi),
        None => false,
    }
}

impl FlowDescription {
    /// Parse a Flow Description text.
    pub fn parse(text: &str) -> Result<Self, SdfError> {
        let mut it = text.split_whitespace();
        let trunc = || SdfError::Truncated(text.to_string());
        let action = it.next().ok_or_else(trunc)?;
        if !action.eq_ignore_ascii_case("permit") {
            return Err(SdfError::Action(action.into()));
        }
        let dir = it.next().ok_or_else(trunc)?;
        if !dir.eq_ignore_ascii_case("out") {
            return Err(SdfError::Direction(dir.into()));
        }
        let proto = it.next().ok_or_else(trunc)?;
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "ip" => None,
            "udp" => Some(17),
            "tcp" => Some(6),
            "icmp" => Some(1),
            p => Some(
                p.parse::<u8>()
                    .map_err(|_| SdfError::Protocol(proto.into()))?,
            ),
        };
        let kw = it.next().ok_or_else(trunc)?;
        if !kw.eq_ignore_ascii_case("from") {
            return Err(SdfError::Keyword {
                expected: "from",
                got: kw.into(),
            });
        }
        let from = parse_addr(it.next().ok_or_else(trunc)?)?;
        let mut tok = it.next().ok_or_else(trunc)?;
        let mut from_ports = Vec::new();
        if !tok.eq_ignore_ascii_case("to") {
            from_ports = parse_ports(tok)?;
            tok = it.next().ok_or_else(trunc)?;
        }
        if !tok.eq_ignore_ascii_case("to") {
            return Err(SdfError::Keyword {
                expected: "to",
                got: tok.into(),
            });
        }
        let to = parse_addr(it.next().ok_or_else(trunc)?)?;
        let mut to_ports = Vec::new();
        if let Some(tok) = it.next() {
            to_ports = parse_ports(tok)?;
        }
        if let Some(opt) = it.next() {
            return Err(SdfError::Option(opt.into()));
        }
        Ok(FlowDescription {
            protocol,
            from,
            from_ports,
            to,
            to_ports,
        })
    }

    /// Does this packet match, seen in `dir`? `ue` resolves `assigned`.
    pub fn matches(&self, t: &FiveTuple, dir: Direction, ue: Option<Ipv4Addr>) -> bool {
        if let Some(p) = self.protocol {
            if p != t.protocol {
                return false;
            }
        }
        // Downlink: from = packet source (remote), to = packet dest (UE).
        // Uplink: swapped.
        let (remote, remote_port, local, local_port) = match dir {
            Direction::Downlink => (t.src, t.src_port, t.dst, t.dst_port),
            Direction::Uplink => (t.dst, t.dst_port, t.src, t.src_port),
        };
        self.from.matches(remote, None)
            && self.to.matches(local, ue)
            && ports_match(&self.from_ports, remote_port)
            && ports_match(&self.to_ports, local_port)
    }
}

fn parse_addr(s: &str) -> Result<AddrMatch, SdfError> {
    if s.eq_ignore_ascii_case("any") {
        return Ok(AddrMatch::Any);
    }
    if s.eq_ignore_ascii_case("assigned") {
        return Ok(AddrMatch::Assigned);
    }
    let bad = || SdfError::Address(s.to_string());
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
        None => (s, 32),
    };
    if len > 32 {
        return Err(bad());
    }
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok(AddrMatch::Prefix {
        addr: Ipv4Addr::from(u32::from(addr) & mask),
        len,
    })
}

fn parse_ports(s: &str) -> Result<Vec<(u16, u16)>, SdfError> {
    let bad = || SdfError::Ports(s.to_string());
    let mut out = Vec::new();
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse::<u16>().map_err(|_| bad())?,
                hi.parse::<u16>().map_err(|_| bad())?,
            ),
            None => {
                let p = part.parse::<u16>().map_err(|_| bad())?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        out.push((lo, hi));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, proto: u8) -> FiveTuple {
        FiveTuple {
            src: src.into(),
            dst: dst.into(),
            protocol: proto,
            src_port: Some(sp),
            dst_port: Some(dp),
        }
    }

    #[test]
    fn parses_full_rule() {
        let f =
            FlowDescription::parse("permit out 17 from 10.1.0.0/16 5000-5010,6000 to assigned 80")
                .expect("valid");
        assert_eq!(f.protocol, Some(17));
        assert_eq!(
            f.from,
            AddrMatch::Prefix {
                addr: Ipv4Addr::new(10, 1, 0, 0),
                len: 16
            }
        );
        assert_eq!(f.from_ports, vec![(5000, 5010), (6000, 6000)]);
        assert_eq!(f.to, AddrMatch::Assigned);
        assert_eq!(f.to_ports, vec![(80, 80)]);
    }

    #[test]
    fn host_bits_cleared_and_ip_any() {
        let f = FlowDescription::parse("permit out ip from 10.1.2.3/8 to any").expect("valid");
        assert_eq!(f.protocol, None);
        assert_eq!(
            f.from,
            AddrMatch::Prefix {
                addr: Ipv4Addr::new(10, 0, 0, 0),
                len: 8
            }
        );
        assert!(f.to_ports.is_empty());
    }

    #[test]
    fn rejects_bad_rules() {
        for bad in [
            "",
            "deny out ip from any to any",
            "permit in ip from any to any",
            "permit out foo from any to any",
            "permit out ip form any to any",
            "permit out ip from 10.0.0.1/33 to any",
            "permit out ip from 2001:db8::1 to any",
            "permit out 17 from any 70000 to any",
            "permit out 17 from any 9-3 to any",
            "permit out ip from any to any 1 frag",
            "permit out ip from any",
        ] {
            assert!(FlowDescription::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn downlink_and_uplink_directions() {
        let f = FlowDescription::parse("permit out 17 from 192.168.1.0/24 9000 to 10.60.0.1 4000")
            .expect("valid");
        // downlink: server 192.168.1.5:9000 -> UE 10.60.0.1:4000
        let dl = tuple([192, 168, 1, 5], 9000, [10, 60, 0, 1], 4000, 17);
        assert!(f.matches(&dl, Direction::Downlink, None));
        assert!(!f.matches(&dl, Direction::Uplink, None));
        // uplink: UE -> server
        let ul = tuple([10, 60, 0, 1], 4000, [192, 168, 1, 5], 9000, 17);
        assert!(f.matches(&ul, Direction::Uplink, None));
        // wrong port, wrong protocol
        let ul2 = tuple([10, 60, 0, 1], 4000, [192, 168, 1, 5], 9001, 17);
        assert!(!f.matches(&ul2, Direction::Uplink, None));
        let ul3 = tuple([10, 60, 0, 1], 4000, [192, 168, 1, 5], 9000, 6);
        assert!(!f.matches(&ul3, Direction::Uplink, None));
    }

    #[test]
    fn assigned_resolves_to_ue() {
        let f = FlowDescription::parse("permit out ip from any to assigned").expect("valid");
        let dl = tuple([1, 1, 1, 1], 1, [10, 60, 0, 1], 2, 6);
        assert!(f.matches(&dl, Direction::Downlink, Some(Ipv4Addr::new(10, 60, 0, 1))));
        assert!(!f.matches(&dl, Direction::Downlink, Some(Ipv4Addr::new(10, 60, 0, 2))));
    }

    #[test]
    fn ports_required_but_absent_do_not_match() {
        let f = FlowDescription::parse("permit out ip from any 53 to any").expect("valid");
        let mut t = tuple([1, 1, 1, 1], 53, [2, 2, 2, 2], 1, 1);
        t.src_port = None;
        assert!(!f.matches(&t, Direction::Downlink, None));
    }
}
