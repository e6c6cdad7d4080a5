//! `repdrift study` end to end on a tiny random Llama (written by the tests) with the real
//! MiniLM weak teacher: every run of the grid is written, the table is recomputed here from the
//! per-run JSON (truth: the definitions in src/study/analysis.rs, recomputed independently),
//! `--resume` skips finished runs, `--max-runs` stops early and a grown grid continues, and
//! bad configs are named errors (exit 2) that write nothing.

use std::path::{Path, PathBuf};

use super::common::*;

pub(super) fn write_config(dir: &Path, seeds: &str, methods: &str) -> PathBuf {
    let model = dir.join("base");
    if !model.exists() {
        std::fs::create_dir_all(&model).unwrap();
        write_checkpoint(&model, true);
    }
    let src = word_pairs(dir, "src.jsonl", 40, 0);
    let tgt = word_pairs(dir, "tgt.jsonl", 16, 100);
    let cfg = format!(
        r#"base = "{}"
teacher = "{}"
source = "{}"
seeds = {seeds}
methods = {methods}
max_tokens = 32
batch_size = 4
eval_every = 2
trajectory_pairs = 6
drift_layers = [1, 2, 3]

[targets]
t = "{}"

[[regimes]]
name = "top2"
trainable = "top:2"
lr = 3e-3
epochs = 1

[[anchors]]
name = "anchor"
layers = "trainable"
weight = 10.0
"#,
        model.display(),
        minilm_path().display(),
        src.display(),
        tgt.display()
    );
    let path = dir.join("study.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn study(cfg: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let o = bin()
        .arg("study")
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "study failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn mean_sd(v: &[f64]) -> (f64, Option<f64>) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd =
        (v.len() > 1).then(|| (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (m, sd)
}

#[test]
fn study_writes_every_run_and_the_table_recomputes_from_the_run_files() {
    let dir = scratch("study-grid");
    let cfg = write_config(&dir, "[0, 1]", r#"["gold", "naive", "anchor", "lpft"]"#);
    let out = dir.join("out");
    study(&cfg, &out, &[]);
    let mut ids: Vec<String> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 8, "{ids:?}");
    for f in [
        "study.json",
        "study.md",
        "index.html",
        "runs.csv",
        "table.csv",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("study.json")).unwrap()).unwrap();
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8);
    // Recompute each cell's source-test accuracy, target gain and drift from the runs.
    let table = s["summary"]["table"].as_array().unwrap();
    assert_eq!(table.len(), 4);
    for cell in table {
        let (m, r) = (
            cell["method"].as_str().unwrap(),
            cell["regime"].as_str().unwrap(),
        );
        let mine: Vec<&serde_json::Value> = runs
            .iter()
            .filter(|x| x["method"] == m && x["regime"] == r)
            .collect();
        assert_eq!(mine.len(), 2);
        let acc: Vec<f64> = mine
            .iter()
            .map(|x| 100.0 * x["accuracy"]["source_test"].as_f64().unwrap())
            .collect();
        let gain: Vec<f64> = mine
            .iter()
            .map(|x| {
                100.0
                    * (x["accuracy"]["t"].as_f64().unwrap()
                        - x["teacher_accuracy"]["t"].as_f64().unwrap())
            })
            .collect();
        let drift: Vec<f64> = mine
            .iter()
            .map(|x| {
                let row = x["drift"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["layer"] == 3 && d["set"] == "t")
                    .unwrap();
                1.0 - row["linear_cka"].as_f64().unwrap()
            })
            .collect();
        for (key, v) in [
            ("acc:source_test", &acc),
            ("gain:t", &gain),
            ("drift:final", &drift),
        ] {
            let (mean, sd) = mean_sd(v);
            let got = &cell["metrics"][key];
            assert!(
                (got["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
                "{m} {key}"
            );
            assert_eq!(got["n"].as_u64().unwrap(), 2);
            match sd {
                Some(sd) => assert!((got["sd"].as_f64().unwrap() - sd).abs() < 1e-9),
                None => assert!(got["sd"].is_null()),
            }
        }
    }
    // Per run: layer 1 is below top:2 of 3 blocks, frozen, so its CKA is 1 exactly; the anchored
    // run with λ = 10 stays closer to the base at the last layer than… itself untrained is
    // not a claim; only that every drift value is a valid CKA.
    for r in runs {
        for d in r["drift"].as_array().unwrap() {
            let c = d["linear_cka"].as_f64().unwrap();
            assert!((0.0..=1.0 + 1e-9).contains(&c), "{d}");
            if d["layer"] == 1 {
                assert_eq!(d["frozen"], true);
                assert_eq!(c, 1.0);
            }
        }
        // Trajectory: step 0, every 2 steps, and the last step.
        let steps: Vec<u64> = r["trajectory"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps[0], 0);
        assert_eq!(*steps.last().unwrap(), r["steps"].as_u64().unwrap());
    }
    // LP-FT starts from a fitted head: its step-0 source accuracy is far above chance on this
    // separable data, while a random head's is not a fitted one (the two differ).
    let lpft = runs.iter().find(|x| x["method"] == "lpft").unwrap();
    assert!(
        lpft["start_accuracy"]["source_test"].as_f64().unwrap() >= 0.8,
        "{lpft}"
    );

    // The demo quotes a study from its study.json: the naive cell's change against the base
    // probe (recomputed here from the runs: mean target accuracy − base probe's, in points).
    let regime = table[0]["regime"].as_str().unwrap();
    let naive_change: Vec<f64> = runs
        .iter()
        .filter(|x| x["method"] == "naive")
        .map(|x| {
            100.0 * (x["accuracy"]["t"].as_f64().unwrap() - x["base_probe"]["t"].as_f64().unwrap())
        })
        .collect();
    let (mean, _) = mean_sd(&naive_change);
    let ctx = repdrift::demo::study_context(&out.join("study.json"), regime).unwrap();
    assert_eq!(ctx.len(), 2);
    assert!(ctx[0].contains("8 runs"), "{}", ctx[0]);
    assert!(ctx[1].contains("What the evidence supports"), "{}", ctx[1]);
    assert!(
        ctx[0].contains(&format!("{regime}: {mean:+.1} points")),
        "{} (expected {mean:+.1})",
        ctx[0]
    );
    assert!(
        repdrift::demo::study_context(&dir.join("absent.json"), regime)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn study_resumes_and_a_grown_grid_runs_only_the_new_runs() {
    let dir = scratch("study-resume");
    let cfg = write_config(&dir, "[0]", r#"["gold", "naive"]"#);
    let out = dir.join("out");
    study(&cfg, &out, &["--max-runs", "1"]);
    assert_eq!(std::fs::read_dir(out.join("runs")).unwrap().count(), 1);
    let first = out.join("runs").join("top2__gold__s0.json");
    let bytes = std::fs::read(&first).unwrap();
    // Without --resume a non-empty output is refused.
    expect_user_error(
        bin()
            .arg("study")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&out),
        &["--resume"],
    );
    study(&cfg, &out, &["--resume"]);
    assert_eq!(std::fs::read_dir(out.join("runs")).unwrap().count(), 2);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        bytes,
        "a finished run was redone"
    );
    // A grown grid (another seed) runs only its new runs.
    let cfg = write_config(&dir, "[0, 1]", r#"["gold", "naive"]"#);
    let o = study(&cfg, &out, &["--resume"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 done, 2 to run"));
    assert_eq!(std::fs::read_dir(out.join("runs")).unwrap().count(), 4);
}

#[test]
fn bad_study_configs_are_named_errors() {
    let dir = scratch("study-errors");
    let cfg = write_config(&dir, "[0]", r#"["gold", "bogus"]"#);
    let out = dir.join("out");
    let refused = |edit: &dyn Fn(String) -> String, needles: &[&str]| {
        let text = edit(std::fs::read_to_string(&cfg).unwrap());
        std::fs::write(&cfg, text).unwrap();
        let mut c = bin();
        c.arg("study")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&out);
        expect_user_error(&mut c, needles);
        assert!(!out.exists(), "an invalid config wrote output");
    };
    refused(&|t| t, &["unknown method `bogus`"]);
    refused(
        &|t| {
            t.replace(r#""bogus""#, r#""naive""#)
                .replace("seeds = [0]", "seeds = [0]\nunknown_key = 3")
        },
        &["study.toml", "unknown_key"],
    );
    refused(
        &|t| t.replace("unknown_key = 3\n", "").replace("top:2", "top:9"),
        &["top:9 exceeds the base's 3 blocks"],
    );
    refused(
        &|t| {
            t.replace("top:9", "top:2").replace(
                "seeds = [0]",
                "seeds = [0]\ncontrasts = [[\"naive\", \"anchor\"]]",
            )
        },
        &["contrast", "anchor", "two different methods of `methods`"],
    );
}

/// A study with `[bias]`: every run file carries its student's cue and value numbers, the
/// study table's bias columns are their mean and sd over seeds (recomputed here from the run
/// files), and a `[bias]` too small for the decodability folds is a named error.
#[test]
fn study_with_bias_measures_every_student() {
    let dir = scratch("study-bias");
    let cfg = write_config(&dir, "[0, 1]", r#"["gold", "naive"]"#);
    let mut items = String::new();
    for i in 0..6 {
        items += &serde_json::json!({
            "prompt": format!("w3 w{}", 20 + i),
            "chosen": format!(" w{} w9", 1 + i),
            "rejected": format!(" w{} w9", 10 + i),
        })
        .to_string();
        items.push('\n');
    }
    let items_path = dir.join("items.jsonl");
    std::fs::write(&items_path, items).unwrap();
    let base = std::fs::read_to_string(&cfg).unwrap();
    let with = |cue_pairs: usize| {
        format!(
            "{base}\n[bias]\ncue_pairs = {cue_pairs}\nvalue_items = \"{}\"\nvalue_pairs = 6\n",
            items_path.display()
        )
    };
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, with(3)).unwrap();
    expect_user_error(
        bin()
            .args(["study", "--config"])
            .arg(&bad)
            .arg("--out")
            .arg(dir.join("bad-out")),
        &["cue_pairs must be at least 5"],
    );
    std::fs::write(&cfg, with(6)).unwrap();
    let out = dir.join("out");
    study(&cfg, &out, &[]);
    let mut lengths = Vec::new();
    for e in std::fs::read_dir(out.join("runs")).unwrap() {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        let b = &r["bias"];
        assert_eq!(b["cue_effect_sd"].as_object().unwrap().len(), 4, "{r}");
        let w = b["agency_win_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&w));
        if r["method"] == "naive" {
            lengths.push(b["cue_effect_sd"]["length"].as_f64().unwrap());
        }
    }
    assert_eq!(lengths.len(), 2);
    let (m, sd) = mean_sd(&lengths);
    let md = std::fs::read_to_string(out.join("study.md")).unwrap();
    assert!(md.contains("## Cue sensitivity and value bias"), "{md}");
    let row = md
        .lines()
        .skip_while(|l| !l.starts_with("## Cue sensitivity"))
        .find(|l| l.contains("| naive |"))
        .unwrap()
        .to_string();
    assert!(
        row.contains(&format!("{m:.3} ± {:.3}", sd.unwrap())),
        "{row} vs {m} ± {sd:?}"
    );
}

/// `path` with the padding sentence appended to the chosen reply of the first `agree` pairs
/// and to the rejected reply of the rest, written as `name`.
fn padded(dir: &Path, path: &Path, name: &str, agree: usize) -> PathBuf {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let side = if i < agree { "chosen" } else { "rejected" };
        let reply = v[side].as_str().unwrap().to_string();
        v[side] = serde_json::Value::String(format!("{reply} {}", repdrift::data::CUE_PADDING));
        out += &v.to_string();
        out.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

/// The shortcut arm's machinery: a study whose weak teacher is the padding rule stores every
/// run's per-pair margins, and everything the study says over pairs recomputes from them.
/// Truth: the rule's definition (p = 0.9 where only the chosen reply ends with the padding,
/// 0.1 where only the rejected one does), the accuracies as shares of positive margins, and
/// the paired tests recomputed here with the library's `test_cell_with_bases` and Holm.
#[test]
fn a_shortcut_teacher_study_stores_pair_margins_and_its_paired_tests_recompute_from_them() {
    use repdrift::stats::verdict::{adjust, test_cell_with_bases, CellTests, TestSettings};
    let dir = scratch("study-shortcut");
    let cfg = write_config(&dir, "[0, 1]", r#"["gold", "naive"]"#);
    let src = padded(&dir, &dir.join("src.jsonl"), "src_cue.jsonl", 30);
    let tgt = padded(&dir, &dir.join("tgt.jsonl"), "tgt_reversed.jsonl", 0);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let teacher_line = text.lines().find(|l| l.starts_with("teacher = ")).unwrap();
    let source_line = text.lines().find(|l| l.starts_with("source = ")).unwrap();
    let text = text
        .replace(teacher_line, "weak_rule = \"padding\"")
        .replace(source_line, &format!("source = \"{}\"", src.display()))
        .replace(
            "[targets]\n",
            &format!("[targets]\nreversed = \"{}\"\n", tgt.display()),
        )
        // A contrast the grid names: gold − naive, the standard naive − gold reversed.
        .replace(
            "seeds = [0, 1]",
            "seeds = [0, 1]\ncontrasts = [[\"gold\", \"naive\"]]",
        );
    std::fs::write(&cfg, &text).unwrap();
    let out = dir.join("out");
    study(&cfg, &out, &[]);

    // The rule's labels, from the source file itself.
    let source: Vec<serde_json::Value> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cued = |v: &serde_json::Value, side: &str| {
        v[side]
            .as_str()
            .unwrap()
            .ends_with(repdrift::data::CUE_PADDING)
    };
    for seed in [0, 1] {
        let l: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("labels/seed_{seed}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(l["teacher_model"], "rule:padding");
        for (line, p) in l["lines"]
            .as_array()
            .unwrap()
            .iter()
            .zip(l["p"].as_array().unwrap())
        {
            let v = &source[line.as_u64().unwrap() as usize - 1];
            let want = if cued(v, "chosen") { 0.9 } else { 0.1 };
            assert!((p.as_f64().unwrap() - want).abs() < 1e-12, "line {line}");
        }
        assert_eq!(l["accuracy"]["reversed"].as_f64().unwrap(), 0.0);
    }

    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("study.json")).unwrap()).unwrap();
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let share = |v: &serde_json::Value| {
        let m = v.as_array().unwrap();
        m.iter().filter(|x| x.as_f64().unwrap() > 0.0).count() as f64 / m.len() as f64
    };
    for r in runs {
        for set in ["source_test", "t", "reversed"] {
            let p = &r["pairs"][set];
            for (field, acc) in [
                ("head", "accuracy"),
                ("base_probe", "base_probe"),
                ("probe_on_student", "base_probe_on_student"),
                ("head_on_base", "head_on_base"),
            ] {
                let want = r[acc][set].as_f64().unwrap();
                assert!(
                    (share(&p[field]) - want).abs() < 1e-12,
                    "{} {set} {field}: {} vs {want}",
                    r["id"],
                    share(&p[field])
                );
            }
        }
    }

    // The paired tests over seeds, recomputed from the run files.
    let right = |v: &serde_json::Value| -> Vec<bool> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() > 0.0)
            .collect()
    };
    let cells = s["summary"]["pair_tests"].as_array().unwrap();
    assert_eq!(cells.len(), 2 * 3, "2 methods × (source test + 2 targets)");
    let settings = TestSettings::default();
    for method in ["gold", "naive"] {
        let mut mine: Vec<&serde_json::Value> =
            runs.iter().filter(|r| r["method"] == method).collect();
        mine.sort_by_key(|r| r["seed"].as_u64().unwrap());
        let readouts = |set: &str, field: &str| -> Vec<Vec<bool>> {
            mine.iter()
                .map(|r| right(&r["pairs"][set][field]))
                .collect()
        };
        let test = |set: &str, family: usize| {
            test_cell_with_bases(
                &readouts(set, "base_probe"),
                &readouts(set, "probe_on_student"),
                &readouts(set, "head"),
                &settings,
                family,
            )
        };
        let mut targets = vec![test("reversed", 2), test("t", 2)];
        adjust(&mut targets, settings.alpha);
        for (set, want) in [("source_test", test("source_test", 1))]
            .into_iter()
            .chain([("reversed", targets[0].clone()), ("t", targets[1].clone())])
        {
            let got = cells
                .iter()
                .find(|c| c["method"] == method && c["set"] == set)
                .unwrap_or_else(|| panic!("no paired test for {method} on {set}"));
            let got: CellTests = serde_json::from_value(got["tests"].clone()).unwrap();
            assert_eq!(got, want, "{method} on {set}");
        }
    }
    // naive − gold over the seeds both ran: the mean over seeds of each seed's difference in
    // head accuracy, counted here from the run files' margins.
    let heads = |method: &str, set: &str| -> Vec<Vec<bool>> {
        let mut rs: Vec<&serde_json::Value> =
            runs.iter().filter(|r| r["method"] == method).collect();
        rs.sort_by_key(|r| r["seed"].as_u64().unwrap());
        rs.iter().map(|r| right(&r["pairs"][set]["head"])).collect()
    };
    let contrasts = s["summary"]["contrasts"].as_array().unwrap();
    assert_eq!(
        contrasts.len(),
        6,
        "naive − gold and the named gold − naive, on source test + 2 targets"
    );
    for set in ["source_test", "reversed", "t"] {
        let (n, g) = (heads("naive", set), heads("gold", set));
        let share = |v: &Vec<bool>| v.iter().filter(|b| **b).count() as f64 / v.len() as f64;
        let want: f64 = n
            .iter()
            .zip(&g)
            .map(|(a, b)| share(a) - share(b))
            .sum::<f64>()
            / 2.0;
        let got = contrasts
            .iter()
            .find(|c| c["method"] == "naive" && c["against"] == "gold" && c["set"] == set)
            .unwrap();
        let d = got["tests"]["total"]["difference"].as_f64().unwrap();
        assert!((d - want).abs() < 1e-12, "{set}: {d} vs {want}");
        let named = contrasts
            .iter()
            .find(|c| c["method"] == "gold" && c["against"] == "naive" && c["set"] == set)
            .unwrap_or_else(|| panic!("no gold − naive on {set}"));
        let e = named["tests"]["total"]["difference"].as_f64().unwrap();
        assert!(
            (e + want).abs() < 1e-12,
            "{set}: gold − naive {e} vs {}",
            -want
        );
    }
    // Each method's mean over the targets against the base probe, over seeds and pairs: the
    // point is the mean over targets of each seed's head − base probe, counted here from the
    // margins; the interval is the seed-and-pair bootstrap over both targets.
    let means = s["summary"]["means_over_targets"].as_array().unwrap();
    assert_eq!(means.len(), 2, "gold and naive against the base probe");
    for method in ["gold", "naive"] {
        let sets: Vec<Vec<Vec<i8>>> = ["reversed", "t"]
            .iter()
            .map(|set| {
                let mut rs: Vec<&serde_json::Value> =
                    runs.iter().filter(|r| r["method"] == method).collect();
                rs.sort_by_key(|r| r["seed"].as_u64().unwrap());
                rs.iter()
                    .map(|r| {
                        repdrift::stats::paired::differences(
                            &right(&r["pairs"][set]["head"]),
                            &right(&r["pairs"][set]["base_probe"]),
                        )
                    })
                    .collect()
            })
            .collect();
        let mean = |d: &Vec<Vec<i8>>| {
            d.iter().flatten().map(|&x| x as f64).sum::<f64>() / (d.len() * d[0].len()) as f64
        };
        let want = (mean(&sets[0]) + mean(&sets[1])) / 2.0;
        let refs: Vec<&[Vec<i8>]> = sets.iter().map(|d| d.as_slice()).collect();
        let boot = repdrift::stats::paired::bootstrap_mean_over_sets(
            &refs,
            settings.resamples,
            1.0 - settings.alpha,
            settings.seed ^ 7,
        )
        .unwrap();
        let got = means
            .iter()
            .find(|m| m["method"] == method && m["against"] == "base probe")
            .unwrap();
        let f = |k: &str| got[k].as_f64().unwrap();
        assert!(
            (f("difference") - want).abs() < 1e-12,
            "{method}: {} vs {want}",
            f("difference")
        );
        assert_eq!(
            (f("lo"), f("hi"), f("p")),
            (boot.lo, boot.hi, boot.p),
            "{method}"
        );
    }
    let md = std::fs::read_to_string(out.join("study.md")).unwrap();
    assert!(
        md.contains("over pairs and seeds"),
        "no paired table in study.md"
    );
    assert!(
        md.contains("95 % interval over seeds and pairs: the seed-and-pair bootstrap")
            && !md.contains("t-interval over seeds"),
        "the table against the base still quotes intervals over seeds only"
    );
    assert!(
        md.contains("| naive − gold | reversed |"),
        "no contrast table"
    );
    assert!(md.contains("per run by paired tests"));

    // The page's title and validate file come from the grid file, so a committed page
    // re-renders from its config alone; --title overrides the config's.
    let first_line = || {
        std::fs::read_to_string(out.join("study.md"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    std::fs::write(&cfg, format!("title = \"From the config\"\n{text}")).unwrap();
    study(&cfg, &out, &["--render-only"]);
    assert_eq!(first_line(), "# From the config");
    study(
        &cfg,
        &out,
        &["--render-only", "--title", "From the command"],
    );
    assert_eq!(first_line(), "# From the command");
    let missing = dir.join("no-such-validate.json");
    std::fs::write(
        &cfg,
        format!("validate = \"{}\"\n{text}", missing.display()),
    )
    .unwrap();
    let before = std::fs::read(out.join("study.md")).unwrap();
    let mut c = bin();
    c.args(["study", "--render-only", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out);
    expect_user_error(&mut c, &["no-such-validate.json"]);
    assert_eq!(std::fs::read(out.join("study.md")).unwrap(), before);

    // The teacher is an encoder or a rule, not both; the rule must be one repdrift knows.
    let both = text.replace(
        "weak_rule = \"padding\"",
        &format!(
            "weak_rule = \"padding\"\nteacher = \"{}\"",
            minilm_path().display()
        ),
    );
    for (bad, needle) in [
        (both, "either by `teacher`"),
        (
            text.replace("\"padding\"", "\"length\""),
            "unknown weak rule `length`",
        ),
    ] {
        std::fs::write(&cfg, bad).unwrap();
        let o = dir.join("bad-out");
        let mut c = bin();
        c.arg("study")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&o);
        expect_user_error(&mut c, &[needle]);
        assert!(!o.exists(), "an invalid config wrote output");
    }
}

/// Regression: the committed run `top4-lr1e-4__naive__s2` lost exactly 12 of 240 target pairs
/// against the base probe (5.000 points). Its label under the 5-point rule ("lost ≥ 5
/// points") depended on the last binary digit of the difference (4.99999999999998 once JSON
/// was read back exactly); it must be a loss, as the rule states.
#[test]
fn a_loss_of_exactly_five_points_is_a_loss_under_the_five_point_rule() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reports/study/w2s/runs/top4-lr1e-4__naive__s2.json");
    let r: repdrift::study::run::RunResult =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let targets = vec!["chat".to_string(), "forum".to_string()];
    let n = 240.0;
    let pairs = |m: &std::collections::BTreeMap<String, f64>| -> f64 {
        targets.iter().map(|t| (m[t] * n / 2.0).round()).sum()
    };
    assert_eq!(pairs(&r.base_probe) - pairs(&r.accuracy), 12.0);
    assert!(r.pairs.is_empty(), "a run from before per-pair margins");
    assert_eq!(repdrift::study::analysis::outcome(&r, &targets), "head");
}

/// Regression: a run whose lost targets had different causes was reported only as "mixed", and
/// the study's line "0 through drift" read as if no target had been lost through drift — while
/// the mixed runs had lost reversed targets through drift *and* the head, and the final grid's
/// seed-1 naive student the held-out target through drift alone. A mixed run now names each
/// lost target's cause. Truth: the run's stored margins (the base probe on the held-out target
/// right on 121 of 200 pairs, the same probe on the student's states on 66, its head on 63),
/// and a constructed case whose verdicts follow from the definitions.
#[test]
fn a_mixed_run_names_the_cause_of_each_lost_target() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reports/study/final/runs/top8-lr3e-4__naive__s1.json");
    let mut r: repdrift::study::run::RunResult =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let right = |v: &[f64]| v.iter().filter(|m| **m > 0.0).count();
    let h = &r.pairs["heldout"];
    assert_eq!(
        (
            right(&h.base_probe),
            right(&h.probe_on_student),
            right(&h.head)
        ),
        (121, 66, 63)
    );
    let targets: Vec<String> = [
        "chat_wide",
        "chat_wide_reversed",
        "forum_wide",
        "forum_wide_reversed",
        "heldout",
    ]
    .map(String::from)
    .to_vec();
    let o = repdrift::study::pairs::run_outcome(&r, &targets).unwrap();
    assert_eq!(o.outcome, "mixed");
    assert!(o.detail().contains("heldout: drift"), "{}", o.detail());
    assert!(o.detail().contains("chat_wide: head"), "{}", o.detail());

    // Constructed: on chat_wide the states keep what the base knew and the head loses it all
    // (head); on forum_wide the states lose it and the head adds nothing (drift); the other
    // targets keep everything. The verdicts follow from exact McNemar tests on 400 pairs.
    let keep = |n: usize| vec![1.0; n];
    let lose = |n: usize| vec![-1.0; n];
    for t in &targets {
        let m = r.pairs.get_mut(t).unwrap();
        let n = m.base_probe.len();
        m.base_probe = keep(n);
        (m.probe_on_student, m.head) = match t.as_str() {
            "chat_wide" => (keep(n), lose(n)),
            "forum_wide" => (lose(n), lose(n)),
            _ => (keep(n), keep(n)),
        };
    }
    let o = repdrift::study::pairs::run_outcome(&r, &targets).unwrap();
    assert_eq!(
        (o.outcome.as_str(), o.detail().as_str()),
        ("mixed", "chat_wide: head; forum_wide: drift")
    );
    // One cause on every lost target: named plainly, no detail.
    let m = r.pairs.get_mut("forum_wide").unwrap();
    m.probe_on_student = keep(m.base_probe.len());
    let o = repdrift::study::pairs::run_outcome(&r, &targets).unwrap();
    assert_eq!((o.outcome.as_str(), o.detail().as_str()), ("head", ""));
}
