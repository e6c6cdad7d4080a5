//! The report: snapshot tests of report.md and index.html on a fixed input
//! (`tests/fixtures/report/`, hand-written numbers), plots that render with real content,
//! HTML escaping, the diagnosis rules, and the page opened in headless Chromium.
//!
//! Snapshots live in `tests/snapshots/`; after an intended change, regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test --release --test integration report::` and review the diff.

use std::path::PathBuf;
use std::process::Command;

use repdrift::report::diagnosis::{ranges, spearman, Rules};
use repdrift::report::{
    build, plots::render_all, read_inputs, render_html, render_markdown, write,
};

use super::common::*;

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/report")
}

fn inputs(title: &str) -> repdrift::report::ReportInputs {
    let f = fixtures();
    read_inputs(
        &f.join("metrics"),
        &[
            f.join("probe_base"),
            f.join("probe_naive"),
            f.join("probe_anchor"),
        ],
        None,
        None,
        title,
        "base",
    )
    .unwrap()
}

fn snapshot(name: &str, got: &[u8]) {
    let p = root().join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, got).unwrap();
        return;
    }
    let want = std::fs::read(&p)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_SNAPSHOTS=1", p.display()));
    if want != got {
        let out = root().join("target").join(format!("{name}.new"));
        std::fs::write(&out, got).unwrap();
        panic!(
            "{name} differs from its snapshot; new version in {}",
            out.display()
        );
    }
}

#[test]
fn report_snapshots() {
    let r = build(&inputs("Fixture report"), &Rules::default());
    let plots = render_all(&r).unwrap();
    snapshot("report.md", &render_markdown(&r, &plots));
    snapshot("index.html", &render_html(&r, &plots));
}

#[test]
fn diagnosis_names_drifted_layers_and_the_correlation() {
    let r = build(&inputs("t"), &Rules::default());
    let naive = r.findings.iter().find(|f| f.student == "naive").unwrap();
    // Fixture: naive CKA = 1 − 0.09·layer with a ±0.03 interval (upper end capped at 1):
    // layers 1–6 have an interval below 1, so their drift is measurable; layer 0 is the base.
    assert_eq!(naive.drifted_layers, vec![1, 2, 3, 4, 5, 6]);
    assert!(
        naive.sentences[0].contains("layers 1–6 drifted measurably")
            && naive.sentences[0].contains("largest drift 0.540 at layer 6")
            && naive.sentences[0].contains("median 0.270 over 7 layers"),
        "{:?}",
        naive.sentences
    );
    // Drift-weighted over layers 1–6 (weights 0.09·l), computed in Python from the fixture's
    // probe.json files: Σ w·Δtarget / Σ w = −10.238, Σ w·Δsource / Σ w = +6.333 points.
    assert!(
        naive.sentences[1]
            .contains("weighted by their drift, target-probe accuracy fell 10.2 points")
            && naive.sentences[1].contains("source accuracy rose 6.3"),
        "{:?}",
        naive.sentences
    );
    let sp = naive.spearman.unwrap();
    assert!(sp.rho > 0.9 && sp.p < 0.05 && sp.n == 7, "{sp:?}");
    let anchor = r.findings.iter().find(|f| f.student == "anchor").unwrap();
    // Fixture: anchor CKA = 1 − 0.02·layer ± 0.03: the interval reaches 1 at layers 0–1.
    assert_eq!(anchor.drifted_layers, vec![2, 3, 4, 5, 6]);
    assert!(anchor.sentences[0].contains("largest drift 0.120 at layer 6"));
    // The anchored student's transfer loss does not track its (small) drift: the report says so.
    assert!(
        anchor
            .sentences
            .iter()
            .any(|s| s.contains("do not support")),
        "{:?}",
        anchor.sentences
    );
    assert_eq!(naive.anchor_candidates[0].0, 6);
}

