//! The N4 node against a simulated SMF in the same process, in virtual
//! time: no socket, no sleep; a timer of minutes runs in microseconds.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

use wire::pfcp::{self, Message, MessageBody};

use super::fixtures::GNB;
use super::*;
use crate::datapath::Verdict;
use crate::packet::build_udp;
use crate::pfcp_map::NTP_UNIX_OFFSET;
use crate::session::Limits;

mod assoc;
mod bad_input;
mod far_params;
mod peers;
mod reports;

const UPF_N3: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
const UPF_N4: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 2);
const SRV: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
const RECOVERY: u32 = 3_950_000_000;
/// 2026-01-01T00:00:00Z, the wall clock at the start of every test.
const WALL0_UNIX: u64 = 1_767_225_600;

fn smf_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 4, 10 + i], 8805))
}

fn params() -> N4Params {
    N4Params {
        node_id: pfcp::NodeId::Ipv4(UPF_N4),
        f_seid_addr: UPF_N4,
        recovery_ts: RECOVERY,
        heartbeat_interval: Some(Duration::from_secs(5)),
        heartbeat_retries: 3,
        t1: Duration::from_secs(3),
        n1: 3,
        cache_ttl: Duration::from_secs(60),
        data_poll_interval: Duration::from_millis(20),
        associate_with: Vec::new(),
    }
}

/// What the UPF sent, when, to whom.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    to: SocketAddr,
    bytes: Vec<u8>,
    msg: Message,
}

/// The UPF's N4 node, its session table, and the SMF side of the link.
struct Sim {
    node: N4Node,
    table: SessionTable,
    t0: Instant,
    now: Instant,
    /// Everything the UPF sent, oldest first, not yet taken by the test.
    out: VecDeque<Sent>,
    events: Vec<N4Event>,
    /// The SMF answers the UPF's Heartbeat Requests at once, with the
    /// Recovery Time Stamp it associated with.
    answer_heartbeats: bool,
    /// Each SMF's Recovery Time Stamp, by address (set by `associate`).
    recovery: HashMap<SocketAddr, u32>,
    /// The SMF accepts the UPF's Session Report Requests at once.
    answer_reports: bool,
    seq: u32,
}

impl Sim {
    fn new(p: N4Params) -> Sim {
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + Duration::from_secs(WALL0_UNIX);
        Sim {
            node: N4Node::new(p, t0, wall0),
            table: SessionTable::new(Limits::default(), UPF_N3, t0),
            t0,
            now: t0,
            out: VecDeque::new(),
            events: Vec::new(),
            answer_heartbeats: false,
            recovery: HashMap::new(),
            answer_reports: false,
            seq: 0,
        }
    }

    /// Drain the node's events (publishing like the daemon does) and
    /// transmits; the simulated SMF answers heartbeats if asked to.
    fn pump(&mut self) {
        loop {
            while let Some(ev) = self.node.poll_event() {
                if ev == N4Event::RulesChanged {
                    // What the daemon publishes; also drains End Markers.
                    let _snap = self.table.snapshot();
                    while self.table.poll_event().is_some() {}
                }
                self.events.push(ev);
            }
            let mut answers = Vec::new();
            while let Some(t) = self.node.poll_transmit() {
                let msg = Message::parse(&t.contents).expect("the UPF sends valid PFCP");
                if self.answer_heartbeats && matches!(msg.body, MessageBody::HeartbeatRequest(_)) {
                    let r = Message::node(
                        msg.header.seq,
                        pfcp::HeartbeatResponse {
                            recovery_time_stamp: self
                                .recovery
                                .get(&t.destination)
                                .copied()
                                .unwrap_or(0),
                            ..Default::default()
                        },
                    );
                    answers.push((t.destination, r.to_vec().expect("encode")));
                }
                if self.answer_reports && matches!(msg.body, MessageBody::SessionReportRequest(_)) {
                    let remote = msg.header.seid.unwrap_or(0);
                    let local = self
                        .node
                        .sessions()
                        .find(|(_, r)| *r == remote)
                        .map_or(0, |(l, _)| l);
                    let r = Message::session(
                        local,
                        msg.header.seq,
                        pfcp::SessionReportResponse {
                            cause: pfcp::Cause::RequestAccepted,
                            ..Default::default()
                        },
                    );
                    answers.push((t.destination, r.to_vec().expect("encode")));
                }
                self.out.push_back(Sent {
                    at: self.now,
                    to: t.destination,
                    bytes: t.contents,
                    msg,
                });
            }
            if answers.is_empty() {
                return;
            }
            for (smf, bytes) in answers {
                self.node
                    .handle_datagram(self.now, smf, &bytes, &mut self.table);
            }
        }
    }

