//! The report's figures, drawn in Rust with plotters: each chart as SVG
//! and PNG (the same drawing code on both backends), and filmstrips of
//! displayed frames as PNG.
//!
//! Text goes through ab_glyph (pure Rust) with a TrueType font read from
//! the system once: `$MINEDGE_FONT`, else DejaVu Sans (Debian's
//! fonts-dejavu-core, which `./minedge` installs) or Liberation Sans.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ExpError;

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers the font plotters draws text with (once).
fn font() -> Result<(), ExpError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<String> = std::env::var("MINEDGE_FONT")
            .into_iter()
            .chain(FONTS.iter().map(|s| s.to_string()))
            .collect();
        for p in &candidates {
            if let Ok(bytes) = std::fs::read(p) {
                // Leaked once per process: plotters keeps fonts for 'static.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| format!("{p}: not a usable TrueType font"));
            }
        }
        Err(format!(
            "no font for the figures' text: install Debian's fonts-dejavu-core, or set MINEDGE_FONT to a .ttf file (looked at {})",
            candidates.join(", ")
        ))
    })
    .clone()
    .map_err(ExpError::Plot)
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart of lines (or CDF steps).
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Draw each series as a step function (a CDF).
    pub steps: bool,
    /// A logarithmic y axis (values at or below 0 are left out).
    pub log_y: bool,
}

/// One bar with its spread.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

const SIZE: (u32, u32) = (800, 500);

fn plot_err(stem: &str) -> impl Fn(String) -> ExpError + '_ {
    move |e| ExpError::Plot(format!("{stem}: {e}"))
}

