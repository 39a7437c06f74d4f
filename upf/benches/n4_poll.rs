//! Cost of the N4 node's periodic data-path poll (`N4Node::handle_timeout`,
//! run every 20 ms by the daemon's control loop) and of the deadline
//! query that follows it (`N4Node::poll_timeout`), with 10 and 10 000 idle
//! PFCP sessions: nothing is due, so the work should not grow with the
//! number of sessions. Each session has a buffering NOCP FAR (downlink
//! data reports), a URR with a volume threshold and a one-hour measurement
//! period, like the sessions of the setup-rate benchmark.
//!
//! The summary at the end prints the medians and the ratio 10 000 / 10
//! measured in the same run (1.0 means independent of the session count),
//! and the same for one session established and deleted over PFCP next to
//! the idle ones (the per-message side of the setup rate).
//!
//! `cargo bench -p upf --bench n4_poll`

#[path = "common/mod.rs"]
mod common;
use common::median;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use upf::n4::{N4Node, N4Params, DATA_POLL_INTERVAL};
use upf::session::{Limits, SessionTable};
use wire::pfcp::{self, Message};

const UPF_N3: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
const UPF_N4: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 2);
const SMF: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 10);
const SIZES: [u32; 2] = [10, 10_000];

fn params() -> N4Params {
    N4Params {
        node_id: pfcp::NodeId::Ipv4(UPF_N4),
        f_seid_addr: UPF_N4,
        recovery_ts: 3_950_000_000,
        // No heartbeats: the virtual clock does not move while measuring,
        // and an unanswered heartbeat would drop the sessions.
        heartbeat_interval: None,
        heartbeat_retries: 3,
        t1: Duration::from_secs(3),
        n1: 3,
        cache_ttl: Duration::from_secs(60),
        data_poll_interval: DATA_POLL_INTERVAL,
        associate_with: Vec::new(),
    }
}

fn smf() -> SocketAddr {
    SocketAddr::from((SMF, 8805))
}

fn smf_node() -> pfcp::NodeId {
    pfcp::NodeId::fqdn("smf.bench.example")
}

fn ue(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 60, 0, 0)) + i + 1)
}

/// The tests' paging-case session, with a one-hour URR period.
fn est_request(i: u32) -> pfcp::SessionEstablishmentRequest {
    upf::n4::fixtures::paging_session(
        smf_node(),
        pfcp::FSeid {
            seid: u64::from(i) + 1,
            ipv4: Some(SMF),
            ipv6: None,
        },
        ue(i),
        Some(3600),
    )
}

/// A node associated with one SMF that established `n` sessions over PFCP.
fn node_with(n: u32, t0: Instant) -> (N4Node, SessionTable) {
    let mut node = N4Node::new(params(), t0, SystemTime::now());
    let mut table = SessionTable::new(Limits::default(), UPF_N3, t0);
    let setup = Message::node(
        1,
        pfcp::AssociationSetupRequest {
            node_id: smf_node(),
            recovery_time_stamp: 7,
            ..Default::default()
        },
    );
    let bytes = setup.to_vec().expect("encode");
    node.handle_datagram(t0, smf(), &bytes, &mut table);
    for i in 0..n {
        let m = Message::session(0, i + 2, est_request(i));
        let bytes = m.to_vec().expect("encode");
        node.handle_datagram(t0, smf(), &bytes, &mut table);
    }
    drain(&mut node);
    assert_eq!(table.len(), n as usize, "every session established");
    assert_eq!(node.sessions().count(), n as usize);
    (node, table)
}

fn drain(node: &mut N4Node) -> usize {
    let mut k = 0;
    while node.poll_event().is_some() {
        k += 1;
    }
    while node.poll_transmit().is_some() {
        k += 1;
    }
    k
}

/// One control-loop tick with nothing due: the data-path poll and the
/// next deadline.
fn tick(node: &mut N4Node, table: &mut SessionTable, now: Instant) -> Option<Instant> {
    node.handle_timeout(now, table);
    black_box(drain(node));
    node.poll_timeout()
}

