//! The checks of `repdrift validate` as pure functions of activation matrices, so that each
//! can be tested on synthetic data where the right answer is known.
//!
//! Every matrix is `(n_examples, d)` f32, one per layer (HF `hidden_states` indexing). A
//! measure's *deviation* is its distance from the value it takes when nothing changed:
//! `1 − CKA` (linear and debiased), cosine distance, Procrustes distance, `1 − kNN overlap`.

use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::knn::mutual_knn_overlap;
use crate::metrics::pair_metrics;
use crate::metrics::permutation::permutation_null;

/// The measures validate checks, in table order.
pub const MEASURES: [&str; 5] = [
    "linear_cka",
    "debiased_cka",
    "cosine_distance",
    "procrustes_distance",
    "knn_overlap",
];

/// The five deviations of one (x, y) pair; None where a measure is undefined.
pub type Deviations = [Option<f64>; 5];

fn merr(what: &str) -> impl FnOnce(crate::metrics::MetricError) -> Error + '_ {
    move |source| Error::Metric {
        what: what.to_string(),
        cause: source,
    }
}

/// Deviations of `y` from `x` (kNN with `k`, when n > k).
pub fn deviations(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>, k: usize) -> Result<Deviations> {
    let m = pair_metrics(x, y).map_err(merr("deviations"))?;
    let knn = mutual_knn_overlap(x, y, k).map_err(merr("kNN overlap"))?;
    Ok([
        m.linear_cka.value.map(|v| 1.0 - v),
        m.debiased_cka.value.map(|v| 1.0 - v),
        m.cosine_distance.value,
        m.procrustes_distance.value,
        knn.value.map(|v| 1.0 - v),
    ])
}

/// A seeded standard-normal matrix (Box–Muller).
pub fn gaussian(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    })
}

/// A random d × d orthogonal matrix (QR of a Gaussian matrix, signs fixed so the draw is
/// Haar-distributed).
pub fn random_rotation(d: usize, seed: u64) -> Result<Array2<f64>> {
    use ndarray_linalg::QR;
    let mut rng = StdRng::seed_from_u64(seed);
    let g = gaussian(d, d, &mut rng);
    let (q, r) = g
        .qr()
        .map_err(|e| Error::param("rotation", format!("QR failed: {e}")))?;
    let signs = r.diag().mapv(|v| if v < 0.0 { -1.0 } else { 1.0 });
    Ok(&q * &signs.insert_axis(Axis(0)))
}

fn transform(x: ArrayView2<'_, f32>, m: &Array2<f64>) -> Array2<f32> {
    x.mapv(|v| v as f64).dot(m).mapv(|v| v as f32)
}

/// One row of the identity-and-invariance table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvarianceRow {
    /// `identity`, `rotation`, `isotropic scaling ×3.7`, `anisotropic scaling`.
    pub transform: String,
    pub measure: String,
    /// Whether the theory says the measure is unchanged by the transform.
    pub invariant: bool,
    /// Invariant: the deviation at the layer nearest its tolerance; else the smallest.
    pub observed: Option<f64>,
    /// The largest deviation that passes as "unchanged" at that layer (kNN: the near-tie
    /// allowance).
    #[serde(default)]
    pub tolerance: f64,
    pub pass: bool,
}

/// Tolerance for "unchanged" (f32 inputs, f64 arithmetic).
pub const INVARIANT_TOL: f64 = 1e-5;
/// The least deviation that counts as "changed".
pub const CHANGED_MIN: f64 = 1e-3;

/// Which measures each transform leaves unchanged (theory): CKA and Procrustes are invariant
/// to rotations and isotropic scaling, not to anisotropic scaling; paired cosine distance is
/// invariant to scaling (isotropic only, per row) but not to rotation (it compares the same
/// basis); kNN overlap (cosine neighbours) to rotation and isotropic scaling.
fn expected_invariant(transform: &str, measure: &str) -> bool {
    match (transform, measure) {
        ("identity", _) => true,
        ("rotation", "cosine_distance") => false,
        ("rotation", _) => true,
        ("isotropic scaling ×3.7", _) => true,
        ("anisotropic scaling", "knn_overlap") => false,
        ("anisotropic scaling", _) => false,
        _ => unreachable!("known transform"),
    }
}

