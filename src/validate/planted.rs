//! Check 4, planted drift: Gaussian noise of relative strength s on block L's two output
//! projections ([`crate::model::edit`]). Specificity: layers ≤ L bit-identical to the base's
//! and every deviation 0. Sensitivity: the smallest s at which each measure's deviation at
//! layer L + 1 exceeds the numerical floor. Dose–response: deviations grow with s at layer
//! L + 1 and at the last layer.

use std::collections::HashMap;

use candle_core::Tensor;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::checks::{self, MEASURES};
use super::context::{max_abs_diff, Checklist, Ctx, EXACT_TOL};
use super::types::{NoiseFloor, PlantedRow, SensitivityRow, Status};
use crate::error::{Error, Result};
use crate::model::edit::{self, Family};

/// Each measure's deviation at each layer, for one strength ([`MEASURES`] order).
type Deviations = Vec<[Option<f64>; 5]>;

/// What the planted-drift check found.
#[derive(Default)]
pub(super) struct Planted {
    pub rows: Vec<PlantedRow>,
    pub sensitivity: Vec<SensitivityRow>,
    /// The last layer of the model planted at the middle block and strength: the sample-size
    /// check's drifted side.
    pub sample_pair: Option<Array2<f32>>,
}

/// The blocks to plant drift in: as asked, or a quarter, half and three quarters deep.
pub(super) fn blocks(ctx: &Ctx<'_>) -> Result<Vec<usize>> {
    let n_layers = ctx.n_layers;
    let blocks: Vec<usize> = if ctx.params.blocks.is_empty() {
        let mut b = vec![n_layers / 4, n_layers / 2, (3 * n_layers) / 4];
        b.dedup();
        b
    } else {
        ctx.params.blocks.clone()
    };
    if let Some(&bad) = blocks.iter().find(|&&b| b >= n_layers) {
        return Err(Error::LayerOutOfRange {
            layer: bad,
            min: 0,
            max: n_layers - 1,
            what: format!("--blocks of a {n_layers}-block model"),
        });
    }
    Ok(blocks)
}

