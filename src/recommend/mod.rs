//! `repdrift recommend`: which layers to anchor, with what weight — and, with `--validate`, a
//! check of that pick by training.
//!
//! Ranking (per residual layer `l` the next run can anchor):
//! `score_l = (1 − linear CKA_l(student, base)) × max(0, base target-probe accuracy_l − 0.5)`,
//! the student's drift where the base's preference direction transfers (mean over targets of
//! the base's probe trained on source features and tested on target features). The top
//! `budget` layers are proposed. When no layer scores above zero the proposal falls back to
//! drift alone, and says so.
//!
//! Weights: `λ_l = fraction · L₀ / d_l`, where `d_l` is the anchor distance (`mse`: mean
//! squared difference of the student's and the base's states divided by the base's mean
//! square) that the analysed student reached on the compare stores, and `L₀ = ln 2`, the BT
//! loss of an untrained reward model. So at the analysed student's drift each anchored layer
//! would add `fraction · L₀` — the anchor term starts at that stated fraction of the BT loss
//! when the student begins to drift as the analysed one did.
//!
//! Validation trains anchored students on a grid (the proposal, λ × 0.1 and × 10, the
//! lowest-scoring eligible layers with calibrated λ, λ = 0 as the naive reference; `full` adds
//! the single best layer and all eligible layers), scores each on the source test split and
//! the targets, and reports the Pareto front of (in-distribution, mean target accuracy) and
//! the Net Transfer Score against the weak teacher.

use std::collections::BTreeMap;
use std::path::Path;

use crate::capture::{Pooling, Store};
use crate::error::{Error, Result};
use crate::metrics::compare::{MetricsReport, StoreRecord};
use crate::model::HookPoint;
use crate::probe::run::ProbeReport;

mod render;
mod types;
pub use render::{render_html, render_markdown};
pub use types::{Candidate, LayerScore, Proposal, Recommendation, Validation};

/// Parameters of the ranking.
#[derive(Debug, Clone)]
pub struct RecommendParams {
    pub student: Option<String>,
    pub base_model: String,
    pub budget: usize,
    /// The lowest anchorable layer (first trainable block's output).
    pub min_layer: usize,
    pub fraction: f64,
}

/// Normalised MSE of `s` to `b` (both `(n, d)`): Σ(s − b)² / Σb².
fn anchor_distance(s: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in s.iter().zip(b.iter()) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    num / den.max(f64::MIN_POSITIVE)
}

/// Rank layers and propose anchors from `compare` and `probe` outputs (the compare stores are
/// read again for the calibration).
pub fn recommend(
    metrics: &MetricsReport,
    probes: &[ProbeReport],
    p: &RecommendParams,
) -> Result<Recommendation> {
    if p.budget == 0 {
        return Err(Error::param("budget", "must be at least 1"));
    }
    if !(p.fraction > 0.0 && p.fraction.is_finite()) {
        return Err(Error::param("fraction", "must be positive"));
    }
    let student = analysed_student(metrics, p)?;
    let base_probe = probes
        .iter()
        .find(|r| r.model == p.base_model)
        .ok_or_else(|| {
            Error::param(
                "probe",
                format!("no probe results for the base model `{}`", p.base_model),
            )
        })?;
    let base_store = Store::open(&metrics.base.path)?;
    let student_store = Store::open(&student.path)?;
    let mut notes = Vec::new();
    if base_store.manifest().pooling != Pooling::Last {
        notes.push(format!(
            "the stores are {}-pooled; the anchor penalises last-token states, so λ is calibrated on other states than it acts on",
            base_store.manifest().pooling.name()
        ));
    }
    let n_layers = base_store.manifest().model.n_layers;
    let stores = (&base_store, &student_store);
    let scores = layer_scores(metrics, &student.name, base_probe, stores, p)?;
    let layers = propose(&scores, p.budget, &mut notes);
    Ok(Recommendation {
        format: "repdrift-recommend".into(),
        version: 1,
        student: student.name.clone(),
        base_model: p.base_model.clone(),
        budget: p.budget,
        fraction: p.fraction,
        bt_loss_reference: std::f64::consts::LN_2,
        eligible: (p.min_layer, n_layers),
        scores,
        proposal: Proposal {
            label: "recommended".into(),
            layers: layers.iter().map(|x| x.0).collect(),
            weights: layers.iter().map(|x| x.1).collect(),
        },
        notes,
        validation: None,
    })
}

