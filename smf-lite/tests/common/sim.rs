//! The deterministic simulation of the SMF state machine: virtual time,
//! fake UPFs (wire::pfcp) and a fake gNB, no sockets (`sim.rs`,
//! `sim_recover.rs`).

use super::FakeUpf;
use smf_lite::core::{AssocState, GnbTunnel};
use smf_lite::{Action, Config, Smf, SmfError};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use wire::ctl::{GnbRef, SessionInfo, SessionRequest, TunnelSetup, TunnelSetupResponse};

pub const CFG: &str = r#"
node_id = "10.100.0.1"
n4_bind = "127.0.0.1:0"
qfi = 7
[mbr]
ul_kbps = 5000
dl_kbps = 10000
[timers]
t1_ms = 100
n1 = 3
heartbeat_ms = 1000
[[upf]]
name = "upf1"
n4 = "10.100.0.11:8805"
[[upf.dnn]]
name = "edge1"
pool = "10.60.0.0/30"
network_instance = "internet"
[[upf]]
name = "upf2"
n4 = "10.100.0.12:8805"
[[upf.dnn]]
name = "edge2"
pool = "10.61.0.0/24"
"#;

pub struct Upf {
    pub addr: SocketAddr,
    pub fake: FakeUpf,
    /// Drop this many of the next datagrams sent to it.
    pub drop_next: usize,
    /// Receives nothing, answers nothing.
    pub dead: bool,
    /// Seeded loss (percent) of datagrams in both directions.
    pub loss: Option<(Lcg, u32)>,
}

/// A tiny seeded generator (no dependency needed for a coin).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn percent(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % 100) as u32
    }
}

impl Upf {
    pub fn lost(&mut self) -> bool {
        match &mut self.loss {
            Some((rng, p)) => rng.percent() < *p,
            None => false,
        }
    }
}

#[derive(Default)]
pub struct Gnb {
    pub tunnels: HashMap<u32, TunnelSetup>,
    pub next_teid: u32,
    pub fail: Option<String>,
    pub deleted: Vec<u32>,
}

pub enum Delivery {
    Pfcp(SocketAddr, Vec<u8>),
    N2(
        smf_lite::core::SessionKey,
        u64,
        GnbRef,
        Result<TunnelSetupResponse, String>,
    ),
    Audit(GnbRef, Result<Vec<GnbTunnel>, String>),
}

pub struct Sim {
    pub now: Instant,
    pub smf: Smf,
    pub upfs: Vec<Upf>,
    pub gnb: Gnb,
    pub q: VecDeque<Delivery>,
    pub created: HashMap<u64, Result<SessionInfo, SmfError>>,
    pub released: HashMap<u64, Result<(), SmfError>>,
    /// (to, message) of every PFCP datagram the SMF sent.
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
    /// (from, message) of every PFCP datagram delivered to the SMF.
    pub received: Vec<(SocketAddr, Vec<u8>)>,
    pub next_req: u64,
}

pub fn gnb_ref() -> GnbRef {
    GnbRef {
        name: "gnb1".into(),
        n2_api: "10.100.0.5:7002".into(),
    }
}

impl Sim {
    pub fn new(cfg: &str) -> Sim {
        let cfg = Config::parse(cfg).expect("valid config");
        let now = Instant::now();
        let smf = Smf::new(&cfg, 1000, now);
        let upfs = cfg
            .upf
            .iter()
            .enumerate()
            .map(|(i, u)| Upf {
                addr: u.n4,
                fake: FakeUpf::new(&u.name, 5000 + i as u32, 0x100 * (i as u32 + 1)),
                drop_next: 0,
                dead: false,
                loss: None,
            })
            .collect();
        Sim {
            now,
            smf,
            upfs,
            gnb: Gnb {
                next_teid: 0x9000,
                ..Default::default()
            },
            q: VecDeque::new(),
            created: HashMap::new(),
            released: HashMap::new(),
            sent: Vec::new(),
            received: Vec::new(),
            next_req: 1,
        }
    }

