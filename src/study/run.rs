//! Running the grid: weak labels per seed, one frozen-bottom cache per (seed, regime), every
//! run trained and evaluated in memory (no model directory is written), its result written
//! atomically to `runs/{id}.json`. `--resume` skips runs whose file exists; a kill loses at
//! most the run in flight.
//!
//! Per run (all accuracies are pairwise accuracies of one scorer on one set):
//! - `accuracy`: the student RM on the source test part and on every target;
//! - `start_accuracy`: the same at step 0, on the first `trajectory_pairs` pairs of each set
//!   (chance-level for a random head; the probe's for LP-FT);
//! - `drift`: per drift layer and set, linear CKA, debiased CKA and mean cosine distance between
//!   the base's and the student's last-token `diff` rows (chosen − rejected); layers below the
//!   trainable blocks are frozen and recorded as such (CKA 1, cosine 0: their states are
//!   bit-identical);
//! - drift or head: `head_on_base` (the student's head on the base's final states) and
//!   `base_probe_on_student` (the base's probe on the student's final states), beside
//!   `base_probe` (the base's probe on the base's states);
//! - `trajectory`: every `eval_every` steps, accuracies on the first `trajectory_pairs` pairs of
//!   each set and 1 − linear CKA of the final layer against the base on the same rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::config::{RunSpec, ValidStudy};
use crate::data::{read_jsonl, Dataset};
use crate::error::{Error, Result};
use crate::io::{json_bytes, write_atomic};
use crate::model::llama::Llama;
use crate::probe::{cross_validate, fit_pairwise, pair_accuracy, LinearProbe, ProbeData, Solver};
use crate::train::{
    self, fit_teacher, NoTrainProgress, Observer, PairSet, Prepared, TrainJob, TrainProgress,
    TrainableRm, WeakLabels,
};

/// The value of a run file's `format`.
pub const RUN_FORMAT: &str = "repdrift-study-run";

/// Drift between the base and a student at one layer on one set (`diff` rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub layer: usize,
    pub set: String,
    /// The layer is below the trainable blocks: its states are the base's, bit for bit.
    pub frozen: bool,
    pub linear_cka: Option<f64>,
    pub debiased_cka: Option<f64>,
    pub cosine_distance: Option<f64>,
}

/// One trajectory point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryPoint {
    pub step: usize,
    /// set → accuracy on its first `trajectory_pairs` pairs.
    pub accuracy: BTreeMap<String, f64>,
    /// target → 1 − linear CKA of the final layer's `diff` rows against the base.
    pub drift: BTreeMap<String, Option<f64>>,
}

/// `runs/{id}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub method: String,
    pub regime: String,
    pub seed: u64,
    pub params: train::TrainParams,
    /// The training's own numbers, as in `train_summary.json`.
    #[serde(flatten)]
    pub train: train::TrainStats,
    pub accuracy: BTreeMap<String, f64>,
    pub start_accuracy: BTreeMap<String, f64>,
    /// The weak teacher of this seed (its labels file's accuracies).
    pub teacher_accuracy: BTreeMap<String, f64>,
    /// Agreement of the hardened weak labels with gold on the training pairs.
    pub weak_label_accuracy: f64,
    pub base_probe: BTreeMap<String, f64>,
    pub base_probe_on_student: BTreeMap<String, f64>,
    pub head_on_base: BTreeMap<String, f64>,
    pub drift: Vec<DriftRow>,
    pub trajectory: Vec<TrajectoryPoint>,
    /// set → per-pair margins of the final evaluation (the source test part and every
    /// target), so any paired test can be rerun; absent in runs of studies before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pairs: BTreeMap<String, PairMargins>,
    /// The student's cue sensitivity and value bias (studies with `[bias]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<super::bias::RunBias>,
}

/// Reports what the study is doing (the library never prints).
pub trait StudyProgress {
    fn line(&mut self, _msg: &str) {}
    /// Step `done` of `total` of run `run` finished (called every step; the receiver decides
    /// how often to show it).
    fn step(&mut self, _run: &str, _done: usize, _total: usize) {}
}

