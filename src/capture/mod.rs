//! Capturing pooled per-layer activations: sinks of the models' [`ActivationSink`] push
//! interface (defined in `model`, below this module), pooling, and
//! the [`capture`] driver that tokenizes, batches, runs a [`HookedModel`] and writes a
//! [`store`].
//!
//! Shapes: a sink receives `(batch, seq, hidden)` tensors; pooling turns each sequence into
//! one `hidden`-vector; a store holds `(n_examples, hidden)` matrices per hook, layer, field.
//! Results do not depend on batch size or padding: sequences are right-padded, attention
//! masks hide the padding, and pooling reads real tokens only (tests prove it).

pub mod logprob;
pub mod merge;
mod params;
pub mod store;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
pub use crate::model::ActivationSink;
use crate::model::{HookPoint, HookRequest, HookedModel, TokenBatch};
pub use params::{CaptureParams, LayerSelection, Pooled, Pooling, ValidCaptureParams};
pub use repdrift_core::store::{ExamplesPart, Store};
pub use store::Manifest;

/// Keeps every activation tensor as it comes (for tests and small experiments).
#[derive(Default)]
pub struct CollectSink {
    pub tensors: Vec<(HookPoint, usize, Tensor)>,
}

impl ActivationSink for CollectSink {
    fn layer(&mut self, hook: HookPoint, layer: usize, states: &Tensor) -> Result<()> {
        self.tensors.push((hook, layer, states.clone()));
        Ok(())
    }
}

/// One tokenized sequence and the token range `[start, end)` that pooling averages.
#[derive(Debug, Clone)]
pub struct PreparedSeq {
    pub ids: Vec<u32>,
    pub pool: (usize, usize),
}

/// Tokenize one example's sequences and compute their pooling ranges.
pub fn prepare_example(
    model: &dyn HookedModel,
    ex: &crate::data::Example,
    pooling: Pooling,
    max_tokens: Option<usize>,
    data_path: &Path,
) -> Result<Vec<PreparedSeq>> {
    ex.sequences
        .iter()
        .map(|seq| {
            let toks = model.tokenizer().encode(&seq.text, max_tokens)?;
            let n = toks.ids.len();
            if n == 0 {
                return Err(Error::MalformedLine {
                    path: data_path.to_path_buf(),
                    line: ex.line,
                    reason: "a sequence has no tokens (empty text)".into(),
                });
            }
            let pool = match pooling {
                Pooling::Last => (n - 1, n),
                Pooling::Mean => (0, n),
                Pooling::ResponseMean => {
                    let start = seq.response_start.ok_or_else(|| {
                        Error::param("pool", "response-mean needs preference pairs (prompt/chosen/rejected or HH transcripts)")
                    })?;
                    let resp: Vec<usize> = toks
                        .offsets
                        .iter()
                        .enumerate()
                        .filter(|(_, &(a, b))| b > start && b > a)
                        .map(|(i, _)| i)
                        .collect();
                    match (resp.first(), resp.last()) {
                        (Some(&a), Some(&b)) => (a, b + 1),
                        _ => {
                            return Err(Error::MalformedLine {
                                path: data_path.to_path_buf(),
                                line: ex.line,
                                reason: "the response has no tokens (empty reply)".into(),
                            })
                        }
                    }
                }
            };
            Ok(PreparedSeq {
                ids: toks.ids,
                pool,
            })
        })
        .collect()
}

/// Pools each `(batch, seq, hidden)` activation into rows of per-(hook, layer) buffers.
pub struct PoolingSink {
    hidden: usize,
    /// For the current batch: (destination row, pooling range) per batch row.
    targets: Vec<(usize, (usize, usize))>,
    /// (hook, layer) → rows × hidden, row-major.
    pub buffers: Pooled,
    /// One reward per row when the model's reward head was read (else empty).
    pub rewards: Vec<f32>,
    rows: usize,
}

impl PoolingSink {
    /// A sink for `rows` pooled rows of width `hidden`.
    pub fn new(rows: usize, hidden: usize) -> Self {
        Self {
            hidden,
            targets: Vec::new(),
            buffers: HashMap::new(),
            rewards: Vec::new(),
            rows,
        }
    }

    /// Set where the rows of the next batch go.
    pub fn set_targets(&mut self, targets: Vec<(usize, (usize, usize))>) {
        self.targets = targets;
    }
}

impl ActivationSink for PoolingSink {
    fn reward(&mut self, rewards: &[f32]) -> Result<()> {
        if self.rewards.is_empty() {
            self.rewards = vec![0f32; self.rows];
        }
        for (&(dest, _), &r) in self.targets.iter().zip(rewards) {
            self.rewards[dest] = r;
        }
        Ok(())
    }

