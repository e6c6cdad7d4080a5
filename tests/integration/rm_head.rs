//! Sequence-classification reward models: the score head read at the last real token equals
//! HF transformers' `LlamaForSequenceClassification` (truth: tests/reference/rm_reference.json,
//! written by tests/reference/make_rm_reference.py with transformers 5.23 / torch 2.15, one
//! right-padded batch), and the rewards do not depend on batching.

use candle_core::{Device, Tensor};
use repdrift::capture::ActivationSink;
use repdrift::model::{HookPoint, HookRequest, TokenBatch};

use super::common::*;

#[derive(Default)]
struct Rewards(Vec<f32>);

impl ActivationSink for Rewards {
    fn layer(&mut self, _: HookPoint, _: usize, _: &Tensor) -> repdrift::Result<()> {
        Ok(())
    }
    fn reward(&mut self, r: &[f32]) -> repdrift::Result<()> {
        self.0.extend_from_slice(r);
        Ok(())
    }
}

/// The reference token ids and HF's rewards for them.
fn reference() -> (Vec<Vec<u32>>, Vec<f64>) {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/reference/rm_reference.json")).unwrap(),
    )
    .unwrap();
    (
        serde_json::from_value(reference["ids"].clone()).unwrap(),
        serde_json::from_value(reference["rewards"].clone()).unwrap(),
    )
}

#[test]
fn score_head_rewards_equal_hf_sequence_classification() {
    let dir = root().join("tests/reference/hf_rm_tiny");
    let (seqs, want) = reference();
    let model = load(&dir);
    assert!(model.has_reward_head());
    let req = HookRequest::new(&[HookPoint::ResidPost], &[0], 2)
        .unwrap()
        .with_reward(2);
    // One padded batch, then one sequence at a time.
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let mut batched = Rewards::default();
    let batch = TokenBatch::new(&refs, model.pad_id(), &Device::Cpu).unwrap();
    model.forward_hooked(&batch, &req, &mut batched).unwrap();
    let mut single = Rewards::default();
    for s in &refs {
        let b = TokenBatch::new(&[s], model.pad_id(), &Device::Cpu).unwrap();
        model.forward_hooked(&b, &req, &mut single).unwrap();
    }
    for got in [&batched.0, &single.0] {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                "reward {g} vs HF {w}"
            );
        }
    }
}

#[test]
fn trl_value_head_is_read_as_the_reward_head() {
    // The HF reference RM with its head renamed to TRL's `v_head.summary` and a bias of 0.5:
    // every reward moves by exactly the bias.
    let src = root().join("tests/reference/hf_rm_tiny");
    let dir = scratch("rm-v-head");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut w =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let score = w.remove("score.weight").unwrap();
    w.insert("v_head.summary.weight".into(), score);
    w.insert(
        "v_head.summary.bias".into(),
        Tensor::new(&[0.5f32], &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    let (seqs, want) = reference();
    let model = load(&dir);
    assert!(model.has_reward_head());
    let req = HookRequest::new(&[HookPoint::ResidPost], &[0], 2)
        .unwrap()
        .with_reward(2);
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::new(&refs, model.pad_id(), &Device::Cpu).unwrap();
    let mut got = Rewards::default();
    model.forward_hooked(&batch, &req, &mut got).unwrap();
    for (g, w) in got.0.iter().zip(&want) {
        assert!(
            (*g as f64 - (w + 0.5)).abs() < 1e-4 * (1.0 + w.abs()),
            "{g} vs {w} + 0.5"
        );
    }
}
