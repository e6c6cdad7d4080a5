//! The diagnosis's outputs: the verdict section that opens the report, and the one writer of
//! every file (`diagnose.json` last, so a directory that holds it is complete).

use std::path::Path;

use super::{Cell, Computed, Diagnosis};
use crate::error::Result;
use crate::io::write_atomic;
use crate::metrics::compare;
use crate::report::{self, LeadSection, ReportInputs};
use crate::stats::verdict::{Accuracy, Comparison};

fn pct(a: &Accuracy) -> String {
    format!(
        "{:.1} [{:.1}, {:.1}]",
        100.0 * a.value,
        100.0 * a.lo,
        100.0 * a.hi
    )
}

fn pts(c: &Comparison) -> String {
    let z = |v: f64| if v.abs() < 5e-4 { 0.0 } else { 100.0 * v };
    format!("{:+.1} [{:+.1}, {:+.1}]", z(c.difference), z(c.lo), z(c.hi))
}

/// The table's header.
pub const HEAD: [&str; 12] = [
    "student",
    "data",
    "pairs",
    "base knew (probe on base), %",
    "student head, %",
    "Δ head − base, points",
    "p (Holm)",
    "Δ representation (probe on student − base)",
    "Δ head (head − probe on student)",
    "drift (1 − CKA)",
    "verdict",
    "detectable loss, points",
];

fn row(c: &Cell) -> Vec<String> {
    let t = &c.tests;
    let data = if c.role == "source" {
        format!("{} (in-distribution)", c.set)
    } else {
        c.set.clone()
    };
    let seeds = if t.seeds > 1 {
        format!("{} ({} seeds)", c.student, t.seeds)
    } else {
        c.student.clone()
    };
    vec![
        seeds,
        data,
        t.pairs.to_string(),
        pct(&t.base),
        pct(&t.head),
        pts(&t.total),
        crate::fmt::p_value(t.total.p_adjusted),
        pts(&t.representation),
        pts(&t.head_change),
        match (c.drift, c.drift_interval) {
            (Some(v), Some((lo, hi))) => {
                use crate::fmt::small;
                format!("{} [{}, {}]", small(v), small(lo), small(hi))
            }
            (Some(v), None) => crate::fmt::small(v),
            (None, _) => "–".into(),
        },
        t.verdict.words().to_string(),
        format!("{:.1}", 100.0 * t.total.detectable),
    ]
}

/// The section that opens the report: one row per student × target (then the source), how to
/// read it, and the warnings.
pub fn verdict_section(d: &Diagnosis) -> LeadSection {
    let targets = d.sets.len() - 1;
    let mut rows: Vec<Vec<String>> = d
        .cells
        .iter()
        .filter(|c| c.role == "target")
        .map(row)
        .collect();
    rows.extend(d.cells.iter().filter(|c| c.role == "source").map(row));
    let mut paragraphs = vec![format!(
        "Per student and data set, three readouts of the same pairs: the base's linear probe at layer {} (fitted on the base's source states, C = {}, {}-fold cross-validated source accuracy {:.1} %) on the base's states — what the base knew; the same probe on the student's states (representation); and the student's own reward head. Δ head − base = Δ representation + Δ head, pair by pair. Drift: 1 − linear CKA between the base's and the student's pair differences at that layer on that data set, with its 95 % bootstrap interval over pairs ({} resamples; one seed). Intervals: 95 % ({} bootstrap resamples over pairs, and over seeds where a student has several); accuracies alone: Wilson. p: exact McNemar on the discordant pairs (bootstrap with seeds), Holm-adjusted across the {targets} target(s) for each comparison.",
        d.verdict_layer,
        d.probe_c,
        d.probe_folds,
        100.0 * d.probe_cv_accuracy,
        super::DRIFT_RESAMPLES,
        d.tests.resamples
    )];
    paragraphs.push(format!(
        "Verdict: lost when Δ head − base is a significant loss (Holm-adjusted p < {}); through drift when the representation comparison is a significant loss too, through the head when the head comparison is, both, or cause unresolved when neither alone is. Otherwise kept when the student is at least as accurate as the base on these pairs, else inconclusive. Detectable loss: the smallest loss (points) the test finds with 80 % power at this number of pairs and the observed disagreement, at α / {targets}. No fixed point threshold enters a verdict.",
        d.tests.alpha
    ));
    let mut notes: Vec<String> = d
        .warnings
        .iter()
        .map(|w| format!("Warning: {w}."))
        .collect();
    for a in &d.advice {
        let layers: Vec<String> = a.proposal.layers.iter().map(|l| l.to_string()).collect();
        let weights: Vec<String> = a
            .proposal
            .weights
            .iter()
            .map(|w| format!("{w:.3}"))
            .collect();
        notes.push(format!(
            "Anchor advice for {}: layers {} with λ {} (from its drift on the source; `repdrift recommend --validate` checks a pick by training).",
            a.student,
            layers.join(", "),
            weights.join(", ")
        ));
    }
    LeadSection {
        title: "Did each student keep what the base knew?".into(),
        paragraphs,
        head: HEAD.iter().map(|h| h.to_string()).collect(),
        rows,
        notes,
    }
}

fn title(d: &Diagnosis) -> String {
    let base = d
        .base
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| d.base.path.display().to_string());
    let mut students: Vec<&str> = d.students.iter().map(|s| s.group.as_str()).collect();
    students.dedup();
    format!(
        "repdrift diagnose: {base} and its students {}",
        students.join(", ")
    )
}

/// The report's inputs from the diagnosis: the source's drift, every model's probes, the first
/// method's anchor advice, the verdict section first. A caller (the demo) may add to them
/// before [`write_with`].
pub fn report_inputs(c: &Computed) -> ReportInputs {
    let d = &c.diagnosis;
    ReportInputs {
        title: title(d),
        metrics: c.drift[0].1.clone(),
        cross_layer: c.cross_layer.clone(),
        probes: c.probes.clone(),
        transfer: None,
        base_model: "base".into(),
        recommendation: d.advice.first().cloned(),
        context: Vec::new(),
        lead: vec![verdict_section(d)],
        validate: None,
        bias: None,
    }
}

/// Write every output under `out` with the report built from `inputs`; `diagnose.json` goes
/// last (and is removed first), so a directory that holds it is complete.
pub fn write_with(out: &Path, c: &Computed, inputs: &ReportInputs) -> Result<()> {
    let done = out.join("diagnose.json");
    if done.exists() {
        std::fs::remove_file(&done).map_err(|e| crate::Error::io(&done, e))?;
    }
    for (set, m) in &c.drift {
        let dir = out.join("drift").join(set);
        write_atomic(&dir.join("metrics.json"), &compare::render_json(m))?;
        write_atomic(&dir.join("metrics.csv"), &compare::render_csv(m))?;
    }
    for p in &c.probes {
        let dir = out.join("probes").join(&p.model);
        write_atomic(&dir.join("probe.json"), &crate::probe::run::render_json(p))?;
        write_atomic(&dir.join("probe.csv"), &crate::probe::run::render_csv(p))?;
    }
    write_atomic(
        &out.join("pairs.csv"),
        &super::readouts::render_csv(&c.readouts),
    )?;
    let r = report::build(inputs, &report::diagnosis::Rules::default());
    let plots = report::plots::render_all(&r)?;
    report::write(out, &r, &plots)?;
    write_atomic(&done, &crate::io::json_bytes(&c.diagnosis))
}

/// Write every output under `out` with the diagnosis's own report.
pub fn write(out: &Path, c: &Computed) -> Result<()> {
    write_with(out, c, &report_inputs(c))
}
