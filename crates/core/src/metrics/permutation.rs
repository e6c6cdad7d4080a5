//! Permutation nulls: what each measure reads when the student's rows are shuffled against the
//! base's, so that row i of one no longer describes the example of row i of the other.
//!
//! For `x (n, d₁)`, `y (n, d₂)` the engine works in example space. With column-centred
//! `X_c`, `Y_c` and their Gram matrices `K = X_c X_cᵀ`, `L = Y_c Y_cᵀ` (n × n, computed once),
//! a permutation π of Y's rows gives
//!
//! - linear CKA: `Σᵢⱼ Kᵢⱼ L_{π(i)π(j)} / (‖K‖_F ‖L‖_F)` (= ‖X_cᵀ P Y_c‖²_F / (‖X_cᵀX_c‖_F ‖Y_cᵀY_c‖_F));
//! - debiased CKA: Song et al.'s unbiased HSIC from `K̃`, `L̃` (zeroed diagonals):
//!   `tr(K̃ L̃_π)`, `1ᵀK̃1`, `1ᵀL̃1` and `1ᵀK̃ L̃_π 1 = Σᵢ (K̃1)ᵢ (L̃1)_{π(i)}`;
//! - Procrustes: `2 − 2 ‖A_xᵀ P A_y‖_* / √(tr K · tr L)` with the thin factors `A = U Σ` of
//!   the centred data's SVD (`X_c = U Σ Vᵀ`), so each permutation is one r × r SVD
//!   (r = min(n, d)) instead of a d × d one; only for r ≤ [`PROCRUSTES_MAX_RANK`];
//! - cosine distance and norm ratio: means over i of an n × n table read at `(i, π(i))`.
//!
//! So one permutation costs O(n²) (O(n r²) for Procrustes) whatever the width. The identity
//! permutation reproduces the accumulator's values (a test checks it), so the null and the
//! observed value are computed by the same algebra. Bands are the 2.5th and 97.5th
//! percentiles of the permuted values; p-values are one-sided in the direction of "more
//! alike than chance" — `(1 + #{perm ≥ obs}) / (B + 1)` for the CKAs,
//! `(1 + #{perm ≤ obs}) / (B + 1)` for the distances — and two-sided about the permutation
//! mean for the norm ratio.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::SVD;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::bootstrap::{centred_pair, percentile};
use super::MetricError;

/// Procrustes' permutation null costs O(n r²) per permutation (r = min(n, d)); above this r
/// it is skipped.
pub const PROCRUSTES_MAX_RANK: usize = 256;

/// The permutation null of one measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NullBand {
    /// 2.5th percentile of the permuted values.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
    /// Mean of the permuted values.
    pub mean: f64,
    /// Permutation p-value of the observed value (see the module docs for the direction).
    pub p: Option<f64>,
}

/// Permutation nulls of the measures (None where the measure is undefined or skipped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NullBands {
    pub linear_cka: Option<NullBand>,
    pub debiased_cka: Option<NullBand>,
    pub cosine_distance: Option<NullBand>,
    pub procrustes_distance: Option<NullBand>,
    pub norm_ratio: Option<NullBand>,
    /// The number of permutations.
    pub permutations: usize,
}

impl NullBands {
    /// The five bands in column order (linear CKA, debiased CKA, cosine, Procrustes, norm
    /// ratio).
    pub fn measures(&self) -> [Option<NullBand>; 5] {
        [
            self.linear_cka,
            self.debiased_cka,
            self.cosine_distance,
            self.procrustes_distance,
            self.norm_ratio,
        ]
    }
}

/// Values of the five measures under one row pairing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Paired {
    pub linear_cka: Option<f64>,
    pub debiased_cka: Option<f64>,
    pub cosine_distance: Option<f64>,
    pub procrustes_distance: Option<f64>,
    pub norm_ratio: Option<f64>,
}

/// The precomputed example-space tables of one (x, y) pair.
pub struct Engine {
    n: usize,
    k: Array2<f64>,
    l: Array2<f64>,
    k_fro: f64,
    l_fro: f64,
    // Unbiased-HSIC pieces.
    kt: Array2<f64>,
    lt: Array2<f64>,
    kt_rows: Array1<f64>,
    lt_rows: Array1<f64>,
    kt_sum: f64,
    lt_sum: f64,
    hsic_kk: f64,
    hsic_ll: f64,
    // Procrustes: the thin factors U Σ of X_c and Y_c, and √(tr K tr L).
    factors: Option<(Array2<f64>, Array2<f64>)>,
    trace_norm: f64,
    // cosine: 1 − cos(xᵢ, yⱼ) (None: widths differ or a zero row); ratio: ‖yⱼ‖ / ‖xᵢ‖ parts.
    cos: Option<Array2<f64>>,
    x_norm: Array1<f64>,
    y_norm: Array1<f64>,
}

