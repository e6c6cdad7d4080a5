//! The report's renderers: `report.md` and the self-contained `index.html` (bytes; [`super::write`]
//! writes them).

use super::model::Report;
use super::series::ProbeSeries;
use crate::fmt::{esc, f3, md};
use crate::plot::Plot;

const TRUST: &str = "Can these numbers be trusted?";
const BIAS: &str = "What else did the students learn? Cues and values";

/// The bias section's lead paragraph.
fn bias_lead(b: &crate::bias::summary::BiasSection) -> String {
    format!(
        "Each model's reward on counterfactual replies (repdrift cues, {} pairs of {}): the mean change when a reply gets a cue with its content kept, in units of the sd of the model's rewards (* = 95 % interval of the change excludes 0); length ρ = Spearman of reward against response tokens. Value bias (repdrift values, {} matched pairs of probes/values): how often the agency reply beats the communion one [95 % CI], how much of the base's agency–communion axis each model kept, and how the reward's alignment with it moved at the last layer. Base: implicit reward (summed response log-probability); students: their reward heads. Implicit-reward accuracy: pairwise accuracy on the cue pairs of the base's summed log-probability, and of each student's minus the base's (how training moved the LM's log-probabilities under the tied embeddings).",
        b.cue_pairs, b.cue_data, b.value_pairs
    )
}

const SECTIONS: [&str; 4] = [
    "Where did each student drift?",
    "Does the preference signal transfer?",
    "Does drift explain the failed transfer?",
    "Which layers to anchor?",
];

/// `report.md`: the same content as the HTML page, with links to the PNG plots.
pub fn render_markdown(r: &Report, plots: &[Plot]) -> Vec<u8> {
    let mut o = format!(
        "# {}\n\nrepdrift {} · diagnosis rules: drift where measurable (no CKA cut-off), α = {}\n\n",
        md(&r.title),
        r.repdrift_version,
        r.rules.alpha
    );
    for c in &r.context {
        o.push_str(&format!("{}\n\n", md(c)));
    }
    for l in &r.lead {
        o.push_str(&format!("## {}\n\n", md(&l.title)));
        for p in &l.paragraphs {
            o.push_str(&format!("{}\n\n", md(p)));
        }
        if !l.rows.is_empty() {
            o.push_str(&crate::fmt::md_table(&l.head, &l.rows));
            o.push('\n');
        }
        for n in &l.notes {
            o.push_str(&format!("- {}\n", md(n)));
        }
        if !l.notes.is_empty() {
            o.push('\n');
        }
    }
    let link = |o: &mut String, prefix: &str| {
        for p in plots.iter().filter(|p| p.name.starts_with(prefix)) {
            o.push_str(&format!("![{}](plots/{}.png)\n\n", md(&p.title), p.name));
        }
    };
    o.push_str(&format!("## {}\n\n", SECTIONS[0]));
    for f in &r.findings {
        o.push_str(&format!("- {}\n", md(&f.sentences[0])));
    }
    o.push('\n');
    link(&mut o, "cka");
    link(&mut o, "cosine");
    link(&mut o, "heatmap");
    o.push_str("| student | field | layer | linear CKA | debiased CKA | cosine distance | norm ratio |\n|---|---|---|---|---|---|---|\n");
    for s in &r.students {
        for (i, l) in s.layers.iter().enumerate() {
            o.push_str(&format!(
                "| {} | {} | {l} | {} | {} | {} | {} |\n",
                md(&s.student),
                md(&s.field),
                f3(s.linear_cka[i]),
                f3(s.debiased_cka[i]),
                f3(s.cosine_distance[i]),
                f3(s.norm_ratio[i])
            ));
        }
    }
    o.push_str(&format!("\n## {TRUST}\n\n"));
    for t in &r.trust.sentences {
        o.push_str(&format!("- {}\n", md(t)));
    }
    o.push('\n');
    link(&mut o, "trust_drift");
    if !o.ends_with("\n\n") {
        o.push('\n');
    }
    o.push_str(&format!("## {}\n\n", SECTIONS[1]));
    link(&mut o, "probe");
    link(&mut o, "crossmodel");
    o.push_str(&probe_table_md(r));
    if !r.reward_models.is_empty() {
        o.push_str("\nThe reward models' own pairwise accuracy (score head, r(chosen) > r(rejected)):\n\n| model | data | accuracy | pairs |\n|---|---|---|---|\n");
        for (m, d, a, n) in &r.reward_models {
            o.push_str(&format!("| {} | {} | {:.3} | {n} |\n", md(m), md(d), a));
        }
    }
    if let Some(t) = &r.transfer {
        o.push_str("\n| student | IDG | AOG | NTS |\n|---|---|---|---|\n");
        for s in &t.students {
            o.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.1} |\n",
                md(&s.name),
                s.idg,
                s.aog,
                s.nts
            ));
        }
    }
    o.push_str(&format!("\n## {}\n\n", SECTIONS[2]));
    for f in &r.findings {
        for s in &f.sentences[1..] {
            o.push_str(&format!("- {}\n", md(s)));
        }
    }
    o.push('\n');
    link(&mut o, "drift_vs_transfer");
    o.push_str(&format!("## {}\n\n", SECTIONS[3]));
    o.push_str(&anchor_text(r, false));
    if let Some(rec) = &r.recommendation {
        o.push_str(&crate::recommend::render_markdown(rec));
    }
    if let Some(b) = &r.bias {
        let (head, rows) = crate::bias::summary::table(b);
        o.push_str(&format!("\n## {BIAS}\n\n{}\n\n", md(&bias_lead(b))));
        o.push_str(&crate::fmt::md_table(&head, &rows));
        o.push('\n');
        for t in &b.sentences {
            o.push_str(&format!("- {}\n", md(t)));
        }
    }
    o.push_str("\n## Inputs\n\n| input | path | hashes (sha256, first 12) |\n|---|---|---|\n");
    for (a, b, c) in &r.inputs {
        o.push_str(&format!("| {} | {} | {} |\n", md(a), md(b), md(c)));
    }
    o.into_bytes()
}

