//! PEFT LoRA reward-model adapters: read over their base, merged at load, they give PEFT's
//! rewards and hidden states (truth: tests/reference/lora_reference.json, written with the
//! adapters in tests/reference/lora/ by tests/reference/make_lora_reference.py — PEFT 0.21.2,
//! transformers 5.25, torch 2.15 — one right-padded batch; r = 4 on all seven projections,
//! rsLoRA, and rank_pattern / alpha_pattern). What repdrift cannot read exactly is refused by
//! name, exit 2, nothing written; `diagnose` takes an adapter as a student.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use repdrift::capture::ActivationSink;
use repdrift::model::{HookPoint, HookRequest, TokenBatch};

use super::common::*;

fn lora_dir() -> PathBuf {
    root().join("tests/reference/lora")
}

#[derive(Default)]
struct Collect {
    /// layer → (batch, seq, hidden) as rows of f32.
    layers: Vec<(usize, Tensor)>,
    rewards: Vec<f32>,
}

impl ActivationSink for Collect {
    fn layer(&mut self, _: HookPoint, layer: usize, t: &Tensor) -> repdrift::Result<()> {
        self.layers.push((layer, t.clone()));
        Ok(())
    }
    fn reward(&mut self, r: &[f32]) -> repdrift::Result<()> {
        self.rewards.extend_from_slice(r);
        Ok(())
    }
}

fn reference() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/reference/lora_reference.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn lora_adapters_match_peft_rewards_and_hidden_states() {
    let r = reference();
    let seqs: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    for name in ["r4", "rslora", "pattern"] {
        let model = load(&lora_dir().join(name));
        assert!(model.has_reward_head(), "{name}");
        assert_eq!(model.info().source, "lora");
        let n = model.info().n_layers;
        let layers: Vec<usize> = (0..=n).collect();
        let req = HookRequest::new(&[HookPoint::ResidPost], &layers, n)
            .unwrap()
            .with_reward(n);
        let batch = TokenBatch::new(&refs, model.pad_id(), &Device::Cpu).unwrap();
        let mut got = Collect::default();
        model.forward_hooked(&batch, &req, &mut got).unwrap();
        let want: Vec<f64> =
            serde_json::from_value(r["adapters"][name]["rewards"].clone()).unwrap();
        let g: Vec<f32> = got.rewards.clone();
        let w: Vec<f32> = want.iter().map(|v| *v as f32).collect();
        let e = rel_err(&g, &w);
        assert!(
            e < 1e-4,
            "{name}: rewards {g:?} vs PEFT {want:?} (rel {e:.2e})"
        );
        let states: Vec<Vec<Vec<f64>>> =
            serde_json::from_value(r["adapters"][name]["hidden_states"].clone()).unwrap();
        assert_eq!(states.len(), n + 1);
        for (layer, t) in &got.layers {
            for (b, s) in seqs.iter().enumerate() {
                let row: Vec<f32> = t
                    .get(b)
                    .unwrap()
                    .get(s.len() - 1)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let w: Vec<f32> = states[*layer][b].iter().map(|v| *v as f32).collect();
                let e = rel_err(&row, &w);
                assert!(e < 1e-4, "{name}: layer {layer}, sequence {b}: rel {e:.2e}");
            }
        }
    }
    // The merge matters: the adapters' rewards differ from one another by far more than 1e-4.
    let a: Vec<f64> = serde_json::from_value(r["adapters"]["r4"]["rewards"].clone()).unwrap();
    let b: Vec<f64> = serde_json::from_value(r["adapters"]["rslora"]["rewards"].clone()).unwrap();
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 0.1));
}

