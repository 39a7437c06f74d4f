//! PFCP control-plane codec cost: parse and emit of a realistic Session
//! Establishment Request (2 PDRs, 2 FARs, 1 QER, 1 URR, a BAR; 415 octets)
//! against a Heartbeat Request measured in the same run. Goal: parse and
//! emit each under 5 µs.
//!
//!     cargo bench -p wire --bench pfcp
//!
//! After criterion's report, a summary prints each case as ns/message and as
//! a ratio to the Heartbeat Request of the same operation.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use wire::pfcp::{HeartbeatRequest, Message};

#[path = "../tests/pfcp_samples.rs"]
mod samples;

fn heartbeat() -> Message {
    Message::node(
        1,
        HeartbeatRequest {
            recovery_time_stamp: 3_941_000_000,
            ..Default::default()
        },
    )
}

fn establishment() -> Message {
    Message::session(0, 10, samples::establishment_request())
}

#[inline(never)]
fn do_parse(bytes: &[u8]) -> usize {
    match Message::parse(bytes) {
        Ok(m) => m.buffer_len(),
        Err(_) => 0,
    }
}

#[inline(never)]
fn do_emit(m: &Message, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    m.emit_vec(buf).unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    for (name, m) in [
        ("heartbeat_request", heartbeat()),
        ("session_establishment_request", establishment()),
    ] {
        let bytes = m.to_vec().expect("emit");
        let mut g = c.benchmark_group(format!("pfcp/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("parse", |b| b.iter(|| do_parse(black_box(&bytes))));
        let mut buf = Vec::with_capacity(bytes.len());
        g.bench_function("emit", |b| b.iter(|| do_emit(black_box(&m), &mut buf)));
        g.finish();
    }
}

/// Median of five runs of `iters` calls, in ns per call.
fn time_ns(iters: u32, mut f: impl FnMut() -> usize) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let mut acc = 0usize;
            for _ in 0..iters {
                acc = acc.wrapping_add(f());
            }
            black_box(acc);
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn summary() {
    let hb = heartbeat();
    let est = establishment();
    let hb_bytes = hb.to_vec().expect("emit");
    let est_bytes = est.to_vec().expect("emit");
    let mut buf = Vec::with_capacity(1024);
    let n = 100_000;
    let hb_parse = time_ns(n, || do_parse(black_box(&hb_bytes)));
    let est_parse = time_ns(n, || do_parse(black_box(&est_bytes)));
    let hb_emit = time_ns(n, || do_emit(black_box(&hb), &mut buf));
    let est_emit = time_ns(n, || do_emit(black_box(&est), &mut buf));
    println!();
    println!("PFCP codec summary (median of 5 x {n} calls, same run)");
    println!("{:<44} {:>10} {:>14}", "case", "ns/msg", "vs heartbeat");
    println!(
        "{:<44} {:>10.0} {:>14}",
        format!("heartbeat_request parse ({} B)", hb_bytes.len()),
        hb_parse,
        "1.0x"
    );
    println!(
        "{:<44} {:>10.0} {:>13.1}x",
        format!(
            "session_establishment_request parse ({} B)",
            est_bytes.len()
        ),
        est_parse,
        est_parse / hb_parse
    );
    println!(
        "{:<44} {:>10.0} {:>14}",
        "heartbeat_request emit", hb_emit, "1.0x"
    );
    println!(
        "{:<44} {:>10.0} {:>13.1}x",
        "session_establishment_request emit",
        est_emit,
        est_emit / hb_emit
    );
    println!("goal: establishment parse and emit each < 5000 ns");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
