//! The losses on differentiable primitives only (candle's fused kernels cut the autograd graph
//! silently: `../shared/notes/stack.md`), and pairwise accuracy.

use candle_core::{DType, Tensor, D};

use super::params::AnchorDistance;
use crate::error::Result;

/// softplus(x) = log(1 + eˣ), from differentiable primitives: relu(x) + log(1 + e^−|x|).
pub(super) fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// Mean soft-label BT cross-entropy: `p · softplus(−Δ) + (1 − p) · softplus(Δ)`.
pub fn bt_loss(delta: &Tensor, p: &Tensor) -> Result<Tensor> {
    let a = (softplus(&delta.neg()?)? * p)?;
    let b = (softplus(delta)? * (p.neg()? + 1.0)?)?;
    Ok((a + b)?.mean_all()?)
}

/// The anchor distance of student states `s` to reference states `b`, both `(rows, hidden)`;
/// `ms` is the base's mean square at that layer (for `mse`).
pub fn anchor_distance(s: &Tensor, b: &Tensor, kind: AnchorDistance, ms: f64) -> Result<Tensor> {
    Ok(match kind {
        AnchorDistance::Mse => ((s - b)?.sqr()?.mean_all()? / ms)?,
        AnchorDistance::Cosine => {
            let dot = (s * b)?.sum(D::Minus1)?;
            let ns = s.sqr()?.sum(D::Minus1)?.sqrt()?;
            let nb = b.sqr()?.sum(D::Minus1)?.sqrt()?;
            let cos = (dot / ((ns * nb)? + 1e-12)?)?;
            (cos.neg()? + 1.0)?.mean_all()?
        }
    })
}

pub(super) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Pairwise accuracy of rewards laid out chosen, rejected, chosen, … (a tie is wrong).
pub fn pairwise_accuracy(r: &[f32]) -> f64 {
    let n = r.len() / 2;
    let right = (0..n).filter(|&i| r[2 * i] > r[2 * i + 1]).count();
    right as f64 / n.max(1) as f64
}
