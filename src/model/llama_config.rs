//! Llama-family configuration: `config.json` (HF names) or GGUF metadata as [`LlamaConfig`],
//! the architecture [`Variant`] knobs the Llama-like decoders share, and RoPE (default and
//! Llama 3 scaling) tables `(seq, head_dim / 2)`.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `rope_parameters` as transformers 5.x writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_type: Option<String>,
    /// Llama-3 scaling (`rope_type: llama3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<f64>,
}

/// Llama-3's RoPE frequency scaling (transformers' `_compute_llama3_parameters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Rope {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

impl Llama3Rope {
    /// Rescale inverse frequencies in f32, as transformers does.
    pub fn apply(&self, inv: &mut [f32]) {
        let (factor, lo, hi) = (
            self.factor as f32,
            self.low_freq_factor as f32,
            self.high_freq_factor as f32,
        );
        let old = self.original_max_position_embeddings as f32;
        let low_wavelen = old / lo;
        let high_wavelen = old / hi;
        for f in inv.iter_mut() {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            let scaled = if wavelen > low_wavelen {
                *f / factor
            } else {
                *f
            };
            let smooth = (old / wavelen - lo) / (hi - lo);
            let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
            let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
            *f = if medium { smoothed } else { scaled };
        }
    }
}

/// The HF `config.json` of a Llama model (field names as HF writes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    /// Top-level in older files; transformers 5.x writes it only inside `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    pub vocab_size: usize,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Bias on the q, k, v and o projections (HF `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the MLP projections (HF `mlp_bias`).
    #[serde(default)]
    pub mlp_bias: bool,
}

/// What distinguishes the Llama-like decoders repdrift reads (set by each architecture's
/// config in its own file: `qwen2.rs`, `qwen3.rs`, `mistral.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The `model_type`.
    pub arch: String,
    /// Bias on q, k, v (Qwen2).
    pub qkv_bias: bool,
    /// Bias on o.
    pub o_bias: bool,
    /// Bias on gate, up, down.
    pub mlp_bias: bool,
    /// Per-head RMSNorm of queries and keys before RoPE (Qwen3).
    pub qk_norm: bool,
    /// Per block: `Some(w)` = sliding-window attention over the last `w` keys (the query's own
    /// position included, as HF's masks), `None` = full causal attention.
    pub sliding_window: Vec<Option<usize>>,
}

impl Variant {
    /// Plain Llama (with the config's `attention_bias` / `mlp_bias`).
    pub fn llama(cfg: &LlamaConfig) -> Self {
        Self {
            arch: "llama".into(),
            qkv_bias: cfg.attention_bias,
            o_bias: cfg.attention_bias,
            mlp_bias: cfg.mlp_bias,
            qk_norm: false,
            sliding_window: vec![None; cfg.num_hidden_layers],
        }
    }

    /// Whether blocks are exactly Llama's nine weights (what training supports).
    pub fn is_plain(&self) -> bool {
        !self.qkv_bias
            && !self.o_bias
            && !self.mlp_bias
            && !self.qk_norm
            && self.sliding_window.iter().all(|w| w.is_none())
    }
}

impl LlamaConfig {
    /// The number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// RoPE base: top-level `rope_theta`, else `rope_parameters.rope_theta`, else 10000.
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.rope_parameters.as_ref().and_then(|r| r.rope_theta))
            .unwrap_or(10_000.0)
    }

    pub(crate) fn check(&self, path: &Path) -> Result<()> {
        let bad = |r: String| Err(Error::model(path, r));
        if self.num_attention_heads == 0 || self.kv_heads() == 0 {
            return bad("num_attention_heads and num_key_value_heads must be positive".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        self.llama3_rope(path)?;
        Ok(())
    }

    /// The RoPE scaling: `None` for plain RoPE, Llama-3 scaling from `rope_parameters`
    /// (transformers 5.x) or `rope_scaling` (older files); other types are refused.
    pub fn llama3_rope(&self, path: &Path) -> Result<Option<Llama3Rope>> {
        let from_old: Option<RopeParameters> = self
            .rope_scaling
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    if let Some(t) = o.remove("type") {
                        o.entry("rope_type").or_insert(t);
                    }
                }
                serde_json::from_value(v)
                    .map_err(|e| Error::model(path, format!("cannot read `rope_scaling`: {e}")))
            })
            .transpose()?;
        let r = from_old.or_else(|| self.rope_parameters.clone());
        let Some(r) = r else { return Ok(None) };
        match r.rope_type.as_deref() {
            None | Some("default") => Ok(None),
            Some("llama3") => {
                let need = |v: Option<f64>, name: &str| {
                    v.filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| {
                        Error::model(
                            path,
                            format!("llama3 RoPE scaling needs a positive `{name}`"),
                        )
                    })
                };
                let l = Llama3Rope {
                    factor: need(r.factor, "factor")?,
                    low_freq_factor: need(r.low_freq_factor, "low_freq_factor")?,
                    high_freq_factor: need(r.high_freq_factor, "high_freq_factor")?,
                    original_max_position_embeddings: need(
                        r.original_max_position_embeddings,
                        "original_max_position_embeddings",
                    )?,
                };
                if l.high_freq_factor <= l.low_freq_factor {
                    return Err(Error::model(
                        path,
                        "llama3 RoPE scaling needs high_freq_factor > low_freq_factor",
                    ));
                }
                Ok(Some(l))
            }
            Some(t) => Err(Error::model(
                path,
                format!("RoPE scaling `{t}` is not supported yet (supported: default, llama3)"),
            )),
        }
    }
}

/// Read an HF `config.json` into `T`.
pub fn read_config<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        cause: e,
    })
}

/// RoPE `(cos, sin)` tables, each `(seq, head_dim / 2)`, for the half-split (HF) layout,
/// computed in f32 as transformers does; `rope3` rescales the frequencies (Llama 3).
pub fn rope_tables(
    head_dim: usize,
    theta: f64,
    rope3: Option<Llama3Rope>,
    seq: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let theta = theta as f32;
    let mut inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / theta.powf(i as f32 / head_dim as f32))
        .collect();
    if let Some(l3) = rope3 {
        l3.apply(&mut inv);
    }
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(seq * half);
    let mut sin = Vec::with_capacity(seq * half);
    for p in 0..seq {
        for &f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (seq, half), device)?,
        Tensor::from_vec(sin, (seq, half), device)?,
    ))
}
