//! Training weak-to-strong reward models: `gold`, `naive`, `confidence` and `anchor` students
//! on a Llama backbone, Bradley–Terry loss, checkpoints that `capture` loads.
//!
//! Protocol (Burns et al. 2023, adapted to pairwise preferences): the source pairs are split,
//! seeded, into a test part (`test_fraction`), half 1 and half 2. The weak teacher
//! ([`teacher`]) is fitted on gold labels of half 1 and gives soft labels `p` for half 2;
//! students train on half 2:
//! - `gold`: BT cross-entropy to the gold label (`p = 1`: the ceiling);
//! - `naive`: BT cross-entropy to the weak soft labels, `−p log σ(Δ) − (1 − p) log σ(−Δ)` with
//!   `Δ = r(chosen) − r(rejected)`;
//! - `confidence`: Burns et al.'s auxiliary confidence loss, cross-entropy to
//!   `(1 − α) p + α · 1[Δ > 0]` (the student's own hardened prediction, threshold 0.5, no
//!   gradient through the target), α ramped linearly from 0 to 0.5 over the first 10 % of steps;
//! - `anchor`: `naive + λ · mean over anchor layers of dist(s_l, b_l)`, where `s_l` is the
//!   student's and `b_l` the frozen base's last-token state at residual layer `l` (HF
//!   `hidden_states` indexing), the reference computed once without gradient; `mse` distance
//!   is `mean((s − b)²) / mean(b²)` (normalised per layer by the base's mean square over the
//!   training sequences), `cosine` is `mean(1 − cos(s, b))`.
//!
//! Only the top `K` blocks, the final norm and the head train by default; the frozen bottom
//! runs once and its output states are cached. Shapes: a batch of `B` pairs is `2B`
//! sequences, rows `2i` (chosen) and `2i + 1` (rejected).

mod eval;
pub mod optim;
pub mod reward_model;
pub mod teacher;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::capture::{prepare_example, Pooling};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::{json_bytes, write_atomic};
use crate::model::llama::Llama;
use crate::model::{HookPoint, HookRequest, HookedModel, TokenBatch};
pub use eval::PairSet;
use eval::{fit_head_on_base, rewards};
pub use reward_model::TrainableRm;
pub use teacher::{fit_teacher, WeakLabels};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Gold,
    Naive,
    Confidence,
    Anchor,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "gold" => Method::Gold,
            "naive" => Method::Naive,
            "confidence" => Method::Confidence,
            "anchor" => Method::Anchor,
            other => {
                return Err(Error::param(
                    "method",
                    format!("unknown method `{other}` (known: gold, naive, confidence, anchor)"),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Gold => "gold",
            Method::Naive => "naive",
            Method::Confidence => "confidence",
            Method::Anchor => "anchor",
        }
    }

    /// Whether the method trains on the weak teacher's labels.
    pub fn needs_teacher(self) -> bool {
        self != Method::Gold
    }
}

/// The anchor distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnchorDistance {
    Mse,
    Cosine,
}

impl AnchorDistance {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mse" => Ok(AnchorDistance::Mse),
            "cosine" => Ok(AnchorDistance::Cosine),
            other => Err(Error::param(
                "anchor-distance",
                format!("unknown distance `{other}` (known: mse, cosine)"),
            )),
        }
    }
}

/// Which parameters train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trainable {
    /// The top `K` blocks, the final norm and the head.
    Top(usize),
    /// Every block, the embeddings, the final norm and the head.
    All,
}

impl Trainable {
    /// `top:K` or `all`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(Trainable::All);
        }
        s.strip_prefix("top:")
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|&k| k > 0)
            .map(Trainable::Top)
            .ok_or_else(|| {
                Error::param(
                    "trainable",
                    format!("expected `top:K` (K ≥ 1) or `all`, got `{s}`"),
                )
            })
    }
}