    /// Runs actions and deliveries until nothing moves.
    pub fn pump(&mut self) {
        loop {
            while let Some(a) = self.smf.poll_action() {
                match a {
                    Action::SendPfcp { to, data } => {
                        self.sent.push((to, data.clone()));
                        let Some(u) = self.upfs.iter_mut().find(|u| u.addr == to) else {
                            continue;
                        };
                        if u.dead {
                            continue;
                        }
                        if u.drop_next > 0 {
                            u.drop_next -= 1;
                            continue;
                        }
                        if u.lost() {
                            continue;
                        }
                        if let Some(rsp) = u.fake.handle(&data) {
                            if !u.lost() {
                                self.q.push_back(Delivery::Pfcp(u.addr, rsp));
                            }
                        }
                    }
                    Action::N2Setup(n2) => {
                        if let Some(old) = n2.replace_dl_teid {
                            self.gnb.tunnels.remove(&old);
                            self.gnb.deleted.push(old);
                        }
                        let r = match &self.gnb.fail {
                            Some(e) => Err(e.clone()),
                            None => {
                                let t = self.gnb.next_teid;
                                self.gnb.next_teid += 1;
                                self.gnb.tunnels.insert(t, n2.setup);
                                Ok(TunnelSetupResponse {
                                    dl_teid: t,
                                    dl_addr: IpAddr::V4(Ipv4Addr::new(10, 3, 0, 1)),
                                })
                            }
                        };
                        self.q.push_back(Delivery::N2(n2.key, n2.gen, n2.gnb, r));
                    }
                    Action::N2Delete { dl_teid, .. } => {
                        self.gnb.tunnels.remove(&dl_teid);
                        self.gnb.deleted.push(dl_teid);
                    }
                    Action::N2Audit { gnb } => {
                        let r = match &self.gnb.fail {
                            Some(e) => Err(e.clone()),
                            None => Ok(self
                                .gnb
                                .tunnels
                                .iter()
                                .map(|(teid, t)| GnbTunnel {
                                    ue_id: t.ue_id.clone(),
                                    pdu_session_id: t.pdu_session_id,
                                    dl_teid: *teid,
                                    draining: false,
                                })
                                .collect()),
                        };
                        self.q.push_back(Delivery::Audit(gnb, r));
                    }
                    Action::CreateDone { req, result } => {
                        assert!(self.created.insert(req, result).is_none(), "answered twice");
                    }
                    Action::ReleaseDone { req, result } => {
                        assert!(
                            self.released.insert(req, result).is_none(),
                            "answered twice"
                        );
                    }
                }
            }
            match self.q.pop_front() {
                Some(Delivery::Pfcp(from, data)) => {
                    self.received.push((from, data.clone()));
                    self.smf.handle_pfcp(self.now, from, &data)
                }
                Some(Delivery::N2(key, gen, gnb, r)) => {
                    self.smf.n2_setup_done(self.now, &key, gen, &gnb, r)
                }
                Some(Delivery::Audit(gnb, r)) => self.smf.n2_audit_done(self.now, &gnb, r),
                None => break,
            }
        }
    }

    /// Advances virtual time by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        while let Some(t) = self.smf.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.smf.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    pub fn create(&mut self, ue: &str, psi: u8, dnn: &str, upf: Option<&str>) -> u64 {
        let id = self.next_req;
        self.next_req += 1;
        self.smf.create_session(
            self.now,
            id,
            SessionRequest {
                ue_id: ue.into(),
                pdu_session_id: psi,
                dnn: dnn.into(),
                upf: upf.map(str::to_owned),
                gnb: Some(gnb_ref()),
            },
        );
        self.pump();
        id
    }

    pub fn create_ok(&mut self, ue: &str, psi: u8, dnn: &str, upf: Option<&str>) -> SessionInfo {
        let id = self.create(ue, psi, dnn, upf);
        match self.created.remove(&id) {
            Some(Ok(i)) => i,
            other => panic!("create {ue}/{psi}: {other:?}"),
        }
    }

    pub fn release(&mut self, ue: &str, psi: u8) -> u64 {
        let id = self.next_req;
        self.next_req += 1;
        self.smf.release_session(self.now, id, ue, psi);
        self.pump();
        id
    }

    pub fn upf(&mut self, name: &str) -> &mut Upf {
        self.upfs
            .iter_mut()
            .find(|u| u.fake.name == name)
            .expect("configured")
    }

    /// Associates every UPF (the first timer tick sends Association Setup).
    pub fn associated() -> Sim {
        let mut s = Sim::new(CFG);
        s.advance(Duration::ZERO);
        for u in s.smf.upfs() {
            assert_eq!(u.state, AssocState::Associated, "{}", u.name);
        }
        s
    }

    pub fn in_use(&self, upf: &str) -> usize {
        self.smf
            .upfs()
            .into_iter()
            .find(|u| u.name == upf)
            .map(|u| u.pools[0].in_use)
            .expect("configured")
    }
}