/// Gap below which two cosine similarities count as a near-tie: f32 rounding of a rotated
/// matrix moves cosines by about this much.
pub const TIE_GAP: f64 = 1e-6;

/// Rows of `x (n, d)` whose k-th and (k+1)-th nearest neighbours (cosine, self excluded) are
/// a near-tie (gap < [`TIE_GAP`]): there, rounding alone can swap one neighbour, so kNN
/// overlap is invariant only up to one swap per such row.
pub fn near_ties(x: ArrayView2<'_, f32>, k: usize) -> usize {
    let mut m = x.mapv(|v| v as f64);
    for mut row in m.axis_iter_mut(Axis(0)) {
        let n = row.dot(&row).sqrt();
        if n > 0.0 {
            row /= n;
        }
    }
    let sims = m.dot(&m.t());
    let n = m.nrows();
    if n <= k + 1 {
        return 0;
    }
    (0..n)
        .filter(|&i| {
            let mut r: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| sims[[i, j]]).collect();
            r.sort_by(|a, b| b.partial_cmp(a).expect("finite"));
            r[k - 1] - r[k] < TIE_GAP
        })
        .count()
}

/// The identity and invariance checks on every layer of `layers`. kNN overlap, a discrete
/// measure, may move by one neighbour per near-tie row under a rotation computed in f32
/// (see [`near_ties`]); its allowance is that many swaps, and the row says so.
pub fn invariances(layers: &[Array2<f32>], k: usize, seed: u64) -> Result<Vec<InvarianceRow>> {
    let d = layers[0].ncols();
    let q = random_rotation(d, seed)?;
    let iso = Array2::<f64>::eye(d) * 3.7;
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa5a5);
    // Column scales e^{z}, z ~ N(0, 1): a strong anisotropy.
    let z = gaussian(1, d, &mut rng);
    let aniso = Array2::from_diag(&z.row(0).mapv(f64::exp));
    let transforms: [(&str, Option<&Array2<f64>>); 4] = [
        ("identity", None),
        ("rotation", Some(&q)),
        ("isotropic scaling ×3.7", Some(&iso)),
        ("anisotropic scaling", Some(&aniso)),
    ];
    // kNN's allowance: one neighbour swap per near-tie row, at the worst layer.
    let n = layers[0].nrows();
    let knn_tol: Vec<f64> = layers
        .iter()
        .map(|x| INVARIANT_TOL.max(near_ties(x.view(), k) as f64 / (n * k) as f64))
        .collect();
    let mut out = Vec::new();
    for (name, m) in transforms {
        let mut per_layer: Vec<Deviations> = Vec::new();
        for x in layers {
            // Layers whose rows are all equal (e.g. a constant embedding row) are undefined
            // for CKA; they are skipped by the None values.
            let y = match m {
                None => x.clone(),
                Some(m) => transform(x.view(), m),
            };
            per_layer.push(deviations(x.view(), y.view(), k)?);
        }
        for (mi, measure) in MEASURES.iter().enumerate() {
            let inv = expected_invariant(name, measure);
            // (layer, |deviation|, tolerance at that layer).
            let vals: Vec<(usize, f64, f64)> = per_layer
                .iter()
                .enumerate()
                .filter_map(|(l, d)| {
                    let tol = if *measure == "knn_overlap" && name != "identity" {
                        knn_tol[l]
                    } else {
                        INVARIANT_TOL
                    };
                    d[mi].map(|v| (l, v.abs(), tol))
                })
                .collect();
            // Invariant: the layer closest to (or past) its tolerance; else the least change.
            let worst = if inv {
                vals.iter()
                    .copied()
                    .max_by(|a, b| (a.1 / a.2).partial_cmp(&(b.1 / b.2)).expect("finite"))
            } else {
                vals.iter()
                    .copied()
                    .min_by(|a, b| a.1.partial_cmp(&b.1).expect("finite"))
            };
            let pass = match worst {
                None => false,
                Some((_, v, tol)) if inv => v <= tol,
                Some((_, v, _)) => v >= CHANGED_MIN,
            };
            out.push(InvarianceRow {
                transform: name.to_string(),
                measure: measure.to_string(),
                invariant: inv,
                observed: worst.map(|w| w.1),
                tolerance: worst.map_or(INVARIANT_TOL, |w| w.2),
                pass,
            });
        }
    }
    Ok(out)
}

