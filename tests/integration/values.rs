//! `values`: the agency–communion measures, checked by symmetry and identity, and the command
//! on SmolLM2 with the repo's lexicon.

use std::path::Path;

use candle_core::Device;
use repdrift::bias::score::Scorer;
use repdrift::bias::values::{values, ValueReport};
use repdrift::bias::ScoreParams;
use repdrift::capture::NoProgress;

use super::common::*;

/// Matched pairs in the lexicon's shape over the tiny models' words (`w0` … `w31`); with
/// `swap` the two slots are exchanged.
fn items(dir: &Path, swap: bool) -> std::path::PathBuf {
    let mut s = String::new();
    for i in 0..12 {
        let (a, c) = (
            format!(" w{} w9", 1 + i % 7),
            format!(" w{} w9", 10 + i % 11),
        );
        let (x, y) = if swap { (c, a) } else { (a, c) };
        s += &serde_json::json!({"prompt": format!("w3 w{}", 20 + i % 5), "chosen": x, "rejected": y})
            .to_string();
        s.push('\n');
    }
    let p = dir.join(if swap { "swapped.jsonl" } else { "items.jsonl" });
    std::fs::write(&p, s).unwrap();
    p
}

/// One sequence per forward pass: swapping the slots regroups the sequences into other
/// batches, and OpenBLAS may round a row differently in a matrix of another height (1e-6
/// relative on some hosts), far above the 1e-9 these symmetries are checked to. Alone in its
/// pass, each sequence's values are the same bits in either order.
fn run(model: &Path, base: Option<&Path>, items: &Path) -> ValueReport {
    let m = load(model);
    let b = base.map(load);
    let params = ScoreParams {
        batch_size: 1,
        ..ScoreParams::default()
    }
    .check()
    .unwrap();
    let s = Scorer::new(m.as_ref(), &params, &Device::Cpu);
    let bs = b.as_deref().map(|b| Scorer::new(b, &params, &Device::Cpu));
    let ds = repdrift::data::read_jsonl(items, None).unwrap();
    values(&s, bs.as_ref(), &ds, &mut NoProgress).unwrap()
}

/// Truth: symmetry. Exchanging the agency and communion slots negates the mean difference,
/// Cohen's d and every layer's alignment (the axis flips, the reward direction does not), and
/// turns the agency win rate w into 1 − w; decodability is unchanged.
#[test]
fn swapping_the_axes_mirrors_every_measure() {
    let dir = scratch("values-swap");
    for model in ["tests/reference/hf_rm_tiny", "tests/reference/tiny/llama"] {
        let m = root().join(model);
        let a = run(&m, None, &items(&dir, false));
        let b = run(&m, None, &items(&dir, true));
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9 * (1.0 + x.abs());
        assert!(close(a.value.diff_mean, -b.value.diff_mean), "{model}");
        assert!(close(a.value.cohen_d.unwrap(), -b.value.cohen_d.unwrap()));
        assert!(close(
            a.value.agency_wins.accuracy,
            1.0 - b.value.agency_wins.accuracy
        ));
        assert_eq!(a.layers.len(), b.layers.len());
        for (x, y) in a.layers.iter().zip(&b.layers) {
            assert!(close(x.decodability.unwrap(), y.decodability.unwrap()));
            if let (Some(p), Some(q)) = (x.alignment, y.alignment) {
                assert!((p + q).abs() < 1e-6, "{model} layer {}: {p} {q}", x.layer);
            }
        }
    }
}

/// Truth: identity. A model measured against itself as base keeps its axis (cosine 1) and its
/// alignment (change 0) at every layer where the axis is defined, and the two reward sides
/// are equal.
#[test]
fn a_model_against_itself_as_base_moved_nowhere() {
    let dir = scratch("values-self");
    let m = root().join("tests/reference/hf_rm_tiny");
    let r = run(&m, Some(&m), &items(&dir, false));
    assert_eq!(Some(&r.value), r.base_value.as_ref());
    let mut defined = 0;
    for l in &r.layers {
        if let Some(k) = l.axis_kept {
            assert!((k - 1.0).abs() < 1e-9, "layer {}: {k}", l.layer);
            assert!(l.alignment_change.unwrap().abs() < 1e-12);
            defined += 1;
        }
    }
    assert!(defined >= 2, "{defined} layers with an axis");
}

/// The command on SmolLM2 (an LM: implicit reward) with the repo's lexicon writes its files;
/// plain texts as items are refused with exit 2.
#[test]
fn cli_measures_smollm2_on_the_lexicon() {
    let dir = scratch("values-cli");
    let out = dir.join("out");
    let st = bin()
        .current_dir(root())
        .args(["values", "--model"])
        .arg(smollm2_path())
        .args(["--limit", "6", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let md = std::fs::read_to_string(out.join("values.md")).unwrap();
    assert!(md.contains("6 pairs of the value lexicon"), "{md}");
    let csv = std::fs::read_to_string(out.join("values.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 31);
    let texts = dir.join("texts.jsonl");
    std::fs::write(&texts, "{\"text\": \"kind and strong\"}\n").unwrap();
    let bad = dir.join("bad");
    expect_user_error(
        bin()
            .args(["values", "--model"])
            .arg(smollm2_path())
            .arg("--items")
            .arg(&texts)
            .arg("--out")
            .arg(&bad),
        &["value items are matched pairs"],
    );
    assert!(!bad.exists());
}
