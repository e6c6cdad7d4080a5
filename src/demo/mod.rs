//! The one-command demo on the embedded default (SmolLM2-135M-Instruct, GGUF) and repdrift's
//! own weak-to-strong data in `probes/w2s/`: the whole story of the brief, in-process, as one
//! seed of the study's `top8-lr3e-4` regime.
//!
//! 1. the weak teacher (MiniLM + BT head) is fitted on source half 1 and labels half 2;
//! 2. the base's frozen bottom is run once (cache); the gold ceiling and the naive student
//!    train on half 2 (top `K` blocks + head);
//! 3. `diagnose` (the command a user runs on their own checkpoints) on the base and the naive
//!    student: held-out source pairs (test split ∪ half 1: no student trained on them) and
//!    every target captured into a cache under `work/`, compared, probed, tested pair by pair;
//!    its anchor advice (`recommend`'s layers and λ from that drift);
//! 4. the anchored student trains with the recommendation; with `validate` (`demo --grid`)
//!    alternative anchors are trained too (validation grid);
//! 5. `diagnose` again with both students — the cache serves base and naive, only the
//!    anchored student is captured; IDG/AOG/PGR/NTS are computed; the report (the verdict per
//!    student and target first, then drift, probes, the recommendation and its validation) is
//!    written.
//!
//! Work files (checkpoints, stores) go to `work/`; the report to `out/`.

pub mod bias;
pub mod record;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::data::{read_jsonl, Dataset};
use crate::diagnose::{self, DiagnoseConfig, Named};
use crate::error::{Error, Result};
use crate::probe::run::ProbeReport;
use crate::probe::transfer::{summarise, Scores};
use crate::recommend;
use crate::train::{self, Method, TrainJob, TrainParams, Trainable};

/// What the demo runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoConfig {
    pub base: PathBuf,
    pub teacher: PathBuf,
    pub source: PathBuf,
    /// (name, file) of each target set.
    pub targets: Vec<(String, PathBuf)>,
    /// Use only the first N pairs of each file (None = all).
    pub limit_source: Option<usize>,
    pub limit_targets: Option<usize>,
    pub trainable_blocks: usize,
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub max_tokens: usize,
    pub budget: usize,
    pub fraction: f64,
    /// Train the validation grid's alternatives.
    pub validate: bool,
    pub seed: u64,
    /// The committed study this demo is an instance of (`study.json`); its findings are
    /// quoted under the report's title when the file is there.
    #[serde(default)]
    pub study: Option<PathBuf>,
    /// The study regime the demo repeats (its row in the study's tables).
    #[serde(default)]
    pub study_regime: String,
    /// A committed `repdrift validate` run of the base (`validate.json`): its numerical floor
    /// and checks go into "Can these numbers be trusted?" when it validated this base.
    #[serde(default)]
    pub validate_record: Option<PathBuf>,
    /// Permutations behind each measure's chance band (`compare --permutations`).
    #[serde(default)]
    pub permutations: usize,
    /// Held-out source pairs on which cue sensitivity is measured (0 = no cue and value
    /// section).
    #[serde(default)]
    pub cue_pairs: usize,
    /// The value lexicon and how many of its pairs to use.
    #[serde(default)]
    pub value_items: Option<PathBuf>,
    #[serde(default)]
    pub value_pairs: usize,
}

impl DemoConfig {
    /// The full demo (paths relative to the repository root): the study's `top8-lr3e-4` regime
    /// (`probes/studies/w2s.toml`), seed 0, on the first 300 pairs of `probes/w2s/source.jsonl`
    /// (the study uses 360; fewer keep the demo within 10 minutes on 2 cores) — the weak teacher
    /// is wrong on about a fifth of its labels there, so the naive student learns from real
    /// errors — with real HH-RLHF pairs as a third target.
    pub fn full(root: &Path) -> Self {
        Self {
            base: root.join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
            teacher: root.join("models/all-minilm-l6-v2"),
            source: root.join("probes/w2s/source.jsonl"),
            targets: vec![
                ("chat".into(), root.join("probes/w2s/target_chat.jsonl")),
                ("forum".into(), root.join("probes/w2s/target_forum.jsonl")),
                // Real preference pairs (Anthropic HH-RLHF harmless-base, MIT; probes/README).
                ("hh".into(), root.join("probes/hh-rlhf/eval.jsonl.gz")),
            ],
            limit_source: Some(300),
            limit_targets: Some(80),
            trainable_blocks: 8,
            epochs: 2,
            lr: 3e-4,
            batch_size: 8,
            max_tokens: 96,
            budget: 2,
            fraction: 0.5,
            validate: false,
            seed: 0,
            study: Some(root.join("reports/study/w2s/study.json")),
            study_regime: "top8-lr3e-4".into(),
            validate_record: Some(root.join("reports/validate/smollm2/validate.json")),
            permutations: 100,
            cue_pairs: 32,
            value_items: Some(root.join("probes/values/items.jsonl")),
            value_pairs: 48,
        }
    }

