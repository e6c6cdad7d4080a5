//! `repdrift validate`: proves on a real model and real data that the drift measures measure
//! what the reports say they do. Each check prints a figure and passes or fails; the result is
//! `validate.json` and `validate.md`, and a failed check makes the command exit 1.
//!
//! The checks (all on `resid_post`, every layer 0..=n_layers, the data's first field; the
//! shapes are `(n_examples, hidden)` per layer):
//!
//! 1. **numerical floor** — the base captured at batch size 1 and at the run's batch size:
//!    how far each measure moves when nothing but the batching changed. For paired measures an
//!    unchanged model gives exactly the no-change value on any sample, so this floor — not the
//!    sampling noise — is the noise around "no drift"; reports grey out drift inside it.
//! 2. **identity and invariances** — X against X, a random rotation, an isotropic and an
//!    anisotropic scaling of X: each measure is unchanged exactly where theory says it is.
//! 3. **null** — the base against itself on two disjoint, randomly paired halves: debiased CKA
//!    inside its permutation band (Bonferroni over layers), linear CKA's chance level beside it.
//! 4. **planted drift** — Gaussian noise of relative strength s on block L's two output
//!    projections ([`crate::model::edit`]). Specificity: layers ≤ L are bit-identical to the
//!    base's and every deviation is 0. Sensitivity: the smallest s at which each measure's
//!    deviation at layer L + 1 exceeds the numerical floor. Dose–response: deviations grow
//!    with s at layer L + 1 and at the last layer.
//! 5. **layer matching** — two students trained from the base with different seeds (Llama
//!    family only): Kornblith's accuracy (each layer's most similar layer in the other
//!    student is itself), and in the base's own cross-layer matrix, similarity falling with
//!    layer distance.
//! 6. **probes** — labels shuffled (each pair's orientation re-drawn): cross-validated accuracy
//!    at a fixed C inside the binomial band around 0.5; selectivity (real − control).
//! 7. **sample size** — the sd of linear CKA, debiased CKA and Procrustes at the last layer
//!    (base vs a planted model) over random subsets of n examples, as n grows, beside the
//!    width d.

pub mod checks;
mod context;
mod floor;
mod invariance;
mod matching;
mod null;
mod planted;
mod probes;
mod render;
mod sample_size;
mod types;

use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use crate::capture::{prepare_example, PreparedSeq};
use crate::data::Dataset;
use crate::error::{Error, Result};
pub use checks::{InvarianceRow, NullRow, MEASURES};
pub use context::EXACT_TOL;
use context::{Checklist, Ctx};
pub use render::render_markdown;
pub use types::*;

/// Run every check of `model_path` on `data`. `work` holds the students the layer-matching
/// check trains (created if needed). `progress` receives one line per step.
pub fn validate(
    model_path: &Path,
    data: &Dataset,
    params: &ValidValidateParams,
    work: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<ValidateReport> {
    let t0 = Instant::now();
    let model = crate::model::load(model_path, device)?;
    let ctx = context(model.as_ref(), model_path, data, params, device)?;
    let mut list = Checklist::default();
    let (base, floor) = floor::base_and_floor(&ctx, &mut list, progress)?;
    let invariances = invariance::invariances(&ctx, &base, &mut list, progress)?;
    let null = null::null(&ctx, &base, &mut list, progress)?;
    let planted = planted::planted(&ctx, &base, &floor, &mut list, progress)?;
    let layer_matching = matching::layer_matching(&ctx, &base, work, &mut list, progress)?;
    let probes = probes::shuffled_probes(&ctx, &base, &mut list, progress)?;
    let sample_size = sample_size::sample_size(
        &ctx,
        &base,
        planted.sample_pair.as_ref(),
        &mut list,
        progress,
    )?;
    let info = model.info();
    Ok(ValidateReport {
        format: VALIDATE_FORMAT.into(),
        version: 1,
        repdrift_version: env!("CARGO_PKG_VERSION").into(),
        model: model_path.to_path_buf(),
        architecture: info.architecture.clone(),
        weights_sha256: info.weights_sha256.clone(),
        n_layers: ctx.n_layers,
        hidden_size: ctx.d,
        data: data.path.clone(),
        data_sha256: data.sha256.clone(),
        n_examples: ctx.n,
        params: (**params).clone(),
        checks: list.0,
        noise_floor: floor,
        invariances,
        null,
        planted: planted.rows,
        sensitivity: planted.sensitivity,
        layer_matching,
        probes,
        sample_size,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The run's inputs, checked: at least 16 examples, each prepared once.
fn context<'a>(
    model: &'a dyn crate::model::HookedModel,
    model_path: &'a Path,
    data: &'a Dataset,
    params: &'a ValidValidateParams,
    device: &'a Device,
) -> Result<Ctx<'a>> {
    let info = model.info();
    let n = data.examples.len();
    if n < 16 {
        return Err(Error::param(
            "limit",
            format!(
                "validate needs at least 16 examples, {} has {n}",
                data.path.display()
            ),
        ));
    }
    let prepared: Vec<Vec<PreparedSeq>> = data
        .examples
        .iter()
        .map(|ex| prepare_example(model, ex, params.pooling, params.max_tokens, &data.path))
        .collect::<Result<_>>()?;
    let first: Vec<PreparedSeq> = prepared.iter().map(|s| s[0].clone()).collect();
    Ok(Ctx {
        model,
        model_path,
        data,
        params,
        device,
        prepared,
        first,
        n_layers: info.n_layers,
        d: info.hidden_size,
        n,
    })
}
