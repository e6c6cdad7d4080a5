//! Linear probes: does the preference information survive in a layer, and does it transfer?
//!
//! - [`fit_pairwise`]: a Bradley–Terry probe — logistic regression without intercept on
//!   Δh = h(chosen) − h(rejected), every pair also used flipped (−Δh → 0); features scaled by
//!   their root mean square over the training Δh (the mean of the flipped set is exactly 0, so
//!   this is the standardisation); L2 strength C as in scikit-learn (linfa's α = 1/C).
//! - [`fit_label`]: a plain logistic probe (with intercept, standardised) on h for text stores
//!   with a 0/1 `label`.
//! - [`cross_validate`]: k-fold CV over a grid of C; folds are drawn over pairs (a pair and its
//!   flip are always in the same fold) from a seeded permutation.
//!
//! Conventions (reward-bench): a pair is correct only if its chosen reply scores strictly above
//! the rejected one (s = w·Δh > 0). The pairwise AUC is the ROC AUC of the flipped set, i.e.
//! P(sᵢ > −sⱼ) over all pairs (i, j), ties counting ½. Shapes: `(n_pairs, d)` for Δh,
//! `(n_examples, d)` for h.

mod bt;
pub mod run;
pub mod transfer;

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// A fitted linear probe: `score(h) = w · ((h − mean) ⊙ scale) + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbe {
    pub w: Array1<f64>,
    pub b: f64,
    pub mean: Array1<f64>,
    pub scale: Array1<f64>,
    /// The L2 strength it was fitted with (scikit-learn's C).
    pub c: f64,
}

impl LinearProbe {
    /// Scores of the rows of `x (n, d)`.
    pub fn scores(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        let z =
            (&x - &self.mean.view().insert_axis(Axis(0))) * self.scale.view().insert_axis(Axis(0));
        z.dot(&self.w) + self.b
    }

    /// The probe direction in the original (unscaled) feature space.
    pub fn direction(&self) -> Array1<f64> {
        &self.w * &self.scale
    }
}

/// Solver settings shared by every fit.
#[derive(Debug, Clone, Copy)]
pub struct Solver {
    pub max_iterations: u64,
    /// Gradient tolerance on the *mean* log-loss scale, as scikit-learn states its `tol`
    /// (linfa's objective sums over rows, so its tolerance is this times the number of rows).
    pub gradient_tolerance: f64,
}

/// The default stops like scikit-learn's L-BFGS default (gradient tolerance 1e-4), with up to
/// 500 iterations.
impl Default for Solver {
    fn default() -> Self {
        Self {
            max_iterations: 500,
            gradient_tolerance: 1e-4,
        }
    }
}

impl Solver {
    /// Tight settings for comparisons with a reference solver.
    pub fn tight() -> Self {
        Self {
            max_iterations: 5000,
            gradient_tolerance: 1e-10,
        }
    }
}

/// C must be positive and finite.
fn check_c(c: f64) -> Result<()> {
    if c > 0.0 && c.is_finite() {
        Ok(())
    } else {
        Err(Error::param(
            "c",
            format!("C must be positive and finite, got {c}"),
        ))
    }
}

fn logistic(
    x: Array2<f64>,
    y: Array1<bool>,
    c: f64,
    intercept: bool,
    solver: Solver,
) -> Result<(Array1<f64>, f64)> {
    check_c(c)?;
    let rows = x.nrows().max(1) as f64;
    let ds = Dataset::new(x, y);
    let fitted = LogisticRegression::default()
        .alpha(1.0 / c)
        .with_intercept(intercept)
        .max_iterations(solver.max_iterations)
        .gradient_tolerance(solver.gradient_tolerance * rows)
        .fit(&ds)
        .map_err(|e| Error::param("probe", format!("logistic regression failed: {e}")))?;
    let (mut w, mut b) = (fitted.params().clone(), fitted.intercept());
    if !fitted.labels().pos.class {
        w.mapv_inplace(|v| -v);
        b = -b;
    }
    Ok((w, b))
}

/// Per-feature scale 1 / RMS (1 where the RMS is 0).
fn rms_scale(x: ArrayView2<'_, f64>) -> Array1<f64> {
    let n = x.nrows().max(1) as f64;
    x.map_axis(Axis(0), |c| {
        let r = (c.dot(&c) / n).sqrt();
        if r > 0.0 {
            1.0 / r
        } else {
            1.0
        }
    })
}