    /// The quick demo for CI: fewer pairs, fewer steps, no validation grid.
    pub fn quick(root: &Path) -> Self {
        Self {
            limit_source: Some(48),
            limit_targets: Some(24),
            trainable_blocks: 2,
            epochs: 1,
            lr: 1e-4,
            validate: false,
            permutations: 50,
            cue_pairs: 8,
            value_pairs: 8,
            ..Self::full(root)
        }
    }
}

/// Timings and headline numbers (`demo.json` in the report directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoSummary {
    pub format: String,
    pub config: DemoConfig,
    /// (stage, seconds).
    pub stages: Vec<(String, f64)>,
    pub total_seconds: f64,
    /// model → dataset → pairwise accuracy of the reward model itself (the weak teacher's BT
    /// head, gold, naive, anchor).
    pub accuracy: BTreeMap<String, BTreeMap<String, f64>>,
    pub recommended_layers: Vec<usize>,
    pub recommended_weights: Vec<f64>,
}

struct Stages<'a> {
    t0: Instant,
    last: Instant,
    list: Vec<(String, f64)>,
    say: &'a mut dyn FnMut(&str),
}

impl Stages<'_> {
    fn done(&mut self, what: &str) {
        let now = Instant::now();
        let s = (now - self.last).as_secs_f64();
        self.list.push((what.to_string(), s));
        (self.say)(&format!(
            "[{:6.1} s] {what} ({s:.1} s)",
            (now - self.t0).as_secs_f64()
        ));
        self.last = now;
    }
}

/// Write the listed (1-based) lines of `src` (plain or gzip JSONL) to `dst`, in file order.
fn write_lines(src: &Path, lines: &[usize], dst: &Path) -> Result<()> {
    use std::io::BufRead;
    let mut want: Vec<usize> = lines.to_vec();
    want.sort_unstable();
    let mut out = String::new();
    for (i, l) in crate::data::open_lines(src)?.lines().enumerate() {
        let l = l.map_err(|e| Error::io(src, e))?;
        if want.binary_search(&(i + 1)).is_ok() {
            out.push_str(&l);
            out.push('\n');
        }
    }
    crate::io::write_atomic(dst, out.as_bytes())
}

/// The diagnosis's data as files under `work`: the held-out source pairs (test split ∪ half 1:
/// no student trained on them) and each target's pairs within the demo's limit.
fn diagnose_inputs(
    cfg: &DemoConfig,
    source: &Dataset,
    sp: &train::Split,
    targets: &[(String, Dataset)],
    work: &Path,
) -> Result<(PathBuf, Vec<Named>)> {
    let heldout: Vec<usize> = sp
        .test
        .iter()
        .chain(&sp.half1)
        .map(|&i| source.examples[i].line)
        .collect();
    let source_path = work.join("source_heldout.jsonl");
    write_lines(&cfg.source, &heldout, &source_path)?;
    let files = targets
        .iter()
        .zip(&cfg.targets)
        .map(|((name, ds), (_, file))| {
            let path = work.join("targets").join(format!("{name}.jsonl"));
            let lines: Vec<usize> = ds.examples.iter().map(|e| e.line).collect();
            write_lines(file, &lines, &path)?;
            Ok(Named {
                name: name.clone(),
                path,
            })
        })
        .collect::<Result<_>>()?;
    Ok((source_path, files))
}

