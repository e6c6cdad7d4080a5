//! From the per-run results to the study's answers: the Table-1-style table (mean ± sd over
//! seeds), drift against transfer across runs (Spearman ρ, bootstrap CI), drift or head per
//! run, and mean trajectories. Everything here is a pure function of `runs/*.json`, so a user
//! (or a test) can recompute it.
//!
//! Definitions (accuracies in points, i.e. 100 × pairwise accuracy):
//! - gain on a set = student − weak teacher of the same seed; IDG = gain on `source_test`,
//!   AOG = mean gain over the targets; PGR on a set = (student − teacher) / (gold − teacher)
//!   with the gold run of the same regime and seed (null when gold ≤ teacher there);
//!   NTS = AOG − max(0, −IDG) (as `repdrift transfer`).
//! - transfer change = student's mean target accuracy − the base probe's (what the base already
//!   knew: a linear probe on the frozen base's final states, fitted on the gold training pairs);
//!   `vs_base:{set}` the same difference on one set. Cells give each a 95 % Student-t interval
//!   over seeds ([`Stat::ci95`]): the runs of a seed share the split, so the difference is paired.
//! - drift at layer l = mean over targets of 1 − linear CKA (or the cosine distance) between the
//!   base's and the student's `diff` rows.
//! - drift or head: from the run's paired tests on its per-pair margins
//!   ([`super::pairs::run_outcome`], the tests of `repdrift diagnose`). Runs written before
//!   margins were stored keep the old rule: a run that lost ≥ 5 points of transfer against the
//!   base probe is `drift` when the base probe applied to the student's states also lost ≥ 5
//!   points, otherwise `head` (a fixed threshold, not a test; the pages say which applies).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::run::RunResult;
use crate::stats::spearman;

pub use crate::stats::{stat, t975, Stat};

/// One cell of the table: a method in a regime, over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub method: String,
    pub regime: String,
    /// metric → statistic over seeds (keys listed in the module docs and the README).
    pub metrics: BTreeMap<String, Stat>,
    /// Runs by outcome: `transferred`, `drift`, `head`.
    pub outcomes: BTreeMap<String, usize>,
}

/// Spearman ρ of drift against transfer change at one layer, over runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCorrelation {
    pub layer: usize,
    /// `linear_cka` (drift = 1 − CKA) or `cosine`.
    pub measure: String,
    pub rho: Option<f64>,
    /// 95 % percentile bootstrap interval over runs.
    pub ci: Option<(f64, f64)>,
    /// Two-sided permutation p-value.
    pub p: Option<f64>,
    pub n: usize,
}

/// (regime, ρ, 95 % CI, n): a correlation within one regime.
pub type RegimeCorrelation = (String, Option<f64>, Option<(f64, f64)>, usize);

/// Mean trajectory of a method in a regime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub method: String,
    pub regime: String,
    pub steps: Vec<usize>,
    pub source: Vec<Option<Stat>>,
    pub target: Vec<Option<Stat>>,
    pub drift: Vec<Option<Stat>>,
}

/// Reference lines: the weak teacher and the base probe, mean over seeds, per set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct References {
    pub teacher: BTreeMap<String, Stat>,
    pub base_probe: BTreeMap<String, Stat>,
    pub weak_label_accuracy: Option<Stat>,
}

/// Everything the study reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub targets: Vec<String>,
    pub methods: Vec<String>,
    pub regimes: Vec<String>,
    pub n_runs: usize,
    pub references: References,
    pub table: Vec<Cell>,
    pub correlations: Vec<LayerCorrelation>,
    /// The layer whose drift (1 − linear CKA) has the largest |ρ| with transfer change.
    pub best_layer: Option<LayerCorrelation>,
    /// Spearman ρ, over the same runs, of the best layer's drift with the source-test accuracy:
    /// drift also measures how much a student learned, which confounds drift vs transfer.
    pub best_layer_source_rho: Option<f64>,
    /// At the best layer, the same correlation within each regime: (regime, ρ, CI, n).
    pub best_layer_by_regime: Vec<RegimeCorrelation>,
    /// Range of the runs' mean target accuracy (points): the spread the question needs.
    pub target_accuracy_range: Option<(f64, f64)>,
    pub trajectories: Vec<Trajectory>,
    /// Per run: (id, drift at the best layer, transfer change, outcome).
    pub points: Vec<RunPoint>,
    /// "Can these numbers be trusted?" ([`super::trust::trust_lines`]).
    #[serde(default)]
    pub trust: Vec<String>,
    /// Paired tests over pairs and seeds per regime, method and set (runs with per-pair
    /// margins only; [`super::pairs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pair_tests: Vec<super::pairs::PairCell>,
    /// Methods against each other over pairs and seeds (naive − gold, others − naive;
    /// [`super::pairs::contrasts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contrasts: Vec<super::pairs::Contrast>,
    /// Each method's mean over the targets against the base probe and against naive, over
    /// seeds and pairs ([`super::pairs::means_over_targets`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub means_over_targets: Vec<super::pairs::MeanOverTargets>,
    /// Drift against transfer within regime × method, gold left out
    /// ([`super::stratified`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratified: Option<super::stratified::Stratified>,
}

