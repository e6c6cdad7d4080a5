//! `repdrift validate` on a real model (MiniLM) and the repo's data: every check passes, the
//! planted change is found where it was planted and nowhere before it, and bad requests fail
//! with named errors. Truth: the definitions of the checks (see `src/validate/mod.rs`) — a
//! block's noise cannot reach `hidden_states` at or below its index, so those rows must be
//! bit-identical.

use repdrift::validate::{validate, Status, ValidateParams};

use super::common::*;

fn quick_params() -> ValidateParams {
    ValidateParams {
        strengths: vec![0.01, 1.0],
        blocks: vec![3],
        permutations: 200,
        bootstrap: 10,
        students: false,
        ..Default::default()
    }
}

#[test]
fn validate_on_minilm_passes_and_finds_the_planted_change_where_it_was_planted() {
    let dev = candle_core::Device::Cpu;
    let data =
        repdrift::data::read_jsonl(&root().join("probes/w2s/source.jsonl"), Some(32)).unwrap();
    let work = scratch("validate-minilm");
    let params = quick_params().check().unwrap();
    let r = validate(&minilm_path(), &data, &params, &work, &dev, &mut |_| {}).unwrap();
    let failed: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!((r.n_layers, r.hidden_size, r.n_examples), (6, 384, 32));
    // Specificity: layers 0..=3 bit-identical; sensitivity: layer 4 moved at both strengths.
    for p in &r.planted {
        if p.layer <= 3 {
            assert_eq!(p.max_abs_diff, 0.0, "{p:?}");
        } else {
            assert!(p.max_abs_diff > 0.0, "{p:?}");
            assert!(p.deviation[0].unwrap() > r.noise_floor.deviation[0].unwrap());
        }
    }
    // The probe check ran at the middle and the last layer; the layer-matching students were
    // not asked for and say so.
    assert_eq!(
        r.probes.iter().map(|p| p.layer).collect::<Vec<_>>(),
        vec![3, 6]
    );
    assert!(r
        .layer_matching
        .skipped
        .as_deref()
        .unwrap()
        .contains("not asked"));
    let md = String::from_utf8(repdrift::validate::render_markdown(&r)).unwrap();
    assert!(md.contains("All ") && md.contains("### Block 3"), "{md}");
}

#[test]
fn validate_names_a_block_outside_the_model() {
    let dev = candle_core::Device::Cpu;
    let data =
        repdrift::data::read_jsonl(&root().join("probes/w2s/source.jsonl"), Some(16)).unwrap();
    let params = ValidateParams {
        blocks: vec![6],
        ..quick_params()
    }
    .check()
    .unwrap();
    let err = validate(
        &minilm_path(),
        &data,
        &params,
        &scratch("validate-bad"),
        &dev,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("layer 6 is out of range") && err.contains("0..=5"),
        "{err}"
    );
}

#[test]
fn validate_params_refuse_unordered_strengths_and_tiny_batches() {
    let e = ValidateParams {
        strengths: vec![0.1, 0.01],
        ..Default::default()
    }
    .check()
    .unwrap_err()
    .to_string();
    assert!(e.contains("ascending"), "{e}");
    let e = ValidateParams {
        batch_size: 1,
        ..Default::default()
    }
    .check()
    .unwrap_err()
    .to_string();
    assert!(e.contains("batch size 1"), "{e}");
}
