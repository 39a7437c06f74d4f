//! Per-packet cost of the data path's decisions (no I/O): snapshot lookup,
//! SDF match, QER bucket, URR count; and the control-plane cost of a rule
//! change (table update + snapshot publication) with 1 to 10 000 sessions,
//! incremental (`SessionTable::snapshot`) against the full rebuild of every
//! session (`SessionTable::rebuild_snapshot`, the path before issue 5) as
//! the baseline measured in the same run. A summary table with the ratio is
//! printed at the end.
//!
//! The downlink decisions for the 45 segments of a 64 KiB super-packet, as
//! the packet thread makes them: each segment decided and counted at once
//! (the path before counting per run, the baseline), each decided in full
//! and counted per run ([`Tally`]), and the first decided, the others by
//! [`Snapshot::again`]; the summary prints the ratios.
//!
//! `cargo bench -p upf --bench datapath`

#[path = "common/mod.rs"]
mod common;
use common::median;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use criterion::{criterion_group, criterion_main, Criterion};
use upf::datapath::{PdrList, Snapshot, Tally, Verdict};
use upf::packet::build_udp;
use upf::rules::*;
use upf::sdf::FlowDescription;
use upf::session::{Limits, SessionTable};

fn ue(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 60, 0, 0)) + i + 1)
}

fn rules(i: u32) -> SessionRules {
    let pdi = |src, fteid, sdf: Vec<FlowDescription>| Pdi {
        source_interface: src,
        local_fteid: fteid,
        ue_ip: Some(ue(i)),
        qfi: None,
        sdf_filters: sdf,
        network_instance: None,
    };
    let pdr = |id, prec, src, fteid, sdf, far| Pdr {
        id,
        precedence: prec,
        pdi: pdi(src, fteid, sdf),
        outer_header_removal: src == Interface::Access,
        far_id: far,
        qer_ids: vec![1],
        urr_ids: vec![1],
    };
    let sdf = |s: &str| vec![FlowDescription::parse(s).expect("valid")];
    SessionRules {
        pdrs: vec![
            pdr(
                1,
                10,
                Interface::Access,
                Some(FTeidSpec::Choose(Some(1))),
                sdf("permit out 6 from any 22 to assigned"),
                3,
            ),
            pdr(
                2,
                100,
                Interface::Access,
                Some(FTeidSpec::Choose(Some(1))),
                vec![],
                1,
            ),
            pdr(3, 100, Interface::Core, None, vec![], 2),
        ],
        fars: vec![
            Far {
                id: 1,
                action: FarAction::to_core(),
            },
            Far {
                id: 2,
                action: FarAction::to_access(
                    i + 1,
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 1), 2152),
                ),
            },
            Far {
                id: 3,
                action: FarAction::Drop,
            },
        ],
        qers: vec![Qer {
            id: 1,
            gate_ul: Gate::Open,
            gate_dl: Gate::Open,
            mbr_ul: Some(100_000_000_000),
            mbr_dl: Some(100_000_000_000),
            qfi: Some(9),
        }],
        urrs: vec![Urr {
            id: 1,
            volume_threshold: None,
            measurement_period: None,
        }],
        buffer_packets: None,
    }
}

const SIZES: [u32; 4] = [1, 100, 1000, 10_000];

/// A table with `n` sessions; returns it with the TEIDs of their uplink.
fn table(n: u32, t0: Instant) -> (SessionTable, Vec<u32>) {
    let mut t = SessionTable::new(Limits::default(), Ipv4Addr::new(10, 0, 1, 2), t0);
    let mut teids = Vec::new();
    for i in 0..n {
        let e = t.establish(u64::from(i), rules(i), t0).expect("session");
        teids.push(e.created[0].teid);
    }
    (t, teids)
}

/// The rule change measured: a FAR update of one session.
fn far_update() -> Modification {
    Modification {
        update_fars: vec![Far {
            id: 1,
            action: FarAction::Forward {
                destination: Interface::Core,
                outer_header: None,
            },
        }],
        ..Default::default()
    }
}