/// The student the advice is for: the one named, else the metrics' first.
fn analysed_student<'a>(
    metrics: &'a MetricsReport,
    p: &RecommendParams,
) -> Result<&'a StoreRecord> {
    match &p.student {
        Some(s) => metrics
            .students
            .iter()
            .find(|r| &r.name == s)
            .ok_or_else(|| {
                let names: Vec<&str> = metrics.students.iter().map(|r| r.name.as_str()).collect();
                Error::param(
                    "student",
                    format!(
                        "no student `{s}` in the metrics (students: {})",
                        names.join(", ")
                    ),
                )
            }),
        None => metrics
            .students
            .first()
            .ok_or_else(|| Error::param("metrics", "the metrics name no student")),
    }
}

/// Each eligible layer's drift, the base probe's transfer there, their product (the rank
/// score), the anchor distance of the student's states from the base's and the λ that makes
/// the anchor term `fraction` of the BT loss at the start.
fn layer_scores(
    metrics: &MetricsReport,
    student: &str,
    base_probe: &ProbeReport,
    (base_store, student_store): (&Store, &Store),
    p: &RecommendParams,
) -> Result<Vec<LayerScore>> {
    let field = if metrics.rows.iter().any(|r| r.field == "diff") {
        "diff"
    } else {
        "chosen"
    };
    let mut scores = Vec::new();
    for row in metrics
        .rows
        .iter()
        .filter(|r| r.student == student && r.field == field && r.layer >= p.min_layer)
    {
        let l = row.layer;
        let accs: Vec<f64> = base_probe
            .rows
            .iter()
            .filter(|r| r.model == p.base_model && r.kind == "transfer" && r.layer == l && !r.tied)
            .map(|r| r.accuracy)
            .collect();
        let bt = (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64);
        let drift = row.linear_cka.map(|c| (1.0 - c).max(0.0)).unwrap_or(0.0);
        let score = drift * bt.map(|a| (a - 0.5).max(0.0)).unwrap_or(0.0);
        let mut d = Vec::new();
        for f in ["chosen", "rejected"] {
            if base_store.manifest().fields.iter().any(|x| x == f) {
                let b = base_store.read(HookPoint::ResidPost, l, f)?;
                let s = student_store.read(HookPoint::ResidPost, l, f)?;
                d.push(anchor_distance(&s, &b));
            }
        }
        let dist = (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64);
        let lambda =
            dist.map(|d| (p.fraction * std::f64::consts::LN_2 / d.max(1e-12)).clamp(1e-4, 1e4));
        scores.push(LayerScore {
            layer: l,
            linear_cka: row.linear_cka,
            drift,
            base_target_accuracy: bt,
            score,
            anchor_distance: dist,
            lambda,
        });
    }
    if scores.is_empty() {
        return Err(Error::param(
            "layers",
            format!(
                "no metrics for student `{student}` at layers ≥ {} (the layers the next run can anchor)",
                p.min_layer
            ),
        ));
    }
    Ok(scores)
}

/// The `budget` best layers (by score, or by drift when no layer has a score) with their λ,
/// in layer order; notes on what makes the ranking weak.
fn propose(scores: &[LayerScore], budget: usize, notes: &mut Vec<String>) -> Vec<(usize, f64)> {
    let max_drift = scores.iter().map(|s| s.drift).fold(0.0, f64::max);
    if max_drift < 0.01 {
        notes.push(format!(
            "the analysed student barely drifted (largest 1 − linear CKA {max_drift:.4}): the ranking is close to noise and the calibrated λ is large"
        ));
    }
    if scores
        .iter()
        .any(|s| s.lambda.is_some_and(|l| l >= 1e4 || l <= 1e-4))
    {
        notes.push("some λ reached the clamp [1e-4, 1e4]".into());
    }
    let mut ranked: Vec<&LayerScore> = scores.iter().collect();
    let by_score = ranked.iter().any(|s| s.score > 0.0);
    if !by_score {
        notes.push("no layer has both drift and a base probe that transfers above chance: the proposal ranks by drift alone".into());
    }
    ranked.sort_by(|a, b| {
        let (x, y) = if by_score {
            (a.score, b.score)
        } else {
            (a.drift, b.drift)
        };
        y.partial_cmp(&x)
            .expect("finite")
            .then(a.layer.cmp(&b.layer))
    });
    let mut layers: Vec<(usize, f64)> = ranked
        .iter()
        .take(budget)
        .map(|s| (s.layer, s.lambda.unwrap_or(1.0)))
        .collect();
    layers.sort_by_key(|x| x.0);
    layers
}

