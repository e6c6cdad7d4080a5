//! PEFT LoRA adapters as TRL saves a reward model (`task_type` SEQ_CLS): a directory with
//! `adapter_config.json` and `adapter_model.safetensors`, read over its base and merged at load
//! in f32: W' = W + s · B · A with s = lora_alpha / r (lora_alpha / √r with `use_rslora`), `r` and
//! `lora_alpha` per module from `rank_pattern` / `alpha_pattern` when they name it. The score
//! head (and any other module PEFT saved whole through `modules_to_save`) replaces the base's.
//!
//! Tensor names follow PEFT's saved layout: `base_model.model.<module>.lora_A.weight` (r × in),
//! `….lora_B.weight` (out × r), `base_model.model.score.weight` for a saved module. Refused by
//! name, before anything runs: other PEFT types (IA³, prompt tuning, …), DoRA, LoRA biases,
//! `fan_in_fan_out`, LoRA on embeddings, regular-expression patterns, tensors that name no
//! weight of the base or whose shapes do not fit it, and a SEQ_CLS adapter saved without its
//! score head (its rewards would be random).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::hooked::ModelInfo;
use super::llama::{Llama, LlamaParts};
use super::weights::{check_safetensors, Weights};
use crate::error::{Error, Result};

/// The adapter's configuration file.
pub const CONFIG: &str = "adapter_config.json";
/// The adapter's tensors.
pub const TENSORS: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

/// Whether `path` is a PEFT adapter directory.
pub fn is_adapter(path: &Path) -> bool {
    path.is_dir() && path.join(CONFIG).is_file()
}

/// The fields of `adapter_config.json` repdrift reads (others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "no_bias")]
    pub bias: String,
    #[serde(default)]
    pub lora_bias: bool,
    /// In file order: PEFT takes the first key that matches.
    #[serde(default, deserialize_with = "ordered")]
    pub rank_pattern: Vec<(String, usize)>,
    #[serde(default, deserialize_with = "ordered")]
    pub alpha_pattern: Vec<(String, f64)>,
}

/// A JSON object (or null) as its entries in file order.
fn ordered<'de, D, T>(d: D) -> std::result::Result<Vec<(String, T)>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of module patterns")
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut m: M,
        ) -> std::result::Result<Self::Value, M::Error> {
            let mut v = Vec::new();
            while let Some(e) = m.next_entry()? {
                v.push(e);
            }
            Ok(v)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

fn no_bias() -> String {
    "none".into()
}

/// Read and check `adapter_config.json`.
pub fn read_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(CONFIG);
    let c: AdapterConfig = crate::io::read_json(&path)?;
    let refuse = |why: String| Err(Error::model(&path, why));
    if c.peft_type != "LORA" {
        return refuse(format!(
            "PEFT type `{}`: repdrift reads LoRA adapters only (merge other adapters into the model and save it whole)",
            c.peft_type
        ));
    }
    if c.use_dora {
        return refuse("DoRA adapters (`use_dora`) are not supported: merge it with PEFT's `merge_and_unload()` and save the model whole".into());
    }
    if c.fan_in_fan_out {
        return refuse("`fan_in_fan_out` (GPT-2-style Conv1D weights) is not supported".into());
    }
    if c.bias != "none" || c.lora_bias {
        return refuse(format!(
            "LoRA biases (`bias` = `{}`, `lora_bias` = {}) are not supported",
            c.bias, c.lora_bias
        ));
    }
    if c.r == 0 {
        return refuse("`r` must be at least 1".into());
    }
    let metachar = |k: &&String| k.chars().any(|ch| "*[]()\\|+?^${}".contains(ch));
    let keys = c
        .rank_pattern
        .iter()
        .map(|e| &e.0)
        .chain(c.alpha_pattern.iter().map(|e| &e.0));
    if let Some(k) = keys.into_iter().find(metachar) {
        return refuse(format!(
            "pattern `{k}` in rank_pattern/alpha_pattern is a regular expression; repdrift matches module names and name suffixes only"
        ));
    }
    Ok(c)
}

