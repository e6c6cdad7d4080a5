//! Students stored as deltas over their base, and full HF reward-model directories.
//!
//! A trained student changes only its trainable tensors (the top blocks, the final norm, the
//! head; the embeddings too for `all`), so `repdrift train` writes just those: `delta.safetensors`
//! (f32, HF names, e.g. `model.layers.29.mlp.up_proj.weight` and `score.weight (1, hidden)`)
//! and `repdrift_delta.json` (the base's path and sha256, the delta's sha256, the tensor
//! names), the manifest last, so a directory with a manifest is complete. [`load`] rebuilds the
//! student from base + delta, checking both hashes; every command that takes a model goes
//! through it ([`crate::model::load`]). [`write_hf_reward_model`] writes a full HF
//! `LlamaForSequenceClassification` directory (`repdrift export`, `train --save full`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use super::hooked::{HookedModel, ModelInfo};
use super::llama::{Llama, LlamaParts, BLOCK_WEIGHTS};
use super::weights::{check_safetensors, Weights};
use crate::error::{Error, Result};

/// The manifest's file name; its presence marks a directory as a delta student.
pub const MANIFEST: &str = "repdrift_delta.json";
/// The changed tensors' file name.
pub const DELTA_TENSORS: &str = "delta.safetensors";
const FORMAT: &str = "repdrift-delta";
const VERSION: u32 = 1;

/// A named row-major f32 weight: (HF name, shape, values).
pub type NamedWeight = (String, Vec<usize>, Vec<f32>);

/// `repdrift_delta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaManifest {
    /// `repdrift-delta`.
    pub format: String,
    pub version: u32,
    /// The base as training loaded it, made absolute.
    pub base: PathBuf,
    /// The base relative to the delta directory (found again when both move together).
    pub base_relative: Option<PathBuf>,
    /// The base's weights hash ([`ModelInfo::weights_sha256`]).
    pub base_sha256: String,
    /// sha256 of `delta.safetensors`.
    pub delta_sha256: String,
    /// The tensors `delta.safetensors` holds (what training changed), in the order written.
    pub tensors: Vec<String>,
    /// `LlamaForSequenceClassification`.
    pub architecture: String,
}

/// Whether `path` is a delta student's directory.
pub fn is_delta(path: &Path) -> bool {
    path.is_dir() && path.join(MANIFEST).is_file()
}

/// f32 safetensors bytes of named weights (with `format: pt` metadata, as HF writes).
pub fn safetensors_bytes(state: &[NamedWeight]) -> Result<Vec<u8>> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = state
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), f32_bytes(data))
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::param("save", format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::param("save", e.to_string()))
}

/// View f32 values as little-endian bytes (the platforms repdrift builds on are little-endian).
fn f32_bytes(v: &[f32]) -> &[u8] {
    const _: () = assert!(cfg!(target_endian = "little"));
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the length is scaled by
    // the element size and the lifetime is tied to `v`.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// `target` relative to directory `from` (both made absolute), when they share a root.
fn relative_to(target: &Path, from: &Path) -> Option<PathBuf> {
    let t = std::path::absolute(target).ok()?;
    let f = std::path::absolute(from).ok()?;
    fn norm(p: &Path) -> Vec<Component<'_>> {
        let mut out: Vec<Component<'_>> = Vec::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    }
    let (t, f) = (norm(&t), norm(&f));
    if t.first() != f.first() {
        return None;
    }
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c.as_os_str());
    }
    Some(rel)
}

