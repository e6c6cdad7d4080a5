//! Check 6, probes with shuffled labels (each pair's orientation re-drawn): cross-validated
//! accuracy at a fixed C inside the binomial band around 0.5; selectivity (real − control).

use ndarray::Array2;

use super::checks;
use super::context::{capture_layers, Checklist, Ctx};
use super::types::{ProbeCheck, Status};
use crate::capture::PreparedSeq;
use crate::error::Result;
use crate::probe::{cross_validate, ProbeData, Solver};

pub(super) fn shuffled_probes(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ProbeCheck>> {
    let mut probes = Vec::new();
    if ctx.data.format.fields().len() != 2 {
        return Ok(probes);
    }
    progress("capturing the rejected replies for the probe check");
    let second: Vec<PreparedSeq> = ctx.prepared.iter().map(|s| s[1].clone()).collect();
    let rej = capture_layers(ctx.model, &second, ctx.params.batch_size, ctx.device)?;
    let probe_layers = [ctx.n_layers / 2, ctx.n_layers];
    let (lo, hi) = checks::chance_band(ctx.n, probe_layers.len());
    let seed = ctx.params.seed;
    for &l in &probe_layers {
        let diff = (&base[l] - &rej[l]).mapv(|v| v as f64);
        let pd = ProbeData::Pairs(diff);
        if pd.all_tied() {
            continue;
        }
        let cs = [0.01, 0.1, 1.0, 10.0, 100.0];
        let real = cross_validate(&pd, &cs, 5, seed, Solver::default())?;
        let ctrl = cross_validate(&pd.control(seed), &[1.0], 5, seed, Solver::default())?;
        let ok = ctrl.accuracy >= lo && ctrl.accuracy <= hi;
        list.push(
            "probes",
            format!("layer {l}: shuffled labels → accuracy inside the chance band [{lo:.3}, {hi:.3}] (binomial, Bonferroni over {} layers)", probe_layers.len()),
            format!(
                "control {:.3}; real {:.3} (C = {}); selectivity {:+.3}",
                ctrl.accuracy,
                real.accuracy,
                real.c,
                real.accuracy - ctrl.accuracy
            ),
            Status::of(ok),
        );
        probes.push(ProbeCheck {
            layer: l,
            n: ctx.n,
            accuracy: real.accuracy,
            c: real.c,
            control_accuracy: ctrl.accuracy,
            band_lo: lo,
            band_hi: hi,
        });
    }
    Ok(probes)
}
