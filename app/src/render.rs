//! Deterministic frames from the world.
//!
//! [`render`] draws a [`World`] into an I420 [`Frame`] with integer
//! arithmetic only, so two instances holding the same world produce
//! byte-identical frames on any machine. The layout scales with the frame:
//!
//! - a score bar along the top (`height / 20` rows, at least 7): for every
//!   snake, in the world's (sorted) order, a swatch of its colour and its
//!   score in 3x5 bitmap digits;
//! - below it the grid, square cells of `min(width / columns, rest / rows)`
//!   pixels, centred (if the frame is smaller than one pixel per cell, the
//!   grid is stretched to the whole area instead), on a field colour, cells
//!   inset by one pixel when they are at least 4 pixels;
//! - food as inset squares, snakes as cells in their palette colour with a
//!   brighter head.

use media::{rgb_to_yuv, Frame};

use crate::game::{Cell, World};

/// Background.
const BACKGROUND: [u8; 3] = [16, 18, 26];
/// The playing field (the grid's area).
const FIELD: [u8; 3] = [28, 32, 44];
/// The score bar.
const BAR: [u8; 3] = [40, 44, 60];
/// Digits in the score bar.
const TEXT: [u8; 3] = [235, 235, 235];
/// Food.
const FOOD: [u8; 3] = [235, 64, 52];
/// Snake colours by `Snake::color` (modulo the length).
pub const PALETTE: [[u8; 3]; 8] = [
    [76, 175, 80],  // green
    [33, 150, 243], // blue
    [255, 193, 7],  // amber
    [156, 39, 176], // purple
    [0, 188, 212],  // cyan
    [255, 87, 34],  // deep orange
    [205, 220, 57], // lime
    [233, 30, 99],  // pink
];

/// 3x5 digits, one row per 3 bits (MSB left).
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

fn yuv(rgb: [u8; 3]) -> [u8; 3] {
    rgb_to_yuv(rgb[0], rgb[1], rgb[2])
}

/// A lighter shade (the head): halfway to white.
fn lighter(rgb: [u8; 3]) -> [u8; 3] {
    rgb.map(|c| c + (255 - c) / 2)
}

/// Where the grid lies in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Height of the score bar.
    pub bar: u32,
    /// Left edge of the grid.
    pub x0: u32,
    /// Top edge of the grid.
    pub y0: u32,
    /// Grid width in pixels.
    pub gw: u32,
    /// Grid height in pixels.
    pub gh: u32,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

impl Layout {
    /// The layout of a `cols x rows` world in a `width x height` frame.
    pub fn new(width: u16, height: u16, cols: u16, rows: u16) -> Layout {
        let (w, h) = (u32::from(width), u32::from(height));
        let (cols, rows) = (u32::from(cols).max(1), u32::from(rows).max(1));
        let bar = (h / 20).max(7).min(h / 2);
        let area_h = h - bar;
        let cell = (w / cols).min(area_h / rows);
        let (gw, gh) = if cell >= 1 {
            (cell * cols, cell * rows)
        } else {
            (w, area_h)
        };
        Layout {
            bar,
            x0: (w - gw) / 2,
            y0: bar + (area_h - gh) / 2,
            gw,
            gh,
            cols,
            rows,
        }
    }

    /// The pixel rectangle (x, y, w, h) of a cell.
    pub fn cell_rect(&self, c: Cell) -> (u32, u32, u32, u32) {
        let (cx, cy) = (
            u32::from(c.x).min(self.cols - 1),
            u32::from(c.y).min(self.rows - 1),
        );
        let xa = self.x0 + cx * self.gw / self.cols;
        let xb = self.x0 + (cx + 1) * self.gw / self.cols;
        let ya = self.y0 + cy * self.gh / self.rows;
        let yb = self.y0 + (cy + 1) * self.gh / self.rows;
        (xa, ya, xb - xa, yb - ya)
    }
}