/// The validation grid for `rec` (`full` adds more alternatives).
pub fn grid(rec: &Recommendation, full: bool) -> Vec<Proposal> {
    let p = &rec.proposal;
    let scale = |f: f64, label: &str| Proposal {
        label: label.into(),
        layers: p.layers.clone(),
        weights: p.weights.iter().map(|w| w * f).collect(),
    };
    let lambda_of = |l: usize| {
        rec.scores
            .iter()
            .find(|s| s.layer == l)
            .and_then(|s| s.lambda)
            .unwrap_or(1.0)
    };
    let mut by_score: Vec<&LayerScore> = rec.scores.iter().collect();
    by_score.sort_by(|a, b| {
        a.score
            .partial_cmp(&b.score)
            .expect("finite")
            .then(a.layer.cmp(&b.layer))
    });
    let mut low: Vec<usize> = by_score
        .iter()
        .map(|s| s.layer)
        .filter(|l| !p.layers.contains(l))
        .take(p.layers.len())
        .collect();
    low.sort_unstable();
    let mut out = vec![
        Proposal {
            label: "naive (λ = 0)".into(),
            layers: p.layers.clone(),
            weights: vec![0.0; p.layers.len()],
        },
        p.clone(),
        scale(0.1, "recommended, λ × 0.1"),
        scale(10.0, "recommended, λ × 10"),
    ];
    if !low.is_empty() {
        out.push(Proposal {
            label: "lowest-scoring layers".into(),
            weights: low.iter().map(|&l| lambda_of(l)).collect(),
            layers: low,
        });
    }
    if full {
        if let Some(best) = by_score.last() {
            out.push(Proposal {
                label: "best single layer".into(),
                layers: vec![best.layer],
                weights: vec![lambda_of(best.layer)],
            });
        }
        let all: Vec<usize> = rec.scores.iter().map(|s| s.layer).collect();
        out.push(Proposal {
            label: "all eligible layers".into(),
            weights: all.iter().map(|&l| lambda_of(l)).collect(),
            layers: all,
        });
    }
    out
}

