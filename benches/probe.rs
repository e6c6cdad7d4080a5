//! Probe throughput: 31 layers × 2,000 pairs × d = 576, Bradley–Terry probes with 5-fold
//! cross-validation over C ∈ {0.001, 0.01, 0.1, 1} plus the final fit, layers spread over the
//! cores (as `repdrift probe` runs them). Synthetic Δh: a planted direction plus anisotropic
//! noise. Prints the mean in-distribution accuracy once, so the accuracy can be compared
//! with scikit-learn's on the same data (`benches/reference/probe_sklearn.py` reads the
//! matrices this bench saves to `target/bench-stores/probe_data.safetensors`).
//!
//!     cargo bench --bench probe

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use repdrift::probe::{cross_validate, ProbeData, Solver};

const LAYERS: usize = 31;
const N: usize = 2000;
const D: usize = 576;

fn gauss(rng: &mut StdRng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn layer_data(l: usize) -> ProbeData {
    let mut rng = StdRng::seed_from_u64(l as u64);
    let u: Vec<f64> = (0..D).map(|_| gauss(&mut rng)).collect();
    let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
    let scales: Vec<f64> = (0..D)
        .map(|j| 0.2 + 2.0 * ((j * 7919) % 101) as f64 / 100.0)
        .collect();
    let signal = 0.02 * l as f64 + 0.3;
    ProbeData::Pairs(Array2::from_shape_fn((N, D), |(_, j)| {
        signal * u[j] / norm * 1.5 + scales[j] * gauss(&mut rng)
    }))
}

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

/// Save the Δh matrices (f32) so that the scikit-learn reference fits the very same data.
fn save(data: &[ProbeData]) {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-stores");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes: Vec<(String, Vec<u8>)> = data
        .iter()
        .enumerate()
        .map(|(l, d)| {
            let ProbeData::Pairs(m) = d else {
                unreachable!()
            };
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
                TensorView::new(Dtype::F32, vec![N, D], b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("probe_data.safetensors"),
        safetensors::tensor::serialize(views, None).unwrap(),
    )
    .unwrap();
}

fn bench_probe(c: &mut Criterion) {
    // Rounded to f32 as stores hold them, so both sides fit identical numbers.
    let data: Vec<ProbeData> = (0..LAYERS)
        .map(|l| match layer_data(l) {
            ProbeData::Pairs(m) => ProbeData::Pairs(m.mapv(|v| v as f32 as f64)),
            other => other,
        })
        .collect();
    save(&data);
    println!(
        "probe: mean in-distribution CV accuracy over {LAYERS} layers: {:.4}",
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