/// One run in the drift-vs-transfer scatter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPoint {
    pub id: String,
    pub method: String,
    pub regime: String,
    pub seed: u64,
    pub mean_target: f64,
    pub transfer_change: f64,
    /// layer → mean over targets of 1 − linear CKA.
    pub drift: BTreeMap<usize, f64>,
    pub outcome: String,
    /// For a `mixed` outcome, each lost target's cause: (target, `head` | `drift` | `both` |
    /// `unresolved`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome_causes: Vec<(String, String)>,
}

/// Permutations of the within-stratum drift-vs-transfer test.
const STRATIFIED_PERMUTATIONS: usize = 9999;

const LOSS_POINTS: f64 = 5.0;
/// Accuracies are shares of pairs, so a loss of exactly 5 points (12 of 240 pairs) comes out
/// of floating point as 4.99999999999998 or 5.00000000000002 depending on summation order: the
/// rule compares with this allowance, so such a loss counts as "≥ 5 points", as it states.
const LOSS_TOLERANCE: f64 = 1e-9;

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn mean_over(m: &BTreeMap<String, f64>, targets: &[String]) -> Option<f64> {
    let v: Vec<f64> = targets.iter().filter_map(|t| m.get(t).copied()).collect();
    (v.len() == targets.len()).then(|| 100.0 * v.iter().sum::<f64>() / v.len() as f64)
}

