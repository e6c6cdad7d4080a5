//! `repdrift diagnose`: a base, its students as the user has them, a source and targets → one
//! report saying, per student and target, whether the student lost what the base knew, and
//! through drift or through its head — with tests over pairs (and seeds), never a fixed point
//! threshold.
//!
//! The stages ([`run`]):
//! 1. **plan** ([`plan`]): read and check every data set and model before any capture;
//! 2. **capture**: each (model, data set) once, into a content-addressed cache under
//!    `OUT/cache/` (weights hash, data hash, capture settings), so a second run with one more
//!    student or target captures only what is new; an unfinished capture resumes;
//! 3. **compare**: each student against the base on every set (with permutation bands);
//! 4. **probe**: per-layer probes of every model (source → targets), for the report and advice;
//! 5. **readouts** ([`readouts`]): per-pair margins at the verdict layer — the base's probe on
//!    every model's states, every reward model's own head;
//! 6. **tests** ([`crate::stats::verdict`]): per student and target, accuracies, the three
//!    paired comparisons, Holm across targets, the verdict and the detectable difference;
//! 7. **advice**: `recommend`'s anchor layers and λ from the measured drift (no training);
//! 8. **write** ([`render`]): `report.md`, `index.html`, `report.json`, plots, `diagnose.json`,
//!    `pairs.csv`, the drift and probe tables; `diagnose.json` last, so a directory holding it
//!    is complete.

pub mod config;
pub mod plan;
pub mod readouts;
pub mod render;

use std::path::PathBuf;

use candle_core::Device;
use serde::{Deserialize, Serialize};

pub use config::{DiagnoseConfig, Named, ValidDiagnose};
use plan::{DataSet, ModelEntry, Plan};
use readouts::{correct, Readouts, StoreMap};

use crate::capture::{self, CaptureParams, LayerSelection, NoProgress, Store};
use crate::error::{Error, Result};
use crate::metrics::compare::{self, CompareParams, MetricsReport};
use crate::probe::run::{probe, NamedStore, ProbeParams, ProbeReport};
use crate::recommend::{self, RecommendParams, Recommendation};
use crate::stats::verdict::{adjust, test_cell, CellTests, Outcomes, TestSettings};

/// The value of `diagnose.json`'s `format`.
pub const FORMAT: &str = "repdrift-diagnose";

/// Reports what the diagnosis is doing (the library never prints).
pub trait DiagnoseProgress {
    fn line(&mut self, _msg: &str) {}
}

/// A [`DiagnoseProgress`] that ignores everything.
pub struct Quiet;
impl DiagnoseProgress for Quiet {}

/// One data set as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRecord {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub pairs: usize,
}

/// One capture as recorded: which model on which set, and where its store is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub model: String,
    pub set: String,
    pub key: String,
    pub path: PathBuf,
}

/// The tests of one student (all its seeds) on one set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub student: String,
    pub set: String,
    /// `target` (in the Holm family) or `source` (in-distribution, tested alone).
    pub role: String,
    /// 1 − linear CKA of the pair differences at the verdict layer on this set (mean over
    /// seeds).
    pub drift: Option<f64>,
    /// Its 95 % bootstrap interval over pairs ([`DRIFT_RESAMPLES`] replicates; one seed only).
    #[serde(default)]
    pub drift_interval: Option<(f64, f64)>,
    pub tests: CellTests,
}

/// `diagnose.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub format: String,
    pub version: u32,
    pub repdrift_version: String,
    pub config: DiagnoseConfig,
    pub base: ModelEntry,
    pub students: Vec<ModelEntry>,
    pub sets: Vec<SetRecord>,
    pub layers: Vec<usize>,
    pub verdict_layer: usize,
    /// The base probe behind the readouts: its C, folds and cross-validated source accuracy.
    pub probe_c: f64,
    pub probe_folds: usize,
    pub probe_cv_accuracy: f64,
    pub tests: TestSettings,
    pub cells: Vec<Cell>,
    pub advice: Vec<Recommendation>,
    pub warnings: Vec<String>,
    pub stores: Vec<StoreRecord>,
}

/// What a run did besides its outputs (not written into `diagnose.json`, so a resumed run
/// writes the same bytes).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// (model, set) captured by this run.
    pub captured: Vec<(String, String)>,
    /// (model, set) found complete in the cache.
    pub reused: Vec<(String, String)>,
    /// (stage, seconds).
    pub stages: Vec<(String, f64)>,
    /// Data sets whose drift was computed, and found in the cache.
    pub drift_computed: Vec<String>,
    pub drift_reused: Vec<String>,
}

