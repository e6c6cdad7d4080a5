//! `validate.md`: the checks with their figures, then the tables behind them.

use super::checks::MEASURES;
use super::types::{Status, ValidateReport};
use crate::fmt::{md, md_table};

fn e(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2e}"))
}

fn f(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.4}"))
}

/// The Markdown summary of a validate run.
pub fn render_markdown(r: &ValidateReport) -> Vec<u8> {
    let mut o = String::new();
    checks_section(r, &mut o);
    floor_section(r, &mut o);
    null_section(r, &mut o);
    planted_section(r, &mut o);
    matching_section(r, &mut o);
    probes_section(r, &mut o);
    sample_size_section(r, &mut o);
    o.into_bytes()
}

/// The title line, the pass/fail count and every check with its figure.
fn checks_section(r: &ValidateReport, o: &mut String) {
    let fails = r.failures();
    o.push_str(&format!(
        "# Can these numbers be trusted? `repdrift validate`\n\nrepdrift {} · model `{}` ({}, {} blocks, d = {}) · data `{}` ({} examples, first field, `resid_post`, {} pooling) · {:.0} s\n\n",
        md(&r.repdrift_version),
        md(&r.model.display().to_string()),
        md(&r.architecture),
        r.n_layers,
        r.hidden_size,
        md(&r.data.display().to_string()),
        r.n_examples,
        r.params.pooling.name(),
        r.seconds
    ));
    let counted = r
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Pass | Status::Fail))
        .count();
    o.push_str(&if fails == 0 {
        format!("**All {counted} pass/fail checks pass.**\n\n")
    } else {
        format!("**{fails} of {counted} pass/fail checks FAIL** (listed below).\n\n")
    });
    if r.n_examples < r.hidden_size {
        o.push_str(&format!(
            "n = {} is below the width d = {}: linear CKA is biased upward here (see the null section) and estimates spread more (see the sample-size table).\n\n",
            r.n_examples, r.hidden_size
        ));
    }
    let rows: Vec<Vec<String>> = r
        .checks
        .iter()
        .map(|c| {
            vec![
                c.section.clone(),
                c.name.clone(),
                c.figure.clone(),
                c.status.name().to_string(),
            ]
        })
        .collect();
    o.push_str(&md_table(&["section", "check", "figure", "result"], &rows));
}

/// The numerical floor: each measure's largest deviation between batch sizes.
fn floor_section(r: &ValidateReport, o: &mut String) {
    o.push_str("\n## Numerical floor\n\nThe base captured twice, at batch size 1 and at the run's batch size: for paired measures an unchanged model gives exactly the no-change value on any sample, so this is the noise around \"no drift\". Reports grey out drift at or below it.\n\n");
    let rows = vec![MEASURES
        .iter()
        .zip(r.noise_floor.deviation)
        .map(|(_, v)| e(v))
        .chain(std::iter::once(format!(
            "{:.2e}",
            r.noise_floor.max_abs_diff
        )))
        .collect::<Vec<_>>()];
    let mut head: Vec<String> = MEASURES.iter().map(|m| format!("{m} deviation")).collect();
    head.push("max activation difference".into());
    o.push_str(&md_table(&head, &rows));
}

/// The null: the base against itself on disjoint halves, per layer.
fn null_section(r: &ValidateReport, o: &mut String) {
    o.push_str("\n## Null: the base against itself on disjoint halves (rows paired at random)\n\n");
    let rows: Vec<Vec<String>> = r
        .null
        .iter()
        .map(|n| {
            vec![
                n.layer.to_string(),
                f(n.linear_cka),
                format!("[{}, {}]", f(n.linear_lo), f(n.linear_hi)),
                f(n.debiased_cka),
                format!("[{}, {}]", f(n.debiased_lo), f(n.debiased_hi)),
                f(n.debiased_p),
            ]
        })
        .collect();
    o.push_str(&md_table(
        &[
            "layer",
            "linear CKA",
            "its null band",
            "debiased CKA",
            "its null band",
            "two-sided p",
        ],
        &rows,
    ));
}

