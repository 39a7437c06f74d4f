//! Structural similarity (Z. Wang, A. C. Bovik, H. R. Sheikh, E. P.
//! Simoncelli, "Image quality assessment: from error visibility to
//! structural similarity", IEEE TIP 2004) on the luma plane.
//!
//! As the authors' reference implementation: an 11x11 circular-symmetric
//! Gaussian window (sigma 1.5) slid over every position where it fits
//! entirely inside the image ("valid"), K1 = 0.01, K2 = 0.03, L = 255, and
//! the mean of the SSIM map. Images smaller than the window are compared
//! with one window covering the whole image, uniform weights.

use crate::Frame;

const WIN: usize = 11;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// SSIM of the luma of two frames, in `-1.0..=1.0` (in practice `0..=1`;
/// 1.0 for identical lumas). Frames of different sizes, or with planes that
/// do not match their size, score 0.0.
pub fn ssim(a: &Frame, b: &Frame) -> f64 {
    if a.width != b.width || a.height != b.height {
        return 0.0;
    }
    let (w, h) = (usize::from(a.width), usize::from(a.height));
    if w == 0 || h == 0 || a.y.len() != w * h || b.y.len() != w * h {
        return 0.0;
    }
    if w < WIN || h < WIN {
        return global(&a.y, &b.y);
    }
    let k = kernel();
    // Horizontal pass: for each row, the weighted sums of x, y, x², y², xy
    // over the window starting at each valid column.
    let ow = w - WIN + 1;
    let oh = h - WIN + 1;
    let mut hs = vec![[0f64; 5]; h * ow];
    for r in 0..h {
        let ra = &a.y[r * w..(r + 1) * w];
        let rb = &b.y[r * w..(r + 1) * w];
        for c in 0..ow {
            let mut s = [0f64; 5];
            for (i, kw) in k.iter().enumerate() {
                let x = f64::from(ra[c + i]);
                let y = f64::from(rb[c + i]);
                s[0] += kw * x;
                s[1] += kw * y;
                s[2] += kw * x * x;
                s[3] += kw * y * y;
                s[4] += kw * x * y;
            }
            hs[r * ow + c] = s;
        }
    }
    // Vertical pass and the SSIM map's mean.
    let mut total = 0f64;
    for r in 0..oh {
        for c in 0..ow {
            let mut s = [0f64; 5];
            for (i, kw) in k.iter().enumerate() {
                let v = &hs[(r + i) * ow + c];
                for j in 0..5 {
                    s[j] += kw * v[j];
                }
            }
            total += index(s);
        }
    }
    total / (ow * oh) as f64
}

/// The SSIM index of one window from its weighted moments
/// `[E x, E y, E x², E y², E xy]`.
fn index(s: [f64; 5]) -> f64 {
    let (mx, my) = (s[0], s[1]);
    let vx = s[2] - mx * mx;
    let vy = s[3] - my * my;
    let cxy = s[4] - mx * my;
    ((2.0 * mx * my + C1) * (2.0 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
}

fn global(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len() as f64;
    let mut s = [0f64; 5];
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        s[0] += x;
        s[1] += y;
        s[2] += x * x;
        s[3] += y * y;
        s[4] += x * y;
    }
    for v in &mut s {
        *v /= n;
    }
    index(s)
}

/// The normalized 1-D Gaussian; the 2-D window is its outer product.
fn kernel() -> [f64; WIN] {
    let mut k = [0f64; WIN];
    let c = (WIN / 2) as f64;
    let mut sum = 0.0;
    for (i, v) in k.iter_mut().enumerate() {
        let d = i as f64 - c;
        *v = (-(d * d) / (2.0 * SIGMA * SIGMA)).exp();
        sum += *v;
    }
    for v in &mut k {
        *v /= sum;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator (xorshift64*), so tests are
    /// reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    fn textured(w: u16, h: u16, seed: u64) -> Frame {
        let mut f = Frame::new(w, h);
        let mut r = Rng(seed);
        for (i, p) in f.y.iter_mut().enumerate() {
            let x = i % usize::from(w);
            let y = i / usize::from(w);
            // Smooth gradient plus blocks plus a little texture.
            *p = ((x * 3 + y * 2) % 200) as u8
                + if (x / 16 + y / 16) % 2 == 0 { 30 } else { 0 }
                + (r.next() % 8) as u8;
        }
        f
    }

    fn noisy(f: &Frame, amp: u8, seed: u64) -> Frame {
        let mut g = f.clone();
        let mut r = Rng(seed);
        let span = u64::from(amp) * 2 + 1;
        for p in &mut g.y {
            let d = (r.next() % span) as i32 - i32::from(amp);
            *p = (i32::from(*p) + d).clamp(0, 255) as u8;
        }
        g
    }

    #[test]
    fn identical_is_one() {
        let f = textured(64, 48, 1);
        assert!((ssim(&f, &f) - 1.0).abs() < 1e-12);
        let small = textured(6, 4, 2);
        assert!((ssim(&small, &small) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn noise_lowers_it_monotonically() {
        let f = textured(96, 64, 3);
        let s1 = ssim(&f, &noisy(&f, 4, 10));
        let s2 = ssim(&f, &noisy(&f, 16, 10));
        let s3 = ssim(&f, &noisy(&f, 64, 10));
        assert!(s1 < 1.0 && s2 < s1 && s3 < s2, "{s1} {s2} {s3}");
        assert!(s3 > 0.0);
    }

    #[test]
    fn symmetric() {
        let f = textured(40, 30, 4);
        let g = noisy(&f, 20, 5);
        assert!((ssim(&f, &g) - ssim(&g, &f)).abs() < 1e-12);
    }

    #[test]
    fn constant_images_closed_form() {
        // Two flat images: no variance, so SSIM reduces to the luminance
        // term (2ab + C1) / (a² + b² + C1) in every window.
        for (w, h) in [(32u16, 24u16), (8, 8)] {
            let mut a = Frame::new(w, h);
            let mut b = Frame::new(w, h);
            a.y.fill(100);
            b.y.fill(150);
            let want = (2.0 * 100.0 * 150.0 + C1) / (100.0f64 * 100.0 + 150.0 * 150.0 + C1);
            assert!((ssim(&a, &b) - want).abs() < 1e-9, "{w}x{h}");
        }
    }

    #[test]
    fn inverted_structure_is_negative() {
        // A pattern against its photographic negative around the same mean:
        // luminance term 1, structure term -1 (up to the constants).
        let f = textured(48, 48, 6);
        let mut g = f.clone();
        for p in &mut g.y {
            *p = 255 - *p;
        }
        assert!(ssim(&f, &g) < 0.0);
    }

    #[test]
    fn chroma_is_ignored_and_sizes_must_match() {
        let f = textured(32, 32, 7);
        let mut g = f.clone();
        g.u.fill(0);
        assert!((ssim(&f, &g) - 1.0).abs() < 1e-12);
        assert_eq!(ssim(&f, &textured(32, 30, 7)), 0.0);
    }

    #[test]
    fn kernel_sums_to_one() {
        let s: f64 = kernel().iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
    }
}