/// Drift of a run at `layer`: mean over targets of 1 − linear CKA (or cosine distance).
fn drift_at(r: &RunResult, layer: usize, targets: &[String], cosine: bool) -> Option<f64> {
    let v: Vec<f64> = r
        .drift
        .iter()
        .filter(|d| d.layer == layer && targets.contains(&d.set))
        .filter_map(|d| {
            if cosine {
                d.cosine_distance
            } else {
                d.linear_cka.map(|c| 1.0 - c)
            }
        })
        .collect();
    (v.len() == targets.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The run's outcome (see the module docs).
pub fn outcome(r: &RunResult, targets: &[String]) -> String {
    outcome_of(r, targets).outcome
}

/// The run's outcome with, for a mixed one, each lost target's cause.
fn outcome_of(r: &RunResult, targets: &[String]) -> super::pairs::RunOutcome {
    if let Some(o) = super::pairs::run_outcome(r, targets) {
        return o;
    }
    let words = super::pairs::RunOutcome::plain;
    let (Some(s), Some(b), Some(bs)) = (
        mean_over(&r.accuracy, targets),
        mean_over(&r.base_probe, targets),
        mean_over(&r.base_probe_on_student, targets),
    ) else {
        return words("unknown");
    };
    if b - s < LOSS_POINTS - LOSS_TOLERANCE {
        words("transferred")
    } else if b - bs >= LOSS_POINTS - LOSS_TOLERANCE {
        words("drift")
    } else {
        words("head")
    }
}

/// The per-run metric values a cell aggregates (`gold` is the same regime and seed's gold run).
fn run_metrics(
    r: &RunResult,
    gold: Option<&RunResult>,
    targets: &[String],
) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let pts = |x: f64| 100.0 * x;
    let mut sets = vec!["source_test".to_string()];
    sets.extend(targets.iter().cloned());
    let mut gains = Vec::new();
    for s in &sets {
        let (Some(&a), Some(&t)) = (r.accuracy.get(s), r.teacher_accuracy.get(s)) else {
            continue;
        };
        m.insert(format!("acc:{s}"), pts(a));
        m.insert(format!("gain:{s}"), pts(a - t));
        if s != "source_test" {
            gains.push(pts(a - t));
        }
        if let Some(g) = gold.and_then(|g| g.accuracy.get(s)) {
            if *g > t {
                m.insert(format!("pgr:{s}"), (a - t) / (g - t));
            }
        }
        if let Some(&h) = r.head_on_base.get(s) {
            m.insert(format!("head_on_base:{s}"), pts(h));
        }
        if let Some(&b) = r.base_probe_on_student.get(s) {
            m.insert(format!("base_probe_on_student:{s}"), pts(b));
        }
        if let Some(&b) = r.start_accuracy.get(s) {
            m.insert(format!("start:{s}"), pts(b));
        }
        if let Some(&b) = r.base_probe.get(s) {
            m.insert(format!("vs_base:{s}"), pts(a - b));
        }
    }
    if let Some(b) = &r.bias {
        super::bias::metrics(b, &mut m);
    }
    if let Some(aog) = mean(gains.iter().copied()) {
        m.insert("aog".into(), aog);
        if let Some(idg) = m.get("gain:source_test").copied() {
            m.insert("nts".into(), aog - (-idg).max(0.0));
        }
    }
    if let Some(v) = mean_over(&r.accuracy, targets) {
        m.insert("acc:mean_target".into(), v);
        if let Some(b) = mean_over(&r.base_probe, targets) {
            m.insert("transfer_change".into(), v - b);
        }
    }
    for (key, src) in [
        ("head_on_base:mean_target", &r.head_on_base),
        (
            "base_probe_on_student:mean_target",
            &r.base_probe_on_student,
        ),
        ("start:mean_target", &r.start_accuracy),
    ] {
        if let Some(v) = mean_over(src, targets) {
            m.insert(key.into(), v);
        }
    }
    let n_layers = r.drift.iter().map(|d| d.layer).max();
    if let Some(n) = n_layers {
        if let Some(d) = drift_at(r, n, targets, false) {
            m.insert("drift:final".into(), d);
        }
    }
    m.insert("steps_per_second".into(), r.train.steps_per_second);
    m.insert("train_seconds".into(), r.train.train_seconds);
    m
}

/// Spearman's ρ with a percentile bootstrap CI over the pairs (`b` resamples, seeded).
pub fn spearman_ci(
    x: &[f64],
    y: &[f64],
    b: usize,
    seed: u64,
) -> (Option<f64>, Option<(f64, f64)>, Option<f64>) {
    let Some(s) = spearman(x, y, 999, seed) else {
        return (None, None, None);
    };
    let n = x.len();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xb007);
    let mut rhos = Vec::with_capacity(b);
    for _ in 0..b {
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
        let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
        if let Some(r) = spearman(&xs, &ys, 0, 0) {
            rhos.push(r.rho);
        }
    }
    rhos.sort_by(|a, b| a.partial_cmp(b).expect("finite ρ"));
    let ci = (rhos.len() >= b / 2).then(|| {
        let q = |p: f64| rhos[((p * (rhos.len() - 1) as f64).round()) as usize];
        (q(0.025), q(0.975))
    });
    (Some(s.rho), ci, Some(s.p))
}

