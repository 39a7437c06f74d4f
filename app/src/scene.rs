//! What an instance draws: the scene (issue 12 item 8).
//!
//! Every scene is a function of the synchronised world only (its state and
//! its tick, `World::tick`): no clock, no local randomness, integer
//! arithmetic only. So two edges holding the same world draw byte-identical
//! frames, and the UE's SSIM test passes once their streams are in step.
//!
//! - [`Scene::Snake`]: the game on flat colours ([`render::render`]). Easy
//!   to encode, and any two of its frames look alike (SSIM 0.99 and more),
//!   so it tells nothing about whether two streams are in step.
//! - [`Scene::Textured`]: sinusoidal gratings over the whole frame that
//!   drift and turn together, as one picture, every tick, so two frames
//!   one tick apart score well below the 0.85 threshold, always by about
//!   the same amount: a switch that shows frames out of step (a skipped,
//!   repeated or ghosted tick) scores lower than the ticks around it. The
//!   game's pieces (score bar, food, snakes) on top.
//! - [`Scene::Static`]: the textured picture of tick 0 without the game,
//!   the same frame whatever the world (the paper's "Static" row).

use std::fmt;
use std::str::FromStr;

use media::Frame;
use serde::{Deserialize, Serialize};

use crate::game::World;
use crate::render;

/// What an instance draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scene {
    /// The snake game on flat colours.
    #[default]
    Snake,
    /// Moving texture over the whole frame, the game on top.
    Textured,
    /// One textured frame, whatever the world.
    Static,
}

/// A scene name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scene {0:?} (snake, textured, static)")]
pub struct SceneError(pub String);

impl Scene {
    /// Every scene.
    pub const ALL: [Scene; 3] = [Scene::Snake, Scene::Textured, Scene::Static];

    /// Its name (lowercase, as on the command line and in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Scene::Snake => "snake",
            Scene::Textured => "textured",
            Scene::Static => "static",
        }
    }

    /// Draws this scene of `world` (at `world.tick`) over the whole of
    /// `frame`. Allocates nothing.
    pub fn draw(self, world: &World, frame: &mut Frame) {
        match self {
            Scene::Snake => render::render(world, frame),
            Scene::Textured => {
                draw_texture(world.tick, frame);
                render::draw_pieces(world, frame);
            }
            Scene::Static => draw_texture(0, frame),
        }
    }

    /// A new `width x height` frame of this scene of `world`.
    pub fn draw_new(self, world: &World, width: u16, height: u16) -> Frame {
        let mut f = Frame::new(width, height);
        self.draw(world, &mut f);
        f
    }
}

impl fmt::Display for Scene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scene {
    type Err = SceneError;

    fn from_str(s: &str) -> Result<Scene, SceneError> {
        Scene::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| SceneError(s.to_string()))
    }
}

/// One full turn of a sine, 256 steps, amplitude 127, from Bhaskara I's
/// rational approximation (integer only, so the same on every machine).
const SINE: [i8; 256] = sine_table();

const fn sine_table() -> [i8; 256] {
    let mut t = [0i8; 256];
    let mut i = 0;
    while i < 256 {
        // Half a turn is 128 steps: sin(pi * h / 128) for h in 0..128.
        let h = (i % 128) as i64;
        let p = h * (128 - h);
        let v = (127 * 16 * p + (5 * 128 * 128 - 4 * p) / 2) / (5 * 128 * 128 - 4 * p);
        t[i] = if i < 128 { v as i8 } else { -v as i8 };
        i += 1;
    }
    t
}

/// sin of `a` 256ths of a turn, amplitude 127.
fn sin(a: u8) -> i64 {
    i64::from(SINE[usize::from(a)])
}

/// cos of `a` 256ths of a turn, amplitude 127.
fn cos(a: u8) -> i64 {
    sin(a.wrapping_add(64))
}

/// A sinusoid over the plane, drawn in the texture's coordinates: the
/// whole texture moves rigidly with the tick ([`SPIN`], [`DRIFT`]).
struct Grating {
    /// Wavelength in pixels (of the plane it is drawn on).
    period: i64,
    /// Contribution, 256ths of the sine's amplitude.
    weight: i32,
    /// Direction at tick 0, 256ths of a turn.
    angle: u8,
}

/// The texture's turn about the frame's centre per tick, 256ths of a turn
/// (1.4 degrees).
const SPIN: u8 = 1;

/// The texture's drift per tick along its own axes, 16ths of a luma pixel.
const DRIFT: (i64, i64) = (150, 70);

/// The luma gratings: wavelengths of 1/16 to 1/8 of the width, weights
/// adding to at most 240/256 (so luma stays in 8..=248 without clamping).
const LUMA: [Grating; 3] = [
    Grating {
        period: 80,
        weight: 96,
        angle: 10,
    },
    Grating {
        period: 56,
        weight: 80,
        angle: 90,
    },
    Grating {
        period: 40,
        weight: 64,
        angle: 170,
    },
];

