//! Structural similarity (Z. Wang, A. C. Bovik, H. R. Sheikh, E. P.
//! Simoncelli, "Image quality assessment: from error visibility to
//! structural similarity", IEEE TIP 2004) on the luma plane.
//!
//! As the authors' reference implementation: an 11x11 circular-symmetric
//! Gaussian window (sigma 1.5) slid over every position where it fits
//! entirely inside the image ("valid"), K1 = 0.01, K2 = 0.03, L = 255, and
//! the mean of the SSIM map. Images smaller than the window are compared
//! with one window covering the whole image, uniform weights.
//!
//! [`FastSsim`] is the per-frame-pair measure of the CSM stream selector
//! (DESIGN.md section 5, step 5): the same index on a box-downscaled luma
//! plane with 6x6 uniform windows at a stride of 3, from integer block
//! moments, in a scratch that steady-state calls reuse (no allocation).

use crate::Frame;
use std::ops::{AddAssign, Mul};

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

/// Adds the moment sums of the pixel pairs of `a` and `b` to `s`: Σx, Σy,
/// Σx², Σy², Σxy (in `f64` for a whole image, `u32` for one block).
#[inline]
fn add_moments<T>(s: &mut [T; 5], a: &[u8], b: &[u8])
where
    T: Copy + From<u8> + Mul<Output = T> + AddAssign,
{
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (T::from(x), T::from(y));
        s[0] += x;
        s[1] += y;
        s[2] += x * x;
        s[3] += y * y;
        s[4] += x * y;
    }
}

fn global(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len() as f64;
    let mut s = [0f64; 5];
    add_moments(&mut s, a, b);
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

/// Why [`FastSsim::score`] cannot compare two frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsimError {
    /// The two frames differ in size.
    #[error("frames of {a_w}x{a_h} and {b_w}x{b_h} cannot be compared")]
    SizeMismatch {
        /// First frame's width.
        a_w: u16,
        /// First frame's height.
        a_h: u16,
        /// Second frame's width.
        b_w: u16,
        /// Second frame's height.
        b_h: u16,
    },
    /// A frame is empty or its luma plane does not match its size.
    #[error("frame {width}x{height} has a luma plane of {len} octets")]
    BadFrame {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
        /// Luma plane length.
        len: usize,
    },
}

/// Side of the fast measure's blocks; a window is 2x2 blocks (6x6 pixels of
/// the downscaled plane, close to the reference's Gaussian of sigma 1.5)
/// and windows overlap by one block (stride 3).
const BLOCK: usize = 3;
/// Window side in downscaled pixels.
const FAST_WIN: usize = 2 * BLOCK;

/// Fast SSIM of two frames' luma with a reusable scratch.
///
/// The luma planes are box-downscaled by `factor` (the mean of each
/// `factor x factor` square, rounded), the downscaled planes are cut into
/// 3x3 blocks whose moments (sums of x, y, x², y², xy) are integers, and
/// every 6x6 window made of 2x2 neighbouring blocks (stride 3) gives one
/// SSIM index (uniform weights, K1 = 0.01, K2 = 0.03, L = 255); the score
/// is their mean. Trailing pixels that do not fill a downscaled pixel or a
/// block (fewer than `3 * factor` columns or rows) are left out. A frame
/// whose downscaled plane is narrower or lower than a window is compared
/// at full resolution, and one smaller than 6x6 with a single window over
/// the whole plane, as [`ssim()`] does.
///
/// It is not the reference index ([`ssim()`]: Gaussian 11x11 windows at
/// full resolution). At factor 1 it is within 0.03 of it on the synthetic
/// pairs of the tests (pixel noise, shifts, brightness changes, another
/// picture). Downscaling (factor 2, the default) averages pixel noise and
/// sub-pixel shifts away: those cost the score much less (noise of ±16
/// scores 0.97 against the reference's 0.75), while changes of brightness
/// or of structure over more than a downscaled pixel stay within 0.05 of
/// the reference. A threshold tuned on one measure does not carry over to
/// the other unchanged.
#[derive(Debug, Clone)]
pub struct FastSsim {
    width: u16,
    height: u16,
    /// Downscale factor asked for.
    want: usize,
    /// Downscale factor in use for the current size (1 if the asked one
    /// leaves less than a window).
    factor: usize,
    /// Downscaled plane size.
    dw: usize,
    dh: usize,
    a: Vec<u8>,
    b: Vec<u8>,
    /// Moments of each block, row by row: `[Σx, Σy, Σx², Σy², Σxy]`.
    blocks: Vec<[u32; 5]>,
}

impl FastSsim {
    /// The default downscale factor: 640x360 is compared at 320x180.
    pub const DEFAULT_FACTOR: usize = 2;

