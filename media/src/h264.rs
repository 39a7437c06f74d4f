//! H.264 encoding and decoding with openh264 (constrained baseline: no
//! B-frames, so every access unit can be shown as soon as it is decoded).
//!
//! The encoder is tuned for real-time streaming: bitrate rate control, no
//! frame skipping (every rendered frame becomes an access unit), one thread,
//! an IDR frame every [`Encoder::idr_interval`] frames (SPS and PPS are
//! repeated with each IDR, so a receiver can join at any IDR) and on
//! demand ([`Encoder::force_idr`]).

use openh264::encoder::{
    BitRate, Complexity, FrameRate, IntraFramePeriod, QpRange, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::{Frame, MediaError};

/// openh264's SIMD code in this build, as its own CPU detection reports
/// it: the `WELS_CPU_*` flags (`codec/common/inc/cpu_core.h`) of the
/// instructions its assembly uses on this CPU, or `None` when it has none.
///
/// openh264's x86 assembly (motion search, transforms, deblocking) is
/// built only when `nasm` is on the build machine's PATH; without it
/// `openh264-sys2` falls back to plain C and says nothing. The encode of
/// a textured 640x360 frame then takes 6.4 ms instead of 2.3 ms here
/// (`cargo bench -p app --bench video_frame`), which on a 2-core testbed
/// is the difference between two instances and two decoders fitting or
/// not. Without assembly `WelsCPUFeatureDetect` is a stub returning 0, so
/// this tells what was compiled, not only what the CPU has.
pub fn simd_flags() -> Option<u32> {
    extern "C" {
        // codec/common/inc/cpu.h, declared extern "C" there; part of the
        // static library openh264-sys2 links.
        fn WelsCPUFeatureDetect(logical_processors: *mut i32) -> u32;
    }
    let mut cpus = 0i32;
    // SAFETY: the function only runs cpuid (or reads /proc/cpuinfo on ARM)
    // and writes the count through the pointer, which is valid for the call.
    let flags = unsafe { WelsCPUFeatureDetect(&mut cpus) };
    (flags != 0).then_some(flags)
}

/// Why this build's encoder is slow, if it is: `None` when openh264 has
/// its SIMD code here, otherwise the sentence to log or print.
pub fn simd_warning() -> Option<&'static str> {
    (ARCH_HAS_ASM && simd_flags().is_none()).then_some(NO_SIMD_WARNING)
}

/// Whether openh264 has assembly for this architecture (elsewhere no
/// SIMD flags are expected and nothing is said).
pub const ARCH_HAS_ASM: bool = cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
));

/// What [`simd_warning`] says, for a report of another process's flags.
pub const NO_SIMD_WARNING: &str =
    "openh264 was built without its assembly (nasm was not on PATH when it was built): \
     H.264 encoding takes about 2.8x the CPU; install nasm (Debian: apt-get install nasm), \
     then `cargo clean --release -p openh264-sys2` and build again";

/// Lowest quantizer the rate control may use.
pub const MIN_QP: u8 = 12;
/// Highest quantizer the rate control may use.
pub const MAX_QP: u8 = 42;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Width in pixels (even).
    pub width: u16,
    /// Height in pixels (even).
    pub height: u16,
    /// Frames per second the stream is produced at (rate control's clock).
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate_bps: u32,
}

impl Default for EncoderConfig {
    /// 640x360 at 60 fps, 2 Mbit/s: the application's defaults.
    fn default() -> Self {
        EncoderConfig {
            width: 640,
            height: 360,
            fps: 60,
            bitrate_bps: 2_000_000,
        }
    }
}

/// An H.264 encoder producing one Annex B access unit per frame.
pub struct Encoder {
    inner: openh264::encoder::Encoder,
    config: EncoderConfig,
    idr_interval: u32,
    frames: u64,
    since_idr: u32,
    force: bool,
}

