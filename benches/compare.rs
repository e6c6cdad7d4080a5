//! `repdrift compare` throughput: 2 students × 31 layers × n = 4,096 × d = 576, one field,
//! all measures but kNN and bootstrap, read from stores on disk (part size 256).
//!
//!     cargo bench --bench compare
//!
//! The stores are synthetic (written here with the library's store writer): low-rank
//! features with an outlier dimension for the base, drifted copies for the students.
//! NumPy on the same shapes: `benches/reference/compare_numpy.py`.

use criterion::{criterion_group, criterion_main, Criterion};
use repdrift::capture::Store;
use repdrift::metrics::compare::{compare, CompareParams};

#[path = "common/stores.rs"]
mod stores;
use stores::{bench_dir, write_store, LAYERS};

const N: usize = 4096;

fn bench_compare(c: &mut Criterion) {
    let dir = bench_dir();
    let paths = [dir.join("base"), dir.join("s1"), dir.join("s2")];
    if !paths.iter().all(|p| p.join("manifest.json").exists()) {
        write_store(&paths[0], N, LAYERS, 1, 0.0);
        write_store(&paths[1], N, LAYERS, 2, 0.5);
        write_store(&paths[2], N, LAYERS, 3, 2.0);
    }
    let base = Store::open(&paths[0]).unwrap();
    let students = vec![
        ("s1".to_string(), Store::open(&paths[1]).unwrap()),
        ("s2".to_string(), Store::open(&paths[2]).unwrap()),
    ];
    let params = CompareParams {
        knn_max_n: 0,
        ..Default::default()
    }
    .check()
    .unwrap();
    let mut g = c.benchmark_group("compare");
    g.sample_size(10);
    g.bench_function("2_students_31_layers_n4096_d576", |b| {
        b.iter(|| {
            let out = compare(&base, &students, &params, &mut |_| {}).unwrap();
            assert_eq!(out.report.rows.len(), 2 * (LAYERS + 1));
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench_compare);
criterion_main!(benches);