/// Forwards a run's training steps to the study's progress.
struct RunSteps<'a> {
    run: &'a str,
    total: usize,
    progress: &'a mut dyn StudyProgress,
}

impl TrainProgress for RunSteps<'_> {
    fn start(&mut self, total: usize, _done: usize) {
        self.total = total;
    }
    fn step(&mut self, r: &train::StepRecord) {
        self.progress.step(self.run, r.step, self.total);
    }
}

/// A [`StudyProgress`] that ignores everything.
pub struct NoStudyProgress;
impl StudyProgress for NoStudyProgress {}

/// Where the study writes and how it treats what is there.
pub struct StudyJob<'a> {
    pub out: &'a Path,
    pub resume: bool,
    pub force: bool,
}

/// The path of run `id`'s result.
pub fn run_path(out: &Path, id: &str) -> PathBuf {
    out.join("runs").join(format!("{id}.json"))
}

/// The base's side of one (seed, regime) cache: states, probe and the probe's accuracies.
struct BaseRef {
    /// set → per drift layer computed (≥ first trainable) `diff` rows `(pairs, hidden)`.
    diffs: Vec<Vec<Array2<f32>>>,
    /// set → final-layer `diff` rows.
    final_diff: Vec<Array2<f32>>,
    probe: LinearProbe,
    probe_acc: BTreeMap<String, f64>,
    /// set → the probe's logit on each pair of the base's final states.
    probe_logits: Vec<Vec<f64>>,
}

/// One set's per-pair margins (a pair is right when its margin is strictly positive), in the
/// set's pair order: what every paired test of the study is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairMargins {
    /// The base's probe on the base's final states (what the base knew).
    pub base_probe: Vec<f64>,
    /// The same probe on the student's final states.
    pub probe_on_student: Vec<f64>,
    /// The student's reward difference, chosen − rejected.
    pub head: Vec<f64>,
    /// The student's head on the base's final states.
    pub head_on_base: Vec<f64>,
}

fn diff_rows(flat: &[f32], hidden: usize) -> Array2<f32> {
    let n = flat.len() / hidden / 2;
    let mut out = Array2::<f32>::zeros((n, hidden));
    for i in 0..n {
        for j in 0..hidden {
            out[[i, j]] = flat[2 * i * hidden + j] - flat[(2 * i + 1) * hidden + j];
        }
    }
    out
}

fn to_f64(a: &Array2<f32>) -> Array2<f64> {
    a.mapv(|v| v as f64)
}

fn rewards_accuracy(r: &[f32]) -> f64 {
    train::pairwise_accuracy(r)
}

/// What the observer needs from the study.
struct Ctx<'a> {
    sets: Vec<(String, PairSet)>,
    /// Drift layers the trainable part computes (≥ first trainable layer), then the final one.
    layers: Vec<usize>,
    n_layers: usize,
    hidden: usize,
    /// The configured drift layers.
    drift_layers: Vec<usize>,
    every: usize,
    traj_pairs: usize,
    batch: usize,
    device: &'a Device,
}

