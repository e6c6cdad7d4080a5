//! Parity with HF transformers: token ids and per-layer activations of both real models.
//!
//! Truth: `tests/reference/hf_{smollm2,minilm}.safetensors`, written by
//! `tests/reference/make_hf_reference.py` with HF transformers 5.2x / torch 2.x in float32
//! (versions in the files' metadata), one text at a time, no padding. Here the same texts run
//! in one padded batch and one at a time; every pooled vector must be within 1e-3 relative
//! error of HF's at every layer and hook.

use candle_core::Device;
use repdrift::capture::{pool_sequences, prepare_example, Pooled, Pooling, PreparedSeq};
use repdrift::data::{Example, Sequence};
use repdrift::model::{HookPoint, HookRequest, HookedModel};
use safetensors::SafeTensors;

use super::common::*;

fn texts() -> Vec<String> {
    let p = root().join("tests/reference/texts.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn example(text: &str) -> Example {
    Example {
        line: 1,
        sequences: vec![Sequence {
            text: text.to_string(),
            response_start: None,
        }],
        extras: Default::default(),
    }
}

struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    fn load(name: &str) -> Self {
        let p = root().join("tests/reference").join(name);
        Self {
            bytes: std::fs::read(p).unwrap(),
        }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }
    fn ids(&self, i: usize) -> Vec<u32> {
        let st = self.st();
        let t = st.tensor(&format!("ids_{i}")).unwrap();
        t.data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect()
    }
    /// (rows, d) as a flat vec.
    fn pooled(&self, hook: HookPoint, pool: &str, i: usize) -> (Vec<f32>, Vec<usize>) {
        let st = self.st();
        let t = st.tensor(&format!("{}_{pool}_{i}", hook.name())).unwrap();
        let v = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (v, t.shape().to_vec())
    }
}

fn run_pooled(
    model: &dyn HookedModel,
    pooling: Pooling,
    batch_size: usize,
    points: &[HookPoint],
) -> (Vec<PreparedSeq>, Pooled) {
    let seqs: Vec<PreparedSeq> = texts()
        .iter()
        .flat_map(|t| {
            prepare_example(model, &example(t), pooling, None, "texts.json".as_ref()).unwrap()
        })
        .collect();
    let hooks = HookRequest::all_layers(points, model.info().n_layers);
    let bufs = pool_sequences(model, &seqs, &hooks, batch_size, &Device::Cpu, |_, _| {}).unwrap();
    (seqs, bufs)
}

fn check_model(model: &dyn HookedModel, reference: &str) {
    let r = Reference::load(reference);
    let n_texts = texts().len();
    let d = model.info().hidden_size;
    let n = model.info().n_layers;
    // Every hook: candle's ops. `resid_post` alone: plain Llama blocks run graph-free
    // (`model::llama_grad`), the path `capture` takes by default.
    let sets: [&[HookPoint]; 2] = [&HookPoint::ALL, &[HookPoint::ResidPost]];
    for (pooling, pname) in [(Pooling::Last, "last"), (Pooling::Mean, "mean")] {
        // Batch size n_texts: all texts padded into one batch; batch size 1: no padding.
        for (batch_size, points) in [n_texts, 1]
            .into_iter()
            .flat_map(|b| sets.iter().map(move |p| (b, *p)))
        {
            let (seqs, bufs) = run_pooled(model, pooling, batch_size, points);
            let mut worst = 0f64;
            for (i, seq) in seqs.iter().enumerate() {
                assert_eq!(seq.ids, r.ids(i), "token ids of text {i}");
                for &hook in points {
                    let (want, shape) = r.pooled(hook, pname, i);
                    let (min, max) = hook.layer_range(n);
                    assert_eq!(shape, vec![max - min + 1, d]);
                    for layer in min..=max {
                        let row = layer - min;
                        let got = &bufs[&(hook, layer)][i * d..(i + 1) * d];
                        let e = rel_err(got, &want[row * d..(row + 1) * d]);
                        worst = worst.max(e);
                        assert!(
                            e < 1e-3,
                            "{reference}: text {i} {hook} layer {layer} pool {pname} batch {batch_size}: rel err {e:.2e}"
                        );
                    }
                }
            }
            eprintln!(
                "{reference}: pool {pname} batch {batch_size} hooks {points:?}: worst rel err {worst:.2e}"
            );
        }
    }
}

#[test]
fn smollm2_gguf_matches_hf_transformers() {
    let model = load(&smollm2_path());
    assert_eq!(model.info().n_layers, 30);
    assert_eq!(model.info().hidden_size, 576);
    check_model(model.as_ref(), "hf_smollm2.safetensors");
}

#[test]
fn minilm_matches_hf_transformers() {
    let model = load(&minilm_path());
    assert_eq!(model.info().n_layers, 6);
    check_model(model.as_ref(), "hf_minilm.safetensors");
}

/// Batch size and padding change nothing beyond float rounding (1e-5 relative), on candle's
/// ops (every hook) and graph-free (`resid_post` alone).
#[test]
fn pooled_states_do_not_depend_on_batch_size() {
    for path in [smollm2_path(), minilm_path()] {
        let model = load(&path);
        let d = model.info().hidden_size;
        let sets: [&[HookPoint]; 2] = [&HookPoint::ALL, &[HookPoint::ResidPost]];
        for (pooling, points) in [Pooling::Last, Pooling::Mean]
            .into_iter()
            .flat_map(|p| sets.iter().map(move |h| (p, *h)))
        {
            let (_, one) = run_pooled(model.as_ref(), pooling, 1, points);
            for bs in [2, 3, 7] {
                let (_, many) = run_pooled(model.as_ref(), pooling, bs, points);
                for (key, a) in &one {
                    let b = &many[key];
                    for (ra, rb) in a.chunks(d).zip(b.chunks(d)) {
                        let e = rel_err(rb, ra);
                        assert!(
                            e < 1e-5,
                            "{}: {key:?} batch {bs}: rel err {e:.2e}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}