/// Issue 31: no point threshold decides drift. A student whose CKA is 0.95 at every layer with
/// an interval that excludes 1 drifted measurably everywhere (a 0.7 cut-off called it
/// unchanged); one whose interval reaches 1 did not, however low its point value.
#[test]
fn drift_is_decided_by_its_interval_not_by_a_cka_cut_off() {
    let mut inp = inputs("t");
    for row in inp
        .metrics
        .rows
        .iter_mut()
        .filter(|r| r.student == "anchor")
    {
        row.linear_cka = Some(0.95);
        let ci = row.ci.as_mut().unwrap().linear_cka.as_mut().unwrap();
        (ci.lo, ci.hi) = (0.93, 0.97);
    }
    for row in inp.metrics.rows.iter_mut().filter(|r| r.student == "naive") {
        row.linear_cka = Some(0.5);
        let ci = row.ci.as_mut().unwrap().linear_cka.as_mut().unwrap();
        (ci.lo, ci.hi) = (0.1, 1.0);
    }
    let r = build(&inp, &Rules::default());
    let get = |n: &str| r.findings.iter().find(|f| f.student == n).unwrap();
    assert_eq!(get("anchor").drifted_layers, vec![0, 1, 2, 3, 4, 5, 6]);
    assert!(get("naive").drifted_layers.is_empty());
    assert!(get("naive").sentences[0].contains("no layer drifted measurably"));
}

/// Regression (issue 20): the demo report printed layer 0's probe accuracy as 0.000 when every
/// pair's chosen and rejected embedding were identical (last-token pooling, same final token).
#[test]
fn tied_layers_show_na_and_stay_out_of_summaries() {
    use repdrift::probe::ProbeData;
    // Truth: the definition — tied means every Δh row is exactly zero.
    let zeros = ndarray::Array2::<f64>::zeros((3, 4));
    assert!(ProbeData::Pairs(zeros.clone()).all_tied());
    let mut one = zeros;
    one[[2, 1]] = 1e-30;
    assert!(!ProbeData::Pairs(one).all_tied());
    assert!(!ProbeData::Pairs(ndarray::Array2::zeros((0, 4))).all_tied());

    let mut inp = inputs("t");
    for r in inp.probes[0].rows.iter_mut().filter(|r| r.layer == 0) {
        r.tied = true;
    }
    let r = build(&inp, &Rules::default());
    let base = r.probes.iter().find(|p| p.model == "base").unwrap();
    assert_eq!(base.tied[..2], [true, false]);
    assert_eq!(base.in_dist[0], None);
    assert_eq!(base.mean_target(0), None);
    assert!(base.in_dist[1].is_some());
    let plots = render_all(&r).unwrap();
    let md = String::from_utf8(render_markdown(&r, &plots)).unwrap();
    assert!(
        md.contains("| base | 0 | n/a (tied) | n/a (tied) | n/a (tied) |"),
        "{md}"
    );
    let html = String::from_utf8(render_html(&r, &plots)).unwrap();
    assert!(html.contains("<td>base</td><td>0</td><td>n/a (tied)</td>"));
}

#[test]
fn context_paragraphs_appear_under_the_title_escaped() {
    let mut inp = inputs("t");
    inp.context = vec!["Study said <b>so</b> | ρ = 0.64".into()];
    let r = build(&inp, &Rules::default());
    let plots = render_all(&r).unwrap();
    let md = String::from_utf8(render_markdown(&r, &plots)).unwrap();
    assert!(
        md.contains("\n\nStudy said &lt;b&gt;so&lt;/b&gt; \\| ρ = 0.64\n\n"),
        "{md}"
    );
    let html = String::from_utf8(render_html(&r, &plots)).unwrap();
    assert!(html.contains("<p>Study said &lt;b&gt;so&lt;/b&gt; | ρ = 0.64</p>"));
}

/// Regression (issue 20 screenshots): the study's ρ axis was labelled "-0.0".
#[test]
fn tick_labels_never_show_negative_zero() {
    use repdrift::plot::tick;
    assert_eq!(tick(-0.04, 1), "0.0");
    assert_eq!(tick(-1e-12, 2), "0.00");
    assert_eq!(tick(-0.06, 1), "-0.1");
    assert_eq!(tick(-2.0, 0), "-2");
    assert_eq!(tick(0.25, 2), "0.25");
}

