//! Cost of the TUN offload work without I/O (issue 15 item 4): cutting a
//! 64 KiB TCP super-packet into 1448-byte segments with their headers and
//! checksums (as the gNB uplink and the UPF downlink do before GTP-U), and
//! joining those segments again into one super-packet (the decapsulating
//! sides, before the TUN write), checksums verified per segment.
//!
//!     cargo bench -p dpio --bench offload
//!
//! `cargo test --release -p dpio --benches` runs each case once
//! (criterion's test mode), which is what CI runs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dpio::offload::build::{as_super, tcp4, udp4};
use dpio::offload::{fold, segment, sum, Coalescer, Push, GSO_TCPV4, GSO_UDP_L4};

const MSS: u16 = 1448;

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..MSS as usize * 45).map(|i| i as u8).collect();
    let mut tcp = tcp4(1, 0, &body);
    let th = as_super(&mut tcp, GSO_TCPV4, MSS);
    let mut udp = udp4(&body[..1400 * 40]);
    let uh = as_super(&mut udp, GSO_UDP_L4, 1400);
    let mut out = vec![0u8; 100_000];
    let mut g = c.benchmark_group("offload");
    g.throughput(Throughput::Bytes(body.len() as u64));
    // The per-byte pass under segmenting (each segment's TCP checksum)
    // and coalescing (each segment's checksum verified).
    g.bench_function("checksum 64 KiB", |b| {
        b.iter(|| fold(sum(black_box(&body), 0)))
    });
    g.bench_function("segment tcp 64 KiB / 1448", |b| {
        b.iter(|| segment(black_box(&tcp), &th, &mut out, 16).map(|s| s.count))
    });
    g.bench_function("segment udp 56 KiB / 1400", |b| {
        b.iter(|| segment(black_box(&udp), &uh, &mut out, 16).map(|s| s.count))
    });
    let s = segment(&tcp, &th, &mut out, 0).expect("segments");
    let segs: Vec<Vec<u8>> = (0..s.count).map(|k| out[s.range(k)].to_vec()).collect();
    let mut co = Coalescer::new();
    g.bench_function("coalesce 45 tcp segments", |b| {
        b.iter(|| {
            for p in &segs {
                if co.push(black_box(p)) != Push::Held {
                    co.finish();
                    co.push(p);
                }
            }
            co.finish().map(<[u8]>::len)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
