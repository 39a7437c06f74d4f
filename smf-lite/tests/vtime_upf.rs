//! The SMF core against the UPF's real N4 state machine, in virtual time.
//!
//! [`Pair`] (after quinn-proto's `tests/util.rs`) holds `smf_lite::core::Smf`
//! and `upf::n4::N4Node` with its `SessionTable`, and no socket: it moves
//! the PFCP datagrams between the two with a fixed latency (losing those a
//! test asks it to lose), answers the SMF's N2 actions as a gNB would, and
//! jumps virtual time to the next `poll_timeout()` of either side. Minutes of
//! heartbeats run in milliseconds.

use smf_lite::core::{AssocState, ReqId, SessionKey, SessionState};
use smf_lite::{Action, Config, Smf, SmfError};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, UNIX_EPOCH};
use upf::n4::{N4Node, N4Params};
use upf::rules::{Far, FarAction, Interface, OuterHeader};
use upf::session::{Limits, SessionTable};
use wire::ctl::{GnbRef, SessionInfo, SessionRequest, TunnelSetup, TunnelSetupResponse};
use wire::pfcp::{self, msg_type as mt, Message};

const SMF_N4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 100, 0, 1), 8805));
const UPF_N4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 100, 0, 11), 8805));
const UPF_N3: Ipv4Addr = Ipv4Addr::new(10, 100, 1, 11);
const GNB_N3: Ipv4Addr = Ipv4Addr::new(10, 100, 1, 5);
const UPF_RTS: u32 = 3_950_000_000;
const SMF_RTS: u32 = 3_950_000_100;
/// One way, both directions, N2 included.
const LATENCY: Duration = Duration::from_millis(1);

/// SMF timers: T1 500 ms, N1 3, heartbeat every 10 s.
const SMF_CFG: &str = r#"
node_id = "10.100.0.1"
n4_bind = "10.100.0.1:8805"
qfi = 9
[mbr]
ul_kbps = 20000
dl_kbps = 50000
[timers]
t1_ms = 500
n1 = 3
heartbeat_ms = 10000
[[upf]]
name = "upf1"
n4 = "10.100.0.11:8805"
[[upf.dnn]]
name = "internet"
pool = "10.60.0.0/24"
"#;
const T1: Duration = Duration::from_millis(500);
const N1: u32 = 3;
const SMF_HB: Duration = Duration::from_secs(10);
/// The UPF's own heartbeats towards the SMF.
const UPF_HB: Duration = Duration::from_secs(15);

/// The UPF's N4 parameters: heartbeats of its own, T1 3 s, N1 3.
fn upf_params() -> N4Params {
    N4Params {
        node_id: pfcp::NodeId::Ipv4(Ipv4Addr::new(10, 100, 0, 11)),
        f_seid_addr: Ipv4Addr::new(10, 100, 0, 11),
        recovery_ts: UPF_RTS,
        heartbeat_interval: Some(UPF_HB),
        heartbeat_retries: 3,
        t1: Duration::from_secs(3),
        n1: 3,
        cache_ttl: upf::n4::CACHE_TTL,
        data_poll_interval: upf::n4::DATA_POLL_INTERVAL,
        associate_with: Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Smf,
    Upf,
}

/// Something on its way, due at `at`.
enum Ev {
    Pfcp {
        to: Side,
        data: Vec<u8>,
    },
    /// The gNB's answer to an N2 tunnel setup.
    N2 {
        key: SessionKey,
        gen: u64,
        gnb: GnbRef,
        result: Result<TunnelSetupResponse, String>,
    },
}

/// A PFCP datagram that reached a side (or was lost on the way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    at: Instant,
    to: Side,
    ty: u8,
    seq: u32,
}

/// The gNB's side of N2: tunnels by downlink TEID.
#[derive(Default)]
struct Gnb {
    tunnels: Vec<(u32, TunnelSetup)>,
    deleted: Vec<u32>,
    next_teid: u32,
}