#[test]
fn spearman_and_ranges_are_right() {
    let s = spearman(
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        &[2.0, 4.0, 6.0, 8.0, 10.0],
        2000,
        1,
    )
    .unwrap();
    assert!((s.rho - 1.0).abs() < 1e-12);
    // Exact two-sided p for n = 5, ρ = 1: 2/120; the permutation estimate is close.
    assert!(s.p < 0.03, "{s:?}");
    let s = spearman(
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &[3.0, 1.0, 4.0, 1.0, 5.0, 9.0],
        2000,
        1,
    )
    .unwrap();
    // scipy 1.x (refenv): spearmanr([1, 2, 3, 4, 5, 6], [3, 1, 4, 1, 5, 9]).statistic = 0.6667366910003157
    assert!((s.rho - 0.6667366910003157).abs() < 1e-12, "{s:?}");
    assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 10, 0).is_none());
    assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1–3, 7, 9–10");
}

#[test]
fn plots_render_with_real_content() {
    let r = build(&inputs("t"), &Rules::default());
    let plots = render_all(&r).unwrap();
    let names: Vec<&str> = plots.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "trust_drift",
            "cka",
            "cosine_norm",
            "probe",
            "heatmap_naive",
            "drift_vs_transfer"
        ]
    );
    for p in &plots {
        let dec = png::Decoder::new(std::io::Cursor::new(&p.png));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (p.width, p.height), "{}", p.name);
        let px = &buf[..info.buffer_size()];
        let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len() as f64;
        let var = px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / px.len() as f64;
        let non_white = px.chunks(3).filter(|c| c.iter().any(|&v| v < 200)).count();
        assert!(
            var > 100.0 && non_white > 2000,
            "{}: variance {var}, {non_white} non-white pixels",
            p.name
        );
        let doc = roxmltree::Document::parse(&p.svg)
            .unwrap_or_else(|e| panic!("{}: SVG does not parse: {e}", p.name));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(p.svg.contains("<text"), "{}: SVG has no text", p.name);
    }
}

#[test]
fn dataset_text_is_escaped() {
    let mut inp = inputs("<script>alert('title')</script>");
    inp.metrics.students[0].name = "<script>alert(1)</script>".into();
    inp.metrics.students[0].path = "stores/<img src=x onerror=alert(2)>".into();
    for row in inp.metrics.rows.iter_mut().filter(|r| r.student == "naive") {
        row.student = "<script>alert(1)</script>".into();
    }
    let r = build(&inp, &Rules::default());
    let plots = render_all(&r).unwrap();
    let html = String::from_utf8(render_html(&r, &plots)).unwrap();
    let md = String::from_utf8(render_markdown(&r, &plots)).unwrap();
    for doc in [&html, &md] {
        assert!(
            !doc.to_lowercase().contains("<script"),
            "raw <script> in output"
        );
        assert!(!doc.contains("<img"), "raw <img> in output");
        assert!(doc.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(c).output() {
            if o.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            }
        }
    }
    panic!("chromium not found: run `bash scripts/setup.sh` (it installs Debian's chromium)");
}

#[test]
fn index_html_opens_in_headless_chromium() {
    let dir = scratch("report-chromium");
    let r = build(&inputs("Chromium check"), &Rules::default());
    let plots = render_all(&r).unwrap();
    write(&dir.join("report"), &r, &plots).unwrap();
    for f in [
        "index.html",
        "report.md",
        "report.json",
        "plots/cka.png",
        "plots/cka.svg",
    ] {
        assert!(dir.join("report").join(f).is_file(), "{f}");
    }
    let shot = dir.join("shot.png");
    let profile = dir.join("profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "file://{}",
            dir.join("report/index.html").display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {err}");
    for bad in [
        "Uncaught",
        "ERR_FILE_NOT_FOUND",
        "Failed to load resource",
        "ERR_NAME_NOT_RESOLVED",
    ] {
        assert!(!err.contains(bad), "page error `{bad}`: {err}");
    }
    let png = std::fs::read(&shot).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 2400));
    let px = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let non_white = px
        .chunks(step)
        .filter(|c| c.iter().take(3).any(|&v| v < 200))
        .count();
    assert!(
        non_white > 20_000,
        "the screenshot is nearly blank ({non_white} non-white pixels)"
    );
}

