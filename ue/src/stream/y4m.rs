//! YUV4MPEG2 (`.y4m`), 4:2:0: the displayed video as a file that ffmpeg,
//! ffplay and most video tools read.
//!
//! ```text
//! YUV4MPEG2 W640 H360 F60:1 Ip A1:1 C420mpeg2 XCOLORRANGE=LIMITED\n
//! FRAME\n <Y plane> <U plane> <V plane>      (per frame)
//! ```
//!
//! The header is written with the first frame (its size is the video's);
//! a later frame of another size cannot go in the same file and is
//! skipped and counted.

use std::io::{BufRead, Read, Write};

use super::StreamError;

/// Plane sizes of an I420 frame: (luma, each chroma).
pub fn plane_sizes(width: u16, height: u16) -> (usize, usize) {
    let (w, h) = (width as usize, height as usize);
    (w * h, w.div_ceil(2) * h.div_ceil(2))
}

/// Writes frames to a Y4M stream.
#[derive(Debug)]
pub struct Y4mWriter<W: Write> {
    out: W,
    fps: u32,
    size: Option<(u16, u16)>,
    written: u64,
    skipped: u64,
}

impl<W: Write> Y4mWriter<W> {
    /// A writer; `fps` goes in the header (the nominal display rate).
    pub fn new(out: W, fps: u32) -> Self {
        Y4mWriter {
            out,
            fps: fps.max(1),
            size: None,
            written: 0,
            skipped: 0,
        }
    }

    /// Appends a frame; `Ok(false)` if it was skipped (another size than
    /// the first frame's, or planes of the wrong length).
    pub fn write(&mut self, f: &media::Frame) -> Result<bool, StreamError> {
        let (ly, lc) = plane_sizes(f.width, f.height);
        if f.y.len() != ly || f.u.len() != lc || f.v.len() != lc {
            self.skipped += 1;
            return Ok(false);
        }
        match self.size {
            None => {
                writeln!(
                    self.out,
                    "YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 C420mpeg2 XCOLORRANGE=LIMITED",
                    f.width, f.height, self.fps
                )
                .map_err(StreamError::Video)?;
                self.size = Some((f.width, f.height));
            }
            Some(s) if s != (f.width, f.height) => {
                self.skipped += 1;
                return Ok(false);
            }
            Some(_) => {}
        }
        self.out.write_all(b"FRAME\n").map_err(StreamError::Video)?;
        for p in [&f.y, &f.u, &f.v] {
            self.out.write_all(p).map_err(StreamError::Video)?;
        }
        self.written += 1;
        Ok(true)
    }

    /// Frames written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Frames skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> Result<W, StreamError> {
        self.out.flush().map_err(StreamError::Video)?;
        Ok(self.out)
    }
}

/// A Y4M file's header fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Frame rate numerator and denominator.
    pub fps: (u32, u32),
}

fn bad(s: impl Into<String>) -> StreamError {
    StreamError::Y4m(s.into())
}

/// Reads a whole 4:2:0 Y4M stream (the files [`Y4mWriter`] writes, and
/// ffmpeg's `-pix_fmt yuv420p -f yuv4mpegpipe`).
pub fn read_y4m(mut r: impl BufRead) -> Result<(Y4mHeader, Vec<media::Frame>), StreamError> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).map_err(StreamError::Video)?;
    let text = std::str::from_utf8(&line).map_err(|_| bad("header is not text"))?;
    let mut it = text.trim_end().split(' ');
    if it.next() != Some("YUV4MPEG2") {
        return Err(bad("no YUV4MPEG2 signature"));
    }
    let (mut w, mut h, mut fps) = (None, None, (25, 1));
    for tok in it {
        let mut chars = tok.chars();
        let Some(k) = chars.next() else { continue };
        let v = chars.as_str();
        match k {
            'W' => w = v.parse::<u16>().ok(),
            'H' => h = v.parse::<u16>().ok(),
            'F' => {
                let (n, d) = v.split_once(':').ok_or_else(|| bad("bad F"))?;
                fps = (
                    n.parse().map_err(|_| bad("bad F"))?,
                    d.parse().map_err(|_| bad("bad F"))?,
                );
            }
            'C' if !v.starts_with("420") => {
                return Err(bad(format!("colour space {v}, only 4:2:0 is read")))
            }
            _ => {}
        }
    }
    let (width, height) = match (w, h) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(bad("missing or bad W/H")),
    };
    let (ly, lc) = plane_sizes(width, height);
    let mut frames = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(StreamError::Video)?;
        if n == 0 {
            break;
        }
        if !line.starts_with(b"FRAME") {
            return Err(bad(format!("frame {}: no FRAME marker", frames.len())));
        }
        let mut plane = |len: usize| -> Result<Vec<u8>, StreamError> {
            // Grows with the data read: a huge W x H in a short file does
            // not allocate its size up front.
            let mut p = Vec::new();
            (&mut r)
                .take(len as u64)
                .read_to_end(&mut p)
                .map_err(StreamError::Video)?;
            if p.len() != len {
                return Err(bad(format!("frame {}: truncated", frames.len())));
            }
            Ok(p)
        };
        let y = plane(ly)?;
        let u = plane(lc)?;
        let v = plane(lc)?;
        frames.push(media::Frame {
            width,
            height,
            y,
            u,
            v,
        });
    }
    Ok((Y4mHeader { width, height, fps }, frames))
}
