//! `repdrift report`: per-layer drift plots, a self-contained HTML page, a Markdown report and
//! a diagnosis in words, from the outputs of `compare`, `probe` and optionally `transfer`.
//!
//! [`build`] turns the inputs into a [`Report`] (numbers and sentences); renderers turn a
//! report into bytes ([`render_markdown`], [`render_html`], [`plots::render_all`]); [`write()`]
//! is the one place that writes files (each atomically). Every string that comes from the
//! inputs (names, paths, the title) is HTML-escaped.

pub mod diagnosis;
mod model;
pub mod plots;
mod render;
mod series;
pub mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::metrics::compare::{CrossLayer, MetricRow, MetricsReport};
use crate::probe::run::ProbeReport;
use crate::probe::transfer::TransferReport;
use diagnosis::{ranges, spearman, Rules, Spearman};

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    pub title: String,
    pub metrics: MetricsReport,
    pub cross_layer: Vec<CrossLayer>,
    pub probes: Vec<ProbeReport>,
    pub transfer: Option<TransferReport>,
    /// The model name the base's probe results go by.
    pub base_model: String,
    /// `recommend.json` when given.
    pub recommendation: Option<crate::recommend::Recommendation>,
    /// Paragraphs shown under the title (e.g. the demo's place in the study).
    pub context: Vec<String>,
    /// Sections placed before the drift sections (diagnose's verdict table).
    pub lead: Vec<LeadSection>,
    /// A `repdrift validate` run of the base model (its numerical floor and check results).
    pub validate: Option<trust::ValidateSummary>,
    /// Cue sensitivity and value bias of the models (`repdrift cues` / `values`).
    pub bias: Option<crate::bias::summary::BiasSection>,
}

fn diagnosis_field(rows: &[MetricRow]) -> String {
    if rows.iter().any(|r| r.field == "diff") {
        "diff".into()
    } else {
        rows.first().map(|r| r.field.clone()).unwrap_or_default()
    }
}

fn student_series(m: &MetricsReport, student: &str, field: &str) -> StudentSeries {
    let mut rows: Vec<&MetricRow> = m
        .rows
        .iter()
        .filter(|r| r.student == student && r.field == field)
        .collect();
    rows.sort_by_key(|r| r.layer);
    StudentSeries {
        student: student.to_string(),
        field: field.to_string(),
        layers: rows.iter().map(|r| r.layer).collect(),
        linear_cka: rows.iter().map(|r| r.linear_cka).collect(),
        debiased_cka: rows.iter().map(|r| r.debiased_cka).collect(),
        ci_linear: rows
            .iter()
            .map(|r| {
                r.ci.as_ref()
                    .and_then(|c| c.linear_cka)
                    .map(|i| (i.lo, i.hi))
            })
            .collect(),
        cosine_distance: rows.iter().map(|r| r.cosine_distance).collect(),
        norm_ratio: rows.iter().map(|r| r.norm_ratio).collect(),
        null_linear: rows
            .iter()
            .map(|r| {
                r.null
                    .as_ref()
                    .and_then(|b| b.linear_cka)
                    .map(|b| (b.lo, b.hi))
            })
            .collect(),
        p_linear: rows
            .iter()
            .map(|r| r.null.as_ref().and_then(|b| b.linear_cka).and_then(|b| b.p))
            .collect(),
    }
}

fn probe_series(p: &ProbeReport) -> Vec<ProbeSeries> {
    let mut models: Vec<String> = p.rows.iter().map(|r| r.model.clone()).collect();
    models.sort();
    models.dedup();
    let mut layers: Vec<usize> = p.rows.iter().map(|r| r.layer).collect();
    layers.sort_unstable();
    layers.dedup();
    models
        .into_iter()
        .map(|model| {
            let tied: Vec<bool> = layers
                .iter()
                .map(|&l| {
                    p.rows
                        .iter()
                        .any(|r| r.model == model && r.layer == l && r.kind == "in_dist" && r.tied)
                })
                .collect();
            let at = |kind: &str, eval: Option<&str>, train: Option<&str>| -> Vec<Option<f64>> {
                layers
                    .iter()
                    .zip(&tied)
                    .map(|(&l, &layer_tied)| {
                        p.rows
                            .iter()
                            .find(|r| {
                                r.model == model
                                    && r.layer == l
                                    && r.kind == kind
                                    && eval.is_none_or(|e| r.eval == e)
                                    && train.is_none_or(|t| r.train == t)
                            })
                            .filter(|r| !r.tied && !layer_tied)
                            .map(|r| r.accuracy)
                    })
                    .collect()
            };
            let mut targets = BTreeMap::new();
            for e in &p.evals {
                targets.insert(e.name.clone(), at("transfer", Some(&e.name), None));
            }
            let mut cross_model = BTreeMap::new();
            let trains: Vec<String> = p
                .rows
                .iter()
                .filter(|r| r.kind == "cross_model" && r.model == model)
                .map(|r| r.train.clone())
                .collect();
            for t in trains {
                cross_model
                    .entry(t.clone())
                    .or_insert_with(|| at("cross_model", None, Some(&t)));
            }
            ProbeSeries {
                model: model.clone(),
                layers: layers.clone(),
                in_dist: at("in_dist", None, None),
                targets: if model == p.model {
                    targets
                } else {
                    BTreeMap::new()
                },
                control: at("control", None, None),
                cross_model,
                tied,
            }
        })
        .collect()
}