/// Draws with `f` into `dir/stem.svg` and `dir/stem.png`; the two names.
fn both(
    dir: &Path,
    stem: &str,
    f: impl Fn(DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    g: impl Fn(DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<String>, ExpError> {
    font()?;
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    f(SVGBackend::new(&svg, SIZE).into_drawing_area()).map_err(plot_err(stem))?;
    g(BitMapBackend::new(&png, SIZE).into_drawing_area()).map_err(plot_err(stem))?;
    Ok(vec![format!("{stem}.svg"), format!("{stem}.png")])
}

/// A chart of lines as `dir/stem.svg` and `.png`.
pub fn lines(dir: &Path, stem: &str, c: &Chart) -> Result<Vec<String>, ExpError> {
    both(dir, stem, |a| draw_lines(a, c), |a| draw_lines(a, c))
}

/// Bars with error bars (min to max) as `dir/stem.svg` and `.png`.
pub fn bars(
    dir: &Path,
    stem: &str,
    title: &str,
    y_label: &str,
    b: &[Bar],
) -> Result<Vec<String>, ExpError> {
    both(
        dir,
        stem,
        |a| draw_bars(a, title, y_label, b),
        |a| draw_bars(a, title, y_label, b),
    )
}

/// The range of `v` with a margin; (0, 1) when empty or flat at 0.
fn range(v: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + lo.abs().max(1.0);
    }
    let m = (hi - lo) * 0.05;
    (if from_zero && lo >= 0.0 { lo } else { lo - m }, hi + m)
}

fn draw_lines<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Chart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    // A log axis is drawn as log10 of the values on a linear one, labelled
    // with the values.
    let logged;
    let c = if c.log_y {
        logged = Chart {
            series: c
                .series
                .iter()
                .map(|s| Series {
                    name: s.name.clone(),
                    points: s
                        .points
                        .iter()
                        .filter(|p| p.1 > 0.0)
                        .map(|p| (p.0, p.1.log10()))
                        .collect(),
                })
                .collect(),
            ..c.clone()
        };
        &logged
    } else {
        c
    };
    let xs = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = range(xs, false);
    let (y0, y1) = if c.steps {
        (0.0, 1.02)
    } else if c.log_y {
        let (lo, hi) = range(ys, false);
        (lo.floor(), hi.ceil())
    } else {
        range(ys, true)
    };
    let log_label = |y: &f64| {
        let v = 10f64.powf(*y);
        if v >= 1.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    let mut ch = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    let mut mesh = ch.configure_mesh();
    mesh.x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style(("sans-serif", 14));
    if c.log_y {
        mesh.y_labels((y1 - y0) as usize + 1)
            .y_label_formatter(&log_label);
    }
    mesh.draw().map_err(e)?;
    for (i, s) in c.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = if c.steps {
            let mut v = vec![(x0, 0.0)];
            let mut prev = 0.0;
            for &(x, y) in &s.points {
                v.push((x, prev));
                v.push((x, y));
                prev = y;
            }
            v.push((x1, prev));
            v
        } else {
            s.points.clone()
        };
        ch.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        if !c.steps && s.points.len() <= 50 {
            ch.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(e)?;
        }
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    b: &[Bar],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (y0, y1) = range(b.iter().flat_map(|x| [x.lo, x.hi, x.mean]), true);
    let n = b.len().max(1) as f64;
    let mut ch = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n - 0.5, y0..y1)
        .map_err(e)?;
    let labels: Vec<String> = b.iter().map(|x| x.label.clone()).collect();
    ch.configure_mesh()
        .disable_x_mesh()
        .x_labels(b.len().max(1))
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (i, x) in b.iter().enumerate() {
        let c = i as f64;
        let color = Palette99::pick(i).to_rgba();
        ch.draw_series([Rectangle::new(
            [(c - 0.3, 0.0), (c + 0.3, x.mean)],
            color.filled(),
        )])
        .map_err(e)?;
        ch.draw_series([
            PathElement::new([(c, x.lo), (c, x.hi)], BLACK.stroke_width(2)),
            PathElement::new([(c - 0.1, x.lo), (c + 0.1, x.lo)], BLACK.stroke_width(2)),
            PathElement::new([(c - 0.1, x.hi), (c + 0.1, x.hi)], BLACK.stroke_width(2)),
        ])
        .map_err(e)?;
    }
    root.present().map_err(e)
}

/// A luma+chroma frame's pixel as RGB (BT.601, limited range).
fn rgb(f: &media::Frame, x: usize, y: usize) -> RGBColor {
    let w = usize::from(f.width);
    let cw = w.div_ceil(2);
    let yy = f64::from(f.y[y * w + x]) - 16.0;
    let u = f64::from(f.u[(y / 2) * cw + x / 2]) - 128.0;
    let v = f64::from(f.v[(y / 2) * cw + x / 2]) - 128.0;
    let c = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    RGBColor(
        c(1.164 * yy + 1.596 * v),
        c(1.164 * yy - 0.392 * u - 0.813 * v),
        c(1.164 * yy + 2.017 * u),
    )
}

/// A row of frames (each shrunk by `shrink`) with a label under each, as
/// the PNG `dir/name`; its name.
pub fn filmstrip(
    dir: &Path,
    name: &str,
    title: &str,
    frames: &[(String, media::Frame)],
    shrink: usize,
) -> Result<String, ExpError> {
    font()?;
    let shrink = shrink.max(1);
    let (fw, fh) = frames.first().map_or((16, 16), |(_, f)| {
        (
            usize::from(f.width) / shrink,
            usize::from(f.height) / shrink,
        )
    });
    let gap = 6;
    let (top, bottom) = (30, 26);
    let w = (frames.len().max(1) * (fw + gap) + gap) as u32;
    let h = (top + fh + bottom) as u32;
    let path = dir.join(name);
    let draw = || -> Result<(), String> {
        let root = BitMapBackend::new(&path, (w, h)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| format!("{e}");
        root.fill(&WHITE).map_err(e)?;
        root.draw_text(
            title,
            &("sans-serif", 16).into_font().color(&BLACK),
            (gap as i32, 6),
        )
        .map_err(e)?;
        for (i, (label, f)) in frames.iter().enumerate() {
            let x0 = gap + i * (fw + gap);
            if f.y.len() != usize::from(f.width) * usize::from(f.height) {
                continue;
            }
            for y in 0..fh {
                for x in 0..fw {
                    let c = rgb(f, x * shrink, y * shrink);
                    root.draw_pixel(((x0 + x) as i32, (top + y) as i32), &c)
                        .map_err(e)?;
                }
            }
            root.draw_text(
                label,
                &("sans-serif", 13).into_font().color(&BLACK),
                (x0 as i32, (top + fh + 6) as i32),
            )
            .map_err(e)?;
        }
        root.present().map_err(e)
    };
    draw().map_err(plot_err(name))?;
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_have_room_and_start_at_zero_when_asked() {
        assert_eq!(range([].into_iter(), true), (0.0, 1.0));
        let (lo, hi) = range([2.0, 4.0].into_iter(), true);
        assert_eq!(lo, 0.0);
        assert!(hi > 4.0);
        let (lo, hi) = range([2.0, 4.0].into_iter(), false);
        assert!(lo < 2.0 && hi > 4.0);
        let (lo, hi) = range([3.0, 3.0].into_iter(), false);
        assert!(lo < 3.0 && hi > 3.0);
    }

    #[test]
    fn grey_is_grey() {
        let mut f = media::Frame::new(4, 4);
        f.fill([126, 128, 128]);
        let c = rgb(&f, 1, 1);
        assert_eq!((c.0, c.1, c.2), (128, 128, 128));
    }
}