/// One layer of the null check: the base against itself on two disjoint halves of the
/// examples (rows unpaired).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NullRow {
    pub layer: usize,
    pub n: usize,
    pub linear_cka: Option<f64>,
    pub linear_lo: Option<f64>,
    pub linear_hi: Option<f64>,
    pub debiased_cka: Option<f64>,
    pub debiased_lo: Option<f64>,
    pub debiased_hi: Option<f64>,
    /// The debiased value's two-sided permutation p-value.
    pub debiased_p: Option<f64>,
}

/// The null check on every layer: the examples shuffled (seeded) and split into halves whose
/// rows are paired at random, so that any structure in the file's order cannot pose as
/// similarity.
pub fn null_halves(layers: &[Array2<f32>], permutations: usize, seed: u64) -> Result<Vec<NullRow>> {
    use rand::seq::SliceRandom;
    let n = layers[0].nrows();
    let h = n / 2;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x4a11));
    let mut out = Vec::new();
    for (l, x) in layers.iter().enumerate() {
        let a = x.select(Axis(0), &order[..h]);
        let b = x.select(Axis(0), &order[h..2 * h]);
        let (a, b) = (a.view(), b.view());
        let m = pair_metrics(a, b).map_err(merr("null halves"))?;
        let bands =
            permutation_null(a, b, permutations, seed ^ l as u64).map_err(merr("null halves"))?;
        let deb = m.debiased_cka.value;
        let db = bands.debiased_cka;
        // Two-sided p-value: band.p is one-sided (perm ≥ obs); the other side is
        // 1 − p + 1/(B + 1) (perm ≤ obs, ties counted on both).
        let p = db.and_then(|band| band.p).map(|p1| {
            let other = 1.0 - p1 + 2.0 / (permutations as f64 + 1.0);
            (2.0 * p1.min(other)).min(1.0)
        });
        out.push(NullRow {
            layer: l,
            n: h,
            linear_cka: m.linear_cka.value,
            linear_lo: bands.linear_cka.map(|b| b.lo),
            linear_hi: bands.linear_cka.map(|b| b.hi),
            debiased_cka: deb,
            debiased_lo: db.map(|b| b.lo),
            debiased_hi: db.map(|b| b.hi),
            debiased_p: p,
        });
    }
    Ok(out)
}

/// Whether a sequence is non-decreasing up to `tol`.
pub fn monotone(v: &[f64], tol: f64) -> bool {
    v.windows(2).all(|w| w[1] >= w[0] - tol)
}

/// Linear CKA between every layer of `xs` and every layer of `ys`, through the centred n × n
/// Gram matrices (`cka[i][j]`: layer i of xs against layer j of ys).
pub fn cross_cka(xs: &[Array2<f32>], ys: &[Array2<f32>]) -> Vec<Vec<Option<f64>>> {
    let gram = |x: &Array2<f32>| {
        let mut m = x.mapv(|v| v as f64);
        let mean = m.mean_axis(Axis(0)).expect("n > 0");
        m -= &mean.insert_axis(Axis(0));
        let k = m.dot(&m.t());
        let f = k.iter().map(|v| v * v).sum::<f64>().sqrt();
        (k, f)
    };
    let gx: Vec<_> = xs.iter().map(gram).collect();
    let gy: Vec<_> = ys.iter().map(gram).collect();
    gx.iter()
        .map(|(k, fk)| {
            gy.iter()
                .map(|(l, fl)| {
                    (*fk > 0.0 && *fl > 0.0).then(|| {
                        let s: f64 = k.iter().zip(l.iter()).map(|(a, b)| a * b).sum();
                        (s / (fk * fl)).clamp(0.0, 1.0)
                    })
                })
                .collect()
        })
        .collect()
}