/// Modify one session and publish the tables as the daemon does (store in
/// an `ArcSwap`, dropping the previous snapshot).
fn modify_publish(
    t: &mut SessionTable,
    seid: u64,
    swap: &ArcSwap<Snapshot>,
    t0: Instant,
    full: bool,
) {
    t.modify(seid, far_update(), t0).expect("modify");
    let snap = if full {
        t.rebuild_snapshot()
    } else {
        t.snapshot()
    };
    swap.store(Arc::new(snap));
}

fn lookups(c: &mut Criterion) {
    for n in [1u32, 1000] {
        let t0 = Instant::now();
        let (t, teids) = table(n, t0);
        let snap = t.snapshot();
        let teid = teids[teids.len() / 2];
        let u = ue(n / 2);
        let ul = build_udp(u, 5000, Ipv4Addr::new(10, 0, 2, 2), 7000, &[0u8; 1372]);
        let dl = build_udp(Ipv4Addr::new(10, 0, 2, 2), 7000, u, 5000, &[0u8; 1372]);
        // With the protected destinations of upf1 in the paper topology
        // (127/8, cp /24, n3 /24, its N6 address): the cost of the rule.
        let gnb = Ipv4Addr::new(10, 0, 1, 1);
        let mut guarded = snap.clone();
        guarded.protected = Arc::new(upf::protect::Protected::from_nets(
            [
                ([127, 0, 0, 0], 8),
                ([10, 0, 0, 0], 24),
                ([10, 3, 0, 0], 24),
                ([10, 61, 0, 1], 32),
            ]
            .map(|(a, l)| upf::protect::Net::new(Ipv4Addr::from(a), l))
            .to_vec(),
        ));
        for (label, s) in [("", &snap), (", 4 protected nets", &guarded)] {
            c.bench_function(&format!("uplink decision, {n} sessions{label}"), |b| {
                b.iter(|| {
                    black_box(matches!(
                        s.uplink(gnb, black_box(teid), None, black_box(&ul), Instant::now()),
                        upf::datapath::Verdict::ToN6
                    ))
                })
            });
        }
        // The map lookup alone, persistent trie against the std HashMap
        // the snapshot used before (same keys, same values).
        let std_map: std::collections::HashMap<u32, PdrList> =
            snap.uplink.iter().map(|(k, v)| (*k, v.clone())).collect();
        c.bench_function(&format!("TEID lookup imbl, {n} sessions"), |b| {
            b.iter(|| black_box(snap.uplink.get(black_box(&teid)).map(|l| l.len())))
        });
        c.bench_function(&format!("TEID lookup std (baseline), {n} sessions"), |b| {
            b.iter(|| black_box(std_map.get(black_box(&teid)).map(|l| l.len())))
        });
        c.bench_function(&format!("downlink decision, {n} sessions"), |b| {
            b.iter(|| {
                black_box(matches!(
                    snap.downlink(black_box(&dl), Instant::now(), true),
                    upf::datapath::Verdict::Tunnel { .. }
                ))
            })
        });
    }
}

/// Segments of a 64 KiB TCP super-packet at an MSS of 1448.
const SEGMENTS: usize = 45;

/// Decides the `SEGMENTS` segments `seg` of one super-packet on `snap` as
/// `how` says; the number forwarded.
fn super_packet(snap: &Snapshot, seg: &[u8], how: Decide) -> usize {
    let now = Instant::now();
    let tunnel = |v: Verdict<'_>| matches!(v, Verdict::Tunnel { .. });
    match how {
        Decide::EachAtOnce => (0..SEGMENTS)
            .filter(|_| tunnel(snap.downlink(black_box(seg), now, true)))
            .count(),
        Decide::EachTallied => {
            let mut tally = Tally::new();
            (0..SEGMENTS)
                .filter(|_| tunnel(snap.downlink_tallied(black_box(seg), now, Some(&mut tally))))
                .count()
        }
        Decide::FirstThenAgain => {
            let mut tally = Tally::new();
            let first = tunnel(snap.downlink_tallied(black_box(seg), now, Some(&mut tally)));
            usize::from(first)
                + (1..SEGMENTS)
                    .filter(|_| snap.again(seg.len(), now, &mut tally).is_some_and(tunnel))
                    .count()
        }
    }
}