/// Fit a Bradley–Terry probe on `delta (n_pairs, d)` with L2 strength `c`.
pub fn fit_pairwise(delta: ArrayView2<'_, f64>, c: f64, solver: Solver) -> Result<LinearProbe> {
    let d = delta.ncols();
    let scale = rms_scale(delta);
    let z = &delta * &scale.view().insert_axis(Axis(0));
    check_c(c)?;
    // linfa's objective on [z; −z] written over the n pairs (see `bt`): same minimiser, half
    // the rows; the tolerance stays on linfa's summed scale over the 2n stacked rows.
    let rows = (2 * delta.nrows()).max(1) as f64;
    let w = bt::fit_bt(
        z.view(),
        1.0 / c,
        solver.max_iterations,
        solver.gradient_tolerance * rows,
    )?;
    Ok(LinearProbe {
        w,
        b: 0.0,
        mean: Array1::zeros(d),
        scale,
        c,
    })
}

/// Fit a standardised logistic probe with intercept on `x (n, d)` and labels `y`.
pub fn fit_label(
    x: ArrayView2<'_, f64>,
    y: &[bool],
    c: f64,
    solver: Solver,
) -> Result<LinearProbe> {
    let mean = x
        .mean_axis(Axis(0))
        .ok_or_else(|| Error::param("probe", "no examples"))?;
    let centred = &x - &mean.view().insert_axis(Axis(0));
    let scale = rms_scale(centred.view());
    let z = &centred * &scale.view().insert_axis(Axis(0));
    let (w, b) = logistic(z, Array1::from(y.to_vec()), c, true, solver)?;
    Ok(LinearProbe {
        w,
        b,
        mean,
        scale,
        c,
    })
}

/// Share of pairs whose score is strictly positive.
pub fn pair_accuracy(s: ArrayView1<'_, f64>) -> f64 {
    s.iter().filter(|&&v| v > 0.0).count() as f64 / s.len().max(1) as f64
}

/// ROC AUC of `scores` for the boolean `labels` (Mann–Whitney, ties ½); None without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].partial_cmp(&scores[b]).expect("finite scores"));
    let (mut rank_sum, mut i) = (0.0, 0);
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos * n_neg) as f64)
}

/// Pairwise AUC: the AUC of the flipped set {sᵢ → 1} ∪ {−sᵢ → 0}.
pub fn pair_auc(s: ArrayView1<'_, f64>) -> Option<f64> {
    let mut scores: Vec<f64> = s.to_vec();
    scores.extend(s.iter().map(|v| -v));
    let labels: Vec<bool> = (0..scores.len()).map(|i| i < s.len()).collect();
    auc(&scores, &labels)
}

/// Accuracy of label predictions (score > 0 ⇒ 1).
pub fn label_accuracy(scores: &[f64], labels: &[bool]) -> f64 {
    scores
        .iter()
        .zip(labels)
        .filter(|(s, &l)| (**s > 0.0) == l)
        .count() as f64
        / labels.len().max(1) as f64
}

/// Fold of each of `n` items: a seeded permutation cut into `k` nearly equal folds.
pub fn folds(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut fold = vec![0; n];
    for (pos, &i) in perm.iter().enumerate() {
        fold[i] = pos * k / n.max(1);
    }
    fold
}

/// The data a probe is trained on: pairs (Δh) or labelled examples (h, y).
#[derive(Debug, Clone)]
pub enum ProbeData {
    Pairs(Array2<f64>),
    Labels(Array2<f64>, Vec<bool>),
}