/// A new frame of `width x height` showing `world`.
pub fn render_new(world: &World, width: u16, height: u16) -> Frame {
    let mut f = Frame::new(width, height);
    render(world, &mut f);
    f
}

/// Draws `world` over the whole of `frame`.
pub fn render(world: &World, frame: &mut Frame) {
    frame.fill(yuv(BACKGROUND));
    draw_game(world, frame, true);
}

/// Draws the score bar, the food and the snakes of `world` over what
/// `frame` holds, leaving the rest (background and field) as it is, so a
/// scene can put its own picture behind the game.
pub fn draw_pieces(world: &World, frame: &mut Frame) {
    draw_game(world, frame, false);
}

/// The score bar, the field (if `field`), the food and the snakes, in
/// that order (the field covers what of the bar overflows in tiny frames).
fn draw_game(world: &World, frame: &mut Frame, field: bool) {
    let l = Layout::new(frame.width, frame.height, world.width, world.height);
    let cell_min = (l.gw / l.cols).min(l.gh / l.rows);

    // Score bar.
    frame.fill_rect(0, 0, u32::from(frame.width), l.bar, yuv(BAR));
    let scale = (l.bar / 7).max(1);
    let mut x = scale * 2;
    let top = l.bar.saturating_sub(5 * scale) / 2;
    for snake in world.snakes.values() {
        let colour = PALETTE[usize::from(snake.color) % PALETTE.len()];
        frame.fill_rect(x, top, 5 * scale, 5 * scale, yuv(colour));
        x += 7 * scale;
        x = draw_number(frame, x, top, scale, snake.score) + 4 * scale;
        if x >= u32::from(frame.width) {
            break;
        }
    }

    // The playing field. No grid lines: 1-pixel lines in every macroblock
    // cost the encoder most of its bits and still blur (SSIM 0.98 against
    // the source at 2 Mbit/s, against 0.9998 without them).
    if field {
        frame.fill_rect(l.x0, l.y0, l.gw, l.gh, yuv(FIELD));
    }
    let inset = if cell_min >= 4 { 1 } else { 0 };

    // Food.
    let food = yuv(FOOD);
    for &c in &world.food {
        let (x, y, w, h) = l.cell_rect(c);
        let i = (w.min(h) / 5).max(inset);
        frame.fill_rect(
            x + i,
            y + i,
            w.saturating_sub(2 * i),
            h.saturating_sub(2 * i),
            food,
        );
    }

    // Snakes: body first (tail to head), then the head on top.
    for snake in world.snakes.values() {
        let colour = PALETTE[usize::from(snake.color) % PALETTE.len()];
        let body = yuv(colour);
        for &c in snake.body.iter().skip(1).rev() {
            let (x, y, w, h) = l.cell_rect(c);
            frame.fill_rect(
                x + inset,
                y + inset,
                w.saturating_sub(inset),
                h.saturating_sub(inset),
                body,
            );
        }
        if let Some(&head) = snake.body.front() {
            let (x, y, w, h) = l.cell_rect(head);
            frame.fill_rect(
                x + inset,
                y + inset,
                w.saturating_sub(inset),
                h.saturating_sub(inset),
                yuv(lighter(colour)),
            );
        }
    }
}

