//! Representation anchoring's reference and penalty: the frozen base's last-token states at
//! each anchored layer (computed once, before the first step, from the step-0 model with no
//! gradient), and per step the λ-weighted mean distance of the student's states to them.

use candle_core::{Device, Tensor};

use super::cache::{make_batch, CachedSeq};
use super::loss::{anchor_distance, scalar};
use super::params::ValidTrainParams;
use super::reward_model::TrainableRm;
use crate::error::Result;

/// The base's states the anchor pulls towards.
pub(super) struct AnchorRefs {
    /// Per anchored layer, per training sequence: the last-token state.
    rows: Vec<Vec<Vec<f32>>>,
    /// Per anchored layer: the mean square of its states (normalises the MSE distance).
    mean_sq: Vec<f64>,
}

/// One step's anchor term.
pub(super) struct AnchorTerm {
    /// Σ λ_a · d_a / n_anchors, in the graph.
    pub loss: Tensor,
    /// The plain distance before λ, mean over anchored layers (logged).
    pub distance: f64,
}

impl AnchorRefs {
    /// The references of every training sequence under the untrained `rm` (nothing when no
    /// layer is anchored). `all`: every block trains, so the batches carry no cached states.
    pub fn compute(
        rm: &TrainableRm<'_>,
        seqs: &[CachedSeq],
        params: &ValidTrainParams,
        (pad_id, hidden, all): (u32, usize, bool),
        device: &Device,
    ) -> Result<Self> {
        let anchors = &params.anchor_layers;
        let mut rows: Vec<Vec<Vec<f32>>> = vec![Vec::new(); anchors.len()];
        let mut mean_sq = vec![1f64; anchors.len()];
        if anchors.is_empty() {
            return Ok(Self { rows, mean_sq });
        }
        for l in rows.iter_mut() {
            *l = vec![Vec::new(); seqs.len()];
        }
        for chunk in (0..seqs.len())
            .collect::<Vec<_>>()
            .chunks(2 * params.batch_size)
        {
            let batch_seqs: Vec<&CachedSeq> = chunk.iter().map(|&i| &seqs[i]).collect();
            let (batch, x) = make_batch(&batch_seqs, pad_id, hidden, !all, device)?;
            let out = rm.forward(x.as_ref(), &batch, anchors, false)?;
            for (a, t) in out.pooled.iter().enumerate() {
                let states: Vec<Vec<f32>> = t.to_vec2()?;
                for (&i, row) in chunk.iter().zip(states) {
                    rows[a][i] = row;
                }
            }
        }
        for (a, layer) in rows.iter().enumerate() {
            let (mut s, mut n) = (0f64, 0usize);
            for row in layer {
                s += row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                n += row.len();
            }
            mean_sq[a] = (s / n.max(1) as f64).max(f64::MIN_POSITIVE);
        }
        Ok(Self { rows, mean_sq })
    }

    /// The anchor term of a batch of `pairs` (rows chosen, rejected, chosen, … as the batch
    /// is built) whose states at the anchored layers are `pooled`; None without anchors.
    pub fn term(
        &self,
        pooled: &[Tensor],
        pairs: &[usize],
        params: &ValidTrainParams,
        device: &Device,
    ) -> Result<Option<AnchorTerm>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let n_rows = 2 * pairs.len();
        let mut acc: Option<Tensor> = None;
        let mut plain = 0f64;
        for (a, s) in pooled.iter().enumerate() {
            let rows: Vec<f32> = (0..n_rows)
                .flat_map(|b| {
                    let pair = pairs[b / 2];
                    self.rows[a][2 * pair + b % 2].clone()
                })
                .collect();
            let hidden = rows.len() / n_rows;
            let b = Tensor::from_vec(rows, (n_rows, hidden), device)?;
            let dist = anchor_distance(s, &b, params.anchor_distance, self.mean_sq[a])?;
            plain += scalar(&dist)?;
            let term = (dist * params.anchor_weight[a])?;
            acc = Some(match acc {
                None => term,
                Some(t) => (t + term)?,
            });
        }
        let n_a = self.rows.len() as f64;
        Ok(Some(AnchorTerm {
            loss: (acc.expect("at least one anchor") / n_a)?,
            distance: plain / n_a,
        }))
    }
}