/// Build the report model and its diagnosis.
pub fn build(inp: &ReportInputs, rules: &Rules) -> Report {
    let field = diagnosis_field(&inp.metrics.rows);
    let students: Vec<StudentSeries> = inp
        .metrics
        .students
        .iter()
        .map(|s| student_series(&inp.metrics, &s.name, &field))
        .collect();
    // Probe series of each model, from every probe report (the model that trained owns targets).
    let mut probes: Vec<ProbeSeries> = Vec::new();
    for p in &inp.probes {
        for s in probe_series(p) {
            if let Some(existing) = probes.iter_mut().find(|x| x.model == s.model) {
                for (k, v) in s.cross_model {
                    existing.cross_model.insert(k, v);
                }
                if existing.targets.is_empty() && !s.targets.is_empty() {
                    *existing = ProbeSeries {
                        cross_model: existing.cross_model.clone(),
                        ..s
                    };
                }
            } else {
                probes.push(s);
            }
        }
    }
    let base = probes.iter().find(|p| p.model == inp.base_model).cloned();
    let trust = trust::build(
        &students,
        Some(inp.metrics.base.n_examples),
        inp.metrics.base.hidden_size,
        inp.metrics.permutations,
        inp.validate.clone(),
    );
    let floor = inp.validate.as_ref().and_then(|v| v.floor_linear_cka);
    let mut findings = Vec::new();
    for s in &students {
        findings.push(diagnose(
            s,
            base.as_ref(),
            probes.iter().find(|p| p.model == s.student),
            rules,
            floor,
        ));
    }
    let mut inputs = vec![(
        "base store".to_string(),
        inp.metrics.base.path.display().to_string(),
        format!(
            "model {} · data {}",
            short(&inp.metrics.base.model_sha256),
            short(&inp.metrics.base.dataset_sha256)
        ),
    )];
    for s in &inp.metrics.students {
        inputs.push((
            format!("student store `{}`", s.name),
            s.path.display().to_string(),
            format!(
                "model {} · data {}",
                short(&s.model_sha256),
                short(&s.dataset_sha256)
            ),
        ));
    }
    for p in &inp.probes {
        for e in std::iter::once(&p.train).chain(&p.evals).chain(&p.apply_to) {
            inputs.push((
                format!("probe store `{}` ({})", e.name, p.model),
                e.path.display().to_string(),
                format!(
                    "model {} · data {}",
                    short(&e.model_sha256),
                    short(&e.dataset_sha256)
                ),
            ));
        }
    }
    Report {
        bias: inp.bias.clone(),
        context: inp.context.clone(),
        lead: inp.lead.clone(),
        title: inp.title.clone(),
        repdrift_version: env!("CARGO_PKG_VERSION").into(),
        rules: rules.clone(),
        inputs,
        students,
        probes,
        cross_layer: inp.cross_layer.clone(),
        transfer: inp.transfer.clone(),
        findings,
        base_model: inp.base_model.clone(),
        reward_models: inp
            .probes
            .iter()
            .flat_map(|p| {
                p.reward_model
                    .iter()
                    .map(|r| (p.model.clone(), r.dataset.clone(), r.accuracy, r.n))
            })
            .collect(),
        recommendation: inp.recommendation.clone(),
        trust,
    }
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

/// Rule 1: the layers whose change from the base is measurable (drift above zero and the
/// numerical floor; with intervals, the upper end below 1), and the sentence that gives the
/// magnitudes.
fn drifted_layers(s: &StudentSeries, floor: Option<f64>) -> (Vec<usize>, String) {
    let drifted: Vec<usize> = s
        .layers
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            s.linear_cka[*i].is_some_and(|c| c < 1.0 && !trust::inside_floor(1.0 - c, floor))
                && s.ci_linear[*i].is_none_or(|(_, hi)| hi < 1.0)
        })
        .map(|(_, &l)| l)
        .collect();
    let mut drift: Vec<(usize, f64)> = s
        .layers
        .iter()
        .zip(&s.linear_cka)
        .filter_map(|(l, c)| c.map(|c| (*l, 1.0 - c)))
        .collect();
    if drift.is_empty() {
        return (
            drifted,
            format!("{}: no CKA values to judge drift by.", s.student),
        );
    }
    let &(top_layer, top) = drift
        .iter()
        .max_by(|a, b| a.1.partial_cmp(&b.1).expect("finite").then(b.0.cmp(&a.0)))
        .expect("non-empty");
    drift.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("finite"));
    let median = crate::stats::median_sorted(&drift.iter().map(|d| d.1).collect::<Vec<_>>())
        .expect("non-empty");
    let what = match (floor.is_some(), s.ci_linear.iter().any(|c| c.is_some())) {
        (true, true) => "1 − linear CKA above the numerical floor, interval below the base's level",
        (true, false) => "1 − linear CKA above the numerical floor",
        (false, true) => "1 − linear CKA above zero, interval below the base's level",
        (false, false) => "1 − linear CKA above zero; no numerical floor or interval was given",
    };
    let size = format!(
        "largest drift {} at layer {top_layer}, median {} over {} layers",
        crate::fmt::small(top),
        crate::fmt::small(median),
        drift.len()
    );
    let sentence = if drifted.is_empty() {
        format!(
            "{}: no layer drifted measurably ({what}; field `{}`); {size}.",
            s.student, s.field
        )
    } else {
        format!(
            "{}: layers {} drifted measurably ({what}; field `{}`); {size}.",
            s.student,
            ranges(&drifted),
            s.field
        )
    };
    (drifted, sentence)
}