/// Training parameters as given (see [`TrainParams::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub method: Method,
    /// Residual layers (HF `hidden_states` indexing) to anchor, for `anchor`.
    pub anchor_layers: Vec<usize>,
    /// λ, one value for every anchor layer, or one per layer.
    pub anchor_weight: Vec<f64>,
    pub anchor_distance: AnchorDistance,
    pub trainable: Trainable,
    pub epochs: usize,
    pub lr: f64,
    /// Pairs per step.
    pub batch_size: usize,
    pub max_tokens: Option<usize>,
    /// Seeds the head's initialisation and the batch order.
    pub seed: u64,
    /// Seeds the test / half 1 / half 2 split (keep it fixed across the students of a run).
    pub split_seed: u64,
    /// Share of the source pairs held out as the in-distribution test set.
    pub test_fraction: f64,
    /// Linear warm-up share of the steps (then linear decay to zero).
    pub warmup: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clipping (0 = none).
    pub max_grad_norm: f64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// How the scalar head starts: random, or fitted on the frozen base (LP-FT).
    #[serde(default)]
    pub head_init: HeadInit,
}

/// The head's initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    /// N(0, 0.02²), seeded.
    #[default]
    Random,
    /// LP-FT (Kumar et al. 2022): a Bradley–Terry linear probe (L2, C = 1) fitted on the frozen
    /// base's final normed last-token states of the training pairs, on the labels the method
    /// trains on (weak labels hardened at 0.5 for weak-to-strong students), then fine-tuned.
    Probe,
}

impl HeadInit {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "random" => Ok(HeadInit::Random),
            "probe" => Ok(HeadInit::Probe),
            _ => Err(Error::param(
                "head-init",
                format!("expected `random` or `probe`, got `{s}`"),
            )),
        }
    }
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            method: Method::Naive,
            anchor_layers: Vec::new(),
            anchor_weight: vec![0.1],
            anchor_distance: AnchorDistance::Mse,
            trainable: Trainable::Top(4),
            epochs: 2,
            lr: 2e-5,
            batch_size: 8,
            max_tokens: Some(256),
            seed: 0,
            split_seed: 0,
            test_fraction: 0.2,
            warmup: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            checkpoint_every: 20,
            head_init: HeadInit::Random,
        }
    }
}

/// Checked parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTrainParams(TrainParams);

impl std::ops::Deref for ValidTrainParams {
    type Target = TrainParams;
    fn deref(&self) -> &TrainParams {
        &self.0
    }
}

impl TrainParams {
    /// Check once, at the boundary (layer ranges are checked against the model in [`train`]).
    pub fn check(self) -> Result<ValidTrainParams> {
        let p = self;
        if p.epochs == 0 {
            return Err(Error::param("epochs", "must be at least 1"));
        }
        if p.batch_size == 0 {
            return Err(Error::param("batch-size", "must be at least 1"));
        }
        if !(p.lr > 0.0 && p.lr.is_finite()) {
            return Err(Error::param(
                "lr",
                format!("must be positive, got {}", p.lr),
            ));
        }
        if p.max_tokens == Some(0) {
            return Err(Error::param("max-tokens", "must be at least 1"));
        }
        if !(0.0..0.9).contains(&p.test_fraction) {
            return Err(Error::param("test-fraction", "must lie in [0, 0.9)"));
        }
        if !(0.0..=1.0).contains(&p.warmup) {
            return Err(Error::param("warmup", "must lie in [0, 1]"));
        }
        if p.weight_decay < 0.0 || p.max_grad_norm < 0.0 {
            return Err(Error::param(
                "weight-decay",
                "weight decay and gradient clipping must not be negative",
            ));
        }
        if p.method == Method::Anchor {
            if p.anchor_layers.is_empty() {
                return Err(Error::param(
                    "anchor-layers",
                    "--method anchor needs --anchor-layers (e.g. 26,28,30)",
                ));
            }
            let k = p.anchor_weight.len();
            if k != 1 && k != p.anchor_layers.len() {
                return Err(Error::param(
                    "anchor-weight",
                    format!(
                        "give one λ or one per anchor layer ({} layers, {k} weights)",
                        p.anchor_layers.len()
                    ),
                ));
            }
            if p.anchor_weight
                .iter()
                .any(|w| !(*w >= 0.0 && w.is_finite()))
            {
                return Err(Error::param("anchor-weight", "λ must be finite and ≥ 0"));
            }
        } else if !p.anchor_layers.is_empty() {
            return Err(Error::param(
                "anchor-layers",
                format!(
                    "only --method anchor uses anchor layers (method is {})",
                    p.method.name()
                ),
            ));
        }
        let mut p = p;
        if p.method == Method::Anchor {
            let mut pairs: Vec<(usize, f64)> = p
                .anchor_layers
                .iter()
                .enumerate()
                .map(|(i, &l)| (l, p.anchor_weight[i.min(p.anchor_weight.len() - 1)]))
                .collect();
            pairs.sort_by_key(|x| x.0);
            pairs.dedup_by_key(|x| x.0);
            p.anchor_layers = pairs.iter().map(|x| x.0).collect();
            p.anchor_weight = pairs.iter().map(|x| x.1).collect();
        }
        Ok(ValidTrainParams(p))
    }
}

