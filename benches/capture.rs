//! Capture throughput: SmolLM2-135M (GGUF, dequantized to f32), 8 sequences × 128 tokens, all
//! 31 `resid_post` hidden states kept (pooled by the same sink `repdrift capture` uses).
//!
//!     bash scripts/fetch-models.sh && cargo bench --bench capture
//!
//! PyTorch + transformers on the same shape: `benches/reference/capture_torch.py`.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repdrift::capture::{pool_sequences, PreparedSeq};
use repdrift::model::{HookPoint, HookRequest};

fn bench_capture(c: &mut Criterion) {
    // As the `repdrift` binary does (src/main.rs).
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let model =
        repdrift::model::load(&path, &Device::Cpu).expect("run scripts/fetch-models.sh first");
    let (batch, seq) = (8usize, 128usize);
    // Fixed pseudo-random token ids (LCG), no special tokens.
    let mut state = 12345u64;
    let ids: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            (0..seq)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    100 + ((state >> 33) % 49000) as u32
                })
                .collect()
        })
        .collect();
    let seqs: Vec<PreparedSeq> = ids
        .into_iter()
        .map(|ids| PreparedSeq {
            ids,
            pool: (seq - 1, seq),
        })
        .collect();
    let n = model.info().n_layers;
    let hooks = HookRequest::all_layers(&[HookPoint::ResidPost], n);
    let mut g = c.benchmark_group("capture");
    g.sample_size(10);
    g.throughput(Throughput::Elements((batch * seq) as u64));
    g.bench_function("smollm2_135m_8x128_all_hidden_states", |b| {
        b.iter(|| {
            let out = pool_sequences(
                model.as_ref(),
                &seqs,
                &hooks,
                batch,
                &Device::Cpu,
                |_, _| {},
            )
            .unwrap();
            assert_eq!(out.len(), n + 1);
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench_capture);
criterion_main!(benches);
