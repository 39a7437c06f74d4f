//! The tunnel table against a naive model (a scan of every tunnel for each
//! change, as the first version did): random sequences of adds (path
//! switches included) and removes must give the same answers, the same
//! lookups for the data path and the same "address freed" for routes.

#![allow(clippy::unwrap_used)] // a test fails loudly on what it cannot set up

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use gnb::tunnels::{TunnelError, TunnelTable};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Add {
        ue: u8,
        psi: u8,
        addr: u8,
    },
    /// Removes the k-th live TEID (mod count), or an unknown one.
    Remove {
        k: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 1u8..3, 0u8..4).prop_map(|(ue, psi, addr)| Op::Add { ue, psi, addr }),
        2 => (0usize..8).prop_map(|k| Op::Remove { k }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct M {
    ue: String,
    psi: u8,
    addr: Ipv4Addr,
    draining: bool,
}

#[derive(Default)]
struct Model {
    by_teid: HashMap<u32, M>,
    by_ue: HashMap<Ipv4Addr, u32>,
}

fn ip(a: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 60, 0, a + 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn table_matches_the_naive_model(ops in prop::collection::vec(op(), 1..60)) {
        let table = TunnelTable::new();
        let mut m = Model::default();
        let peer: SocketAddr = "10.0.3.1:2152".parse().unwrap();
        for op in ops {
            match op {
                Op::Add { ue, psi, addr } => {
                    let (ue, addr) = (format!("ue{ue}"), ip(addr));
                    let got = table.add(&ue, psi, addr, 7, peer, 9);
                    if let Some(&teid) = m.by_ue.get(&addr) {
                        let o = &m.by_teid[&teid];
                        if o.ue != ue || o.psi != psi {
                            prop_assert_eq!(got.err(), Some(TunnelError::AddressInUse {
                                addr, ue_id: o.ue.clone(), psi: o.psi,
                            }));
                            continue;
                        }
                    }
                    let c = got.expect("add");
                    let mut replaced = None;
                    let mut unroute = Vec::new();
                    for (t, o) in m.by_teid.iter_mut() {
                        if o.ue == ue && o.psi == psi && !o.draining {
                            o.draining = true;
                            replaced = Some(*t);
                            if o.addr != addr {
                                unroute.push(o.addr);
                            }
                        }
                    }
                    for a in unroute {
                        m.by_ue.remove(&a);
                    }
                    prop_assert_eq!(c.replaced, replaced);
                    prop_assert!(!m.by_teid.contains_key(&c.tunnel.dl_teid));
                    m.by_teid.insert(c.tunnel.dl_teid, M { ue, psi, addr, draining: false });
                    m.by_ue.insert(addr, c.tunnel.dl_teid);
                }
                Op::Remove { k } => {
                    let mut live: Vec<u32> = m.by_teid.keys().copied().collect();
                    live.sort_unstable();
                    let teid = if live.is_empty() || k >= live.len() + 2 { 999_999 } else { live[k % live.len()] };
                    let got = table.remove(teid);
                    let Some(t) = m.by_teid.remove(&teid) else {
                        prop_assert_eq!(got.err(), Some(TunnelError::UnknownTeid(teid)));
                        continue;
                    };
                    let c = got.expect("remove");
                    if !t.draining {
                        m.by_teid.retain(|_, o| !(o.ue == t.ue && o.psi == t.psi));
                    }
                    if m.by_ue.get(&t.addr) == Some(&teid) {
                        m.by_ue.remove(&t.addr);
                    }
                    let freed = !m.by_teid.values().any(|o| o.addr == t.addr);
                    prop_assert_eq!(c.addr_freed, freed, "addr {} freed?", t.addr);
                    prop_assert_eq!(c.tunnel.dl_teid, teid);
                }
            }
            // What the data path sees.
            let snap = table.load();
            let mut got_teid: Vec<(u32, bool)> = snap
                .by_teid
                .iter()
                .map(|(t, x)| (*t, x.draining.load(std::sync::atomic::Ordering::Relaxed)))
                .collect();
            got_teid.sort_unstable();
            let mut want_teid: Vec<(u32, bool)> = m.by_teid.iter().map(|(t, o)| (*t, o.draining)).collect();
            want_teid.sort_unstable();
            prop_assert_eq!(got_teid, want_teid);
            let mut got_ue: Vec<(Ipv4Addr, u32)> = snap.by_ue.iter().map(|(a, x)| (*a, x.dl_teid)).collect();
            got_ue.sort_unstable();
            let mut want_ue: Vec<(Ipv4Addr, u32)> = m.by_ue.iter().map(|(a, t)| (*a, *t)).collect();
            want_ue.sort_unstable();
            prop_assert_eq!(got_ue, want_ue);
        }
    }
}
