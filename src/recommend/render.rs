//! The recommendation as Markdown and as an HTML section: the layer scores, the proposal, and
//! the validation grid with its verdict.

use super::types::{Proposal, Recommendation, Validation};
use crate::fmt::{html_table, md_table};

fn fmt_layers(p: &Proposal) -> String {
    p.layers
        .iter()
        .zip(&p.weights)
        .map(|(l, w)| format!("{l} (λ {w:.3})"))
        .collect::<Vec<_>>()
        .join(", ")
}

const SCORE_HEAD: [&str; 7] = [
    "layer",
    "linear CKA",
    "drift",
    "base target-probe acc.",
    "score",
    "anchor distance",
    "λ",
];
const GRID_HEAD: [&str; 8] = [
    "configuration",
    "layers (λ)",
    "source test",
    "mean target",
    "IDG",
    "AOG",
    "NTS",
    "Pareto",
];

/// The per-layer score table's cells (plain text, unescaped).
fn score_rows(r: &Recommendation) -> Vec<Vec<String>> {
    let opt = |v: Option<f64>, p: usize| v.map(|v| format!("{v:.p$}")).unwrap_or("–".into());
    r.scores
        .iter()
        .map(|s| {
            vec![
                s.layer.to_string(),
                crate::fmt::f3(s.linear_cka),
                format!("{:.3}", s.drift),
                crate::fmt::f3(s.base_target_accuracy),
                format!("{:.4}", s.score),
                opt(s.anchor_distance, 4),
                opt(s.lambda, 3),
            ]
        })
        .collect()
}

/// The validation grid's cells (plain text, unescaped).
fn grid_rows(v: &Validation) -> Vec<Vec<String>> {
    v.candidates
        .iter()
        .map(|c| {
            vec![
                c.proposal.label.clone(),
                fmt_layers(&c.proposal),
                format!("{:.3}", c.accuracy["source_test"]),
                format!("{:.3}", c.mean_target),
                format!("{:.1}", c.idg),
                format!("{:.1}", c.aog),
                format!("{:.1}", c.nts),
                if c.pareto { "yes" } else { "" }.into(),
            ]
        })
        .collect()
}

fn headline(r: &Recommendation) -> String {
    format!(
        "anchor layers {} — λ calibrated so that, at the drift this student reached, each anchored layer adds {} × ln 2 (the BT loss of an untrained RM).",
        fmt_layers(&r.proposal),
        r.fraction
    )
}

fn validation_line(v: &Validation) -> String {
    format!(
        "({}, {} epochs, lr {}, seed {}): {}",
        v.trainable, v.epochs, v.lr, v.seed, v.verdict
    )
}

/// The report's recommendation section, Markdown.
pub fn render_markdown(r: &Recommendation) -> String {
    let md = crate::fmt::md;
    let mut o = format!(
        "\n### Recommendation (`repdrift recommend`)\n\nFor student `{}`: {}\n\n",
        md(&r.student),
        md(&headline(r))
    );
    for n in &r.notes {
        o.push_str(&format!("- {}\n", md(n)));
    }
    if !r.notes.is_empty() {
        o.push('\n');
    }
    o.push_str(&md_table(&SCORE_HEAD, &score_rows(r)));
    if let Some(v) = &r.validation {
        o.push_str(&format!(
            "\n**Validation by training** {}\n\n",
            md(&validation_line(v))
        ));
        o.push_str(&md_table(&GRID_HEAD, &grid_rows(v)));
    }
    o
}

/// The report's recommendation section, HTML.
pub fn render_html(r: &Recommendation) -> String {
    let esc = crate::fmt::esc;
    let mut o = format!(
        "<h3>Recommendation (<code>repdrift recommend</code>)</h3>\n<p>For student <code>{}</code>: {}</p>\n",
        esc(&r.student),
        esc(&headline(r))
    );
    for n in &r.notes {
        o.push_str(&format!("<p class=\"note\">{}</p>\n", esc(n)));
    }
    o.push_str("<details><summary>Per-layer scores</summary>");
    o.push_str(&html_table(&SCORE_HEAD, &score_rows(r)));
    o.push_str("</details>\n");
    if let Some(v) = &r.validation {
        o.push_str(&format!(
            "<p><b>Validation by training</b> {}</p>\n",
            esc(&validation_line(v))
        ));
        o.push_str(&html_table(&GRID_HEAD, &grid_rows(v)));
    }
    o
}
