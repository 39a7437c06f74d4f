//! SSIM per frame pair at 640x360, as the CSM stream selector runs it on
//! every pair at the frame rate: the reference ([`media::ssim`], Gaussian
//! 11x11 at full resolution, f64) against [`media::FastSsim`] (factor 2,
//! the default, and factor 1), and frame sliding's [`media::blend`].
//!
//! `cargo bench -p media --bench ssim`; the summary at the end prints ms
//! per pair, the ratio full / fast and the share of a core at 60 fps. The
//! goal for the fast measure is at most 1 ms per pair.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use media::{blend, ssim, FastSsim, Frame};

const W: u16 = 640;
const H: u16 = 360;

/// Two textured, slightly different 640x360 frames (a moving pattern, one
/// frame apart), deterministic.
fn pair() -> (Frame, Frame) {
    let make = |t: usize| {
        let mut f = Frame::new(W, H);
        let w = usize::from(W);
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for (i, p) in f.y.iter_mut().enumerate() {
            let (x, y) = (i % w + t, i / w);
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *p = ((x * 3 + y * 2) % 200 + if (x / 16 + y / 16) % 2 == 0 { 30 } else { 0 }) as u8
                + (s % 8) as u8;
        }
        f
    };
    (make(0), make(2))
}

fn benches(c: &mut Criterion) {
    let (a, b) = pair();
    c.bench_function("ssim_full_640x360", |bn| {
        bn.iter(|| ssim(black_box(&a), black_box(&b)))
    });
    let mut fast = FastSsim::new(W, H);
    c.bench_function("ssim_fast_factor2_640x360", |bn| {
        bn.iter(|| fast.score(black_box(&a), black_box(&b)))
    });
    let mut fast1 = FastSsim::with_factor(W, H, 1);
    c.bench_function("ssim_fast_factor1_640x360", |bn| {
        bn.iter(|| fast1.score(black_box(&a), black_box(&b)))
    });
    let mut out = Frame::new(W, H);
    c.bench_function("blend_640x360", |bn| {
        bn.iter(|| blend(black_box(&a), black_box(&b), 0.25, &mut out))
    });
}

/// Mean seconds per call of `f` over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(n)
}

/// Wall-clock summary, same pair.
fn summary() {
    let (a, b) = pair();
    let full = per_call(50, || {
        black_box(ssim(black_box(&a), black_box(&b)));
    });
    let mut fast = FastSsim::new(W, H);
    let mut v2 = 0.0;
    let f2 = per_call(1000, || {
        v2 = fast.score(black_box(&a), black_box(&b)).unwrap_or(f64::NAN);
    });
    let mut fast1 = FastSsim::with_factor(W, H, 1);
    let mut v1 = 0.0;
    let f1 = per_call(1000, || {
        v1 = fast1
            .score(black_box(&a), black_box(&b))
            .unwrap_or(f64::NAN);
    });
    let mut out = Frame::new(W, H);
    let bl = per_call(1000, || {
        let _ = blend(black_box(&a), black_box(&b), 0.25, &mut out);
    });
    let core = |s: f64| 100.0 * s * 60.0;
    println!("\n=== ssim summary ({W}x{H} pair, 60 fps) ===");
    println!(
        "full SSIM (reference)   : {:8.4} ms  {:5.1} % of a core   value {:.4}",
        full * 1e3,
        core(full),
        ssim(&a, &b)
    );
    for (name, s, v) in [
        ("fast SSIM, factor 2", f2, v2),
        ("fast SSIM, factor 1", f1, v1),
    ] {
        println!(
            "{name:<24}: {:8.4} ms  {:5.1} % of a core   value {v:.4}   full/fast {:6.1} x   goal <= 1 ms: {}",
            s * 1e3,
            core(s),
            full / s,
            if s <= 1e-3 { "met" } else { "NOT met" }
        );
    }
    println!(
        "blend (3 planes)        : {:8.4} ms  {:5.1} % of a core",
        bl * 1e3,
        core(bl)
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
