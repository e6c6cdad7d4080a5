//! Synthetic stores for the benches, written with the library's own store writer:
//! low-rank features with an outlier dimension, plus per-student drift that grows with depth.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use repdrift::capture::store::{plan_manifest, StoreWriter};
use repdrift::capture::{CaptureParams, Pooled};
use repdrift::data::{DataFormat, Dataset, Example, Sequence};
use repdrift::model::{HookPoint, HookRequest, ModelInfo};

pub const D: usize = 576;
/// Blocks: stores hold resid_post layers 0..=LAYERS (31 hidden states, as SmolLM2).
pub const LAYERS: usize = 30;

fn dataset(n: usize) -> Dataset {
    Dataset {
        path: "synthetic.jsonl".into(),
        sha256: "synthetic".into(),
        format: DataFormat::Text,
        examples: (0..n)
            .map(|i| Example {
                line: i + 1,
                sequences: vec![Sequence {
                    text: String::new(),
                    response_start: None,
                }],
                extras: Default::default(),
            })
            .collect(),
    }
}

/// Write a store whose layer `l` holds `f(l, row) -> row vector`.
pub fn write_store(dir: &Path, n: usize, layers: usize, seed: u64, drift: f32) {
    let _ = std::fs::remove_dir_all(dir);
    let params = CaptureParams::default().check().unwrap();
    let hooks = HookRequest::all_layers(&[HookPoint::ResidPost], layers);
    let info = ModelInfo {
        path: "synthetic".into(),
        architecture: "synthetic".into(),
        source: "bench".into(),
        weights_sha256: format!("seed-{seed}"),
        n_layers: layers,
        hidden_size: D,
    };
    let data = dataset(n);
    let manifest = plan_manifest(&info, &data, &params, &hooks);
    let parts = manifest.planned_parts.clone();
    let mut w = StoreWriter::open(dir, manifest, false, false).unwrap();
    // Shared low-rank structure (same for base and students: seed 0), drift per student.
    let rank = 32;
    let mut shared = StdRng::seed_from_u64(0);
    let basis: Vec<f32> = (0..rank * D)
        .map(|_| shared.random::<f32>() - 0.5)
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for p in parts {
        let mut buffers = Pooled::new();
        for l in 0..=layers {
            let mut z = StdRng::seed_from_u64(1000 + (p.index * 64 + l) as u64);
            let mut buf = vec![0f32; p.rows * D];
            for r in 0..p.rows {
                let coef: Vec<f32> = (0..rank).map(|_| z.random::<f32>() - 0.5).collect();
                for j in 0..D {
                    let mut v = 0f32;
                    for (k, c) in coef.iter().enumerate() {
                        v += c * basis[k * D + j];
                    }
                    v += drift * (l as f32 / layers.max(1) as f32) * (rng.random::<f32>() - 0.5);
                    if j == 0 {
                        v = 40.0 + 5.0 * v; // outlier dimension
                    }
                    buf[r * D + j] = v;
                }
            }
            buffers.insert((HookPoint::ResidPost, l), buf);
        }
        let n_tokens = vec![1i64; p.rows];
        w.write_part(
            p.index,
            &buffers,
            1,
            &n_tokens,
            &data.examples[p.start..p.start + p.rows],
            None,
        )
        .unwrap();
    }
    w.finish().unwrap();
}

pub fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-stores")
}
