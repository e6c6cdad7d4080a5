//! Check 2, identity and invariances: X against X, a random rotation, an isotropic and an
//! anisotropic scaling of X; each measure unchanged exactly where theory says it is.

use ndarray::{Array2, Axis};

use super::checks::{self, InvarianceRow};
use super::context::{fmt_opt, Checklist, Ctx};
use super::types::Status;
use crate::error::Result;

pub(super) fn invariances(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<InvarianceRow>> {
    progress("identity and invariance checks");
    let usable: Vec<Array2<f32>> = base
        .iter()
        .filter(|x| x.var_axis(Axis(0), 0.0).iter().any(|v| *v > 0.0))
        .cloned()
        .collect();
    let invariances = checks::invariances(&usable, ctx.params.knn_k, ctx.params.seed)?;
    for r in &invariances {
        list.push(
            "identity and invariances",
            format!(
                "{} — {}: {}",
                r.transform,
                r.measure,
                if r.invariant { "unchanged" } else { "changes" }
            ),
            figure(r),
            Status::of(r.pass),
        );
    }
    Ok(invariances)
}

fn figure(r: &InvarianceRow) -> String {
    if r.invariant {
        format!(
            "max |deviation| {} (allowed {:.1e}{})",
            fmt_opt(r.observed),
            r.tolerance,
            if r.tolerance > checks::INVARIANT_TOL {
                ": one neighbour swap per near-tie row"
            } else {
                ""
            }
        )
    } else {
        format!(
            "min |deviation| {} (needed ≥ {:.0e})",
            fmt_opt(r.observed),
            checks::CHANGED_MIN
        )
    }
}