impl Encoder {
    /// An encoder for `config`; the IDR interval starts at one second
    /// (`fps` frames).
    pub fn new(config: EncoderConfig) -> Result<Encoder, MediaError> {
        if config.width == 0
            || config.height == 0
            || config.width % 2 != 0
            || config.height % 2 != 0
        {
            return Err(MediaError::FrameSize {
                width: config.width,
                height: config.height,
            });
        }
        if config.fps == 0 || config.fps > 240 {
            return Err(MediaError::Config(format!(
                "fps {} out of 1..=240",
                config.fps
            )));
        }
        if config.bitrate_bps < 10_000 || config.bitrate_bps > i32::MAX as u32 {
            return Err(MediaError::Config(format!(
                "bitrate {} bit/s out of 10000..={}",
                config.bitrate_bps,
                i32::MAX
            )));
        }
        // Camera (not screen-content) mode: the scenes move as a whole
        // (the textured one turns and shifts every tick), which its motion
        // search follows. In screen-content mode every textured tick was
        // coded as a scene change (an IDR 20 times a second): drawing and
        // encoding a 640x360 frame took 10.2 ms here and the stream ran at
        // 3.2 Mbit/s for a 2 Mbit/s target; in camera mode 6.5 ms and 2.0
        // Mbit/s (the snake scene 2.4 -> 0.9 ms), so two instances during
        // a migration's countdown no longer fill both cores of a 2-core
        // testbed. (Those figures are of an openh264 built without its
        // assembly; with it, 2.9 ms: see `simd_flags`.)
        let oc = openh264::encoder::EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            // fps is at most 240, exactly representable.
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .skip_frames(false)
            .num_threads(1)
            .complexity(Complexity::Low)
            // openh264 wants scene change detection on and adaptive
            // quantization off for screen content (it warns otherwise).
            .scene_change_detect(true)
            .adaptive_quantization(false)
            .background_detection(false)
            // Our own counter decides IDRs (see `encode`), the library's
            // periodic intra refresh stays off.
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            // A minimum QP above 0: with 0, openh264 clamps screen content to
            // QP 26..=35, too coarse for 1-pixel detail.
            .qp(QpRange::new(MIN_QP, MAX_QP));
        let inner = openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), oc)
            .map_err(|e| MediaError::Encoder(e.to_string()))?;
        Ok(Encoder {
            inner,
            config,
            idr_interval: config.fps,
            frames: 0,
            since_idr: 0,
            force: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Frames between IDR frames (0: only the first frame and forced ones).
    pub fn idr_interval(&self) -> u32 {
        self.idr_interval
    }

    /// Sets the frames between IDR frames (0: only the first frame and
    /// forced ones); counts from the last IDR.
    pub fn set_idr_interval(&mut self, frames: u32) {
        self.idr_interval = frames;
    }

    /// Makes the next frame an IDR frame (with SPS and PPS): a receiver that
    /// joins or lost packets can start decoding there.
    pub fn force_idr(&mut self) {
        self.force = true;
    }

    /// Frames encoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Encodes one frame into an Annex B access unit (NAL units with
    /// 4-octet start codes).
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, MediaError> {
        let mut out = Vec::new();
        self.encode_into(frame, &mut out)?;
        Ok(out)
    }

    /// As [`Encoder::encode`], appending to `out` (reuse its allocation).
    pub fn encode_into(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), MediaError> {
        if frame.width != self.config.width || frame.height != self.config.height {
            return Err(MediaError::SizeMismatch {
                got_w: frame.width,
                got_h: frame.height,
                want_w: self.config.width,
                want_h: self.config.height,
            });
        }
        frame.check()?;
        let idr = self.frames == 0
            || self.force
            || (self.idr_interval != 0 && self.since_idr >= self.idr_interval);
        if idr && self.frames != 0 {
            self.inner.force_intra_frame();
        }
        let src = FrameSource(frame);
        let ts = openh264::Timestamp::from_millis(self.frames * 1000 / u64::from(self.config.fps));
        let bs = self
            .inner
            .encode_at(&src, ts)
            .map_err(|e| MediaError::Encoder(e.to_string()))?;
        bs.write_vec(out);
        self.frames += 1;
        if idr {
            self.since_idr = 1;
            self.force = false;
        } else {
            self.since_idr += 1;
        }
        Ok(())
    }
}

/// A [`Frame`] as openh264's input.
struct FrameSource<'a>(&'a Frame);

impl YUVSource for FrameSource<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (usize::from(self.0.width), usize::from(self.0.height))
    }

    fn strides(&self) -> (usize, usize, usize) {
        let cw = self.0.chroma_width();
        (usize::from(self.0.width), cw, cw)
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

/// An H.264 decoder.
pub struct Decoder {
    inner: openh264::decoder::Decoder,
}

impl Decoder {
    /// A decoder.
    pub fn new() -> Result<Decoder, MediaError> {
        let inner =
            openh264::decoder::Decoder::new().map_err(|e| MediaError::Decoder(e.to_string()))?;
        Ok(Decoder { inner })
    }

    /// Decodes an Annex B access unit (or any run of whole NAL units);
    /// `Some(frame)` when a picture is complete, `None` when the data held
    /// no picture (only SPS/PPS, or a frame that needs an earlier IDR).
    pub fn decode(&mut self, annexb: &[u8]) -> Result<Option<Frame>, MediaError> {
        let yuv = self
            .inner
            .decode(annexb)
            .map_err(|e| MediaError::Decoder(e.to_string()))?;
        let Some(yuv) = yuv else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
            return Err(MediaError::Decoder(format!(
                "picture of {w}x{h} is too large"
            )));
        };
        let mut f = Frame::new(w16, h16);
        let (cw, ch) = (f.chroma_width(), f.chroma_height());
        copy_plane(&mut f.y, yuv.y(), w, h, sy)?;
        copy_plane(&mut f.u, yuv.u(), cw, ch, su)?;
        copy_plane(&mut f.v, yuv.v(), cw, ch, sv)?;
        Ok(Some(f))
    }
}

