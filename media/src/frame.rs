//! I420 frames.

use crate::MediaError;

/// Video black: Y 16, Cb/Cr 128 (BT.601 limited range).
const BLACK: [u8; 3] = [16, 128, 128];

/// An I420 (YUV 4:2:0 planar) picture: a full-resolution luma plane and two
/// chroma planes of `ceil(width / 2) x ceil(height / 2)`, rows packed (the
/// stride of each plane is its width).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Luma, `width * height` octets, row by row.
    pub y: Vec<u8>,
    /// Cb, `chroma_width() * chroma_height()` octets.
    pub u: Vec<u8>,
    /// Cr, `chroma_width() * chroma_height()` octets.
    pub v: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("y_len", &self.y.len())
            .field("u_len", &self.u.len())
            .field("v_len", &self.v.len())
            .finish()
    }
}

impl Frame {
    /// A black frame of `width x height`.
    pub fn new(width: u16, height: u16) -> Frame {
        let (cw, ch) = chroma_dims(width, height);
        Frame {
            width,
            height,
            y: vec![BLACK[0]; usize::from(width) * usize::from(height)],
            u: vec![BLACK[1]; cw * ch],
            v: vec![BLACK[2]; cw * ch],
        }
    }

    /// Width of the chroma planes.
    pub fn chroma_width(&self) -> usize {
        chroma_dims(self.width, self.height).0
    }

    /// Height of the chroma planes.
    pub fn chroma_height(&self) -> usize {
        chroma_dims(self.width, self.height).1
    }

    /// Checks that the planes have the lengths the dimensions imply.
    pub fn check(&self) -> Result<(), MediaError> {
        let ey = usize::from(self.width) * usize::from(self.height);
        let ec = self.chroma_width() * self.chroma_height();
        if self.y.len() != ey || self.u.len() != ec || self.v.len() != ec {
            return Err(MediaError::PlaneSize {
                width: self.width,
                height: self.height,
                y: self.y.len(),
                u: self.u.len(),
                v: self.v.len(),
                ey,
                ec,
            });
        }
        Ok(())
    }

    /// Fills the whole frame with one colour (`[Y, Cb, Cr]`).
    pub fn fill(&mut self, yuv: [u8; 3]) {
        self.y.fill(yuv[0]);
        self.u.fill(yuv[1]);
        self.v.fill(yuv[2]);
    }

    /// Fills the rectangle of `w x h` pixels at (`x`, `y`) with one colour
    /// (`[Y, Cb, Cr]`), clipped to the frame. Chroma is written for every
    /// chroma sample whose top-left luma pixel is inside the rectangle, so
    /// rectangles on even coordinates colour exactly their own chroma.
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, yuv: [u8; 3]) {
        let fw = u32::from(self.width);
        let fh = u32::from(self.height);
        let x0 = x.min(fw);
        let y0 = y.min(fh);
        let x1 = x.saturating_add(w).min(fw);
        let y1 = y.saturating_add(h).min(fh);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let stride = fw as usize;
        for row in y0..y1 {
            let base = row as usize * stride;
            if let Some(s) = self.y.get_mut(base + x0 as usize..base + x1 as usize) {
                s.fill(yuv[0]);
            }
        }
        let cw = self.chroma_width();
        let (cx0, cx1) = (x0.div_ceil(2) as usize, x1.div_ceil(2) as usize);
        let (cy0, cy1) = (y0.div_ceil(2) as usize, y1.div_ceil(2) as usize);
        for row in cy0..cy1 {
            let base = row * cw;
            if let Some(s) = self.u.get_mut(base + cx0..base + cx1) {
                s.fill(yuv[1]);
            }
            if let Some(s) = self.v.get_mut(base + cx0..base + cx1) {
                s.fill(yuv[2]);
            }
        }
    }

    /// The frame as one I420 buffer (Y, then Cb, then Cr), as
    /// `ffmpeg -f rawvideo -pix_fmt yuv420p` writes it.
    pub fn to_i420(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.y.len() + self.u.len() + self.v.len());
        out.extend_from_slice(&self.y);
        out.extend_from_slice(&self.u);
        out.extend_from_slice(&self.v);
        out
    }

    /// Size in octets of one I420 frame of `width x height`.
    pub fn i420_len(width: u16, height: u16) -> usize {
        let (cw, ch) = chroma_dims(width, height);
        usize::from(width) * usize::from(height) + 2 * cw * ch
    }

    /// A frame from one I420 buffer (see [`Frame::to_i420`]); `None` if the
    /// buffer's length is not [`Frame::i420_len`].
    pub fn from_i420(width: u16, height: u16, buf: &[u8]) -> Option<Frame> {
        if buf.len() != Frame::i420_len(width, height) {
            return None;
        }
        let ly = usize::from(width) * usize::from(height);
        let (cw, ch) = chroma_dims(width, height);
        let lc = cw * ch;
        Some(Frame {
            width,
            height,
            y: buf[..ly].to_vec(),
            u: buf[ly..ly + lc].to_vec(),
            v: buf[ly + lc..].to_vec(),
        })
    }
}

