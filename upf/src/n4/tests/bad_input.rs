//! Bad input changes nothing: a refused Session Modification that mixes
//! valid and invalid IEs leaves the session exactly as it was (rules,
//! counters, rates, thresholds); a flood of malformed datagrams writes a
//! few log lines per second, with "N suppressed" counts.

use std::io;
use std::sync::Mutex;

use super::*;
use crate::n4::fixtures::{dl_far_to_gnb, GNB};

/// The session's whole state as the node and the table hold it: rules,
/// counters, token buckets, URR thresholds and counters (their Debug
/// forms), the compiled lookup lists, the node's view (SMF SEID, NOCP
/// FARs, BAR).
fn state(sim: &Sim, seid: u64) -> String {
    format!(
        "{:?}\n{:?}\n{:?}",
        sim.table.session(seid),
        sim.table.compiled(seid),
        sim.node.sessions.get(&seid)
    )
}

fn new_rate(kbps: u64) -> Vec<pfcp::UpdateQer> {
    vec![pfcp::UpdateQer {
        qer_id: 1,
        mbr: Some(pfcp::BitRate {
            ul_kbps: kbps,
            dl_kbps: kbps,
        }),
        ..Default::default()
    }]
}

#[test]
fn refused_modification_mixing_valid_and_invalid_ies_changes_nothing() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    let (seid, teid) = sim.establish(1, 0x30);
    // A QER with an MBR on the uplink PDR.
    let r = sim.modify(
        1,
        seid,
        pfcp::SessionModificationRequest {
            create_qers: vec![pfcp::CreateQer {
                qer_id: 1,
                mbr: Some(pfcp::BitRate {
                    ul_kbps: 100_000,
                    dl_kbps: 100_000,
                }),
                ..Default::default()
            }],
            update_pdrs: vec![pfcp::UpdatePdr {
                pdr_id: 1,
                qer_ids: vec![1],
                ..Default::default()
            }],
            update_fars: dl_far_to_gnb(0x98),
            ..Default::default()
        },
    );
    assert_eq!(r.cause, pfcp::Cause::RequestAccepted);
    // Traffic, so that URR 1 and the PDR counters hold something.
    let snap = sim.table.snapshot();
    let pkt = build_udp(ue(0x30), 6000, SRV, 5000, &[7; 100]);
    for _ in 0..5 {
        let v = snap.uplink(GNB, teid, None, &pkt, sim.now);
        assert!(matches!(v, Verdict::ToN6), "forwarded");
    }
    sim.take_events();
    let before = state(&sim, seid);

    let bad_pdr = pfcp::CreatePdr {
        pdr_id: 3,
        precedence: 1,
        pdi: pfcp::Pdi {
            source_interface: pfcp::SourceInterface::Core,
            ..Default::default()
        },
        far_id: Some(99),
        ..Default::default()
    };
    let requests = vec![
        // Valid updates of QER, URR, FAR, a new URR, a query; then a PDR
        // that names a FAR that does not exist.
        pfcp::SessionModificationRequest {
            update_qers: new_rate(1),
            update_urrs: vec![pfcp::UpdateUrr {
                urr_id: 1,
                volume_threshold: Some(pfcp::Volume {
                    total: Some(10),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            create_urrs: vec![pfcp::CreateUrr {
                urr_id: 2,
                measurement_method: pfcp::MeasurementMethod::VOLUM,
                reporting_triggers: pfcp::ReportingTriggers::VOLTH,
                volume_threshold: Some(pfcp::Volume {
                    total: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            query_urrs: vec![pfcp::QueryUrr {
                urr_id: 1,
                ..Default::default()
            }],
            update_fars: dl_far_to_gnb(0x99),
            create_pdrs: vec![bad_pdr],
            ..Default::default()
        },
        // Remove URR 1 (its final report would take the counters) while
        // PDR 1 still counts into it.
        pfcp::SessionModificationRequest {
            remove_urrs: vec![pfcp::RemoveUrr {
                urr_id: 1,
                ..Default::default()
            }],
            update_qers: new_rate(2),
            ..Default::default()
        },
        // A BAR the session does not have.
        pfcp::SessionModificationRequest {
            update_qers: new_rate(3),
            update_bar: Some(pfcp::UpdateBar {
                bar_id: 5,
                ..Default::default()
            }),
            ..Default::default()
        },
        // A query of a URR that does not exist.
        pfcp::SessionModificationRequest {
            update_qers: new_rate(4),
            query_urrs: vec![pfcp::QueryUrr {
                urr_id: 42,
                ..Default::default()
            }],
            ..Default::default()
        },
    ];
    let mut refusals = Vec::new();
    for req in requests {
        let r = sim.modify(1, seid, req);
        refusals.push((r.cause, r.offending_ie));
        assert!(r.usage_reports.is_empty(), "no report of a refused query");
        assert_eq!(state(&sim, seid), before, "after {:?}", refusals.last());
        assert!(sim.take_events().is_empty(), "nothing to publish");
    }
    use crate::rules::ie_type as t;
    let c73 = pfcp::Cause::RuleCreationModificationFailure;
    assert_eq!(
        refusals,
        vec![
            (c73, Some(t::FAR_ID)),
            (c73, Some(t::URR_ID)),
            (c73, Some(t::UPDATE_BAR)),
            (c73, Some(t::QUERY_URR)),
        ]
    );
    // The counters were never taken: a query now reports all 5 packets.
    let r = sim.modify(
        1,
        seid,
        pfcp::SessionModificationRequest {
            query_urrs: vec![pfcp::QueryUrr {
                urr_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(r.cause, pfcp::Cause::RequestAccepted);
    let vm = r.usage_reports[0].volume_measurement.expect("volumes");
    assert_eq!(vm.uplink_packets, Some(5));
    assert_eq!(vm.uplink_volume, Some(5 * pkt.len() as u64));
}

/// Log lines, as a `tracing` subscriber writes them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The count in "(N suppressed)" or "N suppressed in the last second".
fn suppressed_in(line: &str) -> u64 {
    let Some(i) = line.find(" suppressed") else {
        return 0;
    };
    let head = &line[..i];
    let start = head
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |j| j + 1);
    head[start..].parse().expect("a count before 'suppressed'")
}

/// `n` malformed datagrams at 1 000 per second (virtual time) from an
/// associated SMF: (lines about them, datagrams the lines account for).
fn flood(n: usize) -> (usize, u64) {
    let lines = Lines::default();
    let writer = lines.clone();
    // tracing caches each callsite's interest process-wide, computed once
    // against the registering thread's default when at most one dispatcher
    // exists: a sibling test without a subscriber that reaches the
    // "malformed" warning first caches it as never, and this capture then
    // misses lines (seen once in CI: 2 lines written for 7 counted). A
    // second live dispatcher makes tracing ask every registered one, this
    // capture's included. It is nobody's default, so it receives nothing.
    let _anchor = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish(),
    );
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let mut sim = Sim::new(N4Params {
        heartbeat_interval: None,
        ..params()
    });
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        sim.associate(1, 100);
        for i in 0..n {
            // Kinds: not PFCP; a header cut short; a header whose body does
            // not parse (answered with a cause).
            let junk: Vec<u8> = match i % 3 {
                0 => vec![0xff; 40],
                1 => vec![0x21, 50, 0],
                // (a new sequence number each: not a retransmission)
                _ => {
                    let q = (i as u32).to_be_bytes();
                    vec![0x21, 50, 0, 12, 0, 0, 0, 0, 0, 0, 0, 1, q[1], q[2], q[3], 0]
                }
            };
            sim.deliver(smf_addr(1), &junk);
            sim.advance(Duration::from_millis(1));
        }
        sim.advance(Duration::from_secs(2));
    });
    let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
    let about: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("malformed PFCP message"))
        .collect();
    let summaries = about
        .iter()
        .filter(|l| l.contains("in the last second"))
        .count();
    let accounted =
        (about.len() - summaries) as u64 + about.iter().map(|l| suppressed_in(l)).sum::<u64>();
    let stats = sim.node.stats();
    assert_eq!(stats.malformed.load(Ordering::Relaxed), n as u64);
    assert_eq!(
        stats.logged.load(Ordering::Relaxed),
        about.len() as u64,
        "the metric counts the lines written"
    );
    (about.len(), accounted)
}

#[test]
fn malformed_flood_logs_a_few_lines_per_second_with_suppressed_counts() {
    for n in [2_000usize, 20_000] {
        let (lines, accounted) = flood(n);
        let secs = n / 1000 + 2;
        eprintln!("{n} malformed datagrams at 1000/s: {lines} log lines");
        // 3 lines a second, and a summary after the flood.
        assert!(lines <= 3 * secs + 1, "{lines} lines for {n} datagrams");
        assert!(lines >= n / 1000, "still said every second");
        assert_eq!(
            accounted, n as u64,
            "every datagram is in a line or a count"
        );
    }
}

#[test]
fn malformed_requests_answered_with_cause_and_offending_ie() {
    let mut sim = Sim::new(params());
    sim.associate(1, 100);
    let (seid, _) = sim.establish(1, 0xc0);
    let before = sim.node.stats().malformed.load(Ordering::Relaxed);
    // Establishment without Create FAR: 66, Offending IE Create FAR (3).
    let mut r = est_request(1, 0xc1);
    r.create_fars.clear();
    let m = sim.session_req(smf_addr(1), 0, r);
    let MessageBody::SessionEstablishmentResponse(e) = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(
        (e.cause, e.offending_ie),
        (pfcp::Cause::MandatoryIeMissing, Some(3))
    );
    assert_eq!(u8::from(e.cause), 66);
    assert_eq!(sim.table.len(), 1, "nothing established");
    // A Modification whose first IE claims more octets than the message
    // has: 68 Invalid Length naming that IE, addressed to the SMF's SEID.
    let seq = sim.next_seq();
    let mut b = Message::session(
        seid,
        seq,
        pfcp::SessionModificationRequest {
            remove_pdrs: vec![pfcp::RemovePdr {
                pdr_id: 2,
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .to_vec()
    .expect("encode");
    let first_ie = u16::from_be_bytes([b[16], b[17]]);
    b[18] = 0xff;
    b[19] = 0xff;
    sim.deliver(smf_addr(1), &b);
    let (m, _) = sim.response_to(smf_addr(1), seq);
    assert_eq!(m.header.seid, Some(0xc0));
    let MessageBody::SessionModificationResponse(x) = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(x.cause, pfcp::Cause::InvalidLength);
    assert_eq!(x.offending_ie, Some(first_ie));
    assert!(
        sim.table.session(seid).expect("untouched").pdr(2).is_some(),
        "not executed"
    );
    // Garbage without a usable header: counted, not answered.
    sim.deliver(smf_addr(1), &[0x21, 50, 0]);
    sim.deliver(smf_addr(1), &[0xff; 40]);
    assert!(sim.take_requests(51).is_empty() && sim.out.is_empty());
    // The codec refused all four (Create FAR missing, bad length, two
    // without a usable header).
    assert_eq!(
        sim.node.stats().malformed.load(Ordering::Relaxed),
        before + 4
    );
    // Still serving.
    sim.establish(1, 0xc2);
    assert_eq!(sim.table.len(), 2);
}
