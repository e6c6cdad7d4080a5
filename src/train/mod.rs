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
//! Files: `params.rs` (parameters, split), `cache.rs` (the frozen bottom's cached states),
//! `loss.rs`, this file (the step loop), `checkpoint.rs`, `eval.rs` (evaluation without
//! gradient, LP-FT's head), `reward_model.rs`, `optim.rs`, `teacher.rs`.
//!
//! Only the top `K` blocks, the final norm and the head train by default; the frozen bottom
//! runs once and its output states are cached. Shapes: a batch of `B` pairs is `2B`
//! sequences, rows `2i` (chosen) and `2i + 1` (rejected).

mod anchor;
mod cache;
mod checkpoint;
mod eval;
mod loss;
pub mod optim;
mod params;
mod record;
pub mod reward_model;
pub mod teacher;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::json_bytes;
use crate::model::llama::Llama;
use crate::model::HookedModel;
use anchor::AnchorRefs;
use cache::{make_batch, CachedSeq};
pub use cache::{prepare, Prepared};
use checkpoint::{checkpoint_dir, load_checkpoint, save_checkpoint};
pub use eval::PairSet;
use eval::{fit_head_on_base, rewards};
use loss::scalar;
pub use loss::{anchor_distance, bt_loss, pairwise_accuracy};
pub use params::{
    split, AnchorDistance, HeadInit, Method, Split, TrainParams, Trainable, ValidTrainParams,
};
pub use record::{NoTrainProgress, StepRecord, TrainProgress, TrainStats};
pub use reward_model::{FastPass, RmOutput, TrainableRm};
pub use teacher::{fit_teacher, rule_labels, WeakLabels, WeakRule};

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
    #[serde(flatten)]
    pub stats: TrainStats,
    /// The student's pairwise accuracy: `source_test` and each `--eval` set.
    pub accuracy: BTreeMap<String, f64>,
    /// The weak teacher's accuracies (from its labels file), for methods that use one.
    pub teacher_accuracy: Option<BTreeMap<String, f64>>,
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
    /// How the finished model is written.
    pub save: SaveAs,
}

/// How a finished student is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveAs {
    /// Only the tensors training changed, plus the base's path and sha256
    /// ([`crate::model::delta`]); every command loads base + delta.
    #[default]
    Delta,
    /// A full HF `LlamaForSequenceClassification` directory (all weights, f32).
    Full,
    /// No model directory: the student lives in memory only, for a caller that evaluates it
    /// through an [`Observer`] (the study).
    Nothing,
}

impl std::str::FromStr for SaveAs {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "delta" => Ok(Self::Delta),
            "full" => Ok(Self::Full),
            other => Err(Error::param(
                "save",
                format!("`{other}`: expected delta or full"),
            )),
        }
    }
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
/// let job = TrainJob { labels: None, out: "runs/gold".as_ref(), resume: false, force: true,
///     stop_after: None, save: Default::default() };
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
    // Checked here so that a refused run does no preparation, and again under the output's
    // lock in `train_observed` (which other callers reach without this function).
    check_out(job)?;
    let prepared = prepare(base, data, evals, params, device, progress)?;
    train_prepared(&prepared, params, job, device, progress)
}

/// Refuse to overwrite a finished or unfinished run unless asked (before any work is done).
fn check_out(job: &TrainJob<'_>) -> Result<()> {
    let ckpt = checkpoint_dir(job.out);
    let finished =
        job.out.join("model.safetensors").exists() || crate::model::delta::is_delta(job.out);
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
    train_observed(prep, params, job, device, progress, None)
}

/// Looks at the model while it trains (the study's trajectories), without checkpoints.
pub trait Observer {
    /// Observe every this many steps (0: only before the first and after the last step).
    fn every(&self) -> usize;
    /// Called at step 0 (the untrained model), every [`every`](Self::every) steps, and after
    /// the last step (`step == total`).
    fn observe(&mut self, step: usize, rm: &TrainableRm<'_>, prep: &Prepared<'_>) -> Result<()>;
}