/// `U Σ` of the thin SVD of `m (n, d)`: `(n, min(n, d))`, with `A Aᵀ = m mᵀ`.
fn thin_factor(m: &Array2<f64>) -> Result<Array2<f64>, MetricError> {
    let r = m.nrows().min(m.ncols());
    let (u, s, _) = m
        .svd(true, false)
        .map_err(|e| MetricError::Linalg(e.to_string()))?;
    let u = u.expect("asked for U");
    Ok(&u.slice(ndarray::s![.., ..r]) * &s.slice(ndarray::s![..r]).insert_axis(Axis(0)))
}

fn hsic_u(n: f64, tr_kl: f64, sum_k: f64, sum_l: f64, one_kl_one: f64) -> f64 {
    (tr_kl + sum_k * sum_l / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * one_kl_one)
        / (n * (n - 3.0))
}

fn zero_diag(m: &Array2<f64>) -> Array2<f64> {
    let mut t = m.clone();
    t.diag_mut().fill(0.0);
    t
}

/// `Σᵢⱼ aᵢⱼ b_{π(i)π(j)}`.
fn permuted_inner(a: &Array2<f64>, b: &Array2<f64>, perm: &[usize]) -> f64 {
    let mut s = 0.0;
    for (i, &pi) in perm.iter().enumerate() {
        let ar = a.row(i);
        let br = b.row(pi);
        for (j, &pj) in perm.iter().enumerate() {
            s += ar[j] * br[pj];
        }
    }
    s
}

