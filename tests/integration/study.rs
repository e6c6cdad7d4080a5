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
    assert_eq!(ctx.len(), 1);
    assert!(ctx[0].contains("8 runs"), "{}", ctx[0]);
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
