//! The study's plots (SVG for the page, PNG beside it): drift against transfer at the most
//! predictive layer, Spearman ρ per layer with its bootstrap CI, and per regime the mean ± sd
//! trajectories of target accuracy and final-layer drift against step.

use plotters::prelude::*;

use super::analysis::{LayerCorrelation, Summary, Trajectory};
use crate::error::Result;
use crate::plot::{draw_legend, perr, render, tick, Area, Plot, COLORS};

fn method_color(methods: &[String], m: &str) -> RGBColor {
    COLORS[methods.iter().position(|x| x == m).unwrap_or(0) % 8]
}

/// The plots: drift against transfer at the best layer, ρ per layer, and trajectories.
pub fn render_plots(s: &Summary) -> Result<Vec<Plot>> {
    let mut plots = Vec::new();
    if let Some(best) = &s.best_layer {
        plots.push(scatter_plot(s, best)?);
        plots.push(rho_plot(s)?);
    }
    for reg in &s.regimes {
        plots.extend(trajectory_plot(s, reg)?);
    }
    Ok(plots)
}

/// Drift at the best layer against the transfer change, one point per run, coloured by method.
fn scatter_plot(s: &Summary, best: &LayerCorrelation) -> Result<Plot> {
    let layer = best.layer;
    let pts: Vec<(f64, f64, String)> = s
        .points
        .iter()
        .filter_map(|p| {
            p.drift
                .get(&layer)
                .map(|d| (*d, p.transfer_change, p.method.clone()))
        })
        .collect();
    let (xmax, ylo, yhi) = pts.iter().fold((1e-6f64, 0f64, 0f64), |(a, b, c), p| {
        (a.max(p.0), b.min(p.1), c.max(p.1))
    });
    let title = format!(
        "Drift at layer {layer} (1 − linear CKA) vs transfer change (points vs base probe); ρ = {:.2}",
        best.rho.unwrap_or(f64::NAN)
    );
    let methods = s.methods.clone();
    Ok(render!("scatter", title.clone(), 960u32, 520u32, |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(&title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..xmax * 1.08, (ylo - 3.0)..(yhi + 3.0))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("1 − linear CKA (mean over targets)")
            .y_desc("mean target accuracy − base probe (points)")
            .y_label_formatter(&|y| tick(*y, 1))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(perr)?;
        for m in &methods {
            let color = method_color(&methods, m);
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| &p.2 == m)
                        .map(|p| Circle::new((p.0, p.1), 5, color.filled())),
                )
                .map_err(perr)?
                .label(m.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight, 13)
    }))
}

/// Spearman ρ (drift vs transfer) per layer with its 95 % bootstrap CI.
fn rho_plot(s: &Summary) -> Result<Plot> {
    let rows: Vec<(usize, f64, f64, f64)> = s
        .correlations
        .iter()
        .filter(|c| c.measure == "linear_cka")
        .filter_map(|c| {
            let (lo, hi) = c.ci?;
            Some((c.layer, c.rho?, lo, hi))
        })
        .collect();
    let lmax = rows.iter().map(|r| r.0).max().unwrap_or(1) as f64;
    Ok(render!(
        "rho_per_layer",
        "Spearman ρ (drift vs transfer) per layer, 95 % bootstrap CI",
        960u32,
        420u32,
        |area| {
            let mut chart = ChartBuilder::on(area)
                .caption(
                    "Spearman ρ (drift vs transfer) per layer, 95 % bootstrap CI",
                    ("sans-serif", 16),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5f64..lmax + 0.5, -1.05f64..1.05)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .x_desc("layer")
                .y_desc("ρ")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| tick(*y, 1))
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(perr)?;
            chart
                .draw_series(rows.iter().map(|r| {
                    PathElement::new(
                        vec![(r.0 as f64, r.2), (r.0 as f64, r.3)],
                        COLORS[0].stroke_width(2),
                    )
                }))
                .map_err(perr)?;
            chart
                .draw_series(
                    rows.iter()
                        .map(|r| Circle::new((r.0 as f64, r.1), 4, COLORS[1].filled())),
                )
                .map_err(perr)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(-0.5, 0.0), (lmax + 0.5, 0.0)],
                    RGBColor(140, 140, 140),
                )))
                .map_err(perr)?;
            Ok(())
        }
    ))
}

/// Regime `reg`: mean target accuracy (left) and final-layer drift (right) against step, one
/// line per method, mean ± sd over seeds; None when no method has two trajectory points.
fn trajectory_plot(s: &Summary, reg: &str) -> Result<Option<Plot>> {
    let trs: Vec<&Trajectory> = s.trajectories.iter().filter(|t| t.regime == reg).collect();
    if trs.iter().all(|t| t.steps.len() < 2) {
        return Ok(None);
    }
    let smax = trs
        .iter()
        .flat_map(|t| t.steps.iter())
        .max()
        .copied()
        .unwrap_or(1) as f64;
    let dmax = trs
        .iter()
        .flat_map(|t| t.drift.iter().flatten().map(|d| d.mean))
        .fold(1e-6f64, f64::max);
    let methods = s.methods.clone();
    let title = format!("Regime {reg}: mean target accuracy (left) and final-layer drift (right) against step, mean ± sd over seeds");
    Ok(Some(render!(
        format!(
            "trajectory_{}",
            reg.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ),
        title.clone(),
        1100u32,
        440u32,
        |area| {
            let (l, r) = area.split_horizontally(550);
            for (half, is_drift) in [(&l, false), (&r, true)] {
                draw_trajectory_half(half, &trs, &methods, is_drift, (smax, dmax))?;
            }
            Ok(())
        }
    )))
}

/// One half of a trajectory plot: accuracy (`is_drift` false) or drift against step;
/// `(smax, dmax)` the last step and the largest mean drift.
fn draw_trajectory_half<DB: DrawingBackend>(
    half: &Area<'_, DB>,
    trs: &[&Trajectory],
    methods: &[String],
    is_drift: bool,
    (smax, dmax): (f64, f64),
) -> Result<()> {
    let (ylo, yhi) = if is_drift {
        (0.0, dmax * 1.1)
    } else {
        (0.0, 100.0)
    };
    let mut chart = ChartBuilder::on(half)
        .caption(
            if is_drift {
                "1 − linear CKA, final layer"
            } else {
                "mean target accuracy %"
            },
            ("sans-serif", 14),
        )
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..smax.max(1.0), ylo..yhi)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_labels((smax as usize).clamp(2, 10) + 1)
        // Steps are integers: label only integral ticks.
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(perr)?;
    for t in trs {
        let color = method_color(methods, &t.method);
        let series = if is_drift { &t.drift } else { &t.target };
        let pts: Vec<(f64, f64, f64)> = t
            .steps
            .iter()
            .zip(series)
            .filter_map(|(&st, v)| v.map(|v| (st as f64, v.mean, v.sd.unwrap_or(0.0))))
            .collect();
        if pts.len() >= 2 {
            let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1 + p.2)).collect();
            poly.extend(pts.iter().rev().map(|p| (p.0, p.1 - p.2)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    color.mix(0.15).filled(),
                )))
                .map_err(perr)?;
        }
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))
            .map_err(perr)?
            .label(t.method.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    if !is_drift {
        draw_legend(&mut chart, SeriesLabelPosition::LowerLeft, 12)?;
    }
    Ok(())
}
