//! Metrics: golden values, properties, degenerate input, and `repdrift compare` end to end.
//!
//! Golden truth: `tests/reference/metrics_reference.json`, computed in float64 by
//! `tests/reference/make_metrics_reference.py` (NumPy, textbook Gram-space definitions) from
//! the float32 inputs in `tests/reference/metrics_inputs.safetensors`.

use std::path::Path;
use std::process::Command;

use ndarray::{s, Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use repdrift::metrics::knn::mutual_knn_overlap;
use repdrift::metrics::{
    accum::PairAccumulator, MetricError, PairMetrics, Precision, PreparedRows,
};
use safetensors::SafeTensors;

use super::common::*;

pub(super) fn normal(rng: &mut StdRng, n: usize, d: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, d), |_| {
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    })
}

/// A random orthogonal matrix (Gram–Schmidt on a normal matrix).
pub(super) fn orthogonal(rng: &mut StdRng, d: usize) -> Array2<f32> {
    let a = normal(rng, d, d).mapv(|v| v as f64);
    let mut q = Array2::<f64>::zeros((d, d));
    for j in 0..d {
        let mut v = a.column(j).to_owned();
        for k in 0..j {
            let qk = q.column(k).to_owned();
            v = &v - &(&qk * qk.dot(&v));
        }
        let n = v.dot(&v).sqrt();
        q.column_mut(j).assign(&(v / n));
    }
    q.mapv(|v| v as f32)
}

fn all(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> PairMetrics {
    let mut a = PairAccumulator::new(x.ncols(), y.ncols());
    a.update(x, y).unwrap();
    a.finalize().unwrap()
}

fn streamed(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>, sizes: &[usize]) -> PairAccumulator {
    streamed_in(x, y, sizes, Precision::F64)
}

/// Rows fed in parts of `sizes` (cycled), shifted by row 0 as `compare` does, each side
/// prepared once per part as `compare` prepares them, products in `precision`.
pub(super) fn streamed_in(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    sizes: &[usize],
    precision: Precision,
) -> PairAccumulator {
    let mut a =
        PairAccumulator::with_shift(x.row(0).mapv(|v| v as f64), y.row(0).mapv(|v| v as f64));
    let mut r = 0;
    let mut i = 0;
    while r < x.nrows() {
        let m = sizes[i % sizes.len()].min(x.nrows() - r);
        let px = PreparedRows::new(x.slice(s![r..r + m, ..]), &a.shift_x, precision, "x").unwrap();
        let py = PreparedRows::new(y.slice(s![r..r + m, ..]), &a.shift_y, precision, "y").unwrap();
        a.add_prepared(&px, &py, true).unwrap();
        r += m;
        i += 1;
    }
    a
}

pub(super) fn close(a: Option<f64>, b: Option<f64>, tol: f64, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}: {a} vs {b}"
        ),
        (None, None) => {}
        _ => panic!("{what}: {a:?} vs {b:?}"),
    }
}

pub(super) fn load_case(bytes: &[u8], name: &str) -> (Array2<f32>, Array2<f32>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let get = |k: &str| {
        let t = st.tensor(k).unwrap();
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Array2::from_shape_vec((t.shape()[0], t.shape()[1]), v).unwrap()
    };
    (get(&format!("{name}.x")), get(&format!("{name}.y")))
}

