//! The Bradley–Terry probe's solver: L2-regularised logistic regression without intercept on
//! the pairs `z (n, d)` and their flips, written over the `n` pairs alone.
//!
//! linfa's `LogisticRegression` on the stacked set `[z; −z]` with labels `[1; 0]` minimises
//! `f(w) = −Σ_{2n} log σ(yᵢ xᵢ·w) + α/2 ‖w‖²`; a pair and its flip contribute the same term
//! (`σ(z·w)` both), so `f(w) = −2 Σ_n log σ(zᵢ·w) + α/2 ‖w‖²` and
//! `∇f(w) = −2 zᵀ(1 − σ(z w)) + α w`. This module minimises that `f` with the solver linfa
//! uses (argmin's L-BFGS, memory 10, More–Thuente line search, zero start, the same gradient
//! tolerance), so the iterates are linfa's up to the order of floating-point sums — with half
//! the rows, and one product `z w` per point where linfa computes it for the cost and again
//! for the gradient (the last one is kept and reused when the solver asks for both at the same
//! point). `tests` checks the fit against linfa on the stacked set.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::{Array1, ArrayView2};

use crate::error::{Error, Result};

/// `log σ(x)`, stable for both signs (scikit-learn's `log_logistic`, as linfa computes it).
fn log_sigmoid(x: f64) -> f64 {
    if x > 0.0 {
        -(1.0 + (-x).exp()).ln()
    } else {
        x - (1.0 + x.exp()).ln()
    }
}

struct BtProblem<'a> {
    z: ArrayView2<'a, f64>,
    alpha: f64,
    /// The last point and its scores `z w`.
    last: RefCell<Option<(Array1<f64>, Array1<f64>)>>,
}

impl BtProblem<'_> {
    fn scores(&self, w: &Array1<f64>) -> Array1<f64> {
        if let Some((p, s)) = self.last.borrow().as_ref() {
            if p == w {
                return s.clone();
            }
        }
        let s = self.z.dot(w);
        *self.last.borrow_mut() = Some((w.clone(), s.clone()));
        s
    }
}

impl CostFunction for BtProblem<'_> {
    type Param = Array1<f64>;
    type Output = f64;
    fn cost(&self, w: &Array1<f64>) -> std::result::Result<f64, argmin::core::Error> {
        let s = self.scores(w);
        Ok(-2.0 * s.iter().map(|&v| log_sigmoid(v)).sum::<f64>() + 0.5 * self.alpha * w.dot(w))
    }
}

impl Gradient for BtProblem<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;
    fn gradient(&self, w: &Array1<f64>) -> std::result::Result<Array1<f64>, argmin::core::Error> {
        // −2 zᵀ(1 − σ(s)) = zᵀ(2 (σ(s) − 1)).
        let r = self
            .scores(w)
            .mapv_into(|v| 2.0 * (1.0 / (1.0 + (-v).exp()) - 1.0));
        Ok(self.z.t().dot(&r) + &(w * self.alpha))
    }
}

/// Minimise the Bradley–Terry objective above on `z (n, d)` with `α = 1/C`; `tolerance` is on
/// the gradient of the summed objective (linfa's scale: the mean-loss tolerance × 2n).
pub(crate) fn fit_bt(
    z: ArrayView2<'_, f64>,
    alpha: f64,
    max_iterations: u64,
    tolerance: f64,
) -> Result<Array1<f64>> {
    let d = z.ncols();
    let problem = BtProblem {
        z,
        alpha,
        last: RefCell::new(None),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(tolerance)
        .map_err(|e| Error::param("probe", format!("logistic regression failed: {e}")))?;
    let res = Executor::new(problem, solver)
        .configure(|state| state.param(Array1::zeros(d)).max_iters(max_iterations))
        .run()
        .map_err(|e| Error::param("probe", format!("logistic regression failed: {e}")))?;
    Ok(res
        .state()
        .get_best_param()
        .cloned()
        .unwrap_or_else(|| Array1::zeros(d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use linfa_logistic::LogisticRegression;
    use ndarray::{concatenate, Array2, Axis};
    use rand::{Rng, SeedableRng};

    /// Property: the n-row solver reaches linfa's solution on the stacked 2n-row set (the
    /// module's derivation), on random data with a planted direction, at several C.
    #[test]
    fn equals_linfa_on_the_stacked_set() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (n, d) = (300, 12);
        let u: Vec<f64> = (0..d).map(|_| rng.random::<f64>() - 0.5).collect();
        let z = Array2::from_shape_fn((n, d), |(_, j)| {
            0.8 * u[j] + (rng.random::<f64>() - 0.5) * (1.0 + j as f64 / 4.0)
        });
        for c in [0.01, 0.1, 1.0, 10.0] {
            let tol = 1e-10 * (2 * n) as f64;
            let ours = fit_bt(z.view(), 1.0 / c, 5000, tol).unwrap();
            let x = concatenate(Axis(0), &[z.view(), (-&z).view()]).unwrap();
            let y: Array1<bool> = (0..2 * n).map(|i| i < n).collect();
            let fitted = LogisticRegression::default()
                .alpha(1.0 / c)
                .with_intercept(false)
                .max_iterations(5000)
                .gradient_tolerance(tol)
                .fit(&linfa::Dataset::new(x, y))
                .unwrap();
            let mut w = fitted.params().clone();
            if !fitted.labels().pos.class {
                w.mapv_inplace(|v| -v);
            }
            let scale = w.iter().map(|v| v.abs()).fold(0.0, f64::max);
            let diff = (&ours - &w).iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(
                diff <= 1e-6 * scale,
                "C = {c}: max |Δw| {diff} vs max |w| {scale}"
            );
        }
    }
}
