//! Qwen2 / Qwen2.5 (`model_type: qwen2`): the Llama block with biases on the q, k and v
//! projections, and optional sliding-window attention per layer (`layer_types`, or
//! `use_sliding_window` from `max_window_layers` on, as HF derives it). Same hook points as
//! [`super::llama`]; the forward pass is the shared decoder loop in `llama.rs`.

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::llama::{read_config, Llama, LlamaConfig, Variant};
use crate::error::{Error, Result};

/// `config.json` of a Qwen2 model (HF field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    /// The fields it shares with Llama's config (same HF names).
    #[serde(flatten)]
    pub decoder: LlamaConfig,
    /// Which layers use sliding-window attention.
    #[serde(flatten)]
    pub attention: SlidingWindows,
}

/// The sliding-window fields of Qwen configs (HF names).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SlidingWindows {
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

impl SlidingWindows {
    /// Per-layer windows for `n` layers (see [`windows`]).
    pub fn per_layer(&self, path: &Path, n: usize) -> Result<Vec<Option<usize>>> {
        windows(
            path,
            n,
            self.layer_types.as_deref(),
            self.use_sliding_window,
            self.sliding_window,
            self.max_window_layers,
        )
    }
}

/// Per-layer sliding windows from HF's `layer_types` (or, without it, `use_sliding_window` and
/// `max_window_layers`).
pub fn windows(
    path: &Path,
    n: usize,
    layer_types: Option<&[String]>,
    use_sliding_window: bool,
    sliding_window: Option<usize>,
    max_window_layers: Option<usize>,
) -> Result<Vec<Option<usize>>> {
    let types: Vec<String> = match layer_types {
        Some(t) => t.to_vec(),
        None => (0..n)
            .map(|i| {
                if use_sliding_window
                    && sliding_window.is_some()
                    && i >= max_window_layers.unwrap_or(0)
                {
                    "sliding_attention".to_string()
                } else {
                    "full_attention".to_string()
                }
            })
            .collect(),
    };
    if types.len() != n {
        return Err(Error::model(
            path,
            format!("`layer_types` has {} entries for {n} layers", types.len()),
        ));
    }
    types
        .iter()
        .map(|t| match t.as_str() {
            "full_attention" => Ok(None),
            "sliding_attention" => match sliding_window {
                Some(w) if w > 0 => Ok(Some(w)),
                _ => Err(Error::model(
                    path,
                    "a sliding-attention layer needs `sliding_window` ≥ 1",
                )),
            },
            other => Err(Error::model(
                path,
                format!("layer type `{other}` is not supported"),
            )),
        })
        .collect()
}

impl Qwen2Config {
    /// The shared decoder's config and this architecture's variant.
    pub fn split(&self, path: &Path) -> Result<(LlamaConfig, Variant)> {
        let cfg = self.decoder.clone();
        let variant = Variant {
            arch: "qwen2".into(),
            qkv_bias: true,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            sliding_window: self
                .attention
                .per_layer(path, self.decoder.num_hidden_layers)?,
        };
        Ok((cfg, variant))
    }
}

/// Load a Qwen2 HF directory.
pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Llama> {
    let c: Qwen2Config = read_config(dir)?;
    let (cfg, v) = c.split(&dir.join("config.json"))?;
    Llama::load_dir_as(dir, cfg, v, device, dtype)
}