fn copy_plane(
    dst: &mut [u8],
    src: &[u8],
    w: usize,
    h: usize,
    stride: usize,
) -> Result<(), MediaError> {
    for r in 0..h {
        let s = src
            .get(r * stride..r * stride + w)
            .ok_or_else(|| MediaError::Decoder("decoded plane shorter than its size".into()))?;
        dst[r * w..(r + 1) * w].copy_from_slice(s);
    }
    Ok(())
}

/// The NAL units of an Annex B byte stream (start codes of 3 or 4 octets
/// removed; empty units skipped).
pub fn nal_units(annexb: &[u8]) -> impl Iterator<Item = &[u8]> {
    NalIter { rest: annexb }
}

struct NalIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NalIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            // Skip to just after the next start code.
            let start = find_start_code(self.rest)?;
            let after = &self.rest[start.1..];
            let end = find_start_code(after).map_or(after.len(), |s| s.0);
            let mut nal = &after[..end];
            self.rest = &after[end..];
            // A 4-octet start code's leading zero belongs to no NAL unit;
            // trailing zeros of a NAL unit are padding (trailing_zero_8bits).
            while let [head @ .., 0] = nal {
                nal = head;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
            if self.rest.is_empty() {
                return None;
            }
        }
    }
}

/// Position of the first `00 00 01`: (its start, the index after it).
fn find_start_code(b: &[u8]) -> Option<(usize, usize)> {
    b.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i + 3))
}

/// NAL unit type (the low 5 bits of the NAL header).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// Whether an access unit holds an IDR slice (NAL type 5).
pub fn is_idr(annexb: &[u8]) -> bool {
    nal_units(annexb).any(|n| nal_type(n) == Some(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssim;

    fn picture(w: u16, h: u16, t: u32) -> Frame {
        let mut f = Frame::new(w, h);
        f.fill([40, 120, 130]);
        for i in 0..8u32 {
            f.fill_rect(
                (i * 37 + t * 4) % u32::from(w),
                i * 20,
                30,
                16,
                [200 - (i * 20) as u8, 90, 170],
            );
        }
        f
    }

    #[test]
    fn openh264_is_built_with_its_simd_code() {
        // Fails on a build made without nasm: the testbed's frame budget
        // assumes the assembly (see `simd_flags`).
        assert_eq!(simd_warning(), None);
        if cfg!(target_arch = "x86_64") {
            const SSE2: u32 = 0x8;
            let flags = simd_flags().expect("flags");
            assert_ne!(flags & SSE2, 0, "x86-64 has SSE2: flags {flags:#x}");
        }
    }

    #[test]
    fn nal_iterator_splits_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let v: Vec<&[u8]> = nal_units(&s).collect();
        assert_eq!(v, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn encode_decode_round_trip() {
        let cfg = EncoderConfig {
            width: 320,
            height: 180,
            fps: 30,
            bitrate_bps: 1_000_000,
        };
        let mut enc = Encoder::new(cfg).expect("encoder");
        let mut dec = Decoder::new().expect("decoder");
        let mut worst = 1.0f64;
        for t in 0..20 {
            let src = picture(320, 180, t);
            let au = enc.encode(&src).expect("encode");
            assert!(!au.is_empty());
            assert_eq!(is_idr(&au), t == 0, "frame {t}");
            let out = dec
                .decode(&au)
                .expect("decode")
                .expect("a picture per access unit");
            assert_eq!((out.width, out.height), (320, 180));
            worst = worst.min(ssim(&src, &out));
        }
        assert!(worst > 0.95, "worst SSIM {worst}");
    }

    #[test]
    fn idr_interval_and_force() {
        let mut enc = Encoder::new(EncoderConfig {
            width: 64,
            height: 64,
            fps: 10,
            bitrate_bps: 200_000,
        })
        .expect("encoder");
        enc.set_idr_interval(4);
        let mut idrs = vec![];
        for t in 0..10 {
            if t == 6 {
                enc.force_idr();
            }
            let au = enc.encode(&picture(64, 64, t)).expect("encode");
            idrs.push(is_idr(&au));
        }
        // 0, 4, forced 6, then 4 frames later 10 (outside), so 0 4 6.
        let at: Vec<usize> = idrs
            .iter()
            .enumerate()
            .filter(|(_, &b)| b)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at, vec![0, 4, 6]);
    }

    #[test]
    fn bad_config_and_size() {
        let bad = EncoderConfig {
            width: 641,
            ..EncoderConfig::default()
        };
        assert!(matches!(
            Encoder::new(bad),
            Err(MediaError::FrameSize { .. })
        ));
        let mut enc = Encoder::new(EncoderConfig::default()).expect("encoder");
        assert!(matches!(
            enc.encode(&Frame::new(320, 180)),
            Err(MediaError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn decoder_rejects_or_ignores_garbage_without_panicking() {
        let mut dec = Decoder::new().expect("decoder");
        let _ = dec.decode(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x12]);
        let _ = dec.decode(&[1, 2, 3, 4, 5]);
        let _ = dec.decode(&[]);
    }
}