fn polls(c: &mut Criterion) {
    let mut g = c.benchmark_group("n4 data poll (handle_timeout + poll_timeout)");
    for n in SIZES {
        let t0 = Instant::now();
        let (mut node, mut table) = node_with(n, t0);
        let now = t0 + Duration::from_secs(1);
        g.bench_function(format!("{n} idle sessions"), |b| {
            b.iter(|| black_box(tick(&mut node, &mut table, black_box(now))))
        });
    }
    g.finish();
}

/// One more session set up and torn down over PFCP next to the `n`
/// established ones (what a setup-rate run does per UE, minus the I/O):
/// establishment request, response, deletion request, response.
struct Churn {
    seq: u32,
    est: pfcp::SessionEstablishmentRequest,
}

impl Churn {
    fn new(n: u32) -> Churn {
        Churn {
            seq: 1_000_000,
            est: est_request(n),
        }
    }

    fn run(&mut self, node: &mut N4Node, table: &mut SessionTable, now: Instant) {
        // Fresh sequence numbers: a repeated one would be answered from the
        // retransmission cache.
        self.seq += 1;
        let m = Message::session(0, self.seq, self.est.clone());
        node.handle_datagram(now, smf(), &m.to_vec().expect("encode"), table);
        let mut seid = None;
        while node.poll_event().is_some() {}
        while let Some(t) = node.poll_transmit() {
            if let Ok(Message {
                body: pfcp::MessageBody::SessionEstablishmentResponse(r),
                ..
            }) = Message::parse(&t.contents)
            {
                seid = r.up_f_seid.map(|f| f.seid);
            }
        }
        let seid = seid.expect("established");
        self.seq += 1;
        let m = Message::session(seid, self.seq, pfcp::SessionDeletionRequest::default());
        node.handle_datagram(now, smf(), &m.to_vec().expect("encode"), table);
        drain(node);
    }
}

/// Both sizes side by side, measured now on this machine.
fn summary(_: &mut Criterion) {
    let mut med = Vec::new();
    for n in SIZES {
        let t0 = Instant::now();
        let (mut node, mut table) = node_with(n, t0);
        let now = t0 + Duration::from_secs(1);
        for _ in 0..100 {
            tick(&mut node, &mut table, now);
        }
        med.push((
            n,
            median(2001, || {
                black_box(tick(&mut node, &mut table, now));
            }),
        ));
    }
    println!("\nN4 data poll with idle sessions, median of 2001 ticks (same run):");
    for (n, d) in &med {
        println!("{n:>9} sessions {:>12.3} us", d.as_secs_f64() * 1e6);
    }
    let (small, large) = (med[0].1, med[med.len() - 1].1);
    println!(
        "ratio {} / {} sessions: {:.1}x",
        SIZES[SIZES.len() - 1],
        SIZES[0],
        large.as_secs_f64() / small.as_secs_f64().max(1e-9)
    );
    // Per PFCP message: one session established and deleted next to the
    // idle ones (the table's limit is 10 000, so one fewer idle session).
    let mut med = Vec::new();
    for n in SIZES {
        let n = n.min(9_999);
        let t0 = Instant::now();
        let (mut node, mut table) = node_with(n, t0);
        let now = t0 + Duration::from_secs(1);
        let mut churn = Churn::new(n);
        for _ in 0..100 {
            churn.run(&mut node, &mut table, now);
        }
        med.push((n, median(2001, || churn.run(&mut node, &mut table, now))));
    }
    println!("\nN4 establish + delete of one session next to idle ones, median of 2001:");
    for (n, d) in &med {
        println!("{n:>9} sessions {:>12.3} us", d.as_secs_f64() * 1e6);
    }
    println!(
        "ratio {} / {} sessions: {:.1}x",
        med[1].0,
        med[0].0,
        med[1].1.as_secs_f64() / med[0].1.as_secs_f64().max(1e-9)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = polls, summary
}
criterion_main!(benches);
