//! Probes: planted-direction recovery, Bayes rate, transfer under a nuisance direction,
//! agreement with scikit-learn, folds that never split a pair, determinism, and the
//! `probe` / `transfer` commands end to end.
//!
//! scikit-learn truth: `tests/reference/probe_reference.json`, written by
//! `tests/reference/make_probe_reference.py` from `probe_inputs.safetensors`.

use std::path::Path;

use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use repdrift::probe::{cross_validate, fit_pairwise, folds, ProbeData, Solver};
use safetensors::SafeTensors;

use super::common::*;

fn gauss(rng: &mut StdRng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn unit(rng: &mut StdRng, d: usize) -> Array1<f64> {
    let v: Array1<f64> = (0..d).map(|_| gauss(rng)).collect();
    let n = v.dot(&v).sqrt();
    v / n
}

/// Δh = mu·u + nu·v + N(0, I).
fn pairs(
    rng: &mut StdRng,
    n: usize,
    u: &Array1<f64>,
    v: &Array1<f64>,
    mu: f64,
    nu: f64,
) -> Array2<f64> {
    let d = u.len();
    Array2::from_shape_fn((n, d), |(_, j)| mu * u[j] + nu * v[j])
        + Array2::from_shape_fn((n, d), |_| gauss(rng))
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, |error| < 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
            + 0.254829592)
            * t
            * (-z * z).exp();
    0.5 * (1.0 + y.copysign(z))
}

fn orth(rng: &mut StdRng, u: &Array1<f64>) -> Array1<f64> {
    let mut v = unit(rng, u.len());
    v = &v - &(u * u.dot(&v));
    let n = v.dot(&v).sqrt();
    v / n
}

#[test]
fn probe_recovers_planted_direction_at_the_bayes_rate() {
    let mut rng = StdRng::seed_from_u64(11);
    let d = 20;
    let u = unit(&mut rng, d);
    let v = orth(&mut rng, &u);
    let mu = 0.8;
    let data = ProbeData::Pairs(pairs(&mut rng, 3000, &u, &v, mu, 0.0));
    let cv = cross_validate(&data, &[0.001, 0.01, 0.1, 1.0], 5, 0, Solver::default()).unwrap();
    let bayes = phi(mu); // u·Δ ~ N(mu, 1)
    assert!(
        (cv.accuracy - bayes).abs() < 0.02,
        "in-dist {} vs Bayes {bayes}",
        cv.accuracy
    );
    let probe = data.fit(cv.c, Solver::default()).unwrap();
    let dir = probe.direction();
    let cos = dir.dot(&u) / dir.dot(&dir).sqrt();
    assert!(cos > 0.95, "cosine to the planted direction {cos}");
}

#[test]
fn transfer_drops_exactly_when_a_nuisance_separates_the_source() {
    let mut rng = StdRng::seed_from_u64(12);
    let d = 20;
    let u = unit(&mut rng, d);
    let v = orth(&mut rng, &u);
    let s = Solver::default();
    // Source A: the nuisance v separates the pairs far better than the goal u.
    let src_nuisance = pairs(&mut rng, 2000, &u, &v, 0.3, 2.5);
    // Source B: the goal only.
    let src_clean = pairs(&mut rng, 2000, &u, &v, 0.8, 0.0);
    // Targets: the goal with no nuisance, and with the nuisance reversed.
    let target = ProbeData::Pairs(pairs(&mut rng, 2000, &u, &v, 0.8, 0.0));
    let reversed = ProbeData::Pairs(pairs(&mut rng, 2000, &u, &v, 0.8, -2.5));
    let pa = fit_pairwise(src_nuisance.view(), 0.1, s).unwrap();
    let pb = fit_pairwise(src_clean.view(), 0.1, s).unwrap();
    let in_a = ProbeData::Pairs(src_nuisance.clone()).evaluate(&pa).0;
    let (ta, tb) = (target.evaluate(&pa).0, target.evaluate(&pb).0);
    let (ra, rb) = (reversed.evaluate(&pa).0, reversed.evaluate(&pb).0);
    assert!(in_a > 0.9, "the nuisance fits the source: {in_a}");
    assert!(
        (tb - phi(0.8)).abs() < 0.03,
        "clean source transfers at the Bayes rate: {tb}"
    );
    assert!(
        ta < tb - 0.08,
        "nuisance source transfers worse: {ta} vs {tb}"
    );
    assert!(
        ra < 0.2,
        "reversed nuisance: the nuisance probe inverts: {ra}"
    );
    assert!(
        rb > tb - 0.03,
        "the goal probe does not care about the nuisance: {rb} vs {tb}"
    );
}

