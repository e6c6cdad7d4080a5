//! The study's outputs as bytes (one place, [`write()`], puts them on disk): `study.json`
//! (every run and the summary), `runs.csv`, `table.csv`, `study.md` and a self-contained
//! `index.html` with the plots inline (SVG).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::analysis::{Stat, Summary};
use super::plots::render_plots;
use super::run::RunResult;
use crate::error::Result;
use crate::fmt::{esc, html_table, md, md_table};
use crate::io::{csv_field, csv_num, json_bytes, write_atomic};
use crate::plot::Plot;

/// `study.json`.
#[derive(Debug, Serialize)]
pub struct StudyFile<'a> {
    pub format: &'static str,
    pub version: u32,
    pub summary: &'a Summary,
    pub runs: &'a [RunResult],
}

fn pm(s: Option<&Stat>) -> String {
    match s {
        None => "–".into(),
        Some(s) => match s.sd {
            Some(sd) => format!("{:.1} ± {:.1}", s.mean, sd),
            None => format!("{:.1}", s.mean),
        },
    }
}

/// Drift values are small (1 − CKA of 0.001–0.05): three decimals.
fn pm2(s: Option<&Stat>) -> String {
    match s {
        None => "–".into(),
        Some(s) => match s.sd {
            Some(sd) => format!("{:.3} ± {:.3}", s.mean, sd),
            None => format!("{:.3}", s.mean),
        },
    }
}

/// A table row's first cells: regime, method, runs.
fn row_start(cell: &super::analysis::Cell) -> Vec<String> {
    vec![
        cell.regime.clone(),
        cell.method.clone(),
        n_of(cell).to_string(),
    ]
}

fn n_of(cell: &super::analysis::Cell) -> usize {
    cell.metrics.get("acc:source_test").map_or(0, |s| s.n)
}

/// The diagnosis in words, from the numbers only.
pub fn diagnosis(s: &Summary) -> Vec<String> {
    if s.n_runs == 0 {
        return vec!["No run has finished yet.".into()];
    }
    let mut out: Vec<String> = spread_line(s).into_iter().collect();
    out.extend(references_line(s));
    out.extend(s.regimes.iter().filter_map(|reg| regime_line(s, reg)));
    out.extend(drift_against_transfer_lines(s));
    out.push(drift_or_head_line(s));
    out
}

/// How far the runs' mean target accuracies spread.
fn spread_line(s: &Summary) -> Option<String> {
    let (lo, hi) = s.target_accuracy_range?;
    let spread = hi - lo;
    Some(format!(
        "Mean target accuracy across the {} runs spans {:.1}–{:.1} % ({:.1} points){}.",
        s.n_runs,
        lo,
        hi,
        spread,
        if spread >= 15.0 {
            ": the grid holds runs that transfer and runs that do not"
        } else {
            ": less than 15 points, so the grid has little transfer failure to explain"
        }
    ))
}

/// The weak teacher's and the base probe's accuracies, and the weak labels' agreement.
fn references_line(s: &Summary) -> Option<String> {
    let t = s.references.teacher.get("mean_target")?;
    let b = s.references.base_probe.get("mean_target")?;
    Some(format!(
        "References (mean over seeds): the weak teacher reaches {} % on the source test part and {} % on the targets; the base's own probe {} % and {} %; the weak labels agree with gold on {} % of the training pairs.",
        pm(s.references.teacher.get("source_test")),
        pm(Some(t)),
        pm(s.references.base_probe.get("source_test")),
        pm(Some(b)),
        pm(s.references.weak_label_accuracy.as_ref()),
    ))
}