/// Score trained candidates against the weak teacher and mark the Pareto front.
pub fn assess(
    results: Vec<(Proposal, BTreeMap<String, f64>)>,
    weak: &BTreeMap<String, f64>,
    targets: &[String],
) -> Result<(Vec<Candidate>, bool, bool, String)> {
    let wk = |k: &str| -> Result<f64> {
        weak.get(k).copied().ok_or_else(|| {
            Error::param(
                "teacher-labels",
                format!("the weak labels have no accuracy on `{k}`"),
            )
        })
    };
    let mut cands = Vec::new();
    for (proposal, acc) in results {
        let get = |k: &str| -> Result<f64> {
            acc.get(k)
                .copied()
                .ok_or_else(|| Error::param("validate", format!("no accuracy on `{k}`")))
        };
        let src = get("source_test")?;
        let mut gains = Vec::new();
        let mut tsum = 0.0;
        for t in targets {
            let a = get(t)?;
            tsum += a;
            gains.push(100.0 * (a - wk(t)?));
        }
        let idg = 100.0 * (src - wk("source_test")?);
        let aog = gains.iter().sum::<f64>() / gains.len().max(1) as f64;
        cands.push(Candidate {
            proposal,
            mean_target: tsum / targets.len().max(1) as f64,
            accuracy: acc,
            idg,
            aog,
            nts: aog - (-idg).max(0.0),
            pareto: false,
        });
    }
    let pts: Vec<(f64, f64)> = cands
        .iter()
        .map(|c| (c.accuracy["source_test"], c.mean_target))
        .collect();
    for (i, c) in cands.iter_mut().enumerate() {
        let (a, b) = pts[i];
        c.pareto = !pts
            .iter()
            .enumerate()
            .any(|(j, &(x, y))| j != i && x >= a && y >= b && (x > a || y > b));
    }
    let rec = cands.iter().find(|c| c.proposal.label == "recommended");
    let best = cands
        .iter()
        .map(|c| c.nts)
        .fold(f64::NEG_INFINITY, f64::max);
    let on_front = rec.is_some_and(|c| c.pareto);
    let best_nts = rec.is_some_and(|c| c.nts >= best - 1e-12);
    let naive = cands
        .iter()
        .find(|c| c.proposal.weights.iter().all(|&w| w == 0.0));
    let verdict = match (rec, naive) {
        (Some(r), Some(n)) => format!(
            "The recommended anchors {} the Pareto front of in-distribution vs mean target accuracy{}; against the naive student (λ = 0) they change in-distribution accuracy by {:+.1} points and mean target accuracy by {:+.1} points (NTS {:.1} vs {:.1}).",
            if r.pareto { "lie on" } else { "do not lie on" },
            if best_nts { " and have the best NTS of the grid" } else { "" },
            100.0 * (r.accuracy["source_test"] - n.accuracy["source_test"]),
            100.0 * (r.mean_target - n.mean_target),
            r.nts,
            n.nts
        ),
        _ => "The grid lacks the recommended or the naive configuration.".into(),
    };
    Ok((cands, on_front, best_nts, verdict))
}

/// Read `metrics.json` and `probe.json` files.
pub fn read(
    metrics_dir: &Path,
    probe_dirs: &[std::path::PathBuf],
) -> Result<(MetricsReport, Vec<ProbeReport>)> {
    fn json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
        let b = std::fs::read(p).map_err(|e| Error::io(p, e))?;
        serde_json::from_slice(&b).map_err(|e| Error::Json {
            path: p.to_path_buf(),
            cause: e,
        })
    }
    let m = json(&metrics_dir.join("metrics.json"))?;
    let p = probe_dirs
        .iter()
        .map(|d| json(&d.join("probe.json")))
        .collect::<Result<_>>()?;
    Ok((m, p))
}

