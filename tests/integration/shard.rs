//! Issue 17: `capture --shard i/N` and `repdrift store merge`. Truth: a single-process capture
//! of the same data (the merged store must equal it byte for byte: each part depends only on
//! its own examples), and the store format (a shard opens for reading only once merged).
//! Also: without a terminal, long commands print plain progress lines.

use std::path::{Path, PathBuf};

use super::common::*;

fn capture(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["capture", "--model"])
        .arg(minilm_path())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--part-size", "4"])
        .args(extra)
        .output()
        .unwrap()
}

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn merge(shards: &[PathBuf], out: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["store", "merge"])
        .args(shards)
        .arg("--out")
        .arg(out);
    c
}

#[test]
fn merged_shards_equal_a_single_capture_byte_for_byte() {
    let dir = scratch("shard-merge");
    let data = write_pairs(&dir, 38); // 10 parts of 4 (the last holds 2)
    let single = dir.join("single");
    ok(capture(&data, &single, &[]));
    let shards: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("shard{i}"))).collect();
    // Shards in any order, each its own process.
    for i in [2, 0, 1] {
        ok(capture(&data, &shards[i], &["--shard", &format!("{i}/3")]));
    }
    // A shard holds a contiguous run of the parts (10 parts over 3 shards: 3, 3, 4).
    let parts: Vec<usize> = shards
        .iter()
        .map(|s| {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(s.join("manifest.json")).unwrap()).unwrap();
            m["parts"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(parts, [3, 3, 4]);
    // A shard alone does not open as a store.
    let e = repdrift::capture::Store::open(&shards[0])
        .err()
        .expect("a shard must not open as a store")
        .to_string();
    assert!(
        e.contains("shard 0 of 3") && e.contains("store merge"),
        "{e}"
    );
    let merged = dir.join("merged");
    ok(merge(
        &[shards[1].clone(), shards[2].clone(), shards[0].clone()],
        &merged,
    )
    .output()
    .unwrap());
    assert!(
        tree(&merged) == tree(&single),
        "the merged store differs from a single-process capture"
    );
    repdrift::capture::Store::open(&merged).unwrap();
}

#[test]
fn shards_that_do_not_fit_together_are_refused_by_name() {
    let dir = scratch("shard-refusals");
    let data = write_pairs(&dir, 16);
    let other = write_pairs(&scratch("shard-refusals-other"), 17);
    let s = |name: &str| dir.join(name);
    ok(capture(&data, &s("a0"), &["--shard", "0/2"]));
    ok(capture(&data, &s("a1"), &["--shard", "1/2"]));
    ok(capture(&other, &s("b1"), &["--shard", "1/2"]));
    ok(capture(&data, &s("c1"), &["--shard", "1/3"]));
    ok(capture(&data, &s("whole"), &[]));
    let out = s("out");
    let refused = |shards: &[&str], needles: &[&str]| {
        let v: Vec<PathBuf> = shards.iter().map(|n| s(n)).collect();
        expect_user_error(&mut merge(&v, &out), needles);
        assert!(!out.exists(), "{shards:?}: merge left {}", out.display());
    };
    refused(&["a0"], &["shard 1/2 missing"]);
    refused(&["a0", "a0"], &["both are shard 0/2"]);
    refused(&["a0", "b1"], &["different captures", "dataset"]);
    refused(&["a0", "c1"], &["shards of 2 and of 3 shards"]);
    refused(&["a0", "whole"], &["whole", "not a shard store"]);
    // A part changed after capture.
    let bad = s("a1bad");
    copy_tree(&s("a1"), &bad);
    let p = bad.join("resid_post/layer_002/part_00003.safetensors");
    let mut b = std::fs::read(&p).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&p, b).unwrap();
    refused(
        &["a0", "a1bad"],
        &["layer_002/part_00003.safetensors", "sha256"],
    );
    // An unfinished shard (as a kill leaves it).
    let mp = bad.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    m["complete"] = false.into();
    std::fs::write(&mp, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    refused(&["a0", "a1bad"], &["incomplete", "--shard 1/2 --resume"]);
    // More shards than parts; a malformed shard.
    let tiny = |extra: &[&str]| {
        let mut c = minilm_capture(&data, &s("tiny"));
        c.args(extra);
        c
    };
    expect_user_error(
        &mut tiny(&["--part-size", "8", "--shard", "0/3"]),
        &["shard 0/3 holds no part", "2 parts"],
    );
    assert!(!s("tiny").exists());
    expect_user_error(&mut tiny(&["--shard", "3/3"]), &["3/3", "0 ≤ i < N"]);
}

/// Without a terminal (a batch job, CI), capture, compare and train print plain progress
/// lines — stage, done/total, rate, ETA — every REPDRIFT_PROGRESS_SECS seconds.
#[test]
fn without_a_terminal_long_commands_print_progress_lines() {
    let dir = scratch("progress-lines");
    let data = write_pairs(&dir, 12);
    let store = dir.join("store");
    let o = ok(bin()
        .env("REPDRIFT_PROGRESS_SECS", "0")
        .args(["capture", "--model"])
        .arg(minilm_path())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&store)
        .args(["--part-size", "4", "--shard", "0/1"])
        .output()
        .unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("repdrift: capture shard 0/1: 0/12 examples (0 %)")
            && err.contains("tok/s")
            && err.contains("ETA"),
        "{err}"
    );
    let merged = dir.join("merged");
    ok(merge(&[store], &merged).output().unwrap());
    let o = ok(bin()
        .env("REPDRIFT_PROGRESS_SECS", "0")
        .args(["compare", "--base"])
        .arg(&merged)
        .arg("--student")
        .arg(format!("s={}", merged.display()))
        .arg("--out")
        .arg(dir.join("m"))
        .output()
        .unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("repdrift: compare: 7/7 layers (100 %)") && err.contains("layers/s"),
        "{err}"
    );
    let model = dir.join("base");
    std::fs::create_dir_all(&model).unwrap();
    write_checkpoint(&model, true);
    let o = ok(bin()
        .env("REPDRIFT_PROGRESS_SECS", "0")
        .args(["train", "--base"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.join("t"))
        .args([
            "--method",
            "gold",
            "--trainable",
            "top:1",
            "--batch-size",
            "4",
        ])
        .output()
        .unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("repdrift: train: training") && err.contains("steps/s, ETA"),
        "{err}"
    );
}