/// The seeded split of the source pairs (indices into the data set).
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub test: Vec<usize>,
    pub half1: Vec<usize>,
    pub half2: Vec<usize>,
}

/// Split `n` pairs: a seeded permutation; the first `round(n · test_fraction)` are the test
/// part, the rest is cut in two halves (half 2 gets the odd one). Each part is sorted.
pub fn split(n: usize, test_fraction: f64, seed: u64) -> Split {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x5917));
    let t = ((n as f64) * test_fraction).round() as usize;
    let rest = n - t;
    let mut test = idx[..t].to_vec();
    let mut half1 = idx[t..t + rest / 2].to_vec();
    let mut half2 = idx[t + rest / 2..].to_vec();
    test.sort();
    half1.sort();
    half2.sort();
    Split { test, half1, half2 }
}

/// Reports training progress (the library never prints).
pub trait TrainProgress {
    /// A phase begins (`"caching"`, `"training"`, `"evaluating"`, `"saving"`).
    fn phase(&mut self, _name: &str) {}
    /// `total` steps, `done` of them restored from a checkpoint.
    fn start(&mut self, _total: usize, _done: usize) {}
    /// One step finished.
    fn step(&mut self, _rec: &StepRecord) {}
    fn finish(&mut self) {}
}

/// A [`TrainProgress`] that ignores everything.
pub struct NoTrainProgress;
impl TrainProgress for NoTrainProgress {}

/// One line of `loss_log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    /// The Bradley–Terry (cross-entropy) part.
    pub bt: f64,
    /// The anchor distance before λ (mean over anchor layers), for `anchor`.
    pub anchor: Option<f64>,
    /// α of the confidence loss, for `confidence`.
    pub alpha: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    /// Share of the batch's pairs with r(chosen) > r(rejected).
    pub batch_accuracy: f64,
    pub seconds: f64,
}

/// `train_summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub format: String,
    pub version: u32,
    pub method: Method,
    pub base: String,
    pub base_sha256: String,
    pub data: String,
    pub data_sha256: String,
    pub n_train: usize,
    pub n_test: usize,
    pub steps: usize,
    pub trainable_parameters: usize,
    /// Training seconds and steps per second (this process's steps only, after a resume).
    pub train_seconds: f64,
    pub steps_per_second: f64,
    /// Mean BT loss over the last epoch's steps.
    pub final_bt_loss: f64,
    /// The student's pairwise accuracy: `source_test` and each `--eval` set.
    pub accuracy: BTreeMap<String, f64>,
    /// The weak teacher's accuracies (from its labels file), for methods that use one.
    pub teacher_accuracy: Option<BTreeMap<String, f64>>,
}

/// What a checkpoint records beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    params: TrainParams,
    data_sha256: String,
    base_sha256: String,
    step: usize,
    log: Vec<StepRecord>,
}

fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// One tokenized pair member with its cached input states.
struct CachedSeq {
    ids: Vec<u32>,
    /// `len × hidden` states at residual layer `first` (empty when embeddings train).
    states: Vec<f32>,
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
fn cache_pairs(
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
fn make_batch(
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

/// softplus(x) = log(1 + eˣ), from differentiable primitives: relu(x) + log(1 + e^−|x|).
fn softplus(x: &Tensor) -> Result<Tensor> {
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

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Pairwise accuracy of rewards laid out chosen, rejected, chosen, … (a tie is wrong).
pub fn pairwise_accuracy(r: &[f32]) -> f64 {
    let n = r.len() / 2;
    let right = (0..n).filter(|&i| r[2 * i] > r[2 * i + 1]).count();
    right as f64 / n.max(1) as f64
}

/// The frozen part's work, done once and shared by every student trained with the same
/// trainable part, split and token limit: the split, and the base's states at the input layer
/// of the trainable blocks for half 2, the test part and each evaluation set.
pub struct Prepared<'a> {
    base: &'a Llama,
    data: &'a Dataset,
    /// (trainable, max_tokens, split_seed, test_fraction) it was made for.
    key: (Trainable, Option<usize>, u64, f64),
    first: usize,
    k: usize,
    all: bool,
    pub split: Split,
    half2: Vec<CachedSeq>,
    test: Vec<CachedSeq>,
    evals: Vec<(String, Vec<CachedSeq>)>,
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

/// Where `train` writes and how it treats what is there.
pub struct TrainJob<'a> {
    /// The weak teacher's labels (required unless `gold`).
    pub labels: Option<&'a WeakLabels>,
    pub out: &'a Path,
    /// Continue from the checkpoint in `out` when there is one.
    pub resume: bool,
    /// Replace whatever `out` holds.
    pub force: bool,
    /// Stop after this many steps in total, leaving a checkpoint (for time-boxed jobs).
    pub stop_after: Option<usize>,
}

/// Train a reward model on the source `data` and write it to `job.out` (see the module docs);
/// `evals` are named evaluation sets scored at the end. Returns `None` when `stop_after`
/// stopped it early (a checkpoint is left to resume).
///
/// ```no_run
/// use repdrift::train::{train, Method, TrainJob, TrainParams, NoTrainProgress};
/// let dev = candle_core::Device::Cpu;
/// let base = repdrift::model::load_llama("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), &dev).unwrap();
/// let data = repdrift::data::read_jsonl("probes/data/source.jsonl".as_ref(), None).unwrap();
/// let params = TrainParams { method: Method::Gold, ..Default::default() }.check().unwrap();
/// let job = TrainJob { labels: None, out: "runs/gold".as_ref(), resume: false, force: true, stop_after: None };
/// let summary = train(&base, &data, &[], &params, &job, &dev, &mut NoTrainProgress).unwrap();
/// ```
pub fn train(
    base: &Llama,
    data: &Dataset,
    evals: &[(String, Dataset)],
    params: &ValidTrainParams,
    job: &TrainJob<'_>,
    device: &Device,
    progress: &mut dyn TrainProgress,
) -> Result<Option<TrainSummary>> {
    check_out(job)?;
    let prepared = prepare(base, data, evals, params, device, progress)?;
    train_prepared(&prepared, params, job, device, progress)
}

/// Refuse to overwrite a finished or unfinished run unless asked (before any work is done).
fn check_out(job: &TrainJob<'_>) -> Result<()> {
    let ckpt = checkpoint_dir(job.out);
    let finished = job.out.join("model.safetensors").exists();
    if job.out.exists() && !job.force {
        if finished && !job.resume {
            return Err(Error::StoreExists {
                path: job.out.to_path_buf(),
            });
        }
        if !finished && !job.resume && ckpt.exists() {
            return Err(Error::param(
                "resume",
                format!(
                    "{} holds an unfinished run; continue it with --resume or replace it with --force",
                    job.out.display()
                ),
            ));
        }
    }
    Ok(())
}

/// [`train`] on data [`prepare`]d once (several students share the cache).
pub fn train_prepared(
    prep: &Prepared<'_>,
    params: &ValidTrainParams,
    job: &TrainJob<'_>,
    device: &Device,
    progress: &mut dyn TrainProgress,
) -> Result<Option<TrainSummary>> {
    train_observed(prep, params, job, device, progress, None, true)
}

/// Looks at the model while it trains (the study's trajectories), without checkpoints.
pub trait Observer {
    /// Observe every this many steps (0: only before the first and after the last step).
    fn every(&self) -> usize;
    /// Called at step 0 (the untrained model), every [`every`](Self::every) steps, and after
    /// the last step (`step == total`).
    fn observe(&mut self, step: usize, rm: &TrainableRm<'_>, prep: &Prepared<'_>) -> Result<()>;
}

/// [`train_prepared`] with an optional [`Observer`]; `save_model = false` writes no model
/// directory (the caller evaluates the model in memory through the observer).
pub fn train_observed(
    prep: &Prepared<'_>,
    params: &ValidTrainParams,
    job: &TrainJob<'_>,
    device: &Device,
    progress: &mut dyn TrainProgress,
    mut observer: Option<&mut dyn Observer>,
    save_model: bool,
) -> Result<Option<TrainSummary>> {
    let key = (
        params.trainable,
        params.max_tokens,
        params.split_seed,
        params.test_fraction,
    );
    if key != prep.key {
        return Err(Error::param(
            "train",
            "the prepared cache was made for another trainable part, token limit or split",
        ));
    }
    let (base, data) = (prep.base, prep.data);
    let n_layers = base.blocks().len();
    let hidden = base.config().hidden_size;
    let (first, k, all) = (prep.first, prep.k, prep.all);
    let min_anchor = if all { 0 } else { first + 1 };
    for &l in &params.anchor_layers {
        if l < min_anchor || l > n_layers {
            return Err(Error::LayerOutOfRange {
                layer: l,
                min: min_anchor,
                max: n_layers,
                what: format!(
                    "anchoring with trainable {}: lower layers are frozen and cannot drift",
                    match params.trainable {
                        Trainable::Top(k) => format!("top:{k}"),
                        Trainable::All => "all".into(),
                    }
                ),
            });
        }
    }
    check_out(job)?;
    let ckpt = checkpoint_dir(job.out);
    if job.force && job.out.exists() {
        std::fs::remove_dir_all(job.out).map_err(|e| Error::io(job.out, e))?;
    }
    std::fs::create_dir_all(job.out).map_err(|e| Error::io(job.out, e))?;
    let sp = &prep.split;
    // Soft labels for half 2.
    let targets: Vec<f64> = if params.method.needs_teacher() {
        let labels = job.labels.ok_or_else(|| {
            Error::param(
                "teacher",
                format!(
                    "--method {} trains on weak labels: give --teacher MODEL or --teacher-labels FILE",
                    params.method.name()
                ),
            )
        })?;
        let half2_lines: Vec<usize> = sp.half2.iter().map(|&i| data.examples[i].line).collect();
        if labels.data_sha256 != data.sha256
            || labels.split_seed != params.split_seed
            || labels.test_fraction != params.test_fraction
            || labels.lines != half2_lines
        {
            return Err(Error::param(
                "teacher-labels",
                format!(
                    "the weak labels were made for data sha256 {} (split seed {}, test fraction {}), not for {} (sha256 {}, split seed {}, test fraction {})",
                    labels.data_sha256, labels.split_seed, labels.test_fraction,
                    data.path.display(), data.sha256, params.split_seed, params.test_fraction
                ),
            ));
        }
        labels.p.clone()
    } else {
        vec![1.0; sp.half2.len()]
    };

    let train_seqs = &prep.half2;
    let rm = TrainableRm::new(base, k, all, params.seed)?;
    if params.head_init == HeadInit::Probe {
        fit_head_on_base(&rm, train_seqs, &targets, params.batch_size, device)?;
    }
    let vars = rm.vars();
    let trainable_parameters: usize = vars.iter().map(|v| v.elem_count()).sum();

    // Anchor references: the frozen base's last-token states (the step-0 model, no gradient).
    let anchors = &params.anchor_layers;
    let mut refs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); anchors.len()];
    let mut mean_sq = vec![1f64; anchors.len()];
    if !anchors.is_empty() {
        for l in refs.iter_mut() {
            *l = vec![Vec::new(); train_seqs.len()];
        }
        for chunk in (0..train_seqs.len())
            .collect::<Vec<_>>()
            .chunks(2 * params.batch_size)
        {
            let seqs: Vec<&CachedSeq> = chunk.iter().map(|&i| &train_seqs[i]).collect();
            let (batch, x) = make_batch(&seqs, base.pad_id(), hidden, !all, device)?;
            let out = rm.forward(x.as_ref(), &batch, anchors, false)?;
            for (a, t) in out.pooled.iter().enumerate() {
                let rows: Vec<Vec<f32>> = t.to_vec2()?;
                for (&i, row) in chunk.iter().zip(rows) {
                    refs[a][i] = row;
                }
            }
        }
        for (a, layer) in refs.iter().enumerate() {
            let (mut s, mut n) = (0f64, 0usize);
            for row in layer {
                s += row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                n += row.len();
            }
            mean_sq[a] = (s / n.max(1) as f64).max(f64::MIN_POSITIVE);
        }
    }

    let mut opt = optim::AdamW::new(&vars, params.weight_decay)?;
    let n_pairs = sp.half2.len();
    let steps_per_epoch = n_pairs.div_ceil(params.batch_size);
    let total = steps_per_epoch * params.epochs;
    let mut log: Vec<StepRecord> = Vec::new();
    let mut step0 = 0;
    if job.resume && ckpt.join("state.json").exists() {
        step0 = load_checkpoint(&ckpt, params, data, base, &rm, &mut opt, &mut log)?;
    }
    if let Some(ref mut o) = observer {
        if step0 == 0 {
            o.observe(0, &rm, prep)?;
        }
    }
    progress.phase("training");
    progress.start(total, step0);
    let t_start = Instant::now();
    let stop = job.stop_after.unwrap_or(usize::MAX).min(total);
    let mut step = step0;
    // The pair order of the current epoch (a seeded shuffle per epoch, so a resumed run
    // sees the same batches).
    let mut order: (usize, Vec<usize>) = (usize::MAX, Vec::new());
    while step < stop {
        let epoch = step / steps_per_epoch;
        let j = step % steps_per_epoch;
        if order.0 != epoch {
            let mut o: Vec<usize> = (0..n_pairs).collect();
            o.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
                params
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(epoch as u64),
            ));
            order = (epoch, o);
        }
        let order = &order.1;
        let pairs = &order[j * params.batch_size..((j + 1) * params.batch_size).min(n_pairs)];
        let t0 = Instant::now();
        let seqs: Vec<&CachedSeq> = pairs
            .iter()
            .flat_map(|&p| [&train_seqs[2 * p], &train_seqs[2 * p + 1]])
            .collect();
        let (batch, x) = make_batch(&seqs, base.pad_id(), hidden, !all, device)?;
        let out = rm.forward(x.as_ref(), &batch, anchors, true)?;
        let r = out.rewards.reshape((pairs.len(), 2))?;
        let delta = (r.narrow(1, 0, 1)? - r.narrow(1, 1, 1)?)?.squeeze(1)?;
        let p_weak: Vec<f32> = pairs.iter().map(|&p| targets[p] as f32).collect();
        let mut p = Tensor::from_vec(p_weak, pairs.len(), device)?;
        let mut alpha = None;
        if params.method == Method::Confidence {
            let a = 0.5 * ((step as f64 + 1.0) / (0.1 * total as f64).max(1.0)).min(1.0);
            let hard = delta.detach().gt(0f64)?.to_dtype(DType::F32)?;
            p = ((p * (1.0 - a))? + (hard * a)?)?;
            alpha = Some(a);
        }
        let bt = bt_loss(&delta, &p)?;
        let mut loss = bt.clone();
        let mut anchor_val = None;
        if !anchors.is_empty() {
            let mut acc: Option<Tensor> = None;
            let mut plain = 0f64;
            for (a, s) in out.pooled.iter().enumerate() {
                let rows: Vec<f32> = seqs
                    .iter()
                    .enumerate()
                    .flat_map(|(b, _)| {
                        let pair = pairs[b / 2];
                        refs[a][2 * pair + b % 2].clone()
                    })
                    .collect();
                let b = Tensor::from_vec(rows, (seqs.len(), hidden), device)?;
                let dist = anchor_distance(s, &b, params.anchor_distance, mean_sq[a])?;
                plain += scalar(&dist)?;
                let term = (dist * params.anchor_weight[a])?;
                acc = Some(match acc {
                    None => term,
                    Some(t) => (t + term)?,
                });
            }
            let n_a = anchors.len() as f64;
            anchor_val = Some(plain / n_a);
            loss = (loss + (acc.expect("at least one anchor") / n_a)?)?;
        }
        let grads = loss.backward()?;
        let gnorm = optim::AdamW::grad_norm(&vars, &grads)?;
        let lr = optim::lr_at(step, total, params.lr, params.warmup);
        opt.step(
            &vars,
            &grads,
            lr,
            optim::clip_factor(gnorm, params.max_grad_norm),
        )?;
        let d: Vec<f32> = delta.to_vec1()?;
        let rec = StepRecord {
            step: step + 1,
            epoch,
            loss: scalar(&loss)?,
            bt: scalar(&bt)?,
            anchor: anchor_val,
            alpha,
            lr,
            grad_norm: gnorm,
            batch_accuracy: d.iter().filter(|&&v| v > 0.0).count() as f64 / d.len() as f64,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if !rec.loss.is_finite() {
            return Err(Error::param(
                "lr",
                format!(
                    "the loss became {} at step {}; lower --lr",
                    rec.loss, rec.step
                ),
            ));
        }
        progress.step(&rec);
        log.push(rec);
        step += 1;
        if let Some(ref mut o) = observer {
            let every = o.every();
            if step == total || (every > 0 && step % every == 0) {
                o.observe(step, &rm, prep)?;
            }
        }
        let every = params.checkpoint_every;
        if step < total && ((every > 0 && step % every == 0) || step == stop) {
            save_checkpoint(&ckpt, params, data, base, &rm, &opt, step, &log)?;
        }
    }
    let train_seconds = t_start.elapsed().as_secs_f64();
    if step < total {
        progress.finish();
        return Ok(None);
    }