impl Engine {
    /// Build the tables of `x (n, d₁)`, `y (n, d₂)`; needs n ≥ 2.
    pub fn new(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<Self, MetricError> {
        let n = x.nrows();
        let (xc, yc) = centred_pair(x, y)?;
        let k = xc.dot(&xc.t());
        let l = yc.dot(&yc.t());
        let fro = |m: &Array2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
        let (kt, lt) = (zero_diag(&k), zero_diag(&l));
        let (kt_rows, lt_rows) = (kt.sum_axis(Axis(1)), lt.sum_axis(Axis(1)));
        let (kt_sum, lt_sum) = (kt_rows.sum(), lt_rows.sum());
        let nf = n as f64;
        let (hsic_kk, hsic_ll) = if n >= 4 {
            (
                hsic_u(
                    nf,
                    kt.iter().map(|v| v * v).sum(),
                    kt_sum,
                    kt_sum,
                    kt_rows.dot(&kt_rows),
                ),
                hsic_u(
                    nf,
                    lt.iter().map(|v| v * v).sum(),
                    lt_sum,
                    lt_sum,
                    lt_rows.dot(&lt_rows),
                ),
            )
        } else {
            (0.0, 0.0)
        };
        let (trk, trl) = (k.diag().sum(), l.diag().sum());
        let rank = |m: &Array2<f64>| m.nrows().min(m.ncols());
        let factors = if rank(&xc).max(rank(&yc)) <= PROCRUSTES_MAX_RANK && trk > 0.0 && trl > 0.0 {
            Some((thin_factor(&xc)?, thin_factor(&yc)?))
        } else {
            None
        };
        let raw = |v: ArrayView2<'_, f32>| v.mapv(|a| a as f64);
        let (xr, yr) = (raw(x), raw(y));
        let norms = |m: &Array2<f64>| m.map_axis(Axis(1), |r| r.dot(&r).sqrt());
        let (x_norm, y_norm) = (norms(&xr), norms(&yr));
        let cos = (x.ncols() == y.ncols()
            && x_norm.iter().all(|&v| v > 0.0)
            && y_norm.iter().all(|&v| v > 0.0))
        .then(|| {
            let mut c = xr.dot(&yr.t());
            for ((i, j), v) in c.indexed_iter_mut() {
                *v = 1.0 - *v / (x_norm[i] * y_norm[j]);
            }
            c
        });
        Ok(Self {
            n,
            k_fro: fro(&k),
            l_fro: fro(&l),
            k,
            l,
            kt,
            lt,
            kt_rows,
            lt_rows,
            kt_sum,
            lt_sum,
            hsic_kk,
            hsic_ll,
            factors,
            trace_norm: (trk * trl).sqrt(),
            cos,
            x_norm,
            y_norm,
        })
    }

    /// The measures with row i of x paired with row `perm[i]` of y.
    pub fn paired(&self, perm: &[usize]) -> Result<Paired, MetricError> {
        let n = self.n;
        assert_eq!(perm.len(), n);
        let nf = n as f64;
        let mut out = Paired::default();
        if n >= 2 && self.k_fro > 0.0 && self.l_fro > 0.0 {
            let kl = permuted_inner(&self.k, &self.l, perm);
            out.linear_cka = Some((kl / (self.k_fro * self.l_fro)).clamp(0.0, 1.0));
        }
        if n >= 4 && self.hsic_kk > 0.0 && self.hsic_ll > 0.0 {
            let tr = permuted_inner(&self.kt, &self.lt, perm);
            let one: f64 = perm
                .iter()
                .enumerate()
                .map(|(i, &p)| self.kt_rows[i] * self.lt_rows[p])
                .sum();
            let xy = hsic_u(nf, tr, self.kt_sum, self.lt_sum, one);
            out.debiased_cka = Some(xy / (self.hsic_kk * self.hsic_ll).sqrt());
        }
        if let Some((ax, ay)) = &self.factors {
            let c = ax.t().dot(&ay.select(Axis(0), perm));
            let nuc = super::nuclear_norm(&c)?;
            out.procrustes_distance = Some((2.0 - 2.0 * nuc / self.trace_norm).clamp(0.0, 2.0));
        }
        if let Some(c) = &self.cos {
            out.cosine_distance = Some(
                perm.iter()
                    .enumerate()
                    .map(|(i, &p)| c[[i, p]])
                    .sum::<f64>()
                    / nf,
            );
        }
        if self.x_norm.iter().all(|&v| v > 0.0) {
            out.norm_ratio = Some(
                perm.iter()
                    .enumerate()
                    .map(|(i, &p)| self.y_norm[p] / self.x_norm[i])
                    .sum::<f64>()
                    / nf,
            );
        }
        Ok(out)
    }
}

/// Which way "more alike than chance" lies for a measure.
#[derive(Clone, Copy)]
enum Side {
    High,
    Low,
    TwoSided,
}

fn band(mut v: Vec<f64>, obs: Option<f64>, side: Side) -> Option<NullBand> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let b = v.len() as f64;
    let mean = v.iter().sum::<f64>() / b;
    // A hair of tolerance so that values equal to the observed one up to rounding count.
    let tol = 1e-12;
    let p = obs.map(|o| {
        let extreme = v
            .iter()
            .filter(|&&p| match side {
                Side::High => p >= o - tol,
                Side::Low => p <= o + tol,
                Side::TwoSided => (p - mean).abs() >= (o - mean).abs() - tol,
            })
            .count();
        (1 + extreme) as f64 / (b + 1.0)
    });
    Some(NullBand {
        lo: percentile(&v, 0.025),
        hi: percentile(&v, 0.975),
        mean,
        p,
    })
}

/// The permutation nulls of `x (n, d₁)` against `y (n, d₂)` over `b` seeded permutations,
/// with p-values of the observed (identity) pairing.
pub fn permutation_null(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    b: usize,
    seed: u64,
) -> Result<NullBands, MetricError> {
    let e = Engine::new(x, y)?;
    let n = e.n;
    let obs = e.paired(&(0..n).collect::<Vec<_>>())?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut perm: Vec<usize> = (0..n).collect();
    let mut vals: [Vec<f64>; 5] = Default::default();
    for _ in 0..b {
        perm.shuffle(&mut rng);
        let p = e.paired(&perm)?;
        for (slot, v) in vals.iter_mut().zip([
            p.linear_cka,
            p.debiased_cka,
            p.cosine_distance,
            p.procrustes_distance,
            p.norm_ratio,
        ]) {
            if let Some(v) = v {
                slot.push(v);
            }
        }
    }
    let [a, bb, c, d, r] = vals;
    Ok(NullBands {
        linear_cka: band(a, obs.linear_cka, Side::High),
        debiased_cka: band(bb, obs.debiased_cka, Side::High),
        cosine_distance: band(c, obs.cosine_distance, Side::Low),
        procrustes_distance: band(d, obs.procrustes_distance, Side::Low),
        norm_ratio: band(r, obs.norm_ratio, Side::TwoSided),
        permutations: b,
    })
}