    /// A scratch for frames of `width x height`, downscaled by
    /// [`FastSsim::DEFAULT_FACTOR`].
    pub fn new(width: u16, height: u16) -> FastSsim {
        FastSsim::with_factor(width, height, FastSsim::DEFAULT_FACTOR)
    }

    /// A scratch for frames of `width x height`, downscaled by `factor`
    /// (0 is taken as 1).
    pub fn with_factor(width: u16, height: u16, factor: usize) -> FastSsim {
        let mut s = FastSsim {
            width: 0,
            height: 0,
            want: factor.max(1),
            factor: 1,
            dw: 0,
            dh: 0,
            a: Vec::new(),
            b: Vec::new(),
            blocks: Vec::new(),
        };
        s.reshape(width, height);
        s
    }

    /// The downscale factor in use for the current size.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Size of the downscaled plane that is compared.
    pub fn downscaled(&self) -> (usize, usize) {
        (self.dw, self.dh)
    }

    fn reshape(&mut self, width: u16, height: u16) {
        let (w, h) = (usize::from(width), usize::from(height));
        let mut f = self.want;
        if w / f < FAST_WIN || h / f < FAST_WIN {
            f = 1;
        }
        self.width = width;
        self.height = height;
        self.factor = f;
        self.dw = w / f;
        self.dh = h / f;
        let (bw, bh) = (self.dw / BLOCK, self.dh / BLOCK);
        self.a.resize(self.dw * self.dh, 0);
        self.b.resize(self.dw * self.dh, 0);
        self.blocks.resize(bw * bh, [0; 5]);
    }

    /// SSIM of the lumas of `a` and `b` (1.0 for identical lumas,
    /// symmetric). Frames of another size than the scratch's reshape it
    /// (the one call that allocates); frames of different sizes, empty or
    /// with a luma plane that does not match their size are an error.
    pub fn score(&mut self, a: &Frame, b: &Frame) -> Result<f64, SsimError> {
        if a.width != b.width || a.height != b.height {
            return Err(SsimError::SizeMismatch {
                a_w: a.width,
                a_h: a.height,
                b_w: b.width,
                b_h: b.height,
            });
        }
        for f in [a, b] {
            let n = usize::from(f.width) * usize::from(f.height);
            if n == 0 || f.y.len() != n {
                return Err(SsimError::BadFrame {
                    width: f.width,
                    height: f.height,
                    len: f.y.len(),
                });
            }
        }
        if a.width != self.width || a.height != self.height {
            self.reshape(a.width, a.height);
        }
        let w = usize::from(a.width);
        if self.dw < FAST_WIN || self.dh < FAST_WIN {
            // Smaller than one window even at full resolution.
            return Ok(global(&a.y, &b.y));
        }
        downscale(&a.y, w, self.factor, self.dw, self.dh, &mut self.a);
        downscale(&b.y, w, self.factor, self.dw, self.dh, &mut self.b);
        self.block_moments();
        Ok(self.window_mean())
    }

    fn block_moments(&mut self) {
        let (dw, bw, bh) = (self.dw, self.dw / BLOCK, self.dh / BLOCK);
        self.blocks.fill([0; 5]);
        for r in 0..bh * BLOCK {
            let ra = &self.a[r * dw..r * dw + bw * BLOCK];
            let rb = &self.b[r * dw..r * dw + bw * BLOCK];
            let brow = &mut self.blocks[(r / BLOCK) * bw..(r / BLOCK + 1) * bw];
            for ((ca, cb), m) in ra
                .chunks_exact(BLOCK)
                .zip(rb.chunks_exact(BLOCK))
                .zip(brow.iter_mut())
            {
                add_moments(m, ca, cb);
            }
        }
    }

    fn window_mean(&self) -> f64 {
        let (bw, bh) = (self.dw / BLOCK, self.dh / BLOCK);
        let n = (FAST_WIN * FAST_WIN) as f64;
        let mut total = 0f64;
        for by in 0..bh - 1 {
            for bx in 0..bw - 1 {
                let i = by * bw + bx;
                let quad = [i, i + 1, i + bw, i + bw + 1];
                let mut s = [0f64; 5];
                for (k, v) in s.iter_mut().enumerate() {
                    // At most 36 * 255² < 2³², so the sum of four blocks fits.
                    let sum: u32 = quad.iter().map(|&q| self.blocks[q][k]).sum();
                    *v = f64::from(sum) / n;
                }
                total += index(s);
            }
        }
        total / ((bw - 1) * (bh - 1)) as f64
    }
}