    /// A datagram from `from` at the current time.
    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.node
            .handle_datagram(self.now, from, bytes, &mut self.table);
        self.pump();
    }

    /// Run the timers up to `now + d`, jumping from deadline to deadline.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.node.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.node.handle_timeout(self.now, &mut self.table);
            self.pump();
        }
        self.now = end;
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// Send a request from `from`; return the one response (same seq).
    fn request_from(&mut self, from: SocketAddr, m: Message) -> (Message, Vec<u8>) {
        let bytes = m.to_vec().expect("encode");
        self.deliver(from, &bytes);
        self.response_to(from, m.header.seq)
    }

    /// Take the response with `seq` sent to `to`.
    fn response_to(&mut self, to: SocketAddr, seq: u32) -> (Message, Vec<u8>) {
        let pos = self
            .out
            .iter()
            .position(|s| s.to == to && s.msg.header.seq == seq && !is_request(s.msg.msg_type()))
            .unwrap_or_else(|| panic!("no response to seq {seq}; sent: {:?}", self.out));
        let s = self.out.remove(pos).expect("present");
        (s.msg, s.bytes)
    }

    fn node_req(&mut self, from: SocketAddr, body: impl Into<MessageBody>) -> Message {
        let seq = self.next_seq();
        self.request_from(from, Message::node(seq, body)).0
    }

    fn session_req(
        &mut self,
        from: SocketAddr,
        seid: u64,
        body: impl Into<MessageBody>,
    ) -> Message {
        let seq = self.next_seq();
        self.request_from(from, Message::session(seid, seq, body)).0
    }

    /// Session Modification of UP SEID `seid` by SMF `i`: its response.
    fn modify(
        &mut self,
        i: u8,
        seid: u64,
        req: pfcp::SessionModificationRequest,
    ) -> pfcp::SessionModificationResponse {
        let m = self.session_req(smf_addr(i), seid, req);
        match m.body {
            MessageBody::SessionModificationResponse(r) => r,
            b => panic!("unexpected {b:?}"),
        }
    }

    fn associate(&mut self, i: u8, recovery: u32) -> pfcp::AssociationSetupResponse {
        self.recovery.insert(smf_addr(i), recovery);
        let r = self.node_req(
            smf_addr(i),
            pfcp::AssociationSetupRequest {
                node_id: smf_node(i),
                recovery_time_stamp: recovery,
                ..Default::default()
            },
        );
        match r.body {
            MessageBody::AssociationSetupResponse(a) => a,
            b => panic!("unexpected {b:?}"),
        }
    }

    /// Establish; returns (UP SEID, uplink TEID).
    fn establish(&mut self, i: u8, cp_seid: u64) -> (u64, u32) {
        let r = self.session_req(smf_addr(i), 0, est_request(i, cp_seid));
        assert_eq!(r.header.seid, Some(cp_seid), "addressed to the SMF's SEID");
        let MessageBody::SessionEstablishmentResponse(e) = r.body else {
            panic!("unexpected {r:?}")
        };
        assert_eq!(e.cause, pfcp::Cause::RequestAccepted, "{e:?}");
        let f = e.up_f_seid.expect("UP F-SEID");
        assert_eq!(f.ipv4, Some(UPF_N4));
        let Some(pfcp::FTeid::Assigned { teid, ipv4, .. }) = e.created_pdrs[0].local_f_teid else {
            panic!("no Created PDR with an F-TEID: {e:?}")
        };
        assert_eq!(ipv4, Some(UPF_N3), "TEID on the N3 address");
        (f.seid, teid)
    }

    /// Requests of type `t` the UPF sent, taken from `out`.
    fn take_requests(&mut self, t: u8) -> Vec<Sent> {
        let (mine, rest): (Vec<Sent>, Vec<Sent>) =
            self.out.drain(..).partition(|s| s.msg.msg_type() == t);
        self.out = rest.into();
        mine
    }

    fn take_events(&mut self) -> Vec<N4Event> {
        std::mem::take(&mut self.events)
    }

    /// The usage reports handed to the in-process API since the last take.
    fn take_usage_reports(&mut self) -> Vec<UsageReport> {
        self.take_events()
            .into_iter()
            .filter_map(|e| match e {
                N4Event::UsageReports(r) => Some(r),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// SMF 1 (Recovery Time Stamp 100) with sessions 1 and 2, SMF 2 (200)
/// with session 3: their UP SEIDs.
fn two_smfs_three_sessions(sim: &mut Sim) -> (u64, u64, u64) {
    sim.associate(1, 100);
    sim.associate(2, 200);
    let (a, _) = sim.establish(1, 1);
    let (b, _) = sim.establish(1, 2);
    let (c, _) = sim.establish(2, 3);
    sim.take_events();
    (a, b, c)
}

/// Each session its own UE address (the table refuses duplicates).
fn ue(cp_seid: u64) -> Ipv4Addr {
    Ipv4Addr::new(10, 60, (cp_seid >> 8) as u8, cp_seid as u8)
}

fn smf_node(i: u8) -> pfcp::NodeId {
    pfcp::NodeId::fqdn(&format!("smf{i}.test.example"))
}

/// The shared paging-case session of SMF `i` with CP SEID `cp_seid`.
fn est_request(i: u8, cp_seid: u64) -> pfcp::SessionEstablishmentRequest {
    super::fixtures::paging_session(
        smf_node(i),
        pfcp::FSeid::ipv4(cp_seid, Ipv4Addr::new(10, 0, 4, 10 + i)),
        ue(cp_seid),
        None,
    )
}

/// A downlink packet for the UE goes through the data path as the
/// downlink thread would handle it (here: into the BUFF queue).
fn downlink_packet(sim: &Sim, cp_seid: u64) {
    let snap = sim.table.snapshot();
    let pkt = build_udp(SRV, 5000, ue(cp_seid), 6000, b"page me");
    match snap.downlink(&pkt, sim.now, true) {
        Verdict::Buffer(s) => assert!(s.buffer_packet(&pkt), "buffered"),
        _ => panic!("the DL FAR buffers"),
    }
}

#[test]
fn association_then_session_establishment() {
    let mut sim = Sim::new(params());
    // A heartbeat before any association is answered.
    let r = sim.node_req(
        smf_addr(1),
        pfcp::HeartbeatRequest {
            recovery_time_stamp: 1,
            ..Default::default()
        },
    );
    let MessageBody::HeartbeatResponse(h) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(h.recovery_time_stamp, RECOVERY);

    let a = sim.associate(1, 100);
    assert_eq!(a.cause, pfcp::Cause::RequestAccepted);
    assert_eq!(a.node_id, pfcp::NodeId::Ipv4(UPF_N4));
    assert_eq!(a.recovery_time_stamp, RECOVERY);
    assert!(a
        .up_function_features
        .expect("UP features")
        .has(pfcp::up_features::FTUP));
    assert!(sim.node.is_associated(&smf_node(1)));
    assert!(sim.table.is_empty());
    assert!(
        sim.take_events().is_empty(),
        "an association changes no rule"
    );

    let (seid, teid) = sim.establish(1, 0x51);
    assert_eq!(sim.table.len(), 1);
    let s = sim.table.session(seid).expect("in the table");
    assert_eq!(s.remote_seid, 0x51);
    assert_eq!(s.teids(), vec![teid], "the TEID the response names");
    assert_eq!(sim.node.sessions().collect::<Vec<_>>(), vec![(seid, 0x51)]);
    assert_eq!(sim.take_events(), vec![N4Event::RulesChanged]);

    // Modification with a new CP F-SEID, then deletion, both addressed to
    // the SMF's current SEID.
    let r = sim.session_req(
        smf_addr(1),
        seid,
        pfcp::SessionModificationRequest {
            cp_f_seid: Some(pfcp::FSeid::ipv4(0x52, Ipv4Addr::new(10, 0, 4, 11))),
            remove_pdrs: vec![pfcp::RemovePdr {
                pdr_id: 2,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(r.header.seid, Some(0x52));
    assert!(
        matches!(r.body, MessageBody::SessionModificationResponse(ref m) if m.cause == pfcp::Cause::RequestAccepted),
        "{r:?}"
    );
    assert!(sim
        .table
        .session(seid)
        .expect("still there")
        .pdr(2)
        .is_none());
    // Another SMF cannot touch it.
    sim.associate(2, 200);
    let r = sim.session_req(smf_addr(2), seid, pfcp::SessionDeletionRequest::default());
    assert!(
        matches!(r.body, MessageBody::SessionDeletionResponse(ref d) if d.cause == pfcp::Cause::SessionContextNotFound),
        "{r:?}"
    );
    assert_eq!(sim.table.len(), 1);
    sim.take_events();
    let r = sim.session_req(smf_addr(1), seid, pfcp::SessionDeletionRequest::default());
    assert_eq!(r.header.seid, Some(0x52));
    let MessageBody::SessionDeletionResponse(d) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(d.cause, pfcp::Cause::RequestAccepted);
    assert_eq!(d.usage_reports.len(), 1, "final report of URR 1");
    assert!(sim.table.is_empty());
    assert_eq!(sim.take_events(), vec![N4Event::RulesChanged]);
    assert_eq!(sim.node.sessions().count(), 0);
}

#[test]
fn request_without_association_gets_cause_72() {
    let mut sim = Sim::new(params());
    let r = sim.session_req(smf_addr(1), 0, est_request(1, 7));
    assert_eq!(r.header.seid, Some(7), "addressed to the CP SEID");
    let MessageBody::SessionEstablishmentResponse(e) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(e.cause, pfcp::Cause::NoEstablishedPfcpAssociation);
    assert_eq!(u8::from(e.cause), 72);
    assert!(sim.table.is_empty(), "nothing executed");
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.node.stats().rejected.load(Ordering::Relaxed), 1);
    // Update of an association that does not exist: 72 too.
    let r = sim.node_req(
        smf_addr(1),
        pfcp::AssociationUpdateRequest {
            node_id: smf_node(1),
            ..Default::default()
        },
    );
    assert!(
        matches!(r.body, MessageBody::AssociationUpdateResponse(ref u) if u.cause == pfcp::Cause::NoEstablishedPfcpAssociation)
    );
    // Associated, then released: sessions go, and 72 again.
    sim.associate(1, 100);
    sim.establish(1, 8);
    let r = sim.node_req(
        smf_addr(1),
        pfcp::AssociationReleaseRequest {
            node_id: smf_node(1),
            ..Default::default()
        },
    );
    assert!(
        matches!(r.body, MessageBody::AssociationReleaseResponse(ref u) if u.cause == pfcp::Cause::RequestAccepted)
    );
    assert!(sim.table.is_empty(), "released with its sessions");
    let r = sim.session_req(smf_addr(1), 0, est_request(1, 9));
    assert!(
        matches!(r.body, MessageBody::SessionEstablishmentResponse(ref e) if e.cause == pfcp::Cause::NoEstablishedPfcpAssociation)
    );
    assert!(sim.table.is_empty());
}

#[test]
fn retransmission_answered_from_cache_until_it_expires() {
    let mut sim = Sim::new(params());
    sim.answer_heartbeats = true;
    sim.associate(1, 100);
    sim.take_events();
    let seq = sim.next_seq();
    let req = Message::session(0, seq, est_request(1, 0x70))
        .to_vec()
        .expect("encode");
    sim.deliver(smf_addr(1), &req);
    let (m, first) = sim.response_to(smf_addr(1), seq);
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    let up_seid = e.up_f_seid.expect("established").seid;
    assert_eq!(sim.take_events(), vec![N4Event::RulesChanged]);
    // The same request again, 2 s later: same bytes, not executed again.
    sim.advance(Duration::from_secs(2));
    sim.deliver(smf_addr(1), &req);
    let (_, second) = sim.response_to(smf_addr(1), seq);
    assert_eq!(first, second, "the cached response, byte for byte");
    assert_eq!(sim.table.len(), 1, "executed once");
    assert!(sim.take_events().is_empty(), "no rule change");
    assert_eq!(sim.node.stats().retransmissions.load(Ordering::Relaxed), 1);
    // Same sequence number from another SMF: a different request.
    sim.associate(2, 200);
    let other = Message::session(0, seq, est_request(2, 0x71))
        .to_vec()
        .expect("encode");
    sim.deliver(smf_addr(2), &other);
    sim.response_to(smf_addr(2), seq);
    assert_eq!(sim.table.len(), 2);
    // The SMF deletes the session; after the cache lifetime the entry is
    // gone and the same bytes are a new request (a wrapped sequence
    // number): executed.
    let r = sim.session_req(
        smf_addr(1),
        up_seid,
        pfcp::SessionDeletionRequest::default(),
    );
    assert!(
        matches!(r.body, MessageBody::SessionDeletionResponse(ref d) if d.cause == pfcp::Cause::RequestAccepted)
    );
    sim.advance(Duration::from_secs(57));
    sim.deliver(smf_addr(1), &req);
    let (_, fresh) = sim.response_to(smf_addr(1), seq);
    assert_eq!(first, fresh, "59 s: still the cached response");
    assert_eq!(sim.table.len(), 1, "only SMF 2's session");
    sim.advance(Duration::from_secs(2));
    sim.deliver(smf_addr(1), &req);
    let (_, fresh) = sim.response_to(smf_addr(1), seq);
    assert_ne!(first, fresh, "a new UP SEID");
    assert_eq!(sim.table.len(), 2, "executed again after expiry");
    assert_eq!(sim.node.stats().retransmissions.load(Ordering::Relaxed), 2);
}

#[test]
fn heartbeats_sent_on_interval_and_association_dropped_after_misses() {
    let real = Instant::now();
    // 5 s interval, 3 retries; no data-path poll: only the heartbeat timers
    // drive virtual time.
    let mut sim = Sim::new(N4Params {
        data_poll_interval: Duration::from_secs(3600),
        ..params()
    });
    sim.associate(1, 100);
    let (seid, _) = sim.establish(1, 0x90);
    sim.take_events();
    sim.advance(Duration::from_secs(24));
    let hbs = sim.take_requests(1);
    let times: Vec<u64> = hbs.iter().map(|s| (s.at - sim.t0).as_secs()).collect();
    assert_eq!(
        times,
        vec![5, 10, 15, 20],
        "every interval, from the association"
    );
    assert!(hbs.iter().all(|s| s.to == smf_addr(1)));
    let mut seqs: Vec<u32> = hbs.iter().map(|s| s.msg.header.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 4, "a new sequence number each time");
    for s in &hbs {
        let MessageBody::HeartbeatRequest(h) = &s.msg.body else {
            panic!()
        };
        assert_eq!(h.recovery_time_stamp, RECOVERY);
    }
    assert!(
        sim.node.is_associated(&smf_node(1)),
        "3 retries not used up yet"
    );
    assert!(sim.table.session(seid).is_some());
    // One interval after the 4th unanswered request (1 + 3 retries).
    sim.advance(Duration::from_secs(1));
    assert!(!sim.node.is_associated(&smf_node(1)));
    assert!(sim.table.is_empty(), "its sessions dropped");
    assert_eq!(
        sim.take_events(),
        vec![
            N4Event::RulesChanged,
            N4Event::AssociationLost { node: smf_node(1) }
        ]
    );
    assert!(sim.take_requests(1).is_empty(), "no heartbeat at the drop");
    // No more heartbeats to a node without association.
    sim.advance(Duration::from_secs(60));
    assert!(sim.take_requests(1).is_empty());
    let elapsed = real.elapsed();
    eprintln!("85 s of virtual time in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "virtual time, no sleep");
}

#[test]
fn answered_heartbeats_keep_the_association() {
    let mut sim = Sim::new(params());
    sim.answer_heartbeats = true;
    sim.associate(1, 100);
    sim.establish(1, 0x91);
    sim.advance(Duration::from_secs(600));
    assert_eq!(sim.take_requests(1).len(), 120, "one per 5 s for 10 min");
    assert!(sim.node.is_associated(&smf_node(1)));
    assert_eq!(sim.table.len(), 1);
    // The SMF goes silent: dropped after 1 + 3 more intervals.
    sim.answer_heartbeats = false;
    sim.advance(Duration::from_secs(20));
    assert!(sim.node.is_associated(&smf_node(1)));
    sim.advance(Duration::from_secs(5));
    assert!(!sim.node.is_associated(&smf_node(1)));
    assert!(sim.table.is_empty());
}

#[test]
fn session_report_resent_every_t1_up_to_n1_then_given_up() {
    let mut sim = Sim::new(params()); // T1 3 s, N1 3
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    let (seid, _) = sim.establish(1, 0xa0);
    sim.advance(Duration::from_millis(100));
    assert!(sim.take_requests(56).is_empty(), "nothing to report yet");
    // The first downlink packet lands in the BUFF queue of a NOCP FAR.
    downlink_packet(&sim, 0xa0);
    let start = sim.now;
    sim.advance(Duration::from_secs(20));
    let reports: Vec<Sent> = sim
        .take_requests(56)
        .into_iter()
        .filter(|s| {
            matches!(&s.msg.body, MessageBody::SessionReportRequest(r) if r.report_type.contains(pfcp::ReportType::DLDR))
        })
        .collect();
    assert_eq!(reports.len(), 4, "first send and N1 = 3 resends");
    let first = &reports[0];
    assert!(
        first.at - start <= Duration::from_millis(20),
        "at the next data poll"
    );
    assert_eq!(first.to, smf_addr(1));
    assert_eq!(first.msg.header.seid, Some(0xa0), "to the SMF's SEID");
    let MessageBody::SessionReportRequest(r) = &first.msg.body else {
        panic!()
    };
    assert_eq!(
        r.downlink_data_report.as_ref().map(|d| d.pdr_ids.clone()),
        Some(vec![2]),
        "the PDR that buffered"
    );
    for (i, s) in reports.iter().enumerate() {
        assert_eq!(s.bytes, first.bytes, "a resend is the same message");
        assert_eq!(
            s.at - first.at,
            Duration::from_secs(3) * i as u32,
            "every T1"
        );
    }
    assert_eq!(sim.node.pending_requests(), 0, "given up");
    let gave_up: Vec<N4Event> = sim
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, N4Event::ReportUnanswered { .. }))
        .collect();
    assert_eq!(
        gave_up,
        vec![N4Event::ReportUnanswered {
            peer: smf_addr(1),
            seid,
            seq: first.msg.header.seq
        }]
    );
    assert_eq!(
        sim.node.stats().reports_unanswered.load(Ordering::Relaxed),
        1
    );
    // Still buffering, not a new first packet: no new report.
    downlink_packet(&sim, 0xa0);
    sim.advance(Duration::from_secs(1));
    assert!(sim
        .take_requests(56)
        .iter()
        .all(|s| !matches!(&s.msg.body, MessageBody::SessionReportRequest(r) if r.report_type.contains(pfcp::ReportType::DLDR))));
}

#[test]
fn answered_session_report_is_not_resent() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    sim.establish(1, 0xa1);
    downlink_packet(&sim, 0xa1);
    sim.advance(Duration::from_secs(4)); // first send and one resend
    let sent = sim.take_requests(56);
    assert_eq!(sent.len(), 2);
    let resp = Message::session(
        0xa1,
        sent[0].msg.header.seq,
        pfcp::SessionReportResponse {
            cause: pfcp::Cause::RequestAccepted,
            ..Default::default()
        },
    );
    sim.deliver(smf_addr(1), &resp.to_vec().expect("encode"));
    assert_eq!(sim.node.pending_requests(), 0);
    sim.advance(Duration::from_secs(30));
    let later: Vec<Sent> = sim
        .take_requests(56)
        .into_iter()
        .filter(|s| {
            matches!(&s.msg.body, MessageBody::SessionReportRequest(r) if r.report_type.contains(pfcp::ReportType::DLDR))
        })
        .collect();
    assert!(later.is_empty(), "{later:?}");
}

#[test]
fn period_usage_report_carries_times_of_the_injected_clock() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    sim.answer_heartbeats = true;
    sim.advance(Duration::from_secs(1));
    let mut r = est_request(1, 0xb0);
    r.create_urrs[0].reporting_triggers = pfcp::ReportingTriggers::PERIO;
    r.create_urrs[0].measurement_period = Some(10);
    r.create_urrs[0].volume_threshold = None;
    let m = sim.session_req(smf_addr(1), 0, r);
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    let seid = e.up_f_seid.expect("established").seid;
    sim.take_events();
    sim.advance(Duration::from_secs(10) + Duration::from_millis(20));
    let usar: Vec<Sent> = sim.take_requests(56);
    assert_eq!(usar.len(), 1, "{usar:?}");
    let MessageBody::SessionReportRequest(r) = &usar[0].msg.body else {
        panic!()
    };
    assert!(r.report_type.contains(pfcp::ReportType::USAR));
    let u = &r.usage_reports[0];
    assert_eq!(u.urr_id, 1);
    assert_eq!(u.usage_report_trigger, pfcp::UsageReportTrigger::PERIO);
    let ntp = |s: u64| (WALL0_UNIX + NTP_UNIX_OFFSET + s) as u32;
    assert_eq!(
        u.start_time,
        Some(ntp(1)),
        "established 1 s after the anchor"
    );
    assert_eq!(u.end_time, Some(ntp(11)));
    let reports = sim.take_usage_reports();
    assert_eq!(reports.len(), 1, "also handed to the in-process API");
    assert_eq!(reports[0].seid, seid);
}

#[test]
fn smf_restart_clears_its_old_sessions_only() {
    let mut sim = Sim::new(params());
    sim.answer_heartbeats = true;
    let (a, b, c) = two_smfs_three_sessions(&mut sim);
    // Setup again with the same Recovery Time Stamp: nothing lost.
    sim.associate(1, 100);
    assert_eq!(sim.table.len(), 3);
    assert!(sim.take_events().is_empty());
    // SMF 1 restarted: a new Recovery Time Stamp.
    let r = sim.associate(1, 101);
    assert_eq!(r.cause, pfcp::Cause::RequestAccepted);
    assert!(sim.table.session(a).is_none());
    assert!(sim.table.session(b).is_none());
    assert!(sim.table.session(c).is_some(), "SMF 2's session stays");
    assert_eq!(sim.node.sessions().collect::<Vec<_>>(), vec![(c, 3)]);
    assert_eq!(sim.take_events(), vec![N4Event::RulesChanged]);
    assert!(sim.node.is_associated(&smf_node(1)), "associated anew");
    // The restarted SMF works with new sessions.
    sim.establish(1, 1);
    assert_eq!(sim.table.len(), 2);
}

fn established_seid(m: Message) -> u64 {
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(e.cause, pfcp::Cause::RequestAccepted, "{e:?}");
    e.up_f_seid.expect("established").seid
}
