//! `repdrift diagnose` end to end on a tiny random Llama base and students trained from it
//! here: a student trained toward the rejected replies (weak labels p = 0.2 on every pair,
//! two seeds, as deltas) and a gold student (exported as a full HF directory).
//! Truth: the verdict table is recomputed from the written per-pair file with the library's
//! tests (`stats::verdict`) and must match `diagnose.json` number for number; the flipped
//! student must be found to have lost what the base knew (its head prefers the rejected
//! reply); a second run with one more target captures only that target; a resumed run writes
//! the same bytes; bad inputs are refused by name before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use repdrift::diagnose::Diagnosis;
use repdrift::stats::verdict::{adjust, test_cell, Outcomes};
use repdrift::train::{
    self, Method, NoTrainProgress, SaveAs, TrainJob, TrainParams, Trainable, WeakLabels,
};

use super::common::*;

struct Setup {
    dir: PathBuf,
    base: PathBuf,
    source: PathBuf,
    targets: Vec<(String, PathBuf)>,
    gold: PathBuf,
    flipped: Vec<PathBuf>,
}

fn train_student(base: &Path, data: &Path, out: &Path, method: Method, p: f64, seed: u64) {
    let model = repdrift::model::load_llama(base, &Device::Cpu).unwrap();
    let ds = repdrift::data::read_jsonl(data, None).unwrap();
    let params = TrainParams {
        method,
        trainable: Trainable::Top(2),
        epochs: 3,
        lr: 3e-3,
        batch_size: 4,
        max_tokens: None,
        warmup: 0.0,
        checkpoint_every: 0,
        seed,
        ..Default::default()
    };
    let sp = train::split(ds.examples.len(), params.test_fraction, params.split_seed);
    let labels = WeakLabels {
        format: train::teacher::LABELS_FORMAT.into(),
        version: 1,
        teacher_model: "fixed".into(),
        teacher_sha256: String::new(),
        c: 1.0,
        data_sha256: ds.sha256.clone(),
        split_seed: params.split_seed,
        test_fraction: params.test_fraction,
        n_examples: ds.examples.len(),
        lines: sp.half2.iter().map(|&i| ds.examples[i].line).collect(),
        p: vec![p; sp.half2.len()],
        accuracy: BTreeMap::new(),
    };
    let job = TrainJob {
        labels: method.needs_teacher().then_some(&labels),
        out,
        resume: false,
        force: true,
        stop_after: None,
        save: SaveAs::Delta,
    };
    let valid = params.check().unwrap();
    train::train(
        &model,
        &ds,
        &[],
        &valid,
        &job,
        &Device::Cpu,
        &mut NoTrainProgress,
    )
    .unwrap()
    .unwrap();
}

fn setup(name: &str) -> Setup {
    let dir = scratch(name);
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    write_checkpoint(&base, true);
    let source = word_pairs(&dir, "source.jsonl", 60, 0);
    let targets = vec![
        ("near".to_string(), word_pairs(&dir, "near.jsonl", 60, 100)),
        ("far".to_string(), word_pairs(&dir, "far.jsonl", 40, 300)),
    ];
    let gold_delta = dir.join("gold-delta");
    train_student(&base, &source, &gold_delta, Method::Gold, 1.0, 0);
    let gold = dir.join("gold-hf");
    repdrift::model::export(&gold_delta, &gold, &Device::Cpu).unwrap();
    let flipped: Vec<PathBuf> = (0..2)
        .map(|s| {
            let d = dir.join(format!("flipped-{s}"));
            train_student(&base, &source, &d, Method::Naive, 0.2, s);
            d
        })
        .collect();
    Setup {
        dir,
        base,
        source,
        targets,
        gold,
        flipped,
    }
}

fn diagnose(
    s: &Setup,
    out: &Path,
    targets: &[(String, PathBuf)],
    extra: &[&str],
) -> std::process::Command {
    let mut c = bin();
    c.arg("diagnose")
        .arg("--base")
        .arg(&s.base)
        .arg("--student")
        .arg(format!("gold={}", s.gold.display()))
        .arg("--student")
        .arg(format!("flipped={}", s.flipped[0].display()))
        .arg("--student")
        .arg(format!("flipped={}", s.flipped[1].display()))
        .arg("--source")
        .arg(&s.source)
        .arg("--out")
        .arg(out)
        .args(["--permutations", "20"]);
    for (n, p) in targets {
        c.arg("--target").arg(format!("{n}={}", p.display()));
    }
    c.args(extra);
    c
}