impl AdapterConfig {
    /// The pattern entry for `module` (a full module name such as
    /// `model.layers.0.self_attn.q_proj`): the first key, in file order, equal to the name or to
    /// a dotted suffix of it (PEFT 0.21's `get_pattern_key`, `(.*\.)?(key)$`, on literal keys).
    fn pattern<'a, T>(entries: &'a [(String, T)], module: &str) -> Option<&'a T> {
        entries
            .iter()
            .find(|(k, _)| module == k.as_str() || module.ends_with(&format!(".{k}")))
            .map(|(_, v)| v)
    }

    /// The rank of `module`: its `rank_pattern` entry, else `r`.
    pub fn rank(&self, module: &str) -> usize {
        *Self::pattern(&self.rank_pattern, module).unwrap_or(&self.r)
    }

    /// The merge scale of `module`: α / r, or α / √r with rsLoRA.
    pub fn scale(&self, module: &str) -> f64 {
        let r = self.rank(module) as f64;
        let alpha = *Self::pattern(&self.alpha_pattern, module).unwrap_or(&self.lora_alpha);
        if self.use_rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        }
    }
}

/// Where the adapter's base is: `base` when given, else `base_model_name_or_path` when it is a
/// local path (as written, or relative to the adapter directory).
pub fn find_base(dir: &Path, c: &AdapterConfig, base: Option<&Path>) -> Result<PathBuf> {
    if let Some(b) = base {
        return Ok(b.to_path_buf());
    }
    let named = c.base_model_name_or_path.as_deref().unwrap_or("");
    for p in [PathBuf::from(named), dir.join(named)] {
        if !named.is_empty() && p.exists() {
            return Ok(p);
        }
    }
    Err(Error::model(
        dir.join(CONFIG),
        format!(
            "the adapter's base `{named}` is not a local path; give the base model's directory or file with --adapter-base PATH (repdrift never downloads from a model hub)"
        ),
    ))
}

/// One LoRA pair, by module name.
#[derive(Default)]
struct Pair {
    a: Option<Tensor>,
    b: Option<Tensor>,
}

/// Split the adapter's tensors into LoRA pairs and whole modules (HF names, prefix stripped).
fn sort_tensors(
    path: &Path,
    map: HashMap<String, Tensor>,
) -> Result<(BTreeMap<String, Pair>, HashMap<String, Tensor>)> {
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    let mut whole = HashMap::new();
    for (name, t) in map {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            return Err(Error::model(
                path,
                format!("tensor `{name}` is not under `{PREFIX}` (PEFT's saved layout)"),
            ));
        };
        if rest.contains("lora_embedding_") || rest.contains("lora_magnitude_vector") {
            return Err(Error::model(
                path,
                format!("`{name}`: LoRA on embeddings and DoRA magnitudes are not supported"),
            ));
        }
        if let Some(m) = rest.strip_suffix(".lora_A.weight") {
            pairs.entry(m.to_string()).or_default().a = Some(t);
        } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
            pairs.entry(m.to_string()).or_default().b = Some(t);
        } else if rest.contains(".lora_") {
            return Err(Error::model(
                path,
                format!("`{name}`: not a LoRA weight repdrift can merge"),
            ));
        } else {
            // modules_to_save: `score.weight` (older PEFT: `score.modules_to_save.default.weight`).
            let hf = rest.replace(".modules_to_save.default", "");
            whole.insert(hf, t);
        }
    }
    Ok((pairs, whole))
}

/// W + s · B · A for every LoRA pair, checked against the base's weight shapes.
fn merge(
    path: &Path,
    cfg: &AdapterConfig,
    base: &Weights,
    pairs: BTreeMap<String, Pair>,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (module, p) in pairs {
        let (Some(a), Some(b)) = (p.a, p.b) else {
            return Err(Error::model(
                path,
                format!("`{module}` has only one of lora_A and lora_B"),
            ));
        };
        let wname = format!("{module}.weight");
        let w = base.get_any(&wname)?.ok_or_else(|| {
            Error::model(
                path,
                format!("`{module}` is not a module of the base (no weight `{wname}`)"),
            )
        })?;
        let (a, b) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
        let (out_dim, in_dim) = w.dims2()?;
        let (r_a, a_in) = a.dims2()?;
        let (b_out, r_b) = b.dims2()?;
        if a_in != in_dim || b_out != out_dim || r_a != r_b || r_a != cfg.rank(&module) {
            return Err(Error::model(
                path,
                format!(
                    "`{module}`: lora_B {:?} · lora_A {:?} cannot update the base's weight {:?} at rank {} (the base must be the model the adapter was trained on)",
                    b.dims(),
                    a.dims(),
                    w.dims(),
                    cfg.rank(&module)
                ),
            ));
        }
        let delta = (b.matmul(&a)? * cfg.scale(&module))?;
        out.insert(wname, (w.to_dtype(DType::F32)? + delta)?);
    }
    Ok(out)
}