/// Kornblith et al.'s layer-matching accuracy over `rows`: the share of layers i whose most
/// similar layer of the other model is i itself (ties count as a miss).
pub fn matching_accuracy(cka: &[Vec<Option<f64>>], rows: &[usize]) -> Option<f64> {
    let mut hits = 0usize;
    let mut total = 0usize;
    for &i in rows {
        let row = &cka[i];
        let Some(own) = row[i] else { continue };
        total += 1;
        let beaten = row
            .iter()
            .enumerate()
            .any(|(j, v)| j != i && v.is_some_and(|v| v >= own));
        if !beaten {
            hits += 1;
        }
    }
    (total > 0).then(|| hits as f64 / total as f64)
}

/// In a model's own cross-layer matrix: the share of rows i where similarity falls with |i − j|
/// on both sides (strictly monotone), the share where the most similar other layer is a
/// neighbour (|i − j| = 1), and the ordering agreement (of two layers on the same side of i,
/// the nearer is the more similar).
///
/// Layers where CKA is undefined (all rows equal, e.g. the embedding of a last token that every
/// example shares) are left out of both the rows and the distances.
pub fn decay_with_distance(cka: &[Vec<Option<f64>>]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let keep: Vec<usize> = (0..cka.len()).filter(|&i| cka[i][i].is_some()).collect();
    let sub: Vec<Vec<Option<f64>>> = keep
        .iter()
        .map(|&i| keep.iter().map(|&j| cka[i][j]).collect())
        .collect();
    let cka = &sub;
    let n = cka.len();
    let (mut mono, mut near, mut total) = (0usize, 0usize, 0usize);
    for i in 0..n {
        let row: Vec<Option<f64>> = cka[i].clone();
        if row.iter().any(|v| v.is_none()) {
            continue;
        }
        let r: Vec<f64> = row.into_iter().map(|v| v.expect("checked")).collect();
        total += 1;
        let right = r[i..].windows(2).all(|w| w[1] < w[0]);
        let left = r[..=i].windows(2).all(|w| w[0] < w[1]);
        if right && left {
            mono += 1;
        }
        let best = (0..n)
            .filter(|&j| j != i)
            .max_by(|&a, &b| r[a].partial_cmp(&r[b]).expect("finite"));
        if best.is_some_and(|j| j.abs_diff(i) == 1) {
            near += 1;
        }
    }
    if total == 0 {
        return (None, None, None);
    }
    // Ordering agreement: over rows i and pairs of other layers j, j' on the same side of i
    // at different distances, the share where the nearer one is the more similar.
    let (mut agree, mut pairs) = (0usize, 0usize);
    for (i, row) in cka.iter().enumerate() {
        for j in 0..n {
            for jj in 0..n {
                let same_side = (j < i && jj < i) || (j > i && jj > i);
                if !same_side || j.abs_diff(i) >= jj.abs_diff(i) {
                    continue;
                }
                if let (Some(a), Some(b)) = (row[j], row[jj]) {
                    pairs += 1;
                    if a > b {
                        agree += 1;
                    }
                }
            }
        }
    }
    (
        Some(mono as f64 / total as f64),
        Some(near as f64 / total as f64),
        (pairs > 0).then(|| agree as f64 / pairs as f64),
    )
}

