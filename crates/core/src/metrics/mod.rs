//! Per-layer similarity measures between two models' activations on the same examples.
//!
//! All functions take `x: (n_samples, d₁)` and `y: (n_samples, d₂)` with row `i` of both
//! describing example `i`. Every value is computed in f64. A value that is undefined for the
//! input (too few examples, zero variance, zero vectors, a non-positive unbiased HSIC under the
//! square root) is a [`Nullable`] null carrying the reason — never NaN. Non-finite input is a
//! [`MetricError::NonFinite`] naming the row.
//!
//! - [`linear_cka`]: Kornblith et al. 2019 on column-centred data,
//!   ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F).
//! - [`debiased_cka`]: the same ratio with Song et al.'s unbiased HSIC estimator (linear
//!   kernels, Gram form with zeroed diagonals), computed in feature space.
//! - [`cosine_distance`]: mean and population standard deviation over examples of
//!   1 − cos(xᵢ, yᵢ) on raw vectors (d₁ = d₂).
//! - [`procrustes_distance`]: 2 − 2‖XᵀY‖_* on centred X, Y scaled to unit Frobenius norm.
//! - [`norm_ratio`]: mean ‖yᵢ‖ / ‖xᵢ‖.
//! - [`knn::mutual_knn_overlap`]: Huh et al. 2024's mutual k-nearest-neighbour alignment.
//! - [`permutation::permutation_null`]: each measure's value when the rows are shuffled
//!   (the chance level), with a permutation p-value.
//!
//! The first five come from one [`accum::PairAccumulator`] pass, so they stream over store
//! parts and merge across shards exactly.
//!
//! ```
//! use ndarray::array;
//! let x = array![[1.0f32, 0.0], [0.0, 2.0], [3.0, 1.0], [2.0, 2.0], [0.5, 1.5]];
//! let cka = repdrift_core::metrics::linear_cka(x.view(), x.view()).unwrap();
//! assert!((cka.value.unwrap() - 1.0).abs() < 1e-12);
//! ```

pub mod accum;
pub mod bootstrap;
pub mod compare;
mod cross_layer;
pub mod knn;
mod nullable;
pub mod output;
pub mod permutation;
mod prepared;
mod render;
mod rows;
mod shard;

use ndarray::ArrayView2;

pub use accum::{nuclear_norm, nuclear_norm_eig, PairAccumulator, PairMetrics};
pub use nullable::Nullable;
pub use prepared::{Element, Precision, PreparedRows, MIXED_BLOCK};

pub use crate::error::MetricError;