#[test]
fn metrics_match_float64_numpy_reference() {
    let dir = root().join("tests/reference");
    let bytes = std::fs::read(dir.join("metrics_inputs.safetensors")).unwrap();
    let refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics_reference.json")).unwrap())
            .unwrap();
    let cases = refs["cases"].as_object().unwrap();
    assert!(cases.len() >= 7);
    for (name, want) in cases {
        let (x, y) = load_case(&bytes, name);
        let one = all(x.view(), y.view());
        let parts = streamed(x.view(), y.view(), &[1, 7, 64, 3])
            .finalize()
            .unwrap();
        for got in [&one, &parts] {
            assert_eq!(got.n as u64, want["n"].as_u64().unwrap());
            let w = |k: &str| want[k].as_f64();
            close(
                got.linear_cka.value,
                w("linear_cka"),
                1e-9,
                &format!("{name} linear_cka"),
            );
            close(
                got.debiased_cka.value,
                w("debiased_cka"),
                1e-9,
                &format!("{name} debiased_cka"),
            );
            close(
                got.cosine_distance.value,
                w("cosine_distance"),
                1e-9,
                &format!("{name} cosine"),
            );
            close(
                got.cosine_distance_std.value,
                w("cosine_distance_std"),
                1e-7,
                &format!("{name} cosine std"),
            );
            close(
                got.procrustes_distance.value,
                w("procrustes_distance"),
                1e-9,
                &format!("{name} procrustes"),
            );
            close(
                got.norm_ratio.value,
                w("norm_ratio"),
                1e-9,
                &format!("{name} norm_ratio"),
            );
        }
        if let Some(k) = want["knn_overlap"].as_f64() {
            let got = mutual_knn_overlap(x.view(), y.view(), 10)
                .unwrap()
                .value
                .unwrap();
            assert!((got - k).abs() < 1e-12, "{name} knn: {got} vs {k}");
        }
    }
}

#[test]
fn cka_of_a_matrix_with_itself_is_one() {
    let mut rng = StdRng::seed_from_u64(1);
    for (n, d) in [(4, 3), (37, 5), (300, 40), (60, 100)] {
        let x = normal(&mut rng, n, d);
        let m = all(x.view(), x.view());
        close(m.linear_cka.value, Some(1.0), 1e-12, "linear");
        close(m.debiased_cka.value, Some(1.0), 1e-10, "debiased");
        close(m.procrustes_distance.value, Some(0.0), 1e-10, "procrustes");
        close(m.cosine_distance.value, Some(0.0), 1e-12, "cosine");
        close(m.norm_ratio.value, Some(1.0), 1e-12, "norm ratio");
    }
}

#[test]
fn cka_is_invariant_to_rotation_and_isotropic_scaling_of_either_side() {
    let mut rng = StdRng::seed_from_u64(2);
    let x = normal(&mut rng, 200, 12);
    let y = &x.slice(s![.., ..8]).dot(&normal(&mut rng, 8, 8)) + &(normal(&mut rng, 200, 8) * 0.5);
    let base = all(x.view(), y.view());
    let qx = orthogonal(&mut rng, 12);
    let qy = orthogonal(&mut rng, 8);
    for (xx, yy) in [
        (x.dot(&qx), y.clone()),
        (x.clone(), y.dot(&qy)),
        (&x * 7.5, y.clone()),
        (x.clone(), &y * 0.01),
        (x.dot(&qx) * 3.0, y.dot(&qy) * 0.2),
    ] {
        let m = all(xx.view(), yy.view());
        close(m.linear_cka.value, base.linear_cka.value, 1e-6, "linear");
        close(
            m.debiased_cka.value,
            base.debiased_cka.value,
            1e-6,
            "debiased",
        );
        close(
            m.procrustes_distance.value,
            base.procrustes_distance.value,
            1e-6,
            "procrustes",
        );
    }
}

#[test]
fn procrustes_is_zero_for_a_rotated_copy() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = normal(&mut rng, 150, 16);
    let q = orthogonal(&mut rng, 16);
    let m = all(x.view(), (x.dot(&q) * 4.0).view());
    assert!(
        m.procrustes_distance.value.unwrap() < 1e-6,
        "{:?}",
        m.procrustes_distance
    );
    // and clearly not zero for unrelated data
    let y = normal(&mut rng, 150, 16);
    assert!(all(x.view(), y.view()).procrustes_distance.value.unwrap() > 0.5);
}

