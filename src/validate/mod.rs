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
mod render;
mod types;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::capture::{pool_sequences, prepare_example, PreparedSeq};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::edit::{self, Family};
use crate::model::{HookPoint, HookRequest, HookedModel};
use crate::probe::{cross_validate, ProbeData, Solver};
pub use checks::{InvarianceRow, NullRow, MEASURES};
pub use render::render_markdown;
pub use types::*;

/// The largest deviation counted as 0 on bit-identical activations: the f64 algebra's own
/// rounding (the identity check shows its size, ≈ 1e-11 for debiased CKA).
pub const EXACT_TOL: f64 = 1e-9;

/// Every `resid_post` layer of `seqs`, pooled: `(seqs.len(), hidden)` per layer.
fn capture_layers(
    model: &dyn HookedModel,
    seqs: &[PreparedSeq],
    batch: usize,
    device: &Device,
) -> Result<Vec<Array2<f32>>> {
    let info = model.info();
    let hooks = HookRequest::all_layers(&[HookPoint::ResidPost], info.n_layers);
    let mut pooled = pool_sequences(model, seqs, &hooks, batch, device, |_, _| {})?;
    (0..=info.n_layers)
        .map(|l| {
            let v = pooled
                .remove(&(HookPoint::ResidPost, l))
                .expect("requested layer");
            Ok(Array2::from_shape_vec((seqs.len(), info.hidden_size), v)
                .expect("pooled rows × hidden"))
        })
        .collect()
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.3e}"))
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
    let info = model.info().clone();
    let (n_layers, d) = (info.n_layers, info.hidden_size);
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
        .map(|ex| {
            prepare_example(
                model.as_ref(),
                ex,
                params.pooling,
                params.max_tokens,
                &data.path,
            )
        })
        .collect::<Result<_>>()?;
    let first: Vec<PreparedSeq> = prepared.iter().map(|s| s[0].clone()).collect();
    let mut checks: Vec<Check> = Vec::new();
    let push = |checks: &mut Vec<Check>, section: &str, name: String, figure: String, status| {
        checks.push(Check {
            section: section.into(),
            name,
            figure,
            status,
        })
    };
    let k = params.knn_k;

    // 1. The base, and its numerical floor.
    progress(&format!(
        "capturing the base ({n} examples, batch {})",
        params.batch_size
    ));
    let base = capture_layers(model.as_ref(), &first, params.batch_size, device)?;
    progress("capturing the base again at batch size 1");
    let base1 = capture_layers(model.as_ref(), &first, 1, device)?;
    let mut floor = NoiseFloor::default();
    for (a, b) in base.iter().zip(&base1) {
        floor.max_abs_diff = floor.max_abs_diff.max(max_abs_diff(a, b));
        let dv = checks::deviations(a.view(), b.view(), k)?;
        for (f, v) in floor.deviation.iter_mut().zip(dv) {
            if let Some(v) = v {
                *f = Some(f.map_or(v.abs(), |f: f64| f.max(v.abs())));
            }
        }
    }
    let floor_ok = floor.deviation[0].is_some_and(|v| v <= 1e-6)
        && floor.deviation[2].is_some_and(|v| v <= 1e-6);
    push(
        &mut checks,
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

    // 2. Identity and invariances.
    progress("identity and invariance checks");
    let usable: Vec<Array2<f32>> = base
        .iter()
        .filter(|x| x.var_axis(Axis(0), 0.0).iter().any(|v| *v > 0.0))
        .cloned()
        .collect();
    let invariances = checks::invariances(&usable, k, params.seed)?;
    for r in &invariances {
        push(
            &mut checks,
            "identity and invariances",
            format!(
                "{} — {}: {}",
                r.transform,
                r.measure,
                if r.invariant { "unchanged" } else { "changes" }
            ),
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
            },
            Status::of(r.pass),
        );
    }

    // 3. Null: disjoint halves.
    progress(&format!(
        "null check ({} permutations per layer)",
        params.permutations
    ));
    let null = checks::null_halves(&base, params.permutations, params.seed)?;
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
    push(
        &mut checks,
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
    push(
        &mut checks,
        "null",
        "debiased CKA's null band contains 0 at every layer (the estimator is unbiased)".into(),
        format!("{} layers checked", defined.len()),
        Status::of(centred && !defined.is_empty()),
    );
    let lin_mean = {
        let v: Vec<f64> = null.iter().filter_map(|r| r.linear_cka).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    push(
        &mut checks,
        "null",
        format!(
            "linear CKA's chance level at n = {} (its positive bias)",
            n / 2
        ),
        format!("mean over layers {}", fmt_opt(lin_mean)),
        Status::Info,
    );

    // 4. Planted drift.
    let family = edit::family(model_path);
    let mut planted = Vec::new();
    let mut sensitivity = Vec::new();
    let blocks: Vec<usize> = if params.blocks.is_empty() {
        let mut b = vec![n_layers / 4, n_layers / 2, (3 * n_layers) / 4];
        b.dedup();
        b
    } else {
        params.blocks.clone()
    };
    if let Some(&bad) = blocks.iter().find(|&&b| b >= n_layers) {
        return Err(Error::LayerOutOfRange {
            layer: bad,
            min: 0,
            max: n_layers - 1,
            what: format!("--blocks of a {n_layers}-block model"),
        });
    }
    let mut sample_pair: Option<Array2<f32>> = None;
    match &family {
        Err(e) => push(
            &mut checks,
            "planted drift",
            "planted drift".into(),
            format!("skipped: {e}"),
            Status::Skipped,
        ),
        Ok(fam) => {
            for &b in &blocks {
                let mut per_strength: Vec<Vec<[Option<f64>; 5]>> = Vec::new();
                let mut specific = true;
                let mut spec_detail = String::new();
                for (si, &s) in params.strengths.iter().enumerate() {
                    progress(&format!("planted drift: block {b}, strength {s}"));
                    let edit_fn = planted_noise(*fam, b, s, params.seed);
                    let m = edit::load_edited(
                        model_path,
                        device,
                        &format!("planted:{b}:{s}"),
                        &edit_fn,
                    )?;
                    let acts = capture_layers(m.as_ref(), &first, params.batch_size, device)?;
                    let mut devs = Vec::new();
                    for (l, (x, y)) in base.iter().zip(&acts).enumerate() {
                        let diff = max_abs_diff(x, y);
                        let dv = checks::deviations(x.view(), y.view(), k)?;
                        if l <= b {
                            let worst = dv.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
                            if diff != 0.0 || worst > EXACT_TOL {
                                specific = false;
                                spec_detail = format!(
                                    "layer {l} moved at strength {s}: max |Δ activation| {diff:.2e}, largest deviation {worst:.2e}"
                                );
                            }
                        }
                        planted.push(PlantedRow {
                            block: b,
                            strength: s,
                            layer: l,
                            max_abs_diff: diff,
                            deviation: dv,
                        });
                        devs.push(dv);
                    }
                    if b == blocks[blocks.len() / 2] && si == params.strengths.len() / 2 {
                        sample_pair = Some(acts[n_layers].clone());
                    }
                    per_strength.push(devs);
                }
                push(
                    &mut checks,
                    "planted drift",
                    format!("specificity, block {b}: layers 0–{b} bit-identical to the base, every deviation ≤ {EXACT_TOL:e}"),
                    if specific {
                        format!("{} strengths × {} layers exact", params.strengths.len(), b + 1)
                    } else {
                        spec_detail
                    },
                    Status::of(specific),
                );
                let next = (b + 1).min(n_layers);
                for (mi, measure) in MEASURES.iter().enumerate() {
                    let fl = floor.deviation[mi].unwrap_or(0.0);
                    let smallest = params
                        .strengths
                        .iter()
                        .zip(&per_strength)
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
                    push(
                        &mut checks,
                        "planted drift",
                        format!("sensitivity and dose–response, block {b}, {measure}"),
                        format!(
                            "smallest strength flagged at layer {next}: {}; layer {next}: {}; layer {n_layers}: {}",
                            smallest.map_or("none".into(), |s| s.to_string()),
                            sn.iter().map(|v| format!("{v:.2e}")).collect::<Vec<_>>().join(" → "),
                            sl.iter().map(|v| format!("{v:.2e}")).collect::<Vec<_>>().join(" → ")
                        ),
                        Status::of(smallest.is_some() && mono_next && mono_last),
                    );
                    sensitivity.push(SensitivityRow {
                        block: b,
                        measure: measure.to_string(),
                        smallest_flagged: smallest,
                        monotone_next: mono_next,
                        monotone_last: mono_last,
                    });
                }
            }
        }
    }

    // 5. Layer matching.
    let base_cross = checks::cross_cka(&base, &base);
    let (mono, near, order) = checks::decay_with_distance(&base_cross);
    let mut matching = LayerMatching {
        skipped: None,
        accuracy_all: None,
        accuracy_trained: None,
        trained_layers: Vec::new(),
        base_monotone_share: mono,
        base_neighbour_share: near,
        base_order_agreement: order,
    };
    push(
        &mut checks,
        "layer matching",
        "base cross-layer CKA: each layer's most similar other layer is a neighbour (≥ 90 % of layers)".into(),
        near.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v)),
        Status::of(near.is_some_and(|v| v >= 0.9)),
    );
    push(
        &mut checks,
        "layer matching",
        "base cross-layer CKA falls with layer distance: ordering agreement (strictly monotone rows)".into(),
        format!(
            "{} ({})",
            order.map_or("n/a".into(), |v| format!("{:.1} %", 100.0 * v)),
            mono.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v))
        ),
        Status::Info,
    );
    // The trainer's base, loaded once: its absence is the reason the students are skipped.
    let trainer: std::result::Result<crate::model::llama::Llama, String> = if !params.students {
        Err("not asked (--no-students)".to_string())
    } else if data.format.fields().len() != 2 {
        Err("training needs preference pairs".to_string())
    } else if params.student_blocks > n_layers {
        Err(format!(
            "--student-blocks {} exceeds the model's {n_layers} blocks",
            params.student_blocks
        ))
    } else {
        crate::model::load_llama(model_path, device)
            .map_err(|e| format!("the trainer supports Llama-family models only ({e})"))
    };
    match trainer {
        Err(why) => {
            push(
                &mut checks,
                "layer matching",
                "two students from different seeds: layer-matching accuracy".into(),
                format!("skipped: {why}"),
                Status::Skipped,
            );
            matching.skipped = Some(why);
        }
        Ok(llama) => {
            let mut students = Vec::new();
            for seed in [params.seed, params.seed + 1] {
                progress(&format!(
                    "training student seed {seed} (top {} blocks)",
                    params.student_blocks
                ));
                let out = work.join(format!("student-seed{seed}"));
                let tp = crate::train::TrainParams {
                    method: crate::train::Method::Gold,
                    trainable: crate::train::Trainable::Top(params.student_blocks),
                    epochs: 2,
                    lr: 3e-4,
                    max_tokens: params.max_tokens,
                    seed,
                    checkpoint_every: 0,
                    ..Default::default()
                }
                .check()?;
                let job = crate::train::TrainJob {
                    labels: None,
                    out: &out,
                    resume: false,
                    force: true,
                    stop_after: None,
                    save: crate::train::SaveAs::Delta,
                };
                crate::train::train(
                    &llama,
                    data,
                    &[],
                    &tp,
                    &job,
                    device,
                    &mut crate::train::NoTrainProgress,
                )?;
                let m = crate::model::load(&out, device)?;
                students.push(capture_layers(
                    m.as_ref(),
                    &first,
                    params.batch_size,
                    device,
                )?);
            }
            let cross = checks::cross_cka(&students[0], &students[1]);
            let all: Vec<usize> = (0..=n_layers).collect();
            let trained: Vec<usize> = ((n_layers + 1 - params.student_blocks)..=n_layers).collect();
            matching.accuracy_all = checks::matching_accuracy(&cross, &all);
            matching.accuracy_trained = checks::matching_accuracy(&cross, &trained);
            matching.trained_layers = trained.clone();
            push(
                &mut checks,
                "layer matching",
                format!(
                    "two students (seeds {}, {}): layer-matching accuracy ≥ 90 % on the layers training changed ({}–{})",
                    params.seed,
                    params.seed + 1,
                    trained[0],
                    n_layers
                ),
                format!(
                    "changed layers {}; all layers {}",
                    matching.accuracy_trained.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v)),
                    matching.accuracy_all.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v))
                ),
                Status::of(matching.accuracy_trained.is_some_and(|v| v >= 0.9)),
            );
        }
    }

    // 6. Probes with shuffled labels.
    let mut probes = Vec::new();
    if data.format.fields().len() == 2 {
        progress("capturing the rejected replies for the probe check");
        let second: Vec<PreparedSeq> = prepared.iter().map(|s| s[1].clone()).collect();
        let rej = capture_layers(model.as_ref(), &second, params.batch_size, device)?;
        let probe_layers = [n_layers / 2, n_layers];
        let (lo, hi) = checks::chance_band(n, probe_layers.len());
        for &l in &probe_layers {
            let diff = (&base[l] - &rej[l]).mapv(|v| v as f64);
            let pd = ProbeData::Pairs(diff);
            if pd.all_tied() {
                continue;
            }
            let cs = [0.01, 0.1, 1.0, 10.0, 100.0];
            let real = cross_validate(&pd, &cs, 5, params.seed, Solver::default())?;
            let ctrl = cross_validate(
                &pd.control(params.seed),
                &[1.0],
                5,
                params.seed,
                Solver::default(),
            )?;
            let ok = ctrl.accuracy >= lo && ctrl.accuracy <= hi;
            push(
                &mut checks,
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
                n,
                accuracy: real.accuracy,
                c: real.c,
                control_accuracy: ctrl.accuracy,
                band_lo: lo,
                band_hi: hi,
            });
        }
    }

    // 7. Sample size.
    let mut sample_size = Vec::new();
    if let Some(y) = &sample_pair {
        progress("sample-size check");
        let x = &base[n_layers];
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
                params.bootstrap,
                params.seed ^ m as u64,
            )?;
            sample_size.push(SampleRow {
                m,
                d,
                sd_linear_cka: a,
                sd_debiased_cka: b,
                sd_procrustes: c,
            });
        }
        push(
            &mut checks,
            "sample size",
            format!("sd of the measures over random subsets of n examples, last layer (d = {d})"),
            sample_size
                .iter()
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
    }

    Ok(ValidateReport {
        format: VALIDATE_FORMAT.into(),
        version: 1,
        repdrift_version: env!("CARGO_PKG_VERSION").into(),
        model: model_path.to_path_buf(),
        architecture: info.architecture.clone(),
        weights_sha256: info.weights_sha256.clone(),
        n_layers,
        hidden_size: d,
        data: data.path.clone(),
        data_sha256: data.sha256.clone(),
        n_examples: n,
        params: (**params).clone(),
        checks,
        noise_floor: floor,
        invariances,
        null,
        planted,
        sensitivity,
        layer_matching: matching,
        probes,
        sample_size,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
