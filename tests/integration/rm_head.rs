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

#[test]
fn score_head_rewards_equal_hf_sequence_classification() {
    let dir = root().join("tests/reference/hf_rm_tiny");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/reference/rm_reference.json")).unwrap(),
    )
    .unwrap();
    let seqs: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();
    let want: Vec<f64> = serde_json::from_value(reference["rewards"].clone()).unwrap();
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
