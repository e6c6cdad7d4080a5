//! `cues`: the counterfactual edits, measured where the answer is known.

use std::path::Path;

use candle_core::Device;
use repdrift::bias::cues::{cues, Cue, CueReport, PADDING};
use repdrift::bias::score::{RewardSource, Scorer};
use repdrift::bias::ScoreParams;
use repdrift::capture::NoProgress;

use super::common::*;

/// Pairs whose chosen reply is the rejected reply plus the length cue's padding, so that the
/// `length` edit of each rejected reply *is* its chosen reply.
fn padded_pairs(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut s = String::new();
    for i in 0..n {
        let reply = format!(" Mix the flour {i}. Then wait");
        s += &serde_json::json!({
            "prompt": format!("How do I bake bread number {i}?"),
            "chosen": format!("{reply} {PADDING}"),
            "rejected": reply,
        })
        .to_string();
        s.push('\n');
    }
    let p = dir.join("padded.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

fn run(model: &Path, reference: Option<&Path>, data: &Path) -> CueReport {
    let m = load(model);
    let r = reference.map(load);
    let params = ScoreParams {
        max_tokens: Some(128),
        batch_size: 3,
    }
    .check()
    .unwrap();
    let scorer = Scorer {
        model: m.as_ref(),
        reference: r.as_deref(),
        params: &params,
        device: &Device::Cpu,
    };
    let ds = repdrift::data::read_jsonl(data, None).unwrap();
    cues(&scorer, &ds, &mut NoProgress).unwrap()
}

/// Truth: by construction. The length edit of a rejected reply reproduces its chosen reply, and
/// a chosen reply already carries the padding (so it is left out): the length cue's mean change
/// is the mean margin chosen − rejected, and no pair flips (the edit ties the chosen reply).
/// Checked on a reward head (a tiny HF `LlamaForSequenceClassification`) and on an implicit
/// reward (a tiny causal LM); tolerance 1e-4 for rows computed in different padded batches.
#[test]
fn length_edit_that_reproduces_the_chosen_reply_moves_the_reward_by_the_margin() {
    let dir = scratch("cues-planted");
    let data = padded_pairs(&dir, 12);
    for (model, source) in [
        ("tests/reference/hf_rm_tiny", RewardSource::Head),
        ("tests/reference/tiny/llama", RewardSource::Implicit),
    ] {
        let r = run(&root().join(model), None, &data);
        assert_eq!(r.reward, source);
        let len = r.cues.iter().find(|c| c.cue == Cue::Length).unwrap();
        assert_eq!(
            len.n, 12,
            "{model}: only the 12 rejected replies take the padding"
        );
        let ds = repdrift::data::read_jsonl(&data, None).unwrap();
        let m = load(&root().join(model));
        let params = ScoreParams::default().check().unwrap();
        let s = Scorer {
            model: m.as_ref(),
            reference: None,
            params: &params,
            device: &Device::Cpu,
        };
        let items: Vec<_> = ds
            .examples
            .iter()
            .flat_map(|e| {
                e.sequences.iter().map(|q| repdrift::bias::score::Item {
                    seq: q.clone(),
                    line: e.line,
                })
            })
            .collect();
        let rw = s
            .score(&items, &data, false, &mut NoProgress)
            .unwrap()
            .rewards;
        let margin: f64 = rw.chunks(2).map(|p| p[0] - p[1]).sum::<f64>() / 12.0;
        assert!(
            (len.mean_delta - margin).abs() < 1e-4,
            "{model}: Δ {} vs margin {margin}",
            len.mean_delta
        );
        assert_eq!(len.flip_rate.unwrap_or(0.0), 0.0, "{model}");
        // Every other cue edits all 24 replies; every layer reports a decodability.
        for c in r.cues.iter().filter(|c| c.cue != Cue::Length) {
            assert_eq!(c.n, 24, "{model} {:?}", c.cue);
            assert!(c.layers.iter().all(|l| l.decodability.is_some()));
        }
    }
}

/// Property: a causal LM against itself as reference gives reward 0 everywhere — no cue moves
/// it and its sd is 0.
#[test]
fn an_lm_against_itself_is_insensitive_to_every_cue() {
    let dir = scratch("cues-self");
    let data = write_pairs(&dir, 8);
    let llama = root().join("tests/reference/tiny/llama");
    let r = run(&llama, Some(&llama), &data);
    assert_eq!(r.reward_sd, 0.0);
    for c in &r.cues {
        assert_eq!((c.mean_delta, c.effect_sd), (0.0, 0.0), "{:?}", c.cue);
    }
}

/// The command on SmolLM2 writes its three files; plain texts and a reference for a reward
/// model are refused with exit 2.
#[test]
fn cli_writes_cue_outputs_and_refuses_bad_input() {
    let dir = scratch("cues-cli");
    let data = write_pairs(&dir, 6);
    let out = dir.join("out");
    let st = bin()
        .args(["cues", "--model"])
        .arg(smollm2_path())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let md = std::fs::read_to_string(out.join("cues.md")).unwrap();
    assert!(md.contains("| apology |"), "{md}");
    let csv = std::fs::read_to_string(out.join("cues.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 31, "4 cues × 31 layers");
    let texts = dir.join("texts.jsonl");
    std::fs::write(&texts, "{\"text\": \"one two three\"}\n").unwrap();
    let bad = dir.join("bad");
    expect_user_error(
        bin()
            .args(["cues", "--model"])
            .arg(smollm2_path())
            .arg("--data")
            .arg(&texts)
            .arg("--out")
            .arg(&bad),
        &["cues need preference pairs"],
    );
    expect_user_error(
        bin()
            .args(["cues", "--model"])
            .arg(root().join("tests/reference/hf_rm_tiny"))
            .arg("--reference")
            .arg(smollm2_path())
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&bad),
        &["is a reward model"],
    );
    assert!(!bad.exists());
}

/// `repdrift report --cues/--values` adds the section to report.md and index.html, with the
/// gold comparison: the same model as gold and as student differs by exactly 0.
#[test]
fn report_gains_the_cue_and_value_section() {
    let dir = scratch("cues-report");
    let data = write_pairs(&dir, 6);
    let rm = root().join("tests/reference/hf_rm_tiny");
    let out_c = dir.join("cues");
    let out_v = dir.join("values");
    for (cmd, out, extra) in [
        (
            "cues",
            &out_c,
            vec!["--data".to_string(), data.display().to_string()],
        ),
        (
            "values",
            &out_v,
            vec!["--limit".to_string(), "4".to_string()],
        ),
    ] {
        let st = bin()
            .current_dir(root())
            .arg(cmd)
            .arg("--model")
            .arg(&rm)
            .args(&extra)
            .arg("--out")
            .arg(out)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }
    let f = root().join("tests/fixtures/report");
    let rep = dir.join("report");
    let st = bin()
        .args(["report", "--metrics"])
        .arg(f.join("metrics"))
        .arg("--probe")
        .arg(f.join("probe_base"))
        .arg("--cues")
        .arg(format!("gold={}", out_c.display()))
        .arg("--cues")
        .arg(format!("naive={}", out_c.display()))
        .arg("--values")
        .arg(format!("naive={}", out_v.display()))
        .args(["--gold", "gold", "--out"])
        .arg(&rep)
        .status()
        .unwrap();
    assert!(st.success());
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("## What else did the students learn? Cues and values"));
    assert!(md.contains("| naive | head |"), "{md}");
    assert!(md.contains("is +0.00 sd (naive,"), "{md}");
    let html = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(html.contains("<h2>What else did the students learn? Cues and values</h2>"));
}