    progress.phase("evaluating");
    let mut accuracy = BTreeMap::new();
    if !prep.test.is_empty() {
        accuracy.insert(
            "source_test".to_string(),
            pairwise_accuracy(&rewards(&rm, &prep.test, params.batch_size, device)?),
        );
    }
    for (name, seqs) in &prep.evals {
        accuracy.insert(
            name.clone(),
            pairwise_accuracy(&rewards(&rm, seqs, params.batch_size, device)?),
        );
    }
    let last_epoch: Vec<f64> = log
        .iter()
        .filter(|r| r.epoch + 1 == params.epochs)
        .map(|r| r.bt)
        .collect();
    let run_steps = total - step0;
    let summary = TrainSummary {
        format: "repdrift-train".into(),
        version: 1,
        method: params.method,
        base: base.info().path.display().to_string(),
        base_sha256: base.info().weights_sha256.clone(),
        data: data.path.display().to_string(),
        data_sha256: data.sha256.clone(),
        n_train: n_pairs,
        n_test: sp.test.len(),
        steps: total,
        trainable_parameters,
        train_seconds,
        steps_per_second: run_steps as f64 / train_seconds.max(1e-9),
        final_bt_loss: last_epoch.iter().sum::<f64>() / last_epoch.len().max(1) as f64,
        accuracy,
        teacher_accuracy: job.labels.map(|l| l.accuracy.clone()),
    };
    if !save_model {
        if ckpt.exists() {
            std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
        }
        progress.finish();
        return Ok(Some(summary));
    }
    progress.phase("saving");
    let log_bytes: Vec<u8> = log
        .iter()
        .flat_map(|r| {
            let mut l = serde_json::to_vec(r).expect("records serialize");
            l.push(b'\n');
            l
        })
        .collect();
    let args = serde_json::json!({
        "params": &**params,
        "data": data.path,
        "data_sha256": data.sha256,
        "base": base.info().path,
        "base_sha256": base.info().weights_sha256,
        "split": {"test": sp.test.len(), "half1": sp.half1.len(), "half2": sp.half2.len()},
    });
    rm.save_hf(
        job.out,
        &[
            ("training_args.json", json_bytes(&args)),
            ("loss_log.jsonl", log_bytes),
            ("train_summary.json", json_bytes(&summary)),
        ],
    )?;
    if ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
    }
    progress.finish();
    Ok(Some(summary))
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    dir: &Path,
    params: &TrainParams,
    data: &Dataset,
    base: &Llama,
    rm: &TrainableRm<'_>,
    opt: &optim::AdamW,
    step: usize,
    log: &[StepRecord],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (i, (name, v)) in rm.named_vars().iter().enumerate() {
        tensors.push((format!("w.{name}"), v.as_tensor().clone()));
        tensors.push((format!("m.{name}"), opt.m[i].as_tensor().clone()));
        tensors.push((format!("v.{name}"), opt.v[i].as_tensor().clone()));
    }
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let tmp = dir.join(".state.safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    let fin = dir.join("state.safetensors");
    std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    let state = CheckpointState {
        params: params.clone(),
        data_sha256: data.sha256.clone(),
        base_sha256: base.info().weights_sha256.clone(),
        step,
        log: log.to_vec(),
    };
    write_atomic(&dir.join("state.json"), &json_bytes(&state))
}

