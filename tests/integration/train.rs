//! `repdrift train` on a tiny random Llama written here: gradients reach every trainable
//! variable, the loss falls, the anchor term starts at zero and grows, a very large λ keeps the
//! anchored layer at the base (linear CKA ≈ 1), runs are reproducible and resumable, and the
//! checkpoint is an HF reward-model directory that `capture` loads (rewards stored).
//! Truth: the definitions in src/train/mod.rs; CKA from repdrift::metrics (itself tested
//! against NumPy float64).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use repdrift::capture::{self, CaptureParams, NoProgress};
use repdrift::model::{HookPoint, HookedModel, TokenBatch};
use repdrift::train::{
    self, AnchorDistance, Method, NoTrainProgress, SaveAs, TrainJob, TrainParams, TrainSummary,
    Trainable, TrainableRm, WeakLabels,
};

use super::common::*;

/// 48 pairs: chosen replies contain `w5`, rejected ones `w6`; prompts vary.
fn write_pairs(dir: &Path) -> PathBuf {
    let mut lines = String::new();
    for i in 0..48 {
        let p = format!("w{} w{} w{}", 1 + i % 4, 10 + i % 7, 20 + i % 9);
        let tail = format!("w{}", 7 + i % 3);
        lines += &serde_json::json!({
            "prompt": p,
            "chosen": format!(" w5 {tail}"),
            "rejected": format!(" w6 {tail} w{}", 25 + i % 5),
        })
        .to_string();
        lines.push('\n');
    }
    let path = dir.join("pairs.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

struct Fixture {
    dir: PathBuf,
    model: PathBuf,
    data: repdrift::data::Dataset,
}

fn fixture(name: &str) -> Fixture {
    let dir = scratch(name);
    let model = dir.join("base");
    std::fs::create_dir_all(&model).unwrap();
    write_checkpoint(&model, true);
    let data = repdrift::data::read_jsonl(&write_pairs(&dir), None).unwrap();
    Fixture { dir, model, data }
}

fn params(method: Method) -> TrainParams {
    TrainParams {
        method,
        trainable: Trainable::Top(2),
        epochs: 3,
        lr: 3e-3,
        batch_size: 4,
        max_tokens: None,
        warmup: 0.0,
        checkpoint_every: 4,
        ..Default::default()
    }
}

/// Weak labels for the fixture's half 2: p = 0.8 everywhere (a teacher that is right but unsure).
fn labels_for(f: &Fixture, p: &TrainParams) -> WeakLabels {
    let sp = train::split(f.data.examples.len(), p.test_fraction, p.split_seed);
    WeakLabels {
        format: train::teacher::LABELS_FORMAT.into(),
        version: 1,
        teacher_model: "fixed".into(),
        teacher_sha256: String::new(),
        c: 1.0,
        data_sha256: f.data.sha256.clone(),
        split_seed: p.split_seed,
        test_fraction: p.test_fraction,
        n_examples: f.data.examples.len(),
        lines: sp.half2.iter().map(|&i| f.data.examples[i].line).collect(),
        p: vec![0.8; sp.half2.len()],
        accuracy: BTreeMap::new(),
    }
}

fn run(
    f: &Fixture,
    p: TrainParams,
    out: &str,
    stop_after: Option<usize>,
    resume: bool,
) -> Option<TrainSummary> {
    run_as(f, p, out, stop_after, resume, SaveAs::Delta)
}

fn run_as(
    f: &Fixture,
    p: TrainParams,
    out: &str,
    stop_after: Option<usize>,
    resume: bool,
    save: SaveAs,
) -> Option<TrainSummary> {
    let base = repdrift::model::load_llama(&f.model, &Device::Cpu).unwrap();
    let l = labels_for(f, &p);
    let job = TrainJob {
        labels: Some(&l),
        out: &f.dir.join(out),
        resume,
        force: !resume,
        stop_after,
        save,
    };
    let valid = p.check().unwrap();
    train::train(
        &base,
        &f.data,
        &[],
        &valid,
        &job,
        &Device::Cpu,
        &mut NoTrainProgress,
    )
    .unwrap()
}

fn log(dir: &Path) -> Vec<train::StepRecord> {
    std::fs::read_to_string(dir.join("loss_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The BT loss of rewards `(4,)` read as two pairs, with weak-label targets 0.9 and 0.7.
fn pair_loss(rewards: &Tensor) -> Tensor {
    let r = rewards.reshape((2, 2)).unwrap();
    let delta = (r.narrow(1, 0, 1).unwrap() - r.narrow(1, 1, 1).unwrap())
        .unwrap()
        .squeeze(1)
        .unwrap();
    let p = Tensor::new(&[0.9f32, 0.7], &Device::Cpu).unwrap();
    train::bt_loss(&delta, &p).unwrap()
}

/// The input of `rm`'s trainable part: the frozen base's states at layer `first` (the trainer
/// caches them so), or none when the embeddings train.
fn frozen_input(
    base: &repdrift::model::llama::Llama,
    rm: &TrainableRm,
    batch: &TokenBatch,
) -> Option<Tensor> {
    if rm.trains_embeddings() {
        return None;
    }
    let mut sink = capture::CollectSink::default();
    let req = repdrift::model::HookRequest::new(&[HookPoint::ResidPost], &[rm.first()], 3).unwrap();
    base.forward_hooked(batch, &req, &mut sink).unwrap();
    Some(sink.tensors.remove(0).2)
}

#[test]
fn every_trainable_variable_receives_a_nonzero_gradient() {
    let f = fixture("train-grads");
    let base = repdrift::model::load_llama(&f.model, &Device::Cpu).unwrap();
    let ids: Vec<Vec<u32>> = vec![
        vec![1, 5, 7, 9],
        vec![2, 6, 8],
        vec![3, 5, 5, 7, 1],
        vec![4, 6],
    ];
    let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let batch = TokenBatch::new(&refs, 0, &Device::Cpu).unwrap();
    for (k, all) in [(2usize, false), (3, true)] {
        let rm = TrainableRm::new(&base, k, all, 7).unwrap();
        let input = frozen_input(&base, &rm, &batch);
        let anchors = [3usize];
        let out = rm.forward(input.as_ref(), &batch, &anchors, true).unwrap();
        let loss = pair_loss(&out.rewards);
        let grads = loss.backward().unwrap();
        assert!(!rm.named_vars().is_empty());
        for (name, v) in rm.named_vars() {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("top:{k} all={all}: no gradient for {name}"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient norm² {norm}"
            );
        }
        let expected = if all { 1 + 9 * 3 + 2 } else { 9 * 2 + 2 };
        assert_eq!(rm.named_vars().len(), expected);
    }
}

/// The graph-free training pass (`TrainableRm::forward_fast`/`backward_fast`, blocks in
/// `repdrift::model::llama_grad`) against candle's autograd of the differentiable forward
/// (the truth: candle's primitive ops and their backward passes, and the fused ops tested
/// against them in `src/model/fused.rs`): the same rewards and pooled states, and the same
/// gradient for every trainable variable, under a loss that reads the rewards and pooled
/// states at the input layer, a middle layer and the final one. Padded sequences of four
/// lengths; grouped-query attention (4 heads, 2 key/value heads); top blocks from cached
/// states, and all blocks with the embeddings.
#[test]
fn the_graph_free_pass_equals_candles_autograd() {
    let f = fixture("train-fast-pass");
    let base = repdrift::model::load_llama(&f.model, &Device::Cpu).unwrap();
    let ids: Vec<Vec<u32>> = vec![
        vec![1, 5, 7, 9, 2, 11],
        vec![2, 6, 8],
        vec![3, 5, 5, 7, 1],
        vec![4, 6],
    ];
    let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let batch = TokenBatch::new(&refs, 0, &Device::Cpu).unwrap();
    let max_rel = |a: &Tensor, b: &Tensor| -> f32 {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    };
    for (k, all) in [(2usize, false), (3, true)] {
        let rm = TrainableRm::new(&base, k, all, 7).unwrap();
        assert!(rm.fast_path());
        let input = frozen_input(&base, &rm, &batch);
        let anchors = [rm.first(), rm.first() + 1, 3];
        let loss_of = |out: &train::RmOutput| {
            let mut loss = pair_loss(&out.rewards);
            for (i, s) in out.pooled.iter().enumerate() {
                let readout = Tensor::from_vec(
                    train::reward_model::seeded_normal(s.elem_count(), 1.0, 40 + i as u64),
                    s.dims(),
                    &Device::Cpu,
                )
                .unwrap();
                loss = (loss + (s * readout).unwrap().sum_all().unwrap()).unwrap();
            }
            loss
        };
        if let Some(x) = &input {
            // Cached states of another shape are refused by name, not read out of bounds.
            let short = x.narrow(1, 0, 2).unwrap();
            let err = rm
                .forward_fast(Some(&short), &batch, &anchors)
                .err()
                .expect("a wrong shape is refused")
                .to_string();
            assert!(
                err.contains("cached input states have shape [4, 2, 64]"),
                "{err}"
            );
        }
        let slow = rm.forward(input.as_ref(), &batch, &anchors, true).unwrap();
        let slow_grads = loss_of(&slow).backward().unwrap();
        let (fast, pass) = rm.forward_fast(input.as_ref(), &batch, &anchors).unwrap();
        let mut fast_grads = loss_of(&fast).backward().unwrap();
        rm.backward_fast(pass, &mut fast_grads).unwrap();
        let e = max_rel(&fast.rewards, &slow.rewards);
        assert!(e < 1e-5, "top:{k} all={all}: rewards differ by {e:.2e}");
        for (l, (a, b)) in anchors.iter().zip(fast.pooled.iter().zip(&slow.pooled)) {
            let e = max_rel(a, b);
            assert!(e < 1e-5, "top:{k} all={all}: layer {l} differs by {e:.2e}");
        }
        for (name, v) in rm.named_vars() {
            let (a, b) = (
                fast_grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: no gradient")),
                slow_grads.get(v.as_tensor()).unwrap(),
            );
            let e = max_rel(a, b);
            assert!(
                e < 1e-4,
                "top:{k} all={all}: gradient of {name} differs by {e:.2e}"
            );
        }
    }
}

#[test]
fn loss_falls_on_a_tiny_model_and_the_checkpoint_is_an_hf_reward_model() {
    let f = fixture("train-loss");
    let s = run(&f, params(Method::Gold), "gold", None, false).unwrap();
    let recs = log(&f.dir.join("gold"));
    assert_eq!(recs.len(), s.stats.steps);
    let first: f64 = recs[..3].iter().map(|r| r.bt).sum::<f64>() / 3.0;
    let last: f64 = recs[recs.len() - 3..].iter().map(|r| r.bt).sum::<f64>() / 3.0;
    assert!(last < 0.5 * first, "BT loss {first:.4} → {last:.4}");
    assert!(s.accuracy["source_test"] >= 0.9, "{:?}", s.accuracy);

    // The run wrote a delta (the 2 top blocks' 9 weights each, the final norm, the head);
    // `export` turns it into an HF LlamaForSequenceClassification checkpoint.
    let delta = f.dir.join("gold");
    let m = repdrift::model::delta::read_manifest(&delta).unwrap();
    assert_eq!(m.tensors.len(), 9 * 2 + 2);
    assert!(m.tensors.contains(&"score.weight".to_string()));
    assert!(!delta.join("model.safetensors").exists());
    let dir = f.dir.join("gold-hf");
    repdrift::model::export(&delta, &dir, &Device::Cpu).unwrap();
    assert!(dir.join("train_summary.json").exists());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(cfg["num_labels"], 1);
    let w = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let b =
        candle_core::safetensors::load(f.model.join("model.safetensors"), &Device::Cpu).unwrap();
    let same = |n: &str| {
        let d: f32 = (&w[n] - &b[n])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        d == 0.0
    };
    assert!(
        same("model.layers.0.mlp.up_proj.weight"),
        "frozen block changed"
    );
    assert!(
        !same("model.layers.2.mlp.up_proj.weight"),
        "trained block did not change"
    );
    assert!(!same("model.norm.weight"));
    assert_eq!(w["score.weight"].dims(), &[1, 64]);

    // capture loads the delta (base + changed tensors) and stores each example's reward =
    // score · final state of the last token.
    let model = repdrift::model::load(&delta, &Device::Cpu).unwrap();
    assert_eq!(model.info().source, "delta");
    assert!(model.has_reward_head());
    let store_dir = f.dir.join("store");
    let cp = CaptureParams {
        layers: capture::LayerSelection::List(vec![3]),
        max_tokens: None,
        ..Default::default()
    }
    .check()
    .unwrap();
    capture::capture(
        model.as_ref(),
        &f.data,
        &store_dir,
        &cp,
        &Device::Cpu,
        &mut NoProgress,
    )
    .unwrap();
    let store = capture::Store::open(&store_dir).unwrap();
    let rewards = store
        .rewards()
        .unwrap()
        .expect("a reward-model store has rewards");
    assert_eq!(rewards.dim(), (48, 2));
    let score: Vec<f32> = w["score.weight"].flatten_all().unwrap().to_vec1().unwrap();
    for (fi, field) in ["chosen", "rejected"].iter().enumerate() {
        let h = store.read(HookPoint::ResidPost, 3, field).unwrap();
        for row in 0..48 {
            let r: f64 = h
                .row(row)
                .iter()
                .zip(&score)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            assert!(
                (r - rewards[[row, fi]]).abs() < 1e-4 * (1.0 + r.abs()),
                "row {row} {field}: {r} vs {}",
                rewards[[row, fi]]
            );
        }
    }
    let acc = (0..48)
        .filter(|&i| rewards[[i, 0]] > rewards[[i, 1]])
        .count();
    assert!(acc >= 43, "the trained RM ranks only {acc}/48 pairs right");
}

#[test]
fn anchor_term_is_zero_at_step_zero_and_grows_as_the_student_moves() {
    let f = fixture("train-anchor-grows");
    let p = TrainParams {
        anchor_layers: vec![2, 3],
        anchor_weight: vec![0.01],
        ..params(Method::Anchor)
    };
    run(&f, p, "anchor", None, false).unwrap();
    let recs = log(&f.dir.join("anchor"));
    let a0 = recs[0].anchor.unwrap();
    let a_end = recs.last().unwrap().anchor.unwrap();
    assert!(a0 < 1e-9, "anchor term at step 0: {a0}");
    assert!(
        a_end > 1e-4 && a_end > 1000.0 * a0.max(1e-12),
        "anchor {a0} → {a_end}"
    );
}

/// Linear CKA between the base's and a student's last-token states at residual layer `layer`.
fn cka_to_base(f: &Fixture, student: &Path, layer: usize) -> f64 {
    let cp = CaptureParams {
        layers: capture::LayerSelection::List(vec![layer]),
        max_tokens: None,
        ..Default::default()
    }
    .check()
    .unwrap();
    let mut h = Vec::new();
    for (name, path) in [("b", f.model.as_path()), ("s", student)] {
        let m = repdrift::model::load(path, &Device::Cpu).unwrap();
        let out = f.dir.join(format!(
            "cka-{name}-{}",
            student.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&out);
        capture::capture(
            m.as_ref(),
            &f.data,
            &out,
            &cp,
            &Device::Cpu,
            &mut NoProgress,
        )
        .unwrap();
        let st = capture::Store::open(&out).unwrap();
        h.push(st.read(HookPoint::ResidPost, layer, "chosen").unwrap());
    }
    repdrift::metrics::linear_cka(h[0].view(), h[1].view())
        .unwrap()
        .value
        .expect("CKA defined")
}

#[test]
fn a_very_large_anchor_weight_keeps_the_anchored_layer_at_the_base() {
    let f = fixture("train-anchor-large");
    let free = TrainParams {
        anchor_layers: vec![2],
        anchor_weight: vec![0.0],
        epochs: 10,
        ..params(Method::Anchor)
    };
    let held = TrainParams {
        anchor_weight: vec![1e4],
        ..free.clone()
    };
    run(&f, free, "free", None, false).unwrap();
    run(&f, held, "held", None, false).unwrap();
    let c_free = cka_to_base(&f, &f.dir.join("free"), 2);
    let c_held = cka_to_base(&f, &f.dir.join("held"), 2);
    eprintln!("CKA at the anchored layer: λ = 0: {c_free}, λ = 1e4: {c_held}");
    assert!(
        c_held > 0.999,
        "λ = 1e4: CKA at the anchored layer {c_held}"
    );
    assert!(
        c_free < 0.99,
        "λ = 0 should drift: CKA {c_free} vs {c_held}"
    );
}

#[test]
fn same_seed_gives_the_same_weights_and_resume_continues_exactly() {
    // Regression (CI on an AMD EPYC host): tests running beside this one took and dropped
    // guards, so the runs' products ran on one OpenBLAS thread or two, which round differently
    // there; holding the count at one for every run makes them comparable bit for bit.
    let _blas = repdrift::model::linear::BlasThreads::single();
    let f = fixture("train-repro");
    let p = params(Method::Confidence);
    run(&f, p.clone(), "a", None, false).unwrap();
    run(&f, p.clone(), "b", None, false).unwrap();
    let bytes = |d: &str| std::fs::read(f.dir.join(d).join("delta.safetensors")).unwrap();
    assert_eq!(bytes("a"), bytes("b"), "same seed, different weights");
    // Stop after 5 steps (a checkpoint at 4 and one at the stop), then resume.
    assert!(run(&f, p.clone(), "c", Some(5), false).is_none());
    assert!(f.dir.join("c/checkpoint/state.json").exists());
    assert!(!f.dir.join("c/delta.safetensors").exists());
    run(&f, p.clone(), "c", None, true).unwrap();
    assert_eq!(
        bytes("a"),
        bytes("c"),
        "resumed run differs from the uninterrupted one"
    );
    assert!(
        !f.dir.join("c/checkpoint").exists(),
        "the checkpoint is removed when done"
    );
    // Another seed gives other weights (the test can fail).
    run(&f, TrainParams { seed: 1, ..p }, "d", None, false).unwrap();
    assert_ne!(bytes("a"), bytes("d"));
}

#[test]
fn train_cli_rejects_bad_requests_with_clear_errors() {
    let f = fixture("train-cli");
    let data = f.data.path.clone();
    let out = f.dir.join("out");
    let base = |extra: &[&str]| {
        let mut c = bin();
        c.args(["train", "--base"])
            .arg(&f.model)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out);
        c.args(extra);
        c
    };
    expect_user_error(
        &mut base(&["--method", "naive", "--trainable", "top:1"]),
        &["--teacher"],
    );
    expect_user_error(
        &mut base(&["--method", "anchor", "--teacher", "x"]),
        &["--anchor-layers"],
    );
    expect_user_error(
        &mut base(&[
            "--method",
            "gold",
            "--trainable",
            "top:1",
            "--anchor-layers",
            "2",
        ]),
        &["only --method anchor"],
    );
    let labels = f.dir.join("labels.json");
    let p = params(Method::Anchor);
    std::fs::write(&labels, serde_json::to_vec(&labels_for(&f, &p)).unwrap()).unwrap();
    let l = labels.to_str().unwrap();
    expect_user_error(
        &mut base(&[
            "--method",
            "anchor",
            "--trainable",
            "top:1",
            "--anchor-layers",
            "1",
            "--teacher-labels",
            l,
        ]),
        &[
            "layer 1 is out of range",
            "valid layers are 3..=3",
            "frozen",
        ],
    );
    expect_user_error(
        &mut base(&[
            "--method",
            "anchor",
            "--trainable",
            "top:1",
            "--anchor-layers",
            "3",
            "--teacher-labels",
            l,
            "--split-seed",
            "9",
        ]),
        &["weak labels were made for"],
    );
    expect_user_error(
        &mut base(&[
            "--method",
            "anchor",
            "--trainable",
            "top:1",
            "--anchor-layers",
            "1",
            "--teacher-labels",
            "nope.json",
        ]),
        &["nope.json"],
    );
    expect_user_error(
        &mut base(&["--method", "gold", "--trainable", "top:9"]),
        &["top:9", "3 blocks"],
    );
    expect_user_error(
        &mut base(&["--method", "fancy"]),
        &["unknown method `fancy`"],
    );
    let mut ok = base(&["--method", "gold", "--trainable", "top:1", "--epochs", "1"]);
    assert!(ok.status().unwrap().success());
    expect_user_error(
        &mut base(&["--method", "gold", "--trainable", "top:1"]),
        &["--force"],
    );
    expect_user_error(
        &mut base(&["--method", "gold", "--save", "half"]),
        &["`half`", "delta or full"],
    );
    // `export` writes the delta as a full HF directory, and will not overwrite one unasked.
    let hf = f.dir.join("out-hf");
    let export = || {
        let mut c = bin();
        c.args(["export", "--model"])
            .arg(&out)
            .arg("--out")
            .arg(&hf);
        c
    };
    assert!(export().status().unwrap().success());
    assert!(hf.join("model.safetensors").exists() && hf.join("config.json").exists());
    expect_user_error(&mut export(), &["out-hf exists", "--force"]);
    let _ = AnchorDistance::Cosine;
}

#[test]
fn a_delta_exports_to_the_same_bytes_as_a_full_save_and_refuses_a_wrong_base() {
    let f = fixture("train-delta");
    run_as(&f, params(Method::Gold), "full", None, false, SaveAs::Full).unwrap();
    run(&f, params(Method::Gold), "delta", None, false).unwrap();
    let delta = f.dir.join("delta");
    repdrift::model::export(&delta, &f.dir.join("exported"), &Device::Cpu).unwrap();
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert!(
        read(f.dir.join("full/model.safetensors"))
            == read(f.dir.join("exported/model.safetensors")),
        "export of base + delta differs from the full save of the same run"
    );
    let (d, full) = (
        read(delta.join("delta.safetensors")).len(),
        read(f.dir.join("full/model.safetensors")).len(),
    );
    assert!(d < full, "delta {d} bytes, full {full}");

    let copy = |name: &str| -> PathBuf {
        let to = f.dir.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&delta).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        to
    };
    let edit_manifest = |dir: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let p = dir.join("repdrift_delta.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&p, v.to_string()).unwrap();
    };
    let err = |dir: &Path| match repdrift::model::load(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    };

    // The base moved: found again through the relative path when the delta moved alongside.
    let moved = copy("moved");
    edit_manifest(&moved, &|v| v["base"] = "/nonexistent/base".into());
    assert!(repdrift::model::load(&moved, &Device::Cpu).is_ok());
    edit_manifest(&moved, &|v| v["base_relative"] = serde_json::Value::Null);
    let e = err(&moved);
    assert!(e.contains("is not at /nonexistent/base"), "{e}");

    // Another base (a different hash) is refused, naming both hashes.
    let other = copy("other-base");
    edit_manifest(&other, &|v| v["base_sha256"] = "00".repeat(32).into());
    let e = err(&other);
    assert!(
        e.contains(&"00".repeat(32)) && e.contains("has weights sha256"),
        "{e}"
    );

    // A delta changed after training is refused.
    let tampered = copy("tampered");
    let p = tampered.join("delta.safetensors");
    let mut b = read(p.clone());
    let last = b.len() - 1;
    b[last] ^= 0x40;
    std::fs::write(&p, b).unwrap();
    let e = err(&tampered);
    assert!(e.contains("changed after training wrote it"), "{e}");
}

/// Issue 32: training a bf16 base holds the frozen blocks in bf16 and f32 copies of the
/// trainable ones only. Truth: the same weights stored in f32 (each bf16 value widened,
/// exactly) — the trained tensors must be bit-identical.
#[test]
fn training_a_bf16_base_equals_training_its_f32_copy() {
    use candle_core::DType;
    let dir = scratch("train-bf16-base");
    let data = super::common::write_pairs(&dir, 16);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    write_checkpoint(&src, true);
    let stored =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let copy = |name: &str, widen: bool| {
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(src.join(f), out.join(f)).unwrap();
        }
        let ts: std::collections::HashMap<String, Tensor> = stored
            .iter()
            .map(|(k, t)| {
                let h = t.to_dtype(DType::BF16).unwrap();
                (
                    k.clone(),
                    if widen {
                        h.to_dtype(DType::F32).unwrap()
                    } else {
                        h
                    },
                )
            })
            .collect();
        candle_core::safetensors::save(&ts, out.join("model.safetensors")).unwrap();
        out
    };
    let (half, wide) = (copy("bf16", false), copy("f32", true));
    let held = repdrift::model::load_llama(&half, &Device::Cpu).unwrap();
    assert_eq!(held.blocks()[0].tensors()[1].dtype(), DType::BF16);
    let args = [
        "--trainable",
        "top:2",
        "--epochs",
        "1",
        "--lr",
        "3e-3",
        "--batch-size",
        "4",
    ];
    let mut trained = Vec::new();
    for base in [&half, &wide] {
        let out = base.with_extension("out");
        let o = gold_train(base, &data, &out, &args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut t: Vec<(String, Vec<f32>)> =
            candle_core::safetensors::load(out.join("delta.safetensors"), &Device::Cpu)
                .unwrap()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.to_dtype(DType::F32)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1()
                            .unwrap(),
                    )
                })
                .collect();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        trained.push(t);
    }
    assert!(!trained[0].is_empty());
    assert_eq!(
        trained[0], trained[1],
        "bf16-held and f32 bases trained differently"
    );
}