/// A copy of adapter `name` in a scratch directory, its config edited by `edit` and its
/// tensors by `tensors`; the base beside it as `../base`.
fn altered(
    test: &str,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
    tensors: impl FnOnce(&mut HashMap<String, Tensor>),
) -> PathBuf {
    let dir = scratch(test);
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    for f in std::fs::read_dir(lora_dir().join("base")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, base.join(f.file_name().unwrap())).unwrap();
    }
    let src = lora_dir().join(name);
    let out = dir.join("adapter");
    std::fs::create_dir_all(&out).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("adapter_config.json")).unwrap())
            .unwrap();
    edit(&mut cfg);
    std::fs::write(
        out.join("adapter_config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let mut w = candle_core::safetensors::load(src.join("adapter_model.safetensors"), &Device::Cpu)
        .unwrap();
    tensors(&mut w);
    candle_core::safetensors::save(&w, out.join("adapter_model.safetensors")).unwrap();
    out
}

fn capture(model: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let data = out.parent().unwrap().join("pairs.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"w3 w7\", \"chosen\": \" w5 w8\", \"rejected\": \" w6 w9\"}\n",
    )
    .unwrap();
    let mut c = bin();
    c.arg("capture")
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

#[test]
fn adapters_repdrift_cannot_read_exactly_are_refused_by_name() {
    let keep = |_: &mut serde_json::Value| {};
    let same = |_: &mut HashMap<String, Tensor>| {};
    let cases: Vec<(&str, PathBuf, &[&str])> = vec![
        (
            "no score head",
            altered("lora-no-score", "r4", keep, |w| {
                w.remove("base_model.model.score.weight");
            }),
            &["saved without its score head", "rewards would be random"],
        ),
        (
            "DoRA",
            altered("lora-dora", "r4", |c| c["use_dora"] = true.into(), same),
            &["DoRA"],
        ),
        (
            "IA3",
            altered("lora-ia3", "r4", |c| c["peft_type"] = "IA3".into(), same),
            &["PEFT type `IA3`"],
        ),
        (
            "regex pattern",
            altered(
                "lora-regex",
                "r4",
                |c| c["rank_pattern"] = serde_json::json!({"q_.*": 2}),
                same,
            ),
            &["regular expression"],
        ),
        (
            "embedding LoRA",
            altered("lora-embed", "r4", keep, |w| {
                let t = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
                w.insert(
                    "base_model.model.model.embed_tokens.lora_embedding_A".into(),
                    t,
                );
            }),
            &["embeddings"],
        ),
        (
            "wrong shape",
            altered("lora-shape", "r4", keep, |w| {
                let k = "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight";
                let t = w[k].t().unwrap().contiguous().unwrap();
                w.insert(k.into(), t);
            }),
            &["up_proj`: lora_B", "cannot update"],
        ),
        (
            "base not local",
            altered(
                "lora-hub",
                "r4",
                |c| c["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B".into(),
                same,
            ),
            &["meta-llama/Llama-3.1-8B", "--adapter-base"],
        ),
    ];
    for (what, adapter, needles) in cases {
        let out = adapter.parent().unwrap().join("store");
        expect_user_error(&mut capture(&adapter, &out, &[]), needles);
        assert!(
            !out.join("manifest.json").exists(),
            "{what}: a store was written"
        );
    }
    // The hub-named base given with --adapter-base reads, and the store holds rewards.
    let adapter = lora_dir().join("r4");
    let hub = altered(
        "lora-hub-given",
        "r4",
        |c| c["base_model_name_or_path"] = "org/m".into(),
        |_| {},
    );
    let out = hub.parent().unwrap().join("store");
    let o = capture(
        &hub,
        &out,
        &["--adapter-base", lora_dir().join("base").to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = repdrift::capture::Store::open(&out).unwrap();
    assert_eq!(s.manifest().model.source, "lora");
    assert!(s.rewards().unwrap().is_some());
    assert!(adapter.exists());
}

#[test]
fn diagnose_takes_a_lora_adapter_as_a_student() {
    let dir = scratch("lora-diagnose");
    let source = word_pairs(&dir, "source.jsonl", 40, 0);
    let target = word_pairs(&dir, "target.jsonl", 40, 200);
    let out = dir.join("out");
    let o = bin()
        .arg("diagnose")
        .arg("--base")
        .arg(lora_dir().join("base"))
        .arg("--student")
        .arg(format!("lora={}", lora_dir().join("r4").display()))
        .arg("--student")
        .arg(format!("rslora={}", lora_dir().join("rslora").display()))
        .arg("--source")
        .arg(&source)
        .arg("--target")
        .arg(format!("t={}", target.display()))
        .args(["--permutations", "10", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: repdrift::diagnose::Diagnosis =
        serde_json::from_slice(&std::fs::read(out.join("diagnose.json")).unwrap()).unwrap();
    assert_eq!(d.students.len(), 2);
    assert!(d.students.iter().all(|s| s.reward_head));
    assert_eq!(d.cells.iter().filter(|c| c.role == "target").count(), 2);
    assert!(std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("| lora | t |"));
}
