//! Check 7, sample size: the sd of linear CKA, debiased CKA and Procrustes at the last layer
//! (base vs a planted model) over random subsets of n examples, as n grows, beside the width d.

use ndarray::Array2;

use super::checks;
use super::context::{fmt_opt, Checklist, Ctx};
use super::types::{SampleRow, Status};
use crate::error::Result;

/// `planted_last`: the last layer of a planted model (none when planting was skipped, and
/// then neither is this check).
pub(super) fn sample_size(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    planted_last: Option<&Array2<f32>>,
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<SampleRow>> {
    let mut rows = Vec::new();
    let Some(y) = planted_last else {
        return Ok(rows);
    };
    progress("sample-size check");
    let (n, d) = (ctx.n, ctx.d);
    let x = &base[ctx.n_layers];
    let mut ms: Vec<usize> = [n / 16, n / 8, n / 4, n / 2]
        .into_iter()
        .filter(|&m| m >= 8)
        .collect();
    ms.dedup();
    for &m in &ms {
        let [a, b, c] = checks::subsample_sd(
            x.view(),
            y.view(),
            m,
            ctx.params.bootstrap,
            ctx.params.seed ^ m as u64,
        )?;
        rows.push(SampleRow {
            m,
            d,
            sd_linear_cka: a,
            sd_debiased_cka: b,
            sd_procrustes: c,
        });
    }
    list.push(
        "sample size",
        format!("sd of the measures over random subsets of n examples, last layer (d = {d})"),
        rows.iter()
            .map(|r| {
                format!(
                    "n = {}: linear {}, debiased {}",
                    r.m,
                    fmt_opt(r.sd_linear_cka),
                    fmt_opt(r.sd_debiased_cka)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Status::Info,
    );
    Ok(rows)
}
