//! `repdrift train` and `repdrift teacher`: flags → validated [`TrainParams`], progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use repdrift::data::{Dataset, PairLabel, ReadOptions};
use repdrift::train::{
    self, AnchorDistance, Method, StepRecord, TrainJob, TrainParams, TrainProgress, Trainable,
    WeakLabels,
};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The base model: a Llama-family .gguf file or HF directory.
    #[arg(long)]
    pub base: PathBuf,
    /// Source preference pairs (JSONL; gzip when the name ends in .gz).
    #[arg(long)]
    pub data: PathBuf,
    /// The output directory: a delta student when done (see --save).
    #[arg(long)]
    pub out: PathBuf,
    /// delta (only the tensors training changed, plus the base's path and sha256; every
    /// command loads base + delta, `repdrift export` writes a full model) or full (an HF
    /// LlamaForSequenceClassification directory, all weights in f32).
    #[arg(long, default_value = "delta")]
    pub save: String,
    /// gold, naive, confidence or anchor.
    #[arg(long)]
    pub method: String,
    /// The weak teacher's frozen encoder (e.g. models/all-minilm-l6-v2); its BT head is fitted
    /// on half 1 and labels half 2 (written to OUT/weak_labels.json).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Reuse weak labels written by an earlier run (`weak_labels.json`).
    #[arg(long)]
    pub teacher_labels: Option<PathBuf>,
    /// A named evaluation set, NAME=FILE (repeatable); the student's accuracy is reported.
    #[arg(long = "eval", value_name = "NAME=FILE")]
    pub evals: Vec<String>,
    /// Residual layers to anchor (HF hidden_states indexing), comma-separated.
    #[arg(long, default_value = "")]
    pub anchor_layers: String,
    /// λ: one value, or one per anchor layer, comma-separated.
    #[arg(long, default_value = "0.1")]
    pub anchor_weight: String,
    /// mse (per-layer normalised) or cosine.
    #[arg(long, default_value = "mse")]
    pub anchor_distance: String,
    /// top:K (top K blocks + final norm + head) or all (also embeddings).
    #[arg(long, default_value = "top:4")]
    pub trainable: String,
    /// random, or probe (LP-FT: fit the head on the frozen base's states first).
    #[arg(long, default_value = "random")]
    pub head_init: String,
    #[command(flatten)]
    pub run: RunFlags,
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Global gradient-norm clipping (0 = none).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Checkpoint every N steps (0 = none before the end).
    #[arg(long, default_value_t = 20)]
    pub checkpoint_every: usize,
    /// Stop after N steps in total, leaving a checkpoint for --resume.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Use only the first N source pairs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// PKU-SafeRLHF rows: `safer` or `better`.
    #[arg(long, default_value = "safer")]
    pub label: String,
    /// How message lists become text: hh, plain, or model (the base's chat template).
    #[arg(long, default_value = "hh")]
    pub template: String,
    /// cpu or cuda:N (build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Continue from OUT/checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Replace OUT.
    #[arg(long)]
    pub force: bool,
}

/// The training flags `train` and `recommend --validate` share.
#[derive(Debug, Clone, clap::Args)]
pub struct RunFlags {
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Pairs per step.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Keep at most this many tokens per sequence, dropping from the left (0 = no limit).
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seeds the test / half 1 / half 2 split; keep it equal across a run's models.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
}

impl RunFlags {
    /// `p` with these flags' values.
    pub fn apply(&self, p: TrainParams) -> TrainParams {
        TrainParams {
            epochs: self.epochs,
            lr: self.lr,
            batch_size: self.batch_size,
            max_tokens: (self.max_tokens > 0).then_some(self.max_tokens),
            seed: self.seed,
            split_seed: self.split_seed,
            test_fraction: self.test_fraction,
            ..p
        }
    }
}

fn list<T: std::str::FromStr>(s: &str, name: &str) -> repdrift::Result<Vec<T>> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<T>()
                .map_err(|_| repdrift::Error::param(name, format!("cannot parse `{x}`")))
        })
        .collect()
}

/// `NAME=FILE` pairs.
pub fn named_paths(items: &[String], flag: &str) -> repdrift::Result<Vec<(String, PathBuf)>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .map(|(n, p)| (n.to_string(), PathBuf::from(p)))
                .ok_or_else(|| {
                    repdrift::Error::param(flag, format!("expected NAME=FILE, got `{s}`"))
                })
        })
        .collect()
}