/// Each data set's `compare` report, the source first.
pub type DriftBySet = Vec<(String, MetricsReport)>;

/// Everything computed, before it is written.
pub struct Computed {
    pub diagnosis: Diagnosis,
    pub readouts: Readouts,
    pub drift: DriftBySet,
    pub cross_layer: Vec<compare::CrossLayer>,
    pub probes: Vec<ProbeReport>,
}

/// Refuse, clear or keep what `out` holds.
fn prepare_out(cfg: &ValidDiagnose, resume: bool, force: bool) -> Result<()> {
    let out = &cfg.out;
    let holds =
        out.join("diagnose.json").exists() || (cfg.cache.is_none() && cfg.cache_dir().exists());
    if force {
        crate::io::clear_dir(out)?;
    } else if holds && !resume {
        return Err(Error::param(
            "out",
            format!(
                "{} already holds a diagnosis: --resume reuses its captures (and captures only new models or data sets), --force starts over",
                out.display()
            ),
        ));
    }
    Ok(())
}

fn capture_params(cfg: &ValidDiagnose, plan: &Plan) -> Result<capture::ValidCaptureParams> {
    CaptureParams {
        pooling: cfg.pooling,
        layers: LayerSelection::List(plan.layers.clone()),
        max_tokens: Some(cfg.max_tokens),
        batch_size: cfg.batch_size,
        resume: true,
        ..Default::default()
    }
    .check()
}

/// Whether `dir` holds the finished capture of `model` on `set`.
fn cached(dir: &std::path::Path, model: &ModelEntry, set: &DataSet) -> bool {
    Store::open(dir).is_ok_and(|s| {
        let m = s.manifest();
        m.complete && m.model.sha256 == model.weights_sha256 && m.dataset.sha256 == set.data.sha256
    })
}

/// Stage 2: capture what the cache lacks; each model is loaded once, only when needed. With
/// `only = Some(t)`, only capture task `t` (see [`capture_task`]) is captured.
fn capture_all(
    cfg: &ValidDiagnose,
    plan: &Plan,
    only: Option<usize>,
    device: &Device,
    summary: &mut RunSummary,
    say: &mut dyn FnMut(&str),
) -> Result<(StoreMap, Vec<StoreRecord>)> {
    let params = capture_params(cfg, plan)?;
    let mut map = StoreMap::new();
    let mut records = Vec::new();
    for (mi, m) in plan.models().enumerate() {
        let mut todo = Vec::new();
        for (si, set) in plan.sets.iter().enumerate() {
            let key = plan.store_key(m, set, cfg);
            let dir = cfg.cache_dir().join(&key);
            if only.is_none_or(|t| t == mi * plan.sets.len() + si) {
                if cached(&dir, m, set) {
                    summary.reused.push((m.id.clone(), set.name.clone()));
                } else {
                    todo.push((set, dir.clone()));
                }
            }
            map.insert((m.id.clone(), set.name.clone()), dir.clone());
            records.push(StoreRecord {
                model: m.id.clone(),
                set: set.name.clone(),
                key,
                path: dir,
            });
        }
        if todo.is_empty() {
            continue;
        }
        let model = crate::model::load_with_base(
            &m.path,
            Some(&cfg.base),
            device,
            candle_core::DType::F32,
        )?;
        for (set, dir) in todo {
            capture::capture(
                model.as_ref(),
                &set.data,
                &dir,
                &params,
                device,
                &mut NoProgress,
            )?;
            say(&format!(
                "captured {} on {} ({} pairs)",
                m.id,
                set.name,
                set.data.examples.len()
            ));
            summary.captured.push((m.id.clone(), set.name.clone()));
        }
    }
    Ok((map, records))
}