impl Ctx<'_> {
    fn eval(
        &self,
        rm: &TrainableRm<'_>,
        prep: &Prepared<'_>,
        set: PairSet,
        layers: &[usize],
        limit: Option<usize>,
    ) -> Result<(Vec<f32>, Vec<Array2<f32>>)> {
        let (r, states) = prep.evaluate(rm, set, layers, limit, self.batch, self.device)?;
        Ok((
            r,
            states.iter().map(|s| diff_rows(s, self.hidden)).collect(),
        ))
    }

    fn base_ref(&self, rm: &TrainableRm<'_>, prep: &Prepared<'_>) -> Result<BaseRef> {
        let mut diffs = Vec::new();
        let mut final_diff = Vec::new();
        for (_, set) in &self.sets {
            let (_, mut d) = self.eval(rm, prep, *set, &self.layers, None)?;
            final_diff.push(d.pop().expect("final layer requested"));
            diffs.push(d);
        }
        // The base's probe: gold labels on the training pairs' final states (C by 5-fold CV).
        let (_, train_d) = self.eval(rm, prep, PairSet::Train, &[self.n_layers], None)?;
        let data = ProbeData::Pairs(to_f64(&train_d[0]));
        let cv = cross_validate(&data, &[0.01, 0.1, 1.0, 10.0], 5, 0, Solver::default())?;
        let probe = fit_pairwise(
            match &data {
                ProbeData::Pairs(d) => d.view(),
                ProbeData::Labels(..) => unreachable!(),
            },
            cv.c,
            Solver::default(),
        )?;
        let mut probe_acc = BTreeMap::new();
        let mut probe_logits = Vec::new();
        for ((name, _), d) in self.sets.iter().zip(&final_diff) {
            let s = probe.scores(to_f64(d).view());
            probe_acc.insert(name.clone(), pair_accuracy(s.view()));
            probe_logits.push(s.to_vec());
        }
        Ok(BaseRef {
            diffs,
            final_diff,
            probe,
            probe_acc,
            probe_logits,
        })
    }
}

fn one_minus_cka(x: &Array2<f32>, y: &Array2<f32>) -> Option<f64> {
    crate::metrics::linear_cka(x.view(), y.view())
        .ok()
        .and_then(|v| v.value)
        .map(|v| 1.0 - v)
}

/// The observer of one run.
struct RunObserver<'a, 'b> {
    ctx: &'b Ctx<'a>,
    base: &'b mut Option<BaseRef>,
    total: usize,
    start_accuracy: BTreeMap<String, f64>,
    trajectory: Vec<TrajectoryPoint>,
    end: Option<EndEval>,
}

struct EndEval {
    accuracy: BTreeMap<String, f64>,
    drift: Vec<DriftRow>,
    base_probe_on_student: BTreeMap<String, f64>,
    head_on_base: BTreeMap<String, f64>,
    pairs: BTreeMap<String, PairMargins>,
}

impl RunObserver<'_, '_> {
    /// The full evaluation of the trained model (every pair of every set).
    fn end_eval(&self, rm: &TrainableRm<'_>, prep: &Prepared<'_>) -> Result<EndEval> {
        let ctx = self.ctx;
        let base = self.base.as_ref().expect("set at step 0");
        let head: Vec<f64> = rm.head()?.iter().map(|&v| v as f64).collect();
        let head = Array1::from(head);
        let mut out = EndEval {
            accuracy: BTreeMap::new(),
            drift: Vec::new(),
            base_probe_on_student: BTreeMap::new(),
            head_on_base: BTreeMap::new(),
            pairs: BTreeMap::new(),
        };
        let first = prep.first_changing_layer();
        for (k, (name, set)) in ctx.sets.iter().enumerate() {
            let (r, mut d) = ctx.eval(rm, prep, *set, &ctx.layers, None)?;
            out.accuracy.insert(name.clone(), rewards_accuracy(&r));
            let fin = d.pop().expect("final layer requested");
            let on_student = base.probe.scores(to_f64(&fin).view());
            out.base_probe_on_student
                .insert(name.clone(), pair_accuracy(on_student.view()));
            let hb = to_f64(&base.final_diff[k]).dot(&head);
            out.head_on_base
                .insert(name.clone(), pair_accuracy(hb.view()));
            out.pairs.insert(
                name.clone(),
                PairMargins {
                    base_probe: base.probe_logits[k].clone(),
                    probe_on_student: on_student.to_vec(),
                    head: r
                        .chunks_exact(2)
                        .map(|c| c[0] as f64 - c[1] as f64)
                        .collect(),
                    head_on_base: hb.to_vec(),
                },
            );
            let computed = &ctx.layers[..ctx.layers.len() - 1];
            for &layer in &ctx.drift_layers {
                if layer < first {
                    out.drift.push(DriftRow {
                        layer,
                        set: name.clone(),
                        frozen: true,
                        linear_cka: Some(1.0),
                        debiased_cka: Some(1.0),
                        cosine_distance: Some(0.0),
                    });
                    continue;
                }
                let (x, y) = if layer == ctx.n_layers {
                    (&base.final_diff[k], &fin)
                } else {
                    let j = computed.iter().position(|&l| l == layer).expect("computed");
                    (&base.diffs[k][j], &d[j])
                };
                let m = crate::metrics::pair_metrics(x.view(), y.view()).ok();
                out.drift.push(DriftRow {
                    layer,
                    set: name.clone(),
                    frozen: false,
                    linear_cka: m.as_ref().and_then(|m| m.linear_cka.value),
                    debiased_cka: m.as_ref().and_then(|m| m.debiased_cka.value),
                    cosine_distance: m.as_ref().and_then(|m| m.cosine_distance.value),
                });
            }
        }
        Ok(out)
    }
}

