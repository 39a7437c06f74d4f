//! Frame sliding's composition (paper section III-C, eq. 4-6; DESIGN.md
//! section 5, step 5): `F_out = a F_d + (1 - a) F_s` on all three planes,
//! into the caller's frame, in 8-bit fixed point.

use crate::Frame;

/// Why two frames cannot be blended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BlendError {
    /// Source and destination frames differ in size.
    #[error("source {s_w}x{s_h} and destination {d_w}x{d_h} differ in size")]
    SizeMismatch {
        /// Source width.
        s_w: u16,
        /// Source height.
        s_h: u16,
        /// Destination width.
        d_w: u16,
        /// Destination height.
        d_h: u16,
    },
    /// A frame's planes do not match its size.
    #[error("a frame's planes do not match its size {width}x{height}")]
    BadFrame {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// The weight is not a number.
    #[error("blend weight {0} is not a number")]
    Weight(f32),
}

/// Fixed-point scale of the weight: `a` is rounded to a multiple of 1/256.
const ONE: u16 = 256;

/// Writes `a * fd + (1 - a) * fs` into `out`, plane by plane, with `a`
/// clamped to `0..=1` and rounded to 1/256: `a = 0` gives exactly `fs`,
/// `a = 1` exactly `fd`. `out` takes the frames' size (it allocates only
/// if it was smaller than that); nothing else allocates.
pub fn blend(fs: &Frame, fd: &Frame, a: f32, out: &mut Frame) -> Result<(), BlendError> {
    if a.is_nan() {
        return Err(BlendError::Weight(a));
    }
    if fs.width != fd.width || fs.height != fd.height {
        return Err(BlendError::SizeMismatch {
            s_w: fs.width,
            s_h: fs.height,
            d_w: fd.width,
            d_h: fd.height,
        });
    }
    for f in [fs, fd] {
        if f.check().is_err() {
            return Err(BlendError::BadFrame {
                width: f.width,
                height: f.height,
            });
        }
    }
    // Clamped to 0..=1 first, so the product is in 0..=256.
    let wd = (a.clamp(0.0, 1.0) * f32::from(ONE)).round() as u16;
    let ws = ONE - wd;
    out.width = fs.width;
    out.height = fs.height;
    for (s, d, o) in [
        (&fs.y, &fd.y, &mut out.y),
        (&fs.u, &fd.u, &mut out.u),
        (&fs.v, &fd.v, &mut out.v),
    ] {
        o.resize(s.len(), 0);
        for ((o, &s), &d) in o.iter_mut().zip(s).zip(d) {
            let v = u32::from(d) * u32::from(wd) + u32::from(s) * u32::from(ws) + 128;
            // A weighted mean of two octets with weights summing to 256.
            *o = (v >> 8) as u8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u16, h: u16, k: u8) -> Frame {
        let mut f = Frame::new(w, h);
        for (plane, m) in [(&mut f.y, 1u8), (&mut f.u, 3), (&mut f.v, 7)] {
            for (i, p) in plane.iter_mut().enumerate() {
                *p = (i as u8).wrapping_mul(m).wrapping_add(k);
            }
        }
        f
    }

    #[test]
    fn ends_are_exact_and_middle_is_the_mean() {
        let (fs, fd) = (pattern(7, 5, 0), pattern(7, 5, 91));
        let mut out = Frame::new(1, 1);
        blend(&fs, &fd, 0.0, &mut out).expect("same size");
        assert_eq!(out, fs);
        blend(&fs, &fd, 1.0, &mut out).expect("same size");
        assert_eq!(out, fd);
        blend(&fs, &fd, 0.5, &mut out).expect("same size");
        for (planes, name) in [
            ((&fs.y, &fd.y, &out.y), "y"),
            ((&fs.u, &fd.u, &out.u), "u"),
            ((&fs.v, &fd.v, &out.v), "v"),
        ] {
            for ((&s, &d), &o) in planes.0.iter().zip(planes.1).zip(planes.2) {
                let want = (u16::from(s) + u16::from(d)).div_ceil(2);
                assert_eq!(u16::from(o), want, "plane {name}");
            }
        }
        // Out of range weights are clamped.
        blend(&fs, &fd, 7.0, &mut out).expect("same size");
        assert_eq!(out, fd);
        blend(&fs, &fd, -1.0, &mut out).expect("same size");
        assert_eq!(out, fs);
    }

    #[test]
    fn weight_moves_every_pixel_towards_the_destination() {
        let mut fs = Frame::new(4, 4);
        let mut fd = Frame::new(4, 4);
        fs.fill([20, 40, 200]);
        fd.fill([220, 240, 0]);
        let mut out = Frame::new(4, 4);
        let mut last = None;
        for n in 1..=12u8 {
            blend(&fs, &fd, f32::from(n) / 12.0, &mut out).expect("same size");
            let want = 20.0 + 200.0 * f32::from(n) / 12.0;
            assert!((f32::from(out.y[0]) - want).abs() <= 1.0, "n {n}");
            assert!(last.is_none_or(|l| out.y[0] > l && out.v[0] < 200));
            last = Some(out.y[0]);
        }
    }

    #[test]
    fn rejects_what_it_cannot_blend() {
        let mut out = Frame::new(4, 4);
        let before = out.clone();
        let fs = pattern(4, 4, 0);
        assert!(matches!(
            blend(&fs, &pattern(4, 2, 0), 0.5, &mut out),
            Err(BlendError::SizeMismatch { .. })
        ));
        let mut bad = pattern(4, 4, 0);
        bad.u.pop();
        assert!(matches!(
            blend(&fs, &bad, 0.5, &mut out),
            Err(BlendError::BadFrame { .. })
        ));
        assert!(matches!(
            blend(&fs, &fs, f32::NAN, &mut out),
            Err(BlendError::Weight(_))
        ));
        assert_eq!(out, before, "an error leaves the output alone");
    }
}