impl ProbeData {
    pub fn len(&self) -> usize {
        match self {
            ProbeData::Pairs(d) => d.nrows(),
            ProbeData::Labels(x, _) => x.nrows(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pairs whose chosen and rejected features are identical in every row (e.g. the
    /// embedding layer under last-token pooling when both replies end in the same token):
    /// no probe can rank them, so an accuracy there means nothing.
    pub fn all_tied(&self) -> bool {
        match self {
            ProbeData::Pairs(d) => d.nrows() > 0 && d.iter().all(|v| *v == 0.0),
            ProbeData::Labels(..) => false,
        }
    }

    fn subset(&self, idx: &[usize]) -> ProbeData {
        match self {
            ProbeData::Pairs(d) => ProbeData::Pairs(d.select(Axis(0), idx)),
            ProbeData::Labels(x, y) => {
                ProbeData::Labels(x.select(Axis(0), idx), idx.iter().map(|&i| y[i]).collect())
            }
        }
    }

    /// Fit the probe this data calls for.
    pub fn fit(&self, c: f64, solver: Solver) -> Result<LinearProbe> {
        match self {
            ProbeData::Pairs(d) => fit_pairwise(d.view(), c, solver),
            ProbeData::Labels(x, y) => fit_label(x.view(), y, c, solver),
        }
    }

    /// (accuracy, AUC) of `probe` on this data.
    pub fn evaluate(&self, probe: &LinearProbe) -> (f64, Option<f64>) {
        match self {
            ProbeData::Pairs(d) => {
                let s = probe.scores(d.view());
                (pair_accuracy(s.view()), pair_auc(s.view()))
            }
            ProbeData::Labels(x, y) => {
                let s = probe.scores(x.view()).to_vec();
                (label_accuracy(&s, y), auc(&s, y))
            }
        }
    }

    /// The control task (Hewitt & Liang 2019): the same data with shuffled preference labels —
    /// each pair's orientation (or each example's label) re-drawn at random, seeded.
    pub fn control(&self, seed: u64) -> ProbeData {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_c0de);
        match self {
            ProbeData::Pairs(d) => {
                let mut d = d.clone();
                for mut row in d.axis_iter_mut(Axis(0)) {
                    if rng.random::<bool>() {
                        row.mapv_inplace(|v| -v);
                    }
                }
                ProbeData::Pairs(d)
            }
            ProbeData::Labels(x, y) => {
                let mut y = y.clone();
                y.shuffle(&mut rng);
                ProbeData::Labels(x.clone(), y)
            }
        }
    }
}

/// The outcome of cross-validation.
#[derive(Debug, Clone, PartialEq)]
pub struct CvResult {
    /// The selected C (best pooled held-out accuracy; ties go to the smaller C).
    pub c: f64,
    /// Pooled held-out accuracy and AUC at the selected C.
    pub accuracy: f64,
    pub auc: Option<f64>,
    /// Pooled held-out accuracy per C of the grid.
    pub per_c: Vec<(f64, f64)>,
}

/// Cross-fitted scores of a pairwise probe at one C: the folds of [`cross_validate`] (same
/// `k` and `seed`, so the same held-out sets), each fold's probe scoring its held-out pairs in
/// `delta` and the same pairs' rows in every matrix of `others` (another model's Δh of the same
/// pairs, row for row). Returns the scores on `delta` first, then one vector per `others`
/// entry: every pair scored by a probe that never saw it.
pub fn cross_fit<'a>(
    delta: ArrayView2<'a, f64>,
    others: &[ArrayView2<'a, f64>],
    c: f64,
    k: usize,
    seed: u64,
    solver: Solver,
) -> Result<Vec<Array1<f64>>> {
    let n = delta.nrows();
    if k < 2 || n < k {
        return Err(Error::param(
            "folds",
            format!("need 2 ≤ folds ≤ n (folds = {k}, n = {n})"),
        ));
    }
    if let Some(o) = others.iter().find(|o| o.dim() != delta.dim()) {
        return Err(Error::param(
            "others",
            format!(
                "every matrix scored with the cross-fitted probe needs the training shape {:?}, got {:?}",
                delta.dim(),
                o.dim()
            ),
        ));
    }
    let fold = folds(n, k, seed);
    let mut out = vec![Array1::<f64>::zeros(n); 1 + others.len()];
    for f in 0..k {
        let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
        let probe = fit_pairwise(delta.select(Axis(0), &train).view(), c, solver)?;
        for (m, o) in std::iter::once(&delta).chain(others).enumerate() {
            let s = probe.scores(o.select(Axis(0), &test).view());
            for (&i, v) in test.iter().zip(s.iter()) {
                out[m][i] = *v;
            }
        }
    }
    Ok(out)
}

/// k-fold cross-validation over `cs`; pairs are never split across folds.
pub fn cross_validate(
    data: &ProbeData,
    cs: &[f64],
    k: usize,
    seed: u64,
    solver: Solver,
) -> Result<CvResult> {
    let n = data.len();
    if k < 2 || n < k {
        return Err(Error::param(
            "folds",
            format!("need 2 ≤ folds ≤ n (folds = {k}, n = {n})"),
        ));
    }
    let fold = folds(n, k, seed);
    let mut best: Option<CvResult> = None;
    let mut per_c = Vec::new();
    let mut sorted = cs.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("finite C"));
    for &c in &sorted {
        // Pooled held-out scores, in original order.
        let mut scores = vec![0f64; n];
        for f in 0..k {
            let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
            let probe = data.subset(&train).fit(c, solver)?;
            let s = match data.subset(&test) {
                ProbeData::Pairs(d) => probe.scores(d.view()),
                ProbeData::Labels(x, _) => probe.scores(x.view()),
            };
            for (&i, v) in test.iter().zip(s.iter()) {
                scores[i] = *v;
            }
        }
        let (acc, a) = match data {
            ProbeData::Pairs(_) => {
                let s = Array1::from(scores);
                (pair_accuracy(s.view()), pair_auc(s.view()))
            }
            ProbeData::Labels(_, y) => (label_accuracy(&scores, y), auc(&scores, y)),
        };
        per_c.push((c, acc));
        if best.as_ref().is_none_or(|b| acc > b.accuracy) {
            best = Some(CvResult {
                c,
                accuracy: acc,
                auc: a,
                per_c: Vec::new(),
            });
        }
    }
    let mut best = best.ok_or_else(|| Error::param("c", "give at least one C"))?;
    best.per_c = per_c;
    Ok(best)
}