/// The probe table's accuracy cells at layer index `i`: in-distribution, mean target, control.
fn probe_cells(p: &ProbeSeries, i: usize) -> [String; 3] {
    if p.tied.get(i).copied().unwrap_or(false) {
        return std::array::from_fn(|_| "n/a (tied)".to_string());
    }
    [f3(p.in_dist[i]), f3(p.mean_target(i)), f3(p.control[i])]
}

fn probe_table_md(r: &Report) -> String {
    let mut o = String::from(
        "| model | layer | source (in-dist) | mean target | control |\n|---|---|---|---|---|\n",
    );
    for p in &r.probes {
        for (i, l) in p.layers.iter().enumerate() {
            let [a, t, c] = probe_cells(p, i);
            o.push_str(&format!("| {} | {l} | {a} | {t} | {c} |\n", md(&p.model)));
        }
    }
    o
}

fn anchor_text(r: &Report, html: bool) -> String {
    let mut o = String::new();
    let e = |s: &str| if html { esc(s) } else { md(s) };
    for f in &r.findings {
        if f.anchor_candidates.is_empty() {
            o.push_str(&format!(
                "{}{}: no candidate (needs drift and a base probe that transfers above chance).{}\n",
                if html { "<p>" } else { "- " },
                e(&f.student),
                if html { "</p>" } else { "" }
            ));
            continue;
        }
        let list: Vec<String> = f
            .anchor_candidates
            .iter()
            .map(|(l, s)| format!("layer {l} (score {s:.3})"))
            .collect();
        o.push_str(&format!(
            "{}{}: {}.{}\n",
            if html { "<p>" } else { "- " },
            e(&f.student),
            list.join(", "),
            if html { "</p>" } else { "" }
        ));
    }
    o.push_str(&format!(
        "{}Score = (1 − linear CKA of the student) × max(0, base target-probe accuracy − 0.5): layers where the base's preference direction transfers and the student moved away. A shortlist to check by training, not a validated recommendation.{}\n",
        if html { "<p class=\"note\">" } else { "\n" },
        if html { "</p>" } else { "" }
    ));
    o
}

