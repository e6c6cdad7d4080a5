//! Qwen2, Qwen3, Mistral, Gemma 2 and Llama-3-RoPE checkpoints in HF layout (tiny, random; Qwen2 in bf16 shards with
//! `model.safetensors.index.json`, Mistral in f16 with a sliding window shorter than the
//! sequences, Qwen3 with q/k norms and head_dim ≠ hidden/heads) give HF transformers' hidden
//! states at every layer and real token. Truth: tests/reference/tiny/{arch}.json, written by
//! tests/reference/make_arch_reference.py (transformers 5.23, torch 2.15, float32 from the stored
//! weights, one right-padded batch with an attention mask). Also: batch and padding invariance.

use candle_core::Device;
use repdrift::capture::CollectSink;
use repdrift::model::{HookPoint, HookRequest, HookedModel, TokenBatch};

use super::common::*;

/// Every hidden state (layer, row, token, dim) for `seqs` run as one padded batch.
fn hidden(model: &dyn HookedModel, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<Vec<f32>>>> {
    let n = model.info().n_layers;
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::new(&refs, model.pad_id(), &Device::Cpu).unwrap();
    let mut sink = CollectSink::default();
    let req = HookRequest::all_layers(&[HookPoint::ResidPost], n);
    model.forward_hooked(&batch, &req, &mut sink).unwrap();
    sink.tensors
        .iter()
        .map(|(_, _, t)| {
            let v: Vec<Vec<Vec<f32>>> = t
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .to_vec3()
                .unwrap();
            v.into_iter()
                .zip(seqs)
                .map(|(rows, s)| rows.into_iter().take(s.len()).collect())
                .collect()
        })
        .collect()
}

fn check(arch: &str) {
    check_dir(arch, &root().join("tests/reference/tiny").join(arch));
}

/// The checkpoint in `dir` gives `tests/reference/tiny/{arch}.json`'s hidden states.
fn check_dir(arch: &str, dir: &std::path::Path) {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join(format!("tests/reference/tiny/{arch}.json"))).unwrap(),
    )
    .unwrap();
    let seqs: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();
    let want: Vec<Vec<Vec<Vec<f64>>>> =
        serde_json::from_value(reference["hidden_states"].clone()).unwrap();
    let model = load(dir);
    assert_eq!(model.info().architecture, arch);
    let batched = hidden(model.as_ref(), &seqs);
    assert_eq!(batched.len(), want.len(), "{arch}: number of hidden states");
    let mut worst = 0f64;
    for (l, (got_l, want_l)) in batched.iter().zip(&want).enumerate() {
        for (b, (g, w)) in got_l.iter().zip(want_l).enumerate() {
            for (t, (gv, wv)) in g.iter().zip(w).enumerate() {
                let wf: Vec<f32> = wv.iter().map(|&x| x as f32).collect();
                let e = rel_err(gv, &wf);
                assert!(
                    e < 1e-4,
                    "{arch}: layer {l} row {b} token {t}: relative error {e}"
                );
                worst = worst.max(e);
            }
        }
    }
    // One sequence at a time gives the same states (padding invariance).
    for (b, s) in seqs.iter().enumerate() {
        let single = hidden(model.as_ref(), std::slice::from_ref(s));
        for (l, layer) in single.iter().enumerate() {
            for (t, v) in layer[0].iter().enumerate() {
                let e = rel_err(v, &batched[l][b][t]);
                assert!(
                    e < 1e-5,
                    "{arch}: row {b} alone differs at layer {l} token {t}: {e}"
                );
            }
        }
    }
    eprintln!("{arch}: worst relative error vs HF {worst:.2e}");
}

#[test]
fn qwen2_bf16_shards_equal_hf() {
    check("qwen2");
}

#[test]
fn qwen3_qk_norm_equals_hf() {
    check("qwen3");
}

#[test]
fn mistral_sliding_window_equals_hf() {
    check("mistral");
}