struct Pair {
    t0: Instant,
    now: Instant,
    smf: Smf,
    upf: N4Node,
    table: SessionTable,
    queue: VecDeque<(Instant, Ev)>,
    /// Datagrams delivered, in order.
    delivered: Vec<Seen>,
    /// Datagrams lost.
    lost: Vec<Seen>,
    /// One-shot losses: the next datagram of this type to this side.
    lose_next: Vec<(Side, u8)>,
    /// The UPF is cut off: every datagram to or from it is lost.
    upf_unplugged: bool,
    gnb: Gnb,
    created: Vec<(ReqId, Result<SessionInfo, SmfError>)>,
    released: Vec<(ReqId, Result<(), SmfError>)>,
    next_req: ReqId,
}

impl Pair {
    fn new() -> Pair {
        let cfg = Config::parse(SMF_CFG).expect("valid SMF config");
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        Pair {
            t0,
            now: t0,
            smf: Smf::new(&cfg, SMF_RTS, t0),
            upf: N4Node::new(upf_params(), t0, wall0),
            table: SessionTable::new(Limits::default(), UPF_N3, t0),
            queue: VecDeque::new(),
            delivered: Vec::new(),
            lost: Vec::new(),
            lose_next: Vec::new(),
            upf_unplugged: false,
            gnb: Gnb {
                next_teid: 0x5000,
                ..Default::default()
            },
            created: Vec::new(),
            released: Vec::new(),
            next_req: 1,
        }
    }

    /// A pair whose association is up.
    fn associated() -> Pair {
        let mut p = Pair::new();
        p.run_until(T1, "association", |p| p.assoc() == AssocState::Associated);
        p
    }

    fn assoc(&self) -> AssocState {
        self.smf.upfs()[0].state
    }

    /// Sends a datagram towards `to`, unless it is to be lost.
    fn send(&mut self, to: Side, data: Vec<u8>) {
        let hdr = Message::parse(&data).expect("both sides send valid PFCP");
        let seen = Seen {
            at: self.now,
            to,
            ty: hdr.msg_type(),
            seq: hdr.header.seq,
        };
        if let Some(i) = self.lose_next.iter().position(|r| *r == (to, seen.ty)) {
            self.lose_next.remove(i);
            self.lost.push(seen);
            return;
        }
        if self.upf_unplugged {
            self.lost.push(seen);
            return;
        }
        self.schedule(self.now + LATENCY, Ev::Pfcp { to, data });
    }

    /// Queues `ev` for `at`, after everything due by then.
    fn schedule(&mut self, at: Instant, ev: Ev) {
        let i = self.queue.partition_point(|(t, _)| *t <= at);
        self.queue.insert(i, (at, ev));
    }

    /// Takes the outputs of both sides: datagrams onto the link, N2 calls
    /// to the gNB, API answers into `created`/`released`.
    fn pump(&mut self) {
        while let Some(a) = self.smf.poll_action() {
            match a {
                Action::SendPfcp { to, data } => {
                    assert_eq!(to, UPF_N4, "the SMF talks to its one UPF");
                    self.send(Side::Upf, data);
                }
                Action::N2Setup(n2) => {
                    if let Some(old) = n2.replace_dl_teid {
                        self.gnb_delete(old);
                    }
                    let dl_teid = self.gnb.next_teid;
                    self.gnb.next_teid += 1;
                    self.gnb.tunnels.push((dl_teid, n2.setup));
                    let result = Ok(TunnelSetupResponse {
                        dl_teid,
                        dl_addr: IpAddr::V4(GNB_N3),
                    });
                    let ev = Ev::N2 {
                        key: n2.key,
                        gen: n2.gen,
                        gnb: n2.gnb,
                        result,
                    };
                    // An HTTP call: there and back.
                    self.schedule(self.now + 2 * LATENCY, ev);
                }
                Action::N2Delete { dl_teid, .. } => self.gnb_delete(dl_teid),
                Action::N2Audit { gnb } => {
                    // The gNB lists its tunnels (answered at once).
                    let list = self
                        .gnb
                        .tunnels
                        .iter()
                        .map(|(teid, t)| smf_lite::core::GnbTunnel {
                            ue_id: t.ue_id.clone(),
                            pdu_session_id: t.pdu_session_id,
                            dl_teid: *teid,
                            draining: false,
                        })
                        .collect();
                    let now = self.now;
                    self.smf.n2_audit_done(now, &gnb, Ok(list));
                }
                Action::CreateDone { req, result } => self.created.push((req, result)),
                Action::ReleaseDone { req, result } => self.released.push((req, result)),
            }
        }
        // Events first: the rules are published before the response leaves.
        while let Some(ev) = self.upf.poll_event() {
            if ev == upf::n4::N4Event::RulesChanged {
                let _published = self.table.snapshot();
                while self.table.poll_event().is_some() {}
            }
        }
        while let Some(t) = self.upf.poll_transmit() {
            assert_eq!(t.destination, SMF_N4, "the UPF talks to its one SMF");
            self.send(Side::Smf, t.contents);
        }
    }