/// One regime: naive against gold and the base probe, then each anchored method, LP-FT and
/// confidence, and the naive runs' outcomes.
fn regime_line(s: &Summary, reg: &str) -> Option<String> {
    use super::analysis::Cell;
    let cell = |m: &str| s.table.iter().find(|c| c.regime == reg && c.method == m);
    let (n, g) = (cell("naive")?, cell("gold")?);
    let get = |c: &Cell, k: &str| c.metrics.get(k).map(|v| v.mean);
    let (nt, gt, nc) = (
        get(n, "acc:mean_target")?,
        get(g, "acc:mean_target")?,
        get(n, "transfer_change")?,
    );
    // Over seeds and pairs where the runs stored margins, else the t-interval over seeds.
    let over_pairs = |m: &str, against: &str| {
        mean_over_targets(s, reg, m, against).map(|v| {
            format!(
                ", 95 % CI over seeds and pairs {:+.1} to {:+.1}",
                100.0 * v.lo,
                100.0 * v.hi
            )
        })
    };
    let ci = |c: &Cell| {
        over_pairs(&c.method, super::pairs::BASE_PROBE)
            .or_else(|| {
                c.metrics
                    .get("transfer_change")
                    .and_then(Stat::ci95)
                    .map(|(lo, hi)| format!(", 95 % CI {lo:+.1} to {hi:+.1}"))
            })
            .unwrap_or_default()
    };
    let mut line = format!(
        "Regime {reg}: the naive student reaches {:.1} % on the targets (gold {:.1} %), {:+.1} points against the base probe{}",
        nt, gt, nc, ci(n)
    );
    let anchors = s.table.iter().filter(|c| {
        c.regime == reg && !["gold", "naive", "confidence", "lpft"].contains(&c.method.as_str())
    });
    for a in anchors {
        if let (Some(at), Some(na), Some(aa)) = (
            get(a, "acc:mean_target"),
            n.metrics.get("acc:mean_target"),
            a.metrics.get("acc:mean_target"),
        ) {
            let spread = over_pairs(&a.method, "naive").unwrap_or_else(|| {
                match (na.sd, aa.sd) {
                    (Some(x), Some(y)) if (at - nt).abs() < x + y => {
                        ", within one sd of each other"
                    }
                    (Some(_), Some(_)) => "",
                    _ => ", one seed: no sd yet",
                }
                .into()
            });
            let _ = write!(
                line,
                "; {} {:.1} % ({:+.1} points vs naive{}; {:+.1} against the base probe{})",
                a.method,
                at,
                at - nt,
                spread,
                a.metrics
                    .get("transfer_change")
                    .map_or(f64::NAN, |v| v.mean),
                ci(a)
            );
        }
    }
    for m in ["lpft", "confidence"] {
        if let Some((c, v)) = cell(m).and_then(|c| Some((c, c.metrics.get("transfer_change")?))) {
            let _ = write!(line, "; {m} {:+.1} against the base probe{}", v.mean, ci(c));
        }
    }
    let outcomes: Vec<String> = n.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = write!(line, ". Naive runs: {}.", outcomes.join(", "));
    Some(line)
}

/// The layer whose drift tracks transfer best over the runs, within each regime, and the
/// caution about its confound with learning the source.
fn drift_against_transfer_lines(s: &Summary) -> Vec<String> {
    let Some(b) = &s.best_layer else {
        return vec![
            "Drift against transfer: no layer's drift varies across runs, so there is no correlation to test.".into(),
        ];
    };
    let mut out = Vec::new();
    let ci =
        b.ci.map(|(lo, hi)| format!("95 % CI {lo:.2} to {hi:.2}"))
            .unwrap_or_else(|| "no CI".into());
    let verdict = match b.ci {
        Some((_, hi)) if hi < 0.0 => {
            "more drift goes with worse transfer, and the interval excludes zero"
        }
        Some((lo, _)) if lo > 0.0 => {
            "more drift goes with better transfer here (not worse), and the interval excludes zero"
        }
        _ => "the interval includes zero: across these runs drift does not predict transfer",
    };
    out.push(format!(
        "Drift against transfer over {} runs: the layer whose drift (1 − linear CKA) tracks the transfer change best is {} (Spearman ρ = {:.2}, {}, permutation p = {}); {}. The best layer is chosen after looking, so its interval is optimistic.",
        b.n,
        b.layer,
        b.rho.unwrap_or(f64::NAN),
        ci,
        b.p.map_or("–".into(), |p| format!("{p:.3}")),
        verdict
    ));
    let within: Vec<String> = s
        .best_layer_by_regime
        .iter()
        .map(|(reg, rho, ci, n)| match (rho, ci) {
            (Some(r), Some((lo, hi))) => format!("{reg}: ρ = {r:.2} [{lo:.2}, {hi:.2}], n = {n}"),
            _ => format!("{reg}: undefined (n = {n})"),
        })
        .collect();
    if !within.is_empty() {
        out.push(format!(
            "Within each regime, at layer {}: {}.",
            b.layer,
            within.join("; ")
        ));
    }
    if let Some(line) = stratified_line(s) {
        out.push(line);
    }
    if let Some(r) = s.best_layer_source_rho {
        out.push(format!(
            "Caution: the same layer's drift has Spearman ρ = {r:.2} with the source-test accuracy over these runs. Drift against the base also measures how far a student moved to fit the source (students start from a random or probe head), so across methods and regimes it is confounded with how much was learned; read the correlation within a regime and method before calling drift a cause."
        ));
    }
    out
}