/// Draws `n` in decimal at (`x`, `y`), `scale` pixels per font pixel;
/// returns the x after the last digit.
fn draw_number(frame: &mut Frame, mut x: u32, y: u32, scale: u32, n: u32) -> u32 {
    let t = yuv(TEXT);
    // Digits most significant first, without a string (no allocation per
    // frame).
    let mut div = 1;
    while n / div >= 10 {
        div *= 10;
    }
    loop {
        let d = (n / div % 10) as usize;
        for (row, bits) in DIGITS[d].iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) != 0 {
                    frame.fill_rect(x + col * scale, y + row as u32 * scale, scale, scale, t);
                }
            }
        }
        x += 4 * scale;
        if div == 1 {
            return x;
        }
        div /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Dir, Snake};
    use std::collections::{BTreeMap, VecDeque};

    fn world() -> World {
        let mut snakes = BTreeMap::new();
        snakes.insert(
            "alice".to_string(),
            Snake {
                body: VecDeque::from(vec![
                    Cell { x: 10, y: 5 },
                    Cell { x: 9, y: 5 },
                    Cell { x: 8, y: 5 },
                ]),
                dir: Dir::Right,
                score: 12,
                color: 0,
                last_input: 3,
            },
        );
        snakes.insert(
            "bob".to_string(),
            Snake {
                body: VecDeque::from(vec![Cell { x: 40, y: 30 }, Cell { x: 40, y: 31 }]),
                dir: Dir::Up,
                score: 7,
                color: 1,
                last_input: 0,
            },
        );
        World {
            width: 64,
            height: 36,
            tick: 100,
            snakes,
            food: vec![Cell { x: 20, y: 20 }, Cell { x: 63, y: 35 }],
            rng: 42,
        }
    }

    fn pixel(f: &Frame, x: u32, y: u32) -> u8 {
        f.y[(y * u32::from(f.width) + x) as usize]
    }

    #[test]
    fn layout_default() {
        let l = Layout::new(640, 360, 64, 36);
        assert_eq!(l.bar, 18);
        assert_eq!((l.gw, l.gh), (576, 324));
        assert_eq!(l.x0, 32);
        assert_eq!(l.cell_rect(Cell { x: 0, y: 0 }), (32, 27, 9, 9));
        // Everything inside the frame.
        assert!(l.x0 + l.gw <= 640 && l.y0 + l.gh <= 360);
    }

    #[test]
    fn same_world_same_bytes() {
        let w = world();
        let a = render_new(&w, 640, 360);
        let b = render_new(&w.clone(), 640, 360);
        assert_eq!(a, b);
        // Rendering over a dirty frame gives the same bytes.
        let mut c = Frame::new(640, 360);
        c.fill([1, 2, 3]);
        render(&w, &mut c);
        assert_eq!(a, c);
    }

    #[test]
    fn different_worlds_differ() {
        let w = world();
        let a = render_new(&w, 640, 360);
        let mut w2 = w.clone();
        if let Some(s) = w2.snakes.get_mut("alice") {
            s.body.push_front(Cell { x: 11, y: 5 });
            s.body.pop_back();
        }
        assert_ne!(a, render_new(&w2, 640, 360));
        let mut w3 = w.clone();
        w3.food[0] = Cell { x: 21, y: 20 };
        assert_ne!(a, render_new(&w3, 640, 360));
        let mut w4 = w.clone();
        if let Some(s) = w4.snakes.get_mut("bob") {
            s.score = 8;
        }
        assert_ne!(a, render_new(&w4, 640, 360));
    }

    #[test]
    fn draws_things_where_the_layout_says() {
        let w = world();
        let f = render_new(&w, 640, 360);
        let l = Layout::new(640, 360, 64, 36);
        let (hx, hy, cw, ch) = l.cell_rect(Cell { x: 10, y: 5 });
        let head = yuv(lighter(PALETTE[0]))[0];
        assert_eq!(pixel(&f, hx + cw / 2, hy + ch / 2), head);
        let (fx, fy, fw, fh) = l.cell_rect(Cell { x: 20, y: 20 });
        assert_eq!(pixel(&f, fx + fw / 2, fy + fh / 2), yuv(FOOD)[0]);
        let (ex, ey, ew, eh) = l.cell_rect(Cell { x: 30, y: 10 });
        assert_eq!(pixel(&f, ex + ew / 2, ey + eh / 2), yuv(FIELD)[0]);
    }

    #[test]
    fn any_resolution() {
        let w = world();
        for (fw, fh) in [
            (1280u16, 720u16),
            (320, 180),
            (64, 36),
            (16, 16),
            (2, 2),
            (1, 1),
        ] {
            let f = render_new(&w, fw, fh);
            assert!(f.check().is_ok());
            assert_eq!(f, render_new(&w, fw, fh));
        }
    }
}
