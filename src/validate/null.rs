//! Check 3, the null: the base against itself on two disjoint, randomly paired halves.
//! Debiased CKA inside its permutation band (Bonferroni over layers), linear CKA's chance
//! level beside it.

use ndarray::Array2;

use super::checks::{self, NullRow};
use super::context::{fmt_opt, Checklist, Ctx};
use super::types::Status;
use crate::error::Result;

pub(super) fn null(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<NullRow>> {
    progress(&format!(
        "null check ({} permutations per layer)",
        ctx.params.permutations
    ));
    let null = checks::null_halves(base, ctx.params.permutations, ctx.params.seed)?;
    let defined: Vec<&NullRow> = null.iter().filter(|r| r.debiased_p.is_some()).collect();
    let alpha = 0.05 / defined.len().max(1) as f64;
    let worst = defined
        .iter()
        .filter_map(|r| r.debiased_p)
        .fold(1.0f64, f64::min);
    let outside95 = defined
        .iter()
        .filter(|r| {
            let (v, lo, hi) = (r.debiased_cka, r.debiased_lo, r.debiased_hi);
            matches!((v, lo, hi), (Some(v), Some(lo), Some(hi)) if v < lo || v > hi)
        })
        .count();
    list.push(
        "null",
        format!(
            "debiased CKA of unpaired halves inside its permutation band at every layer (two-sided p ≥ 0.05 / {} layers)",
            defined.len()
        ),
        format!(
            "smallest p {worst:.4} (threshold {alpha:.4}); {outside95} of {} layers outside the plain 95 % band (expected by chance ≈ {:.1})",
            defined.len(),
            0.05 * defined.len() as f64
        ),
        Status::of(!defined.is_empty() && worst >= alpha),
    );
    let centred = defined.iter().all(|r| {
        r.debiased_lo.is_some_and(|lo| lo < 0.0) && r.debiased_hi.is_some_and(|hi| hi > 0.0)
    });
    list.push(
        "null",
        "debiased CKA's null band contains 0 at every layer (the estimator is unbiased)".into(),
        format!("{} layers checked", defined.len()),
        Status::of(centred && !defined.is_empty()),
    );
    let lin_mean = {
        let v: Vec<f64> = null.iter().filter_map(|r| r.linear_cka).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    list.push(
        "null",
        format!(
            "linear CKA's chance level at n = {} (its positive bias)",
            ctx.n / 2
        ),
        format!("mean over layers {}", fmt_opt(lin_mean)),
        Status::Info,
    );
    Ok(null)
}