fn layer_index(p: &ProbeSeries, l: usize) -> Option<usize> {
    p.layers.iter().position(|&x| x == l)
}

/// Rule 2: over the drifted layers, the drift-weighted change of target-probe and source
/// accuracy against the base, in points.
fn transfer_where_drifted(
    s: &StudentSeries,
    drifted: &[usize],
    b: &ProbeSeries,
    st: &ProbeSeries,
) -> Option<String> {
    let (mut tgt, mut src) = ((0.0, 0.0), (0.0, 0.0));
    for (i, l) in s.layers.iter().enumerate() {
        let (Some(c), true) = (s.linear_cka[i], drifted.contains(l)) else {
            continue;
        };
        let (Some(bi), Some(si)) = (layer_index(b, *l), layer_index(st, *l)) else {
            continue;
        };
        let w = 1.0 - c;
        if let (Some(a), Some(x)) = (b.mean_target(bi), st.mean_target(si)) {
            tgt = (tgt.0 + w * 100.0 * (x - a), tgt.1 + w);
        }
        if let (Some(a), Some(x)) = (b.in_dist[bi], st.in_dist[si]) {
            src = (src.0 + w * 100.0 * (x - a), src.1 + w);
        }
    }
    if tgt.1 <= 0.0 || src.1 <= 0.0 {
        return None;
    }
    let (t, so) = (tgt.0 / tgt.1, src.0 / src.1);
    let verb = |x: f64| if x < 0.0 { "fell" } else { "rose" };
    Some(format!(
        "In those layers, weighted by their drift, target-probe accuracy {} {:.1} points against the base while source accuracy {} {:.1}{}.",
        verb(t),
        t.abs(),
        verb(so),
        so.abs(),
        if t < 0.0 && so >= 0.0 { " — transfer failure coincides with the drift" } else { "" }
    ))
}

