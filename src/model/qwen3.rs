//! Qwen3 (`model_type: qwen3`): the Llama block with a per-head RMSNorm of queries and keys
//! before RoPE (`q_norm`, `k_norm`), an explicit `head_dim` (often ≠ hidden / heads), optional
//! biases (`attention_bias`) and optional sliding-window layers. Same hook points as
//! [`super::llama`].

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::llama::{read_config, Llama, LlamaConfig, Variant};
use super::qwen2::SlidingWindows;
use crate::error::Result;

/// `config.json` of a Qwen3 model (HF field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen3Config {
    /// The fields it shares with Llama's config (same HF names).
    #[serde(flatten)]
    pub decoder: LlamaConfig,
    /// Which layers use sliding-window attention.
    #[serde(flatten)]
    pub attention: SlidingWindows,
}

impl Qwen3Config {
    /// The shared decoder's config and this architecture's variant.
    pub fn split(&self, path: &Path) -> Result<(LlamaConfig, Variant)> {
        let cfg = self.decoder.clone();
        let variant = Variant {
            arch: "qwen3".into(),
            qkv_bias: self.decoder.attention_bias,
            o_bias: self.decoder.attention_bias,
            mlp_bias: false,
            qk_norm: true,
            sliding_window: self
                .attention
                .per_layer(path, self.decoder.num_hidden_layers)?,
        };
        Ok((cfg, variant))
    }
}

/// Load a Qwen3 HF directory.
pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Llama> {
    let c: Qwen3Config = read_config(dir)?;
    let (cfg, v) = c.split(&dir.join("config.json"))?;
    Llama::load_dir_as(dir, cfg, v, device, dtype)
}