#[test]
fn streaming_over_any_part_sizes_and_merged_shards_equal_one_shot() {
    let mut rng = StdRng::seed_from_u64(4);
    let x = normal(&mut rng, 523, 20).mapv(|v| v + 30.0);
    let y = normal(&mut rng, 523, 20);
    let whole = streamed(x.view(), y.view(), &[523]);
    let w = whole.finalize().unwrap();
    // The measures are O(1) quantities (CKA in [−1, 1], distances in [0, 2]); a near-zero one
    // (debiased CKA ≈ −0.003 of unrelated data) is a difference of O(1) terms, so "equal" means
    // 1e-12 relative to max(|b|, 1). Regression: with a strict relative bound this test failed
    // when OpenBLAS loaded its SSE3 "Prescott" kernels (2e-12 relative on −0.0028), whose
    // summation order differs from the AVX-512 ones.
    let rel = |a: Option<f64>, b: Option<f64>| {
        (a.unwrap() - b.unwrap()).abs() / b.unwrap().abs().max(1.0)
    };
    for sizes in [
        vec![1],
        vec![2, 5],
        vec![100],
        vec![522, 1],
        vec![17, 256, 3],
    ] {
        let m = streamed(x.view(), y.view(), &sizes).finalize().unwrap();
        for (a, b) in [
            (m.linear_cka.value, w.linear_cka.value),
            (m.debiased_cka.value, w.debiased_cka.value),
            (m.procrustes_distance.value, w.procrustes_distance.value),
            (m.cosine_distance.value, w.cosine_distance.value),
            (m.norm_ratio.value, w.norm_ratio.value),
        ] {
            assert!(rel(a, b) < 1e-12, "sizes {sizes:?}: {a:?} vs {b:?}");
        }
    }
    // Two shards (odd/even chunks of 50 rows) merged.
    let shift = (x.row(0).mapv(|v| v as f64), y.row(0).mapv(|v| v as f64));
    let mut a = PairAccumulator::with_shift(shift.0.clone(), shift.1.clone());
    let mut b = PairAccumulator::with_shift(shift.0, shift.1);
    for (i, start) in (0..523).step_by(50).enumerate() {
        let end = (start + 50).min(523);
        let acc = if i % 2 == 0 { &mut a } else { &mut b };
        acc.update(x.slice(s![start..end, ..]), y.slice(s![start..end, ..]))
            .unwrap();
    }
    a.merge(&b).unwrap();
    let m = a.finalize().unwrap();
    for (p, q) in [
        (m.linear_cka.value, w.linear_cka.value),
        (m.debiased_cka.value, w.debiased_cka.value),
        (m.procrustes_distance.value, w.procrustes_distance.value),
    ] {
        assert!(rel(p, q) < 1e-12, "merged: {p:?} vs {q:?}");
    }
}