/// The parts of the model an adapter describes: its base's, with every LoRA pair merged and
/// every saved module in place of the base's.
pub fn read_parts(dir: &Path, base: Option<&Path>, device: &Device) -> Result<LlamaParts> {
    let cfg = read_config(dir)?;
    let base_path = find_base(dir, &cfg, base)?;
    let mut parts = if base_path.is_dir() {
        if is_adapter(&base_path) || super::delta::is_delta(&base_path) {
            return Err(Error::model(
                &base_path,
                "an adapter's base must be a full model (an HF directory or a .gguf file)",
            ));
        }
        let v: serde_json::Value = super::llama_config::read_config(&base_path)?;
        let mt = v.get("model_type").and_then(|t| t.as_str()).unwrap_or("");
        if mt != "llama" {
            return Err(Error::model(
                base_path.join("config.json"),
                format!("model_type `{mt}`: LoRA adapters are read over Llama bases (an HF llama directory or a .gguf file)"),
            ));
        }
        Llama::read_dir(&base_path, device)?
    } else {
        super::gguf::read_llama(&base_path, device)?
    };
    let tpath = dir.join(TENSORS);
    check_safetensors(&tpath)?;
    let map: HashMap<String, Tensor> = candle_core::safetensors::load(&tpath, device)?;
    let (pairs, whole) = sort_tensors(&tpath, map)?;
    if pairs.is_empty() {
        return Err(Error::model(
            &tpath,
            "holds no LoRA weight (lora_A / lora_B)",
        ));
    }
    let has_score = whole.contains_key("score.weight");
    if cfg.task_type.as_deref() == Some("SEQ_CLS") && !has_score {
        return Err(Error::model(
            &tpath,
            "the adapter was saved without its score head (modules_to_save); its rewards would be random — save it with the score head in modules_to_save",
        ));
    }
    for (name, t) in &whole {
        let fits = match parts.weights.get_any(name)? {
            Some(w) => w.dims() == t.dims(),
            None => name == "score.weight" && t.dims() == [1, parts.info.hidden_size],
        };
        if !fits {
            return Err(Error::model(
                &tpath,
                format!(
                    "saved module `{name}` {:?} fits no weight of the base",
                    t.dims()
                ),
            ));
        }
    }
    let mut merged = merge(&tpath, &cfg, &parts.weights, pairs)?;
    merged.extend(whole);
    let sha = sha256_pair(&parts.info.weights_sha256, &crate::io::sha256_file(&tpath)?);
    parts.weights = Weights::overlay(&tpath, merged, &parts.weights);
    parts.info = ModelInfo {
        path: dir.to_path_buf(),
        source: "lora".into(),
        weights_sha256: sha,
        ..parts.info
    };
    Ok(parts)
}

fn sha256_pair(base: &str, adapter: &str) -> String {
    crate::io::sha256_bytes(format!("{base}+lora:{adapter}").as_bytes())
}

/// Load an adapter over its base (computing in `dtype`).
pub fn load(dir: &Path, base: Option<&Path>, device: &Device, dtype: DType) -> Result<Llama> {
    Llama::from_parts(read_parts(dir, base, device)?, device, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> AdapterConfig {
        serde_json::from_str(json).unwrap()
    }

    /// PEFT's rule: scale = α / r, α / √r with rsLoRA; patterns by name or dotted suffix, the
    /// first matching key in file order.
    #[test]
    fn scales_follow_peft() {
        let c = cfg(r#"{"peft_type":"LORA","r":4,"lora_alpha":8,
            "rank_pattern":{"model.layers.1.self_attn.q_proj":8,"q_proj":2},
            "alpha_pattern":{"v_proj":16}}"#);
        assert_eq!(c.scale("model.layers.0.mlp.up_proj"), 2.0);
        assert_eq!(c.scale("model.layers.0.self_attn.q_proj"), 4.0);
        assert_eq!(c.scale("model.layers.1.self_attn.q_proj"), 1.0);
        // File order decides: with `q_proj` first, it wins for layer 1 too.
        let c2 = cfg(r#"{"peft_type":"LORA","r":4,"lora_alpha":8,
            "rank_pattern":{"q_proj":2,"model.layers.1.self_attn.q_proj":8}}"#);
        assert_eq!(c2.rank("model.layers.1.self_attn.q_proj"), 2);
        assert_eq!(c.scale("model.layers.0.self_attn.v_proj"), 4.0);
        // A suffix must end at a dot: `xq_proj` is not `q_proj`.
        assert_eq!(c.scale("model.layers.0.self_attn.xq_proj"), 2.0);
        let rs = cfg(r#"{"peft_type":"LORA","r":16,"lora_alpha":8,"use_rslora":true}"#);
        assert_eq!(rs.scale("model.layers.0.mlp.up_proj"), 2.0);
    }
}