impl Observer for RunObserver<'_, '_> {
    fn every(&self) -> usize {
        self.ctx.every
    }

    fn observe(&mut self, step: usize, rm: &TrainableRm<'_>, prep: &Prepared<'_>) -> Result<()> {
        let ctx = self.ctx;
        if step == 0 && self.base.is_none() {
            *self.base = Some(ctx.base_ref(rm, prep)?);
        }
        let n = ctx.n_layers;
        // A trajectory point: the first `trajectory_pairs` pairs of each set, final layer.
        let mut point = TrajectoryPoint {
            step,
            accuracy: BTreeMap::new(),
            drift: BTreeMap::new(),
        };
        for (k, (name, set)) in ctx.sets.iter().enumerate() {
            let (r, d) = ctx.eval(rm, prep, *set, &[n], Some(ctx.traj_pairs))?;
            point.accuracy.insert(name.clone(), rewards_accuracy(&r));
            if *set != PairSet::SourceTest {
                let base = self.base.as_ref().expect("set at step 0");
                let rows = d[0].nrows();
                let b = base.final_diff[k].slice(ndarray::s![..rows, ..]).to_owned();
                point.drift.insert(name.clone(), one_minus_cka(&b, &d[0]));
            }
        }
        if step == 0 {
            self.start_accuracy = point.accuracy.clone();
        }
        self.trajectory.push(point);
        if step == self.total {
            self.end = Some(self.end_eval(rm, prep)?);
        }
        Ok(())
    }
}

/// Read `runs/{id}.json` (a run file from this study).
pub fn read_run(path: &Path) -> Result<RunResult> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let r: RunResult = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        cause: e,
    })?;
    if r.format != RUN_FORMAT {
        return Err(Error::InvalidStore {
            path: path.to_path_buf(),
            reason: format!("`format` is `{}`, expected `{RUN_FORMAT}`", r.format),
        });
    }
    Ok(r)
}

/// Every finished run of the study in `out`, in the study's order (missing ones skipped).
pub fn finished_runs(study: &ValidStudy, out: &Path) -> Result<Vec<RunResult>> {
    study
        .runs
        .iter()
        .map(|r| run_path(out, &r.id))
        .filter(|p| p.exists())
        .map(|p| read_run(&p))
        .collect()
}