/// Drift against transfer within regime × method ([`super::stratified`]).
fn stratified_line(s: &Summary) -> Option<String> {
    let st = s.stratified.as_ref()?;
    let f = |r: Option<f64>, p: Option<f64>| match (r, p) {
        (Some(r), Some(p)) => format!("ρ = {r:.2}, p = {p:.3}"),
        _ => "undefined (no spread)".to_string(),
    };
    let best = match st.best_layer {
        Some(l) if l != st.layer => format!(
            "; the best layer after looking, {l}, {} against the largest |ρ| over layers under the same permutations",
            f(st.best_rho, st.best_p)
        ),
        _ => String::new(),
    };
    Some(format!(
        "Within regime and method (gold left out; {} strata, {} runs; ranks within each stratum, {} permutations of the transfer changes within strata): at layer {}, fixed before looking, {}{}. Differences between methods or regimes cannot make this correlation.",
        st.strata,
        st.n,
        st.permutations,
        st.layer,
        f(st.rho, st.p),
        best
    ))
}

/// How many runs kept or lost what the base knew, and how: by paired tests where the runs
/// stored per-pair margins, else by the older fixed 5-point rule (said so).
fn drift_or_head_line(s: &Summary) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for p in &s.points {
        *counts.entry(p.outcome.as_str()).or_insert(0) += 1;
    }
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    if s.pair_tests.is_empty() {
        return format!(
            "Drift or head: of {} runs, {} kept the base probe's target accuracy (within 5 points); {} lost it with the states (the base probe on the student's states lost ≥ 5 points too: drift); {} lost it with the states still carrying it (head).",
            s.points.len(),
            n("transferred"),
            n("drift"),
            n("head")
        );
    }
    let mixed_with = |cause: &str| {
        s.points
            .iter()
            .filter(|p| p.outcome == "mixed" && p.outcome_causes.iter().any(|(_, c)| c == cause))
            .count()
    };
    format!(
        "Drift or head, per run by paired tests on its targets' pairs (exact McNemar, Holm across targets): of {} runs, {} kept what the base knew on every target, {} lost it through the head on every target it lost, {} through drift, {} through both, {} with the cause unresolved, {} with causes that differ between targets (of these, {} lost some target through drift alone and {} through drift and the head; the Runs table names each target's cause), and {} had a loss too small to be significant (inconclusive: see the detectable loss in the paired table).",
        s.points.len(),
        n("transferred"),
        n("head"),
        n("drift"),
        n("both"),
        n("unresolved"),
        n("mixed"),
        mixed_with("drift"),
        mixed_with("both"),
        n("inconclusive")
    )
}

fn cols(s: &Summary) -> Vec<(String, String)> {
    let mut c = vec![("acc:source_test".to_string(), "source test".to_string())];
    for t in &s.targets {
        c.push((format!("acc:{t}"), t.clone()));
    }
    c.push(("gain:source_test".into(), "IDG".into()));
    for t in &s.targets {
        c.push((format!("gain:{t}"), format!("gain {t}")));
    }
    c.push(("nts".into(), "NTS".into()));
    c.push(("transfer_change".into(), "vs base probe".into()));
    c.push(("start:mean_target".into(), "targets at step 0".into()));
    c.push(("head_on_base:mean_target".into(), "head on base".into()));
    c.push((
        "base_probe_on_student:mean_target".into(),
        "base probe on student".into(),
    ));
    c.push(("drift:final".into(), "1 − CKA final".into()));
    c
}