#[cfg(test)]
mod tests {
    //! Truth: the streaming accumulator ([`super::super::pair_metrics`], itself checked
    //! against the NumPy float64 reference in `tests/integration/metrics.rs`) on explicitly
    //! permuted rows.
    use super::*;
    use ndarray::Array2;
    use rand::Rng;

    fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        // A common offset and unequal column scales, like real activations.
        Array2::from_shape_fn((n, d), |(_, j)| {
            3.0 + (1.0 + j as f32 * 0.3) * (rng.random::<f32>() - 0.5)
        })
    }

    fn close(a: Option<f64>, b: Option<f64>, tol: f64, what: &str) {
        let (a, b) = (a.expect(what), b.expect(what));
        assert!((a - b).abs() < tol, "{what}: {a} vs {b}");
    }

    #[test]
    fn every_pairing_matches_the_accumulator_on_permuted_rows() {
        for &(n, d1, d2) in &[(12usize, 5usize, 5usize), (30, 40, 40), (25, 8, 6)] {
            let x = random(n, d1, 1);
            let mut y = random(n, d2, 2);
            // Make y depend on x so the observed pairing is not itself chance.
            for i in 0..n {
                for j in 0..d1.min(d2) {
                    y[[i, j]] += x[[i, j]];
                }
            }
            let e = Engine::new(x.view(), y.view()).unwrap();
            let mut rng = StdRng::seed_from_u64(9);
            let mut perm: Vec<usize> = (0..n).collect();
            for trial in 0..4 {
                if trial > 0 {
                    perm.shuffle(&mut rng);
                }
                let got = e.paired(&perm).unwrap();
                let yp = y.select(Axis(0), &perm);
                let want = crate::metrics::pair_metrics(x.view(), yp.view()).unwrap();
                close(got.linear_cka, want.linear_cka.value, 1e-9, "linear CKA");
                close(
                    got.debiased_cka,
                    want.debiased_cka.value,
                    1e-9,
                    "debiased CKA",
                );
                close(
                    got.procrustes_distance,
                    want.procrustes_distance.value,
                    1e-8,
                    "Procrustes",
                );
                close(got.norm_ratio, want.norm_ratio.value, 1e-9, "norm ratio");
                if d1 == d2 {
                    close(
                        got.cosine_distance,
                        want.cosine_distance.value,
                        1e-9,
                        "cosine",
                    );
                } else {
                    assert!(got.cosine_distance.is_none());
                }
            }
        }
    }

    #[test]
    fn debiased_null_is_centred_on_zero_and_linear_null_is_not_when_n_is_below_d() {
        // n = 20 < d = 60, x and y independent: linear CKA's chance level is far above 0
        // (its known positive bias), the debiased one's is 0.
        let x = random(20, 60, 3);
        let y = random(20, 60, 4);
        let b = permutation_null(x.view(), y.view(), 400, 0).unwrap();
        let lin = b.linear_cka.unwrap();
        let deb = b.debiased_cka.unwrap();
        assert!(lin.lo > 0.2, "linear CKA null band {lin:?}");
        assert!(deb.lo < 0.0 && deb.hi > 0.0, "debiased band {deb:?}");
        assert!(deb.mean.abs() < 0.02, "debiased null mean {}", deb.mean);
        assert_eq!(b.permutations, 400);
    }

    #[test]
    fn a_real_pairing_gets_the_smallest_p_value() {
        let x = random(40, 10, 5);
        let y = x.mapv(|v| 2.0 * v + 1.0);
        let b = permutation_null(x.view(), y.view(), 199, 1).unwrap();
        let floor = 1.0 / 200.0;
        for band in [
            b.linear_cka,
            b.debiased_cka,
            b.procrustes_distance,
            b.cosine_distance,
        ] {
            assert_eq!(band.unwrap().p, Some(floor));
        }
    }

    #[test]
    fn procrustes_null_is_skipped_above_its_rank_cap() {
        let n = PROCRUSTES_MAX_RANK + 1;
        let x = random(n, n, 6);
        let e = Engine::new(x.view(), x.view()).unwrap();
        let p = e.paired(&(0..n).collect::<Vec<_>>()).unwrap();
        assert!(p.procrustes_distance.is_none() && p.linear_cka.is_some());
    }
}