/// Issue 14: drift at or below validate's numerical floor is greyed out and never called drift.
#[test]
fn drift_inside_the_numerical_floor_is_never_called_drift() {
    use repdrift::report::trust::ValidateSummary;
    // Truth: the fixture's naive CKA = 1 − 0.09·layer, so 1 − CKA = 0.09·layer. A floor of
    // 0.2 must leave out layers 0–2 (0, 0.09, 0.18) and keep 3–6.
    let mut inp = inputs("t");
    inp.validate = Some(ValidateSummary {
        path: "validate.json".into(),
        model: "m".into(),
        n_examples: 10,
        hidden_size: 4,
        passed: 5,
        counted: 5,
        failed: Vec::new(),
        floor_linear_cka: Some(0.2),
        chance_linear_cka: None,
        chance_n: 0,
    });
    let rules = Rules::default();
    let r = build(&inp, &rules);
    let naive = r.findings.iter().find(|f| f.student == "naive").unwrap();
    assert_eq!(naive.drifted_layers, vec![3, 4, 5, 6]);
    let floor_line = r
        .trust
        .sentences
        .iter()
        .find(|s| s.starts_with("naive:") && s.contains("numerical floor"))
        .unwrap();
    assert!(
        floor_line.contains("3 of 7 layers") && floor_line.contains("(0–2)"),
        "{floor_line}"
    );
    // Without a floor the same rule calls every layer with CKA < 1 drifted (layers 1–6).
    inp.validate = None;
    let r = build(&inp, &rules);
    let naive = r.findings.iter().find(|f| f.student == "naive").unwrap();
    assert_eq!(naive.drifted_layers, vec![1, 2, 3, 4, 5, 6]);
    assert!(r.trust.sentences[0].contains("No `repdrift validate` run"));
}

/// Issue 16: hostile names, paths and text in every input stay inert in a real browser: after
/// headless Chromium loads the page, its DOM holds no `<script>` or `<img>` element and the
/// title the injection would set is not set.
#[test]
fn injected_markup_never_runs_in_chromium() {
    use repdrift::report::trust::ValidateSummary;
    let dir = scratch("report-injection");
    let evil =
        "\"><script>document.title='PWNED'</script><img src=x onerror=\"document.title='PWNED'\">";
    let mut inp = inputs(&format!("title {evil}"));
    inp.metrics.students[0].name = format!("naive{evil}");
    for row in inp.metrics.rows.iter_mut().filter(|r| r.student == "naive") {
        row.student = format!("naive{evil}");
    }
    inp.metrics.base.path = format!("stores/{evil}").into();
    inp.context.push(format!("dataset text {evil} | `x` **y**"));
    inp.validate = Some(ValidateSummary {
        path: format!("v/{evil}.json"),
        model: evil.into(),
        n_examples: 10,
        hidden_size: 4,
        passed: 1,
        counted: 2,
        failed: vec![evil.into()],
        floor_linear_cka: Some(1e-12),
        chance_linear_cka: None,
        chance_n: 0,
    });
    let r = build(&inp, &Rules::default());
    let plots = render_all(&r).unwrap();
    write(&dir.join("report"), &r, &plots).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!(
            "file://{}",
            dir.join("report/index.html").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(dom.contains("<body"), "no DOM dumped");
    assert!(!dom.contains("<script"), "a script element reached the DOM");
    assert!(!dom.contains("<img"), "an img element reached the DOM");
    let title = dom
        .split("<title>")
        .nth(1)
        .unwrap()
        .split("</title>")
        .next()
        .unwrap();
    assert!(
        title.contains("&lt;script&gt;"),
        "title replaced by the injection: {title}"
    );
    assert!(
        dom.contains("&lt;script&gt;document.title"),
        "the text itself is shown, escaped"
    );
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        !md.contains("<script") && !md.contains("<img"),
        "raw markup in report.md"
    );
}
