//! The report's plots: drift (from `trust`), CKA, cosine distance and norm ratio, probe
//! accuracy, cross-model transfer, cross-layer heatmaps and drift against transfer, each a
//! stage of [`render_all`] drawn with the toolkit in [`crate::plot`].

use plotters::prelude::*;

use super::model::Report;
use super::trust::inside_floor;
use crate::error::Result;
use crate::metrics::compare::CrossLayer;
pub use crate::plot::Plot;
use crate::plot::{
    draw_legend, draw_lines, heat_colour, perr, pts, range_of, render, sanitize, tick, Lines,
    COLORS, H, W,
};

fn x_max(r: &Report) -> f64 {
    let a = r
        .students
        .iter()
        .flat_map(|s| s.layers.iter())
        .max()
        .copied()
        .unwrap_or(0);
    let b = r
        .probes
        .iter()
        .flat_map(|s| s.layers.iter())
        .max()
        .copied()
        .unwrap_or(0);
    a.max(b) as f64
}

/// Every plot the report shows, in report order.
pub fn render_all(r: &Report) -> Result<Vec<Plot>> {
    let mut out = Vec::new();
    out.extend(drift_plot(r)?);
    let xm = x_max(r);
    if !r.students.is_empty() {
        out.push(cka_plot(r, xm)?);
        out.push(cosine_norm_plot(r, xm)?);
    }
    out.extend(probe_plot(r, xm)?);
    out.extend(crossmodel_plot(r, xm)?);
    for c in &r.cross_layer {
        out.push(heatmap(c)?);
    }
    out.extend(drift_vs_transfer_plot(r)?);
    Ok(out)
}

/// Linear (solid) and debiased (dashed) CKA to the base per layer, each student with its
/// bootstrap band; the y axis zoomed when every CKA is high.
fn cka_plot(r: &Report, xm: f64) -> Result<Plot> {
    let mut series = Vec::new();
    let mut bands = Vec::new();
    for (i, s) in r.students.iter().enumerate() {
        series.push((
            format!("{} linear", s.student),
            pts(&s.layers, &s.linear_cka),
            false,
            i,
        ));
        series.push((
            format!("{} debiased", s.student),
            pts(&s.layers, &s.debiased_cka),
            true,
            i,
        ));
        let band: Vec<(f64, f64, f64)> = s
            .layers
            .iter()
            .zip(&s.ci_linear)
            .filter_map(|(l, c)| c.map(|(lo, hi)| (*l as f64, lo, hi)))
            .collect();
        bands.push((band, i));
    }
    let yr = range_of(&series, 0.08, None, Some(1.02));
    // When every CKA is high the axis is zoomed (and the title says so), else drift of a
    // few thousandths would be invisible.
    let min = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let lo = if min.is_finite() && min >= 0.8 {
        ((min - 0.2 * (1.0 - min) - 0.005) * 100.0).floor() / 100.0
    } else {
        yr.0.min(0.0)
    };
    let zoom = if lo > 0.0 {
        format!("; y axis from {lo:.2}")
    } else {
        String::new()
    };
    let hi = if lo > 0.0 {
        1.0 + (1.0 - lo) * 0.05
    } else {
        yr.1.max(1.02)
    };
    let l = Lines {
        title: format!(
            "CKA to the base, field {} (95 % bootstrap band when computed{zoom})",
            r.students[0].field
        ),
        y_desc: "CKA".into(),
        y_range: (lo, hi),
        x_max: xm,
        series,
        bands,
        hline: None,
        legend: SeriesLabelPosition::LowerLeft,
    };
    Ok(render!(
        "cka",
        "Linear (solid) and debiased (dashed) CKA to the base per layer",
        W,
        H,
        |a| draw_lines(a, &l)
    ))
}

