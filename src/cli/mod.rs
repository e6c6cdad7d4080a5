//! The command line: clap definitions close to the flags, turned once into validated library
//! parameters. Progress bars live here, never in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod args;
pub mod bias;
pub mod demo;
pub mod diagnose;
pub mod progress;
pub mod recommend;
pub mod store;
pub mod study;
pub mod train;
pub mod validate;

use crate::capture::{self, CaptureParams, LayerSelection, Pooling, Progress};
use crate::model::HookPoint;

/// repdrift: why does a reward model (not) transfer? Per-layer drift, probes, anchoring.
#[derive(Debug, Parser)]
#[command(name = "repdrift", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose your own reward models in one command: a base, its students, a source and
    /// targets → drift, probes, per-pair tests, a verdict per student and target, anchor advice.
    Diagnose(diagnose::DiagnoseArgs),
    /// Capture pooled per-layer activations of a model on a JSONL data set into a store.
    Capture(CaptureArgs),
    /// Per-layer drift measures between a base store and student stores of the same examples.
    Compare(CompareArgs),
    /// Operations on stores: `store merge` joins the shards of `capture --shard i/N`.
    Store(store::StoreArgs),
    /// Per-layer linear probes: in-distribution, transfer to targets, cross-model, control.
    Probe(ProbeArgs),
    /// Transfer-aware summary metrics (IDG, AOG, PGR, NTS) from per-model accuracies.
    Transfer(TransferArgs),
    /// Drift plots, a self-contained HTML page, report.md and a diagnosis in words.
    Report(ReportArgs),
    /// Train a reward model: gold ceiling, naive, confidence or anchored weak-to-strong student.
    Train(train::TrainArgs),
    /// Write a student stored as a delta (base + changed tensors) as a full HF
    /// LlamaForSequenceClassification directory.
    Export(ExportArgs),
    /// Fit the weak teacher on source half 1 and write its soft labels for half 2.
    Teacher(train::TeacherArgs),
    /// Rank layers for anchoring, propose λ per layer, optionally validate by training.
    Recommend(recommend::RecommendArgs),
    /// The whole story on the embedded default (SmolLM2-135M): train, capture, compare,
    /// probe, recommend, report into reports/demo/.
    Demo(demo::DemoArgs),
    /// A grid of weak-to-strong trainings (methods × regimes × seeds): accuracy table with
    /// error bars, drift against transfer, trajectories, drift or head (resumable).
    Study(study::StudyArgs),
    /// The implicit reward of a causal LM on a data set: response log-probabilities (minus a
    /// reference model's), and its pairwise accuracy on preference pairs.
    ImplicitReward(bias::ImplicitRewardArgs),
    /// Reward-hacking cues: the reward change when a reply gets more length, a list, an apology
    /// or hedging with its content kept; length bias; per-layer cue directions.
    Cues(bias::CuesArgs),
    /// Value bias on the Big Two: agency against communion rewards on the repo's value lexicon,
    /// the reward direction's alignment with the agency–communion axis per layer, and its move
    /// from the base.
    Values(bias::ValuesArgs),
    /// Prove that the measures measure on a real model and data: numerical floor, identity and
    /// invariances, null, planted drift, layer matching, shuffled-label probes, sample size.
    Validate(validate::ValidateArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A student directory written by `repdrift train` (a delta), or any Llama reward model.
    #[arg(long)]
    pub model: PathBuf,
    /// The HF directory to write (config.json, model.safetensors in f32, tokenizer.json and
    /// the training records).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace OUT when it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A `repdrift compare` output directory.
    #[arg(long)]
    pub metrics: PathBuf,
    /// A `repdrift probe` output directory (repeatable: one per model).
    #[arg(long = "probe", value_name = "DIR")]
    pub probes: Vec<PathBuf>,
    /// A `repdrift transfer` output file.
    #[arg(long)]
    pub transfer: Option<PathBuf>,
    /// A `repdrift recommend` output file (adds the recommendation and its validation).
    #[arg(long)]
    pub recommendation: Option<PathBuf>,
    /// A `repdrift validate` output (validate.json) of the base model: adds its numerical floor
    /// and check results to "Can these numbers be trusted?".
    #[arg(long)]
    pub validate: Option<PathBuf>,
    /// A `repdrift cues` output directory, NAME=DIR (repeatable): adds the cue and value
    /// section.
    #[arg(long = "cues", value_name = "NAME=DIR")]
    pub cues: Vec<String>,
    /// A `repdrift values` output directory, NAME=DIR (repeatable).
    #[arg(long = "values", value_name = "NAME=DIR")]
    pub values: Vec<String>,
    /// The NAME (of --cues) of the gold student, whose cue effects the others are held to.
    #[arg(long)]
    pub gold: Option<String>,
    #[arg(long, default_value = "repdrift report")]
    pub title: String,
    /// The model name (`probe --model`) of the base model's probe results.
    #[arg(long, default_value = "base")]
    pub base_model: String,
    /// Output directory (index.html, report.md, report.json, plots/).
    #[arg(long)]
    pub out: PathBuf,
}

