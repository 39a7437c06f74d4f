//! N4 in namespaces: a test SMF (PFCP client built on `wire::pfcp`) in the
//! gNB namespace drives the UPF; a test gNB sends GTP-U.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pfcp::*;
use common::*;
use upf::gtp;
use upf::n4::fixtures;
use wire::pfcp::{self, Message, MessageBody};

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn heartbeat_association_and_cause_72() {
    let bed = Bed::new();
    let mut smf = Smf::new(&bed);
    // Heartbeat before any association.
    let r = smf.node(pfcp::HeartbeatRequest {
        recovery_time_stamp: 1,
        ..Default::default()
    });
    match r.body {
        MessageBody::HeartbeatResponse(h) => {
            assert_eq!(h.recovery_time_stamp, bed.upf().recovery_time_stamp())
        }
        b => panic!("unexpected {b:?}"),
    }
    // Session request without association.
    let r = smf.session(0, est_request(&smf, 1));
    match r.body {
        MessageBody::SessionEstablishmentResponse(e) => {
            assert_eq!(e.cause, pfcp::Cause::NoEstablishedPfcpAssociation);
            assert_eq!(r.header.seid, Some(1));
        }
        b => panic!("unexpected {b:?}"),
    }
    let a = smf.associate();
    assert_eq!(a.cause, pfcp::Cause::RequestAccepted);
    assert_eq!(a.node_id, pfcp::NodeId::Ipv4(UPF_N3));
    assert!(a
        .up_function_features
        .expect("features")
        .has(pfcp::up_features::FTUP));
    // Node IDs of every form associate (IPv6 and IPv4 here, FQDN above).
    for node in [
        pfcp::NodeId::Ipv6("2001:db8::5".parse().expect("v6")),
        pfcp::NodeId::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
    ] {
        let r = smf.node(pfcp::AssociationSetupRequest {
            node_id: node,
            recovery_time_stamp: 7,
            ..Default::default()
        });
        assert!(
            matches!(r.body, MessageBody::AssociationSetupResponse(ref a) if a.cause == pfcp::Cause::RequestAccepted)
        );
    }
    // Update and release; then a session request is refused again.
    let r = smf.node(pfcp::AssociationUpdateRequest {
        node_id: smf.node_id.clone(),
        ..Default::default()
    });
    assert!(
        matches!(r.body, MessageBody::AssociationUpdateResponse(ref u) if u.cause == pfcp::Cause::RequestAccepted)
    );
    let r = smf.node(pfcp::AssociationReleaseRequest {
        node_id: smf.node_id.clone(),
        ..Default::default()
    });
    assert!(
        matches!(r.body, MessageBody::AssociationReleaseResponse(ref u) if u.cause == pfcp::Cause::RequestAccepted)
    );
    let r = smf.session(0, est_request(&smf, 2));
    assert!(
        matches!(r.body, MessageBody::SessionEstablishmentResponse(ref e) if e.cause == pfcp::Cause::NoEstablishedPfcpAssociation)
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn session_lifecycle_over_pfcp() {
    let bed = Bed::new();
    let mut smf = Smf::associated(&bed);
    let r = smf.session(0, est_request(&smf, 0x51));
    assert_eq!(r.header.seid, Some(0x51), "response carries the CP SEID");
    let MessageBody::SessionEstablishmentResponse(est) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(est.cause, pfcp::Cause::RequestAccepted, "{est:?}");
    let up_seid = est.up_f_seid.expect("UP F-SEID").seid;
    assert_eq!(est.created_pdrs.len(), 2, "PDRs 1 and 3 asked for CHOOSE");
    let teids: Vec<(u16, u32, Option<Ipv4Addr>)> = est
        .created_pdrs
        .iter()
        .map(|c| match c.local_f_teid {
            Some(pfcp::FTeid::Assigned { teid, ipv4, .. }) => (c.pdr_id, teid, ipv4),
            other => panic!("bad F-TEID {other:?}"),
        })
        .collect();
    assert_eq!(teids[0].1, teids[1].1, "same CHOOSE ID, same TEID");
    assert_eq!(teids[0].2, Some(UPF_N3));
    let teid = teids[0].1;

    // Uplink: 7001 is dropped by PDR 3, 7000 is echoed; the echo is
    // buffered (DL FAR BUFF).
    bed.send_gpdu(teid, Some(9), &up(7001, &[1; 100]));
    for i in 0..3u8 {
        bed.send_gpdu(teid, Some(9), &up(ECHO_PORT, &[i; 1000]));
    }
    assert!(
        testkit::wait_until(Duration::from_secs(3), || bed
            .upf()
            .session_counters(up_seid)
            .expect("session")[6]
            >= 3),
        "echoes not buffered within 3 s"
    );
    // BUFF|NOCP: the first buffered packet made a Downlink Data Report.
    let (seid, rep) = smf.wait_report(pfcp::ReportType::DLDR);
    assert_eq!(seid, 0x51);
    assert!(rep.report_type.contains(pfcp::ReportType::DLDR), "{rep:?}");
    assert_eq!(rep.downlink_data_report.expect("DLDR").pdr_ids, vec![2]);
    // Threshold 3000 bytes uplink: 3 x 1028 bytes crossed it.
    let (seid, rep) = smf.wait_report(pfcp::ReportType::USAR);
    assert_eq!(seid, 0x51);
    assert!(rep.report_type.contains(pfcp::ReportType::USAR));
    let u = &rep.usage_reports[0];
    assert_eq!(u.urr_id, 1);
    assert!(u
        .usage_report_trigger
        .contains(pfcp::UsageReportTrigger::VOLTH));
    let v = u.volume_measurement.expect("volume");
    assert_eq!(
        (v.uplink_volume, v.uplink_packets),
        (Some(3 * 1028), Some(3))
    );

    // Modification: DL FAR forwards to the gNB; the buffer flushes in order.
    let r = smf.session(
        up_seid,
        pfcp::SessionModificationRequest {
            update_fars: fixtures::dl_far_to(GNB_TEID, GNB_N3),
            ..Default::default()
        },
    );
    assert!(
        matches!(r.body, MessageBody::SessionModificationResponse(ref m) if m.cause == pfcp::Cause::RequestAccepted),
        "{r:?}"
    );
    for i in 0..3u8 {
        let p = bed.recv_gpdu().expect("flushed downlink");
        let d = gtp::decap(&p).expect("valid");
        assert_eq!((d.teid, d.qfi), (GNB_TEID, Some(9)));
        assert_eq!(&d.payload[28..], &[i; 1000][..]);
    }
    // Query URR in a modification: the report comes in the response.
    bed.send_gpdu(teid, Some(9), &up(ECHO_PORT, b"q"));
    bed.recv_gpdu().expect("echo");
    let r = smf.session(
        up_seid,
        pfcp::SessionModificationRequest {
            query_urrs: vec![pfcp::QueryUrr {
                urr_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let MessageBody::SessionModificationResponse(m) = r.body else {
        panic!()
    };
    assert_eq!(m.usage_reports.len(), 1);
    assert_eq!(
        m.usage_reports[0]
            .volume_measurement
            .and_then(|v| v.uplink_volume),
        Some(29)
    );
    // Deletion: final report.
    bed.send_gpdu(teid, Some(9), &up(ECHO_PORT, b"bye"));
    bed.recv_gpdu().expect("echo");
    let r = smf.session(up_seid, pfcp::SessionDeletionRequest::default());
    assert_eq!(r.header.seid, Some(0x51));
    let MessageBody::SessionDeletionResponse(d) = r.body else {
        panic!()
    };
    assert_eq!(d.cause, pfcp::Cause::RequestAccepted);
    let u = &d.usage_reports[0];
    assert!(u
        .usage_report_trigger
        .contains(pfcp::UsageReportTrigger::TERMR));
    assert_eq!(u.volume_measurement.and_then(|v| v.uplink_volume), Some(31));
    // The session is gone.
    let r = smf.session(up_seid, pfcp::SessionDeletionRequest::default());
    assert!(
        matches!(r.body, MessageBody::SessionDeletionResponse(ref d) if d.cause == pfcp::Cause::SessionContextNotFound)
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn a_session_deleted_under_traffic_reports_every_packet_it_forwarded() {
    let bed = Bed::new();
    let mut smf = Smf::associated(&bed);
    // URR 1 measures and reports only at the deletion.
    let mut r = est_request_forwarding(&smf, 0x61);
    r.create_urrs[0].reporting_triggers = pfcp::ReportingTriggers::default();
    r.create_urrs[0].volume_threshold = None;
    let est = smf.establish(r);
    let up_seid = est.up_f_seid.expect("F-SEID").seid;
    let teid = first_teid(&est);
    // The edge counts every uplink packet that reaches it.
    const SINK_PORT: u16 = 7300;
    let sink = must(bed.edge.udp((EDGE, SINK_PORT)));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sink);
    dpio::udp::set_buffers(fd, dpio::udp::N3_BUFFER).expect("16 MiB of receive buffer");
    sink.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    // Set when the test ends, also by a failed assertion: the threads stop.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let received = Arc::new(AtomicU64::new(0));
    let counter = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Until the flood has stopped and nothing came for 300 ms.
            loop {
                match sink.recv(&mut buf) {
                    Ok(_) => {
                        received.fetch_add(1, Relaxed);
                    }
                    Err(_) if stop.load(Relaxed) => break,
                    Err(_) => {}
                }
            }
        })
    };
    let flood = {
        let sock = bed.gnb_sock.try_clone().expect("clone");
        let stop = stop.clone();
        let gpdu = gtp::ul_gpdu(teid, Some(9), &up(SINK_PORT, &[0u8; 72]));
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let _ = sock.send_to(&gpdu, SocketAddrV4::new(UPF_N3, 2152));
            }
        })
    };
    // Deleted while G-PDUs stream in: the uplink thread is in a batch.
    assert!(
        testkit::wait_until(Duration::from_secs(10), || received.load(Relaxed) >= 20_000),
        "the flood did not reach the edge: {} packets",
        received.load(Relaxed)
    );
    let r = smf.session(up_seid, pfcp::SessionDeletionRequest::default());
    drop(stop_guard);
    flood.join().expect("flood");
    counter.join().expect("counter");
    let MessageBody::SessionDeletionResponse(d) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(d.cause, pfcp::Cause::RequestAccepted);
    let v = d.usage_reports[0].volume_measurement.expect("volume");
    let got = received.load(Relaxed);
    eprintln!("edge received {got} packets; the final report counts {v:?}");
    // Each forwarded packet was counted (100 bytes each); the edge may
    // have missed some, it cannot have more.
    assert_eq!(v.uplink_volume.map(|b| b % 100), Some(0), "{v:?}");
    assert!(
        v.uplink_volume.is_some_and(|b| b / 100 >= got),
        "the edge received {got} packets, the final report counts {v:?}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn retransmission_answered_from_cache() {
    let bed = Bed::new();
    let mut smf = Smf::associated(&bed);
    let (req, seq) = smf.encode_session(0, est_request(&smf, 7));
    let (_, first) = smf.exchange(&req, seq);
    let (_, second) = smf.exchange(&req, seq);
    assert_eq!(first, second, "same bytes");
    assert_eq!(bed.upf().inner().table().len(), 1, "executed once");
    let stats = bed.upf().inner().pfcp_stats.retransmissions.load(Relaxed);
    assert_eq!(stats, 1);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn malformed_pfcp_is_answered_or_dropped_never_fatal() {
    let bed = Bed::new();
    let mut smf = Smf::associated(&bed);
    // Garbage of many lengths and a truncated header.
    for n in 0..64usize {
        let junk: Vec<u8> = (0..n).map(|i| (i * 31 + 0x21) as u8).collect();
        smf.send_raw(&junk);
    }
    smf.send_raw(&[0x21, 50, 0, 40, 0, 0]);
    // An establishment without Create FAR: 66 with Offending IE Create FAR.
    let mut r = est_request(&smf, 9);
    r.create_fars.clear();
    let (bytes, seq) = smf.encode_session(0, r);
    let (m, _) = smf.exchange(&bytes, seq);
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(e.cause, pfcp::Cause::MandatoryIeMissing);
    assert_eq!(e.offending_ie, Some(3));
    // A FAR the UPF cannot do: 76 with the IE.
    let mut r = est_request(&smf, 10);
    r.create_fars[0].apply_action = pfcp::ApplyAction::FORW | pfcp::ApplyAction::DUPL;
    let e = smf.establish(r);
    assert_eq!(
        (e.cause, e.offending_ie),
        (pfcp::Cause::ServiceNotSupported, Some(44))
    );
    // A bad flow description: 69 with SDF Filter.
    let mut r = est_request(&smf, 11);
    r.create_pdrs[1].pdi.sdf_filters = vec![pfcp::SdfFilter::flow(
        "permit out 17 from 10.0.2.2/40 to assigned",
    )];
    let e = smf.establish(r);
    assert_eq!(
        (e.cause, e.offending_ie),
        (pfcp::Cause::MandatoryIeIncorrect, Some(23))
    );
    // Modification of an unknown session: 65.
    let m = smf.session(0xdead, pfcp::SessionModificationRequest::default());
    assert!(
        matches!(m.body, MessageBody::SessionModificationResponse(ref x) if x.cause == pfcp::Cause::SessionContextNotFound)
    );
    // Still alive and serving.
    let m = smf.session(0, est_request(&smf, 12));
    assert!(
        matches!(m.body, MessageBody::SessionEstablishmentResponse(ref x) if x.cause == pfcp::Cause::RequestAccepted)
    );
    assert!(bed.upf().inner().pfcp_stats.malformed.load(Relaxed) > 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn limits_refused_over_pfcp() {
    let bed = Bed::with_config(|c| {
        c.limits.max_sessions = 1;
        c.limits.max_buffer_packets = 5;
    });
    let mut smf = Smf::associated(&bed);
    // BAR asks for 10 buffered packets, limit 5.
    let e = smf.establish(est_request(&smf, 1));
    assert_eq!(
        (e.cause, e.offending_ie),
        (pfcp::Cause::NoResourcesAvailable, Some(85))
    );
    let mut r = est_request(&smf, 1);
    r.create_bar = None;
    assert_eq!(smf.establish(r.clone()).cause, pfcp::Cause::RequestAccepted);
    // Another session (another CP SEID: the same one would replace the
    // first), another UE.
    r.cp_f_seid.seid = 2;
    for p in &mut r.create_pdrs {
        p.pdi.ue_ip_addresses[0].ipv4 = Some(Ipv4Addr::new(10, 60, 0, 2));
    }
    assert_eq!(
        smf.establish(r).cause,
        pfcp::Cause::NoResourcesAvailable,
        "one session max"
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn restart_gives_a_new_recovery_time_stamp() {
    let mut bed = Bed::new();
    let mut smf = Smf::new(&bed);
    let first = smf.associate().recovery_time_stamp;
    assert_eq!(first, bed.upf().recovery_time_stamp());
    bed.upf.take().expect("running").stop();
    // The stamp has a resolution of one second: restart in a later second.
    assert!(
        testkit::wait_until(Duration::from_secs(3), || ntp_now() > u64::from(first)),
        "the clock did not pass {first} (NTP seconds)"
    );
    let cfg = config(&bed.tag);
    bed.upf = Some(must(
        bed.upf_ns
            .run(move || upf::daemon::Upf::start(cfg).expect("restart")),
    ));
    let second = smf.associate().recovery_time_stamp;
    assert!(second > first, "{second} after {first}");
    // The restarted UPF forwards again (TUN recreated).
    let teid = first_teid(&smf.establish(est_request_forwarding(&smf, 3)));
    bed.send_gpdu(teid, Some(9), &up(ECHO_PORT, b"again"));
    let p = bed.recv_gpdu().expect("echo after restart");
    assert_eq!(&gtp::decap(&p).expect("valid").payload[28..], b"again");
}

/// The wall clock in NTP seconds (the unit of Recovery Time Stamps).
fn ntp_now() -> u64 {
    u64::from(wire::pfcp::ntp_seconds(std::time::SystemTime::now()))
}

/// Deterministic xorshift, so a failing case can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn mutated_pfcp_and_gtpu_never_crash_nor_touch_another_session() {
    let bed = Bed::new();
    let mut smf = Smf::associated(&bed);
    let r = est_request_forwarding(&smf, 0x42);
    let est = smf.establish(r.clone());
    let up_seid = est.up_f_seid.expect("F-SEID").seid;
    let teid = first_teid(&est);

    // A second node (another address in the gNB namespace) sends mutations
    // of valid messages, including ones aimed at the first node's session.
    let veth = format!("{}gu", bed.tag);
    must(bed.gnb.ip(&["addr", "add", "10.0.1.3/24", "dev", &veth]));
    let fz = must(
        bed.gnb
            .run(|| UdpSocket::bind(("10.0.1.3", 0)).expect("fuzzer")),
    );
    let gtp_fz = must(
        bed.gnb
            .run(|| UdpSocket::bind(("10.0.1.3", 2152)).expect("fuzzer gtp")),
    );
    let seeds: Vec<Vec<u8>> = vec![
        Message::session(0, 1, r.clone()).to_vec().expect("encode"),
        Message::session(up_seid, 2, pfcp::SessionDeletionRequest::default())
            .to_vec()
            .expect("encode"),
        Message::session(
            up_seid,
            3,
            pfcp::SessionModificationRequest {
                remove_pdrs: vec![pfcp::RemovePdr {
                    pdr_id: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .to_vec()
        .expect("encode"),
        Message::node(
            4,
            pfcp::AssociationSetupRequest {
                node_id: pfcp::NodeId::Ipv4(Ipv4Addr::new(10, 0, 1, 3)),
                recovery_time_stamp: 5,
                ..Default::default()
            },
        )
        .to_vec()
        .expect("encode"),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in 0..3000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] = rng.next() as u8;
        }
        if rng.below(8) == 0 {
            b.truncate(rng.below(b.len() + 1));
        }
        let _ = fz.send_to(&b, smf.upf);
        // GTP-U: mutations of a G-PDU (and of the header alone).
        let mut g = gtp::ul_gpdu(teid, Some(9), &up(ECHO_PORT, b"fuzz"));
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(20);
            g[at] = rng.next() as u8;
        }
        let _ = gtp_fz.send_to(&g, SocketAddrV4::new(UPF_N3, 2152));
    }
    // Let the UPF work through the fuzz: until its counters stop moving.
    let counters = || {
        let m = bed.upf().metrics();
        let st = &bed.upf().inner().pfcp_stats;
        (
            m.n3_rx.get().0,
            m.n6_rx.get().0,
            m.n3_tx.get().0,
            st.rx.load(Relaxed),
        )
    };
    let mut last = None;
    assert!(
        testkit::wait_until(Duration::from_secs(10), || {
            let now = Some(counters());
            std::mem::replace(&mut last, now) == now
        }),
        "the UPF was still busy with the fuzz after 10 s"
    );
    // Drain what the fuzz made the UPF send to the gNB.
    while bed.recv_gtp_within(Duration::from_millis(100)).is_some() {}
    // The first session is intact and forwards; the UPF still answers.
    bed.send_gpdu(teid, Some(9), &up(ECHO_PORT, b"intact"));
    let p = bed.recv_gpdu().expect("echo through the untouched session");
    let d = gtp::decap(&p).expect("valid");
    assert_eq!((d.teid, &d.payload[28..]), (GNB_TEID, &b"intact"[..]));
    let t = bed.upf().inner().table();
    let s = t.session(up_seid).expect("session survived");
    assert_eq!(s.pdr_count(), 3, "no PDR removed by another node");
    drop(t);
    let m = smf.session(up_seid, pfcp::SessionDeletionRequest::default());
    assert!(
        matches!(m.body, MessageBody::SessionDeletionResponse(ref x) if x.cause == pfcp::Cause::RequestAccepted)
    );
    let st = &bed.upf().inner().pfcp_stats;
    eprintln!("PFCP stats after fuzz: {:?}", st.snapshot());
    assert!(st.malformed.load(Relaxed) > 100);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn unanswered_session_report_is_resent_after_t1() {
    let bed = Bed::with_config(|c| {
        c.n4.t1_ms = 200;
        c.n4.n1 = 2;
    });
    let mut smf = Smf::associated(&bed);
    // BUFF|NOCP downlink FAR: the first buffered packet triggers a DLDR.
    let teid = first_teid(&smf.establish(est_request(&smf, 0x66)));
    bed.send_gpdu(teid, Some(9), &up(ECHO_PORT, b"wake"));
    // Collect Session Report Requests for 1.2 s without answering.
    let deadline = Instant::now() + Duration::from_millis(1200);
    let mut seen = Vec::new();
    while let Some((m, _)) = smf.recv(deadline) {
        if let MessageBody::SessionReportRequest(r) = &m.body {
            if r.report_type.contains(pfcp::ReportType::DLDR) {
                seen.push((m.header.seq, Instant::now()));
            }
        }
    }
    // First send plus N1 = 2 resends, all with the same sequence number.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|(s, _)| *s == seen[0].0));
    assert!(seen[1].1 - seen[0].1 >= Duration::from_millis(180));
}
