//! Probe throughput: 31 layers × 2,000 pairs × d = 576, Bradley–Terry probes with 5-fold
//! cross-validation over C ∈ {0.001, 0.01, 0.1, 1} plus the final fit, layers spread over the
//! cores (as `repdrift probe` runs them). Synthetic Δh: a planted direction plus anisotropic
//! noise (`common/workloads.rs`, the data `scripts/bench.sh` times beside scikit-learn). Prints
//! the mean in-distribution accuracy once; saves the matrices to
//! `target/bench-stores/probe_data.safetensors` for `benches/reference/probe_sklearn.py`.
//!
//!     cargo bench --bench probe

use criterion::{criterion_group, criterion_main, Criterion};
use repdrift::probe::{cross_validate, ProbeData, Solver};

#[path = "common/stores.rs"]
mod stores;
#[path = "common/workloads.rs"]
mod workloads;
use workloads::{probe_layer, save_probe_data, P_LAYERS};

// The closure returns the library's `Result`, whose error carries paths and shapes by design.
#[allow(clippy::result_large_err)]
fn run(data: &[ProbeData]) -> f64 {
    let cs = [0.001, 0.01, 0.1, 1.0];
    let accs = repdrift::parallel::map_indexed(data.len(), |l| {
        let cv = cross_validate(&data[l], &cs, 5, 0, Solver::default())?;
        data[l].fit(cv.c, Solver::default())?;
        Ok(cv.accuracy)
    })
    .unwrap();
    accs.iter().sum::<f64>() / accs.len() as f64
}

fn bench_probe(c: &mut Criterion) {
    let mats: Vec<_> = (0..P_LAYERS).map(probe_layer).collect();
    save_probe_data(&mats);
    let data: Vec<ProbeData> = mats.into_iter().map(ProbeData::Pairs).collect();
    println!(
        "probe: mean in-distribution CV accuracy over {P_LAYERS} layers: {:.4}",
        run(&data)
    );
    let mut g = c.benchmark_group("probe");
    g.sample_size(10);
    g.bench_function("31_layers_2000_pairs_d576_5fold_4c", |b| {
        b.iter(|| run(&data))
    });
    g.finish();
}

criterion_group!(benches, bench_probe);
criterion_main!(benches);