/// `index.html`: one self-contained file (inline SVG, no scripts, no network fetches).
pub fn render_html(r: &Report, plots: &[Plot]) -> Vec<u8> {
    let mut o = String::new();
    o.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\n<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}table{{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}.plot{{margin:1em 0;overflow-x:auto}}.plot svg{{max-width:100%;height:auto}}@media (max-width:640px){{.plot svg{{min-width:600px;max-width:none}}}}.note{{color:#555;font-size:13px}}details{{margin:1em 0}}</style></head><body>\n",
        esc(&r.title)
    ));
    o.push_str(&format!("<h1>{}</h1>\n<p class=\"note\">repdrift {} · diagnosis rules: drift where measurable (no CKA cut-off), α = {}</p>\n", esc(&r.title), esc(&r.repdrift_version), r.rules.alpha));
    for c in &r.context {
        o.push_str(&format!("<p>{}</p>\n", esc(c)));
    }
    for l in &r.lead {
        o.push_str(&format!("<h2>{}</h2>\n", esc(&l.title)));
        for p in &l.paragraphs {
            o.push_str(&format!("<p>{}</p>\n", esc(p)));
        }
        if !l.rows.is_empty() {
            o.push_str(&crate::fmt::html_table(&l.head, &l.rows));
        }
        if !l.notes.is_empty() {
            o.push_str("<ul>\n");
            for n in &l.notes {
                o.push_str(&format!("<li>{}</li>\n", esc(n)));
            }
            o.push_str("</ul>\n");
        }
    }
    let svg = |o: &mut String, prefix: &str| {
        for p in plots.iter().filter(|p| p.name.starts_with(prefix)) {
            o.push_str(&format!(
                "<figure class=\"plot\">{}<figcaption>{}</figcaption></figure>\n",
                strip_xml_decl(&p.svg),
                esc(&p.title)
            ));
        }
    };
    o.push_str(&format!("<h2>{}</h2>\n<ul>\n", esc(SECTIONS[0])));
    for f in &r.findings {
        o.push_str(&format!("<li>{}</li>\n", esc(&f.sentences[0])));
    }
    o.push_str("</ul>\n");
    svg(&mut o, "cka");
    svg(&mut o, "cosine");
    svg(&mut o, "heatmap");
    o.push_str("<details><summary>Drift numbers per layer</summary><table><tr><th>student</th><th>field</th><th>layer</th><th>linear CKA</th><th>debiased CKA</th><th>cosine distance</th><th>norm ratio</th></tr>\n");
    for s in &r.students {
        for (i, l) in s.layers.iter().enumerate() {
            o.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{l}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&s.student),
                esc(&s.field),
                f3(s.linear_cka[i]),
                f3(s.debiased_cka[i]),
                f3(s.cosine_distance[i]),
                f3(s.norm_ratio[i])
            ));
        }
    }
    o.push_str("</table></details>\n");
    o.push_str(&format!("<h2>{}</h2>\n<ul>\n", esc(TRUST)));
    for t in &r.trust.sentences {
        o.push_str(&format!("<li>{}</li>\n", esc(t)));
    }
    o.push_str("</ul>\n");
    svg(&mut o, "trust_drift");
    o.push_str(&format!("<h2>{}</h2>\n", esc(SECTIONS[1])));
    svg(&mut o, "probe");
    svg(&mut o, "crossmodel");
    o.push_str("<details><summary>Probe accuracy per layer</summary><table><tr><th>model</th><th>layer</th><th>source (in-dist)</th><th>mean target</th><th>control</th></tr>\n");
    for p in &r.probes {
        for (i, l) in p.layers.iter().enumerate() {
            let [a, t, c] = probe_cells(p, i);
            o.push_str(&format!(
                "<tr><td>{}</td><td>{l}</td><td>{a}</td><td>{t}</td><td>{c}</td></tr>\n",
                esc(&p.model)
            ));
        }
    }
    o.push_str("</table></details>\n");
    if !r.reward_models.is_empty() {
        o.push_str("<p>The reward models' own pairwise accuracy (score head, r(chosen) &gt; r(rejected)):</p><table><tr><th>model</th><th>data</th><th>accuracy</th><th>pairs</th></tr>\n");
        for (m, d, a, n) in &r.reward_models {
            o.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{n}</td></tr>\n",
                esc(m),
                esc(d),
                a
            ));
        }
        o.push_str("</table>\n");
    }
    if let Some(t) = &r.transfer {
        o.push_str("<table><tr><th>student</th><th>IDG</th><th>AOG</th><th>NTS</th></tr>\n");
        for s in &t.students {
            o.push_str(&format!(
                "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>\n",
                esc(&s.name),
                s.idg,
                s.aog,
                s.nts
            ));
        }
        o.push_str("</table>\n");
    }
    o.push_str(&format!("<h2>{}</h2>\n<ul>\n", esc(SECTIONS[2])));
    for f in &r.findings {
        for s in &f.sentences[1..] {
            o.push_str(&format!("<li>{}</li>\n", esc(s)));
        }
    }
    o.push_str("</ul>\n");
    svg(&mut o, "drift_vs_transfer");
    o.push_str(&format!("<h2>{}</h2>\n", esc(SECTIONS[3])));
    o.push_str(&anchor_text(r, true));
    if let Some(rec) = &r.recommendation {
        o.push_str(&crate::recommend::render_html(rec));
    }
    if let Some(b) = &r.bias {
        let (head, rows) = crate::bias::summary::table(b);
        o.push_str(&format!(
            "<h2>{}</h2>\n<p>{}</p>\n",
            esc(BIAS),
            esc(&bias_lead(b))
        ));
        o.push_str(&crate::fmt::html_table(&head, &rows));
        o.push_str("<ul>\n");
        for t in &b.sentences {
            o.push_str(&format!("<li>{}</li>\n", esc(t)));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("<h2>Inputs</h2>\n<table><tr><th>input</th><th>path</th><th>hashes (sha256, first 12)</th></tr>\n");
    for (a, b, c) in &r.inputs {
        o.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(a),
            esc(b),
            esc(c)
        ));
    }
    o.push_str("</table>\n</body></html>\n");
    o.into_bytes()
}

fn strip_xml_decl(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}