/// The spread of the CKAs and Procrustes at sample size m: their standard deviation over `b`
/// random subsets of m of the n rows, drawn without replacement (use m ≤ n / 2 so that the
/// subsets resemble independent samples).
pub fn subsample_sd(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    m: usize,
    b: usize,
    seed: u64,
) -> Result<[Option<f64>; 3]> {
    use rand::seq::SliceRandom;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vals: [Vec<f64>; 3] = Default::default();
    let mut all: Vec<usize> = (0..x.nrows()).collect();
    for _ in 0..b {
        all.shuffle(&mut rng);
        let idx = &all[..m];
        let xs = x.select(Axis(0), idx);
        let ys = y.select(Axis(0), idx);
        let p = pair_metrics(xs.view(), ys.view()).map_err(merr("subsample"))?;
        for (slot, v) in vals.iter_mut().zip([
            p.linear_cka.value,
            p.debiased_cka.value,
            p.procrustes_distance.value,
        ]) {
            if let Some(v) = v {
                slot.push(v);
            }
        }
    }
    let sd = |v: &Vec<f64>| {
        (v.len() >= 2).then(|| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
        })
    };
    Ok([sd(&vals[0]), sd(&vals[1]), sd(&vals[2])])
}

/// The two-sided binomial 95 % band of an accuracy at chance (0.5) for `n` pairs, Bonferroni-
/// corrected for `tests` simultaneous tests (normal approximation).
pub fn chance_band(n: usize, tests: usize) -> (f64, f64) {
    let z = z_two_sided(0.05 / tests.max(1) as f64);
    let half = z * (0.25 / n as f64).sqrt();
    (0.5 - half, 0.5 + half)
}

/// The standard-normal quantile z with P(|Z| > z) = alpha (Acklam's rational approximation,
/// relative error below 1.2e-9).
pub fn z_two_sided(alpha: f64) -> f64 {
    inv_norm(1.0 - alpha / 2.0)
}

// The coefficients as Acklam published them.
#[allow(clippy::excessive_precision)]
fn inv_norm(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383577518672690e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -inv_norm(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let scale = Array2::from_shape_fn((1, d), |(_, j)| 1.0 + j as f64 * 0.2);
        (gaussian(n, d, &mut rng) * &scale).mapv(|v| v as f32)
    }

    #[test]
    fn rotation_is_orthogonal() {
        let q = random_rotation(7, 1).unwrap();
        let e = q.t().dot(&q) - Array2::<f64>::eye(7);
        assert!(e.iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn invariance_claims_hold_on_random_data() {
        let layers = vec![data(60, 12, 1), data(60, 12, 2)];
        let rows = invariances(&layers, 5, 3).unwrap();
        for r in &rows {
            assert!(r.pass, "{r:?}");
        }
    }

    #[test]
    fn z_quantiles_match_tables() {
        // Standard normal tables: z_{0.975} = 1.959964, z_{0.995} = 2.575829.
        assert!((z_two_sided(0.05) - 1.959964).abs() < 1e-6);
        assert!((z_two_sided(0.01) - 2.575829).abs() < 1e-6);
    }

    #[test]
    fn matching_accuracy_counts_ties_as_misses() {
        let m = vec![vec![Some(1.0), Some(0.5)], vec![Some(0.7), Some(0.7)]];
        assert_eq!(matching_accuracy(&m, &[0, 1]), Some(0.5));
    }

    #[test]
    fn decay_finds_neighbours() {
        let m: Vec<Vec<Option<f64>>> = (0..5)
            .map(|i: i32| {
                (0..5)
                    .map(|j: i32| Some(1.0 / (1.0 + (i - j).abs() as f64)))
                    .collect()
            })
            .collect();
        assert_eq!(decay_with_distance(&m), (Some(1.0), Some(1.0), Some(1.0)));
    }

    #[test]
    fn null_halves_of_independent_rows_stay_in_band_for_debiased_cka() {
        let layers = vec![data(80, 30, 7)];
        let r = null_halves(&layers, 300, 0).unwrap();
        let row = &r[0];
        assert!(row.debiased_lo.unwrap() < 0.0 && row.debiased_hi.unwrap() > 0.0);
        assert!(
            row.linear_lo.unwrap() > 0.1,
            "linear CKA is biased upward at n < d"
        );
    }
}