/// The table as text cells (header, rows): the reference rows, then one row per cell. Markdown
/// and HTML render the same cells.
fn table_cells(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let c = cols(s);
    let mut head: Vec<String> = vec!["regime".into(), "method".into(), "n".into()];
    head.extend(c.iter().map(|(_, name)| name.clone()));
    head.push("outcomes".into());
    let mut rows = Vec::new();
    for (label, refs) in [
        ("weak teacher", &s.references.teacher),
        ("base probe", &s.references.base_probe),
    ] {
        let mut r = vec![
            "–".to_string(),
            label.to_string(),
            refs.get("source_test").map_or(0, |x| x.n).to_string(),
        ];
        r.extend(
            c.iter()
                .map(|(k, _)| pm(k.strip_prefix("acc:").and_then(|set| refs.get(set)))),
        );
        r.push(String::new());
        rows.push(r);
    }
    for cell in &s.table {
        let mut r = row_start(cell);
        r.extend(c.iter().map(|(k, _)| {
            let v = cell.metrics.get(k);
            if k.starts_with("drift") {
                pm2(v)
            } else {
                pm(v)
            }
        }));
        let outcomes: Vec<String> = cell
            .outcomes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        r.push(outcomes.join(", "));
        rows.push(r);
    }
    (head, rows)
}

const CORRELATION_HEAD: [&str; 6] = ["measure", "layer", "n", "ρ", "95 % CI", "p"];
const RUN_HEAD: [&str; 4] = ["run", "mean target %", "vs base probe", "outcome"];

/// Drift-against-transfer rows: measure, layer, n, ρ, CI, p.
fn correlation_cells(s: &Summary) -> Vec<Vec<String>> {
    s.correlations
        .iter()
        .map(|r| {
            vec![
                r.measure.to_string(),
                r.layer.to_string(),
                r.n.to_string(),
                r.rho.map_or("–".into(), |v| format!("{v:.2}")),
                r.ci.map_or("–".into(), |(a, b)| format!("[{a:.2}, {b:.2}]")),
                r.p.map_or("–".into(), |v| format!("{v:.3}")),
            ]
        })
        .collect()
}

/// One row per run: id, mean target accuracy, change against the base probe, outcome.
fn run_cells(s: &Summary) -> Vec<Vec<String>> {
    s.points
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                format!("{:.1}", p.mean_target),
                format!("{:+.1}", p.transfer_change),
                if p.outcome_causes.is_empty() {
                    p.outcome.to_string()
                } else {
                    format!(
                        "{} ({})",
                        p.outcome,
                        super::pairs::causes_in_words(&p.outcome_causes)
                    )
                },
            ]
        })
        .collect()
}

/// A signed mean with its 95 % t-interval over seeds ("+1.5 [−3.0, +6.0]"), or the mean alone
/// for one seed.
fn with_ci(s: Option<&Stat>) -> String {
    match s {
        None => "–".into(),
        Some(st) => match st.ci95() {
            Some((lo, hi)) => format!("{:+.1} [{lo:+.1}, {hi:+.1}]", st.mean),
            None => format!("{:+.1}", st.mean),
        },
    }
}

/// Student − base probe per set (points): what each method kept of what the base knew.
/// Columns: regime, method, n, each target, mean target. Where the runs stored per-pair
/// margins, the intervals are over seeds and pairs (the paired table's "Δ total" per target,
/// [`super::pairs::means_over_targets`] for the mean); otherwise 95 % t-intervals over seeds.
fn vs_base_cells(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head: Vec<String> = ["regime", "method", "n"].map(String::from).to_vec();
    head.extend(s.targets.iter().cloned());
    head.push("mean target".into());
    let over_pairs = !s.pair_tests.is_empty();
    let rows = s
        .table
        .iter()
        .map(|cell| {
            let mut r = row_start(cell);
            if over_pairs {
                r.extend(s.targets.iter().map(|t| {
                    s.pair_tests
                        .iter()
                        .find(|c| c.regime == cell.regime && c.method == cell.method && &c.set == t)
                        .map_or("–".into(), |c| {
                            interval(c.tests.total.difference, c.tests.total.lo, c.tests.total.hi)
                        })
                }));
                r.push(
                    mean_over_targets(s, &cell.regime, &cell.method, super::pairs::BASE_PROBE)
                        .map_or("–".into(), |m| interval(m.difference, m.lo, m.hi)),
                );
            } else {
                r.extend(
                    s.targets
                        .iter()
                        .map(|t| with_ci(cell.metrics.get(&format!("vs_base:{t}")))),
                );
                r.push(with_ci(cell.metrics.get("transfer_change")));
            }
            r
        })
        .collect();
    (head, rows)
}

