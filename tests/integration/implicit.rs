//! `implicit-reward`: response log-probabilities equal HF transformers' on the five decoder
//! architectures (tiny random checkpoints) and on SmolLM2-135M (GGUF), batched and padded;
//! models without an LM head are refused by name. Truth:
//! `tests/reference/logprob_reference.json`, written by
//! `tests/reference/make_logprob_reference.py` (transformers 5.24, torch 2.15; one sequence at
//! a time, no padding, log-softmax in float64 of HF's float32 logits).

use std::path::Path;

use candle_core::Device;
use repdrift::bias::implicit::{implicit_reward, ImplicitReport};
use repdrift::bias::ScoreParams;
use repdrift::capture::NoProgress;

use super::common::*;

fn reference() -> serde_json::Value {
    let text =
        std::fs::read_to_string(root().join("tests/reference/logprob_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn write_pairs_jsonl(dir: &Path, pairs: &serde_json::Value) -> std::path::PathBuf {
    let p = dir.join("pairs.jsonl");
    let lines: Vec<String> = pairs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn run(model: &Path, reference: Option<&Path>, data: &Path, batch: usize) -> ImplicitReport {
    let m = load(model);
    let r = reference.map(load);
    let ds = repdrift::data::read_jsonl(data, None).unwrap();
    let params = ScoreParams {
        max_tokens: Some(512),
        batch_size: batch,
    }
    .check()
    .unwrap();
    implicit_reward(
        m.as_ref(),
        r.as_deref(),
        &ds,
        &params,
        &Device::Cpu,
        &mut NoProgress,
    )
    .unwrap()
}

/// Every case of the reference: same scored tokens, summed log-probability within
/// 1e-4 + 2e-6·|sum| of HF's (f32 forward passes with different kernels and padding; seen at
/// most: 1.8e-5 on the tiny models, 6.7e-5 on a 42-token SmolLM2 reply of sum −122.5). A case
/// with `config_override` runs a copy of the checkpoint whose `config.json` has those fields
/// replaced (Gemma 2 with final soft-capping at 2, where capping changes every log-prob).
#[test]
fn logprobs_equal_hf_transformers_on_six_models() {
    let r = reference();
    for (c, case) in r["cases"].as_array().unwrap().iter().enumerate() {
        let mut model = root().join(case["model"].as_str().unwrap());
        if model.extension().is_some_and(|e| e == "gguf") {
            smollm2_path();
        }
        let dir = scratch(&format!("implicit-hf-{c}"));
        if let Some(o) = case.get("config_override") {
            let copy = dir.join("model");
            copy_tree(&model, &copy);
            let cfg_path = copy.join("config.json");
            let mut cfg: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
            for (k, v) in o.as_object().unwrap() {
                cfg[k] = v.clone();
            }
            std::fs::write(&cfg_path, cfg.to_string()).unwrap();
            model = copy;
        }
        let data = write_pairs_jsonl(&dir, &case["pairs"]);
        // Batches of two: sequences of different lengths share a padded batch.
        let got = run(&model, None, &data, 2);
        let want = case["sequences"].as_array().unwrap();
        let seqs: Vec<_> = got.examples.iter().flat_map(|e| &e.sequences).collect();
        assert_eq!(seqs.len(), want.len());
        for (g, w) in seqs.iter().zip(want) {
            assert_eq!(g.field, w["field"].as_str().unwrap());
            assert_eq!(g.tokens as u64, w["tokens"].as_u64().unwrap(), "{model:?}");
            let ws = w["logp_sum"].as_f64().unwrap();
            let tol = 1e-4 + 2e-6 * ws.abs();
            assert!(
                (g.logp_sum - ws).abs() <= tol,
                "{}: line {} {}: ours {} HF {} (tol {tol:.1e})",
                model.display(),
                w["line"],
                g.field,
                g.logp_sum,
                ws
            );
            assert!((g.logp_mean - ws / g.tokens as f64).abs() <= tol);
            assert_eq!(g.reward_sum, g.logp_sum, "no reference: reward = log-prob");
        }
        let s = got.summary.unwrap();
        assert_eq!(s.pairs, case["pairs"].as_array().unwrap().len());
    }
}

/// Property: a model against itself has reward 0 on every sequence, so every pair is a tie
/// (accuracy ½); against another model the reward is the difference of the two log-probs.
/// The two passes hold OpenBLAS at one thread: tests running beside this one change the
/// process's thread count, and on some hosts (AMD EPYC, OpenBLAS's Zen kernels) a product
/// rounds differently on one thread and on two.
#[test]
fn reward_is_the_logprob_difference_against_the_reference() {
    let _blas = repdrift::model::linear::BlasThreads::single();
    let r = reference();
    let case = &r["cases"][0];
    let dir = scratch("implicit-self");
    let data = write_pairs_jsonl(&dir, &case["pairs"]);
    let llama = root().join("tests/reference/tiny/llama");
    let qwen3 = root().join("tests/reference/tiny/qwen3");
    let same = run(&llama, Some(&llama), &data, 8);
    let s = same.summary.unwrap();
    assert_eq!((s.sum.accuracy, s.sum.ties), (0.5, s.pairs));
    let other = run(&llama, Some(&qwen3), &data, 8);
    for q in other.examples.iter().flat_map(|e| &e.sequences) {
        assert_eq!(q.reward_sum, q.logp_sum - q.ref_logp_sum.unwrap());
        assert_eq!(q.ref_tokens, Some(q.tokens), "same word-level tokenizer");
    }
}

/// The command writes its JSON and CSV; an encoder (no LM head) and a headless checkpoint
/// (no `lm_head.weight`, embeddings not tied) are refused with exit 2 and nothing written.
#[test]
fn cli_writes_outputs_and_refuses_models_without_an_lm_head() {
    let r = reference();
    let dir = scratch("implicit-cli");
    let data = write_pairs_jsonl(&dir, &r["cases"][0]["pairs"]);
    let out = dir.join("out");
    let st = bin()
        .args(["implicit-reward", "--model"])
        .arg(root().join("tests/reference/tiny/llama"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let csv = std::fs::read_to_string(out.join("implicit_reward.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("implicit_reward.json")).unwrap()).unwrap();
    assert_eq!(json["summary"]["pairs"], 3);
    for (model, needle) in [
        (minilm_path(), "has no language-model head"),
        (
            root().join("tests/reference/tiny/headless/llama"),
            "no lm_head.weight and tie_word_embeddings is false",
        ),
    ] {
        let bad = dir.join("bad");
        expect_user_error(
            bin()
                .args(["implicit-reward", "--model"])
                .arg(&model)
                .arg("--data")
                .arg(&data)
                .arg("--out")
                .arg(&bad),
            &[needle],
        );
        assert!(!bad.exists(), "nothing written for {}", model.display());
    }
}