/// Every accumulator measure of `x (n, d₁)` against `y (n, d₂)` in one pass.
pub fn pair_metrics(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<PairMetrics, MetricError> {
    if x.nrows() != y.nrows() {
        return Err(MetricError::Shape {
            x: x.shape().to_vec(),
            y: y.shape().to_vec(),
            expected: (x.ncols(), y.ncols()),
        });
    }
    let mut acc = PairAccumulator::new(x.ncols(), y.ncols());
    acc.update(x, y)?;
    acc.finalize()
}

/// [`pair_metrics`] on float64 rows (no rounding to f32; the accumulator checks the shapes).
pub fn pair_metrics_f64(
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
) -> Result<PairMetrics, MetricError> {
    let mut acc = PairAccumulator::new(x.ncols(), y.ncols());
    acc.update_f64(x, y)?;
    acc.finalize()
}

/// Linear CKA of `x (n, d₁)` and `y (n, d₂)`.
pub fn linear_cka(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<Nullable, MetricError> {
    Ok(pair_metrics(x, y)?.linear_cka)
}

/// Debiased (unbiased-HSIC) linear CKA of `x (n, d₁)` and `y (n, d₂)`; needs n ≥ 4.
pub fn debiased_cka(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<Nullable, MetricError> {
    Ok(pair_metrics(x, y)?.debiased_cka)
}

/// Mean and standard deviation of 1 − cos(xᵢ, yᵢ) for `x, y (n, d)`.
pub fn cosine_distance(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<(Nullable, Nullable), MetricError> {
    let m = pair_metrics(x, y)?;
    Ok((m.cosine_distance, m.cosine_distance_std))
}

/// Orthogonal Procrustes distance of `x (n, d₁)` and `y (n, d₂)`, in [0, 2].
pub fn procrustes_distance(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<Nullable, MetricError> {
    Ok(pair_metrics(x, y)?.procrustes_distance)
}

/// Mean ‖yᵢ‖ / ‖xᵢ‖.
pub fn norm_ratio(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<Nullable, MetricError> {
    Ok(pair_metrics(x, y)?.norm_ratio)
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    /// The f64 entry point on f32-representable values gives the very numbers of the f32
    /// entry point (both accumulate in f64; only the input type differs).
    #[test]
    fn pair_metrics_f64_equals_pair_metrics_on_f32_values() {
        let x = Array2::from_shape_fn((40, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.25 - 1.0);
        let y = Array2::from_shape_fn((40, 6), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.5 + 0.1);
        let a = super::pair_metrics(x.view(), y.view()).unwrap();
        let b =
            super::pair_metrics_f64(x.mapv(f64::from).view(), y.mapv(f64::from).view()).unwrap();
        assert_eq!(a, b);
        let bad = super::pair_metrics_f64(
            x.mapv(f64::from).view(),
            y.mapv(f64::from).slice(ndarray::s![..39, ..]),
        );
        assert!(bad.is_err());
    }

    /// The eigenvalue route to the nuclear norm against LAPACK's SVD (`dgesdd`), tall, wide,
    /// square and rank-deficient, and against singular values known by construction: a
    /// permuted, sign-flipped diagonal has |entries| as its singular values.
    #[test]
    fn nuclear_norm_eig_equals_the_svd_route() {
        let known = Array2::from_shape_fn((5, 5), |(i, j)| {
            let d = [3.0, -0.5, 2.0, 0.0, 1.25];
            if j == (i + 2) % 5 {
                d[i]
            } else {
                0.0
            }
        });
        assert!((super::nuclear_norm_eig(&known).unwrap() - 6.75).abs() < 1e-12);
        let f = |(i, j): (usize, usize)| ((i * 31 + j * 17) % 23) as f64 / 7.0 - 1.5;
        let tall = Array2::from_shape_fn((40, 9), f);
        let wide = tall.t().to_owned();
        let low = tall
            .dot(&Array2::from_shape_fn((9, 3), f))
            .dot(&Array2::from_shape_fn((3, 12), f));
        for m in [&tall, &wide, &low, &Array2::from_shape_fn((7, 7), f)] {
            let (e, s) = (
                super::nuclear_norm_eig(m).unwrap(),
                super::nuclear_norm(m).unwrap(),
            );
            // Zero singular values come back as √(rounding) ≈ 1e-8·‖m‖ each (the documented bound).
            assert!(
                (e - s).abs() <= 1e-7 * s,
                "{:?}: eig {e} vs svd {s}",
                m.dim()
            );
        }
    }

    /// Property beside the golden cases: on 60 seeded random matrices of random shapes and ranks
    /// (1–40 × 1–40, rank 1 to full) the eigenvalue route equals the SVD within its documented
    /// error, √u·‖m‖ per zero singular value (u = 2⁻⁵³), plus 1e-10 relative.
    #[test]
    fn nuclear_norm_eig_equals_the_svd_on_random_shapes_and_ranks() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(15);
        for case in 0..60 {
            let (p, q) = (rng.random_range(1..=40), rng.random_range(1..=40));
            let r = rng.random_range(1..=p.min(q));
            let mut draw = |a, b| Array2::from_shape_fn((a, b), |_| rng.random_range(-1.0..1.0));
            let m: Array2<f64> = draw(p, r).dot(&draw(r, q));
            let (e, s) = (
                super::nuclear_norm_eig(&m).unwrap(),
                super::nuclear_norm(&m).unwrap(),
            );
            let top = m.iter().map(|v| v * v).sum::<f64>().sqrt();
            let zeros = (p.min(q) - r) as f64;
            let bound = zeros * 1.5e-8 * top + 1e-10 * s;
            assert!(
                (e - s).abs() <= bound.max(1e-12),
                "case {case}: {p}×{q} rank {r}: eig {e} vs svd {s} (bound {bound:.1e})"
            );
        }
    }
}