/// A difference (fractions) with its interval, in points: "+1.5 [−3.0, +6.0]".
fn interval(d: f64, lo: f64, hi: f64) -> String {
    format!(
        "{} [{}, {}]",
        crate::fmt::signed1(100.0 * d),
        crate::fmt::signed1(100.0 * lo),
        crate::fmt::signed1(100.0 * hi)
    )
}

fn mean_over_targets<'a>(
    s: &'a Summary,
    regime: &str,
    method: &str,
    against: &str,
) -> Option<&'a super::pairs::MeanOverTargets> {
    s.means_over_targets
        .iter()
        .find(|m| m.regime == regime && m.method == method && m.against == against)
}

/// The title of [`vs_base_cells`]'s table, which says which intervals it holds.
fn vs_base_title(s: &Summary) -> &'static str {
    if s.pair_tests.is_empty() {
        "Against what the base knew (student − base probe, points; mean and 95 % t-interval over seeds)"
    } else {
        "Against what the base knew (student − base probe, points; mean and 95 % interval over seeds and pairs: the seed-and-pair bootstrap, each seed's student against its own seed's base probe, the mean target weighing every target the same)"
    }
}

const PAIRS_TITLE: &str = "Against what the base knew, over pairs and seeds (paired tests: student head − base probe, the base probe on the student's states − on the base's, head − probe on the student; 95 % intervals over seeds and pairs; Holm across targets)";

/// The paired tests per regime, method and set: None when no run stored per-pair margins.
fn pair_cells(s: &Summary) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    if s.pair_tests.is_empty() {
        return None;
    }
    let head = [
        "regime",
        "method",
        "set",
        "seeds × pairs",
        "base probe %",
        "head %",
        "Δ total [95 % CI]",
        "p (Holm)",
        "Δ representation [95 % CI]",
        "Δ head [95 % CI]",
        "detectable loss",
        "verdict",
    ]
    .map(String::from)
    .to_vec();
    let d = |c: &crate::stats::verdict::Comparison| interval(c.difference, c.lo, c.hi);
    let rows = s
        .pair_tests
        .iter()
        .map(|c| {
            let t = &c.tests;
            vec![
                c.regime.clone(),
                c.method.clone(),
                c.set.clone(),
                format!("{} × {}", t.seeds, t.pairs),
                format!("{:.1}", 100.0 * t.base.value),
                format!("{:.1}", 100.0 * t.head.value),
                d(&t.total),
                crate::fmt::p_value(t.total.p_adjusted),
                d(&t.representation),
                d(&t.head_change),
                format!("{:.1}", 100.0 * t.total.detectable),
                t.verdict.words().to_string(),
            ]
        })
        .collect();
    Some((head, rows))
}

const CONTRASTS_TITLE: &str = "Methods against each other, over pairs and seeds (the students' own heads, pair by pair within a seed: naive − gold, and each other method − naive; 95 % intervals over seeds and pairs; Holm across targets)";

/// The method contrasts: None when no run stored per-pair margins.
fn contrast_cells(s: &Summary) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    if s.contrasts.is_empty() {
        return None;
    }
    let head = [
        "regime",
        "contrast",
        "set",
        "seeds × pairs",
        "accuracies %",
        "Δ [95 % CI]",
        "p (Holm)",
        "detectable difference",
    ]
    .map(String::from)
    .to_vec();
    let rows = s
        .contrasts
        .iter()
        .map(|c| {
            let t = &c.tests;
            vec![
                c.regime.clone(),
                format!("{} − {}", c.method, c.against),
                c.set.clone(),
                format!("{} × {}", t.seeds, t.pairs),
                format!("{:.1} vs {:.1}", 100.0 * t.head.value, 100.0 * t.base.value),
                interval(t.total.difference, t.total.lo, t.total.hi),
                crate::fmt::p_value(t.total.p_adjusted),
                format!("{:.1}", 100.0 * t.total.detectable),
            ]
        })
        .collect();
    Some((head, rows))
}