/// Each target's pairwise accuracy: the base's own probe at the final layer (what the base
/// already knew) beside the weak teacher and every trained reward model.
fn beside_base_probe(
    base: &ProbeReport,
    final_layer: usize,
    accuracy: &BTreeMap<String, BTreeMap<String, f64>>,
    targets: &[String],
) -> String {
    let mut p = String::from(
        "Pairwise accuracy on each target, the base's own probe (final layer, trained on the held-out source pairs) beside the reward models:",
    );
    for t in targets {
        let probe = base
            .rows
            .iter()
            .find(|r| r.kind == "transfer" && r.eval == *t && r.layer == final_layer)
            .map_or("–".to_string(), |r| {
                format!("{:.1} %", 100.0 * r.accuracy)
            });
        let models: Vec<String> = accuracy
            .iter()
            .filter_map(|(m, a)| a.get(t).map(|v| format!("{m} {:.1} %", 100.0 * v)))
            .collect();
        p.push_str(&format!(" {t}: base probe {probe}; {}.", models.join(", ")));
    }
    p
}

/// What the committed study found, in words from its `study.json` (nothing when the file is
/// absent): the demo is one small instance of it, and one seed cannot carry the conclusion.
pub fn study_context(path: &Path, regime: &str) -> Result<Vec<String>> {
    use crate::study::analysis::Summary;
    if !path.exists() {
        return Ok(Vec::new());
    }
    #[derive(Deserialize)]
    struct File {
        summary: Summary,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let f: File = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        cause: e,
    })?;
    let s = f.summary;
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &s.table {
        for (k, v) in &c.outcomes {
            *outcomes.entry(k.as_str()).or_insert(0) += v;
        }
    }
    let count = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    let mut p = format!(
        "This demo repeats one seed of the study's {regime} regime at a smaller scale; the study itself ({}: {} runs, methods {} × regimes {}) is where the conclusion lies.",
        path.strip_prefix(".").unwrap_or(path).display(),
        s.n_runs,
        s.methods.join(", "),
        s.regimes.join(", ")
    );
    for c in s.table.iter().filter(|c| c.method == "naive") {
        if let Some(v) = c.metrics.get("transfer_change") {
            p.push_str(&format!(
                " Naive students in {}: {:+.1} points of mean target accuracy against the base probe{}.",
                c.regime,
                v.mean,
                v.ci95()
                    .map(|(lo, hi)| format!(" (95 % CI {lo:+.1} to {hi:+.1}, n = {})", v.n))
                    .unwrap_or_default()
            ));
        }
    }
    p.push_str(&format!(
        " Over all runs, by the study's fixed 5-point rule (not a test over pairs: its runs stored no per-pair result), {} kept the base probe's target accuracy, {} lost it through drift and {} through the head.",
        count("transferred"),
        count("drift"),
        count("head")
    ));
    if let (Some(b), Some(rho)) = (&s.best_layer, s.best_layer.as_ref().and_then(|b| b.rho)) {
        p.push_str(&format!(
            " Drift (1 − linear CKA) at layer {} correlates with the transfer change at Spearman ρ = {rho:.2}{}: {}.",
            b.layer,
            b.ci
                .map(|(lo, hi)| format!(" (95 % CI {lo:.2} to {hi:.2})"))
                .unwrap_or_default(),
            if rho > 0.0 {
                "more drift went with better transfer, not worse"
            } else {
                "more drift went with worse transfer"
            }
        ));
    }
    Ok(vec![
        p,
        "What the committed studies support across their arms — does naive W2S lose transfer, does drift explain it, does anchoring keep it — each with its numbers and the smallest effect it could see: docs/study.md, \"What the evidence supports\".".to_string(),
    ])
}

/// The demo's inputs read once: the source, the targets, the training settings and the split.
struct Inputs {
    source: Dataset,
    targets: Vec<(String, Dataset)>,
    target_names: Vec<String>,
    params: TrainParams,
    split: train::Split,
}