#[test]
fn a_missing_shard_is_named() {
    let src = root().join("tests/reference/tiny/qwen2");
    let dir = scratch("archs-missing-shard");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        if !f.file_name().unwrap().to_string_lossy().contains("00002") {
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    let err = match repdrift::model::load(&dir, &Device::Cpu) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded with a shard missing"),
    };
    assert!(
        err.contains("model-00002-of-00003.safetensors") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn gemma2_softcap_and_sandwich_norms_equal_hf() {
    check("gemma2");
}

#[test]
fn llama3_rope_scaling_equals_hf() {
    check("llama");
}

/// Regression (issue 19): checkpoints saved from the bare model class (`AutoModel`
/// `.save_pretrained`: `embed_tokens.weight`, `layers.0.…`, no `model.` prefix, no head) failed
/// with "missing weight `model.embed_tokens.weight`". Fixtures written by HF transformers
/// (tests/reference/make_headless_fixtures.py), one file and sharded, for every architecture;
/// the weights are the prefixed fixtures', so the truth is the same HF reference.
#[test]
fn headless_checkpoints_of_every_architecture_equal_hf() {
    for arch in ["llama", "mistral", "qwen2", "qwen3", "gemma2"] {
        for name in [arch.to_string(), format!("{arch}-sharded")] {
            let dir = root().join("tests/reference/tiny/headless").join(&name);
            assert!(
                std::fs::read_dir(&dir)
                    .unwrap()
                    .any(|f| f.unwrap().file_name() == "config.json"),
                "{}",
                dir.display()
            );
            check_dir(arch, &dir);
        }
    }
}

#[test]
fn native_bf16_compute_stays_close_to_hf_float32() {
    // What `--dtype bf16` (the default on GPUs for a bf16 checkpoint) computes, run on CPU:
    // every hidden state within bf16's precision of HF's float32 reference.
    for arch in ["qwen2", "gemma2"] {
        let dir = root().join("tests/reference/tiny").join(arch);
        let reference: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(format!("tests/reference/tiny/{arch}.json")))
                .unwrap(),
        )
        .unwrap();
        let seqs: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();
        let want: Vec<Vec<Vec<Vec<f64>>>> =
            serde_json::from_value(reference["hidden_states"].clone()).unwrap();
        let model =
            repdrift::model::load_with(&dir, &Device::Cpu, candle_core::DType::BF16).unwrap();
        let got = hidden(model.as_ref(), &seqs);
        let mut worst = 0f64;
        for (g_l, w_l) in got.iter().zip(&want) {
            for (g, w) in g_l.iter().zip(w_l) {
                for (gv, wv) in g.iter().zip(w) {
                    let wf: Vec<f32> = wv.iter().map(|&x| x as f32).collect();
                    worst = worst.max(rel_err(gv, &wf));
                }
            }
        }
        eprintln!("{arch} in bf16: worst relative error vs HF float32 {worst:.2e}");
        // bf16 keeps ~2–3 significant digits; a wrong mask, cast or norm would be O(1) off.
        assert!(worst < 1e-1 && worst > 1e-5, "{arch}: bf16 error {worst}");
    }
}

/// Issue 32: a bf16 checkpoint is held in bf16 — its stored size — and each block's weights
/// are converted to f32 while the block runs. Truth: the same weights stored in f32 (each bf16
/// value widened, which is exact) through the f32 path the HF-parity tests hold; the hidden
/// states must be bit-identical, on a plain Llama reward model (the graph-free pass) and on
/// the Llama-3-RoPE fixture.
#[test]
fn a_bf16_checkpoint_is_held_in_bf16_and_computes_as_its_f32_copy() {
    use candle_core::DType;
    for (name, src) in [
        ("rm", root().join("tests/reference/hf_rm_tiny")),
        ("llama3", root().join("tests/reference/tiny/llama")),
    ] {
        let stored =
            candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
        let write = |dtype_name: &str, widen: bool| {
            let dir = scratch(&format!("bf16-held-{name}-{dtype_name}"));
            for f in ["config.json", "tokenizer.json"] {
                std::fs::copy(src.join(f), dir.join(f)).unwrap();
            }
            let ts: std::collections::HashMap<String, candle_core::Tensor> = stored
                .iter()
                .map(|(k, t)| {
                    let h = t.to_dtype(DType::BF16).unwrap();
                    let t = if widen {
                        h.to_dtype(DType::F32).unwrap()
                    } else {
                        h
                    };
                    (k.clone(), t)
                })
                .collect();
            candle_core::safetensors::save(&ts, dir.join("model.safetensors")).unwrap();
            dir
        };
        let (half_dir, wide_dir) = (write("bf16", false), write("f32", true));
        let held = repdrift::model::load_llama(&half_dir, &Device::Cpu).unwrap();
        assert_eq!(held.embed_tokens().dtype(), DType::BF16, "{name}");
        for t in held.blocks()[0].tensors() {
            // Norm weights are small and kept in f32; every product's weight stays bf16.
            assert!(
                t.dims().len() == 1 || t.dtype() == DType::BF16,
                "{name}: {:?}",
                t.dtype()
            );
        }
        let seqs: Vec<Vec<u32>> = vec![vec![5, 9, 13, 2, 7, 1], vec![3, 4, 8]];
        let a = hidden(load(&half_dir).as_ref(), &seqs);
        let b = hidden(load(&wide_dir).as_ref(), &seqs);
        assert_eq!(a, b, "{name}: bf16-held and f32 copies differ");
    }
}
