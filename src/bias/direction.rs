//! Directions in one layer's activation space, all in f64 from f32 rows `(rows, d)` row-major:
//! - [`paired_mean_diff`]: the mean of `b_i − a_i` over paired rows (a cue toggled on the same
//!   reply; the agency item against its matched communion item);
//! - [`decodability`]: how linearly separable the two sides are — the held-out accuracy of the
//!   mean-difference rule (project on `μ₁ − μ₀`, threshold at the midpoint), k-fold with the
//!   two rows of a pair always in the same fold; a lower bound on what a fitted linear probe
//!   reaches;
//! - [`ridge_direction`]: the direction along which a scalar (the reward) varies linearly:
//!   `w = (XcᵀXc + λI)⁻¹ Xcᵀyc` on centred rows and targets, `λ = ridge · tr(XcᵀXc) / d`;
//! - [`cosine`].

use ndarray::{Array1, Array2, ArrayView2};
use ndarray_linalg::Solve;

use crate::error::{Error, MetricError, Result};

fn view(x: &[f32], d: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((x.len() / d, d), x).expect("rows × d")
}

/// Mean over `i` of `b_i − a_i`; `a` and `b` hold the same number of rows of width `d`.
pub fn paired_mean_diff(a: &[f32], b: &[f32], d: usize) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "paired rows");
    let n = a.len() / d;
    let mut m = vec![0f64; d];
    for (ra, rb) in a.chunks_exact(d).zip(b.chunks_exact(d)) {
        for ((o, &x), &y) in m.iter_mut().zip(ra).zip(rb) {
            *o += y as f64 - x as f64;
        }
    }
    m.iter_mut().for_each(|v| *v /= n as f64);
    m
}

fn mean_rows(x: &[f32], d: usize, rows: &[usize]) -> Vec<f64> {
    let mut m = vec![0f64; d];
    for &i in rows {
        for (o, &v) in m.iter_mut().zip(&x[i * d..(i + 1) * d]) {
            *o += v as f64;
        }
    }
    m.iter_mut().for_each(|v| *v /= rows.len() as f64);
    m
}

/// Held-out accuracy of the mean-difference rule separating rows of `x0` (class 0) from rows
/// of `x1` (class 1), `folds`-fold by pair index `i mod folds`. None with fewer pairs than
/// folds.
pub fn decodability(x0: &[f32], x1: &[f32], d: usize, folds: usize) -> Option<f64> {
    let n = x0.len() / d;
    if n < folds.max(2) || x1.len() != x0.len() {
        return None;
    }
    // Ties (a row exactly on the threshold, e.g. when both sides are identical) count ½.
    let mut correct = 0f64;
    let score = |v: f64| -> f64 {
        if v > 0.0 {
            1.0
        } else if v == 0.0 {
            0.5
        } else {
            0.0
        }
    };
    for f in 0..folds {
        let train: Vec<usize> = (0..n).filter(|i| i % folds != f).collect();
        let (m0, m1) = (mean_rows(x0, d, &train), mean_rows(x1, d, &train));
        let w: Vec<f64> = m1.iter().zip(&m0).map(|(a, b)| a - b).collect();
        let mid: f64 = w
            .iter()
            .zip(m0.iter().zip(&m1))
            .map(|(w, (a, b))| w * (a + b) / 2.0)
            .sum();
        let side = |row: &[f32]| -> f64 {
            row.iter().zip(&w).map(|(&x, w)| x as f64 * w).sum::<f64>() - mid
        };
        for i in (0..n).filter(|i| i % folds == f) {
            correct += score(-side(&x0[i * d..(i + 1) * d]));
            correct += score(side(&x1[i * d..(i + 1) * d]));
        }
    }
    Some(correct / (2 * n) as f64)
}

/// The ridge direction of `y` on the rows of `x` (width `d`); see the module docs. `what`
/// names the data in errors.
pub fn ridge_direction(x: &[f32], y: &[f64], d: usize, ridge: f64, what: &str) -> Result<Vec<f64>> {
    let xv = view(x, d);
    let n = xv.nrows();
    if n != y.len() || n < 2 {
        return Err(Error::Metric {
            what: what.into(),
            cause: MetricError::Shape {
                x: vec![n, d],
                y: vec![y.len()],
                expected: (d, 1),
            },
        });
    }
    let xf: Array2<f64> = xv.mapv(f64::from);
    let mean = xf.mean_axis(ndarray::Axis(0)).expect("n ≥ 2");
    let xc = &xf - &mean;
    let ym = y.iter().sum::<f64>() / n as f64;
    let yc = Array1::from_iter(y.iter().map(|v| v - ym));
    let mut g = xc.t().dot(&xc);
    let lambda = ridge * g.diag().sum() / d as f64;
    g.diag_mut()
        .iter_mut()
        .for_each(|v| *v += lambda.max(1e-12));
    let rhs = xc.t().dot(&yc);
    let w = g.solve_into(rhs).map_err(|e| Error::Metric {
        what: what.into(),
        cause: MetricError::Linalg(e.to_string()),
    })?;
    Ok(w.to_vec())
}

/// Cosine of two vectors; None when either is zero.
pub fn cosine(a: &[f64], b: &[f64]) -> Option<f64> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    (na > 0.0 && nb > 0.0).then(|| dot / (na * nb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn noise(rng: &mut StdRng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Truth: by construction — b = a + shift on every row, so the paired mean difference is
    /// the shift; a shift of 3 noise widths along one axis is perfectly decodable, no shift is
    /// at chance.
    #[test]
    fn planted_shift_is_found_and_decoded() {
        let (n, d) = (60, 5);
        let mut rng = StdRng::seed_from_u64(1);
        let a = noise(&mut rng, n * d);
        let shift = [0.0f32, 3.0, 0.0, 0.0, 0.0];
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| v + shift[i % d])
            .collect();
        let m = paired_mean_diff(&a, &b, d);
        for (got, want) in m.iter().zip(shift) {
            assert!((got - want as f64).abs() < 1e-6);
        }
        assert_eq!(decodability(&a, &b, d, 5), Some(1.0));
        let c = noise(&mut rng, n * d);
        let chance = decodability(&a, &c, d, 5).unwrap();
        assert!((0.3..0.7).contains(&chance), "{chance}");
        // Identical sides: every row on the threshold, exactly chance.
        assert_eq!(decodability(&a, &a, d, 5), Some(0.5));
    }

    /// Truth: y = 2·x₀ − x₂ exactly, with a vanishing ridge: the direction is (2, 0, −1, 0)
    /// up to the tiny shrinkage.
    #[test]
    fn ridge_recovers_a_linear_reward() {
        let (n, d) = (200, 4);
        let mut rng = StdRng::seed_from_u64(2);
        let x = noise(&mut rng, n * d);
        let y: Vec<f64> = x
            .chunks(d)
            .map(|r| 2.0 * r[0] as f64 - r[2] as f64 + 5.0)
            .collect();
        let w = ridge_direction(&x, &y, d, 1e-9, "test").unwrap();
        for (got, want) in w.iter().zip([2.0, 0.0, -1.0, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{w:?}");
        }
        assert!((cosine(&w, &[2.0, 0.0, -1.0, 0.0]).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(cosine(&w, &[0.0; 4]), None);
    }
}