fn check_out(study: &ValidStudy, job: &StudyJob<'_>) -> Result<()> {
    let cfg_path = job.out.join("config.json");
    if job.out.exists() {
        if job.force {
            crate::io::clear_dir(job.out)?;
        } else if !job.resume {
            if std::fs::read_dir(job.out)
                .map_err(|e| Error::io(job.out, e))?
                .next()
                .is_some()
            {
                return Err(Error::param(
                    "out",
                    format!(
                        "{} is not empty; continue the study with --resume or replace it with --force",
                        job.out.display()
                    ),
                ));
            }
        } else if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
            let old: super::config::StudyConfig =
                serde_json::from_str(&text).map_err(|e| Error::Json {
                    path: cfg_path.clone(),
                    cause: e,
                })?;
            // Runs already done keep their meaning only if the shared settings are unchanged;
            // the grid itself may grow (more seeds, methods or regimes).
            let same = old.base == study.config.base
                && old.teacher == study.config.teacher
                && old.weak_rule == study.config.weak_rule
                && old.source == study.config.source
                && old.limit_source == study.config.limit_source
                && old.targets == study.config.targets
                && old.limit_targets == study.config.limit_targets
                && old.max_tokens == study.config.max_tokens
                && old.batch_size == study.config.batch_size
                && old.test_fraction == study.config.test_fraction
                && old.drift_layers == study.config.drift_layers
                && old.eval_every == study.config.eval_every
                && old.trajectory_pairs == study.config.trajectory_pairs
                && old.bias == study.config.bias;
            if !same {
                return Err(Error::param(
                    "resume",
                    format!(
                        "{} was started with other data, models or evaluation settings (see its config.json); use another --out or --force",
                        job.out.display()
                    ),
                ));
            }
        }
    }
    std::fs::create_dir_all(job.out.join("runs")).map_err(|e| Error::io(job.out, e))?;
    write_atomic(&cfg_path, &json_bytes(&study.config))
}

fn labels_path(out: &Path, seed: u64) -> PathBuf {
    out.join("labels").join(format!("seed_{seed}.json"))
}

/// Run every unfinished run of `study` on `base`, writing into `job.out`; `after_run` is called
/// after each run is written (the CLI re-renders the tables there).
pub fn run_study(
    study: &ValidStudy,
    base: &Llama,
    job: &StudyJob<'_>,
    device: &Device,
    progress: &mut dyn StudyProgress,
    after_run: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    // One study per output directory: a second process gets a named error.
    let _lock = crate::io::lock_dir(job.out)?;
    check_out(study, job)?;
    let c = &study.config;
    let source = read_jsonl(&c.source, c.limit_source)?;
    let targets: Vec<(String, Dataset)> = c
        .targets
        .iter()
        .map(|(n, p)| Ok((n.clone(), read_jsonl(p, c.limit_targets)?)))
        .collect::<Result<_>>()?;
    let pending: Vec<&RunSpec> = study
        .runs
        .iter()
        .filter(|r| !run_path(job.out, &r.id).exists())
        .collect();
    progress.line(&format!(
        "study: {} runs, {} done, {} to run",
        study.runs.len(),
        study.runs.len() - pending.len(),
        pending.len()
    ));
    let runner = Runner {
        study,
        base,
        job,
        device,
        source: &source,
        targets: &targets,
    };
    let mut state = State {
        teacher: None,
        labels_of: BTreeMap::new(),
        bias_ctx: None,
        done: 0,
        pending: pending.len(),
        t0: Instant::now(),
    };
    for regime in &c.regimes {
        for &seed in &c.seeds {
            let runs: Vec<&RunSpec> = pending
                .iter()
                .filter(|r| r.seed == seed && r.regime == regime.name)
                .copied()
                .collect();
            if !runs.is_empty() {
                runner.run_group(&mut state, seed, &regime.name, &runs, progress, after_run)?;
            }
        }
    }
    let _ = std::fs::remove_dir(job.out.join("work"));
    Ok(())
}

/// What every run of a study reads.
struct Runner<'a> {
    study: &'a ValidStudy,
    base: &'a Llama,
    job: &'a StudyJob<'a>,
    device: &'a Device,
    source: &'a Dataset,
    targets: &'a [(String, Dataset)],
}

/// What the runs of a study share and build up as they go.
struct State {
    /// The weak teacher, loaded on first need.
    teacher: Option<Box<dyn crate::model::HookedModel>>,
    /// Each seed's weak labels.
    labels_of: BTreeMap<u64, WeakLabels>,
    /// The base's side of `[bias]`, made on first need.
    bias_ctx: Option<super::bias::BiasCtx>,
    done: usize,
    pending: usize,
    t0: Instant,
}

/// What the runs of one (seed, regime) share.
struct Group<'a> {
    prep: &'a Prepared<'a>,
    ctx: &'a Ctx<'a>,
    labels: &'a WeakLabels,
    weak_label_accuracy: f64,
    /// The `[bias]` measurer and this seed's cue pairs, when asked.
    bias: Option<(&'a super::bias::BiasCtx, &'a Dataset)>,
}