/// Cue sensitivity and value bias per cell (studies with `[bias]`): None when no run has them.
fn bias_cells(s: &Summary) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let mut keys: Vec<String> = s
        .table
        .iter()
        .flat_map(|c| c.metrics.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let cols = super::bias::columns(&keys);
    if cols.is_empty() {
        return None;
    }
    let mut head: Vec<String> = ["regime", "method", "n"].map(String::from).to_vec();
    head.extend(cols.iter().map(|(_, h)| h.clone()));
    let rows = s
        .table
        .iter()
        .map(|cell| {
            let mut r = row_start(cell);
            r.extend(cols.iter().map(|(k, _)| {
                // Mean ± sd and the 95 % t-interval over seeds; agency win in points.
                let places = if k == "agency_win" { 1 } else { 3 };
                cell.metrics.get(k).map_or("–".into(), |st| {
                    let mut c = match st.sd {
                        Some(sd) => format!("{:.p$} ± {sd:.p$}", st.mean, p = places),
                        None => format!("{:.p$}", st.mean, p = places),
                    };
                    if let Some((lo, hi)) = st.ci95() {
                        c += &format!(" [{lo:.p$}, {hi:.p$}]", p = places);
                    }
                    c
                })
            }));
            r
        })
        .collect();
    Some((head, rows))
}

const BIAS_TITLE: &str = "Cue sensitivity and value bias (mean ± sd and 95 % t-interval over seeds; cue effects in reward sd, the gold student is the yardstick)";

/// `study.md`.
pub fn render_markdown(s: &Summary, title: &str, plots: &[Plot]) -> Vec<u8> {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", md(title));
    let _ = writeln!(o, "## Diagnosis\n");
    for l in diagnosis(s) {
        let _ = writeln!(o, "- {}", l);
    }
    if !s.trust.is_empty() {
        let _ = writeln!(o, "\n## Can these numbers be trusted?\n");
        for l in &s.trust {
            let _ = writeln!(o, "- {}", md(l));
        }
    }
    let _ = writeln!(
        o,
        "\n## Table (mean ± sd over seeds; accuracies and gains in points)\n"
    );
    let (head, rows) = table_cells(s);
    o.push_str(&md_table(&head, &rows));
    let _ = writeln!(o, "\n## {}\n", vs_base_title(s));
    let (head, rows) = vs_base_cells(s);
    o.push_str(&md_table(&head, &rows));
    if let Some((head, rows)) = pair_cells(s) {
        let _ = writeln!(o, "\n## {PAIRS_TITLE}\n");
        o.push_str(&md_table(&head, &rows));
    }
    if let Some((head, rows)) = contrast_cells(s) {
        let _ = writeln!(o, "\n## {CONTRASTS_TITLE}\n");
        o.push_str(&md_table(&head, &rows));
    }
    if let Some((head, rows)) = bias_cells(s) {
        let _ = writeln!(o, "\n## {BIAS_TITLE}\n");
        o.push_str(&md_table(&head, &rows));
    }
    let _ = writeln!(
        o,
        "\n## Drift against transfer (Spearman ρ over runs, 95 % bootstrap CI)\n"
    );
    o.push_str(&md_table(&CORRELATION_HEAD, &correlation_cells(s)));
    let _ = writeln!(o, "\n## Runs\n");
    o.push_str(&md_table(&RUN_HEAD, &run_cells(s)));
    if !plots.is_empty() {
        let _ = writeln!(o, "\n## Plots\n");
        for p in plots {
            let _ = writeln!(o, "![{}](plots/{}.png)\n", md(&p.title), p.name);
        }
    }
    o.into_bytes()
}

