//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use candle_core::Device;
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

/// Run `cmd`, expect exit code 2 (a user error) and every needle in its stderr.
pub fn expect_user_error(cmd: &mut std::process::Command, needles: &[&str]) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{cmd:?}: stderr {err}");
    for n in needles {
        assert!(err.contains(n), "{cmd:?}: `{n}` not in: {err}");
    }
}
