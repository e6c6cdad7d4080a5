//! Evaluating a reward model on cached pairs without gradient: rewards and last-token states
//! per layer (spread over the cores), the study's view of a [`Prepared`] cache, and LP-FT's
//! head fitted on the frozen base.
//!
//! Shapes: rewards `(2 · pairs,)` laid out chosen, rejected, chosen, …; states per requested
//! layer a row-major `(2 · pairs, hidden)` buffer.

use candle_core::Device;

use super::cache::{make_batch, CachedSeq, Prepared};
use super::reward_model::TrainableRm;
use crate::error::Result;
use crate::model::HookedModel;

/// Rewards of `seqs` under `rm` (no gradient), in `seqs` order.
pub(super) fn rewards(
    rm: &TrainableRm<'_>,
    seqs: &[CachedSeq],
    batch_pairs: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    Ok(forward_seqs(rm, seqs, &[], batch_pairs, device)?.0)
}

/// Rewards and last-token states at `pool_layers` of `seqs` under `rm` (no gradient), in
/// `seqs` order: `(rewards (n,), per layer a row-major (n, hidden) buffer)`.
fn forward_seqs(
    rm: &TrainableRm<'_>,
    seqs: &[CachedSeq],
    pool_layers: &[usize],
    batch_pairs: usize,
    device: &Device,
) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let hidden = rm.base().config().hidden_size;
    let mut out = vec![0f32; seqs.len()];
    let mut states = vec![vec![0f32; seqs.len() * hidden]; pool_layers.len()];
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (seqs[i].ids.len(), i));
    let chunks: Vec<&[usize]> = order.chunks(2 * batch_pairs.max(1)).collect();
    // Chunks spread over the cores; each result is placed by index, so the output does not
    // depend on the number of workers.
    let results = crate::parallel::map_indexed(chunks.len(), |c| {
        let refs: Vec<&CachedSeq> = chunks[c].iter().map(|&i| &seqs[i]).collect();
        let (batch, x) = make_batch(
            &refs,
            rm.base().pad_id(),
            hidden,
            !rm.trains_embeddings(),
            device,
        )?;
        let o = rm.forward(x.as_ref(), &batch, pool_layers, false)?;
        let r: Vec<f32> = o.rewards.to_vec1()?;
        let pooled = o
            .pooled
            .iter()
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .collect::<Result<Vec<_>>>()?;
        Ok((r, pooled))
    })?;
    for (chunk, (r, pooled)) in chunks.iter().zip(results) {
        for (&i, v) in chunk.iter().zip(r) {
            out[i] = v;
        }
        for (l, rows) in pooled.iter().enumerate() {
            for (b, &i) in chunk.iter().enumerate() {
                states[l][i * hidden..(i + 1) * hidden]
                    .copy_from_slice(&rows[b * hidden..(b + 1) * hidden]);
            }
        }
    }
    Ok((out, states))
}

/// LP-FT's first stage: set `rm`'s head to a BT probe fitted on the (untrained, i.e. base)
/// final states of the training pairs, each pair oriented by its label (`p ≥ 0.5`: chosen
/// preferred).
pub(super) fn fit_head_on_base(
    rm: &TrainableRm<'_>,
    seqs: &[CachedSeq],
    labels: &[f64],
    batch_pairs: usize,
    device: &Device,
) -> Result<()> {
    let n_layers = rm.base().blocks().len();
    let hidden = rm.base().config().hidden_size;
    let (_, states) = forward_seqs(rm, seqs, &[n_layers], batch_pairs, device)?;
    let h = &states[0];
    let n = seqs.len() / 2;
    let mut delta = ndarray::Array2::<f64>::zeros((n, hidden));
    for i in 0..n {
        let sign = if labels[i] >= 0.5 { 1.0 } else { -1.0 };
        for j in 0..hidden {
            delta[[i, j]] =
                sign * (h[2 * i * hidden + j] as f64 - h[(2 * i + 1) * hidden + j] as f64);
        }
    }
    let probe = crate::probe::fit_pairwise(delta.view(), 1.0, crate::probe::Solver::default())?;
    let w: Vec<f32> = probe.direction().iter().map(|&v| v as f32).collect();
    rm.set_head(&w)
}

/// Which cached pairs of a [`Prepared`] to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSet {
    /// The student's training pairs (source half 2).
    Train,
    /// The source test part.
    SourceTest,
    /// The `i`-th evaluation set.
    Eval(usize),
}

impl Prepared<'_> {
    /// Names of the evaluation sets, in order.
    pub fn eval_names(&self) -> Vec<&str> {
        self.evals.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The lowest residual layer whose states training can change: `first + 1` for `top:K`
    /// (layer `first` is the frozen bottom's output, the trainable blocks' input), 0 for `all`
    /// (the embeddings train). States below it are the base's, bit for bit.
    pub fn first_changing_layer(&self) -> usize {
        if self.all {
            0
        } else {
            self.first + 1
        }
    }

    fn seqs(&self, set: PairSet) -> &[CachedSeq] {
        match set {
            PairSet::Train => &self.half2,
            PairSet::SourceTest => &self.test,
            PairSet::Eval(i) => &self.evals[i].1,
        }
    }

    /// Number of pairs in `set`.
    pub fn n_pairs(&self, set: PairSet) -> usize {
        self.seqs(set).len() / 2
    }

    /// Rewards `(2 · pairs,)` (chosen, rejected, chosen, …) and last-token states
    /// `(2 · pairs, hidden)` per layer of `pool_layers` (layers ≥ [`first_changing_layer`] − 1)
    /// of the first `limit` pairs of `set` under `rm`, without gradient.
    ///
    /// [`first_changing_layer`]: Self::first_changing_layer
    pub fn evaluate(
        &self,
        rm: &TrainableRm<'_>,
        set: PairSet,
        pool_layers: &[usize],
        limit: Option<usize>,
        batch_pairs: usize,
        device: &Device,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let seqs = self.seqs(set);
        let n = limit.map_or(seqs.len(), |l| (2 * l).min(seqs.len()));
        forward_seqs(rm, &seqs[..n], pool_layers, batch_pairs, device)
    }
}
