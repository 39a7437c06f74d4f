//! The video of an instance: [`Streamer`] turns worlds into RTP datagrams
//! (render, H.264, RTP; no I/O), and `frame_loop`, the instance's main
//! thread, paces it at the frame rate and sends the datagrams to the UE.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use media::h264::{is_idr, Encoder, EncoderConfig};
use media::rtp::{FrameMeta, Packetizer, CLOCK_RATE, DEFAULT_MTU, PAYLOAD_TYPE};
use media::{Frame, MediaError};
use tracing::warn;

use super::{realtime_ns, InstanceError, Shared};
use crate::game::World;
use crate::scene::Scene;

/// Settings of a [`Streamer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamerConfig {
    /// Encoder settings (frame size, fps, bitrate).
    pub encoder: EncoderConfig,
    /// RTP SSRC.
    pub ssrc: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// Largest RTP datagram.
    pub mtu: usize,
    /// The account whose `last_input` goes into [`FrameMeta::input_seq`].
    pub account: String,
    /// Frames between IDRs (`None`: the encoder's default, one second).
    pub idr_interval: Option<u32>,
    /// What is drawn.
    pub scene: Scene,
}

impl StreamerConfig {
    /// Defaults (640x360, 60 fps, 2 Mbit/s, PT 96, MTU 1200) for `account`.
    pub fn new(account: &str, ssrc: u32) -> StreamerConfig {
        StreamerConfig {
            encoder: EncoderConfig::default(),
            ssrc,
            payload_type: PAYLOAD_TYPE,
            mtu: DEFAULT_MTU,
            account: account.to_string(),
            idr_interval: None,
            scene: Scene::Snake,
        }
    }
}

/// What one frame became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameReport {
    /// The metadata on its packets.
    pub meta: FrameMeta,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Size of the access unit.
    pub encoded_bytes: usize,
    /// Datagrams produced.
    pub packets: usize,
    /// Octets in those datagrams.
    pub datagram_bytes: usize,
    /// An IDR frame.
    pub idr: bool,
    /// Time spent rendering.
    pub render_ns: u64,
    /// Time spent encoding.
    pub encode_ns: u64,
}

/// World -> frame -> H.264 -> RTP datagrams; no I/O.
pub struct Streamer {
    cfg: StreamerConfig,
    frame: Frame,
    encoder: Encoder,
    packetizer: Packetizer,
    frames: u64,
    /// Frame slots so far (streamed or skipped): the RTP clock.
    slots: u64,
    ts0: u32,
    au: Vec<u8>,
}