/// Summarise `runs` (in any order) for `targets`; `contrasts` are method pairs tested beside
/// the standard ones (naive − gold, each method − naive).
pub fn summarise(
    runs: &[RunResult],
    targets: &[String],
    contrasts: &[(String, String)],
) -> Summary {
    let (methods, regimes) = methods_and_regimes(runs);
    // Each run's outcome once (its paired tests are the costly part), for the table and the
    // points alike.
    let outcomes: Vec<super::pairs::RunOutcome> =
        runs.iter().map(|r| outcome_of(r, targets)).collect();
    let table = table(runs, &outcomes, targets, &methods, &regimes);
    let layers = drift_layers(runs);
    let points = run_points(runs, &outcomes, targets, &layers);
    let correlations = correlations(runs, targets, &layers);
    let best_layer = best_layer(&correlations);
    let best_layer_source_rho = best_layer
        .as_ref()
        .and_then(|b| source_rho(runs, targets, b.layer));
    let best_layer_by_regime = match &best_layer {
        None => Vec::new(),
        Some(b) => by_regime(runs, targets, &regimes, b.layer),
    };
    let target_accuracy_range = points.iter().map(|p| p.mean_target).fold(None, |acc, v| {
        Some(match acc {
            None => (v, v),
            Some((lo, hi)) => (f64::min(lo, v), f64::max(hi, v)),
        })
    });
    Summary {
        targets: targets.to_vec(),
        references: references(runs, targets),
        trajectories: trajectories(runs, targets, &methods, &regimes),
        methods,
        regimes,
        n_runs: runs.len(),
        table,
        correlations,
        best_layer,
        best_layer_source_rho,
        best_layer_by_regime,
        target_accuracy_range,
        trust: Vec::new(),
        pair_tests: super::pairs::pair_tests(runs, targets),
        contrasts: super::pairs::contrasts(runs, targets, contrasts),
        means_over_targets: super::pairs::means_over_targets(runs, targets),
        stratified: super::stratified::stratified(
            &points
                .iter()
                .map(|p| super::stratified::RunDrift {
                    regime: &p.regime,
                    method: &p.method,
                    drift: &p.drift,
                    transfer_change: p.transfer_change,
                })
                .collect::<Vec<_>>(),
            STRATIFIED_PERMUTATIONS,
            0,
        ),
        points,
    }
}

/// Methods and regimes in the order the runs first show them.
fn methods_and_regimes(runs: &[RunResult]) -> (Vec<String>, Vec<String>) {
    let mut methods: Vec<String> = Vec::new();
    let mut regimes: Vec<String> = Vec::new();
    for r in runs {
        if !methods.contains(&r.method) {
            methods.push(r.method.clone());
        }
        if !regimes.contains(&r.regime) {
            regimes.push(r.regime.clone());
        }
    }
    (methods, regimes)
}

