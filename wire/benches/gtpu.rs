//! GTP-U data path cost per packet: encapsulation in place and decapsulation
//! of a 1400-byte payload with a PDU Session Container, against baselines
//! measured in the same run (a 1400-byte memcpy, and encap/decap without an
//! extension header). Goal: encap and decap each under 50 ns.
//!
//!     cargo bench -p wire --bench gtpu
//!
//! After criterion's report, a summary prints each case as ns/packet and as
//! a ratio to the memcpy baseline.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use wire::gtpu::{decap, encap_in_place, GpduHeader, MAX_GPDU_HEADER_LEN};

const PAYLOAD: usize = 1400;

fn packet_buffer() -> Vec<u8> {
    let mut buf = vec![0u8; MAX_GPDU_HEADER_LEN + PAYLOAD];
    for (i, b) in buf[MAX_GPDU_HEADER_LEN..].iter_mut().enumerate() {
        *b = i as u8;
    }
    buf[MAX_GPDU_HEADER_LEN] = 0x45;
    buf
}

fn encapsulated(hdr: &GpduHeader) -> Vec<u8> {
    let mut buf = packet_buffer();
    encap_in_place(&mut buf, MAX_GPDU_HEADER_LEN, PAYLOAD, hdr)
        .expect("encap")
        .to_vec()
}

/// One encap: returns the length so the work cannot be optimised away.
#[inline(never)]
fn do_encap(buf: &mut [u8], hdr: &GpduHeader) -> usize {
    match encap_in_place(buf, MAX_GPDU_HEADER_LEN, PAYLOAD, hdr) {
        Ok(out) => out.len(),
        Err(_) => 0,
    }
}

/// One decap: returns TEID, QFI and payload length.
#[inline(never)]
fn do_decap(pkt: &[u8]) -> (u32, Option<u8>, usize) {
    match decap(pkt) {
        Ok(d) => (d.teid, d.qfi(), d.payload.len()),
        Err(_) => (0, None, 0),
    }
}

#[inline(never)]
fn do_memcpy(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

fn bench(c: &mut Criterion) {
    let dl = GpduHeader::dl(0x1234_5678, 9);
    let plain = GpduHeader::new(0x1234_5678);
    let ul_pkt = encapsulated(&GpduHeader::ul(0x1234_5678, 9));
    let plain_pkt = encapsulated(&plain);

    let mut g = c.benchmark_group("gtpu");
    g.throughput(Throughput::Elements(1));
    let src = vec![0x5au8; PAYLOAD];
    let mut dst = vec![0u8; PAYLOAD];
    g.bench_function("baseline_memcpy_1400", |b| {
        b.iter(|| do_memcpy(black_box(&mut dst), black_box(&src)))
    });
    let mut buf = packet_buffer();
    g.bench_function("encap_plain_1400", |b| {
        b.iter(|| do_encap(black_box(&mut buf), black_box(&plain)))
    });
    g.bench_function("encap_dl_psc_1400", |b| {
        b.iter(|| do_encap(black_box(&mut buf), black_box(&dl)))
    });
    g.bench_function("decap_plain_1400", |b| {
        b.iter(|| do_decap(black_box(&plain_pkt)))
    });
    g.bench_function("decap_ul_psc_1400", |b| {
        b.iter(|| do_decap(black_box(&ul_pkt)))
    });
    g.finish();
}

/// CPU time this thread has spent running, in ns (Linux schedstat), so the
/// figures are not inflated by time the thread spends descheduled on a busy
/// machine. Falls back to wall time where schedstat is missing.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// ns per call of `f` (best of 5 runs of `n` calls): (wall, on-CPU).
fn ns_per(n: u32, mut f: impl FnMut()) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        let cpu0 = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let wall = t.elapsed().as_nanos() as f64 / f64::from(n);
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / f64::from(n),
            _ => wall,
        };
        best = (best.0.min(wall), best.1.min(cpu));
    }
    best
}

fn ratio_summary() {
    let n = 10_000_000;
    let dl = GpduHeader::dl(0x1234_5678, 9);
    let plain = GpduHeader::new(0x1234_5678);
    let ul_pkt = encapsulated(&GpduHeader::ul(0x1234_5678, 9));
    let plain_pkt = encapsulated(&plain);
    let src = vec![0x5au8; PAYLOAD];
    let mut dst = vec![0u8; PAYLOAD];
    let mut buf = packet_buffer();
    let memcpy = ns_per(n, || do_memcpy(black_box(&mut dst), black_box(&src)));
    let rows = [
        ("memcpy 1400 B (baseline)", memcpy),
        (
            "encap, no ext header",
            ns_per(n, || {
                black_box(do_encap(black_box(&mut buf), black_box(&plain)));
            }),
        ),
        (
            "encap, DL PDU Session Container",
            ns_per(n, || {
                black_box(do_encap(black_box(&mut buf), black_box(&dl)));
            }),
        ),
        (
            "decap, no ext header",
            ns_per(n, || {
                black_box(do_decap(black_box(&plain_pkt)));
            }),
        ),
        (
            "decap, UL PDU Session Container",
            ns_per(n, || {
                black_box(do_decap(black_box(&ul_pkt)));
            }),
        ),
    ];
    println!("\nGTP-U data path, 1400-byte payload (goal: < 50 ns per packet)");
    println!(
        "  {:<34} {:>12} {:>12} {:>10}",
        "", "wall ns/pkt", "on-CPU ns", "x memcpy"
    );
    for (name, (wall, cpu)) in rows {
        println!(
            "  {name:<34} {wall:12.2} {cpu:12.2} {:10.2}",
            cpu / memcpy.1
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio_summary();
}