/// Train an anchored student for each proposal on data prepared once, under `runs/`, and
/// assess them; `known` gives accuracies of proposals (by label) already trained with the same
/// data, seed and parameters, which are not trained again. `params` gives everything but the anchors (method is set to `anchor`; λ = 0
/// rows train the naive objective through the same code path).
#[allow(clippy::too_many_arguments)]
pub fn validate(
    prep: &crate::train::Prepared<'_>,
    proposals: &[Proposal],
    params: &crate::train::TrainParams,
    labels: &crate::train::WeakLabels,
    targets: &[String],
    known: &[(String, BTreeMap<String, f64>)],
    runs: &Path,
    device: &candle_core::Device,
    progress: &mut dyn crate::train::TrainProgress,
) -> Result<Validation> {
    use crate::train::{train_prepared, Method, TrainJob, TrainParams};
    let mut results = Vec::new();
    for (i, p) in proposals.iter().enumerate() {
        // Runs already trained with exactly this configuration (same data, seed and params).
        if let Some((_, acc)) = known.iter().find(|(l, _)| *l == p.label) {
            results.push((p.clone(), acc.clone()));
            continue;
        }
        let tp = TrainParams {
            method: Method::Anchor,
            anchor_layers: p.layers.clone(),
            anchor_weight: p.weights.clone(),
            ..params.clone()
        }
        .check()?;
        let out = runs.join(format!("candidate-{i}"));
        progress.phase(&format!(
            "validate {}/{}: {}",
            i + 1,
            proposals.len(),
            p.label
        ));
        let job = TrainJob {
            labels: Some(labels),
            out: &out,
            resume: false,
            force: true,
            stop_after: None,
            save: Default::default(),
        };
        let s = train_prepared(prep, &tp, &job, device, progress)?
            .expect("no stop_after: the run finishes");
        results.push((p.clone(), s.accuracy));
    }
    let (candidates, on_front, best, verdict) = assess(results, &labels.accuracy, targets)?;
    Ok(Validation {
        trainable: match params.trainable {
            crate::train::Trainable::Top(k) => format!("top:{k}"),
            crate::train::Trainable::All => "all".into(),
        },
        epochs: params.epochs,
        lr: params.lr,
        seed: params.seed,
        weak: labels.accuracy.clone(),
        candidates,
        recommended_on_front: on_front,
        recommended_best_nts: best,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(label: &str, layers: &[usize], w: f64) -> Proposal {
        Proposal {
            label: label.into(),
            layers: layers.to_vec(),
            weights: vec![w; layers.len()],
        }
    }

    fn acc(src: f64, a: f64, b: f64) -> BTreeMap<String, f64> {
        [("source_test", src), ("a", a), ("b", b)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn pareto_front_and_nts_follow_their_definitions() {
        let weak = acc(0.8, 0.6, 0.5);
        let targets = vec!["a".to_string(), "b".to_string()];
        let (c, on_front, best, verdict) = assess(
            vec![
                (prop("naive (λ = 0)", &[29], 0.0), acc(0.95, 0.70, 0.50)),
                (prop("recommended", &[29], 1.0), acc(0.93, 0.80, 0.60)),
                (
                    prop("recommended, λ × 10", &[29], 10.0),
                    acc(0.85, 0.75, 0.55),
                ),
            ],
            &weak,
            &targets,
        )
        .unwrap();
        // naive: best in-dist → on the front; recommended: best target → on the front;
        // ×10 is dominated by recommended.
        assert_eq!(
            c.iter().map(|x| x.pareto).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert!(on_front && best, "{verdict}");
        // recommended: IDG = 13, AOG = mean(20, 10) = 15, NTS = 15.
        assert!((c[1].idg - 13.0).abs() < 1e-9 && (c[1].aog - 15.0).abs() < 1e-9);
        assert!((c[1].nts - 15.0).abs() < 1e-9);
        // A student below the teacher in-distribution is penalised: IDG −5 → NTS = AOG − 5.
        let (c, ..) = assess(
            vec![(prop("recommended", &[29], 1.0), acc(0.75, 0.7, 0.5))],
            &weak,
            &targets,
        )
        .unwrap();
        assert!((c[0].nts - (5.0 - 5.0)).abs() < 1e-9, "{}", c[0].nts);
        assert!(verdict.contains("+10.0 points"), "{verdict}");
    }

    #[test]
    fn grid_scales_lambda_and_picks_the_lowest_scoring_layers() {
        let score = |layer, score, lambda| LayerScore {
            layer,
            linear_cka: Some(0.9),
            drift: 0.1,
            base_target_accuracy: Some(0.8),
            score,
            anchor_distance: Some(0.1),
            lambda: Some(lambda),
        };
        let rec = Recommendation {
            format: "repdrift-recommend".into(),
            version: 1,
            student: "naive".into(),
            base_model: "base".into(),
            budget: 1,
            fraction: 0.5,
            bt_loss_reference: std::f64::consts::LN_2,
            eligible: (27, 30),
            scores: vec![
                score(27, 0.01, 1.0),
                score(28, 0.3, 2.0),
                score(29, 0.0, 3.0),
                score(30, 0.2, 4.0),
            ],
            proposal: prop("recommended", &[28], 2.0),
            notes: vec![],
            validation: None,
        };
        let g = grid(&rec, true);
        let labels: Vec<&str> = g.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "naive (λ = 0)",
                "recommended",
                "recommended, λ × 0.1",
                "recommended, λ × 10",
                "lowest-scoring layers",
                "best single layer",
                "all eligible layers"
            ]
        );
        assert_eq!(g[0].weights, [0.0]);
        assert!((g[2].weights[0] - 0.2).abs() < 1e-12 && (g[3].weights[0] - 20.0).abs() < 1e-12);
        assert_eq!(g[4].layers, [29]);
        assert_eq!(g[4].weights, [3.0]);
        assert_eq!(g[5].layers, [28]);
        assert_eq!(g[6].layers, [27, 28, 29, 30]);
        assert_eq!(grid(&rec, false).len(), 5);
    }
}