    fn layer(&mut self, hook: HookPoint, layer: usize, states: &Tensor) -> Result<()> {
        let (b, s, d) = states.dims3()?;
        if d != self.hidden || b != self.targets.len() {
            return Err(Error::ShapeMismatch {
                what: format!("activation {hook} layer {layer}"),
                left_name: "expected (batch, *, hidden)".into(),
                left: vec![self.targets.len(), s, self.hidden],
                right_name: "model output".into(),
                right: vec![b, s, d],
            });
        }
        let flat: Vec<f32> = states
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let (rows, hidden) = (self.rows, self.hidden);
        let buf = self
            .buffers
            .entry((hook, layer))
            .or_insert_with(|| vec![0f32; rows * hidden]);
        let mut acc = vec![0f64; d];
        for (bi, &(dest, (a, z))) in self.targets.iter().enumerate() {
            acc.iter_mut().for_each(|v| *v = 0.0);
            for t in a..z {
                let row = &flat[(bi * s + t) * d..(bi * s + t + 1) * d];
                for (av, &x) in acc.iter_mut().zip(row) {
                    *av += x as f64;
                }
            }
            let inv = 1.0 / (z - a) as f64;
            for (o, av) in buf[dest * d..(dest + 1) * d].iter_mut().zip(&acc) {
                *o = (av * inv) as f32;
            }
        }
        Ok(())
    }
}

/// Pool the requested activations of `seqs` (in any order) into per-(hook, layer) matrices of
/// `seqs.len()` rows, in `seqs` order.
///
/// Sequences are sorted by length and cut into batches of `batch_size` to limit padding; on
/// CPU each batch is cut into forward passes of at most [`CPU_PART`] sequences, shared out over
/// the machine's cores, one single-threaded BLAS each (a lone pass runs its products over the
/// cores instead). The passes depend on the batch size alone, and a product's bits do not
/// depend on how many cores run it ([`crate::model::linear::sgemm`]), so the values do not
/// depend on the core count, bit for bit. Across batch sizes they agree to f32 rounding only:
/// OpenBLAS may round a row differently when its matrix has more rows (tests check batch-size
/// invariance within a tolerance).
///
/// (Regression, CI on an AMD EPYC host: each batch used to be split into one part per core,
/// so a one-core run multiplied 8-row matrices where a two-core run multiplied 4-row ones, and
/// `teacher`'s labels at one and two cores differed by 1e-8.)
pub fn pool_sequences(
    model: &dyn HookedModel,
    seqs: &[PreparedSeq],
    hooks: &HookRequest,
    batch_size: usize,
    device: &Device,
    on_batch: impl FnMut(usize, usize) + Send,
) -> Result<Pooled> {
    Ok(pool_with_rewards(model, seqs, hooks, batch_size, device, on_batch)?.0)
}

/// Sequences per forward pass on CPU: small enough that the passes of one default batch (8)
/// keep two cores busy, large enough that each product still runs near the BLAS peak.
pub const CPU_PART: usize = 4;

/// [`pool_sequences`], plus one reward per sequence when `hooks` asks for the model's reward
/// head.
pub fn pool_with_rewards(
    model: &dyn HookedModel,
    seqs: &[PreparedSeq],
    hooks: &HookRequest,
    batch_size: usize,
    device: &Device,
    on_batch: impl FnMut(usize, usize) + Send,
) -> Result<(Pooled, Option<Vec<f32>>)> {
    let hidden = model.info().hidden_size;
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (seqs[i].ids.len(), i));
    let workers = if matches!(device, Device::Cpu) {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        1
    };
    // On CPU each batch is cut into parts of at most `CPU_PART` sequences — by its size alone,
    // never by the number of cores — and the parts are shared out over the cores.
    let part = if matches!(device, Device::Cpu) {
        CPU_PART
    } else {
        usize::MAX
    };
    let subs: Vec<Vec<usize>> = order
        .chunks(batch_size.max(1))
        .flat_map(|c| c.chunks(part.min(c.len())).map(|p| p.to_vec()))
        .collect();
    let workers = workers.min(subs.len()).max(1);
    let on_batch = std::sync::Mutex::new(on_batch);
    let run = |mine: Vec<&Vec<usize>>| -> Result<PoolingSink> {
        let mut sink = PoolingSink::new(seqs.len(), hidden);
        for sub in mine {
            let ids: Vec<&[u32]> = sub.iter().map(|&i| seqs[i].ids.as_slice()).collect();
            let batch = TokenBatch::new(&ids, model.pad_id(), device)?;
            sink.set_targets(sub.iter().map(|&i| (i, seqs[i].pool)).collect());
            sink.begin(&batch)?;
            model.forward_hooked(&batch, hooks, &mut sink)?;
            sink.finish()?;
            let tokens = ids.iter().map(|s| s.len()).sum();
            (on_batch.lock().expect("progress callback panicked"))(sub.len(), tokens);
        }
        Ok(sink)
    };
    let sinks: Vec<PoolingSink> = if workers == 1 {
        // One part: its products are cut into blocks that run over the cores.
        vec![run(subs.iter().collect())?]
    } else {
        let _blas = crate::model::linear::BlasThreads::single();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let mine: Vec<&Vec<usize>> = subs.iter().skip(w).step_by(workers).collect();
                    let run = &run;
                    // One pass per core already: the pass itself stays on this core.
                    scope.spawn(move || crate::model::llama_grad::serial(|| run(mine)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("capture worker panicked"))
                .collect::<Result<Vec<_>>>()
        })?
    };
    // Each row was written by exactly one worker; the others left it at zero.
    let rewards = if hooks.reward() {
        let mut r = vec![0f32; seqs.len()];
        for sink in &sinks {
            r.iter_mut().zip(&sink.rewards).for_each(|(a, b)| *a += b);
        }
        Some(r)
    } else {
        None
    };
    let mut it = sinks.into_iter();
    let mut merged = it.next().expect("at least one worker").buffers;
    for sink in it {
        for (key, buf) in sink.buffers {
            match merged.get_mut(&key) {
                Some(m) => m.iter_mut().zip(&buf).for_each(|(a, b)| *a += b),
                None => {
                    merged.insert(key, buf);
                }
            }
        }
    }
    Ok((merged, rewards))
}