impl TrainArgs {
    /// The validated library parameters.
    pub fn params(&self) -> repdrift::Result<train::ValidTrainParams> {
        self.run
            .apply(TrainParams {
                method: Method::parse(&self.method)?,
                anchor_layers: list(&self.anchor_layers, "anchor-layers")?,
                anchor_weight: list(&self.anchor_weight, "anchor-weight")?,
                anchor_distance: AnchorDistance::parse(&self.anchor_distance)?,
                trainable: Trainable::parse(&self.trainable)?,
                warmup: self.warmup,
                weight_decay: self.weight_decay,
                max_grad_norm: self.max_grad_norm,
                checkpoint_every: self.checkpoint_every,
                head_init: train::HeadInit::parse(&self.head_init)?,
                ..Default::default()
            })
            .check()
    }
}

struct Bar(indicatif::ProgressBar);

impl TrainProgress for Bar {
    fn phase(&mut self, name: &str) {
        self.0.set_message(name.to_string());
    }
    fn start(&mut self, total: usize, done: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.reset_eta();
    }
    fn step(&mut self, r: &StepRecord) {
        self.0.set_position(r.step as u64);
        let anchor = r
            .anchor
            .map(|a| format!(" anchor {a:.4}"))
            .unwrap_or_default();
        self.0.set_message(format!(
            "loss {:.4} (bt {:.4}{anchor}) {:.2} steps/s",
            r.loss,
            r.bt,
            1.0 / r.seconds.max(1e-9)
        ));
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

fn progress() -> Box<dyn TrainProgress> {
    if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps {msg} ETA {eta}",
            )
            .expect("valid template"),
        );
        Box::new(Bar(pb))
    } else {
        Box::new(TrainLines(super::progress::Lines::new("train", "steps")))
    }
}

/// Training progress for a log: the phase when it changes, then steps every few seconds.
struct TrainLines(super::progress::Lines);

impl TrainProgress for TrainLines {
    fn phase(&mut self, name: &str) {
        eprintln!("repdrift: train: {name}");
    }
    fn start(&mut self, total: usize, done: usize) {
        self.0.start(total, done);
    }
    fn step(&mut self, r: &StepRecord) {
        self.0
            .set(r.step, &format!("loss {:.4} (bt {:.4})", r.loss, r.bt));
    }
}

/// Resolve `--template`: `hh`, `plain`, or `model` (the model's own chat template).
pub fn template(
    name: &str,
    model: &dyn repdrift::model::HookedModel,
) -> repdrift::Result<repdrift::data::chat::ChatTemplate> {
    if let Some(t) = repdrift::data::chat::parse_builtin(name) {
        return Ok(t);
    }
    if name != "model" {
        return Err(repdrift::Error::param(
            "template",
            format!("`{name}`: expected hh, plain or model"),
        ));
    }
    model.tokenizer().chat_template.clone().ok_or_else(|| {
        repdrift::Error::model(
            &model.info().path,
            "--template model: the model ships no chat template (tokenizer_config.json, chat_template.jinja or GGUF tokenizer.chat_template)",
        )
    })
}

fn read_pairs(
    path: &Path,
    limit: Option<usize>,
    label: &str,
    template: &repdrift::data::chat::ChatTemplate,
) -> repdrift::Result<Dataset> {
    repdrift::data::read_jsonl_with(
        path,
        &ReadOptions {
            limit,
            label: PairLabel::parse(label)?,
            template: template.clone(),
        },
    )
}

/// Read `weak_labels.json`.
pub fn read_labels(path: &Path) -> repdrift::Result<WeakLabels> {
    let text = std::fs::read_to_string(path).map_err(|e| repdrift::Error::io(path, e))?;
    let labels: WeakLabels = serde_json::from_str(&text).map_err(|e| repdrift::Error::Json {
        path: path.to_path_buf(),
        cause: e,
    })?;
    if labels.format != train::teacher::LABELS_FORMAT || labels.lines.len() != labels.p.len() {
        return Err(repdrift::Error::param(
            "teacher-labels",
            format!("{}: not a repdrift weak-labels file", path.display()),
        ));
    }
    Ok(labels)
}

