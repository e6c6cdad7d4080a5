//! The activation store: layout, reader, resume bit-identity, and every input error the
//! capture command promises to name (through the CLI, with exit code 2).

use std::path::{Path, PathBuf};

use candle_core::Device;
use repdrift::capture::{
    capture, pool_sequences, prepare_example, CaptureParams, LayerSelection, NoProgress, Pooling,
    Store,
};
use repdrift::data::read_jsonl;
use repdrift::model::{HookPoint, HookRequest};

use super::common::*;

fn write_pairs(dir: &Path, n: usize) -> PathBuf {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(
            &serde_json::json!({
                "prompt": format!("Question {i}: how should I handle situation number {i}?"),
                "chosen": format!(" Calmly and safely, step {i}."),
                "rejected": format!(" Recklessly{}", "!".repeat(i % 4)),
                "label": (i % 2) as f64,
                "id": format!("ex-{i}"),
            })
            .to_string(),
        );
        s.push('\n');
        if i == 2 {
            s.push('\n'); // blank lines are skipped
        }
    }
    let p = dir.join("pairs.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn store_layout_and_reader_match_direct_pooling() {
    let dir = scratch("store-layout");
    let data_path = write_pairs(&dir, 5);
    let model = load(&minilm_path());
    let data = read_jsonl(&data_path, None).unwrap();
    let params = CaptureParams {
        pooling: Pooling::ResponseMean,
        hooks: vec![HookPoint::ResidPost, HookPoint::MlpOut],
        layers: LayerSelection::List(vec![1, 3, 6]),
        part_size: 2,
        batch_size: 3,
        ..Default::default()
    }
    .check()
    .unwrap();
    let out = dir.join("store");
    capture(
        model.as_ref(),
        &data,
        &out,
        &params,
        &Device::Cpu,
        &mut NoProgress,
    )
    .unwrap();
    for rel in [
        "manifest.json",
        "resid_post/layer_001/part_00000.safetensors",
        "resid_post/layer_006/part_00002.safetensors",
        "mlp_out/layer_003/part_00001.safetensors",
        "examples/part_00002.safetensors",
    ] {
        assert!(out.join(rel).is_file(), "{rel} missing");
    }
    assert!(
        !out.join("resid_post/layer_000").exists(),
        "layer 0 was not requested"
    );
    let store = Store::open(&out).unwrap();
    let m = store.manifest();
    assert_eq!(m.format, "repdrift-activations");
    assert_eq!(m.fields, vec!["chosen", "rejected"]);
    assert_eq!(m.parts.len(), 3);
    assert_eq!(m.example_fields, vec!["n_tokens", "label"]);
    assert!(m.complete);
    // The reader returns exactly what pooling produced, in dataset order, fields split.
    let seqs: Vec<_> = data
        .examples
        .iter()
        .flat_map(|e| {
            prepare_example(
                model.as_ref(),
                e,
                Pooling::ResponseMean,
                Some(512),
                &data_path,
            )
            .unwrap()
        })
        .collect();
    let hooks = HookRequest::new(&[HookPoint::ResidPost], &[3], 6).unwrap();
    let direct = pool_sequences(model.as_ref(), &seqs, &hooks, 1, &Device::Cpu, |_, _| {}).unwrap();
    let direct = &direct[&(HookPoint::ResidPost, 3)];
    let d = 384;
    for (fi, field) in ["chosen", "rejected"].iter().enumerate() {
        let x = store.read(HookPoint::ResidPost, 3, field).unwrap();
        assert_eq!(x.dim(), (5, d));
        for r in 0..5 {
            let want = &direct[(r * 2 + fi) * d..(r * 2 + fi + 1) * d];
            let got: Vec<f32> = x.row(r).to_vec();
            assert!(rel_err(&got, want) < 1e-5);
        }
    }
    let ex = store.examples(1).unwrap();
    assert_eq!(ex.n_tokens.dim(), (2, 2));
    assert_eq!(ex.numeric["label"], vec![0.0, 1.0]);
    assert_eq!(ex.extras[0]["id"], "ex-2");
    assert_eq!(
        ex.extras[1]["line"], 5,
        "the blank line after line 3 counts"
    );
    // Asking for something the store lacks is a named error.
    let e = store
        .read(HookPoint::ResidPost, 2, "chosen")
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 2") && e.contains("[1, 3, 6]"), "{e}");
}