#[test]
fn degenerate_input_gives_null_with_reason_or_named_error() {
    let mut rng = StdRng::seed_from_u64(5);
    // n < 4: debiased CKA is null with a reason; others defined.
    let x = normal(&mut rng, 3, 4);
    let m = all(x.view(), x.view());
    assert!(m.debiased_cka.value.is_none());
    assert!(m.debiased_cka.reason.as_ref().unwrap().contains("n ≥ 4"));
    assert!(m.linear_cka.value.is_some());
    // A constant matrix: CKA and Procrustes null (zero variance), no NaN.
    let c = Array2::<f32>::from_elem((10, 3), 2.0);
    let m = all(c.view(), normal(&mut rng, 10, 3).view());
    assert!(
        m.linear_cka.value.is_none()
            && m.linear_cka
                .reason
                .as_ref()
                .unwrap()
                .contains("zero variance")
    );
    assert!(m.procrustes_distance.value.is_none());
    assert!(m.debiased_cka.value.is_none(), "{:?}", m.debiased_cka);
    assert!(m.norm_ratio.value.is_some());
    // One constant column is fine.
    let mut x = normal(&mut rng, 30, 5);
    x.column_mut(2).fill(1.0);
    assert!(all(x.view(), x.view()).linear_cka.value.is_some());
    // Zero vectors: cosine and norm ratio null with a reason.
    let mut z = normal(&mut rng, 12, 4);
    z.row_mut(3).fill(0.0);
    let m = all(z.view(), normal(&mut rng, 12, 4).view());
    assert!(m
        .cosine_distance
        .reason
        .as_ref()
        .unwrap()
        .contains("zero vector"));
    assert!(m.norm_ratio.reason.as_ref().unwrap().contains("zero norm"));
    assert!(m.linear_cka.value.is_some());
    let k = mutual_knn_overlap(z.view(), z.view(), 3).unwrap();
    assert!(k.value.is_none() && k.reason.is_some());
    // Different widths: cosine null.
    let m = all(
        normal(&mut rng, 12, 4).view(),
        normal(&mut rng, 12, 5).view(),
    );
    assert!(m
        .cosine_distance
        .reason
        .as_ref()
        .unwrap()
        .contains("equal widths"));
    // NaN / Inf rows: a named error, not a NaN.
    let mut bad = normal(&mut rng, 6, 3);
    bad[[4, 1]] = f32::NAN;
    let mut acc = PairAccumulator::new(3, 3);
    assert_eq!(
        acc.update(bad.view(), bad.view()),
        Err(MetricError::NonFinite { side: "x", row: 4 })
    );
    bad[[4, 1]] = 0.0;
    let mut y = bad.clone();
    y[[2, 0]] = f32::INFINITY;
    assert_eq!(
        acc.update(bad.view(), y.view()),
        Err(MetricError::NonFinite { side: "y", row: 2 })
    );
    // Nothing anywhere is NaN.
    for n in [1usize, 2, 4, 5] {
        let x = normal(&mut rng, n, 3);
        let m = all(x.view(), normal(&mut rng, n, 2).view());
        for v in [
            m.linear_cka,
            m.debiased_cka,
            m.procrustes_distance,
            m.norm_ratio,
        ] {
            assert!(v.value.is_none_or(|v| v.is_finite()), "n = {n}: {v:?}");
            assert!(v.value.is_some() || v.reason.is_some());
        }
    }
}

/// Truth: `bootstrap`'s replicates computed in feature space by the accumulator
/// (‖X_cᵀY_c‖²_F / (‖X_cᵀX_c‖_F ‖Y_cᵀY_c‖_F) in float64). The example-space path draws the same
/// indices, so both intervals agree to rounding — for n > d and for n < d (the usual case for
/// hidden states: a few hundred pairs, a width of 576–4096).
#[test]
fn example_space_cka_bootstrap_equals_the_feature_space_bootstrap() {
    use repdrift::metrics::bootstrap::{bootstrap, bootstrap_linear_cka};
    let mut rng = StdRng::seed_from_u64(11);
    for (n, d1, d2) in [(60, 7, 5), (24, 40, 33)] {
        let x = normal(&mut rng, n, d1);
        let mix = normal(&mut rng, d1, d2);
        let y = x.dot(&mix) + normal(&mut rng, n, d2).mapv(|v| 2.0 * v);
        let full = bootstrap(x.view(), y.view(), 300, 5).unwrap();
        let fast = bootstrap_linear_cka(x.view(), y.view(), 300, 5).unwrap();
        let (a, b) = (full.linear_cka.unwrap(), fast.linear_cka.unwrap());
        assert!(
            (a.lo - b.lo).abs() < 1e-9 && (a.hi - b.hi).abs() < 1e-9,
            "n {n}: {a:?} vs {b:?}"
        );
        assert!(a.hi - a.lo > 1e-3, "a real interval: {a:?}");
        assert_eq!((fast.b, fast.debiased_cka), (300, None));
    }
    // Identical sides: every replicate is 1.
    let x = normal(&mut rng, 30, 8);
    let i = bootstrap_linear_cka(x.view(), x.view(), 50, 1)
        .unwrap()
        .linear_cka
        .unwrap();
    assert!(
        (i.lo - 1.0).abs() < 1e-12 && (i.hi - 1.0).abs() < 1e-12,
        "{i:?}"
    );
}