impl Streamer {
    /// A streamer.
    pub fn new(cfg: StreamerConfig) -> Result<Streamer, MediaError> {
        let mut encoder = Encoder::new(cfg.encoder)?;
        if let Some(n) = cfg.idr_interval {
            encoder.set_idr_interval(n);
        }
        let packetizer = Packetizer::new(cfg.ssrc, cfg.payload_type, cfg.mtu);
        Ok(Streamer {
            frame: Frame::new(cfg.encoder.width, cfg.encoder.height),
            encoder,
            packetizer,
            frames: 0,
            slots: 0,
            // A stream-specific start, as RFC 3550 asks (derived, not random,
            // so tests are reproducible).
            ts0: cfg.ssrc.rotate_left(7) ^ 0x5a5a_5a5a,
            au: Vec::new(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StreamerConfig {
        &self.cfg
    }

    /// The last rendered frame.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The last access unit.
    pub fn access_unit(&self) -> &[u8] {
        &self.au
    }

    /// Frames streamed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Skips `n` frame slots (the loop fell behind): the next frame's RTP
    /// timestamp is that of its slot, so the timestamps stay the sampling
    /// instants (RFC 3550 5.1) and a receiver can pace display by them.
    pub fn skip_slots(&mut self, n: u64) {
        self.slots = self.slots.wrapping_add(n);
    }

    /// Makes the next frame an IDR frame.
    pub fn force_idr(&mut self) {
        self.encoder.force_idr();
    }

    /// The RTP timestamp of frame slot `n` (90 kHz, from a stream specific
    /// origin).
    pub fn timestamp_of(&self, n: u64) -> u32 {
        let fps = u64::from(self.cfg.encoder.fps.max(1));
        // Wraps like RTP timestamps do.
        self.ts0
            .wrapping_add((n.wrapping_mul(u64::from(CLOCK_RATE)) / fps) as u32)
    }

    /// Renders `world`, encodes it and appends its RTP datagrams to `out`.
    pub fn stream(
        &mut self,
        world: &World,
        rendered_ns: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<FrameReport, MediaError> {
        let t0 = Instant::now();
        self.cfg.scene.draw(world, &mut self.frame);
        let t1 = Instant::now();
        self.au.clear();
        self.encoder.encode_into(&self.frame, &mut self.au)?;
        let t2 = Instant::now();
        let meta = FrameMeta {
            tick: world.tick,
            input_seq: world
                .snakes
                .get(&self.cfg.account)
                .map_or(0, |s| s.last_input),
            rendered_ns,
        };
        let timestamp = self.timestamp_of(self.slots);
        let before = out.len();
        self.packetizer.packetize(&self.au, timestamp, &meta, out);
        self.frames += 1;
        self.slots = self.slots.wrapping_add(1);
        Ok(FrameReport {
            meta,
            timestamp,
            encoded_bytes: self.au.len(),
            packets: out.len() - before,
            datagram_bytes: out[before..].iter().map(Vec::len).sum(),
            idr: is_idr(&self.au),
            render_ns: dur_ns(t1 - t0),
            encode_ns: dur_ns(t2 - t1),
        })
    }
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn frame_loop(
    cfg: StreamerConfig,
    rtp: &UdpSocket,
    sh: &Shared,
) -> Result<(), InstanceError> {
    // The frame's first hop: real-time priority when MINEDGE_REALTIME asks
    // for it (ctlhttp::rt; off by default).
    ctlhttp::rt::media_thread("frame-loop");
    let fps = cfg.encoder.fps.max(1);
    let period = Duration::from_nanos(1_000_000_000 / u64::from(fps));
    let mut streamer = Streamer::new(cfg)?;
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut next = Instant::now();
    let m = &sh.metrics;
    while !sh.stopping() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        next += period;
        // Fell more than a frame behind: drop the missed slots.
        let now = Instant::now();
        while next + period < now {
            next += period;
            streamer.skip_slots(1);
            m.frames_late.fetch_add(1, Ordering::Relaxed);
        }
        if sh.idr_request.swap(false, Ordering::Relaxed) {
            streamer.force_idr();
        }
        let world = sh.world();
        out.clear();
        let rep = match streamer.stream(&world, realtime_ns(), &mut out) {
            Ok(r) => r,
            Err(e) => {
                m.encode_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "encoding a frame failed");
                continue;
            }
        };
        m.frames_rendered.fetch_add(1, Ordering::Relaxed);
        m.frames_encoded.fetch_add(1, Ordering::Relaxed);
        m.render_ns_total
            .fetch_add(rep.render_ns, Ordering::Relaxed);
        m.encode_ns_total
            .fetch_add(rep.encode_ns, Ordering::Relaxed);
        m.encode_ns_last.store(rep.encode_ns, Ordering::Relaxed);
        if rep.idr {
            m.idr_frames.fetch_add(1, Ordering::Relaxed);
        }
        let mut all = true;
        for d in &out {
            match rtp.send(d) {
                Ok(n) => {
                    m.packets_sent.fetch_add(1, Ordering::Relaxed);
                    m.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    all = false;
                    // Counted; logged at most once per hundred.
                    let n = m.send_errors.fetch_add(1, Ordering::Relaxed);
                    if n % 100 == 0 {
                        warn!(error = %e, errors = n + 1, "sending RTP failed");
                    }
                }
            }
        }
        // The first frame whose datagrams all left: the agent's first_frame_ms.
        if all && m.frames_sent.fetch_add(1, Ordering::Relaxed) == 0 {
            m.first_frame_unix_ns
                .store(realtime_ns(), Ordering::Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Cell, Event};

    #[test]
    fn streamer_meta_and_timestamps() {
        let mut w = World::new(64, 36, 1);
        w.event(&Event::Join {
            player: "acc".into(),
        });
        if let Some(s) = w.snakes.get_mut("acc") {
            s.last_input = 17;
            s.body[0] = Cell { x: 3, y: 3 };
        }
        let mut cfg = StreamerConfig::new("acc", 42);
        cfg.encoder.width = 320;
        cfg.encoder.height = 180;
        let mut st = Streamer::new(cfg).expect("streamer");
        let mut out = vec![];
        let r0 = st.stream(&w, 99, &mut out).expect("frame");
        assert!(r0.idr);
        assert_eq!(
            r0.meta,
            FrameMeta {
                tick: w.tick,
                input_seq: 17,
                rendered_ns: 99
            }
        );
        assert_eq!(r0.packets, out.len());
        let r1 = st.stream(&w, 100, &mut out).expect("frame");
        assert!(!r1.idr);
        assert_eq!(r1.timestamp.wrapping_sub(r0.timestamp), 1500);
        st.force_idr();
        let r2 = st.stream(&w, 101, &mut out).expect("frame");
        assert!(r2.idr);
        // Two slots skipped (the loop fell behind): the next timestamp is
        // its slot's, three frame periods on, not the next frame number's.
        st.skip_slots(2);
        let r3 = st.stream(&w, 150, &mut out).expect("frame");
        assert_eq!(r3.timestamp.wrapping_sub(r2.timestamp), 3 * 1500);
        assert_eq!(st.frames(), 4);
    }
}