/// [`train_prepared`] with an optional [`Observer`]. With `job.save` = [`SaveAs::Nothing`] no
/// model directory is written (the caller evaluates the model in memory through the
/// observer).
pub fn train_observed(
    prep: &Prepared<'_>,
    params: &ValidTrainParams,
    job: &TrainJob<'_>,
    device: &Device,
    progress: &mut dyn TrainProgress,
    mut observer: Option<&mut dyn Observer>,
) -> Result<Option<TrainSummary>> {
    check_prepared(prep, params)?;
    // One writer per output directory (the lock creates it and lives until we return).
    let _lock = crate::io::lock_dir(job.out)?;
    check_out(job)?;
    let ckpt = checkpoint_dir(job.out);
    if job.force {
        crate::io::clear_dir(job.out)?;
    }
    let targets = weak_targets(prep, params, job)?;
    let (base, data) = (prep.base, prep.data);
    let rm = TrainableRm::new(base, prep.k, prep.all, params.seed)?;
    if params.head_init == HeadInit::Probe {
        fit_head_on_base(&rm, &prep.half2, &targets, params.batch_size, device)?;
    }
    let shape = (base.pad_id(), base.config().hidden_size, prep.all);
    let refs = AnchorRefs::compute(&rm, &prep.half2, params, shape, device)?;
    let vars = rm.vars();
    let mut opt = optim::AdamW::new(&vars, params.weight_decay)?;
    let n_pairs = prep.split.half2.len();
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
    let stepper = Stepper {
        rm: &rm,
        vars: &vars,
        prep,
        targets: &targets,
        refs: &refs,
        params,
        device,
        fast: rm.fast_path(),
        total,
    };
    progress.phase("training");
    progress.start(total, step0);
    let t_start = Instant::now();
    let stop = job.stop_after.unwrap_or(usize::MAX).min(total);
    let mut step = step0;
    let mut order = EpochOrder::new(n_pairs, params.seed);
    while step < stop {
        let epoch = step / steps_per_epoch;
        let j = step % steps_per_epoch;
        let order = order.of(epoch);
        let pairs = &order[j * params.batch_size..((j + 1) * params.batch_size).min(n_pairs)];
        let rec = stepper.step(&mut opt, step, epoch, pairs)?;
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
    let stats = TrainStats {
        steps: total,
        trainable_parameters: vars.iter().map(|v| v.elem_count()).sum(),
        train_seconds,
        steps_per_second: (total - step0) as f64 / train_seconds.max(1e-9),
        final_bt_loss: final_bt_loss(&log, params.epochs),
    };
    let summary = TrainSummary {
        accuracy: evaluate(&rm, prep, params, device)?,
        teacher_accuracy: job.labels.map(|l| l.accuracy.clone()),
        ..TrainSummary::of_run(prep, params, stats)
    };
    if job.save != SaveAs::Nothing {
        progress.phase("saving");
        save(&rm, prep, params, job, &summary, &log)?;
    }
    if ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
    }
    progress.finish();
    Ok(Some(summary))
}

/// The cache was made for this run's trainable part, token limit and split, and every
/// anchored layer is one the trainable blocks compute.
fn check_prepared(prep: &Prepared<'_>, params: &ValidTrainParams) -> Result<()> {
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
    let n_layers = prep.base.blocks().len();
    let min_anchor = if prep.all { 0 } else { prep.first + 1 };
    if let Some(&l) = params
        .anchor_layers
        .iter()
        .find(|&&l| l < min_anchor || l > n_layers)
    {
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
    Ok(())
}

/// p(chosen ≻ rejected) of each training pair: the weak labels (checked to be made for this
/// data and split) for methods that need a teacher, else 1.
fn weak_targets(
    prep: &Prepared<'_>,
    params: &ValidTrainParams,
    job: &TrainJob<'_>,
) -> Result<Vec<f64>> {
    let (sp, data) = (&prep.split, prep.data);
    if !params.method.needs_teacher() {
        return Ok(vec![1.0; sp.half2.len()]);
    }
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
    Ok(labels.p.clone())
}

/// The pair order of the current epoch: a seeded shuffle per epoch, so a resumed run sees the
/// same batches.
struct EpochOrder {
    n_pairs: usize,
    seed: u64,
    epoch: usize,
    order: Vec<usize>,
}

impl EpochOrder {
    fn new(n_pairs: usize, seed: u64) -> Self {
        Self {
            n_pairs,
            seed,
            epoch: usize::MAX,
            order: Vec::new(),
        }
    }

    fn of(&mut self, epoch: usize) -> &[usize] {
        if self.epoch != epoch {
            let mut o: Vec<usize> = (0..self.n_pairs).collect();
            o.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
                self.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
            ));
            (self.epoch, self.order) = (epoch, o);
        }
        &self.order
    }
}

/// What one optimisation step reads.
struct Stepper<'a> {
    rm: &'a TrainableRm<'a>,
    vars: &'a [candle_core::Var],
    prep: &'a Prepared<'a>,
    targets: &'a [f64],
    refs: &'a AnchorRefs,
    params: &'a ValidTrainParams,
    device: &'a Device,
    /// CPU f32: the blocks run graph-free (`model::llama_grad`); candle's graph holds only
    /// the final norm, the head and the loss.
    fast: bool,
    total: usize,
}

