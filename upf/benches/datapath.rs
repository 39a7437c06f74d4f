//! Per-packet cost of the data path's decisions (no I/O): snapshot lookup,
//! SDF match, QER bucket, URR count; and the control-plane cost of a rule
//! change (table update + snapshot rebuild) with many sessions.
//!
//! `cargo bench -p upf --bench datapath`

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
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
                action: FarAction::Forward {
                    destination: Interface::Core,
                    outer_header: None,
                },
            },
            Far {
                id: 2,
                action: FarAction::Forward {
                    destination: Interface::Access,
                    outer_header: Some(OuterHeader {
                        teid: i + 1,
                        peer: SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 1), 2152),
                    }),
                },
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

fn bench(c: &mut Criterion) {
    for n in [1u32, 1000] {
        let t0 = Instant::now();
        let mut t = SessionTable::new(Limits::default(), Ipv4Addr::new(10, 0, 1, 2), t0);
        let mut teids = Vec::new();
        for i in 0..n {
            let e = t.establish(u64::from(i), rules(i), t0).expect("session");
            teids.push(e.created[0].teid);
        }
        let snap = t.snapshot();
        let teid = teids[teids.len() / 2];
        let u = ue(n / 2);
        let ul = build_udp(u, 5000, Ipv4Addr::new(10, 0, 2, 2), 7000, &[0u8; 1372]);
        let dl = build_udp(Ipv4Addr::new(10, 0, 2, 2), 7000, u, 5000, &[0u8; 1372]);
        c.bench_function(&format!("uplink decision, {n} sessions"), |b| {
            b.iter(|| {
                black_box(matches!(
                    snap.uplink(black_box(teid), None, black_box(&ul), Instant::now()),
                    upf::datapath::Verdict::ToN6
                ))
            })
        });
        c.bench_function(&format!("downlink decision, {n} sessions"), |b| {
            b.iter(|| {
                black_box(matches!(
                    snap.downlink(black_box(&dl), Instant::now(), true),
                    upf::datapath::Verdict::Tunnel { .. }
                ))
            })
        });
        let seid = t.sessions().next().map(|s| s.local_seid).expect("one");
        c.bench_function(&format!("modify + snapshot rebuild, {n} sessions"), |b| {
            b.iter(|| {
                t.modify(
                    seid,
                    Modification {
                        update_fars: vec![Far {
                            id: 1,
                            action: FarAction::Forward {
                                destination: Interface::Core,
                                outer_header: None,
                            },
                        }],
                        ..Default::default()
                    },
                    t0,
                )
                .expect("modify");
                black_box(t.snapshot())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