/// Write a delta student to `dir`: the tensors, then `extra` (name, bytes), then the manifest,
/// each atomically.
pub fn write_delta(
    dir: &Path,
    base: &ModelInfo,
    tensors: &[NamedWeight],
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let bytes = safetensors_bytes(tensors)?;
    let tpath = dir.join(DELTA_TENSORS);
    crate::io::write_atomic(&tpath, &bytes)?;
    for (name, b) in extra {
        crate::io::write_atomic(&dir.join(name), b)?;
    }
    let manifest = DeltaManifest {
        format: FORMAT.into(),
        version: VERSION,
        base: std::path::absolute(&base.path).map_err(|e| Error::io(&base.path, e))?,
        base_relative: relative_to(&base.path, dir),
        base_sha256: base.weights_sha256.clone(),
        delta_sha256: crate::io::sha256_bytes(&bytes),
        tensors: tensors.iter().map(|(n, _, _)| n.clone()).collect(),
        architecture: "LlamaForSequenceClassification".into(),
    };
    crate::io::write_atomic(&dir.join(MANIFEST), &crate::io::json_bytes(&manifest))
}

/// Read and check a delta directory's manifest.
pub fn read_manifest(dir: &Path) -> Result<DeltaManifest> {
    let path = dir.join(MANIFEST);
    let m: DeltaManifest = crate::io::read_json(&path)?;
    if m.format != FORMAT || m.version != VERSION {
        return Err(Error::model(
            &path,
            format!(
                "format `{}` version {}: this repdrift reads `{FORMAT}` version {VERSION}",
                m.format, m.version
            ),
        ));
    }
    Ok(m)
}

/// Where the base is: the recorded absolute path, else the recorded relative one.
fn find_base(dir: &Path, m: &DeltaManifest) -> Result<PathBuf> {
    if m.base.exists() {
        return Ok(m.base.clone());
    }
    if let Some(rel) = &m.base_relative {
        let p = dir.join(rel);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Error::model(
        dir.join(MANIFEST),
        format!(
            "the base model this student was trained from is not at {}{} (sha256 {}); put it back, or write a full model with `repdrift export` where it is",
            m.base.display(),
            m.base_relative
                .as_ref()
                .map(|r| format!(" nor at {}", dir.join(r).display()))
                .unwrap_or_default(),
            m.base_sha256
        ),
    ))
}

/// The parts of a delta student: the base's, with the delta's tensors in place of the
/// base's. Checks that the base has the recorded hash, that `delta.safetensors` is the one
/// written and holds exactly the listed tensors, each a weight of the base (or the head).
pub fn read_parts(dir: &Path, device: &Device) -> Result<LlamaParts> {
    let m = read_manifest(dir)?;
    let mpath = dir.join(MANIFEST);
    let base_path = find_base(dir, &m)?;
    if is_delta(&base_path) {
        return Err(Error::model(
            &mpath,
            format!("the base {} is itself a delta", base_path.display()),
        ));
    }
    let mut parts = if base_path.is_dir() {
        Llama::read_dir(&base_path, device)?
    } else {
        super::gguf::read_llama(&base_path, device)?
    };
    if parts.info.weights_sha256 != m.base_sha256 {
        return Err(Error::model(
            &mpath,
            format!(
                "the base at {} has weights sha256 {}, but this student was trained on weights with sha256 {}",
                base_path.display(),
                parts.info.weights_sha256,
                m.base_sha256
            ),
        ));
    }
    let tpath = dir.join(DELTA_TENSORS);
    check_safetensors(&tpath)?;
    let sha = crate::io::sha256_file(&tpath)?;
    if sha != m.delta_sha256 {
        return Err(Error::model(
            &tpath,
            format!(
                "sha256 {sha} differs from the {} that {MANIFEST} records: the file changed after training wrote it",
                m.delta_sha256
            ),
        ));
    }
    let map: HashMap<String, Tensor> = candle_core::safetensors::load(&tpath, device)?;
    let mut listed: Vec<&str> = m.tensors.iter().map(String::as_str).collect();
    let mut held: Vec<&str> = map.keys().map(String::as_str).collect();
    listed.sort_unstable();
    held.sort_unstable();
    if listed != held {
        return Err(Error::model(
            &tpath,
            format!(
                "holds {} tensors, {MANIFEST} lists {}: they must be the same names",
                held.len(),
                listed.len()
            ),
        ));
    }
    if let Some(stray) = held
        .iter()
        .find(|n| **n != "score.weight" && !parts.weights.contains(n))
    {
        return Err(Error::model(
            &tpath,
            format!("`{stray}` is not a weight of the base"),
        ));
    }
    let combined =
        crate::io::sha256_bytes(format!("{}+{}", m.base_sha256, m.delta_sha256).as_bytes());
    parts.weights = Weights::overlay(&tpath, map, &parts.weights);
    parts.info = ModelInfo {
        path: dir.to_path_buf(),
        source: "delta".into(),
        weights_sha256: combined,
        ..parts.info
    };
    Ok(parts)
}