/// Planted drift: deviations near each planted block, then sensitivity and dose–response.
fn planted_section(r: &ValidateReport, o: &mut String) {
    if !r.planted.is_empty() {
        o.push_str("\n## Planted drift: deviation from the base per layer\n\nNoise of relative strength s (× the weight's rms) on the block's two output projections; layer L + 1 is the block's output. Columns: ");
        o.push_str(&MEASURES.join(", "));
        o.push_str(".\n\n");
        let mut blocks: Vec<usize> = r.planted.iter().map(|p| p.block).collect();
        blocks.dedup();
        for b in blocks {
            o.push_str(&format!("### Block {b}\n\n"));
            let rows: Vec<Vec<String>> = r
                .planted
                .iter()
                .filter(|p| {
                    p.block == b && (p.layer + 2 >= b && p.layer <= b + 2 || p.layer == r.n_layers)
                })
                .map(|p| {
                    let mut row = vec![
                        p.strength.to_string(),
                        p.layer.to_string(),
                        format!("{:.2e}", p.max_abs_diff),
                    ];
                    row.extend(p.deviation.iter().map(|v| e(*v)));
                    row
                })
                .collect();
            let mut head = vec!["strength".to_string(), "layer".into(), "max |Δ act|".into()];
            head.extend(MEASURES.iter().map(|m| m.to_string()));
            o.push_str(&md_table(&head, &rows));
            o.push_str("\n(Layers two below to two above the block's output and the last layer; `validate.json` has every layer.)\n\n");
        }
        let rows: Vec<Vec<String>> = r
            .sensitivity
            .iter()
            .map(|s| {
                vec![
                    s.block.to_string(),
                    s.measure.clone(),
                    s.smallest_flagged.map_or("none".into(), |v| v.to_string()),
                    if s.monotone_next { "yes" } else { "no" }.into(),
                    if s.monotone_last { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        o.push_str("### Sensitivity and dose–response\n\n");
        o.push_str(&md_table(
            &[
                "block",
                "measure",
                "smallest strength flagged (layer block + 1)",
                "monotone at block + 1",
                "monotone at the last layer",
            ],
            &rows,
        ));
    }
}

/// Layer matching in the base and between two students.
fn matching_section(r: &ValidateReport, o: &mut String) {
    o.push_str("\n## Layer matching\n\n");
    let m = &r.layer_matching;
    let pct = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.0} %", 100.0 * v));
    o.push_str(&md_table(
        &["figure", "value"],
        &[
            vec![
                "base: most similar other layer is a neighbour".into(),
                pct(m.base_neighbour_share),
            ],
            vec![
                "base: of two layers on one side, the nearer is the more similar".into(),
                m.base_order_agreement
                    .map_or("—".into(), |v| format!("{:.1} %", 100.0 * v)),
            ],
            vec![
                "base: rows where similarity falls strictly with layer distance".into(),
                pct(m.base_monotone_share),
            ],
            vec![
                "two seeds: matching accuracy, layers training changed".into(),
                pct(m.accuracy_trained),
            ],
            vec![
                "two seeds: matching accuracy, all layers".into(),
                pct(m.accuracy_all),
            ],
        ],
    ));
    if let Some(s) = &m.skipped {
        o.push_str(&format!("\nStudents skipped: {}\n", md(s)));
    }
}

/// Probes with shuffled labels against their chance band.
fn probes_section(r: &ValidateReport, o: &mut String) {
    if !r.probes.is_empty() {
        o.push_str("\n## Probes with shuffled labels\n\n");
        let rows: Vec<Vec<String>> = r
            .probes
            .iter()
            .map(|p| {
                vec![
                    p.layer.to_string(),
                    p.n.to_string(),
                    format!("{:.3}", p.accuracy),
                    p.c.to_string(),
                    format!("{:.3}", p.control_accuracy),
                    format!("[{:.3}, {:.3}]", p.band_lo, p.band_hi),
                    format!("{:+.3}", p.accuracy - p.control_accuracy),
                ]
            })
            .collect();
        o.push_str(&md_table(
            &[
                "layer",
                "pairs",
                "accuracy (real labels, CV)",
                "C",
                "accuracy (shuffled, C = 1)",
                "chance band",
                "selectivity",
            ],
            &rows,
        ));
    }
}

/// The sd of each measure over random subsets of n examples.
fn sample_size_section(r: &ValidateReport, o: &mut String) {
    if !r.sample_size.is_empty() {
        o.push_str(&format!(
            "\n## Sample size\n\nThe sd of each measure at the last layer, base against the middle planted model, over {} random subsets of n examples drawn without replacement: how much a figure from n examples would move with another sample of the same size.\n\n",
            r.params.bootstrap
        ));
        let rows: Vec<Vec<String>> = r
            .sample_size
            .iter()
            .map(|s| {
                vec![
                    s.m.to_string(),
                    s.d.to_string(),
                    e(s.sd_linear_cka),
                    e(s.sd_debiased_cka),
                    e(s.sd_procrustes),
                ]
            })
            .collect();
        o.push_str(&md_table(
            &[
                "n",
                "d",
                "sd linear CKA",
                "sd debiased CKA",
                "sd Procrustes",
            ],
            &rows,
        ));
    }
}