#[test]
fn accuracy_and_auc_agree_with_scikit_learn() {
    let dir = root().join("tests/reference");
    let bytes = std::fs::read(dir.join("probe_inputs.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let get = |k: &str| {
        let t = st.tensor(k).unwrap();
        let v: Vec<f64> = t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let s = t.shape().to_vec();
        if s.len() == 1 {
            Array2::from_shape_vec((s[0], 1), v).unwrap()
        } else {
            Array2::from_shape_vec((s[0], s[1]), v).unwrap()
        }
    };
    let refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("probe_reference.json")).unwrap()).unwrap();
    let train = ProbeData::Pairs(get("pair_train"));
    let test = ProbeData::Pairs(get("pair_test"));
    for (c, want) in refs["pairwise"].as_object().unwrap() {
        let probe = train.fit(c.parse().unwrap(), Solver::tight()).unwrap();
        let (acc, auc) = test.evaluate(&probe);
        assert!(
            (acc - want["accuracy"].as_f64().unwrap()).abs() <= 0.005,
            "C {c}: acc {acc} vs {}",
            want["accuracy"]
        );
        assert!(
            (auc.unwrap() - want["auc"].as_f64().unwrap()).abs() <= 0.005,
            "C {c}: auc {auc:?} vs {}",
            want["auc"]
        );
    }
    let yl: Vec<bool> = get("label_train_y").iter().map(|&v| v > 0.5).collect();
    let yt: Vec<bool> = get("label_test_y").iter().map(|&v| v > 0.5).collect();
    let train = ProbeData::Labels(get("label_train_x"), yl);
    let test = ProbeData::Labels(get("label_test_x"), yt);
    for (c, want) in refs["label"].as_object().unwrap() {
        let probe = train.fit(c.parse().unwrap(), Solver::tight()).unwrap();
        let (acc, auc) = test.evaluate(&probe);
        assert!(
            (acc - want["accuracy"].as_f64().unwrap()).abs() <= 0.005,
            "label C {c}: {acc} vs {}",
            want["accuracy"]
        );
        assert!(
            (auc.unwrap() - want["auc"].as_f64().unwrap()).abs() <= 0.005,
            "label C {c}: {auc:?} vs {}",
            want["auc"]
        );
    }
}

/// Regression guard for the classic leak: if a held-out pair's flipped copy were in the
/// training folds, a probe on pure noise (d > n) would score held-out pairs far above chance.
#[test]
fn folds_never_split_a_pair() {
    let mut rng = StdRng::seed_from_u64(13);
    let noise = Array2::from_shape_fn((120, 300), |_| gauss(&mut rng));
    let cv = cross_validate(&ProbeData::Pairs(noise), &[1.0], 5, 3, Solver::default()).unwrap();
    assert!(
        cv.accuracy < 0.65,
        "held-out accuracy on noise {}",
        cv.accuracy
    );
    let f = folds(103, 5, 9);
    let mut sizes = [0usize; 5];
    f.iter().for_each(|&k| sizes[k] += 1);
    assert!(sizes.iter().all(|&s| s == 20 || s == 21), "{sizes:?}");
    assert_eq!(f, folds(103, 5, 9));
    assert_ne!(f, folds(103, 5, 10));
}

