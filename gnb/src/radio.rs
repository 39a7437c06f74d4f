//! Who is on the radio side: the binding of a UE identity to the radio
//! peer it speaks from (issue 13 item 1).
//!
//! The N1 relay sees each request's TCP peer: its IPv4 address on the radio
//! link, and (from the gNB's neighbour table) the MAC address behind it.
//! The first N1 request that names a UE id *attaches* that UE: the id is
//! bound to that peer, and from then on
//!
//! - a request naming the UE must come from its peer (same address and
//!   MAC), and a peer may act only for the UE it attached as: a UE cannot
//!   ask for, release, list or migrate another UE's sessions;
//! - on a point-to-point radio link ([`RadioLink::PointToPoint`]) the UE is
//!   the one attached on that link: one UE id per link, whatever address or
//!   MAC a later request comes from;
//! - the uplink filter (see [`crate::firewall`]) lets a session's packets
//!   into the TUN only with the session's address as source *and* the MAC
//!   of its UE's attachment (on a point-to-point link, by address: nobody
//!   else is on the link);
//! - on a shared cell the session address's neighbour entry is pinned to
//!   that MAC (permanent), so another UE answering or sending ARP for the
//!   address does not take its downlink.
//!
//! What stays spoofable on a shared cell (a switch several UEs share):
//! the identity is what a UE says about itself on an Ethernet segment. A UE
//! that sets its interface to another UE's radio address *and* MAC (both
//! visible to everyone on the segment) is that UE as far as the gNB can
//! tell: it can then act for it on N1 and send uplink into its sessions,
//! and the switch, which learns MACs from the frames it sees, delivers the
//! other UE's downlink to whichever port last sent from that MAC. The
//! first UE to attach under an id keeps it (there is no authentication of
//! the UE id, as there is no NAS security here), so a UE that attaches
//! under an id nobody used yet at this gNB gets it. Bindings last as long
//! as the gNB runs. A point-to-point link has none of this: its UE is the
//! only one on it.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Most UEs attached at one gNB (a bound on the binding table).
pub const MAX_ATTACHED: usize = 4096;

/// What the radio interface is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RadioLink {
    /// A cell switch several UEs share: a UE is its address and MAC.
    #[default]
    Shared,
    /// A veth to one UE: the UE is the one attached on the link.
    PointToPoint,
    /// One radio peer speaks for many emulated UEs (benchmarks and tests
    /// that run several UE daemons in one namespace): nothing is bound, the
    /// N1 relay trusts the UE id each request names, `GET /n1/sessions`
    /// lists nothing, and the uplink filter checks session addresses only.
    /// Not isolation: a UE can act for any other. Logged as such at start.
    EmulatedUes,
}

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = ();
    fn from_str(s: &str) -> Result<Mac, ()> {
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut m {
            *b = u8::from_str_radix(parts.next().ok_or(())?, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Mac(m))
    }
}

/// The radio-side peer of a request: its address and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RadioPeer {
    /// Source address of the request on the radio link.
    pub ip: Ipv4Addr,
    /// The MAC behind it (the gNB's neighbour entry).
    pub mac: Mac,
}

impl fmt::Display for RadioPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.ip, self.mac)
    }
}

/// A request that does not come from the UE it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The UE id is attached from another peer.
    #[error("UE `{ue}` is attached from {bound}, not from {peer}")]
    UeElsewhere {
        /// The UE id asked for.
        ue: String,
        /// Where it is attached.
        bound: RadioPeer,
        /// Where the request came from.
        peer: RadioPeer,
    },
    /// The peer (its address or its MAC) is attached as another UE.
    #[error("{peer} is attached as UE `{other}`; it may act only for that UE")]
    PeerIsOther {
        /// The requesting peer.
        peer: RadioPeer,
        /// The UE it is.
        other: String,
    },
    /// Point-to-point: the link's UE is another one.
    #[error("this point-to-point radio link is UE `{0}`'s")]
    LinkTaken(String),
    /// The binding table is full.
    #[error("{MAX_ATTACHED} UEs are attached already")]
    Full,
}

/// The UE id <-> radio peer bindings (state only, no I/O).
#[derive(Debug, Default)]
pub struct Attachments {
    link: RadioLink,
    by_ue: Mutex<HashMap<String, RadioPeer>>,
}

impl Attachments {
    /// Empty, for a radio link of this kind.
    pub fn new(link: RadioLink) -> Attachments {
        Attachments {
            link,
            by_ue: Mutex::new(HashMap::new()),
        }
    }

    /// The kind of radio link.
    pub fn link(&self) -> RadioLink {
        self.link
    }

