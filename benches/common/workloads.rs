//! Workload inputs shared by the benches (`capture.rs`, `probe.rs`, `side_by_side.rs`), so
//! that the criterion benches and the side-by-side run time the very same work.
#![allow(dead_code)]

use candle_core::Device;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use repdrift::capture::{pool_sequences, PreparedSeq};
use repdrift::model::{HookPoint, HookRequest, HookedModel};

/// `batch` sequences of `seq` fixed pseudo-random token ids (LCG, no special tokens), each
/// pooled at its last token.
pub fn capture_seqs(batch: usize, seq: usize) -> Vec<PreparedSeq> {
    let mut state = 12345u64;
    (0..batch)
        .map(|_| PreparedSeq {
            ids: (0..seq)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    100 + ((state >> 33) % 49000) as u32
                })
                .collect(),
            pool: (seq - 1, seq),
        })
        .collect()
}

/// SmolLM2-135M (GGUF), the model the capture workloads run.
pub fn smollm2() -> Box<dyn HookedModel> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    repdrift::model::load(&path, &Device::Cpu).expect("run scripts/fetch-models.sh first")
}

/// One capture of `seqs` in batches of `batch`: every `resid_post` hidden state pooled by the
/// sink `repdrift capture` uses.
pub fn capture_all_layers(model: &dyn HookedModel, seqs: &[PreparedSeq], batch: usize) {
    let n = model.info().n_layers;
    let hooks = HookRequest::all_layers(&[HookPoint::ResidPost], n);
    let out = pool_sequences(model, seqs, &hooks, batch, &Device::Cpu, |_, _| {}).unwrap();
    assert_eq!(out.len(), n + 1);
}

pub const P_LAYERS: usize = 31;
pub const P_N: usize = 2000;
pub const P_D: usize = 576;

fn gauss(rng: &mut StdRng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Synthetic Δh of layer `l`: a planted direction plus anisotropic noise, rounded to f32 as
/// stores hold them.
pub fn probe_layer(l: usize) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(l as u64);
    let u: Vec<f64> = (0..P_D).map(|_| gauss(&mut rng)).collect();
    let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
    let scales: Vec<f64> = (0..P_D)
        .map(|j| 0.2 + 2.0 * ((j * 7919) % 101) as f64 / 100.0)
        .collect();
    let signal = 0.02 * l as f64 + 0.3;
    Array2::from_shape_fn((P_N, P_D), |(_, j)| {
        (signal * u[j] / norm * 1.5 + scales[j] * gauss(&mut rng)) as f32 as f64
    })
}

pub fn save_probe_data(data: &[Array2<f64>]) {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = super::stores::bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let bytes: Vec<(String, Vec<u8>)> = data
        .iter()
        .enumerate()
        .map(|(l, m)| {
            (
                format!("layer_{l:03}"),
                m.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, vec![P_N, P_D], b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("probe_data.safetensors"),
        safetensors::tensor::serialize(views, None).unwrap(),
    )
    .unwrap();
}