/// Where the drift of one data set is kept: the digest of every compared store's manifest
/// (which holds the sha256 of each of its parts), the students' names and the compare
/// settings. The same stores and settings give the same numbers, so a diagnosis with one more
/// target computes only that target's drift.
fn drift_cache_path(
    cfg: &ValidDiagnose,
    plan: &Plan,
    stores: &StoreMap,
    set: &str,
    cross_layer: bool,
) -> Result<std::path::PathBuf> {
    let mut manifests = Vec::new();
    for id in std::iter::once("base").chain(plan.students.iter().map(|s| s.id.as_str())) {
        let m = stores[&(id.to_string(), set.to_string())].join("manifest.json");
        let bytes = std::fs::read(&m).map_err(|e| Error::io(&m, e))?;
        manifests.push((id.to_string(), crate::io::sha256_bytes(&bytes)));
    }
    // Every compare setting (its Debug form) and the version that computes with them.
    let key = serde_json::json!({
        "repdrift": env!("CARGO_PKG_VERSION"),
        "stores": manifests,
        "params": format!("{:?}", compare_params(cfg, plan, cross_layer)),
    });
    let digest = crate::io::sha256_bytes(key.to_string().as_bytes());
    Ok(cfg
        .cache_dir()
        .join("drift")
        .join(format!("{}.json", &digest[..16])))
}

/// `compare` of every student against the base on one data set (cross-layer CKA on the source).
fn compare_set(
    cfg: &ValidDiagnose,
    plan: &Plan,
    stores: &StoreMap,
    set: &str,
    cross_layer: bool,
) -> Result<MetricsReport> {
    let open = |id: &str| Store::open(&stores[&(id.to_string(), set.to_string())]);
    let base = open("base")?;
    let students = plan
        .students
        .iter()
        .map(|s| Ok((s.id.clone(), open(&s.id)?)))
        .collect::<Result<Vec<_>>>()?;
    let params = compare_params(cfg, plan, cross_layer).check()?;
    Ok(compare::compare(&base, &students, &params, &mut |_| {})?.report)
}

/// Replicates behind each layer's drift interval (linear CKA, example space: 1,000 replicates
/// cost ≈ 0.07 s a layer at n = 300 on one core).
pub const DRIFT_RESAMPLES: usize = 1000;

/// The compare settings of every data set: the plan's layers, the chance bands and the drift
/// intervals.
fn compare_params(cfg: &ValidDiagnose, plan: &Plan, cross_layer: bool) -> CompareParams {
    CompareParams {
        layers: LayerSelection::List(plan.layers.clone()),
        permutations: cfg.permutations,
        cka_bootstrap: DRIFT_RESAMPLES,
        cross_layer,
        seed: cfg.seed,
        ..Default::default()
    }
}

/// Stage 3: every student against the base on every set, each set's report read from the
/// drift cache when it holds it.
fn compare_sets(
    cfg: &ValidDiagnose,
    plan: &Plan,
    stores: &StoreMap,
    summary: &mut RunSummary,
) -> Result<(DriftBySet, Vec<compare::CrossLayer>)> {
    let mut out = Vec::new();
    let mut cross = Vec::new();
    for set in &plan.sets {
        let source = set.name == "source";
        let cached = drift_cache_path(cfg, plan, stores, &set.name, source)?;
        let report: MetricsReport = if cached.exists() {
            summary.drift_reused.push(set.name.clone());
            crate::io::read_json(&cached)?
        } else {
            let report = compare_set(cfg, plan, stores, &set.name, source)?;
            crate::io::write_atomic(&cached, &crate::io::json_bytes(&report))?;
            summary.drift_computed.push(set.name.clone());
            report
        };
        if source {
            cross = report.cross_layer.clone();
        }
        out.push((set.name.clone(), report));
    }
    Ok((out, cross))
}

/// Stage 4: per-layer probes of every model, trained on its source states.
fn probe_models(cfg: &ValidDiagnose, plan: &Plan, stores: &StoreMap) -> Result<Vec<ProbeReport>> {
    plan.models()
        .map(|m| {
            let named = |set: &str| -> Result<NamedStore> {
                Ok(NamedStore {
                    name: set.to_string(),
                    store: Store::open(&stores[&(m.id.clone(), set.to_string())])?,
                })
            };
            let evals = plan
                .targets()
                .iter()
                .map(|t| named(&t.name))
                .collect::<Result<Vec<_>>>()?;
            let params = ProbeParams {
                model: m.id.clone(),
                layers: LayerSelection::List(plan.layers.clone()),
                control: true,
                seed: cfg.seed,
                ..Default::default()
            }
            .check()?;
            probe(&named("source")?, &evals, &[], &params)
        })
        .collect()
}

