//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use repdrift::model::HookedModel;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn smollm2_path() -> PathBuf {
    let p = root().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} missing: run `bash scripts/fetch-models.sh`",
        p.display()
    );
    p
}

pub fn minilm_path() -> PathBuf {
    let p = root().join("models/all-minilm-l6-v2");
    assert!(
        p.join("model.safetensors").exists(),
        "{} missing: run `bash scripts/fetch-models.sh`",
        p.display()
    );
    p
}

pub fn load(path: &Path) -> Box<dyn HookedModel> {
    repdrift::model::load(path, &Device::Cpu).unwrap()
}

/// ‖a − b‖ / ‖b‖ in f64.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

/// A test directory under target/ that is removed first.
pub fn scratch(name: &str) -> PathBuf {
    let d = root().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `repdrift` binary built for these tests.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_repdrift"))
}

/// `repdrift train --method gold` of `model` on `data` into `out`, then `extra` arguments (the
/// kill trials, the lock test and the determinism test train this way).
pub fn gold_train(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = bin();
    c.args(["train", "--base"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--method", "gold"])
        .args(extra);
    c
}

/// Run `cmd`, expect exit code 2 (a user error) and every needle in its stderr.
pub fn expect_user_error(cmd: &mut std::process::Command, needles: &[&str]) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{cmd:?}: stderr {err}");
    for n in needles {
        assert!(err.contains(n), "{cmd:?}: `{n}` not in: {err}");
    }
}

pub const VOCAB: usize = 32;

/// Write a tiny random Llama checkpoint in HF layout (3 blocks, hidden 64, GQA 4/2 heads, a
/// whitespace word-level tokenizer over the words `w0` … `w31`) and return its config.
pub fn write_checkpoint(dir: &Path, tie: bool) -> serde_json::Value {
    let cfg = serde_json::json!({
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_theta": 5000.0, "rope_type": "default"},
        "vocab_size": VOCAB,
        "max_position_embeddings": 64,
        "tie_word_embeddings": tie
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let dev = Device::Cpu;
    let mut w: HashMap<String, Tensor> = HashMap::new();
    // Seeded values, so every test run sees the same "random" model.
    let mut seed = 1u64;
    let mut add = |name: &str, shape: &[usize], scale: f64| {
        let n: usize = shape.iter().product();
        seed += 1;
        let v = repdrift::train::reward_model::seeded_normal(n, scale, seed);
        w.insert(name.to_string(), Tensor::from_vec(v, shape, &dev).unwrap());
    };
    add("model.embed_tokens.weight", &[VOCAB, 64], 1.0);
    for i in 0..3 {
        let p = format!("model.layers.{i}");
        add(&format!("{p}.input_layernorm.weight"), &[64], 1.0);
        add(&format!("{p}.post_attention_layernorm.weight"), &[64], 1.0);
        add(&format!("{p}.self_attn.q_proj.weight"), &[64, 64], 0.125);
        add(&format!("{p}.self_attn.k_proj.weight"), &[32, 64], 0.125);
        add(&format!("{p}.self_attn.v_proj.weight"), &[32, 64], 0.125);
        add(&format!("{p}.self_attn.o_proj.weight"), &[64, 64], 0.125);
        add(&format!("{p}.mlp.gate_proj.weight"), &[96, 64], 0.125);
        add(&format!("{p}.mlp.up_proj.weight"), &[96, 64], 0.125);
        add(&format!("{p}.mlp.down_proj.weight"), &[64, 96], 0.1);
    }
    add("model.norm.weight", &[64], 1.0);
    if !tie {
        add("lm_head.weight", &[VOCAB, 64], 0.125);
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = (0..VOCAB)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_vec(&tok).unwrap(),
    )
    .unwrap();
    cfg
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` (relative path, bytes), sorted; temp files of killed writers
/// (`.NAME.PID.tmp`) are left out: no reader ever opens them.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Run `cmd` and SIGKILL it after `after`; true when it was killed (false: it had finished).
pub fn kill_after(cmd: &mut std::process::Command, after: std::time::Duration) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// What a kill may leave in a store: no manifest, or a manifest that parses and lists only
/// parts whose files are complete safetensors with the rows it says.
pub fn check_store_state(dir: &Path) {
    let Ok(bytes) = std::fs::read(dir.join("manifest.json")) else {
        return;
    };
    let m: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest always parses");
    for p in m["parts"].as_array().unwrap() {
        let idx = p["index"].as_u64().unwrap();
        let f = dir.join(format!("resid_post/layer_003/part_{idx:05}.safetensors"));
        let b = std::fs::read(&f).unwrap_or_else(|_| panic!("listed part {} missing", f.display()));
        let st = safetensors::SafeTensors::deserialize(&b).expect("listed part is complete");
        assert_eq!(
            st.tensor("chosen").unwrap().shape()[0] as u64,
            p["rows"].as_u64().unwrap()
        );
    }
}

/// The hex sha256 `sha256sum` prints.
pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn write_pairs(dir: &Path, n: usize) -> PathBuf {
    let mut s = String::new();
    for i in 0..n {
        s += &serde_json::json!({
            "prompt": format!("Question {i}: what should I do about case {i}?"),
            "chosen": format!(" Calmly, step {i}."),
            "rejected": format!(" Recklessly{}", "!".repeat(i % 5)),
        })
        .to_string();
        s.push('\n');
    }
    let p = dir.join("pairs.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

/// Copy every file under `src` to the same place under `dst` (created; replaced if present).
pub fn copy_tree(src: &Path, dst: &Path) {
    let _ = std::fs::remove_dir_all(dst);
    std::fs::create_dir_all(dst).unwrap();
    for f in files_under(src) {
        let rel = f.strip_prefix(src).unwrap();
        std::fs::create_dir_all(dst.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&f, dst.join(rel)).unwrap();
    }
}

/// `repdrift capture --model MiniLM --data DATA --out OUT` (add flags to taste).
pub fn minilm_capture(data: &Path, out: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["capture", "--model"])
        .arg(minilm_path())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out);
    c
}

/// `n` preference pairs written to `dir/name` for the tiny word-level models: chosen replies
/// contain `w5`, rejected ones `w6` and one more word; prompts vary with the index + `offset`.
pub fn word_pairs(dir: &Path, name: &str, n: usize, offset: usize) -> PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let j = i + offset;
        let p = format!("w{} w{} w{}", 1 + j % 4, 10 + j % 7, 20 + j % 9);
        let tail = format!("w{}", 7 + j % 3);
        lines += &serde_json::json!({
            "prompt": p,
            "chosen": format!(" w5 {tail}"),
            "rejected": format!(" w6 {tail} w{}", 25 + j % 5),
        })
        .to_string();
        lines.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, lines).unwrap();
    path
}