    fn gnb_delete(&mut self, dl_teid: u32) {
        self.gnb.tunnels.retain(|(t, _)| *t != dl_teid);
        self.gnb.deleted.push(dl_teid);
    }

    fn deliver(&mut self, ev: Ev) {
        match ev {
            Ev::Pfcp { to, data } => {
                let hdr = Message::parse(&data).expect("valid PFCP");
                self.delivered.push(Seen {
                    at: self.now,
                    to,
                    ty: hdr.msg_type(),
                    seq: hdr.header.seq,
                });
                match to {
                    Side::Smf => self.smf.handle_pfcp(self.now, UPF_N4, &data),
                    Side::Upf => self
                        .upf
                        .handle_datagram(self.now, SMF_N4, &data, &mut self.table),
                }
            }
            Ev::N2 {
                key,
                gen,
                gnb,
                result,
            } => self.smf.n2_setup_done(self.now, &key, gen, &gnb, result),
        }
    }

    /// Runs the next wakeup (a delivery or a timer of either side) if it is
    /// due by `end`; false when there is none.
    fn step(&mut self, end: Instant) -> bool {
        self.pump();
        let next = [
            self.smf.poll_timeout(),
            self.upf.poll_timeout(),
            self.queue.front().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(t) = next.filter(|t| *t <= end) else {
            return false;
        };
        self.now = self.now.max(t);
        while self.queue.front().is_some_and(|(at, _)| *at <= self.now) {
            if let Some((_, ev)) = self.queue.pop_front() {
                self.deliver(ev);
            }
        }
        if self.smf.poll_timeout().is_some_and(|t| t <= self.now) {
            self.smf.handle_timeout(self.now);
        }
        if self.upf.poll_timeout().is_some_and(|t| t <= self.now) {
            self.upf.handle_timeout(self.now, &mut self.table);
        }
        self.pump();
        true
    }

    /// Runs every wakeup of the next `d`, then sets the clock to its end.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut steps = 0u64;
        while self.step(end) {
            steps += 1;
            assert!(steps < 10_000_000, "virtual time does not advance");
        }
        self.now = end;
    }

    /// Runs until `cond` holds; panics if it does not within `within`.
    fn run_until(&mut self, within: Duration, what: &str, cond: impl Fn(&Pair) -> bool) {
        let end = self.now + within;
        while !cond(self) {
            assert!(
                self.step(end),
                "{what}: not within {within:?} (at {:?})",
                self.now - self.t0
            );
        }
    }

    fn create(&mut self, ue: &str, psi: u8) -> ReqId {
        let req = self.next_req;
        self.next_req += 1;
        let r = SessionRequest {
            ue_id: ue.into(),
            pdu_session_id: psi,
            dnn: "internet".into(),
            upf: None,
            gnb: Some(GnbRef {
                name: "gnb1".into(),
                n2_api: "10.100.0.5:7002".into(),
            }),
        };
        self.smf.create_session(self.now, req, r);
        req
    }

    /// Creates a session and runs until it is answered; the answer must be
    /// a success.
    fn create_ok(&mut self, ue: &str, psi: u8) -> SessionInfo {
        let req = self.create(ue, psi);
        self.run_until(Duration::from_secs(10), "session created", |p| {
            p.created.iter().any(|(r, _)| *r == req)
        });
        match &self.created.iter().find(|(r, _)| *r == req) {
            Some((_, Ok(info))) => info.clone(),
            other => panic!("create {ue}/{psi}: {other:?}"),
        }
    }

    fn release(&mut self, ue: &str, psi: u8) -> ReqId {
        let req = self.next_req;
        self.next_req += 1;
        self.smf.release_session(self.now, req, ue, psi);
        req
    }

    fn count(&self, to: Side, ty: u8) -> usize {
        self.delivered
            .iter()
            .filter(|s| s.to == to && s.ty == ty)
            .count()
    }