fn read_inputs(cfg: &DemoConfig) -> Result<Inputs> {
    let source = read_jsonl(&cfg.source, cfg.limit_source)?;
    let targets: Vec<(String, Dataset)> = cfg
        .targets
        .iter()
        .map(|(n, p)| Ok((n.clone(), read_jsonl(p, cfg.limit_targets)?)))
        .collect::<Result<_>>()?;
    let target_names = targets.iter().map(|t| t.0.clone()).collect();
    let params = TrainParams {
        method: Method::Gold,
        trainable: Trainable::Top(cfg.trainable_blocks),
        epochs: cfg.epochs,
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        max_tokens: Some(cfg.max_tokens),
        seed: cfg.seed,
        checkpoint_every: 0,
        ..Default::default()
    };
    params.clone().check()?;
    let split = train::split(
        source.examples.len(),
        params.test_fraction,
        params.split_seed,
    );
    Ok(Inputs {
        source,
        targets,
        target_names,
        params,
        split,
    })
}

/// Stage 1: the weak teacher fitted on half 1, its labels for half 2 (`work/weak_labels.json`).
fn weak_teacher(
    cfg: &DemoConfig,
    i: &Inputs,
    work: &Path,
    device: &Device,
) -> Result<train::WeakLabels> {
    let teacher = crate::model::load(&cfg.teacher, device)?;
    let labels = train::fit_teacher(
        teacher.as_ref(),
        &i.source,
        &i.split,
        &i.targets,
        i.params.max_tokens,
        i.params.split_seed,
        i.params.test_fraction,
        device,
    )?;
    crate::io::write_atomic(
        &work.join("weak_labels.json"),
        &crate::io::json_bytes(&labels),
    )?;
    Ok(labels)
}

/// The weak teacher's accuracies on the source test split and the targets.
fn teacher_accuracy(labels: &train::WeakLabels, targets: &[String]) -> BTreeMap<String, f64> {
    labels
        .accuracy
        .iter()
        .filter(|(k, _)| *k == "source_test" || targets.contains(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Trains students on one cache of the base's frozen bottom, each into `work/NAME`.
struct Trainer<'a> {
    prep: &'a train::Prepared<'a>,
    params: &'a TrainParams,
    labels: &'a train::WeakLabels,
    work: &'a Path,
    device: &'a Device,
}

impl Trainer<'_> {
    /// One student; its pairwise accuracy per set.
    fn train(
        &self,
        method: Method,
        anchor_layers: Vec<usize>,
        weights: Vec<f64>,
        name: &str,
    ) -> Result<BTreeMap<String, f64>> {
        let p = TrainParams {
            method,
            anchor_layers,
            anchor_weight: if weights.is_empty() {
                vec![0.1]
            } else {
                weights
            },
            ..self.params.clone()
        }
        .check()?;
        let job = TrainJob {
            labels: method.needs_teacher().then_some(self.labels),
            out: &self.work.join(name),
            resume: false,
            force: true,
            stop_after: None,
            save: Default::default(),
        };
        Ok(train::train_prepared(
            self.prep,
            &p,
            &job,
            self.device,
            &mut train::NoTrainProgress,
        )?
        .expect("runs to the end")
        .accuracy)
    }
}

/// What every diagnosis of the demo shares: the base, the data files, the settings.
struct Diagnoser<'a> {
    cfg: &'a DemoConfig,
    work: &'a Path,
    source: PathBuf,
    targets: Vec<Named>,
    n_layers: usize,
    device: &'a Device,
}

impl Diagnoser<'_> {
    /// `diagnose` of the named students (trained into `work/NAME`) against the base; the cache
    /// under `work/cache` serves every capture an earlier diagnosis made.
    fn diagnose(&self, students: &[&str]) -> Result<diagnose::Computed> {
        let cfg = self.cfg;
        let mut d = DiagnoseConfig::new(
            cfg.base.clone(),
            students
                .iter()
                .map(|n| Named {
                    name: n.to_string(),
                    path: self.work.join(n),
                })
                .collect(),
            self.source.clone(),
            self.targets.clone(),
            self.work.join(format!("diagnose-{}", students.join("-"))),
        );
        d.max_tokens = cfg.max_tokens;
        d.permutations = cfg.permutations;
        d.seed = cfg.seed;
        d.anchor_budget = cfg.budget;
        d.anchor_from = self.n_layers - cfg.trainable_blocks + 1;
        d.anchor_fraction = cfg.fraction;
        d.batch_size = cfg.batch_size;
        d.cache = Some(self.work.join("cache"));
        Ok(diagnose::compute(&d.check()?, true, false, self.device, &mut diagnose::Quiet)?.0)
    }
}

