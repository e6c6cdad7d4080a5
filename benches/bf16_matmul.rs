//! Would bf16 compute speed up training here? candle's CPU matmul in f32, bf16 and f16 on one
//! training-shaped product: a step's 16 sequences × 128 tokens (2,048 rows) through SmolLM2's
//! gate projection (576 → 1,536).
//!
//!     cargo bench --bench bf16_matmul
//!
//! Criterion's throughput ("Gelem/s") counts flops (2·m·k·n per product), so it reads as
//! GFLOP/s.
//!
//! The other route, OpenBLAS's `cblas_sbgemm`, is absent from the OpenBLAS this project builds
//! against (Debian 12's 0.3.21 is built without `BUILD_BFLOAT16`:
//! `nm -D /usr/lib/x86_64-linux-gnu/libopenblas.so.0 | grep sbgemm` prints nothing), so
//! candle's own kernels are the only bf16 products at hand. Training's products run on
//! OpenBLAS's f32 `sgemm` (`model::linear::sgemm`), at least as fast as candle's f32 here.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench_dtypes(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (m, k, n) = (2048, 576, 1536);
    let a = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, (k, n), &dev).unwrap();
    let mut g = c.benchmark_group("candle_cpu_matmul_2048x576x1536");
    g.throughput(Throughput::Elements((2 * m * k * n) as u64));
    for dt in [DType::F32, DType::BF16, DType::F16] {
        let (a, b) = (a.to_dtype(dt).unwrap(), b.to_dtype(dt).unwrap());
        g.bench_function(format!("{dt:?}"), |bch| bch.iter(|| a.matmul(&b).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench_dtypes);
criterion_main!(benches);