    fn state(&self, ue: &str, psi: u8) -> Option<SessionState> {
        self.smf.session(ue, psi).map(|v| v.state)
    }

    /// The UPF's FAR `id` of the session with UP SEID `seid`.
    fn far(&self, seid: u64, id: u32) -> Far {
        let s = self.table.session(seid).expect("session at the UPF");
        s.far(id).unwrap_or_else(|| panic!("FAR {id}")).clone()
    }
}

/// The downlink FAR once the gNB is known: N3 towards its F-TEID.
fn forward_to_gnb(dl_teid: u32) -> FarAction {
    FarAction::Forward {
        destination: Interface::Access,
        outer_header: Some(OuterHeader {
            teid: dl_teid,
            peer: SocketAddrV4::new(GNB_N3, 2152),
        }),
    }
}

#[test]
fn association_setup_from_the_smf() {
    let mut p = Pair::new();
    assert_eq!(p.assoc(), AssocState::Down);
    p.run_until(T1, "association", |p| p.assoc() == AssocState::Associated);
    assert_eq!(p.now - p.t0, 2 * LATENCY, "one round trip, no retry");

    let u = &p.smf.upfs()[0];
    assert_eq!(u.recovery_time_stamp, Some(UPF_RTS));
    assert_eq!(u.node_id.as_deref(), Some("10.100.0.11"));
    let smf_node = pfcp::NodeId::Ipv4(Ipv4Addr::new(10, 100, 0, 1));
    assert!(p.upf.is_associated(&smf_node));
    let assocs: Vec<SocketAddr> = p.upf.associations().map(|(_, a)| a).collect();
    assert_eq!(assocs, vec![SMF_N4]);
    assert_eq!(p.count(Side::Upf, mt::AssociationSetupRequest), 1);
    assert_eq!(p.count(Side::Smf, mt::AssociationSetupResponse), 1);
}

#[test]
fn session_established_then_its_downlink_far_forwards_to_the_gnb() {
    let mut p = Pair::associated();
    let req = p.create("imsi-001010000000001", 1);

    // Stop at WaitN2: the UPF has the rules, the downlink FAR buffers.
    p.run_until(T1, "establishment answered", |p| {
        p.state("imsi-001010000000001", 1) == Some(SessionState::WaitN2)
    });
    let v = p.smf.session("imsi-001010000000001", 1).expect("session");
    let up_seid = v.info.up_seid;
    let s = p.table.session(up_seid).expect("session at the UPF");
    assert_eq!(s.remote_seid, v.info.cp_seid);
    assert_eq!(s.ue_ip(), Some(v.info.ue_addr));
    assert_eq!(s.teids(), vec![v.info.ul_teid], "the chosen uplink TEID");
    assert_eq!(v.info.ul_addr, IpAddr::V4(UPF_N3));
    assert_eq!(s.pdr_count(), 2);
    let ul = s.pdr(1).expect("uplink PDR");
    assert_eq!((ul.pdi.source_interface, ul.far_id), (Interface::Access, 1));
    assert!(ul.outer_header_removal);
    let dl = s.pdr(2).expect("downlink PDR");
    assert_eq!((dl.pdi.source_interface, dl.far_id), (Interface::Core, 2));
    assert_eq!(dl.pdi.ue_ip, Some(v.info.ue_addr));
    assert!(matches!(
        p.far(up_seid, 1).action,
        FarAction::Forward {
            destination: Interface::Core,
            outer_header: None
        }
    ));
    assert_eq!(p.far(up_seid, 2).action, FarAction::Buffer);
    assert!(s.qer(1).is_some() && s.urr(1).is_some());

    // The gNB answers; the modification points the FAR at its F-TEID.
    p.run_until(T1, "session created", |p| !p.created.is_empty());
    let [(r, Ok(info))] = &p.created[..] else {
        panic!("one successful answer: {:?}", p.created)
    };
    assert_eq!(*r, req);
    assert_eq!(info.dl_teid, 0x5000);
    assert_eq!(info.dl_addr, IpAddr::V4(GNB_N3));
    assert_eq!(p.far(up_seid, 2).action, forward_to_gnb(info.dl_teid));
    assert_eq!(p.gnb.tunnels.len(), 1);
    assert_eq!(p.gnb.tunnels[0].1.ul_teid, info.ul_teid);
    assert_eq!(
        p.state("imsi-001010000000001", 1),
        Some(SessionState::Active)
    );
    // After the association: establish, N2, modify, a round trip each.
    assert_eq!(p.now - p.t0, 2 * LATENCY + 3 * 2 * LATENCY);
    assert_eq!(p.smf.metrics().pfcp_retransmissions, 0);
}