/// Stage 5: the recommendation set beside the naive student (λ = 0); with `cfg.validate` the
/// grid's alternatives are trained too.
fn validate_advice(
    cfg: &DemoConfig,
    rec: &recommend::Recommendation,
    t: &Trainer<'_>,
    i: &Inputs,
    naive: &BTreeMap<String, f64>,
    anchor: &BTreeMap<String, f64>,
) -> Result<recommend::Validation> {
    let known = vec![
        ("naive (λ = 0)".to_string(), naive.clone()),
        ("recommended".to_string(), anchor.clone()),
    ];
    let proposals: Vec<_> = recommend::grid(rec, false)
        .into_iter()
        .filter(|p| cfg.validate || known.iter().any(|(l, _)| *l == p.label))
        .collect();
    recommend::validate(
        t.prep,
        &proposals,
        t.params,
        t.labels,
        &i.target_names,
        &known,
        &t.work.join("grid"),
        t.device,
        &mut train::NoTrainProgress,
    )
}

/// The report's inputs: the diagnosis's own, plus the demo's title, transfer metrics, the
/// validated recommendation, the accuracies beside the base probe, the committed study's
/// findings, the committed validate run of the base and the cue and value section.
fn report_inputs(
    cfg: &DemoConfig,
    computed: &diagnose::Computed,
    i: &Inputs,
    n_layers: usize,
    accuracy: &BTreeMap<String, BTreeMap<String, f64>>,
    rec: &recommend::Recommendation,
    bias: Option<crate::bias::summary::BiasSection>,
) -> Result<crate::report::ReportInputs> {
    let mut inputs = diagnose::render::report_inputs(computed);
    inputs.title = "repdrift demo: SmolLM2-135M-Instruct, weak-to-strong reward models on probes/w2s (one seed of the study's top8-lr3e-4 regime)".into();
    inputs.transfer = Some(summarise(&Scores {
        source: "source_test".into(),
        targets: i.target_names.clone(),
        weak: "weak".into(),
        ceiling: Some("gold".into()),
        accuracy: accuracy.clone(),
    })?);
    inputs.recommendation = Some(rec.clone());
    if let Some(b) = computed.probes.iter().find(|p| p.model == "base") {
        inputs
            .context
            .push(beside_base_probe(b, n_layers, accuracy, &i.target_names));
    }
    if let Some(p) = &cfg.study {
        inputs.context.extend(study_context(p, &cfg.study_regime)?);
    }
    if let Some(v) = cfg.validate_record.as_ref().filter(|v| v.exists()) {
        match crate::report::trust::summary_for(v, &inputs.metrics.base.model_sha256) {
            Ok(mut s) => {
                // Show the repository-relative path, not this machine's.
                let cwd = std::env::current_dir().unwrap_or_default();
                if let Ok(rel) = v.strip_prefix(&cwd).or_else(|_| v.strip_prefix(".")) {
                    s.path = rel.display().to_string();
                }
                inputs.validate = Some(s)
            }
            Err(Error::Incompatible { reason, .. }) => inputs
                .context
                .push(format!("{} was not used: {reason}.", v.display())),
            Err(e) => return Err(e),
        }
    }
    inputs.bias = bias;
    Ok(inputs)
}

/// Stage 7: cue sensitivity and value bias of the base and the three students (none when the
/// configuration asks for no cue pairs or no value items).
fn cues_and_values(
    cfg: &DemoConfig,
    work: &Path,
    cue_data: &Path,
    device: &Device,
) -> Result<Option<crate::bias::summary::BiasSection>> {
    let (Some(items), n) = (&cfg.value_items, cfg.cue_pairs) else {
        return Ok(None);
    };
    if n == 0 {
        return Ok(None);
    }
    let plan = bias::BiasPlan {
        base: &cfg.base,
        students: ["gold", "naive", "anchor"]
            .iter()
            .map(|n| (*n, work.join(n)))
            .collect(),
        cue_data,
        cue_pairs: n,
        value_items: items,
        value_pairs: cfg.value_pairs,
        max_tokens: cfg.max_tokens,
    };
    Ok(Some(bias::measure(&plan, work, device)?))
}

