//! Log-probabilities of a sequence's response tokens under a causal language model.
//!
//! Token `t` of a sequence is scored by the model's next-token distribution at position `t − 1`
//! (HF transformers: `log_softmax(logits[:, :-1]).gather(ids[:, 1:])`). The scored tokens are
//! the response's — every token whose byte span ends after the response start, the rule
//! `--pool response-mean` uses — or, for plain texts, every token after the first. A first
//! token has no prediction and is never scored.
//!
//! Shapes: the final hidden states `(batch, seq, hidden)` of one padded batch are gathered at
//! the scoring positions into `(rows, hidden)`, projected by the model's LM head to
//! `(rows, vocab)` in chunks of [`ROWS_PER_CHUNK`] rows (f32, as the model computes), and each
//! row's log-sum-exp is taken in f64.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::data::Sequence;
use crate::error::{Error, Result};
use crate::model::{ActivationSink, HookPoint, HookRequest, HookedModel, TokenBatch};

/// Rows of logits computed at once (`ROWS_PER_CHUNK × vocab` f32: 48 MiB for a 49 K vocabulary).
pub const ROWS_PER_CHUNK: usize = 256;

/// One tokenized sequence and the token range `[start, end)` whose log-probabilities count
/// (`start ≥ 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredSeq {
    pub ids: Vec<u32>,
    pub scored: (usize, usize),
}

/// The summed log-probability of a sequence's scored tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeqLogProb {
    /// Σ log p(token | prefix), natural log.
    pub sum: f64,
    /// The number of scored tokens.
    pub tokens: usize,
}

impl SeqLogProb {
    /// The per-token mean log-probability.
    pub fn mean(&self) -> f64 {
        self.sum / self.tokens as f64
    }
}

/// Tokenize `seq` (keeping its last `max_tokens` tokens) and find the tokens to score; `line`
/// (1-based, of `data_path`) names the sequence in errors.
pub fn prepare_scored(
    model: &dyn HookedModel,
    seq: &Sequence,
    max_tokens: Option<usize>,
    data_path: &Path,
    line: usize,
) -> Result<ScoredSeq> {
    let toks = model.tokenizer().encode(&seq.text, max_tokens)?;
    let n = toks.ids.len();
    let bad = |reason: &str| Error::MalformedLine {
        path: data_path.to_path_buf(),
        line,
        reason: reason.into(),
    };
    let first = match seq.response_start {
        None => 1,
        Some(start) => toks
            .offsets
            .iter()
            .position(|&(a, b)| b > start && b > a)
            .ok_or_else(|| bad("the response has no tokens (empty reply)"))?
            .max(1),
    };
    if first >= n {
        return Err(bad(
            "nothing to score: the text has no token after its first (log-probabilities score each token from the ones before it)",
        ));
    }
    Ok(ScoredSeq {
        ids: toks.ids,
        scored: (first, n),
    })
}

/// Keeps the final hidden states of the one batch in flight.
#[derive(Default)]
struct FinalHidden(Option<Tensor>);

impl ActivationSink for FinalHidden {
    fn layer(&mut self, _hook: HookPoint, _layer: usize, states: &Tensor) -> Result<()> {
        self.0 = Some(states.clone());
        Ok(())
    }
}

/// `log p` of each target given its logits row, with the log-sum-exp in f64.
fn row_logprobs(logits: &Tensor, targets: &[u32]) -> Result<Vec<f64>> {
    let rows: Vec<Vec<f32>> = logits
        .to_dtype(candle_core::DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2()?;
    Ok(rows
        .iter()
        .zip(targets)
        .map(|(row, &t)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            row[t as usize] as f64 - lse
        })
        .collect())
}

/// The log-probability of every sequence's scored tokens, in input order. Sequences run in
/// batches of `batch_size` after sorting by length (less padding); `on_batch(sequences,
/// tokens)` is called after each batch.
pub fn response_logprobs(
    model: &dyn HookedModel,
    seqs: &[ScoredSeq],
    batch_size: usize,
    device: &Device,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<Vec<SeqLogProb>> {
    let n_layers = model.info().n_layers;
    let hooks = HookRequest::new(&[HookPoint::ResidPost], &[n_layers], n_layers)?;
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| seqs[i].ids.len());
    let mut out = vec![
        SeqLogProb {
            sum: 0.0,
            tokens: 0
        };
        seqs.len()
    ];
    for chunk in order.chunks(batch_size.max(1)) {
        let ids: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].ids.as_slice()).collect();
        let batch = TokenBatch::new(&ids, model.pad_id(), device)?;
        let mut sink = FinalHidden::default();
        model.forward_hooked(&batch, &hooks, &mut sink)?;
        let h = sink.0.ok_or_else(|| {
            Error::model(
                &model.info().path,
                "the forward pass returned no final hidden states",
            )
        })?;
        // (sequence, position predicting the token, the token) for every scored token.
        let mut rows: Vec<(usize, usize, u32)> = Vec::new();
        for (b, &i) in chunk.iter().enumerate() {
            let (a, e) = seqs[i].scored;
            rows.extend((a..e).map(|t| (b, t - 1, seqs[i].ids[t])));
        }
        for part in rows.chunks(ROWS_PER_CHUNK) {
            let states = part
                .iter()
                .map(|&(b, p, _)| h.get(b)?.get(p))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let logits = model.lm_logits(&Tensor::stack(&states, 0)?)?;
            let targets: Vec<u32> = part.iter().map(|r| r.2).collect();
            for (&(b, _, _), lp) in part.iter().zip(row_logprobs(&logits, &targets)?) {
                let o = &mut out[chunk[b]];
                o.sum += lp;
                o.tokens += 1;
            }
        }
        on_batch(chunk.len(), batch.lens.iter().sum());
    }
    Ok(out)
}