/// The reference lines: one value per seed (the teacher and the base probe do not depend on
/// the regime; the first run of each seed gives them).
fn references(runs: &[RunResult], targets: &[String]) -> References {
    let mut sets = vec!["source_test".to_string()];
    sets.extend(targets.iter().cloned());
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort();
    seeds.dedup();
    let per_seed: Vec<&RunResult> = seeds
        .iter()
        .filter_map(|s| runs.iter().find(|r| r.seed == *s))
        .collect();
    let reference = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Option<Stat> {
        stat(&per_seed.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let mut references = References {
        teacher: BTreeMap::new(),
        base_probe: BTreeMap::new(),
        weak_label_accuracy: reference(&|r| Some(100.0 * r.weak_label_accuracy)),
    };
    for s in sets
        .iter()
        .chain(std::iter::once(&"mean_target".to_string()))
    {
        let get = |m: &BTreeMap<String, f64>| {
            if s == "mean_target" {
                mean_over(m, targets)
            } else {
                m.get(s).map(|v| 100.0 * v)
            }
        };
        if let Some(t) = reference(&|r| get(&r.teacher_accuracy)) {
            references.teacher.insert(s.clone(), t);
        }
        if let Some(t) = reference(&|r| get(&r.base_probe)) {
            references.base_probe.insert(s.clone(), t);
        }
    }
    references
}

/// Per regime and method: every metric's mean ± sd over seeds, and the runs' outcomes.
fn table(
    runs: &[RunResult],
    outcomes: &[super::pairs::RunOutcome],
    targets: &[String],
    methods: &[String],
    regimes: &[String],
) -> Vec<Cell> {
    let gold_of = |r: &RunResult| {
        runs.iter()
            .find(|g| g.method == "gold" && g.regime == r.regime && g.seed == r.seed)
    };
    let mut table = Vec::new();
    for reg in regimes {
        for m in methods {
            let (cell_runs, cell_outcomes): (Vec<&RunResult>, Vec<&str>) = runs
                .iter()
                .zip(outcomes)
                .filter(|(r, _)| &r.method == m && &r.regime == reg)
                .map(|(r, o)| (r, o.outcome.as_str()))
                .unzip();
            if cell_runs.is_empty() {
                continue;
            }
            let per_run: Vec<BTreeMap<String, f64>> = cell_runs
                .iter()
                .map(|r| run_metrics(r, gold_of(r), targets))
                .collect();
            let mut keys: Vec<&String> = per_run.iter().flat_map(|m| m.keys()).collect();
            keys.sort();
            keys.dedup();
            let metrics = keys
                .into_iter()
                .filter_map(|k| {
                    let v: Vec<f64> = per_run.iter().filter_map(|m| m.get(k).copied()).collect();
                    stat(&v).map(|s| (k.clone(), s))
                })
                .collect();
            let mut outcomes = BTreeMap::new();
            for o in cell_outcomes {
                *outcomes.entry(o.to_string()).or_insert(0) += 1;
            }
            table.push(Cell {
                method: m.clone(),
                regime: reg.clone(),
                metrics,
                outcomes,
            });
        }
    }
    table
}

/// Every layer any run measured drift at, ascending.
fn drift_layers(runs: &[RunResult]) -> Vec<usize> {
    let mut layers: Vec<usize> = runs
        .iter()
        .flat_map(|r| r.drift.iter().map(|d| d.layer))
        .collect();
    layers.sort();
    layers.dedup();
    layers
}

/// One point per run (sorted by id): mean target accuracy, transfer change, drift per layer.
fn run_points(
    runs: &[RunResult],
    outcomes: &[super::pairs::RunOutcome],
    targets: &[String],
    layers: &[usize],
) -> Vec<RunPoint> {
    let mut points: Vec<RunPoint> = runs
        .iter()
        .zip(outcomes)
        .filter_map(|(r, o)| {
            let mt = mean_over(&r.accuracy, targets)?;
            let b = mean_over(&r.base_probe, targets)?;
            Some(RunPoint {
                id: r.id.clone(),
                method: r.method.clone(),
                regime: r.regime.clone(),
                seed: r.seed,
                mean_target: mt,
                transfer_change: mt - b,
                drift: layers
                    .iter()
                    .filter_map(|&l| drift_at(r, l, targets, false).map(|d| (l, d)))
                    .collect(),
                outcome: o.outcome.clone(),
                outcome_causes: o.causes.clone(),
            })
        })
        .collect();
    points.sort_by(|a, b| a.id.cmp(&b.id));
    points
}

/// Spearman ρ of drift (1 − linear CKA, and cosine distance) against the transfer change over
/// all runs, per layer, with its bootstrap CI and permutation p.
fn correlations(runs: &[RunResult], targets: &[String], layers: &[usize]) -> Vec<LayerCorrelation> {
    let mut correlations = Vec::new();
    for (measure, cosine) in [("linear_cka", false), ("cosine", true)] {
        for &l in layers {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for r in runs {
                if let (Some(d), Some(t), Some(b)) = (
                    drift_at(r, l, targets, cosine),
                    mean_over(&r.accuracy, targets),
                    mean_over(&r.base_probe, targets),
                ) {
                    x.push(d);
                    y.push(t - b);
                }
            }
            let (rho, ci, p) = spearman_ci(&x, &y, 2000, l as u64);
            correlations.push(LayerCorrelation {
                layer: l,
                measure: measure.into(),
                rho,
                ci,
                p,
                n: x.len(),
            });
        }
    }
    correlations
}

/// The layer whose drift (1 − linear CKA) has the largest |ρ| with the transfer change.
fn best_layer(correlations: &[LayerCorrelation]) -> Option<LayerCorrelation> {
    correlations
        .iter()
        .filter(|c| c.measure == "linear_cka" && c.rho.is_some())
        .max_by(|a, b| {
            a.rho
                .unwrap()
                .abs()
                .partial_cmp(&b.rho.unwrap().abs())
                .expect("finite")
        })
        .cloned()
}

/// Spearman ρ, over the same runs, of drift at `layer` with the source-test accuracy.
fn source_rho(runs: &[RunResult], targets: &[String], layer: usize) -> Option<f64> {
    let (x, y): (Vec<f64>, Vec<f64>) = runs
        .iter()
        .filter_map(|r| {
            Some((
                drift_at(r, layer, targets, false)?,
                *r.accuracy.get("source_test")?,
            ))
        })
        .unzip();
    spearman(&x, &y, 0, 0).map(|s| s.rho)
}

/// Drift at `layer` against the transfer change within each regime: (regime, ρ, CI, n).
fn by_regime(
    runs: &[RunResult],
    targets: &[String],
    regimes: &[String],
    layer: usize,
) -> Vec<RegimeCorrelation> {
    regimes
        .iter()
        .map(|reg| {
            let (x, y): (Vec<f64>, Vec<f64>) = runs
                .iter()
                .filter(|r| &r.regime == reg)
                .filter_map(|r| {
                    Some((
                        drift_at(r, layer, targets, false)?,
                        mean_over(&r.accuracy, targets)? - mean_over(&r.base_probe, targets)?,
                    ))
                })
                .unzip();
            let (rho, ci, _) = spearman_ci(&x, &y, 2000, layer as u64);
            (reg.clone(), rho, ci, x.len())
        })
        .collect()
}

/// Per regime and method: source and mean target accuracy and final-layer drift against
/// step, mean ± sd over seeds.
fn trajectories(
    runs: &[RunResult],
    targets: &[String],
    methods: &[String],
    regimes: &[String],
) -> Vec<Trajectory> {
    let mut trajectories = Vec::new();
    for reg in regimes {
        for m in methods {
            let cell: Vec<&RunResult> = runs
                .iter()
                .filter(|r| &r.method == m && &r.regime == reg)
                .collect();
            if cell.is_empty() {
                continue;
            }
            let mut steps: Vec<usize> = cell
                .iter()
                .flat_map(|r| r.trajectory.iter().map(|p| p.step))
                .collect();
            steps.sort();
            steps.dedup();
            let at =
                |f: &dyn Fn(&super::run::TrajectoryPoint) -> Option<f64>| -> Vec<Option<Stat>> {
                    steps
                        .iter()
                        .map(|&s| {
                            let v: Vec<f64> = cell
                                .iter()
                                .filter_map(|r| r.trajectory.iter().find(|p| p.step == s))
                                .filter_map(f)
                                .collect();
                            stat(&v)
                        })
                        .collect()
                };
            trajectories.push(Trajectory {
                method: m.clone(),
                regime: reg.clone(),
                source: at(&|p| p.accuracy.get("source_test").map(|v| 100.0 * v)),
                target: at(&|p| mean_over(&p.accuracy, targets)),
                drift: at(&|p| {
                    let v: Vec<f64> = targets
                        .iter()
                        .filter_map(|t| p.drift.get(t).copied().flatten())
                        .collect();
                    (v.len() == targets.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                }),
                steps,
            });
        }
    }
    trajectories
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_mean_and_sample_sd() {
        // By hand: mean of 1, 2, 3, 4 = 2.5; sample variance = (2.25 + 0.25 + 0.25 + 2.25) / 3.
        let s = stat(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.n, 4);
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.sd.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let one = stat(&[7.0, f64::NAN]).unwrap();
        assert_eq!((one.n, one.sd), (1, None));
        assert!(stat(&[]).is_none());
    }

    #[test]
    fn spearman_ci_brackets_rho_and_flags_a_monotone_relation() {
        // y strictly decreasing in x: ρ = −1 exactly, every resample ρ = −1 (or undefined).
        let x: Vec<f64> = (0..12).map(|i| i as f64 * 0.1).collect();
        let y: Vec<f64> = x.iter().map(|v| -v * v).collect();
        let (rho, ci, p) = spearman_ci(&x, &y, 500, 3);
        assert!((rho.unwrap() + 1.0).abs() < 1e-12);
        let (lo, hi) = ci.unwrap();
        assert!((lo + 1.0).abs() < 1e-12 && (hi + 1.0).abs() < 1e-12);
        assert!(p.unwrap() < 0.01);
        // Unrelated: the interval contains 0.
        let z: Vec<f64> = (0..12).map(|i| ((i * 7) % 5) as f64).collect();
        let w: Vec<f64> = (0..12).map(|i| ((i * 3) % 4) as f64).collect();
        let (rho, ci, _) = spearman_ci(&z, &w, 500, 3);
        let (lo, hi) = ci.unwrap();
        assert!(lo <= rho.unwrap() && rho.unwrap() <= hi);
        assert!(lo < 0.0 && hi > 0.0, "{lo} {hi}");
        // Constant side: undefined, never NaN.
        assert_eq!(
            spearman_ci(&[1.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0], 10, 0),
            (None, None, None)
        );
    }
}