fn run_export(a: &ExportArgs) -> anyhow::Result<()> {
    if a.out.exists() && !a.force {
        return Err(crate::Error::param(
            "out",
            format!("{} exists; pass --force to replace it", a.out.display()),
        )
        .into());
    }
    crate::model::delta::export(&a.model, &a.out, &candle_core::Device::Cpu)?;
    eprintln!(
        "repdrift: wrote {} (HF LlamaForSequenceClassification, f32)",
        a.out.display()
    );
    Ok(())
}

/// The cue and value section from `--cues` / `--values` directories (None when neither given).
fn bias_section(a: &ReportArgs) -> crate::Result<Option<crate::bias::summary::BiasSection>> {
    use crate::bias::{cues::CueReport, summary, values::ValueReport};
    fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> crate::Result<T> {
        let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| crate::Error::Json {
            path: path.to_path_buf(),
            cause: e,
        })
    }
    let mut models: Vec<(String, Option<CueReport>, Option<ValueReport>)> = Vec::new();
    for (flag, list) in [("cues", &a.cues), ("values", &a.values)] {
        for s in list {
            let (name, dir) = named(s, flag, None)?;
            let i = match models.iter().position(|m| m.0 == name) {
                Some(i) => i,
                None => {
                    models.push((name, None, None));
                    models.len() - 1
                }
            };
            if flag == "cues" {
                models[i].1 = Some(read(&dir.join("cues.json"))?);
            } else {
                models[i].2 = Some(read(&dir.join("values.json"))?);
            }
        }
    }
    if models.is_empty() {
        return Ok(None);
    }
    let measured: Vec<summary::Measured<'_>> = models
        .iter()
        .map(|(n, c, v)| summary::Measured {
            name: n,
            cues: c.as_ref(),
            values: v.as_ref(),
            implicit: None,
        })
        .collect();
    Ok(Some(summary::section(&measured, a.gold.as_deref())))
}