fn capture(model: &Path, data: &Path, out: &Path) {
    let st = bin()
        .args(["capture", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--layers", "0,3,6", "--pool", "mean", "--max-tokens", "96"])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn probe_and_transfer_cli_end_to_end() {
    let dir = scratch("probe-cli");
    let take = |src: &str, n: usize, name: &str| {
        let text = std::fs::read_to_string(root().join("probes/data").join(src)).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text.lines().take(n).collect::<Vec<_>>().join("\n")).unwrap();
        p
    };
    let (src, tgt, texts) = (
        take("source.jsonl", 80, "src.jsonl"),
        take("target_plain.jsonl", 60, "tgt.jsonl"),
        take("texts.jsonl", 40, "t.jsonl"),
    );
    let m = minilm_path();
    capture(&m, &src, &dir.join("s"));
    capture(&m, &tgt, &dir.join("t"));
    capture(&m, &texts, &dir.join("x"));
    // The same model's store stands in for "another model" (same width, same examples).
    let run = |out: &str| {
        let st = bin()
            .args(["probe", "--model", "minilm", "--train"])
            .arg(format!("src={}", dir.join("s").display()))
            .arg("--eval")
            .arg(format!("plain={}", dir.join("t").display()))
            .arg("--apply-to")
            .arg(format!("copy={}", dir.join("s").display()))
            .args([
                "--control",
                "--folds",
                "4",
                "--c",
                "0.01,1",
                "--seed",
                "5",
                "--out",
            ])
            .arg(dir.join(out))
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(dir.join(out).join("probe.json")).unwrap()
    };
    let a = run("p1");
    assert_eq!(a, run("p2"), "same seed, same bytes");
    let r: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(r["format"], "repdrift-probe");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        3 * 5,
        "3 layers × (in_dist, transfer, 2 cross_model, control)"
    );
    for row in rows {
        let acc = row["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        if row["kind"] == "in_dist" {
            assert_eq!(row["n"], 80);
        }
        if row["kind"] == "control" {
            let sel = row["selectivity"].as_f64().unwrap();
            assert!(sel.is_finite());
        }
    }
    // The source cue separates the source set at the top layer.
    let top = rows
        .iter()
        .find(|x| x["kind"] == "in_dist" && x["layer"] == 6)
        .unwrap();
    assert!(top["accuracy"].as_f64().unwrap() > 0.9, "{top}");
    let csv = std::fs::read_to_string(dir.join("p1/probe.csv")).unwrap();
    assert_eq!(csv.lines().count(), 16);
    // Labelled texts: a plain logistic probe.
    let st = bin()
        .args(["probe", "--train"])
        .arg(dir.join("x"))
        .args(["--folds", "4", "--out"])
        .arg(dir.join("px"))
        .status()
        .unwrap();
    assert!(st.success());
    // A target of another width is a named error.
    let mut o = bin();
    o.args(["probe", "--train"])
        .arg(dir.join("s"))
        .arg("--eval")
        .arg(format!("x={}", dir.join("x").display()))
        .arg("--out")
        .arg(dir.join("bad"));
    expect_user_error(&mut o, &["fields"]);

    // transfer: IDG, AOG, PGR, NTS from given accuracies.
    let scores = dir.join("scores.json");
    std::fs::write(
        &scores,
        r#"{"source":"src","targets":["a","b"],"weak":"w","ceiling":"gold","accuracy":{
            "w":{"src":0.60,"a":0.55,"b":0.50},"gold":{"src":0.70,"a":0.65,"b":0.60},
            "naive":{"src":0.68,"a":0.55,"b":0.49},"anchor":{"src":0.58,"a":0.60,"b":0.56}}}"#,
    )
    .unwrap();
    assert!(bin()
        .args(["transfer", "--scores"])
        .arg(&scores)
        .arg("--out")
        .arg(dir.join("transfer.json"))
        .status()
        .unwrap()
        .success());
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("transfer.json")).unwrap()).unwrap();
    let s = t["students"].as_array().unwrap();
    let anchor = s.iter().find(|x| x["name"] == "anchor").unwrap();
    let naive = s.iter().find(|x| x["name"] == "naive").unwrap();
    let close = |v: &serde_json::Value, w: f64| {
        assert!((v.as_f64().unwrap() - w).abs() < 1e-9, "{v} vs {w}")
    };
    close(&naive["idg"], 8.0);
    close(&naive["aog"], -0.5);
    close(&naive["nts"], -0.5);
    close(&naive["pgr"]["src"], 0.8);
    close(&anchor["idg"], -2.0);
    close(&anchor["aog"], 5.5);
    close(&anchor["nts"], 3.5);
    close(&anchor["pgr"]["b"], 0.6);
}