fn ok(cmd: &mut std::process::Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_diagnosis(out: &Path) -> Diagnosis {
    serde_json::from_slice(&std::fs::read(out.join("diagnose.json")).unwrap()).unwrap()
}

/// (set, model) → per-pair (probe correct, head correct).
type PairFile = BTreeMap<(String, String), Vec<(bool, Option<bool>)>>;

/// `pairs.csv` read back.
fn read_pairs(out: &Path) -> PairFile {
    let text = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    let mut m = PairFile::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let probe: f64 = f[4].parse().unwrap();
        assert_eq!(f[5] == "1", probe > 0.0, "{line}");
        let head = (!f[6].is_empty()).then(|| f[6].parse::<f64>().unwrap() > 0.0);
        m.entry((f[0].to_string(), f[3].to_string()))
            .or_default()
            .push((probe > 0.0, head));
    }
    m
}

#[test]
fn diagnose_finds_the_flipped_students_loss_and_its_tests_recompute_from_the_pair_file() {
    let s = setup("diagnose-e2e");
    let out = s.dir.join("out");
    let stdout = ok(&mut diagnose(&s, &out, &s.targets, &[]));
    assert!(
        stdout.contains("captured 12 (model, data set) pairs, reused 0"),
        "{stdout}"
    );
    let d = read_diagnosis(&out);
    assert_eq!(d.verdict_layer, 3);
    assert_eq!(d.students.len(), 3);
    // The far target has 40 pairs: a warning with its detectable loss.
    assert!(
        d.warnings.iter().any(|w| w.contains("`far` has 40 pairs")),
        "{:?}",
        d.warnings
    );
    // Every student × set, the source included; the flipped student's two seeds in one cell.
    assert_eq!(d.cells.len(), 2 * 3);
    for c in d.cells.iter().filter(|c| c.student == "flipped") {
        assert_eq!(c.tests.seeds, 2);
        assert!(
            c.tests.verdict.lost(),
            "{} on {}: {:?}",
            c.student,
            c.set,
            c.tests
        );
        assert!(c.tests.total.hi < 0.0);
        // Two seeds: the drift is their mean, with no pair interval of one seed beside it.
        assert!(c.drift.is_some() && c.drift_interval.is_none());
    }
    // One seed: the drift comes with its bootstrap interval over pairs, a real one.
    for c in d.cells.iter().filter(|c| c.student != "flipped") {
        let (lo, hi) = c.drift_interval.unwrap();
        assert!(0.0 <= lo && lo < hi && hi <= 1.0, "{c:?}");
    }
    // Recompute every cell from pairs.csv with the library's tests.
    let per_pair = read_pairs(&out);
    let sets: Vec<&str> = d.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sets, ["source", "near", "far"]);
    for group in ["gold", "flipped"] {
        let ids: Vec<String> = d
            .students
            .iter()
            .filter(|m| m.group == group)
            .map(|m| m.id.clone())
            .collect();
        let mut cells = Vec::new();
        for set in &sets {
            let get = |m: &str| &per_pair[&(set.to_string(), m.to_string())];
            let o = Outcomes {
                base: get("base").iter().map(|p| p.0).collect(),
                probe_on_student: ids
                    .iter()
                    .map(|i| get(i).iter().map(|p| p.0).collect())
                    .collect(),
                head: ids
                    .iter()
                    .map(|i| get(i).iter().map(|p| p.1.unwrap()).collect())
                    .collect(),
            };
            cells.push(test_cell(
                &o,
                &d.tests,
                if *set == "source" { 1 } else { 2 },
            ));
        }
        adjust(&mut cells[1..], d.tests.alpha);
        for (set, want) in sets.iter().zip(&cells) {
            let got = d
                .cells
                .iter()
                .find(|c| c.student == group && c.set == *set)
                .unwrap();
            // Compared as written and read back: the file's numbers went through JSON.
            let want: repdrift::stats::verdict::CellTests =
                serde_json::from_slice(&serde_json::to_vec(want).unwrap()).unwrap();
            assert_eq!(got.tests, want, "{group} on {set}");
        }
    }
    // The report opens with the verdict table.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let verdict = md
        .find("## Did each student keep what the base knew?")
        .unwrap();
    let drift = md.find("## Where did each student drift?").unwrap();
    assert!(verdict < drift);
    assert!(md.contains("| flipped (2 seeds) | near |"), "{md}");
    assert!(out.join("index.html").exists() && out.join("drift/far/metrics.json").exists());
    assert!(d.advice.len() == 2 && !d.advice[0].proposal.layers.is_empty());

    // One more target: only it is captured (4 models), the 12 earlier captures are reused.
    let mut more = s.targets.clone();
    more.push(("extra".into(), word_pairs(&s.dir, "extra.jsonl", 50, 500)));
    let stdout = ok(&mut diagnose(&s, &out, &more, &["--resume"]));
    assert!(
        stdout.contains("captured 4 (model, data set) pairs, reused 12"),
        "{stdout}"
    );
    // Only the new target's drift is computed: the others come from the drift cache.
    assert!(
        stdout.contains("drift computed for 1 data set(s), reused for 3"),
        "{stdout}"
    );
    let first = std::fs::read(out.join("diagnose.json")).unwrap();

    // A run cut short (its report gone, one capture gone) and resumed writes the same bytes.
    std::fs::remove_file(out.join("diagnose.json")).unwrap();
    std::fs::remove_file(out.join("report.md")).unwrap();
    let d = read_diagnosis_from(&first);
    let gone = d
        .stores
        .iter()
        .find(|r| r.model == "flipped.2" && r.set == "near")
        .unwrap();
    std::fs::remove_dir_all(&gone.path).unwrap();
    let stdout = ok(&mut diagnose(&s, &out, &more, &["--resume"]));
    assert!(
        stdout.contains("captured 1 (model, data set) pairs, reused 15"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(out.join("diagnose.json")).unwrap(), first);

    // Drift read from the cache is the drift computed: with the cache emptied, the same bytes.
    std::fs::remove_dir_all(out.join("cache/drift")).unwrap();
    let stdout = ok(&mut diagnose(&s, &out, &more, &["--resume"]));
    assert!(
        stdout.contains("drift computed for 4 data set(s), reused for 0"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(out.join("diagnose.json")).unwrap(), first);

    // Without --resume or --force an existing diagnosis is refused, and left as it is.
    expect_user_error(
        &mut diagnose(&s, &out, &more, &[]),
        &["already holds a diagnosis", "--resume"],
    );
    assert_eq!(std::fs::read(out.join("diagnose.json")).unwrap(), first);
}

fn read_diagnosis_from(bytes: &[u8]) -> Diagnosis {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn diagnose_refuses_bad_input_by_name_before_any_capture() {
    let dir = scratch("diagnose-bad");
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    write_checkpoint(&base, true);
    let source = word_pairs(&dir, "source.jsonl", 30, 0);
    let target = word_pairs(&dir, "t.jsonl", 30, 50);
    let run = |student: &Path, source: &Path, out: &Path| {
        let mut c = bin();
        c.arg("diagnose")
            .arg("--base")
            .arg(&base)
            .arg("--student")
            .arg(format!("s={}", student.display()))
            .arg("--source")
            .arg(source)
            .arg("--target")
            .arg(format!("t={}", target.display()))
            .arg("--out")
            .arg(out);
        c
    };
    // A student of another architecture (MiniLM: BERT, 6 layers, width 384).
    let out = dir.join("out-arch");
    expect_user_error(
        &mut run(&minilm_path(), &source, &out),
        &["student `s` has architecture bert", "llama"],
    );
    assert!(!out.join("cache").exists() && !out.join("diagnose.json").exists());
    // A student without a reward head: the base itself.
    let out = dir.join("out-head");
    expect_user_error(&mut run(&base, &source, &out), &["no reward head"]);
    assert!(!out.join("cache").exists());
    // A pair whose chosen and rejected are identical: file and line.
    let bad = dir.join("bad.jsonl");
    let mut text = std::fs::read_to_string(&source).unwrap();
    text.push_str(
        &serde_json::json!({"prompt": "w1", "chosen": " w5", "rejected": " w5"}).to_string(),
    );
    text.push('\n');
    std::fs::write(&bad, text).unwrap();
    let out = dir.join("out-pair");
    expect_user_error(&mut run(&base, &bad, &out), &["bad.jsonl:31", "identical"]);
    assert!(!out.join("cache").exists());
    // An output directory another process writes.
    let out = dir.join("out-locked");
    let _lock = repdrift::io::lock_dir(&out).unwrap();
    expect_user_error(&mut run(&base, &source, &out), &["out-locked"]);
}
