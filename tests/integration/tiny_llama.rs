//! A tiny random Llama checkpoint, written here in HF layout: our forward's final-layer logits
//! equal candle-transformers' `llama` for the same weights (truth: candle-transformers 0.11.1).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use repdrift::capture::CollectSink;
use repdrift::model::llama::Llama;
use repdrift::model::{HookPoint, HookRequest, HookedModel, TokenBatch};

use super::common::*;

fn candle_logits(dir: &Path, cfg: &serde_json::Value, ids: &[u32]) -> Vec<f32> {
    use candle_transformers::models::llama as cl;
    let mut c = cfg.clone();
    // candle-transformers reads the top-level key only (the trap transformers 5.x sets).
    c["rope_theta"] = serde_json::json!(5000.0);
    let lc: cl::LlamaConfig = serde_json::from_value(c).unwrap();
    let config = lc.into_config(false);
    let dev = Device::Cpu;
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &dev)
    }
    .unwrap();
    let model = cl::Llama::load(vb, &config).unwrap();
    let mut cache = cl::Cache::new(false, DType::F32, &config, &dev).unwrap();
    let x = Tensor::new(ids, &dev).unwrap().unsqueeze(0).unwrap();
    model
        .forward(&x, 0, &mut cache)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn our_logits(model: &Llama, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
    let n = model.info().n_layers;
    let batch = TokenBatch::new(seqs, 0, &Device::Cpu).unwrap();
    let hooks = HookRequest::new(&[HookPoint::ResidPost], &[n], n).unwrap();
    let mut sink = CollectSink::default();
    model.forward_hooked(&batch, &hooks, &mut sink).unwrap();
    assert_eq!(sink.tensors.len(), 1);
    let h = &sink.tensors[0].2;
    seqs.iter()
        .enumerate()
        .map(|(b, s)| {
            let last = h.get(b).unwrap().get(s.len() - 1).unwrap();
            model
                .logits(&last.unsqueeze(0).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        })
        .collect()
}

#[test]
fn tiny_llama_logits_equal_candle_transformers() {
    for tie in [true, false] {
        let dir = scratch(&format!("tiny-llama-{tie}"));
        let cfg = write_checkpoint(&dir, tie);
        let model = Llama::load_dir(&dir, &Device::Cpu, candle_core::DType::F32).unwrap();
        let a: Vec<u32> = vec![3, 7, 1, 30, 12, 5, 9, 9, 2];
        let b: Vec<u32> = vec![4, 8, 15, 16];
        // Padded batch of two different lengths against candle's unpadded single runs.
        let ours = our_logits(&model, &[&a, &b]);
        for (seq, got) in [&a, &b].iter().zip(&ours) {
            let want = candle_logits(&dir, &cfg, seq);
            let e = rel_err(got, &want);
            assert!(e < 1e-4, "tie={tie}: rel err {e:.2e}");
        }
    }
}

/// Regression: transformers 5.x writes `rope_theta` only inside `rope_parameters`; reading the
/// top-level key alone silently falls back to 10000.
#[test]
fn rope_theta_is_read_from_rope_parameters() {
    let dir = scratch("tiny-llama-rope");
    write_checkpoint(&dir, true);
    let model = Llama::load_dir(&dir, &Device::Cpu, candle_core::DType::F32).unwrap();
    assert_eq!(model.config().rope_theta(), 5000.0);
}