/// `index.html`: the Markdown's content as a page, plots inline.
pub fn render_html(s: &Summary, title: &str, plots: &[Plot]) -> Vec<u8> {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 12px;line-height:1.45}}table{{border-collapse:collapse;font-size:13px;display:block;overflow-x:auto}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}}th{{background:#f3f3f3}}td:first-child,td:nth-child(2){{text-align:left}}.plot{{overflow-x:auto}}.plot svg{{max-width:100%;height:auto}}@media (max-width:640px){{.plot svg{{min-width:600px;max-width:none}}}}</style></head><body><h1>{}</h1><h2>Diagnosis</h2><ul>",
        esc(title),
        esc(title)
    );
    for l in diagnosis(s) {
        let _ = write!(o, "<li>{}</li>", esc(&l));
    }
    if !s.trust.is_empty() {
        let _ = write!(o, "</ul><h2>Can these numbers be trusted?</h2><ul>");
        for l in &s.trust {
            let _ = write!(o, "<li>{}</li>", esc(l));
        }
    }
    let _ = write!(o, "</ul><h2>Table (mean ± sd over seeds; points)</h2>");
    let (head, rows) = table_cells(s);
    o.push_str(&html_table(&head, &rows));
    let _ = write!(o, "<h2>{}</h2>", esc(vs_base_title(s)));
    let (head, rows) = vs_base_cells(s);
    o.push_str(&html_table(&head, &rows));
    if let Some((head, rows)) = pair_cells(s) {
        let _ = write!(o, "<h2>{}</h2>", esc(PAIRS_TITLE));
        o.push_str(&html_table(&head, &rows));
    }
    if let Some((head, rows)) = contrast_cells(s) {
        let _ = write!(o, "<h2>{}</h2>", esc(CONTRASTS_TITLE));
        o.push_str(&html_table(&head, &rows));
    }
    if let Some((head, rows)) = bias_cells(s) {
        let _ = write!(o, "<h2>{}</h2>", esc(BIAS_TITLE));
        o.push_str(&html_table(&head, &rows));
    }
    for p in plots {
        let _ = write!(
            o,
            "<h2>{}</h2><div class=\"plot\">{}</div>",
            esc(&p.title),
            p.svg
        );
    }
    let _ = write!(o, "<h2>Drift against transfer per layer</h2>");
    o.push_str(&html_table(&CORRELATION_HEAD, &correlation_cells(s)));
    let _ = write!(o, "<h2>Runs</h2>");
    o.push_str(&html_table(&RUN_HEAD, &run_cells(s)));
    let _ = writeln!(o, "</body></html>");
    o.into_bytes()
}

/// `runs.csv`: one row per run.
pub fn render_runs_csv(runs: &[RunResult], targets: &[String]) -> Vec<u8> {
    let mut o = String::from("id,method,regime,seed,steps,steps_per_second,train_seconds,final_bt_loss,weak_label_accuracy");
    let mut sets = vec!["source_test".to_string()];
    sets.extend(targets.iter().cloned());
    for k in [
        "acc",
        "start",
        "teacher",
        "base_probe",
        "base_probe_on_student",
        "head_on_base",
    ] {
        for s in &sets {
            let _ = write!(o, ",{}", csv_field(&format!("{k}_{s}")));
        }
    }
    o.push('\n');
    for r in runs {
        let _ = write!(
            o,
            "{},{},{},{},{},{},{},{},{}",
            csv_field(&r.id),
            csv_field(&r.method),
            csv_field(&r.regime),
            r.seed,
            r.train.steps,
            csv_num(Some(r.train.steps_per_second)),
            csv_num(Some(r.train.train_seconds)),
            csv_num(Some(r.train.final_bt_loss)),
            csv_num(Some(r.weak_label_accuracy))
        );
        for m in [
            &r.accuracy,
            &r.start_accuracy,
            &r.teacher_accuracy,
            &r.base_probe,
            &r.base_probe_on_student,
            &r.head_on_base,
        ] {
            for s in &sets {
                let _ = write!(o, ",{}", csv_num(m.get(s).copied()));
            }
        }
        o.push('\n');
    }
    o.into_bytes()
}

/// `table.csv`: one row per (regime, method, metric).
pub fn render_table_csv(s: &Summary) -> Vec<u8> {
    let mut o = String::from("regime,method,metric,mean,sd,n\n");
    for c in &s.table {
        for (k, v) in &c.metrics {
            let _ = writeln!(
                o,
                "{},{},{},{},{},{}",
                csv_field(&c.regime),
                csv_field(&c.method),
                csv_field(k),
                csv_num(Some(v.mean)),
                csv_num(v.sd),
                v.n
            );
        }
    }
    o.into_bytes()
}

/// Write every output of the study into `out` (atomically, file by file).
pub fn write(out: &Path, title: &str, runs: &[RunResult], summary: &Summary) -> Result<()> {
    let plots = render_plots(summary)?;
    for p in &plots {
        write_atomic(&out.join("plots").join(format!("{}.png", p.name)), &p.png)?;
    }
    write_atomic(
        &out.join("study.json"),
        &json_bytes(&StudyFile {
            format: "repdrift-study",
            version: 1,
            summary,
            runs,
        }),
    )?;
    write_atomic(
        &out.join("runs.csv"),
        &render_runs_csv(runs, &summary.targets),
    )?;
    write_atomic(&out.join("table.csv"), &render_table_csv(summary))?;
    write_atomic(
        &out.join("study.md"),
        &render_markdown(summary, title, &plots),
    )?;
    write_atomic(
        &out.join("index.html"),
        &render_html(summary, title, &plots),
    )?;
    Ok(())
}
