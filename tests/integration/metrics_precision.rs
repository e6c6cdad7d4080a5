//! `compare --precision mixed` (f32 products per block of rows, summed in float64): against
//! the same float64 NumPy reference as `metrics.rs` (`tests/reference/metrics_reference.json`,
//! made by `tests/reference/make_metrics_reference.py`), against the float64 path on rows
//! with outlier dimensions, and the refusal of rows prepared for another accumulator.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use repdrift::metrics::{accum::PairAccumulator, MetricError, Precision, PreparedRows};

use super::common::*;
use super::metrics::{close, load_case, normal, orthogonal, streamed_in};

/// `compare --precision mixed` (f32 products per block of rows, summed in f64) against the same
/// float64 NumPy reference: every measure within `MIXED_TOL` relative (or absolute below 1),
/// streamed in odd part sizes and in parts larger than a block. Cosine and norm ratio never
/// read the products, so they keep the float64 tolerance.
#[test]
fn mixed_precision_matches_float64_numpy_reference_within_its_bound() {
    const MIXED_TOL: f64 = 1e-6;
    let dir = root().join("tests/reference");
    let bytes = std::fs::read(dir.join("metrics_inputs.safetensors")).unwrap();
    let refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics_reference.json")).unwrap())
            .unwrap();
    let mut worst = 0f64;
    for (name, want) in refs["cases"].as_object().unwrap() {
        let (x, y) = load_case(&bytes, name);
        for sizes in [&[1, 7, 64, 3][..], &[600, 5]] {
            let got = streamed_in(x.view(), y.view(), sizes, Precision::Mixed)
                .finalize_with(Precision::Mixed)
                .unwrap();
            let w = |k: &str| want[k].as_f64();
            // Fewer examples than dimensions: Procrustes is refused in mixed precision.
            let procrustes = if x.nrows() < x.ncols().max(y.ncols()) {
                assert!(got.procrustes_distance.value.is_none(), "{name}");
                vec![]
            } else {
                vec![(
                    "procrustes_distance",
                    got.procrustes_distance.value,
                    MIXED_TOL,
                )]
            };
            for (k, v, tol) in [
                ("linear_cka", got.linear_cka.value, MIXED_TOL),
                ("debiased_cka", got.debiased_cka.value, MIXED_TOL),
                ("cosine_distance", got.cosine_distance.value, 1e-9),
                ("norm_ratio", got.norm_ratio.value, 1e-9),
            ]
            .into_iter()
            .chain(procrustes)
            {
                close(v, w(k), tol, &format!("{name} {k} (mixed)"));
                if let (Some(a), Some(b)) = (v, w(k)) {
                    worst = worst.max((a - b).abs() / b.abs().max(1.0));
                }
            }
        }
    }
    eprintln!("mixed precision: largest difference from the float64 reference {worst:.2e}");
}

/// Mixed precision on rows shaped like a language model's (a few outlier dimensions with means
/// hundreds of times the others' spread, n ≫ a block) stays within 1e-6 of the float64 path,
/// which the test above holds to the reference at 1e-9; and it is not the float64 path (the
/// rounding is visible), so the switch reaches the products.
#[test]
fn mixed_precision_on_outlier_dimensions_stays_within_1e_6_of_float64() {
    let mut rng = StdRng::seed_from_u64(11);
    let (n, d) = (3000, 96);
    let mut x = normal(&mut rng, n, d);
    for j in [3, 40, 77] {
        x.column_mut(j).mapv_inplace(|v| 300.0 + 5.0 * v);
    }
    let noise = normal(&mut rng, n, d);
    let y = (&x.dot(&orthogonal(&mut rng, d)) * 0.7) + &(&noise * 0.4);
    let f64_ = streamed_in(x.view(), y.view(), &[1000, 37], Precision::F64)
        .finalize()
        .unwrap();
    let mixed = streamed_in(x.view(), y.view(), &[1000, 37], Precision::Mixed)
        .finalize_with(Precision::Mixed)
        .unwrap();
    let mut differs = false;
    for (k, a, b) in [
        ("linear_cka", mixed.linear_cka.value, f64_.linear_cka.value),
        (
            "debiased_cka",
            mixed.debiased_cka.value,
            f64_.debiased_cka.value,
        ),
        (
            "procrustes_distance",
            mixed.procrustes_distance.value,
            f64_.procrustes_distance.value,
        ),
    ] {
        let (a, b) = (a.unwrap(), b.unwrap());
        eprintln!("{k}: mixed {a:.12} float64 {b:.12} ({:.1e})", (a - b).abs());
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{k}: {a} vs {b}");
        differs |= a != b;
    }
    assert!(
        differs,
        "mixed precision gave the float64 numbers bit for bit"
    );
}

/// Rows prepared with another shift, or in another precision, than the accumulator's are
/// refused by name (they would add sums about another matrix).
#[test]
fn rows_prepared_for_another_accumulator_are_refused() {
    let x = Array2::from_shape_fn((6, 3), |(i, j)| (i * 3 + j) as f32 * 0.5);
    let mut acc = PairAccumulator::new(3, 3);
    let other = ndarray::Array1::from_vec(vec![1.0, 0.0, 0.0]);
    let px = PreparedRows::new(x.view(), &other, Precision::F64, "x").unwrap();
    let py = PreparedRows::new(x.view(), &acc.shift_y, Precision::F64, "y").unwrap();
    let err = acc.add_prepared(&px, &py, true).unwrap_err();
    assert!(matches!(err, MetricError::Prepared), "{err}");
    assert!(
        err.to_string().contains("another shift or precision"),
        "{err}"
    );
    let px = PreparedRows::new(x.view(), &acc.shift_x, Precision::Mixed, "x").unwrap();
    assert!(matches!(
        acc.add_prepared(&px, &py, true),
        Err(MetricError::Prepared)
    ));
    assert_eq!(acc.n, 0.0, "nothing was added");
}