fn run_report(a: &ReportArgs) -> anyhow::Result<()> {
    use crate::report;
    let mut inputs = report::read_inputs(
        &a.metrics,
        &a.probes,
        a.transfer.as_deref(),
        a.recommendation.as_deref(),
        &a.title,
        &a.base_model,
    )?;
    if let Some(v) = &a.validate {
        inputs.validate = Some(report::trust::summary_for(
            v,
            &inputs.metrics.base.model_sha256,
        )?);
    }
    inputs.bias = bias_section(a)?;
    let r = report::build(&inputs, &report::diagnosis::Rules::default());
    let plots = report::plots::render_all(&r)?;
    report::write(&a.out, &r, &plots)?;
    for f in &r.findings {
        for s in &f.sentences {
            eprintln!("{s}");
        }
    }
    eprintln!(
        "repdrift: report with {} plots in {}",
        plots.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The source store to train on, as STORE or NAME=STORE (default name `source`).
    #[arg(long)]
    pub train: String,
    /// A target store of the same model, NAME=STORE (repeatable).
    #[arg(long = "eval", value_name = "NAME=STORE")]
    pub evals: Vec<String>,
    /// Another model's store of the training examples, MODEL=STORE (repeatable).
    #[arg(long = "apply-to", value_name = "MODEL=STORE")]
    pub apply_to: Vec<String>,
    /// The name of the model whose stores --train and --eval are.
    #[arg(long, default_value = "model")]
    pub model: String,
    /// Output directory (probe.json, probe.csv).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "resid_post")]
    pub hook: String,
    /// `all` (layers captured in every store) or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub layers: String,
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Comma-separated grid of inverse L2 strengths (scikit-learn's C).
    #[arg(long, default_value = "0.001,0.01,0.1,1")]
    pub c: String,
    /// Also train on shuffled preference labels (Hewitt & Liang's control task).
    #[arg(long)]
    pub control: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// JSON: {"source", "targets", "weak", "ceiling"?, "accuracy": {model: {dataset: acc}}}.
    #[arg(long)]
    pub scores: PathBuf,
    /// Output file (transfer.json).
    #[arg(long)]
    pub out: PathBuf,
}

fn named(s: &str, flag: &str, default: Option<&str>) -> crate::Result<(String, PathBuf)> {
    match (s.split_once('='), default) {
        (Some((n, p)), _) if !n.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        (None, Some(d)) => Ok((d.to_string(), PathBuf::from(s))),
        _ => Err(crate::Error::param(
            flag,
            format!("`{s}` is not NAME=STORE"),
        )),
    }
}

fn run_probe(a: &ProbeArgs) -> anyhow::Result<()> {
    use crate::probe::run::{probe, render_csv, render_json, NamedStore, ProbeParams};
    let cs =
        a.c.split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| crate::Error::param("c", format!("`{v}` is not a number")))
            })
            .collect::<crate::Result<Vec<_>>>()?;
    let params = ProbeParams {
        model: a.model.clone(),
        hook: HookPoint::parse(&a.hook)?,
        layers: LayerSelection::parse(&a.layers)?,
        folds: a.folds,
        cs,
        control: a.control,
        seed: a.seed,
        ..Default::default()
    }
    .check()?;
    let open = |s: &str, flag: &str, default: Option<&str>| -> crate::Result<NamedStore> {
        let (name, path) = named(s, flag, default)?;
        Ok(NamedStore {
            name,
            store: crate::capture::Store::open(&path)?,
        })
    };
    let train = open(&a.train, "train", Some("source"))?;
    let evals = a
        .evals
        .iter()
        .map(|e| open(e, "eval", None))
        .collect::<crate::Result<Vec<_>>>()?;
    let apply = a
        .apply_to
        .iter()
        .map(|e| open(e, "apply-to", None))
        .collect::<crate::Result<Vec<_>>>()?;
    let report = probe(&train, &evals, &apply, &params)?;
    crate::io::write_atomic(&a.out.join("probe.json"), &render_json(&report))?;
    crate::io::write_atomic(&a.out.join("probe.csv"), &render_csv(&report))?;
    eprintln!(
        "repdrift: {} probe rows into {}",
        report.rows.len(),
        a.out.display()
    );
    Ok(())
}