/// The state a kill leaves behind (manifest listing k parts, some files of part k renamed into
/// place, a stray temp file) resumes into a store bit-identical to an uninterrupted run.
#[test]
fn resume_after_simulated_kill_is_bit_identical() {
    let dir = scratch("store-resume-sim");
    let data_path = write_pairs(&dir, 7);
    let model = load(&minilm_path());
    let data = read_jsonl(&data_path, None).unwrap();
    let params = CaptureParams {
        part_size: 2,
        hooks: vec![HookPoint::ResidPost, HookPoint::AttnOut],
        ..Default::default()
    };
    let full = dir.join("full");
    capture(
        model.as_ref(),
        &data,
        &full,
        &params.clone().check().unwrap(),
        &Device::Cpu,
        &mut NoProgress,
    )
    .unwrap();
    let want = files(&full);

    let cut = dir.join("cut");
    capture(
        model.as_ref(),
        &data,
        &cut,
        &params.clone().check().unwrap(),
        &Device::Cpu,
        &mut NoProgress,
    )
    .unwrap();
    let mpath = cut.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["parts"].as_array_mut().unwrap().truncate(1);
    m["complete"] = false.into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    for l in 0..=6 {
        let _ = std::fs::remove_file(
            cut.join(format!("resid_post/layer_{l:03}/part_00002.safetensors")),
        );
        let _ =
            std::fs::remove_file(cut.join(format!("attn_out/layer_{l:03}/part_00003.safetensors")));
    }
    std::fs::write(
        cut.join("resid_post/layer_004/part_00001.safetensors"),
        b"half a part",
    )
    .unwrap();
    std::fs::write(
        cut.join("resid_post/layer_004/.part_00001.safetensors.99.tmp"),
        b"junk",
    )
    .unwrap();
    assert!(
        Store::open(&cut).is_err(),
        "an incomplete store must not open"
    );

    let resumed = CaptureParams {
        resume: true,
        ..params
    }
    .check()
    .unwrap();
    let s = capture(
        model.as_ref(),
        &data,
        &cut,
        &resumed,
        &Device::Cpu,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!((s.parts_skipped, s.parts_written), (1, 3));
    let _ = std::fs::remove_file(cut.join("resid_post/layer_004/.part_00001.safetensors.99.tmp"));
    assert_eq!(files(&cut), want);
}

/// A real SIGKILL of the binary mid-capture, then `--resume`: bit-identical to a clean run.
#[test]
fn resume_after_real_kill_is_bit_identical() {
    let dir = scratch("store-resume-kill");
    let data_path = write_pairs(&dir, 24);
    let model = smollm2_path();
    let args = |out: &Path| {
        let mut c = bin();
        c.args(["capture", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data_path)
            .arg("--out")
            .arg(out);
        c.args([
            "--part-size",
            "2",
            "--batch-size",
            "1",
            "--layers",
            "0,15,30",
        ]);
        c
    };
    let clean = dir.join("clean");
    assert!(args(&clean).status().unwrap().success());
    let killed = dir.join("killed");
    let mut child = args(&killed).spawn().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let parts = std::fs::read(killed.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|m| m["parts"].as_array().map(|a| a.len()).unwrap_or(0))
            .unwrap_or(0);
        if parts >= 2 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "capture finished before it could be killed"
        );
        assert!(t0.elapsed().as_secs() < 120);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(killed.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["complete"], false,
        "the kill came too late to test anything"
    );
    // Without --resume the store is refused, untouched.
    let out = args(&killed).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    assert!(args(&killed).arg("--resume").status().unwrap().success());
    let mut a = files(&clean);
    let mut b = files(&killed);
    // The manifest records the --out path given, which differs between the two runs.
    a.retain(|(p, _)| p != Path::new("manifest.json"));
    b.retain(|(p, _)| p != Path::new("manifest.json"));
    assert_eq!(a.len(), b.len());
    assert!(a == b, "resumed store differs from the clean run");
}

fn expect_cli_error(args: &[&str], needles: &[&str]) {
    expect_user_error(bin().args(args), needles);
}

#[test]
fn input_errors_are_named_and_write_nothing() {
    let dir = scratch("store-errors");
    let data = write_pairs(&dir, 3);
    let data_s = data.to_str().unwrap();
    let minilm = minilm_path();
    let minilm_s = minilm.to_str().unwrap();
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();

    // Missing model file.
    expect_cli_error(
        &[
            "capture",
            "--model",
            "/nonexistent/m.gguf",
            "--data",
            data_s,
            "--out",
            out_s,
        ],
        &["/nonexistent/m.gguf", "no such file"],
    );
    // Malformed JSONL: file, line and field.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"ok\"}\n{\"text\": 5}\n").unwrap();
    expect_cli_error(
        &[
            "capture",
            "--model",
            minilm_s,
            "--data",
            bad.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["bad.jsonl:2", "`text`"],
    );
    std::fs::write(&bad, "{\"text\": \"ok\"}\n{\"text\": \"cut off").unwrap();
    expect_cli_error(
        &[
            "capture",
            "--model",
            minilm_s,
            "--data",
            bad.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["bad.jsonl:2", "not valid JSON"],
    );
    // Layer out of range names the valid range.
    expect_cli_error(
        &[
            "capture", "--model", minilm_s, "--data", data_s, "--out", out_s, "--layers", "0,7",
        ],
        &["layer 7", "0..=6"],
    );
    expect_cli_error(
        &[
            "capture", "--model", minilm_s, "--data", data_s, "--out", out_s, "--hooks",
            "attn_out", "--layers", "0",
        ],
        &["layer 0", "1..=6"],
    );
    assert!(!out.exists(), "failed runs must not create the store");

    // Truncated safetensors model.
    let trunc = dir.join("minilm-trunc");
    std::fs::create_dir_all(&trunc).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(minilm.join(f), trunc.join(f)).unwrap();
    }
    let bytes = std::fs::read(minilm.join("model.safetensors")).unwrap();
    std::fs::write(trunc.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    expect_cli_error(
        &[
            "capture",
            "--model",
            trunc.to_str().unwrap(),
            "--data",
            data_s,
            "--out",
            out_s,
        ],
        &["model.safetensors", "truncated"],
    );
    // Truncated GGUF.
    let gguf = std::fs::read(smollm2_path()).unwrap();
    let tg = dir.join("trunc.gguf");
    std::fs::write(&tg, &gguf[..gguf.len() / 3]).unwrap();
    expect_cli_error(
        &[
            "capture",
            "--model",
            tg.to_str().unwrap(),
            "--data",
            data_s,
            "--out",
            out_s,
        ],
        &["trunc.gguf", "truncated"],
    );
    std::fs::write(&tg, &gguf[..1000]).unwrap();
    expect_cli_error(
        &[
            "capture",
            "--model",
            tg.to_str().unwrap(),
            "--data",
            data_s,
            "--out",
            out_s,
        ],
        &["trunc.gguf", "truncated"],
    );
    // Pickle checkpoints are refused.
    let pkl = dir.join("model.bin");
    std::fs::write(&pkl, b"\x80\x04").unwrap();
    expect_cli_error(
        &[
            "capture",
            "--model",
            pkl.to_str().unwrap(),
            "--data",
            data_s,
            "--out",
            out_s,
        ],
        &["pickle"],
    );
    assert!(!out.exists());

    // An existing non-empty store without --resume/--force is refused and left as it was.
    let ok = bin()
        .args([
            "capture", "--model", minilm_s, "--data", data_s, "--out", out_s,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let before = files(&out);
    expect_cli_error(
        &[
            "capture", "--model", minilm_s, "--data", data_s, "--out", out_s,
        ],
        &["store exists", "--resume", "--force"],
    );
    assert_eq!(files(&out), before);
    // --force overwrites.
    assert!(bin()
        .args([
            "capture", "--model", minilm_s, "--data", data_s, "--out", out_s, "--force", "--pool",
            "mean"
        ])
        .status()
        .unwrap()
        .success());
    assert_eq!(Store::open(&out).unwrap().manifest().pooling, Pooling::Mean);
    // --resume of a store made with other parameters is refused.
    expect_cli_error(
        &[
            "capture", "--model", minilm_s, "--data", data_s, "--out", out_s, "--resume",
        ],
        &["cannot resume"],
    );
}