/// How [`super_packet`] decides.
#[derive(Clone, Copy)]
enum Decide {
    /// Every segment in full, counted at once (before).
    EachAtOnce,
    /// Every segment in full, counted per run.
    EachTallied,
    /// The first in full, the others with the first one's PDR.
    FirstThenAgain,
}

const DECIDE: [(Decide, &str); 3] = [
    (
        Decide::EachAtOnce,
        "each segment, counted at once (baseline)",
    ),
    (Decide::EachTallied, "each segment, counted per run"),
    (Decide::FirstThenAgain, "first segment, then again"),
];

/// A 1000-session table and the middle session's 1448-byte segment. The
/// sessions have no QER (as those of `testbed bench dataplane`): a bucket
/// would run dry at the rate a benchmark offers.
fn super_packet_setup() -> (Snapshot, Vec<u8>) {
    let t0 = Instant::now();
    let mut t = SessionTable::new(Limits::default(), Ipv4Addr::new(10, 0, 1, 2), t0);
    for i in 0..1000 {
        let mut r = rules(i);
        r.qers.clear();
        r.pdrs.iter_mut().for_each(|p| p.qer_ids.clear());
        t.establish(u64::from(i), r, t0).expect("session");
    }
    let seg = build_udp(
        Ipv4Addr::new(10, 0, 2, 2),
        7000,
        ue(500),
        5000,
        &[0u8; 1420],
    );
    (t.snapshot(), seg)
}

fn super_packets(c: &mut Criterion) {
    let (snap, seg) = super_packet_setup();
    let mut g = c.benchmark_group("downlink super-packet of 45 segments, 1000 sessions");
    for (how, label) in DECIDE {
        g.bench_function(label, |b| {
            b.iter(|| assert_eq!(super_packet(&snap, &seg, how), SEGMENTS))
        });
    }
    g.finish();
}

fn updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("modify + publish");
    g.sample_size(10);
    for n in SIZES {
        let t0 = Instant::now();
        let (mut t, _) = table(n, t0);
        let seid = t.sessions().next().map(|s| s.local_seid).expect("one");
        let swap = ArcSwap::from_pointee(t.snapshot());
        g.bench_function(format!("incremental, {n} sessions"), |b| {
            b.iter(|| modify_publish(&mut t, seid, &swap, t0, false))
        });
        g.bench_function(format!("full rebuild (baseline), {n} sessions"), |b| {
            b.iter(|| modify_publish(&mut t, seid, &swap, t0, true))
        });
    }
    g.finish();
}

/// One table with both paths side by side, measured now on this machine.
fn summary(_: &mut Criterion) {
    let (snap, seg) = super_packet_setup();
    println!("\ndownlink super-packet of {SEGMENTS} segments, 1000 sessions, median (same run):");
    let medians = DECIDE.map(|(how, _)| {
        median(2001, || {
            assert_eq!(super_packet(&snap, &seg, how), SEGMENTS)
        })
    });
    let base = medians[0];
    for ((_, label), m) in DECIDE.iter().zip(medians) {
        println!(
            "{label:>42} {:>8.2} us {:>6.2}x the baseline's speed",
            m.as_secs_f64() * 1e6,
            base.as_secs_f64() / m.as_secs_f64()
        );
    }
    println!("\nmodify + publish, median (same run):");
    println!(
        "{:>9} {:>14} {:>18} {:>8}",
        "sessions", "incremental", "full rebuild", "ratio"
    );
    for n in SIZES {
        let t0 = Instant::now();
        let (mut t, _) = table(n, t0);
        let seid = t.sessions().next().map(|s| s.local_seid).expect("one");
        let swap = ArcSwap::from_pointee(t.snapshot());
        let inc = median(501, || modify_publish(&mut t, seid, &swap, t0, false));
        let runs = if n >= 10_000 { 21 } else { 101 };
        let full = median(runs, || modify_publish(&mut t, seid, &swap, t0, true));
        println!(
            "{n:>9} {:>11.2} us {:>15.2} us {:>7.1}x",
            inc.as_secs_f64() * 1e6,
            full.as_secs_f64() * 1e6,
            full.as_secs_f64() / inc.as_secs_f64()
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = lookups, super_packets, updates, summary
}
criterion_main!(benches);