pub fn run_train(a: &TrainArgs) -> anyhow::Result<()> {
    let params = a.params()?;
    let save: train::SaveAs = a.save.parse()?;
    if a.teacher.is_some() && a.teacher_labels.is_some() {
        return Err(repdrift::Error::param(
            "teacher",
            "give --teacher or --teacher-labels, not both",
        )
        .into());
    }
    let device = super::device::parse_device(&a.device)?;
    let base = repdrift::model::load_llama(&a.base, &device)?;
    let tpl = template(&a.template, &base)?;
    let data = read_pairs(&a.data, a.limit, &a.label, &tpl)?;
    let evals: Vec<(String, Dataset)> = named_paths(&a.evals, "eval")?
        .into_iter()
        .map(|(n, p)| Ok((n, read_pairs(&p, None, &a.label, &tpl)?)))
        .collect::<repdrift::Result<_>>()?;
    let labels = match (&a.teacher, &a.teacher_labels) {
        (_, Some(p)) => Some(read_labels(p)?),
        (Some(t), None) if params.method.needs_teacher() => {
            let model = repdrift::model::load(t, &device)?;
            let sp = train::split(data.examples.len(), params.test_fraction, params.split_seed);
            Some(train::fit_teacher(
                model.as_ref(),
                &data,
                &sp,
                &evals,
                params.max_tokens,
                params.split_seed,
                params.test_fraction,
                &device,
            )?)
        }
        _ => None,
    };
    let job = TrainJob {
        labels: labels.as_ref(),
        out: &a.out,
        resume: a.resume,
        force: a.force,
        stop_after: a.stop_after,
        save,
    };
    let mut pb = progress();
    let summary = train::train(&base, &data, &evals, &params, &job, &device, pb.as_mut())?;
    if let (Some(l), Some(_)) = (&labels, &a.teacher) {
        repdrift::io::write_atomic(
            &a.out.join("weak_labels.json"),
            &repdrift::io::json_bytes(l),
        )?;
    }
    match summary {
        None => eprintln!(
            "repdrift: stopped after {} steps; continue with --resume",
            a.stop_after.unwrap_or(0)
        ),
        Some(s) => {
            let acc: Vec<String> = s
                .accuracy
                .iter()
                .map(|(k, v)| format!("{k} {:.1} %", 100.0 * v))
                .collect();
            eprintln!(
                "repdrift: trained {} ({} steps, {:.2} steps/s, final BT loss {:.4}) into {}; accuracy: {}",
                s.method.name(),
                s.stats.steps,
                s.stats.steps_per_second,
                s.stats.final_bt_loss,
                a.out.display(),
                acc.join(", ")
            );
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TeacherArgs {
    /// The weak teacher's frozen encoder (e.g. models/all-minilm-l6-v2).
    #[arg(long)]
    pub model: PathBuf,
    /// Source preference pairs.
    #[arg(long)]
    pub data: PathBuf,
    /// NAME=FILE evaluation sets (repeatable).
    #[arg(long = "eval", value_name = "NAME=FILE")]
    pub evals: Vec<String>,
    /// The labels file to write (weak_labels.json).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value = "safer")]
    pub label: String,
    /// How message lists become text: hh, plain, or model (the teacher's chat template).
    #[arg(long, default_value = "hh")]
    pub template: String,
}

pub fn run_teacher(a: &TeacherArgs) -> anyhow::Result<()> {
    if !(0.0..0.9).contains(&a.test_fraction) {
        return Err(repdrift::Error::param("test-fraction", "must lie in [0, 0.9)").into());
    }
    let device = candle_core::Device::Cpu;
    let model = repdrift::model::load(&a.model, &device)?;
    let tpl = template(&a.template, model.as_ref())?;
    let data = read_pairs(&a.data, a.limit, &a.label, &tpl)?;
    let evals: Vec<(String, Dataset)> = named_paths(&a.evals, "eval")?
        .into_iter()
        .map(|(n, p)| Ok((n, read_pairs(&p, None, &a.label, &tpl)?)))
        .collect::<repdrift::Result<_>>()?;
    let sp = train::split(data.examples.len(), a.test_fraction, a.split_seed);
    let labels = train::fit_teacher(
        model.as_ref(),
        &data,
        &sp,
        &evals,
        (a.max_tokens > 0).then_some(a.max_tokens),
        a.split_seed,
        a.test_fraction,
        &device,
    )?;
    repdrift::io::write_atomic(&a.out, &repdrift::io::json_bytes(&labels))?;
    let acc: Vec<String> = labels
        .accuracy
        .iter()
        .map(|(k, v)| format!("{k} {:.1} %", 100.0 * v))
        .collect();
    eprintln!(
        "repdrift: weak teacher (C = {}) labelled {} pairs into {}; accuracy: {}",
        labels.c,
        labels.p.len(),
        a.out.display(),
        acc.join(", ")
    );
    Ok(())
}