/// Box-downscales the `dw x dh` top-left part of a plane of row length `w`
/// by `f` into `out` (each output pixel the rounded mean of `f x f`).
fn downscale(src: &[u8], w: usize, f: usize, dw: usize, dh: usize, out: &mut [u8]) {
    if f == 1 {
        for (r, o) in out.chunks_exact_mut(dw).take(dh).enumerate() {
            o.copy_from_slice(&src[r * w..r * w + dw]);
        }
        return;
    }
    let (area, half) = ((f * f) as u32, (f * f / 2) as u32);
    for (r, o) in out.chunks_exact_mut(dw).take(dh).enumerate() {
        let rows = (0..f).map(|k| &src[(r * f + k) * w..(r * f + k) * w + dw * f]);
        if f == 2 {
            // The common case, written out so that it vectorizes.
            let mut rows = rows;
            let (Some(r0), Some(r1)) = (rows.next(), rows.next()) else {
                return;
            };
            for ((p, c0), c1) in o.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                let s = u16::from(c0[0]) + u16::from(c0[1]) + u16::from(c1[0]) + u16::from(c1[1]);
                // At most (4 * 255 + 2) / 4 = 255.
                *p = ((s + 2) >> 2) as u8;
            }
            continue;
        }
        for (c, p) in o.iter_mut().enumerate() {
            let s: u32 = rows
                .clone()
                .map(|row| {
                    row[c * f..(c + 1) * f]
                        .iter()
                        .map(|&x| u32::from(x))
                        .sum::<u32>()
                })
                .sum();
            // A rounded mean of octets is at most 255.
            *p = ((s + half) / area) as u8;
        }
    }
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

    /// A picture of another structure: diagonal stripes and rings.
    fn other(w: u16, h: u16) -> Frame {
        let mut f = Frame::new(w, h);
        let w = usize::from(w);
        for (i, p) in f.y.iter_mut().enumerate() {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let ring = ((x - 80) * (x - 80) + (y - 48) * (y - 48)) / 90 % 2;
            *p = (((x + 2 * y) % 40) * 4 + ring * 60) as u8;
        }
        f
    }

    fn shifted(f: &Frame, dx: usize) -> Frame {
        let mut g = f.clone();
        let w = usize::from(f.width);
        for (src, dst) in f.y.chunks_exact(w).zip(g.y.chunks_exact_mut(w)) {
            dst[dx..].copy_from_slice(&src[..w - dx]);
        }
        g
    }

    fn brighter(f: &Frame, by: u8) -> Frame {
        let mut g = f.clone();
        for p in &mut g.y {
            *p = p.saturating_add(by);
        }
        g
    }

    /// The synthetic pairs the fast measure is held against the reference
    /// with: (name, a, b).
    fn pairs() -> Vec<(&'static str, Frame, Frame)> {
        let f = textured(160, 96, 11);
        vec![
            ("noise 4", f.clone(), noisy(&f, 4, 1)),
            ("noise 16", f.clone(), noisy(&f, 16, 2)),
            ("noise 48", f.clone(), noisy(&f, 48, 3)),
            ("shift 1", f.clone(), shifted(&f, 1)),
            ("shift 4", f.clone(), shifted(&f, 4)),
            ("brightness +20", f.clone(), brighter(&f, 20)),
            ("brightness +60", f.clone(), brighter(&f, 60)),
            ("other picture", f.clone(), other(160, 96)),
        ]
    }

    /// How far the fast score at full resolution (factor 1) may be from
    /// the reference on [`pairs`]: its 6x6 box windows are close to the
    /// reference's Gaussian (sigma 1.5).
    const FULL_RES_TOLERANCE: f64 = 0.03;
    /// How far the fast score at the default factor (2) may be from the
    /// reference on the pairs that change structure or brightness over
    /// more than a downscaled pixel (not pixel noise, not a 1-pixel shift).
    const HALF_RES_TOLERANCE: f64 = 0.05;

    #[test]
    fn fast_follows_the_reference() {
        let mut full_res = FastSsim::with_factor(160, 96, 1);
        let mut half_res = FastSsim::new(160, 96);
        assert_eq!(half_res.factor(), 2);
        let mut got = Vec::new();
        for (name, a, b) in pairs() {
            let reference = ssim(&a, &b);
            let f1 = full_res.score(&a, &b).expect("same size");
            let f2 = half_res.score(&a, &b).expect("same size");
            let msg = format!("{name}: reference {reference:.4} factor 1 {f1:.4} factor 2 {f2:.4}");
            assert!((reference - f1).abs() <= FULL_RES_TOLERANCE, "{msg}");
            if name.starts_with("noise") || name == "shift 1" {
                // Downscaling averages pixel noise and half of a 1-pixel
                // shift away: the half-resolution score is more lenient.
                assert!(f2 >= reference - FULL_RES_TOLERANCE, "{msg}");
            } else {
                assert!((reference - f2).abs() <= HALF_RES_TOLERANCE, "{msg}");
            }
            got.push((f1, f2));
        }
        // Within a kind of distortion, more of it is worse at both factors.
        for (more, less) in [(0, 1), (1, 2), (3, 4), (5, 6)] {
            assert!(got[more].0 > got[less].0, "{got:?}");
            assert!(got[more].1 > got[less].1, "{got:?}");
        }
    }

    #[test]
    fn fast_is_symmetric() {
        let mut s = FastSsim::new(160, 96);
        for (name, a, b) in pairs() {
            let ab = s.score(&a, &b).expect("same size");
            let ba = s.score(&b, &a).expect("same size");
            assert!((ab - ba).abs() < 1e-12, "{name}: {ab} {ba}");
        }
    }

    #[test]
    fn fast_odd_and_small_sizes() {
        for (w, h) in [
            (161u16, 97u16),
            (33, 17),
            (17, 9),
            (13, 12),
            (11, 11),
            (7, 5),
            (1, 1),
        ] {
            let f = textured(w, h, 31);
            let g = noisy(&f, 24, 32);
            let mut s = FastSsim::new(w, h);
            let v = s.score(&f, &g).expect("same size");
            assert!(v > 0.0 && v < 1.0 || (w, h) == (1, 1), "{w}x{h}: {v}");
            let (dw, dh) = s.downscaled();
            assert!(dw <= usize::from(w) && dh <= usize::from(h));
        }
        // Too small for a window once halved: compared at full resolution.
        let s = FastSsim::new(11, 11);
        assert_eq!((s.factor(), s.downscaled()), (1, (11, 11)));
        let s = FastSsim::new(13, 12);
        assert_eq!((s.factor(), s.downscaled()), (2, (6, 6)));
        // Flat images smaller than a window: the closed form, as ssim().
        let (mut a, mut b) = (Frame::new(6, 4), Frame::new(6, 4));
        a.y.fill(100);
        b.y.fill(150);
        let v = FastSsim::new(6, 4).score(&a, &b).expect("same size");
        assert!((v - ssim(&a, &b)).abs() < 1e-12);
    }

    #[test]
    fn fast_rejects_what_it_cannot_compare() {
        let mut s = FastSsim::new(32, 32);
        let f = textured(32, 32, 41);
        assert_eq!(
            s.score(&f, &textured(32, 30, 41)),
            Err(SsimError::SizeMismatch {
                a_w: 32,
                a_h: 32,
                b_w: 32,
                b_h: 30
            })
        );
        let mut bad = f.clone();
        bad.y.pop();
        assert!(matches!(
            s.score(&f, &bad),
            Err(SsimError::BadFrame { len: 1023, .. })
        ));
        let empty = Frame::new(0, 0);
        assert!(s.score(&empty, &empty).is_err());
        // Still usable afterwards, and follows a change of size.
        let g = textured(64, 40, 42);
        assert!((s.score(&g, &g).expect("reshaped") - 1.0).abs() < 1e-12);
        assert_eq!(s.downscaled(), (32, 20));
    }

    #[test]
    fn fast_downscale_is_a_rounded_box_mean() {
        let src = [0u8, 1, 2, 3, 10, 20, 30, 40, 5, 5, 5, 5];
        let mut out = [0u8; 2];
        downscale(&src, 4, 2, 2, 1, &mut out);
        // (0 + 1 + 10 + 20 + 2) / 4 and (2 + 3 + 30 + 40 + 2) / 4.
        assert_eq!(out, [8, 19]);
        let mut out3 = [0u8; 1];
        downscale(&src, 4, 3, 1, 1, &mut out3);
        // (0 + 1 + 2 + 10 + 20 + 30 + 5 + 5 + 5 + 4) / 9.
        assert_eq!(out3[0], 9);
    }

    #[test]
    fn fast_steady_state_keeps_its_scratch() {
        let (a, b) = (textured(160, 96, 51), textured(160, 96, 52));
        let mut s = FastSsim::new(160, 96);
        let where_ = |s: &FastSsim| {
            (
                s.a.as_ptr(),
                s.b.as_ptr(),
                s.blocks.as_ptr(),
                s.a.capacity() + s.b.capacity() + s.blocks.capacity(),
            )
        };
        let before = where_(&s);
        let first = s.score(&a, &b).expect("same size");
        for _ in 0..5 {
            assert_eq!(s.score(&a, &b).expect("same size"), first);
        }
        assert_eq!(where_(&s), before, "the scratch was reallocated");
    }
}