/// Cosine distance to the base and the norm ratio per layer, side by side.
fn cosine_norm_plot(r: &Report, xm: f64) -> Result<Plot> {
    let cos: Vec<_> = r
        .students
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                s.student.clone(),
                pts(&s.layers, &s.cosine_distance),
                false,
                i,
            )
        })
        .collect();
    let nr: Vec<_> = r
        .students
        .iter()
        .enumerate()
        .map(|(i, s)| (s.student.clone(), pts(&s.layers, &s.norm_ratio), false, i))
        .collect();
    let lc = Lines {
        title: "Cosine distance to the base".into(),
        y_desc: "1 − cos".into(),
        y_range: range_of(&cos, 0.1, Some(0.0), None),
        x_max: xm,
        series: cos,
        bands: vec![],
        hline: None,
        legend: SeriesLabelPosition::UpperLeft,
    };
    let ln = Lines {
        title: "Norm ratio ‖student‖ / ‖base‖".into(),
        y_desc: "ratio".into(),
        y_range: range_of(&nr, 0.1, Some(0.0), None),
        x_max: xm,
        series: nr,
        bands: vec![],
        hline: Some(1.0),
        legend: SeriesLabelPosition::UpperLeft,
    };
    Ok(render!(
        "cosine_norm",
        "Cosine distance and norm ratio per layer",
        W,
        H,
        |a| {
            let panels = a.split_evenly((1, 2));
            draw_lines(&panels[0], &lc)?;
            draw_lines(&panels[1], &ln)
        }
    ))
}

/// Probe accuracy per layer, one panel per model with targets: source, targets, control
/// (dashed), chance.
fn probe_plot(r: &Report, xm: f64) -> Result<Option<Plot>> {
    let with_targets: Vec<_> = r
        .probes
        .iter()
        .filter(|p| p.in_dist.iter().any(|v| v.is_some()))
        .collect();
    if with_targets.is_empty() {
        return Ok(None);
    }
    let panels: Vec<Lines> = with_targets
        .iter()
        .map(|p| {
            let mut series = vec![(
                "source (in-dist)".to_string(),
                pts(&p.layers, &p.in_dist),
                false,
                0,
            )];
            for (k, (name, v)) in p.targets.iter().enumerate() {
                series.push((format!("target {name}"), pts(&p.layers, v), false, k + 1));
            }
            if p.control.iter().any(|v| v.is_some()) {
                series.push(("control".into(), pts(&p.layers, &p.control), true, 7));
            }
            let yr = range_of(&series, 0.08, Some(0.0), Some(1.0));
            Lines {
                title: format!("probe accuracy: {}", p.model),
                y_desc: "pairwise accuracy".into(),
                y_range: (yr.0.min(0.45), yr.1.max(0.55)),
                x_max: xm,
                series,
                bands: vec![],
                hline: Some(0.5),
                legend: SeriesLabelPosition::LowerRight,
            }
        })
        .collect();
    let n = panels.len() as u32;
    Ok(Some(render!(
        "probe",
        "Probe accuracy per layer: source, targets, control (dashed), chance",
        W,
        H * n.div_ceil(2).max(1),
        |a| {
            let cols = if panels.len() > 1 { 2 } else { 1 };
            let areas = a.split_evenly((panels.len().div_ceil(cols), cols));
            for (area, p) in areas.iter().zip(&panels) {
                draw_lines(area, p)?;
            }
            Ok(())
        }
    )))
}

/// Cross-model probe transfer per layer (a probe trained in one model, applied to another).
fn crossmodel_plot(r: &Report, xm: f64) -> Result<Option<Plot>> {
    let cm: Vec<_> = r
        .probes
        .iter()
        .flat_map(|p| {
            p.cross_model
                .iter()
                .map(move |(t, v)| (format!("{t} → {}", p.model), pts(&p.layers, v)))
        })
        .enumerate()
        .map(|(i, (l, v))| (l, v, false, i))
        .collect();
    if cm.is_empty() {
        return Ok(None);
    }
    let yr = range_of(&cm, 0.08, Some(0.0), Some(1.0));
    let l = Lines {
        title: "Cross-model probe transfer (probe trained in one model, applied to another)".into(),
        y_desc: "pairwise accuracy".into(),
        y_range: (yr.0.min(0.45), yr.1.max(0.55)),
        x_max: xm,
        series: cm,
        bands: vec![],
        hline: Some(0.5),
        legend: SeriesLabelPosition::LowerRight,
    };
    Ok(Some(render!(
        "crossmodel",
        "Cross-model probe transfer per layer",
        W,
        H,
        |a| draw_lines(a, &l)
    )))
}

