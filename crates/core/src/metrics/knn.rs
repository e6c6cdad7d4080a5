//! Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation
//! Hypothesis"): rows are L2-normalised, each example's k nearest neighbours (by cosine
//! similarity, itself excluded) are found in X and in Y, and the score is the mean over
//! examples of |N_X(i) ∩ N_Y(i)| / k. Memory is O(block · n): similarities are computed in
//! blocks of rows, never as a full n × n matrix.

use ndarray::{s, Array2, ArrayView2, Axis};

use super::{MetricError, Nullable};

const BLOCK: usize = 512;

fn normalised(x: ArrayView2<'_, f32>) -> Result<Option<Array2<f64>>, MetricError> {
    let mut m = x.mapv(|v| v as f64);
    for (i, mut row) in m.axis_iter_mut(Axis(0)).enumerate() {
        if !row.iter().all(|v| v.is_finite()) {
            return Err(MetricError::NonFinite { side: "x", row: i });
        }
        let n = row.dot(&row).sqrt();
        if n == 0.0 {
            return Ok(None);
        }
        row /= n;
    }
    Ok(Some(m))
}

fn knn_sets(x: &Array2<f64>, k: usize) -> Vec<Vec<usize>> {
    let n = x.nrows();
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let sims = x.slice(s![start..end, ..]).dot(&x.t());
        for (bi, row) in sims.outer_iter().enumerate() {
            let i = start + bi;
            let mut idx: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            // Largest similarity first; ties broken by index for determinism.
            idx.select_nth_unstable_by(k - 1, |&a, &b| {
                row[b].partial_cmp(&row[a]).expect("finite").then(a.cmp(&b))
            });
            let mut top = idx[..k].to_vec();
            top.sort_unstable();
            out.push(top);
        }
    }
    out
}

/// Mutual k-NN overlap of `x (n, d₁)` and `y (n, d₂)`, in [0, 1]; null when n ≤ k or a row is
/// the zero vector.
pub fn mutual_knn_overlap(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Nullable, MetricError> {
    let n = x.nrows();
    if y.nrows() != n {
        return Err(MetricError::Shape {
            x: x.shape().to_vec(),
            y: y.shape().to_vec(),
            expected: (x.ncols(), y.ncols()),
        });
    }
    if k == 0 || n <= k {
        return Ok(Nullable::null(&format!("needs n > k (n = {n}, k = {k})")));
    }
    let (Some(xn), Some(yn)) = (normalised(x)?, normalised(y)?) else {
        return Ok(Nullable::null(
            "a row is the zero vector: cosine neighbours undefined",
        ));
    };
    let a = knn_sets(&xn, k);
    let b = knn_sets(&yn, k);
    let mut total = 0usize;
    for (sa, sb) in a.iter().zip(&b) {
        let (mut i, mut j) = (0, 0);
        while i < sa.len() && j < sb.len() {
            match sa[i].cmp(&sb[j]) {
                std::cmp::Ordering::Equal => {
                    total += 1;
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
            }
        }
    }
    Ok(Nullable::value(total as f64 / (n * k) as f64))
}