impl Stepper<'_> {
    /// Forward `pairs`, the loss (BT on the targets, confidence's mix, the anchor term),
    /// backward, one AdamW step; the step's record.
    fn step(
        &self,
        opt: &mut optim::AdamW,
        step: usize,
        epoch: usize,
        pairs: &[usize],
    ) -> Result<StepRecord> {
        let (params, device) = (self.params, self.device);
        let t0 = Instant::now();
        let train_seqs = &self.prep.half2;
        let seqs: Vec<&CachedSeq> = pairs
            .iter()
            .flat_map(|&p| [&train_seqs[2 * p], &train_seqs[2 * p + 1]])
            .collect();
        let base = self.prep.base;
        let hidden = base.config().hidden_size;
        let (batch, x) = make_batch(&seqs, base.pad_id(), hidden, !self.prep.all, device)?;
        let anchors = &params.anchor_layers;
        let (out, fast) = if self.fast {
            let (o, p) = self.rm.forward_fast(x.as_ref(), &batch, anchors)?;
            (o, Some(p))
        } else {
            (self.rm.forward(x.as_ref(), &batch, anchors, true)?, None)
        };
        let r = out.rewards.reshape((pairs.len(), 2))?;
        let delta = (r.narrow(1, 0, 1)? - r.narrow(1, 1, 1)?)?.squeeze(1)?;
        let p_weak: Vec<f32> = pairs.iter().map(|&p| self.targets[p] as f32).collect();
        let mut p = Tensor::from_vec(p_weak, pairs.len(), device)?;
        let mut alpha = None;
        if params.method == Method::Confidence {
            let a = 0.5 * ((step as f64 + 1.0) / (0.1 * self.total as f64).max(1.0)).min(1.0);
            let hard = delta.detach().gt(0f64)?.to_dtype(DType::F32)?;
            p = ((p * (1.0 - a))? + (hard * a)?)?;
            alpha = Some(a);
        }
        let bt = bt_loss(&delta, &p)?;
        let mut loss = bt.clone();
        let anchor = self.refs.term(&out.pooled, pairs, params, device)?;
        if let Some(a) = &anchor {
            loss = (loss + &a.loss)?;
        }
        let mut grads = loss.backward()?;
        if let Some(p) = fast {
            self.rm.backward_fast(p, &mut grads)?;
        }
        let gnorm = optim::AdamW::grad_norm(self.vars, &grads)?;
        let lr = optim::lr_at(step, self.total, params.lr, params.warmup);
        opt.step(
            self.vars,
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
            anchor: anchor.map(|a| a.distance),
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
        Ok(rec)
    }
}

/// Mean BT loss over the last epoch's steps.
fn final_bt_loss(log: &[StepRecord], epochs: usize) -> f64 {
    let last_epoch: Vec<f64> = log
        .iter()
        .filter(|r| r.epoch + 1 == epochs)
        .map(|r| r.bt)
        .collect();
    last_epoch.iter().sum::<f64>() / last_epoch.len().max(1) as f64
}

/// Pairwise accuracy on the source test part and each evaluation set.
fn evaluate(
    rm: &TrainableRm<'_>,
    prep: &Prepared<'_>,
    params: &ValidTrainParams,
    device: &Device,
) -> Result<BTreeMap<String, f64>> {
    let mut accuracy = BTreeMap::new();
    if !prep.test.is_empty() {
        accuracy.insert(
            "source_test".to_string(),
            pairwise_accuracy(&rewards(rm, &prep.test, params.batch_size, device)?),
        );
    }
    for (name, seqs) in &prep.evals {
        accuracy.insert(
            name.clone(),
            pairwise_accuracy(&rewards(rm, seqs, params.batch_size, device)?),
        );
    }
    Ok(accuracy)
}

impl TrainSummary {
    /// The fields fixed by the run's inputs and its `stats` (the accuracies empty, to be
    /// filled in).
    fn of_run(prep: &Prepared<'_>, params: &ValidTrainParams, stats: TrainStats) -> Self {
        let (base, data) = (prep.base, prep.data);
        Self {
            format: "repdrift-train".into(),
            version: 1,
            method: params.method,
            base: base.info().path.display().to_string(),
            base_sha256: base.info().weights_sha256.clone(),
            data: data.path.display().to_string(),
            data_sha256: data.sha256.clone(),
            n_train: prep.split.half2.len(),
            n_test: prep.split.test.len(),
            stats,
            accuracy: BTreeMap::new(),
            teacher_accuracy: None,
        }
    }
}

/// Write the student as `job.save` asks, with its training args, loss log and summary.
fn save(
    rm: &TrainableRm<'_>,
    prep: &Prepared<'_>,
    params: &ValidTrainParams,
    job: &TrainJob<'_>,
    summary: &TrainSummary,
    log: &[StepRecord],
) -> Result<()> {
    let (base, data, sp) = (prep.base, prep.data, &prep.split);
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
    let extra = [
        ("training_args.json", json_bytes(&args)),
        ("loss_log.jsonl", log_bytes),
        ("train_summary.json", json_bytes(summary)),
    ];
    match job.save {
        SaveAs::Delta => rm.save_delta(job.out, &extra),
        SaveAs::Full => rm.save_hf(job.out, &extra),
        SaveAs::Nothing => Ok(()),
    }
}