/// Run the demo: work files under `work`, the report under `out`. `command` is how the run
/// was asked for (it heads the run of record, `out/README.md`). `say` receives one line per
/// finished stage.
pub fn run(
    cfg: &DemoConfig,
    command: &str,
    work: &Path,
    out: &Path,
    device: &Device,
    say: &mut dyn FnMut(&str),
) -> Result<DemoSummary> {
    let t0 = Instant::now();
    let mut st = Stages {
        t0,
        last: t0,
        list: Vec::new(),
        say,
    };
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    // Each demo is the whole story from scratch: an earlier run's captures are not reused, so
    // the stage times in the run of record are what a first run on this machine takes.
    let cache = work.join("cache");
    if cache.exists() {
        crate::io::clear_dir(&cache)?;
    }
    let i = read_inputs(cfg)?;
    let labels = weak_teacher(cfg, &i, work, device)?;
    st.done("weak teacher (MiniLM + BT head) fitted on half 1, labels for half 2");

    let base = crate::model::load_llama(&cfg.base, device)?;
    let valid = i.params.clone().check()?;
    let prep = train::prepare(
        &base,
        &i.source,
        &i.targets,
        &valid,
        device,
        &mut train::NoTrainProgress,
    )?;
    st.done("base bottom blocks cached (half 2, test split, targets)");
    let trainer = Trainer {
        prep: &prep,
        params: &i.params,
        labels: &labels,
        work,
        device,
    };
    let gold = trainer.train(Method::Gold, vec![], vec![], "gold")?;
    st.done("gold ceiling trained");
    let naive = trainer.train(Method::Naive, vec![], vec![], "naive")?;
    st.done("naive student trained");

    let (source, targets) = diagnose_inputs(cfg, &i.source, &i.split, &i.targets, work)?;
    let n_layers = base.blocks().len();
    let diagnoser = Diagnoser {
        cfg,
        work,
        source,
        targets,
        n_layers,
        device,
    };
    let mut rec = diagnoser.diagnose(&["naive"])?.diagnosis.advice[0].clone();
    st.done("base and naive captured, compared, probed and tested; anchors recommended");

    let (layers, weights) = (rec.proposal.layers.clone(), rec.proposal.weights.clone());
    let anchor = trainer.train(Method::Anchor, layers, weights, "anchor")?;
    st.done("anchored student trained (recommended layers and λ)");
    rec.validation = Some(validate_advice(cfg, &rec, &trainer, &i, &naive, &anchor)?);
    st.done(if cfg.validate {
        "validation grid trained"
    } else {
        "validation (recommended vs naive only; --grid trains the alternatives)"
    });
    drop(prep);

    let computed = diagnoser.diagnose(&["naive", "anchor"])?;
    let mut accuracy = BTreeMap::new();
    accuracy.insert("weak".into(), teacher_accuracy(&labels, &i.target_names));
    accuracy.insert("gold".into(), gold);
    accuracy.insert("naive".into(), naive);
    accuracy.insert("anchor".into(), anchor);
    st.done("both students diagnosed (anchored student captured), transfer metrics");
    let bias = cues_and_values(cfg, work, &diagnoser.source, device)?;
    if bias.is_some() {
        st.done("cue sensitivity and value bias of base and students");
    }
    let inputs = report_inputs(cfg, &computed, &i, n_layers, &accuracy, &rec, bias)?;
    diagnose::render::write_with(out, &computed, &inputs)?;
    st.done("report written");
    let summary = DemoSummary {
        format: "repdrift-demo".into(),
        config: cfg.clone(),
        total_seconds: t0.elapsed().as_secs_f64(),
        stages: st.list,
        accuracy,
        recommended_layers: rec.proposal.layers.clone(),
        recommended_weights: rec.proposal.weights.clone(),
    };
    let machine = record::Machine::here();
    crate::io::write_atomic(
        &out.join("README.md"),
        &record::render(command, &machine, &summary, &computed.diagnosis),
    )?;
    crate::io::write_atomic(&out.join("demo.json"), &crate::io::json_bytes(&summary))?;
    Ok(summary)
}