/// Cross-layer linear CKA, base × one student, with its colour bar.
fn heatmap(c: &CrossLayer) -> Result<Plot> {
    let name = format!("heatmap_{}", sanitize(&c.student));
    Ok(render!(
        &name,
        &format!("Cross-layer linear CKA, base × {}", c.student),
        620,
        520,
        |a| {
            a.fill(&WHITE).map_err(perr)?;
            let (main, bar) = a.split_horizontally(540);
            let (nb, ns) = (c.base_layers.len(), c.student_layers.len());
            // Tick labels are the layers' own numbers, at each cell's lower edge.
            let label = |layers: &[usize], x: f64| -> String {
                let i = x.round();
                if (x - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < layers.len() {
                    layers[i as usize].to_string()
                } else {
                    String::new()
                }
            };
            let sl = c.student_layers.clone();
            let bl = c.base_layers.clone();
            let mut chart = ChartBuilder::on(&main)
                .caption(
                    format!("cross-layer CKA: base × {}", c.student),
                    ("sans-serif", 16),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(44)
                .build_cartesian_2d(0f64..ns as f64, 0f64..nb as f64)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("student layer")
                .y_desc("base layer")
                .x_labels(ns.min(12) + 1)
                .y_labels(nb.min(12) + 1)
                .x_label_formatter(&|x| label(&sl, *x))
                .y_label_formatter(&|y| label(&bl, *y))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(perr)?;
            let cells = c.cka.iter().enumerate().flat_map(|(i, row)| {
                row.iter().enumerate().map(move |(j, v)| {
                    Rectangle::new(
                        [(j as f64, i as f64), (j as f64 + 1.0, i as f64 + 1.0)],
                        heat_colour(v.unwrap_or(0.0)).filled(),
                    )
                })
            });
            chart.draw_series(cells).map_err(perr)?;
            // The colour bar: CKA 0 (white) to 1 (blue).
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(48)
                .margin_right(8)
                .y_label_area_size(40)
                .build_cartesian_2d(0f64..1.0, 0f64..1.0)
                .map_err(perr)?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(6)
                .y_label_formatter(&|y| tick(*y, 1))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(perr)?;
            cb.draw_series((0..50).map(|k| {
                let (lo, hi) = (k as f64 / 50.0, (k + 1) as f64 / 50.0);
                Rectangle::new([(0.0, lo), (1.0, hi)], heat_colour(lo).filled())
            }))
            .map_err(perr)?;
            Ok(())
        }
    ))
}

/// Per layer and student: the change in target-probe accuracy (student − base) against drift
/// (1 − CKA). None when no layer has both.
fn drift_vs_transfer_plot(r: &Report) -> Result<Option<Plot>> {
    let base = r.probes.iter().find(|p| p.model == r.base_model);
    let mut scatter: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    if let Some(b) = base {
        for s in &r.students {
            let Some(st) = r.probes.iter().find(|p| p.model == s.student) else {
                continue;
            };
            let mut v = Vec::new();
            for (i, l) in s.layers.iter().enumerate() {
                let (Some(c), Some(bi), Some(si)) = (
                    s.linear_cka[i],
                    b.layers.iter().position(|x| x == l),
                    st.layers.iter().position(|x| x == l),
                ) else {
                    continue;
                };
                if let (Some(x), Some(y)) = (b.mean_target(bi), st.mean_target(si)) {
                    v.push((1.0 - c, 100.0 * (y - x)));
                }
            }
            scatter.push((s.student.clone(), v));
        }
    }
    if !scatter.iter().any(|s| !s.1.is_empty()) {
        return Ok(None);
    }
    let xs: Vec<f64> = scatter
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = scatter
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .collect();
    let (x1, y0, y1) = (
        xs.iter().cloned().fold(0.0f64, f64::max).max(0.05) * 1.1,
        ys.iter().cloned().fold(0.0f64, f64::min) - 1.0,
        ys.iter().cloned().fold(0.0f64, f64::max) + 1.0,
    );
    Ok(Some(render!(
        "drift_vs_transfer",
        "Per layer: change in target-probe accuracy (student − base) against drift (1 − CKA)",
        W,
        H,
        |a| {
            a.fill(&WHITE).map_err(perr)?;
            let mut chart = ChartBuilder::on(a)
                .caption(
                    "drift against transfer, one point per layer",
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..x1, y0..y1)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .x_desc("1 − linear CKA")
                .x_label_formatter(&|x| format!("{x:.2}"))
                .y_desc("Δ target accuracy (points)")
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(perr)?;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, 0.0), (x1, 0.0)],
                    4,
                    4,
                    RGBColor(140, 140, 140).stroke_width(1),
                ))
                .map_err(perr)?;
            for (i, (name, v)) in scatter.iter().enumerate() {
                let c = COLORS[i % 8];
                chart
                    .draw_series(v.iter().map(|&(x, y)| Circle::new((x, y), 4, c.filled())))
                    .map_err(perr)?
                    .label(name.clone())
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
            }
            draw_legend(&mut chart, SeriesLabelPosition::MiddleRight, 13)
        }
    )))
}

