//! What the UE displayed, read back from its Y4M file (`PlayStart.video`)
//! one frame at a time (a minute at 640x360 is over a gigabyte, so the
//! file is never held whole): the SSIM between each pair of consecutive
//! displayed frames, with the UE's own measure ([`media::FastSsim`], as
//! its selector and its `ssim_prev`), and the frames asked to be kept.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use media::{FastSsim, Frame};

use super::ExpError;

/// One pass over a video.
#[derive(Debug, Default)]
pub struct Scan {
    pub width: u16,
    pub height: u16,
    /// `ssim_prev[k]`: SSIM of frame k-1 and frame k (`None` for k = 0).
    pub ssim_prev: Vec<Option<f64>>,
    /// The frames `keep` asked for, with their index.
    pub kept: Vec<(usize, Frame)>,
}

fn bad(path: &Path, what: String) -> ExpError {
    ExpError::Video(format!("{}: {what}", path.display()))
}

/// Reads the 4:2:0 Y4M file `path`: every consecutive pair's SSIM, and
/// the frames whose index `keep` accepts.
pub fn scan(path: &Path, keep: impl Fn(usize) -> bool) -> Result<Scan, ExpError> {
    let f = std::fs::File::open(path).map_err(ExpError::io("open", path))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)
        .map_err(ExpError::io("read", path))?;
    let head = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut toks = head.split(' ');
    if toks.next() != Some("YUV4MPEG2") {
        return Err(bad(path, "not a YUV4MPEG2 file".into()));
    }
    let (mut w, mut h) = (0u16, 0u16);
    for t in toks {
        match t.split_at(t.len().min(1)) {
            ("W", v) => w = v.parse().unwrap_or(0),
            ("H", v) => h = v.parse().unwrap_or(0),
            ("C", v) if !v.starts_with("420") => {
                return Err(bad(path, format!("colour space {v}: only 4:2:0")))
            }
            _ => {}
        }
    }
    if w == 0 || h == 0 {
        return Err(bad(path, format!("no size in the header `{head}`")));
    }
    let luma = usize::from(w) * usize::from(h);
    let chroma = usize::from(w).div_ceil(2) * usize::from(h).div_ceil(2);
    let mut out = Scan {
        width: w,
        height: h,
        ..Scan::default()
    };
    let mut ssim = FastSsim::new(w, h);
    let mut prev: Option<Frame> = None;
    let mut cur = Frame::new(w, h);
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(ExpError::io("read", path))?;
        if n == 0 {
            break;
        }
        if !line.starts_with(b"FRAME") {
            return Err(bad(
                path,
                format!("frame {}: no FRAME", out.ssim_prev.len()),
            ));
        }
        cur.y.resize(luma, 0);
        cur.u.resize(chroma, 0);
        cur.v.resize(chroma, 0);
        let whole = [&mut cur.y, &mut cur.u, &mut cur.v]
            .into_iter()
            .try_for_each(|p| r.read_exact(p));
        if whole.is_err() {
            // The UE was stopped while writing its last frame.
            break;
        }
        let k = out.ssim_prev.len();
        let s = match &prev {
            Some(p) => Some(ssim.score(p, &cur).map_err(|e| bad(path, e.to_string()))?),
            None => None,
        };
        out.ssim_prev.push(s);
        if keep(k) {
            out.kept.push((k, cur.clone()));
        }
        match &mut prev {
            Some(p) => std::mem::swap(p, &mut cur),
            None => prev = Some(cur.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn y4m(frames: &[u8]) -> Vec<u8> {
        let mut v = b"YUV4MPEG2 W16 H16 F60:1 Ip A1:1 C420mpeg2\n".to_vec();
        for &luma in frames {
            v.extend_from_slice(b"FRAME\n");
            for y in 0..16 {
                for x in 0..16 {
                    // A pattern whose brightness is `luma`.
                    v.push(luma.wrapping_add(((x * 7 + y * 13) % 50) as u8));
                }
            }
            v.extend(std::iter::repeat_n(128u8, 2 * 64));
        }
        v
    }

    #[test]
    fn consecutive_pairs_and_kept_frames() {
        let p = std::env::temp_dir().join(format!("exp-video-{}.y4m", std::process::id()));
        let mut data = y4m(&[10, 10, 200]);
        data.extend_from_slice(b"FRAME\n\x01\x02"); // truncated last frame
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(&data))
            .expect("write");
        let s = scan(&p, |k| k == 1).expect("scan");
        let _ = std::fs::remove_file(&p);
        assert_eq!((s.width, s.height), (16, 16));
        assert_eq!(s.ssim_prev.len(), 3);
        assert_eq!(s.ssim_prev[0], None);
        assert!((s.ssim_prev[1].expect("pair") - 1.0).abs() < 1e-9);
        assert!(s.ssim_prev[2].expect("pair") < 0.9);
        assert_eq!(s.kept.len(), 1);
        assert_eq!(s.kept[0].0, 1);
        assert!(scan(Path::new("/nonexistent.y4m"), |_| false).is_err());
    }
}