fn capture(model: &Path, data: &Path, out: &Path, extra: &[&str]) {
    let st = bin()
        .args(["capture", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--part-size", "7"])
        .args(extra)
        .status()
        .unwrap();
    assert!(st.success());
}

fn rows(dir: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(v["format"], "repdrift-metrics");
    v["rows"].as_array().unwrap().clone()
}

/// SmolLM2 (d = 576) as base, MiniLM (d = 384) as a "student" of different width, on the
/// repo's own texts: the CLI writes metrics.json/csv, shards merge to the whole, identical
/// stores give CKA 1, and mismatched data sets are a named error.
#[test]
fn compare_cli_end_to_end() {
    let dir = scratch("compare-cli");
    let data = root().join("probes/data/source.jsonl");
    let small = dir.join("pairs.jsonl");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&small, text.lines().take(30).collect::<Vec<_>>().join("\n")).unwrap();
    let (sm, ml) = (dir.join("smol"), dir.join("mini"));
    let mean = ["--pool", "mean", "--max-tokens", "64"];
    capture(
        &smollm2_path(),
        &small,
        &sm,
        &[&["--layers", "0,2,20,30"][..], &mean].concat(),
    );
    capture(
        &minilm_path(),
        &small,
        &ml,
        &[&["--layers", "0,2,4,6"][..], &mean].concat(),
    );

    let out = dir.join("out");
    let st = bin()
        .args(["compare", "--base"])
        .arg(&sm)
        .arg("--student")
        .arg(format!("same={}", sm.display()))
        .arg("--student")
        .arg(format!("mini={}", ml.display()))
        .args([
            "--layers",
            "2",
            "--bootstrap",
            "20",
            "--seed",
            "7",
            "--cross-layer",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let r = rows(&out);
    assert_eq!(
        r.len(),
        2 * 3,
        "2 students × 1 layer × (chosen, rejected, diff)"
    );
    let same: Vec<_> = r.iter().filter(|x| x["student"] == "same").collect();
    for row in &same {
        assert!(
            (row["linear_cka"].as_f64().unwrap() - 1.0).abs() < 1e-9,
            "{row}"
        );
        assert!(row["procrustes_distance"].as_f64().unwrap() < 1e-6);
        assert!(row["cosine_distance"].as_f64().unwrap().abs() < 1e-9);
        assert_eq!(row["knn_overlap"].as_f64(), Some(1.0));
        assert!(row["ci"]["linear_cka"]["lo"].as_f64().unwrap() > 0.999);
    }
    let mini: Vec<_> = r.iter().filter(|x| x["student"] == "mini").collect();
    for row in &mini {
        assert!(row["cosine_distance"].is_null());
        assert!(row["null_reasons"]["cosine_distance"]
            .as_str()
            .unwrap()
            .contains("equal widths"));
        let c = row["linear_cka"].as_f64().unwrap();
        assert!(c > 0.0 && c < 1.0);
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.starts_with("student,hook,layer,field,n,linear_cka"));
    let cross: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cross_layer_cka.json")).unwrap()).unwrap();
    assert_eq!(cross[0]["cka"].as_array().unwrap().len(), 4);
    assert!(
        (cross[0]["cka"][2][2].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "same store: diagonal is 1"
    );

    // Shards 0/2 and 1/2 merged equal the whole (all four layers, 1e-12 relative).
    let whole = dir.join("whole");
    let base_args = |c: &mut Command| {
        c.args(["compare", "--base"])
            .arg(&sm)
            .arg("--student")
            .arg(format!("mini={}", ml.display()));
        c.args(["--layers", "all"]);
    };
    let mut c = bin();
    base_args(&mut c);
    // MiniLM captured layers 0,2,4,6 and SmolLM2 0,2,20,30: "all" means the common ones.
    assert!(c.arg("--out").arg(&whole).status().unwrap().success());
    for i in 0..2 {
        let mut c = bin();
        base_args(&mut c);
        assert!(c
            .args(["--shard", &format!("{i}/2")])
            .arg("--out")
            .arg(dir.join(format!("shard{i}")))
            .status()
            .unwrap()
            .success());
    }
    let merged = dir.join("merged");
    let st = bin()
        .args(["compare", "--merge"])
        .arg(dir.join("shard0"))
        .arg("--merge")
        .arg(dir.join("shard1"))
        .arg("--out")
        .arg(&merged)
        .status()
        .unwrap();
    assert!(st.success());
    let (a, b) = (rows(&whole), rows(&merged));
    assert_eq!(a.len(), 2 * 3, "layers 0 and 2 × 3 fields");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for k in [
            "linear_cka",
            "debiased_cka",
            "procrustes_distance",
            "norm_ratio",
        ] {
            let (p, q) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!((p - q).abs() <= 1e-12 * q.abs(), "{k}: {p} vs {q}");
        }
    }
    // `--precision mixed`: recorded in metrics.json, every measure within 1e-6 of the float64
    // run; its shards are not merged with float64 ones.
    let mixed = dir.join("mixed");
    let mut c = bin();
    base_args(&mut c);
    let st = c
        .args(["--precision", "mixed", "--out"])
        .arg(&mixed)
        .status();
    assert!(st.unwrap().success());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mixed.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(report["precision"], "mixed");
    for (x, y) in a.iter().zip(&rows(&mixed)) {
        for k in ["linear_cka", "debiased_cka", "norm_ratio"] {
            let (p, q) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{k}: {p} vs {q}");
        }
        // 30 examples, widths 576 and 384: Procrustes is refused in mixed precision (its
        // rounding moved this very value by 3e-6 before the refusal).
        assert!(y["procrustes_distance"].is_null(), "{y}");
        let why = y["null_reasons"]["procrustes_distance"].as_str().unwrap();
        assert!(why.contains("needs n ≥ max(d₁, d₂) = 576"), "{why}");
    }
    let mut c = bin();
    base_args(&mut c);
    let mixed_shard = dir.join("mixed-shard1");
    let st = c
        .args(["--precision", "mixed", "--shard", "1/2", "--out"])
        .arg(&mixed_shard);
    assert!(st.status().unwrap().success());
    expect_user_error(
        bin()
            .args(["compare", "--merge"])
            .arg(dir.join("shard0"))
            .arg("--merge")
            .arg(&mixed_shard)
            .arg("--out")
            .arg(dir.join("m-mixed")),
        &["precision f64 vs mixed"],
    );
    // Regression (the base's rows and xᵀx are shared by the students of a compare): each
    // student's rows in a two-student compare equal, number for number, a compare of that
    // student alone.
    let mini_alone = dir.join("mini-alone");
    let st = bin()
        .args(["compare", "--base"])
        .arg(&sm)
        .arg("--student")
        .arg(format!("mini={}", ml.display()))
        .args(["--layers", "2", "--bootstrap", "20", "--seed", "7"])
        .arg("--out")
        .arg(&mini_alone)
        .status()
        .unwrap();
    assert!(st.success());
    let alone = rows(&mini_alone);
    let together: Vec<_> = r
        .iter()
        .filter(|x| x["student"] == "mini")
        .cloned()
        .collect();
    assert_eq!(
        alone, together,
        "a student's rows do not depend on the other students"
    );
    // A merge missing a shard is refused.
    expect_user_error(
        bin()
            .args(["compare", "--merge"])
            .arg(dir.join("shard0"))
            .arg("--out")
            .arg(dir.join("m2")),
        &["shard 1/2 is missing"],
    );

    // Stores of different data sets: a named error naming both, exit 2.
    let other = dir.join("other.jsonl");
    std::fs::write(
        &other,
        text.lines()
            .skip(30)
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let om = dir.join("mini-other");
    capture(
        &minilm_path(),
        &other,
        &om,
        &[&["--layers", "0"][..], &mean].concat(),
    );
    let mut o = bin();
    o.args(["compare", "--base"])
        .arg(&sm)
        .arg("--student")
        .arg(format!("x={}", om.display()))
        .arg("--out")
        .arg(dir.join("bad"));
    expect_user_error(&mut o, &["different data sets", "mini-other", "smol"]);
}