const GREY: RGBColor = RGBColor(160, 160, 160);

/// The drift plot: 1 − linear CKA per layer on a log axis, each student's chance band shaded,
/// the numerical floor dashed, points at or below it grey (exact zeros drawn at the axis floor).
pub fn drift_plot(r: &Report) -> Result<Option<Plot>> {
    if r.students.is_empty() {
        return Ok(None);
    }
    let floor = r.trust.validate.as_ref().and_then(|v| v.floor_linear_cka);
    let positive: Vec<f64> = r
        .students
        .iter()
        .flat_map(|s| s.linear_cka.iter().flatten().map(|c| 1.0 - c))
        .chain(floor)
        .filter(|v| *v > 0.0)
        .collect();
    let lo = positive
        .iter()
        .copied()
        .fold(1.0f64, f64::min)
        .max(1e-16)
        .log10()
        .floor();
    let y_lo = 10f64.powf(lo - 0.5);
    let y_hi = 1.5;
    let x_max = r
        .students
        .iter()
        .flat_map(|s| s.layers.iter().copied())
        .max()
        .unwrap_or(1) as f64;
    let plot = render!(
        "trust_drift",
        "Drift (1 − linear CKA) per layer, log scale, with the numerical floor and the chance band",
        W,
        H,
        |a| {
            a.fill(&WHITE).map_err(perr)?;
            let mut chart = ChartBuilder::on(a)
                .caption(
                    "1 − linear CKA to the base (grey: at or below the numerical floor; shaded: chance)",
                    ("sans-serif", 16),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..x_max.max(1.0), (y_lo..y_hi).log_scale())
                .map_err(perr)?;
            chart
                .configure_mesh()
                .x_desc("layer")
                .y_desc("1 − CKA")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0e}"))
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(perr)?;
            for (i, s) in r.students.iter().enumerate() {
                let c = COLORS[i % 8];
                let band: Vec<(f64, f64, f64)> = s
                    .layers
                    .iter()
                    .zip(&s.null_linear)
                    .filter_map(|(l, b)| {
                        b.map(|(lo, hi)| {
                            (
                                *l as f64,
                                (1.0 - hi).max(y_lo),
                                (1.0 - lo).clamp(y_lo, y_hi),
                            )
                        })
                    })
                    .collect();
                if !band.is_empty() {
                    let mut poly: Vec<(f64, f64)> =
                        band.iter().map(|&(x, _, hi)| (x, hi)).collect();
                    poly.extend(band.iter().rev().map(|&(x, lo, _)| (x, lo)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.15).filled())))
                        .map_err(perr)?;
                }
                let pts: Vec<(f64, f64, bool)> = s
                    .layers
                    .iter()
                    .zip(&s.linear_cka)
                    .filter_map(|(l, c)| {
                        c.map(|c| {
                            let d = 1.0 - c;
                            (*l as f64, d.max(y_lo), inside_floor(d, floor) || d <= 0.0)
                        })
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, p.1)),
                        c.mix(0.5).stroke_width(1),
                    ))
                    .map_err(perr)?
                    .label(s.student.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&(x, y, quiet)| {
                        Circle::new((x, y), 3, if quiet { GREY.filled() } else { c.filled() })
                    }))
                    .map_err(perr)?;
            }
            if let Some(f) = floor.filter(|f| *f > 0.0) {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(0.0, f.max(y_lo)), (x_max, f.max(y_lo))],
                        4,
                        4,
                        GREY.stroke_width(1),
                    ))
                    .map_err(perr)?
                    .label(format!("numerical floor ({f:.0e})"))
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY));
            }
            draw_legend(&mut chart, SeriesLabelPosition::MiddleLeft, 13)
        }
    );
    Ok(Some(plot))
}