fn chroma_dims(width: u16, height: u16) -> (usize, usize) {
    (
        usize::from(width).div_ceil(2),
        usize::from(height).div_ceil(2),
    )
}

/// Converts an sRGB colour to BT.601 limited-range `[Y, Cb, Cr]` with
/// integer arithmetic only (the same result on every machine).
pub fn rgb_to_yuv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    // The usual 8-bit fixed-point BT.601 coefficients.
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    [clamp8(y), clamp8(u), clamp8(v)]
}

fn clamp8(x: i32) -> u8 {
    // Clamped into 0..=255 first, so the cast cannot truncate.
    x.clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_has_i420_planes() {
        let f = Frame::new(640, 360);
        assert_eq!(f.y.len(), 640 * 360);
        assert_eq!(f.u.len(), 320 * 180);
        assert!(f.check().is_ok());
        let odd = Frame::new(5, 3);
        assert_eq!(odd.u.len(), 3 * 2);
        assert!(odd.check().is_ok());
    }

    #[test]
    fn check_rejects_wrong_planes() {
        let mut f = Frame::new(4, 4);
        f.v.pop();
        assert!(matches!(f.check(), Err(MediaError::PlaneSize { .. })));
    }

    #[test]
    fn fill_rect_clips_and_colours_chroma() {
        let mut f = Frame::new(8, 4);
        f.fill_rect(6, 2, 10, 10, [200, 10, 20]);
        for yy in 0..4 {
            for xx in 0..8 {
                let inside = xx >= 6 && yy >= 2;
                assert_eq!(f.y[yy * 8 + xx] == 200, inside, "({xx},{yy})");
            }
        }
        assert_eq!(f.u[4 + 3], 10);
        assert_eq!(f.v[4 + 3], 20);
        assert_eq!(f.u[0], 128);
        // Entirely outside: nothing changes.
        let before = f.clone();
        f.fill_rect(100, 100, 5, 5, [1, 2, 3]);
        assert_eq!(f, before);
    }

    #[test]
    fn i420_round_trip() {
        let mut f = Frame::new(6, 4);
        f.fill_rect(0, 0, 2, 2, [50, 60, 70]);
        let b = f.to_i420();
        assert_eq!(b.len(), Frame::i420_len(6, 4));
        assert_eq!(Frame::from_i420(6, 4, &b), Some(f));
        assert_eq!(Frame::from_i420(6, 4, &b[1..]), None);
    }

    #[test]
    fn rgb_to_yuv_known_values() {
        assert_eq!(rgb_to_yuv(0, 0, 0), [16, 128, 128]);
        assert_eq!(rgb_to_yuv(255, 255, 255), [235, 128, 128]);
        // Pure red in BT.601 limited range: Y 82, Cb 90, Cr 240.
        assert_eq!(rgb_to_yuv(255, 0, 0), [82, 90, 240]);
    }
}
