//! Per-packet cost of the data path's decisions (no I/O): snapshot lookup,
//! SDF match, QER bucket, URR count; and the control-plane cost of a rule
//! change (table update + snapshot publication) with 1 to 10 000 sessions,
//! incremental (`SessionTable::snapshot`) against the full rebuild of every
//! session (`SessionTable::rebuild_snapshot`, the path before issue 5) as
//! the baseline measured in the same run. A summary table with the ratio is
//! printed at the end.
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
use upf::datapath::{PdrList, Snapshot};
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
    targets = lookups, updates, summary
}
criterion_main!(benches);