/// The chroma gratings (on the half-resolution chroma planes), Cb and Cr:
/// a colour wash, weights keeping chroma in 128 +- 60.
const CHROMA: [Grating; 2] = [
    Grating {
        period: 90,
        weight: 120,
        angle: 40,
    },
    Grating {
        period: 70,
        weight: 120,
        angle: 200,
    },
];

/// A grating's phase (2^-32 of a cycle) at the origin and its steps per
/// pixel along x and y, at `tick`, for a plane centred on (`cx`, `cy`)
/// whose pixels are `scale` luma pixels wide.
///
/// The texture at `tick` is the texture of tick 0 moved by `tick` drifts
/// along its own axes, then turned by `tick` spins about the centre: from
/// one tick to the next every part of the frame moves by about the same
/// amount (a turn and a shift, which motion compensation follows).
fn phases(g: &Grating, tick: u64, cx: i64, cy: i64, scale: i64) -> (u32, u32, u32) {
    let step = (1i64 << 32) / g.period.max(2) / 127;
    // Wrapping products: angle and phase are periodic, only their low bits
    // count.
    let angle = g.angle.wrapping_add(SPIN.wrapping_mul(tick as u8));
    let (dx, dy) = (step * cos(angle), step * sin(angle));
    let (dx0, dy0) = (step * cos(g.angle), step * sin(g.angle));
    let drift = (dx0 * DRIFT.0 + dy0 * DRIFT.1) / (16 * scale);
    let phase = drift.wrapping_mul(tick as i64).wrapping_neg() - dx * cx - dy * cy;
    (phase as u32, dx as u32, dy as u32)
}

/// One grating's value at a phase, weighted (256ths).
fn value(weight: i32, phase: u32) -> i32 {
    i32::from(SINE[(phase >> 24) as usize]) * weight
}

/// Fills `plane` (`w x h`, row-major, each pixel `scale` luma pixels wide)
/// with `base` plus the sum of `gratings` at `tick`, centred on the
/// plane's middle.
fn fill_plane<const N: usize>(
    plane: &mut [u8],
    (w, h, scale): (usize, usize, i64),
    tick: u64,
    gratings: &[Grating; N],
    base: i32,
) {
    if w == 0 {
        return;
    }
    let (cx, cy) = (w as i64 / 2, h as i64 / 2);
    let mut start = [0u32; N];
    let mut dx = [0u32; N];
    let mut dy = [0u32; N];
    let mut weights = [0i32; N];
    for (k, g) in gratings.iter().enumerate() {
        (start[k], dx[k], dy[k]) = phases(g, tick, cx, cy, scale);
        weights[k] = g.weight;
    }
    for row in plane.chunks_exact_mut(w).take(h) {
        let mut acc = start;
        for px in row.iter_mut() {
            let mut sum = 0;
            for k in 0..N {
                sum += value(weights[k], acc[k]);
                acc[k] = acc[k].wrapping_add(dx[k]);
            }
            // |sum| >> 8 <= 127 * (sum of weights) / 256 < 128 for every
            // table here, so the value is in 0..=255.
            *px = (base + (sum >> 8)) as u8;
        }
        for k in 0..N {
            start[k] = start[k].wrapping_add(dy[k]);
        }
    }
}

/// Draws the moving texture of `tick` over the whole of `frame`.
fn draw_texture(tick: u64, frame: &mut Frame) {
    let (w, h) = (usize::from(frame.width), usize::from(frame.height));
    fill_plane(&mut frame.y, (w, h, 1), tick, &LUMA, 128);
    let (cw, ch) = (frame.chroma_width(), frame.chroma_height());
    for (plane, g) in [&mut frame.u, &mut frame.v].into_iter().zip(&CHROMA) {
        fill_plane(plane, (cw, ch, 2), tick, std::array::from_ref(g), 128);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scene::ALL {
            assert_eq!(s.to_string().parse::<Scene>(), Ok(s));
            let json = serde_json::to_string(&s).expect("serializes");
            assert_eq!(json, format!("\"{}\"", s.name()));
            assert_eq!(serde_json::from_str::<Scene>(&json).expect("parses"), s);
        }
        assert_eq!(Scene::default(), Scene::Snake);
        assert!("Snake".parse::<Scene>().is_err());
        assert!("".parse::<Scene>().is_err());
        assert!(serde_json::from_str::<Scene>("\"moving\"").is_err());
    }

    #[test]
    fn sine_table_is_a_sine() {
        assert_eq!(SINE[0], 0);
        assert_eq!(SINE[64], 127);
        assert_eq!(SINE[128], 0);
        assert_eq!(SINE[192], -127);
        for (i, &v) in SINE.iter().enumerate() {
            let exact = 127.0 * (i as f64 * std::f64::consts::TAU / 256.0).sin();
            assert!((f64::from(v) - exact).abs() <= 2.0, "{i}: {v} vs {exact}");
        }
    }

    #[test]
    fn weights_keep_samples_in_range() {
        let luma: i32 = LUMA.iter().map(|g| g.weight).sum();
        assert!(127 * luma / 256 <= 127, "luma weights {luma}");
        for g in &CHROMA {
            assert!(127 * g.weight / 256 <= 127);
        }
    }
}
