//! The frozen part's work, done once per (trainable part, split, token limit): tokenized pairs
//! and the base's states at the trainable blocks' input layer, computed over the cores
//! ([`prepare`], [`Prepared`]), and padded batches of them.

use candle_core::{Device, Tensor};

use super::params::{split, Split, Trainable, ValidTrainParams};
use super::record::TrainProgress;
use crate::capture::{prepare_example, Pooling};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::llama::Llama;
use crate::model::{HookPoint, HookRequest, HookedModel, TokenBatch};

/// One tokenized pair member with its cached input states.
pub(super) struct CachedSeq {
    pub(super) ids: Vec<u32>,
    /// `len × hidden` states at residual layer `first` (empty when embeddings train).
    pub(super) states: Vec<f32>,
}

/// Collects the token states of one residual layer, per batch row (real tokens only).
struct TokenStateSink {
    layer: usize,
    lens: Vec<usize>,
    rows: Vec<Vec<f32>>,
}

impl crate::capture::ActivationSink for TokenStateSink {
    fn begin(&mut self, batch: &TokenBatch) -> Result<()> {
        self.lens = batch.lens.clone();
        Ok(())
    }
    fn layer(&mut self, hook: HookPoint, layer: usize, states: &Tensor) -> Result<()> {
        if hook != HookPoint::ResidPost || layer != self.layer {
            return Ok(());
        }
        let (_, s, d) = states.dims3()?;
        let flat: Vec<f32> = states.flatten_all()?.to_vec1()?;
        for (b, &len) in self.lens.iter().enumerate() {
            self.rows.push(flat[b * s * d..(b * s + len) * d].to_vec());
        }
        Ok(())
    }
}

/// Tokenize the pairs `examples` of `data` and cache the base's states at layer `first`.
pub(super) fn cache_pairs(
    base: &Llama,
    data: &Dataset,
    examples: &[usize],
    first: usize,
    need_states: bool,
    max_tokens: Option<usize>,
    device: &Device,
) -> Result<Vec<CachedSeq>> {
    let mut ids: Vec<Vec<u32>> = Vec::with_capacity(2 * examples.len());
    for &i in examples {
        let prepared = prepare_example(
            base,
            &data.examples[i],
            Pooling::Last,
            max_tokens,
            &data.path,
        )?;
        if prepared.len() != 2 {
            return Err(Error::param(
                "data",
                format!("{}: training needs preference pairs", data.path.display()),
            ));
        }
        ids.extend(prepared.into_iter().map(|p| p.ids));
    }
    let mut states: Vec<Vec<f32>> = vec![Vec::new(); ids.len()];
    if need_states {
        let n = base.blocks().len();
        let req = HookRequest::new(&[HookPoint::ResidPost], &[first], n)?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| (ids[i].len(), i));
        // Length-sorted chunks spread over the cores (one single-threaded BLAS per worker), as
        // capture does.
        let chunks: Vec<&[usize]> = order.chunks(16).collect();
        let rows = crate::parallel::map_indexed(chunks.len(), |c| {
            let chunk = chunks[c];
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let batch = TokenBatch::new(&seqs, base.pad_id(), device)?;
            let mut sink = TokenStateSink {
                layer: first,
                lens: Vec::new(),
                rows: Vec::new(),
            };
            crate::capture::ActivationSink::begin(&mut sink, &batch)?;
            base.forward_hooked(&batch, &req, &mut sink)?;
            Ok(sink.rows)
        })?;
        for (chunk, rows) in chunks.iter().zip(rows) {
            for (&i, row) in chunk.iter().zip(rows) {
                states[i] = row;
            }
        }
    }
    Ok(ids
        .into_iter()
        .zip(states)
        .map(|(ids, states)| CachedSeq { ids, states })
        .collect())
}

/// A padded batch of cached sequences: the token batch and the input states
/// `(rows, seq, hidden)` (zeros at padding), or `None` when embeddings train.
pub(super) fn make_batch(
    seqs: &[&CachedSeq],
    pad_id: u32,
    hidden: usize,
    with_states: bool,
    device: &Device,
) -> Result<(TokenBatch, Option<Tensor>)> {
    let ids: Vec<&[u32]> = seqs.iter().map(|s| s.ids.as_slice()).collect();
    let batch = TokenBatch::new(&ids, pad_id, device)?;
    if !with_states {
        return Ok((batch, None));
    }
    let s = batch.ids.dim(1)?;
    let mut flat = vec![0f32; seqs.len() * s * hidden];
    for (b, seq) in seqs.iter().enumerate() {
        flat[b * s * hidden..b * s * hidden + seq.states.len()].copy_from_slice(&seq.states);
    }
    let x = Tensor::from_vec(flat, (seqs.len(), s, hidden), device)?;
    Ok((batch, Some(x)))
}

/// The frozen part's work, done once and shared by every student trained with the same
/// trainable part, split and token limit: the split, and the base's states at the input layer
/// of the trainable blocks for half 2, the test part and each evaluation set.
pub struct Prepared<'a> {
    pub(super) base: &'a Llama,
    pub(super) data: &'a Dataset,
    /// (trainable, max_tokens, split_seed, test_fraction) it was made for.
    pub(super) key: (Trainable, Option<usize>, u64, f64),
    pub(super) first: usize,
    pub(super) k: usize,
    pub(super) all: bool,
    pub split: Split,
    pub(super) half2: Vec<CachedSeq>,
    pub(super) test: Vec<CachedSeq>,
    pub(super) evals: Vec<(String, Vec<CachedSeq>)>,
}

impl Prepared<'_> {
    /// The source data set.
    pub fn data(&self) -> &Dataset {
        self.data
    }
}

/// Split `data` and cache the base's states for training and evaluation (see [`Prepared`]).
pub fn prepare<'a>(
    base: &'a Llama,
    data: &'a Dataset,
    evals: &[(String, Dataset)],
    params: &ValidTrainParams,
    device: &Device,
    progress: &mut dyn TrainProgress,
) -> Result<Prepared<'a>> {
    let n_layers = base.blocks().len();
    let (k, all) = match params.trainable {
        Trainable::Top(k) => {
            if k > n_layers {
                return Err(Error::param(
                    "trainable",
                    format!("top:{k} exceeds the model's {n_layers} blocks"),
                ));
            }
            (k, false)
        }
        Trainable::All => (n_layers, true),
    };
    let first = n_layers - k;
    if data.format.fields().len() != 2 {
        return Err(Error::param(
            "data",
            format!(
                "{}: training needs preference pairs, not plain texts",
                data.path.display()
            ),
        ));
    }
    let sp = split(data.examples.len(), params.test_fraction, params.split_seed);
    if sp.half2.len() < 2 || sp.half1.len() < 2 {
        return Err(Error::param(
            "data",
            format!(
                "{}: {} pairs are too few to split into test, half 1 and half 2",
                data.path.display(),
                data.examples.len()
            ),
        ));
    }
    progress.phase("caching");
    let mt = params.max_tokens;
    let half2 = cache_pairs(base, data, &sp.half2, first, !all, mt, device)?;
    let test = cache_pairs(base, data, &sp.test, first, !all, mt, device)?;
    let evals = evals
        .iter()
        .map(|(name, ds)| {
            let idx: Vec<usize> = (0..ds.examples.len()).collect();
            Ok((
                name.clone(),
                cache_pairs(base, ds, &idx, first, !all, mt, device)?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(Prepared {
        base,
        data,
        key: (
            params.trainable,
            params.max_tokens,
            params.split_seed,
            params.test_fraction,
        ),
        first,
        k,
        all,
        split: sp,
        half2,
        test,
        evals,
    })
}
