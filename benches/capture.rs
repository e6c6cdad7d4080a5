//! Capture throughput: SmolLM2-135M (GGUF, dequantized to f32), 8 sequences × 128 tokens, all
//! 31 `resid_post` hidden states kept (pooled by the same sink `repdrift capture` uses).
//!
//!     bash scripts/fetch-models.sh && cargo bench --bench capture
//!
//! PyTorch + transformers on the same shape: `benches/reference/capture_torch.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "common/stores.rs"]
mod stores;
#[path = "common/workloads.rs"]
mod workloads;

fn bench_capture(c: &mut Criterion) {
    // As the `repdrift` binary does (src/main.rs).
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let model = workloads::smollm2();
    let (batch, seq) = (8usize, 128usize);
    let seqs = workloads::capture_seqs(batch, seq);
    let mut g = c.benchmark_group("capture");
    g.sample_size(10);
    g.throughput(Throughput::Elements((batch * seq) as u64));
    g.bench_function("smollm2_135m_8x128_all_hidden_states", |b| {
        b.iter(|| workloads::capture_all_layers(model.as_ref(), &seqs, batch))
    });
    g.finish();
}

criterion_group!(benches, bench_capture);
criterion_main!(benches);