/// Reports capture progress (the library never prints).
pub trait Progress: Send {
    /// `total` examples to do, `done` of them already in the store (resume).
    fn start(&mut self, _total: usize, _done: usize) {}
    /// Sequences and real tokens just processed.
    fn advance(&mut self, _sequences: usize, _tokens: usize) {}
    /// Examples now safely written.
    fn part_written(&mut self, _examples_done: usize) {}
    fn finish(&mut self) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a capture did.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSummary {
    pub examples: usize,
    pub parts_written: usize,
    pub parts_skipped: usize,
    pub tokens: usize,
}

/// Capture `data` through `model` into the store at `out`.
///
/// ```no_run
/// use repdrift::capture::{capture, CaptureParams, NoProgress};
/// let dev = candle_core::Device::Cpu;
/// let model = repdrift::model::load("models/all-minilm-l6-v2".as_ref(), &dev).unwrap();
/// let data = repdrift::data::read_jsonl("probes/data/source.jsonl".as_ref(), None).unwrap();
/// let params = CaptureParams::default().check().unwrap();
/// capture(model.as_ref(), &data, "out/store".as_ref(), &params, &dev, &mut NoProgress).unwrap();
/// ```
pub fn capture(
    model: &dyn HookedModel,
    data: &Dataset,
    out: &Path,
    params: &ValidCaptureParams,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<CaptureSummary> {
    let hooks = params.model_request(model)?;
    if params.pooling == Pooling::ResponseMean && data.format == crate::data::DataFormat::Text {
        return Err(Error::param(
            "pool",
            "response-mean needs preference pairs (prompt/chosen/rejected or HH transcripts)",
        ));
    }
    // Tokenize everything first: bad lines fail before anything is written.
    let prepared: Vec<Vec<PreparedSeq>> = data
        .examples
        .iter()
        .map(|ex| prepare_example(model, ex, params.pooling, params.max_tokens, &data.path))
        .collect::<Result<_>>()?;
    let manifest = store::plan_manifest(model.info(), data, params, &hooks);
    if let (Some((i, n)), true) = (params.shard, manifest.planned_parts.is_empty()) {
        return Err(Error::param(
            "shard",
            format!(
                "shard {i}/{n} holds no part: {} examples make {} parts of --part-size {}; use at most that many shards or a smaller --part-size",
                data.examples.len(),
                data.examples.len().div_ceil(params.part_size),
                params.part_size
            ),
        ));
    }
    let mut writer = store::StoreWriter::open(out, manifest, params.resume, params.force)?;
    let n_fields = data.format.fields().len();
    // A shard does its own parts only.
    let total: usize = writer.manifest().planned_parts.iter().map(|p| p.rows).sum();
    let done_before = writer.examples_done();
    progress.start(total, done_before);
    let mut summary = CaptureSummary {
        examples: total,
        parts_written: 0,
        parts_skipped: writer.parts_done(),
        tokens: 0,
    };
    for part in writer.parts_todo() {
        let (start, rows) = (part.start, part.rows);
        let seqs: Vec<PreparedSeq> = prepared[start..start + rows]
            .iter()
            .flat_map(|s| s.iter().cloned())
            .collect();
        let mut tokens = 0usize;
        let (buffers, rewards) =
            pool_with_rewards(model, &seqs, &hooks, params.batch_size, device, |n, t| {
                tokens += t;
                progress.advance(n, t);
            })?;
        summary.tokens += tokens;
        let n_tokens: Vec<i64> = seqs.iter().map(|s| s.ids.len() as i64).collect();
        writer.write_part(
            part.index,
            &buffers,
            n_fields,
            &n_tokens,
            &data.examples[start..start + rows],
            rewards.as_deref(),
        )?;
        summary.parts_written += 1;
        progress.part_written(writer.examples_done());
    }
    writer.finish()?;
    progress.finish();
    Ok(summary)
}