pub(super) fn planted(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    floor: &NoiseFloor,
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<Planted> {
    let blocks = blocks(ctx)?;
    let mut out = Planted::default();
    match edit::family(ctx.model_path) {
        Err(e) => list.push(
            "planted drift",
            "planted drift".into(),
            format!("skipped: {e}"),
            Status::Skipped,
        ),
        Ok(fam) => {
            for &b in &blocks {
                let middle = b == blocks[blocks.len() / 2];
                let block = plant_block(ctx, base, fam, b, middle, list, progress)?;
                out.rows.extend(block.rows);
                if block.middle_last.is_some() {
                    out.sample_pair = block.middle_last;
                }
                sensitivity(
                    ctx,
                    b,
                    &block.per_strength,
                    floor,
                    list,
                    &mut out.sensitivity,
                );
            }
        }
    }
    Ok(out)
}

/// One block's planted models, every strength.
struct Block {
    rows: Vec<PlantedRow>,
    per_strength: Vec<Deviations>,
    /// The last layer at the middle strength (only when asked for: the middle block's).
    middle_last: Option<Array2<f32>>,
}

/// Every strength planted in block `b`: the rows, and the specificity check (layers ≤ b
/// untouched).
fn plant_block(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    fam: Family,
    b: usize,
    keep_last: bool,
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<Block> {
    let strengths = &ctx.params.strengths;
    let mut rows = Vec::new();
    let mut middle_last = None;
    let mut per_strength = Vec::new();
    let mut specific = true;
    let mut spec_detail = String::new();
    for (si, &s) in strengths.iter().enumerate() {
        progress(&format!("planted drift: block {b}, strength {s}"));
        let edit_fn = planted_noise(fam, b, s, ctx.params.seed);
        let m = edit::load_edited(
            ctx.model_path,
            ctx.device,
            &format!("planted:{b}:{s}"),
            &edit_fn,
        )?;
        let mut acts = ctx.capture(m.as_ref())?;
        let mut devs = Vec::new();
        for (l, (x, y)) in base.iter().zip(&acts).enumerate() {
            let diff = max_abs_diff(x, y);
            let dv = checks::deviations(x.view(), y.view(), ctx.params.knn_k)?;
            if l <= b {
                let worst = dv.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
                if diff != 0.0 || worst > EXACT_TOL {
                    specific = false;
                    spec_detail = format!(
                        "layer {l} moved at strength {s}: max |Δ activation| {diff:.2e}, largest deviation {worst:.2e}"
                    );
                }
            }
            rows.push(PlantedRow {
                block: b,
                strength: s,
                layer: l,
                max_abs_diff: diff,
                deviation: dv,
            });
            devs.push(dv);
        }
        if keep_last && si == strengths.len() / 2 {
            // Hidden state n_layers (the last layer), moved out rather than copied.
            acts.truncate(ctx.n_layers + 1);
            middle_last = acts.pop();
        }
        per_strength.push(devs);
    }
    list.push(
        "planted drift",
        format!("specificity, block {b}: layers 0–{b} bit-identical to the base, every deviation ≤ {EXACT_TOL:e}"),
        if specific {
            format!("{} strengths × {} layers exact", strengths.len(), b + 1)
        } else {
            spec_detail
        },
        Status::of(specific),
    );
    Ok(Block {
        rows,
        per_strength,
        middle_last,
    })
}

/// Per measure: the smallest strength flagged above the floor at layer b + 1, and whether the
/// deviations grow with strength there and at the last layer.
fn sensitivity(
    ctx: &Ctx<'_>,
    b: usize,
    per_strength: &[Deviations],
    floor: &NoiseFloor,
    list: &mut Checklist,
    rows: &mut Vec<SensitivityRow>,
) {
    let n_layers = ctx.n_layers;
    let next = (b + 1).min(n_layers);
    for (mi, measure) in MEASURES.iter().enumerate() {
        let fl = floor.deviation[mi].unwrap_or(0.0);
        let smallest = ctx
            .params
            .strengths
            .iter()
            .zip(per_strength)
            .find(|(_, devs)| devs[next][mi].is_some_and(|v| v.abs() > fl))
            .map(|(s, _)| *s);
        let series = |l: usize| -> Vec<f64> {
            std::iter::once(0.0)
                .chain(
                    per_strength
                        .iter()
                        .map(|d| d[l][mi].unwrap_or(f64::NAN).abs()),
                )
                .collect()
        };
        let (sn, sl) = (series(next), series(n_layers));
        let defined = sn.iter().chain(&sl).all(|v| v.is_finite());
        let mono_next = defined && checks::monotone(&sn, fl.max(1e-12));
        let mono_last = defined && checks::monotone(&sl, fl.max(1e-12));
        let arrows = |v: &[f64]| {
            v.iter()
                .map(|v| format!("{v:.2e}"))
                .collect::<Vec<_>>()
                .join(" → ")
        };
        list.push(
            "planted drift",
            format!("sensitivity and dose–response, block {b}, {measure}"),
            format!(
                "smallest strength flagged at layer {next}: {}; layer {next}: {}; layer {n_layers}: {}",
                smallest.map_or("none".into(), |s| s.to_string()),
                arrows(&sn),
                arrows(&sl)
            ),
            Status::of(smallest.is_some() && mono_next && mono_last),
        );
        rows.push(SensitivityRow {
            block: b,
            measure: measure.to_string(),
            smallest_flagged: smallest,
            monotone_next: mono_next,
            monotone_last: mono_last,
        });
    }
}

/// Block `block`'s output projections plus `strength` × rms(W) × N(0, 1) noise (the same draw
/// at every strength, seeded per tensor).
fn planted_noise(
    family: Family,
    block: usize,
    strength: f64,
    seed: u64,
) -> impl Fn(&crate::model::weights::Weights) -> Result<HashMap<String, Tensor>> {
    move |w| {
        let mut out = HashMap::new();
        for (i, name) in edit::output_projections(family, w, block)
            .into_iter()
            .enumerate()
        {
            let t = w
                .get_any(&name)?
                .ok_or_else(|| Error::model(w.path(), format!("missing weight `{name}`")))?;
            let dims = t.dims().to_vec();
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            let rms = (v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            let mut rng = StdRng::seed_from_u64(seed ^ ((block as u64) << 8) ^ i as u64);
            let g = checks::gaussian(1, v.len(), &mut rng);
            let nv: Vec<f32> = v
                .iter()
                .zip(g.iter())
                .map(|(a, z)| (*a as f64 + strength * rms * z) as f32)
                .collect();
            out.insert(name, Tensor::from_vec(nv, dims, t.device())?);
        }
        Ok(out)
    }
}