/// 1 − linear CKA on `diff` at `layer` of student `id` in a compare report.
/// 1 − linear CKA of one student's pair differences at `layer`, with its bootstrap interval.
fn drift_of(report: &MetricsReport, id: &str, layer: usize) -> Option<(f64, Option<(f64, f64)>)> {
    let row = report
        .rows
        .iter()
        .find(|r| r.student == id && r.layer == layer && r.field == "diff")?;
    let ci = row
        .ci
        .as_ref()
        .and_then(|c| c.linear_cka)
        .map(|i| (1.0 - i.hi, 1.0 - i.lo));
    row.linear_cka.map(|c| (1.0 - c, ci))
}

/// The students' method names, in the order given (seeds of one method together).
fn groups(plan: &Plan) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for s in &plan.students {
        match out.iter_mut().find(|(g, _)| *g == s.group) {
            Some((_, ids)) => ids.push(s.id.clone()),
            None => out.push((s.group.clone(), vec![s.id.clone()])),
        }
    }
    out
}

/// Stage 6: the tests of every student (group of seeds) on every set; Holm across targets.
fn test_cells(
    plan: &Plan,
    r: &Readouts,
    drift: &[(String, MetricsReport)],
    settings: &TestSettings,
) -> Vec<Cell> {
    let family = plan.targets().len();
    let mut cells = Vec::new();
    for (group, ids) in groups(plan) {
        let mut group_cells = Vec::new();
        for set in &plan.sets {
            let o = Outcomes {
                base: correct(&r.get("base", &set.name).probe),
                probe_on_student: ids
                    .iter()
                    .map(|id| correct(&r.get(id, &set.name).probe))
                    .collect(),
                head: ids
                    .iter()
                    .map(|id| {
                        correct(
                            r.get(id, &set.name)
                                .head
                                .as_deref()
                                .expect("students have heads"),
                        )
                    })
                    .collect(),
            };
            let source = set.name == "source";
            let report = &drift
                .iter()
                .find(|(s, _)| *s == set.name)
                .expect("every set compared")
                .1;
            let d: Vec<(f64, Option<(f64, f64)>)> = ids
                .iter()
                .filter_map(|id| drift_of(report, id, r.layer))
                .collect();
            group_cells.push(Cell {
                student: group.clone(),
                set: set.name.clone(),
                role: if source { "source" } else { "target" }.into(),
                drift: (d.len() == ids.len())
                    .then(|| d.iter().map(|v| v.0).sum::<f64>() / d.len() as f64),
                drift_interval: match d.as_slice() {
                    [(_, ci)] => *ci,
                    _ => None,
                },
                tests: test_cell(&o, settings, if source { 1 } else { family }),
            });
        }
        let mut targets: Vec<CellTests> =
            group_cells[1..].iter().map(|c| c.tests.clone()).collect();
        adjust(&mut targets, settings.alpha);
        for (c, t) in group_cells[1..].iter_mut().zip(targets) {
            c.tests = t;
        }
        cells.extend(group_cells);
    }
    cells
}

/// Stage 7: anchor layers and λ for each method, from its first seed's drift on the source.
fn advise(
    cfg: &ValidDiagnose,
    plan: &Plan,
    source: &MetricsReport,
    probes: &[ProbeReport],
) -> Result<Vec<Recommendation>> {
    groups(plan)
        .iter()
        .map(|(_, ids)| {
            recommend::recommend(
                source,
                probes,
                &RecommendParams {
                    student: Some(ids[0].clone()),
                    base_model: "base".into(),
                    budget: cfg.anchor_budget,
                    min_layer: cfg.anchor_from,
                    fraction: cfg.anchor_fraction,
                },
            )
        })
        .collect()
}

/// `diagnose.json`'s content from the stages' results.
fn assemble(
    cfg: &ValidDiagnose,
    plan: &Plan,
    readouts: &Readouts,
    tests: TestSettings,
    cells: Vec<Cell>,
    advice: Vec<Recommendation>,
    stores: Vec<StoreRecord>,
) -> Diagnosis {
    Diagnosis {
        format: FORMAT.into(),
        version: 1,
        repdrift_version: env!("CARGO_PKG_VERSION").into(),
        config: cfg.config.clone(),
        base: plan.base.clone(),
        students: plan.students.clone(),
        sets: plan
            .sets
            .iter()
            .map(|s| SetRecord {
                name: s.name.clone(),
                path: s.data.path.clone(),
                sha256: s.data.sha256.clone(),
                pairs: s.data.examples.len(),
            })
            .collect(),
        layers: plan.layers.clone(),
        verdict_layer: plan.verdict_layer,
        probe_c: readouts.c,
        probe_folds: readouts.folds,
        probe_cv_accuracy: readouts.cv_accuracy,
        tests,
        cells,
        advice,
        warnings: plan.warnings.clone(),
        stores,
    }
}