fn run_transfer(a: &TransferArgs) -> anyhow::Result<()> {
    use crate::probe::transfer::{render_json, summarise, Scores};
    let text = std::fs::read(&a.scores).map_err(|e| crate::Error::io(&a.scores, e))?;
    let scores: Scores = serde_json::from_slice(&text).map_err(|e| crate::Error::Json {
        path: a.scores.clone(),
        cause: e,
    })?;
    let r = summarise(&scores)?;
    crate::io::write_atomic(&a.out, &render_json(&r))?;
    eprintln!(
        "repdrift: transfer summary of {} student(s) into {}",
        r.students.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The base model's store.
    #[arg(long, required_unless_present = "merge")]
    pub base: Option<PathBuf>,
    /// A student's store as NAME=STORE (repeatable).
    #[arg(long = "student", value_name = "NAME=STORE")]
    pub students: Vec<String>,
    /// Output directory (metrics.json, metrics.csv, cross_layer_cka.json; state.* with --shard).
    #[arg(long)]
    pub out: PathBuf,
    /// Hook point to compare.
    #[arg(long, default_value = "resid_post")]
    pub hook: String,
    /// Comma-separated fields (default: all the stores hold, plus `diff` for pairs).
    #[arg(long)]
    pub fields: Option<String>,
    /// `all` (layers captured in both) or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Also write the base-layer × student-layer linear-CKA matrix (first field).
    #[arg(long)]
    pub cross_layer: bool,
    /// Bootstrap replicates for 95 % percentile intervals (0 = off).
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Bootstrap replicates for linear CKA's interval alone, computed in example space (fast:
    /// O(n²) a replicate; ignored with --bootstrap, which gives every measure's interval).
    #[arg(long, default_value_t = 0)]
    pub cka_bootstrap: usize,
    /// Permutations of the student's rows for every measure's null band (its chance level)
    /// and permutation p-value (0 = off; 1000 is a good choice).
    #[arg(long, default_value_t = 0)]
    pub permutations: usize,
    /// Seed for the bootstrap and the permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// k of the mutual k-NN overlap.
    #[arg(long, default_value_t = 10)]
    pub knn_k: usize,
    /// Compute the kNN overlap only when n is at most this (it holds the layer's rows in memory).
    #[arg(long, default_value_t = 10_000)]
    pub knn_max_n: usize,
    /// Process only shard i of N (parts p with p % N == i) and write its accumulators.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
    /// Merge shard outputs (directories written with --shard) instead of reading stores.
    #[arg(long, value_name = "DIR")]
    pub merge: Vec<PathBuf>,
    /// Precision of the d × d products behind CKA, debiased CKA and Procrustes: `f64`
    /// (float64 throughout, equal to a float64 reference to ≈ 1e-13) or `mixed` (f32 products
    /// per block of 256 rows summed in float64: ≈ 1e-7 relative from the reference, ≈ 1.7×
    /// as fast). kNN, bootstrap and permutations stay float64.
    #[arg(long, default_value = "f64", value_name = "f64|mixed")]
    pub precision: crate::metrics::Precision,
}

fn parse_shard(s: &str) -> crate::Result<(usize, usize)> {
    let bad = || crate::Error::param("shard", format!("`{s}` is not of the form i/N (e.g. 0/2)"));
    let (a, b) = s.split_once('/').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

fn run_compare(a: &CompareArgs) -> anyhow::Result<()> {
    use crate::io::write_atomic;
    use crate::metrics::compare as cmp;
    if !a.merge.is_empty() {
        if a.base.is_some() || !a.students.is_empty() {
            return Err(crate::Error::param(
                "merge",
                "--merge reads shard outputs; do not also give --base/--student",
            )
            .into());
        }
        let report = cmp::merge_shards(&a.merge)?;
        write_atomic(&a.out.join("metrics.json"), &cmp::render_json(&report))?;
        write_atomic(&a.out.join("metrics.csv"), &cmp::render_csv(&report))?;
        eprintln!(
            "repdrift: merged {} shards into {}",
            a.merge.len(),
            a.out.display()
        );
        return Ok(());
    }
    let params = cmp::CompareParams {
        hook: HookPoint::parse(&a.hook)?,
        fields: a
            .fields
            .as_ref()
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect()),
        layers: LayerSelection::parse(&a.layers)?,
        cross_layer: a.cross_layer,
        bootstrap: a.bootstrap,
        cka_bootstrap: a.cka_bootstrap,
        permutations: a.permutations,
        seed: a.seed,
        knn_k: a.knn_k,
        knn_max_n: a.knn_max_n,
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
        precision: a.precision,
    }
    .check()?;
    let base_dir = a
        .base
        .as_ref()
        .expect("clap requires --base without --merge");
    let base = crate::capture::Store::open(base_dir)?;
    let mut students = Vec::new();
    for s in &a.students {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| crate::Error::param("student", format!("`{s}` is not NAME=STORE")))?;
        if name.is_empty() || students.iter().any(|(n, _): &(String, _)| n == name) {
            return Err(crate::Error::param(
                "student",
                format!("student name `{name}` is empty or repeated"),
            )
            .into());
        }
        students.push((
            name.to_string(),
            crate::capture::Store::open(std::path::Path::new(path))?,
        ));
    }
    let mut lines = progress::Lines::new("compare", "layers");
    let mut started = false;
    let c = cmp::compare(&base, &students, &params, &mut |step| {
        if !started {
            lines.start(step.total, 0);
            started = true;
        }
        lines.set(
            step.done,
            &format!("last: {} {} layer {}", step.student, step.hook, step.layer),
        );
    })?;
    // One writer per output directory at a time (a second compare writing there gets
    // Error::Locked); taken once the results exist, so a failed compare creates nothing.
    let _lock = crate::io::lock_dir(&a.out)?;
    if c.shard.is_some() {
        let (json, st) = cmp::render_state(&c)?;
        write_atomic(&a.out.join("state.safetensors"), &st)?;
        write_atomic(&a.out.join("state.json"), &json)?;
    } else {
        write_atomic(&a.out.join("metrics.json"), &cmp::render_json(&c.report))?;
        write_atomic(&a.out.join("metrics.csv"), &cmp::render_csv(&c.report))?;
        if params.cross_layer {
            write_atomic(
                &a.out.join("cross_layer_cka.json"),
                &cmp::render_cross_layer(&c.report),
            )?;
        }
    }
    eprintln!(
        "repdrift: compared {} student(s) into {}",
        students.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// A .gguf file (Llama family) or an HF directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL: {"text"}, {"prompt","chosen","rejected"} or {"chosen","rejected"} per line.
    #[arg(long)]
    pub data: PathBuf,
    /// The store directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Pooling: last, mean or response-mean.
    #[arg(long, default_value = "last")]
    pub pool: String,
    /// Comma-separated hook points: resid_post, attn_out, mlp_out.
    #[arg(long, default_value = "resid_post")]
    pub hooks: String,
    /// `all` or a comma-separated list of layers (HF hidden_states indexing).
    #[arg(long, default_value = "all")]
    pub layers: String,
    #[command(flatten)]
    pub run: args::RunArgs,
    #[command(flatten)]
    pub data_args: args::DataArgs,
    /// Examples per store part (the unit of atomic write and resume).
    #[arg(long, default_value_t = 256)]
    pub part_size: usize,
    /// Continue an interrupted capture at its first missing part.
    #[arg(long)]
    pub resume: bool,
    /// Overwrite a non-empty store.
    #[arg(long)]
    pub force: bool,
    /// Capture only shard i of N (a contiguous run of the store's parts, e.g. one Slurm array
    /// task each); join the N shard stores with `repdrift store merge`.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
}

impl CaptureArgs {
    /// The validated library parameters.
    pub fn params(&self) -> crate::Result<capture::ValidCaptureParams> {
        let hooks = self
            .hooks
            .split(',')
            .map(|h| HookPoint::parse(h.trim()))
            .collect::<crate::Result<Vec<_>>>()?;
        CaptureParams {
            pooling: Pooling::parse(&self.pool)?,
            hooks,
            layers: LayerSelection::parse(&self.layers)?,
            batch_size: self.run.batch_size,
            max_tokens: self.run.max_tokens(),
            part_size: self.part_size,
            resume: self.resume,
            force: self.force,
            shard: self.shard.as_deref().map(parse_shard).transpose()?,
        }
        .check()
    }
}

struct Bar(indicatif::ProgressBar, usize);

impl Progress for Bar {
    fn start(&mut self, total: usize, done: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.reset_eta();
    }
    fn advance(&mut self, _sequences: usize, tokens: usize) {
        self.1 += tokens;
        let secs = self.0.elapsed().as_secs_f64().max(1e-9);
        self.0
            .set_message(format!("{:.0} tok/s", self.1 as f64 / secs));
    }
    fn part_written(&mut self, examples_done: usize) {
        self.0.set_position(examples_done as u64);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

/// Capture progress for a log: (lines, examples written, tokens this run).
struct CaptureLines(progress::Lines, usize, usize);

impl Progress for CaptureLines {
    fn start(&mut self, total: usize, done: usize) {
        self.1 = done;
        self.0.start(total, done);
    }
    fn advance(&mut self, _sequences: usize, tokens: usize) {
        self.2 += tokens;
        let tps = self.2 as f64 / self.0.elapsed_secs().max(1e-9);
        self.0.set(self.1, &format!("{tps:.0} tok/s"));
    }
    fn part_written(&mut self, examples_done: usize) {
        self.1 = examples_done;
    }
}

fn run_capture(args: &CaptureArgs) -> anyhow::Result<()> {
    let params = args.params()?;
    let device = args.run.device()?;
    let model = args.run.load(&args.model, &device)?;
    let data = args.data_args.read(&args.data, model.as_ref())?;
    let mut progress: Box<dyn Progress> = if progress::is_terminal() {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} examples ({per_sec}) {msg} ETA {eta}",
            )
            .expect("valid template"),
        );
        Box::new(Bar(pb, 0))
    } else {
        let stage = match params.shard {
            Some((i, n)) => format!("capture shard {i}/{n}"),
            None => "capture".into(),
        };
        Box::new(CaptureLines(progress::Lines::new(stage, "examples"), 0, 0))
    };
    let t0 = std::time::Instant::now();
    let s = capture::capture(
        model.as_ref(),
        &data,
        &args.out,
        &params,
        &device,
        progress.as_mut(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "repdrift: captured {} examples into {} ({} parts written, {} resumed; {} tokens in {:.1} s, {:.0} tok/s)",
        s.examples,
        args.out.display(),
        s.parts_written,
        s.parts_skipped,
        s.tokens,
        secs,
        s.tokens as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// `cpu` or `cuda:N` (the latter needs a build with `--features cuda`).
pub fn parse_device(s: &str) -> crate::Result<candle_core::Device> {
    if s == "cpu" {
        return Ok(candle_core::Device::Cpu);
    }
    let n = s
        .strip_prefix("cuda:")
        .or_else(|| (s == "cuda").then_some("0"))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| crate::Error::param("device", format!("`{s}`: expected cpu or cuda:N")))?;
    candle_core::Device::new_cuda(n).map_err(|e| {
        crate::Error::param(
            "device",
            format!("{s}: {e} (CUDA needs a build with `cargo build --release --features cuda` and an NVIDIA driver)"),
        )
    })
}

/// Run the parsed command line. User errors are returned as `anyhow` errors wrapping
/// [`crate::Error`]; `main` maps them to exit code 2.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Diagnose(a) => diagnose::run_diagnose(a)?,
        Command::Capture(a) => run_capture(a)?,
        Command::Compare(a) => run_compare(a)?,
        Command::Probe(a) => run_probe(a)?,
        Command::Transfer(a) => run_transfer(a)?,
        Command::Report(a) => run_report(a)?,
        Command::Train(a) => train::run_train(a)?,
        Command::Export(a) => run_export(a)?,
        Command::Teacher(a) => train::run_teacher(a)?,
        Command::Recommend(a) => recommend::run_recommend(a)?,
        Command::Demo(a) => demo::run_demo(a)?,
        Command::Study(a) => study::run_study(a)?,
        Command::Validate(a) => return validate::run_validate(a),
        Command::Store(a) => store::run_store(a)?,
        Command::ImplicitReward(a) => bias::run_implicit_reward(a)?,
        Command::Cues(a) => bias::run_cues(a)?,
        Command::Values(a) => bias::run_values(a)?,
    }
    Ok(ExitCode::SUCCESS)
}