#[test]
fn released_session_is_gone_at_the_upf() {
    let mut p = Pair::associated();
    let keep = p.create_ok("imsi-001010000000002", 1);
    let gone = p.create_ok("imsi-001010000000003", 5);
    assert_eq!(p.table.len(), 2);

    let req = p.release("imsi-001010000000003", 5);
    p.run_until(T1, "released", |p| !p.released.is_empty());
    assert_eq!(p.released, vec![(req, Ok(()))]);
    assert!(p.table.session(gone.up_seid).is_none());
    assert!(p.table.session(keep.up_seid).is_some());
    let at_upf: Vec<(u64, u64)> = p.upf.sessions().collect();
    assert_eq!(at_upf, vec![(keep.up_seid, keep.cp_seid)]);
    assert_eq!(p.gnb.deleted, vec![gone.dl_teid]);
    assert!(p.smf.session("imsi-001010000000003", 5).is_none());
    assert_eq!(p.smf.upfs()[0].pools[0].in_use, 1);
    assert_eq!(p.count(Side::Upf, mt::SessionDeletionRequest), 1);
    assert_eq!(p.far(keep.up_seid, 2).action, forward_to_gnb(keep.dl_teid));
}

#[test]
fn lost_request_is_resent_on_t1_and_the_session_made_once() {
    let mut p = Pair::associated();
    p.lose_next
        .push((Side::Upf, mt::SessionEstablishmentRequest));
    let sent_at = p.now;
    let req = p.create("imsi-001010000000004", 1);
    p.run_until(T1 * 2, "session created", |p| !p.created.is_empty());

    assert!(matches!(&p.created[..], [(r, Ok(_))] if *r == req));
    assert_eq!(p.lost.len(), 1);
    assert_eq!(p.lost[0].at, sent_at);
    let ests: Vec<&Seen> = p
        .delivered
        .iter()
        .filter(|s| s.ty == mt::SessionEstablishmentRequest)
        .collect();
    assert_eq!(ests.len(), 1, "the resend, only");
    assert_eq!(ests[0].seq, p.lost[0].seq, "same transaction");
    assert_eq!(ests[0].at, sent_at + T1 + LATENCY);
    assert_eq!(p.smf.metrics().pfcp_retransmissions, 1);
    assert_eq!(p.table.len(), 1);

    // Nothing more comes of it: no second answer, no late resend.
    p.run_for(SMF_HB);
    assert_eq!(p.created.len(), 1);
    assert_eq!(p.count(Side::Upf, mt::SessionEstablishmentRequest), 1);
    assert_eq!(p.smf.metrics().pfcp_retransmissions, 1);
    assert_eq!(p.table.len(), 1);
}

#[test]
fn lost_response_is_answered_from_the_upf_cache_and_applied_once() {
    let mut p = Pair::associated();
    p.lose_next
        .push((Side::Smf, mt::SessionModificationResponse));
    let req = p.create("imsi-001010000000005", 1);
    p.run_until(T1 * 2, "session created", |p| !p.created.is_empty());

    let [(r, Ok(info))] = &p.created[..] else {
        panic!("one successful answer: {:?}", p.created)
    };
    assert_eq!(*r, req);
    assert_eq!(p.lost.len(), 1);
    assert_eq!(p.count(Side::Upf, mt::SessionModificationRequest), 2);
    assert_eq!(p.count(Side::Smf, mt::SessionModificationResponse), 1);
    let stats = p.upf.stats().snapshot();
    assert!(stats.contains(&("retransmission", 1)), "{stats:?}");
    assert_eq!(p.far(info.up_seid, 2).action, forward_to_gnb(info.dl_teid));
    assert_eq!(p.smf.metrics().pfcp_retransmissions, 1);
    assert_eq!(p.smf.metrics().sessions_created, 1);
}

