//! The scalar reward head of a reward-model checkpoint (`score.weight` or TRL's `v_head`) and
//! the last-real-token reads every decoder shares: rewards `(batch,)` from final states
//! `(batch, seq, hidden)` and right-padded lengths.

use candle_core::{DType, Tensor};

use super::weights::Weights;
use crate::error::Result;

/// A scalar reward head read at the last real token.
#[derive(Debug, Clone)]
pub struct RewardHead {
    /// `(1, hidden)`.
    pub weight: Tensor,
    pub bias: Option<f32>,
}

impl RewardHead {
    /// `score.weight` (HF `*ForSequenceClassification`, one label), else TRL's value head
    /// `v_head.summary.weight` (+ `bias`), else `None`.
    pub fn load(weights: &Weights, hidden: usize) -> Result<Option<Self>> {
        if weights.contains("score.weight") {
            return Ok(Some(Self {
                weight: weights.pp("score").get("weight", &[1, hidden])?,
                bias: None,
            }));
        }
        let v = weights.pp("v_head").pp("summary");
        if v.contains("weight") {
            let bias = if v.contains("bias") {
                Some(
                    v.get("bias", &[1])?
                        .to_dtype(DType::F32)?
                        .to_vec1::<f32>()?[0],
                )
            } else {
                None
            };
            return Ok(Some(Self {
                weight: v.get("weight", &[1, hidden])?,
                bias,
            }));
        }
        Ok(None)
    }

    /// One reward per row of `y (batch, seq, hidden)` at each row's last real token.
    pub fn rewards(&self, y: &Tensor, lens: &[usize]) -> Result<Vec<f32>> {
        let mut r = last_token_rewards(y, lens, &self.weight)?;
        if let Some(b) = self.bias {
            r.iter_mut().for_each(|x| *x += b);
        }
        Ok(r)
    }
}

/// HF `LlamaForSequenceClassification` with one label: the score head applied to the final
/// (normed) state of each row's last real token. `y` is `(batch, seq, hidden)`, `score`
/// `(1, hidden)`; returns one reward per row.
pub fn last_token_rewards(y: &Tensor, lens: &[usize], score: &Tensor) -> Result<Vec<f32>> {
    Ok(last_token_states(y, lens)?
        .matmul(&score.t()?)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1()?)
}

/// The state of each row's last real token: `(batch, seq, hidden)` → `(batch, hidden)`.
/// Differentiable (an `index_select`).
pub fn last_token_states(y: &Tensor, lens: &[usize]) -> Result<Tensor> {
    let (b, s, d) = y.dims3()?;
    let idx: Vec<u32> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| (i * s + l.max(1) - 1) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, b, y.device())?;
    Ok(y.reshape((b * s, d))?.index_select(&idx, 0)?)
}
