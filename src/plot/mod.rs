//! The plotting toolkit under every page with plots (`report/`, `study/`): a plot rendered
//! to PNG bytes and an SVG string from one drawing body (`render!`), the palette, the bundled
//! font (DejaVu Sans, assets/fonts; no system fonts needed), a generic per-layer line chart
//! (`Lines`) and axis helpers. Renderers return bytes; the callers' `write` puts them on disk.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// One rendered plot.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File stem under `plots/`.
    pub name: String,
    pub title: String,
    pub png: Vec<u8>,
    pub svg: String,
    pub width: u32,
    pub height: u32,
}

/// The default plot size.
pub(crate) const W: u32 = 960;
pub(crate) const H: u32 = 480;
pub(crate) const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

static FONT: std::sync::Once = std::sync::Once::new();

pub(crate) fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // The bundled font is known to be valid; a failure would show up in every plot test.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

pub(crate) type Area<'a, DB> = DrawingArea<DB, Shift>;

pub(crate) fn perr<E: std::fmt::Display>(e: E) -> Error {
    Error::param("plot", e.to_string())
}

pub(crate) fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(perr)?;
        wr.write_image_data(rgb).map_err(perr)?;
    }
    Ok(out)
}

/// Render the drawing code `$body` (with the drawing area bound to `$a`) on the bitmap and the
/// SVG backend; evaluates to a [`Plot`]. `?` inside the body returns from the caller.
macro_rules! render {
    ($name:expr, $title:expr, $w:expr, $h:expr, |$a:ident| $body:expr) => {{
        use plotters::prelude::{BitMapBackend, SVGBackend, WHITE};
        $crate::plot::register_font();
        let (w, h): (u32, u32) = ($w, $h);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err($crate::plot::perr)?;
            {
                let $a = &root;
                let r: $crate::error::Result<()> = $body;
                r?;
            }
            root.present().map_err($crate::plot::perr)?;
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err($crate::plot::perr)?;
            {
                let $a = &root;
                let r: $crate::error::Result<()> = $body;
                r?;
            }
            root.present().map_err($crate::plot::perr)?;
        }
        $crate::plot::Plot {
            name: $name.to_string(),
            title: $title.to_string(),
            png: $crate::plot::encode_png(&rgb, w, h)?,
            svg,
            width: w,
            height: h,
        }
    }};
}

pub(crate) use render;

/// One line: (label, points, dashed, colour index).
pub(crate) type Series = (String, Vec<(f64, f64)>, bool, usize);
/// A band: (x, lo, hi) points and a colour index.
pub(crate) type Band = (Vec<(f64, f64, f64)>, usize);

/// A generic line plot against layer.
pub(crate) struct Lines {
    pub title: String,
    pub y_desc: String,
    pub y_range: (f64, f64),
    pub x_max: f64,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub hline: Option<f64>,
    pub legend: SeriesLabelPosition,
}

pub(crate) fn draw_lines<DB: DrawingBackend>(area: &Area<'_, DB>, l: &Lines) -> Result<()> {
    area.fill(&WHITE).map_err(perr)?;
    let mut chart = ChartBuilder::on(area)
        .caption(&l.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..l.x_max.max(1.0), l.y_range.0..l.y_range.1)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("layer")
        .y_desc(&l.y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(perr)?;
    for (band, c) in &l.bands {
        if band.is_empty() {
            continue;
        }
        let mut poly: Vec<(f64, f64)> = band.iter().map(|&(x, _, hi)| (x, hi)).collect();
        poly.extend(band.iter().rev().map(|&(x, lo, _)| (x, lo)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly,
                COLORS[c % 8].mix(0.18).filled(),
            )))
            .map_err(perr)?;
    }
    if let Some(y) = l.hline {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, y), (l.x_max, y)],
                4,
                4,
                RGBColor(140, 140, 140).stroke_width(1),
            ))
            .map_err(perr)?
            .label(format!("chance ({y})"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(140, 140, 140)));
    }
    for (label, pts, dashed, c) in &l.series {
        let color = COLORS[c % 8];
        let style = color.stroke_width(2);
        if *dashed {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))
                .map_err(perr)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        } else {
            chart
                .draw_series(LineSeries::new(pts.clone(), style).point_size(2))
                .map_err(perr)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
    }
    draw_legend(&mut chart, l.legend.clone(), 13)
}

/// The legend every plot draws: a white box with a black border, sans-serif labels of
/// `font_px`, at `position` (plotters' default is `MiddleRight`).
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    font_px: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", font_px))
        .position(position)
        .draw()
        .map_err(perr)?;
    Ok(())
}

/// (layer, value) points of the layers that have a value.
pub(crate) fn pts(layers: &[usize], v: &[Option<f64>]) -> Vec<(f64, f64)> {
    layers
        .iter()
        .zip(v)
        .filter_map(|(l, x)| x.map(|x| (*l as f64, x)))
        .collect()
}

/// The y range of `series`, padded by `pad` of its span and clipped to `floor`/`ceil`.
pub(crate) fn range_of(
    series: &[Series],
    pad: f64,
    floor: Option<f64>,
    ceil: Option<f64>,
) -> (f64, f64) {
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .collect();
    let (mut lo, mut hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if !lo.is_finite() {
        lo = 0.0;
        hi = 1.0;
    }
    let span = (hi - lo).max(1e-3);
    lo -= pad * span;
    hi += pad * span;
    (
        floor.map_or(lo, |f| lo.max(f)),
        ceil.map_or(hi, |c| hi.min(c)),
    )
}

/// An axis tick label with `decimals` decimals, never "-0.0" (a negative value that rounds to
/// zero is written as zero).
pub fn tick(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// The heatmaps' colour for a CKA value: white at 0, blue at 1.
pub(crate) fn heat_colour(v: f64) -> RGBColor {
    let t = v.clamp(0.0, 1.0);
    RGBColor(
        (255.0 * (1.0 - t)) as u8,
        (255.0 * (1.0 - 0.6 * t)) as u8,
        255,
    )
}

/// A file-name-safe form of `s` (ASCII letters, digits, `-`, `_`).
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