    /// Checks that `peer` may act as UE `ue`, attaching it on first
    /// contact. `Ok(true)`: a new attachment.
    pub fn bind(&self, ue: &str, peer: RadioPeer) -> Result<bool, BindError> {
        // A poisoned lock only means a panic elsewhere; the map stays consistent.
        if self.link == RadioLink::EmulatedUes {
            return Ok(false);
        }
        let mut m = self.by_ue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bound) = m.get(ue) {
            return match self.link {
                RadioLink::PointToPoint | RadioLink::EmulatedUes => Ok(false),
                RadioLink::Shared if *bound == peer => Ok(false),
                RadioLink::Shared => Err(BindError::UeElsewhere {
                    ue: ue.into(),
                    bound: *bound,
                    peer,
                }),
            };
        }
        if self.link == RadioLink::PointToPoint {
            if let Some(other) = m.keys().next() {
                return Err(BindError::LinkTaken(other.clone()));
            }
        }
        if let Some((other, _)) = m.iter().find(|(_, p)| p.ip == peer.ip || p.mac == peer.mac) {
            return Err(BindError::PeerIsOther {
                peer,
                other: other.clone(),
            });
        }
        if m.len() >= MAX_ATTACHED {
            return Err(BindError::Full);
        }
        m.insert(ue.into(), peer);
        Ok(true)
    }

    /// The UE `peer` is attached as (any peer, point-to-point).
    pub fn ue_of(&self, peer: RadioPeer) -> Option<String> {
        let m = self.by_ue.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .find(|(_, p)| self.link == RadioLink::PointToPoint || **p == peer)
            .map(|(u, _)| u.clone())
    }

    /// On a point-to-point link attached by a UE other than `ue`: that UE.
    pub fn link_owner_other_than(&self, ue: &str) -> Option<String> {
        if self.link != RadioLink::PointToPoint {
            return None;
        }
        let m = self.by_ue.lock().unwrap_or_else(|e| e.into_inner());
        m.keys().find(|k| k.as_str() != ue).cloned()
    }

    /// The peer UE `ue` is attached from.
    pub fn peer_of(&self, ue: &str) -> Option<RadioPeer> {
        let m = self.by_ue.lock().unwrap_or_else(|e| e.into_inner());
        m.get(ue).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: u8, mac: u8) -> RadioPeer {
        RadioPeer {
            ip: Ipv4Addr::new(10, 10, 1, ip),
            mac: Mac([2, 0, 0, 0, 0, mac]),
        }
    }

    #[test]
    fn a_point_to_point_link_is_its_first_ues() {
        let a = Attachments::new(RadioLink::PointToPoint);
        // Nobody attached yet: any UE's tunnel is opened by address.
        assert_eq!(a.link_owner_other_than("imsi-1"), None);
        assert_eq!(a.bind("imsi-1", peer(2, 2)), Ok(true));
        assert_eq!(a.link_owner_other_than("imsi-1"), None);
        assert_eq!(a.link_owner_other_than("imsi-9").as_deref(), Some("imsi-1"));
        // Not on a shared cell (bound by MAC there) nor for emulated UEs.
        for link in [RadioLink::Shared, RadioLink::EmulatedUes] {
            let a = Attachments::new(link);
            let _ = a.bind("imsi-1", peer(2, 2));
            assert_eq!(a.link_owner_other_than("imsi-9"), None, "{link:?}");
        }
    }

    #[test]
    fn shared_cell_binds_address_and_mac() {
        let a = Attachments::new(RadioLink::Shared);
        assert_eq!(a.bind("imsi-1", peer(2, 2)), Ok(true));
        assert_eq!(a.bind("imsi-1", peer(2, 2)), Ok(false));
        assert_eq!(a.bind("imsi-2", peer(3, 3)), Ok(true));
        // Another UE's id from my address and MAC; my id from another MAC
        // (address spoofed) or another address.
        for (ue, p) in [
            ("imsi-2", peer(2, 2)),
            ("imsi-1", peer(2, 9)),
            ("imsi-1", peer(9, 2)),
        ] {
            let r = a.bind(ue, p);
            assert!(
                matches!(r, Err(BindError::UeElsewhere { .. })),
                "{ue} {p}: {r:?}"
            );
        }
        // A new id from a peer whose address or MAC is attached as another UE.
        for p in [peer(2, 7), peer(7, 3)] {
            let r = a.bind("imsi-3", p);
            assert!(
                matches!(r, Err(BindError::PeerIsOther { .. })),
                "{p}: {r:?}"
            );
        }
        assert_eq!(a.ue_of(peer(3, 3)).as_deref(), Some("imsi-2"));
        assert_eq!(a.ue_of(peer(3, 2)), None);
        assert_eq!(a.peer_of("imsi-1"), Some(peer(2, 2)));
        let e = a.bind("imsi-2", peer(2, 2)).map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("UE `imsi-2` is attached from 10.10.1.3 (02:00:00:00:00:03), not from 10.10.1.2 (02:00:00:00:00:02)".into())
        );
    }

    #[test]
    fn point_to_point_link_is_one_ue() {
        let a = Attachments::new(RadioLink::PointToPoint);
        assert_eq!(a.bind("imsi-1", peer(2, 2)), Ok(true));
        // The link's UE, whatever it uses as source.
        assert_eq!(a.bind("imsi-1", peer(5, 5)), Ok(false));
        assert_eq!(
            a.bind("imsi-2", peer(2, 2)),
            Err(BindError::LinkTaken("imsi-1".into()))
        );
        assert_eq!(a.ue_of(peer(9, 9)).as_deref(), Some("imsi-1"));
    }

    #[test]
    fn emulated_ues_bind_nothing() {
        let a = Attachments::new(RadioLink::EmulatedUes);
        assert_eq!(a.bind("imsi-1", peer(2, 2)), Ok(false));
        assert_eq!(a.bind("imsi-2", peer(2, 2)), Ok(false));
        assert_eq!(a.ue_of(peer(2, 2)), None);
        assert_eq!(a.peer_of("imsi-1"), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let a = Attachments::new(RadioLink::Shared);
        for i in 0..MAX_ATTACHED {
            let p = RadioPeer {
                ip: Ipv4Addr::from(0x0a00_0000 + i as u32),
                mac: Mac([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
            };
            assert_eq!(a.bind(&format!("u{i}"), p), Ok(true));
        }
        let new = RadioPeer {
            ip: Ipv4Addr::new(192, 168, 0, 1),
            mac: Mac([6; 6]),
        };
        assert_eq!(a.bind("one-more", new), Err(BindError::Full));
    }

    #[test]
    fn mac_parses_and_prints() {
        assert_eq!(
            "02:aa:bb:cc:dd:ee".parse::<Mac>().map(|m| m.to_string()),
            Ok("02:aa:bb:cc:dd:ee".into())
        );
        assert!("02:aa:bb".parse::<Mac>().is_err());
    }
}