fn load_checkpoint(
    dir: &Path,
    params: &TrainParams,
    data: &Dataset,
    base: &Llama,
    rm: &TrainableRm<'_>,
    opt: &mut optim::AdamW,
    log: &mut Vec<StepRecord>,
) -> Result<usize> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    if &state.params != params {
        return Err(Error::InvalidStore {
            path: path.clone(),
            reason: "the checkpoint was written with other training parameters; resume with the same ones or start again with --force".into(),
        });
    }
    if state.data_sha256 != data.sha256 || state.base_sha256 != base.info().weights_sha256 {
        return Err(Error::InvalidStore {
            path: path.clone(),
            reason: "the checkpoint belongs to another base model or data file".into(),
        });
    }
    let st_path = dir.join("state.safetensors");
    crate::model::weights::check_safetensors(&st_path)?;
    let map = candle_core::safetensors::load(&st_path, &Device::Cpu)?;
    for (i, (name, v)) in rm.named_vars().iter().enumerate() {
        for (prefix, var) in [("w", v), ("m", &opt.m[i]), ("v", &opt.v[i])] {
            let key = format!("{prefix}.{name}");
            let t = map.get(&key).ok_or_else(|| Error::InvalidStore {
                path: st_path.clone(),
                reason: format!("checkpoint lacks `{key}`"),
            })?;
            if t.dims() != var.dims() {
                return Err(Error::WeightShape {
                    path: st_path.clone(),
                    name: key,
                    expected: var.dims().to_vec(),
                    actual: t.dims().to_vec(),
                });
            }
            var.set(&t.to_device(var.device())?)?;
        }
    }
    opt.t = state.step;
    *log = state.log;
    Ok(state.step)
}
