//! Check 1, the numerical floor: the base captured at batch size 1 and at the run's batch
//! size; how far each measure moves when nothing but the batching changed.

use ndarray::Array2;

use super::checks;
use super::context::{capture_layers, fmt_opt, max_abs_diff, Checklist, Ctx};
use super::types::{NoiseFloor, Status};
use crate::error::Result;

/// The base's layers at the run's batch size, and the floor against batch size 1.
pub(super) fn base_and_floor(
    ctx: &Ctx<'_>,
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<Array2<f32>>, NoiseFloor)> {
    progress(&format!(
        "capturing the base ({} examples, batch {})",
        ctx.n, ctx.params.batch_size
    ));
    let base = ctx.capture(ctx.model)?;
    progress("capturing the base again at batch size 1");
    let base1 = capture_layers(ctx.model, &ctx.first, 1, ctx.device)?;
    let mut floor = NoiseFloor::default();
    for (a, b) in base.iter().zip(&base1) {
        floor.max_abs_diff = floor.max_abs_diff.max(max_abs_diff(a, b));
        let dv = checks::deviations(a.view(), b.view(), ctx.params.knn_k)?;
        for (f, v) in floor.deviation.iter_mut().zip(dv) {
            if let Some(v) = v {
                *f = Some(f.map_or(v.abs(), |f: f64| f.max(v.abs())));
            }
        }
    }
    let floor_ok = floor.deviation[0].is_some_and(|v| v <= 1e-6)
        && floor.deviation[2].is_some_and(|v| v <= 1e-6);
    list.push(
        "numerical floor",
        "batch size 1 vs batch size B: 1 − CKA and cosine distance ≤ 1e-6 at every layer".into(),
        format!(
            "max |Δ activation| {:.2e}; max 1 − CKA {}, cosine {}, Procrustes {}, 1 − kNN {}",
            floor.max_abs_diff,
            fmt_opt(floor.deviation[0]),
            fmt_opt(floor.deviation[2]),
            fmt_opt(floor.deviation[3]),
            fmt_opt(floor.deviation[4])
        ),
        Status::of(floor_ok),
    );
    Ok((base, floor))
}
