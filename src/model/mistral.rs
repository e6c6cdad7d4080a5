//! Mistral (`model_type: mistral`): the Llama block with sliding-window attention in every
//! layer when `sliding_window` is set (a query sees itself and the `sliding_window − 1` keys
//! before it, as HF's masks). Same hook points as [`super::llama`].

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::llama::{read_config, Llama, LlamaConfig, Variant};
use crate::error::{Error, Result};

/// `config.json` of a Mistral model (HF field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MistralConfig {
    /// The fields it shares with Llama's config (same HF names).
    #[serde(flatten)]
    pub decoder: LlamaConfig,
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

impl MistralConfig {
    /// The shared decoder's config and this architecture's variant.
    pub fn split(&self, path: &Path) -> Result<(LlamaConfig, Variant)> {
        if self.sliding_window == Some(0) {
            return Err(Error::model(path, "`sliding_window` must be ≥ 1 or null"));
        }
        let cfg = self.decoder.clone();
        let variant = Variant {
            arch: "mistral".into(),
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            sliding_window: vec![self.sliding_window; self.decoder.num_hidden_layers],
        };
        Ok((cfg, variant))
    }
}

/// Load a Mistral HF directory.
pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Llama> {
    let c: MistralConfig = read_config(dir)?;
    let (cfg, v) = c.split(&dir.join("config.json"))?;
    Llama::load_dir_as(dir, cfg, v, device, dtype)
}