/// Rule 3 and 4: Spearman's ρ between per-layer drift and transfer loss (with its sentence),
/// and the anchor candidates ranked by drift × what the base's probe transfers.
fn drift_against_loss(
    s: &StudentSeries,
    b: &ProbeSeries,
    st: &ProbeSeries,
    rules: &Rules,
) -> (Option<Spearman>, String, Vec<(usize, f64)>) {
    let (mut drift, mut loss, mut anchors) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &l) in s.layers.iter().enumerate() {
        let (Some(c), Some(bi), Some(si)) =
            (s.linear_cka[i], layer_index(b, l), layer_index(st, l))
        else {
            continue;
        };
        if let (Some(a), Some(x)) = (b.mean_target(bi), st.mean_target(si)) {
            drift.push(1.0 - c);
            loss.push(a - x);
        }
        if let Some(a) = b.mean_target(bi) {
            anchors.push((l, (1.0 - c) * (a - 0.5).max(0.0)));
        }
    }
    if drift.len() < rules.min_layers {
        let line = format!(
            "{}: too few layers with both drift and transfer numbers ({}) to test whether drift explains the transfer loss.",
            s.student,
            drift.len()
        );
        return (None, line, anchors);
    }
    let sp = spearman(&drift, &loss, rules.permutations, 0);
    let line = match sp {
        Some(r) if r.rho > 0.0 && r.p < rules.alpha => format!(
            "{}: across layers, drift and transfer loss rise together: Spearman ρ = {:.2} (n = {} layers, permutation p = {:.3}).",
            s.student, r.rho, r.n, r.p
        ),
        Some(r) => format!(
            "{}: the data do not support the claim that drift explains the transfer loss: Spearman ρ = {:.2} between per-layer drift and transfer loss (n = {} layers, permutation p = {:.3}).",
            s.student, r.rho, r.n, r.p
        ),
        None => format!(
            "{}: drift or transfer loss is constant across layers: no correlation to test.",
            s.student
        ),
    };
    (sp, line, anchors)
}

fn diagnose(
    s: &StudentSeries,
    base: Option<&ProbeSeries>,
    student: Option<&ProbeSeries>,
    rules: &Rules,
    floor: Option<f64>,
) -> Finding {
    let (drifted, first) = drifted_layers(s, floor);
    let mut sentences = vec![first];
    let (mut sp, mut anchors) = (None, Vec::new());
    match (base, student) {
        (Some(b), Some(st)) => {
            if !drifted.is_empty() {
                sentences.extend(transfer_where_drifted(s, &drifted, b, st));
            }
            let (r, line, a) = drift_against_loss(s, b, st, rules);
            sentences.push(line);
            (sp, anchors) = (r, a);
        }
        _ => sentences.push(format!(
            "No probe results for both the base (`{}`) and `{}`: the report cannot say whether drift explains transfer.",
            base.map(|b| b.model.as_str()).unwrap_or("base"),
            s.student
        )),
    }
    anchors.sort_by(|a, b| b.1.partial_cmp(&a.1).expect("finite").then(a.0.cmp(&b.0)));
    anchors.retain(|a| a.1 > 0.0);
    anchors.truncate(5);
    Finding {
        student: s.student.clone(),
        drifted_layers: drifted,
        sentences,
        spearman: sp,
        anchor_candidates: anchors,
    }
}

pub use crate::fmt::{esc, f3, md};
pub use model::{Finding, LeadSection, Report};
pub use render::{render_html, render_markdown};
pub use series::{ProbeSeries, StudentSeries};

/// Read the inputs from `compare` and `probe` output directories and an optional transfer file.
pub fn read_inputs(
    metrics_dir: &Path,
    probe_dirs: &[PathBuf],
    transfer: Option<&Path>,
    recommendation: Option<&Path>,
    title: &str,
    base_model: &str,
) -> Result<ReportInputs> {
    use crate::io::read_json as json;
    let metrics: MetricsReport = json(&metrics_dir.join("metrics.json"))?;
    let cl = metrics_dir.join("cross_layer_cka.json");
    let cross_layer = if cl.exists() { json(&cl)? } else { Vec::new() };
    let probes = probe_dirs
        .iter()
        .map(|d| json(&d.join("probe.json")))
        .collect::<Result<Vec<ProbeReport>>>()?;
    let transfer = transfer.map(json::<TransferReport>).transpose()?;
    let recommendation = recommendation
        .map(json::<crate::recommend::Recommendation>)
        .transpose()?;
    Ok(ReportInputs {
        title: title.to_string(),
        metrics,
        cross_layer,
        probes,
        transfer,
        base_model: base_model.to_string(),
        recommendation,
        context: Vec::new(),
        lead: Vec::new(),
        validate: None,
        bias: None,
    })
}

/// The one writer: `index.html`, `report.md`, `report.json` and `plots/*.{png,svg}` under `out`.
pub fn write(out: &Path, report: &Report, plots: &[plots::Plot]) -> Result<()> {
    use crate::io::write_atomic;
    for p in plots {
        write_atomic(&out.join("plots").join(format!("{}.png", p.name)), &p.png)?;
        write_atomic(
            &out.join("plots").join(format!("{}.svg", p.name)),
            p.svg.as_bytes(),
        )?;
    }
    write_atomic(&out.join("report.md"), &render_markdown(report, plots))?;
    write_atomic(&out.join("index.html"), &render_html(report, plots))?;
    write_atomic(&out.join("report.json"), &crate::io::json_bytes(report))
}