impl Runner<'_> {
    /// The pending runs of one seed and regime: weak labels, the frozen bottom cached once,
    /// then each run trained, evaluated and written.
    fn run_group(
        &self,
        st: &mut State,
        seed: u64,
        regime: &str,
        runs: &[&RunSpec],
        progress: &mut dyn StudyProgress,
        after_run: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let c = &self.study.config;
        // The weak teacher's labels of this seed's split (shared by the seed's runs).
        if !st.labels_of.contains_key(&seed) {
            let l = self.weak_labels(seed, &mut st.teacher, progress)?;
            st.labels_of.insert(seed, l);
        }
        let cue_data = match &c.bias {
            Some(spec) => {
                if st.bias_ctx.is_none() {
                    progress.line("bias: scoring the value items under the base");
                    st.bias_ctx = Some(super::bias::BiasCtx::new(
                        spec,
                        self.base,
                        c.max_tokens,
                        self.device,
                    )?);
                }
                let sp = train::split(self.source.examples.len(), c.test_fraction, seed);
                st.bias_ctx
                    .as_ref()
                    .map(|b| b.cue_data(self.source, &sp.test))
            }
            None => None,
        };
        let labels = &st.labels_of[&seed];
        progress.line(&format!(
            "seed {seed}, regime {regime}: caching the frozen bottom"
        ));
        let prep = train::prepare(
            self.base,
            self.source,
            self.targets,
            &runs[0].params,
            self.device,
            &mut NoTrainProgress,
        )?;
        let ctx = self.eval_ctx(&prep);
        let group = Group {
            prep: &prep,
            ctx: &ctx,
            labels,
            weak_label_accuracy: labels.p.iter().filter(|&&p| p > 0.5).count() as f64
                / labels.p.len().max(1) as f64,
            bias: st.bias_ctx.as_ref().zip(cue_data.as_ref()),
        };
        let mut base_ref: Option<BaseRef> = None;
        for spec in runs {
            progress.line(&format!(
                "run {} ({} of {} pending, {:.0} s so far)",
                spec.id,
                st.done + 1,
                st.pending,
                st.t0.elapsed().as_secs_f64()
            ));
            let result = self.run_one(spec, &group, &mut base_ref, progress)?;
            write_atomic(&run_path(self.job.out, &spec.id), &json_bytes(&result))?;
            st.done += 1;
            progress.line(&format!(
                "run {} done: {:.1} s, {:.2} steps/s, accuracy {}",
                spec.id,
                result.train.train_seconds,
                result.train.steps_per_second,
                result
                    .accuracy
                    .iter()
                    .map(|(k, v)| format!("{k} {:.1} %", 100.0 * v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            after_run()?;
        }
        Ok(())
    }

    /// The evaluation settings of one cache: the sets, and the drift layers the trainable
    /// part computes plus the final one.
    fn eval_ctx<'d>(&'d self, prep: &Prepared<'_>) -> Ctx<'d> {
        let c = &self.study.config;
        let n_layers = self.base.blocks().len();
        let first = prep.first_changing_layer();
        let mut layers: Vec<usize> = c
            .drift_layers
            .iter()
            .copied()
            .filter(|&l| l >= first && l < n_layers)
            .collect();
        layers.push(n_layers);
        let mut sets = vec![("source_test".to_string(), PairSet::SourceTest)];
        for (i, name) in prep.eval_names().iter().enumerate() {
            sets.push((name.to_string(), PairSet::Eval(i)));
        }
        Ctx {
            sets,
            layers,
            n_layers,
            hidden: self.base.config().hidden_size,
            drift_layers: c.drift_layers.clone(),
            every: c.eval_every,
            traj_pairs: c.trajectory_pairs,
            batch: c.batch_size,
            device: self.device,
        }
    }

    /// One run: trained in memory with the observer, its student measured by `[bias]` when
    /// asked, and its result assembled.
    fn run_one(
        &self,
        spec: &RunSpec,
        g: &Group<'_>,
        base_ref: &mut Option<BaseRef>,
        progress: &mut dyn StudyProgress,
    ) -> Result<RunResult> {
        let total = g
            .prep
            .n_pairs(PairSet::Train)
            .div_ceil(self.study.config.batch_size)
            * spec.params.epochs;
        let mut obs = RunObserver {
            ctx: g.ctx,
            base: base_ref,
            total,
            start_accuracy: BTreeMap::new(),
            trajectory: Vec::new(),
            end: None,
        };
        let work = self.job.out.join("work").join(&spec.id);
        let tjob = TrainJob {
            labels: Some(g.labels),
            out: &work,
            resume: false,
            force: true,
            stop_after: None,
            // The student is written only when its cue and value numbers are wanted.
            save: if g.bias.is_some() {
                train::SaveAs::Delta
            } else {
                train::SaveAs::Nothing
            },
        };
        let summary = train::train_observed(
            g.prep,
            &spec.params,
            &tjob,
            self.device,
            &mut RunSteps {
                run: &spec.id,
                total: 0,
                progress: &mut *progress,
            },
            Some(&mut obs),
        )?
        .expect("no stop_after");
        let bias = match g.bias {
            Some((b, d)) => Some(b.measure(&work, d, self.device)?),
            None => None,
        };
        let _ = std::fs::remove_dir_all(&work);
        let RunObserver {
            start_accuracy,
            trajectory,
            end,
            base,
            ..
        } = obs;
        let end = end.expect("observed after the last step");
        let base = base.as_ref().expect("set at step 0");
        Ok(RunResult {
            format: RUN_FORMAT.into(),
            version: 1,
            id: spec.id.clone(),
            method: spec.method.clone(),
            regime: spec.regime.clone(),
            seed: spec.seed,
            params: (*spec.params).clone(),
            train: summary.stats,
            accuracy: end.accuracy,
            start_accuracy,
            teacher_accuracy: g.labels.accuracy.clone(),
            weak_label_accuracy: g.weak_label_accuracy,
            base_probe: base.probe_acc.clone(),
            base_probe_on_student: end.base_probe_on_student,
            head_on_base: end.head_on_base,
            pairs: end.pairs,
            drift: end.drift,
            trajectory,
            bias,
        })
    }

    /// The weak labels of `seed`'s split: read from `labels/seed_S.json`, or made (by the
    /// rule, or by fitting the teacher, loaded on first need) and written there.
    fn weak_labels(
        &self,
        seed: u64,
        teacher: &mut Option<Box<dyn crate::model::HookedModel>>,
        progress: &mut dyn StudyProgress,
    ) -> Result<WeakLabels> {
        let (c, source, targets) = (&self.study.config, self.source, self.targets);
        let lp = labels_path(self.job.out, seed);
        if lp.exists() {
            let text = std::fs::read_to_string(&lp).map_err(|e| Error::io(&lp, e))?;
            return serde_json::from_str(&text).map_err(|e| Error::Json {
                path: lp.clone(),
                cause: e,
            });
        }
        let sp = train::split(source.examples.len(), c.test_fraction, seed);
        if let Some(rule) = &c.weak_rule {
            let l = train::rule_labels(
                train::WeakRule::parse(rule)?,
                source,
                &sp,
                targets,
                seed,
                c.test_fraction,
            )?;
            write_atomic(&lp, &json_bytes(&l))?;
            return Ok(l);
        }
        progress.line(&format!("seed {seed}: fitting the weak teacher"));
        if teacher.is_none() {
            *teacher = Some(crate::model::load(&c.teacher, self.device)?);
        }
        let l = fit_teacher(
            teacher.as_deref().expect("loaded"),
            source,
            &sp,
            targets,
            (c.max_tokens > 0).then_some(c.max_tokens),
            seed,
            c.test_fraction,
            self.device,
        )?;
        write_atomic(&lp, &json_bytes(&l))?;
        Ok(l)
    }
}