/// Stages 1–7 (no output written but the cache).
pub fn compute(
    cfg: &ValidDiagnose,
    resume: bool,
    force: bool,
    device: &Device,
    progress: &mut dyn DiagnoseProgress,
) -> Result<(Computed, RunSummary)> {
    let mut summary = RunSummary::default();
    let mut clock = std::time::Instant::now();
    let mut stage = |summary: &mut RunSummary, name: &str, progress: &mut dyn DiagnoseProgress| {
        let s = clock.elapsed().as_secs_f64();
        progress.line(&format!("{name} ({s:.1} s)"));
        summary.stages.push((name.to_string(), s));
        clock = std::time::Instant::now();
    };
    let mut say = |m: &str| progress.line(m);
    let plan = plan::plan(cfg, device, &mut say)?;
    for w in &plan.warnings {
        say(&format!("warning: {w}"));
    }
    prepare_out(cfg, resume, force)?;
    stage(&mut summary, "plan: data and models checked", progress);
    let mut say = |m: &str| progress.line(m);
    let (stores, records) = capture_all(cfg, &plan, None, device, &mut summary, &mut say)?;
    stage(&mut summary, "capture", progress);
    let (drift, cross_layer) = compare_sets(cfg, &plan, &stores, &mut summary)?;
    stage(&mut summary, "compare", progress);
    let probes = probe_models(cfg, &plan, &stores)?;
    stage(&mut summary, "probe", progress);
    let readouts = readouts::compute(&plan, &stores, cfg.seed)?;
    let settings = TestSettings {
        alpha: cfg.alpha,
        power: 0.8,
        resamples: cfg.resamples,
        seed: cfg.seed,
    };
    let cells = test_cells(&plan, &readouts, &drift, &settings);
    stage(&mut summary, "readouts and tests", progress);
    let advice = advise(cfg, &plan, &drift[0].1, &probes)?;
    stage(&mut summary, "anchor advice", progress);
    let diagnosis = assemble(cfg, &plan, &readouts, settings, cells, advice, records);
    Ok((
        Computed {
            diagnosis,
            readouts,
            drift,
            cross_layer,
            probes,
        },
        summary,
    ))
}

/// The number of capture tasks: one per (model, data set), models in the order base, then
/// the students as given; data sets source, then the targets as given.
pub fn capture_tasks(cfg: &ValidDiagnose) -> usize {
    (1 + cfg.students.len()) * (1 + cfg.targets.len())
}

/// Stage 2 for one (model, data set) alone — task `t` = model index × data sets + data set
/// index (see [`capture_tasks`]) — into the cache, resuming an unfinished capture; nothing else
/// is written. A cluster runs every task as one array job, then [`run`] with `resume`, which
/// finds them all in the cache (`scripts/slurm/submit.sh`). Captures of different tasks write
/// different directories, so tasks run side by side.
pub fn capture_task(
    cfg: &ValidDiagnose,
    task: usize,
    device: &Device,
    progress: &mut dyn DiagnoseProgress,
) -> Result<RunSummary> {
    let n = capture_tasks(cfg);
    if task >= n {
        return Err(Error::param(
            "capture-task",
            format!(
                "task {task} does not exist: {} models × {} data sets make tasks 0 to {}",
                1 + cfg.students.len(),
                1 + cfg.targets.len(),
                n - 1
            ),
        ));
    }
    let mut summary = RunSummary::default();
    let mut say = |m: &str| progress.line(m);
    let plan = plan::plan(cfg, device, &mut say)?;
    capture_all(cfg, &plan, Some(task), device, &mut summary, &mut say)?;
    Ok(summary)
}

/// Run the whole diagnosis into `cfg.out` (locked while it runs).
pub fn run(
    cfg: &ValidDiagnose,
    resume: bool,
    force: bool,
    device: &Device,
    progress: &mut dyn DiagnoseProgress,
) -> Result<(Diagnosis, RunSummary)> {
    let _lock = crate::io::lock_dir(&cfg.out)?;
    let (computed, mut summary) = compute(cfg, resume, force, device, progress)?;
    let t = std::time::Instant::now();
    render::write(&cfg.out, &computed)?;
    let s = t.elapsed().as_secs_f64();
    progress.line(&format!("report written ({s:.1} s)"));
    summary.stages.push(("write".into(), s));
    Ok((computed.diagnosis, summary))
}