#[test]
fn heartbeats_keep_an_idle_association_for_ten_minutes() {
    let mut p = Pair::associated();
    let info = p.create_ok("imsi-001010000000006", 1);
    let start = p.now;
    let wall = Instant::now();
    let idle = Duration::from_secs(600);
    p.run_for(idle);
    let took = wall.elapsed();

    assert_eq!(p.assoc(), AssocState::Associated);
    assert!(
        p.upf.associations().next().is_some(),
        "UPF still associated"
    );
    let per = |hb: Duration| (idle.as_secs() / hb.as_secs()) as usize;
    let smf_hbs = p.count(Side::Upf, mt::HeartbeatRequest);
    let upf_hbs = p.count(Side::Smf, mt::HeartbeatRequest);
    assert!(
        (per(SMF_HB) - 1..=per(SMF_HB) + 1).contains(&smf_hbs),
        "SMF heartbeats: {smf_hbs}"
    );
    assert!(
        (per(UPF_HB) - 1..=per(UPF_HB) + 1).contains(&upf_hbs),
        "UPF heartbeats: {upf_hbs}"
    );
    assert_eq!(p.count(Side::Smf, mt::HeartbeatResponse), smf_hbs);
    assert_eq!(p.count(Side::Upf, mt::HeartbeatResponse), upf_hbs);
    let m = p.smf.metrics();
    assert_eq!((m.pfcp_timeouts, m.pfcp_retransmissions), (0, 0));
    assert_eq!(m.heartbeats_rx, upf_hbs as u64);
    assert_eq!(p.smf.upfs()[0].restarts, 0);
    assert_eq!(
        p.state("imsi-001010000000006", 1),
        Some(SessionState::Active)
    );
    assert_eq!(p.far(info.up_seid, 2).action, forward_to_gnb(info.dl_teid));
    // No datagram other than heartbeats over the idle period.
    assert!(p
        .delivered
        .iter()
        .filter(|s| s.at > start)
        .all(|s| matches!(s.ty, mt::HeartbeatRequest | mt::HeartbeatResponse)));
    // Ten virtual minutes (with a data-path poll every 20 ms at the UPF).
    eprintln!("600 s of virtual time in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn upf_that_stops_answering_is_declared_down_after_the_retries() {
    let mut p = Pair::associated();
    p.create_ok("imsi-001010000000007", 1);
    p.run_for(SMF_HB / 2);
    p.upf_unplugged = true;
    let cut = p.now;
    p.run_until(SMF_HB + T1 * (N1 + 1), "UPF declared down", |p| {
        p.assoc() != AssocState::Associated
    });
    let down = p.now;
    assert_eq!(p.assoc(), AssocState::Down);
    assert_eq!(p.state("imsi-001010000000007", 1), Some(SessionState::Lost));
    assert_eq!(p.smf.metrics().pfcp_timeouts, 1);

    // The unanswered heartbeat: sent, resent N1 times every T1, given up T1
    // after the last.
    let hbs: Vec<&Seen> = p
        .lost
        .iter()
        .filter(|s| s.to == Side::Upf && s.ty == mt::HeartbeatRequest)
        .collect();
    assert_eq!(hbs.len(), N1 as usize + 1, "{hbs:?}");
    assert!(hbs.iter().all(|s| s.seq == hbs[0].seq));
    assert!(hbs[0].at >= cut && hbs[0].at < cut + SMF_HB);
    for (i, s) in hbs.iter().enumerate() {
        assert_eq!(s.at, hbs[0].at + T1 * i as u32);
    }
    assert_eq!(down, hbs[0].at + T1 * (N1 + 1));
    assert_eq!(p.smf.metrics().pfcp_retransmissions, u64::from(N1));

    // Plugged back in within the UPF's own patience: association again
    // (the next try, one heartbeat interval on) and the session restored
    // over PFCP, one session at the UPF.
    p.upf_unplugged = false;
    p.run_until(SMF_HB + T1, "association again", |p| {
        p.assoc() == AssocState::Associated
    });
    p.run_until(T1, "session restored", |p| {
        p.state("imsi-001010000000007", 1) == Some(SessionState::Active)
    });
    assert_eq!(p.smf.metrics().sessions_restored, 1);
    assert_eq!(p.table.len(), 1);
    let v = p.smf.session("imsi-001010000000007", 1).expect("session");
    assert_eq!(
        p.far(v.info.up_seid, 2).action,
        forward_to_gnb(v.info.dl_teid)
    );
}