/// Load a delta student (computing in `dtype`).
pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Llama> {
    Llama::from_parts(read_parts(dir, device)?, device, dtype)
}

/// Every weight of a Llama reward model under its HF name (`model.*`, `score.weight`), as
/// row-major f32, taking `overrides` (HF name → tensor) in place of the model's own.
pub fn hf_state(model: &Llama, overrides: &BTreeMap<&str, &Tensor>) -> Result<Vec<NamedWeight>> {
    let mut out = Vec::new();
    let mut push = |name: String, t: Option<&Tensor>| -> Result<()> {
        let t = match overrides.get(name.as_str()) {
            Some(v) => (*v).clone(),
            None => t
                .ok_or_else(|| {
                    Error::model(
                        &model.info().path,
                        "not a reward model: no `score.weight` head to write",
                    )
                })?
                .clone(),
        };
        let t = t.to_dtype(DType::F32)?;
        out.push((name, t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?));
        Ok(())
    };
    push(
        "model.embed_tokens.weight".into(),
        Some(model.embed_tokens()),
    )?;
    for (i, blk) in model.blocks().iter().enumerate() {
        for (name, t) in BLOCK_WEIGHTS.iter().zip(blk.tensors()) {
            push(format!("model.layers.{i}.{name}"), Some(t))?;
        }
    }
    push("model.norm.weight".into(), Some(model.final_norm()))?;
    push("score.weight".into(), model.score())?;
    Ok(out)
}

/// Write an HF `LlamaForSequenceClassification` directory: `config.json`, `model.safetensors`
/// (f32, `state` from [`hf_state`]) and `tokenizer.json`, each atomically; `extra` files
/// (name, bytes) beside them; `config.json` last.
pub fn write_hf_reward_model(
    dir: &Path,
    model: &Llama,
    state: &[NamedWeight],
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    if !model.variant().is_plain() {
        return Err(Error::model(
            &model.info().path,
            "only plain Llama models are written as LlamaForSequenceClassification",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut config = serde_json::to_value(model.config()).expect("config serializes");
    let obj = config.as_object_mut().expect("config is an object");
    obj.insert("model_type".into(), "llama".into());
    obj.insert(
        "architectures".into(),
        serde_json::json!(["LlamaForSequenceClassification"]),
    );
    obj.insert("num_labels".into(), 1.into());
    obj.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
    obj.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
    obj.insert("pad_token_id".into(), model.pad_id().into());
    obj.insert("dtype".into(), "float32".into());
    // No `lm_head` is written; the tied-embedding flag keeps HF from expecting one.
    obj.insert("tie_word_embeddings".into(), true.into());
    crate::io::write_atomic(&dir.join("model.safetensors"), &safetensors_bytes(state)?)?;
    let tok = model
        .model_tokenizer()
        .inner()
        .to_string(false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    crate::io::write_atomic(&dir.join("tokenizer.json"), tok.as_bytes())?;
    for (name, bytes) in extra {
        crate::io::write_atomic(&dir.join(name), bytes)?;
    }
    crate::io::write_atomic(&dir.join("config.json"), &crate::io::json_bytes(&config))
}
