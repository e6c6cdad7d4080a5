//! The Llama-family decoder (Llama, SmolLM2) with hook points.
//!
//! Weights use HF names (`model.embed_tokens`, `model.layers.{i}.self_attn.q_proj`, …) and the
//! HF (half-split) rotary layout; the GGUF loader converts llama.cpp's interleaved Q/K layout
//! back on load. Activations are `(batch, seq, hidden)`; sequences are right-padded.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use serde::{Deserialize, Serialize};

use super::linear::{attention_matmul, Linear};
use super::tokenizer::ModelTokenizer;
use super::weights::Weights;
use super::{HookPoint, HookRequest, HookedModel, ModelInfo, TokenBatch};
use crate::capture::ActivationSink;
use crate::error::{Error, Result};

/// `rope_parameters` as transformers 5.x writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_type: Option<String>,
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

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |r: String| Err(Error::model(path, r));
        if self.num_attention_heads == 0 || self.kv_heads() == 0 {
            return bad("num_attention_heads and num_key_value_heads must be positive".into());
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        let scaled = self
            .rope_scaling
            .as_ref()
            .filter(|v| !v.is_null())
            .and_then(|v| v.get("rope_type").or_else(|| v.get("type")))
            .and_then(|t| t.as_str())
            .filter(|t| *t != "default");
        let typed = self
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_type.as_deref())
            .filter(|t| *t != "default");
        if let Some(t) = scaled.or(typed) {
            return bad(format!("RoPE scaling `{t}` is not supported yet"));
        }
        Ok(())
    }
}

struct Block {
    input_layernorm: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: Tensor,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// A Llama decoder with hook points.
pub struct Llama {
    cfg: LlamaConfig,
    info: ModelInfo,
    tokenizer: ModelTokenizer,
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: Tensor,
    lm_head: Option<Tensor>,
    device: Device,
}

fn lin(w: &Weights, out: usize, inp: usize) -> Result<Linear> {
    Ok(Linear::new(w.get("weight", &[out, inp])?, None))
}

impl Llama {
    /// Build the model by walking HF weight prefixes.
    pub fn new(
        cfg: LlamaConfig,
        weights: &Weights,
        tokenizer: ModelTokenizer,
        info: ModelInfo,
        device: &Device,
    ) -> Result<Self> {
        cfg.check(weights.path())?;
        let d = cfg.hidden_size;
        let hd = cfg.head_dim();
        let (nh, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
        let m = weights.pp("model");
        let embed_tokens = m.pp("embed_tokens").get("weight", &[cfg.vocab_size, d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(i);
            let a = l.pp("self_attn");
            let mlp = l.pp("mlp");
            layers.push(Block {
                input_layernorm: l.pp("input_layernorm").get("weight", &[d])?,
                q_proj: lin(&a.pp("q_proj"), nh * hd, d)?,
                k_proj: lin(&a.pp("k_proj"), nkv * hd, d)?,
                v_proj: lin(&a.pp("v_proj"), nkv * hd, d)?,
                o_proj: lin(&a.pp("o_proj"), d, nh * hd)?,
                post_attention_layernorm: l.pp("post_attention_layernorm").get("weight", &[d])?,
                gate_proj: lin(&mlp.pp("gate_proj"), cfg.intermediate_size, d)?,
                up_proj: lin(&mlp.pp("up_proj"), cfg.intermediate_size, d)?,
                down_proj: lin(&mlp.pp("down_proj"), d, cfg.intermediate_size)?,
            });
        }
        let norm = m.pp("norm").get("weight", &[d])?;
        let lm_head = if weights.contains("lm_head.weight") && !cfg.tie_word_embeddings {
            Some(weights.pp("lm_head").get("weight", &[cfg.vocab_size, d])?)
        } else {
            None
        };
        Ok(Self {
            cfg,
            info,
            tokenizer,
            embed_tokens,
            layers,
            norm,
            lm_head,
            device: device.clone(),
        })
    }

    /// Load an HF directory: `config.json`, `model.safetensors`, `tokenizer.json`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let cfg: LlamaConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: cfg_path.clone(),
            source: e,
        })?;
        let st = dir.join("model.safetensors");
        let weights = Weights::from_safetensors(&st, device)?;
        let tokenizer = ModelTokenizer::from_json_file(&dir.join("tokenizer.json"))?;
        let info = ModelInfo {
            path: dir.to_path_buf(),
            architecture: "llama".into(),
            source: "safetensors".into(),
            weights_sha256: crate::data::sha256_file(&st)?,
            n_layers: cfg.num_hidden_layers,
            hidden_size: cfg.hidden_size,
        };
        Self::new(cfg, &weights, tokenizer, info, device)
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Next-token logits `(…, vocab)` from final hidden states (`resid_post` layer n).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let w = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        Ok(Linear::new(w.clone(), None).forward(hidden)?)
    }

    /// `(cos, sin)`, each `(seq, head_dim / 2)`, computed in f32 as HF transformers does.
    fn rope_tables(&self, seq: usize) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let theta = self.cfg.rope_theta() as f32;
        let inv: Vec<f32> = (0..hd)
            .step_by(2)
            .map(|i| 1f32 / theta.powf(i as f32 / hd as f32))
            .collect();
        let mut cos = Vec::with_capacity(seq * hd / 2);
        let mut sin = Vec::with_capacity(seq * hd / 2);
        for p in 0..seq {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (seq, hd / 2), &self.device)?,
            Tensor::from_vec(sin, (seq, hd / 2), &self.device)?,
        ))
    }

    fn attention(
        &self,
        blk: &Block,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let hd = self.cfg.head_dim();
        let (nh, nkv) = (self.cfg.num_attention_heads, self.cfg.kv_heads());
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, s, n, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = heads(blk.q_proj.forward(x)?, nh)?;
        let k = heads(blk.k_proj.forward(x)?, nkv)?;
        let v = heads(blk.v_proj.forward(x)?, nkv)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let scores =
            (attention_matmul(&q, &k, true, false)? / (hd as f64).sqrt())?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = attention_matmul(&probs, &v, false, false)?
            .transpose(1, 2)?
            .reshape((b, s, nh * hd))?;
        Ok(blk.o_proj.forward(&ctx)?)
    }

    fn mlp(&self, blk: &Block, x: &Tensor) -> Result<Tensor> {
        let g = blk.gate_proj.forward(x)?.silu()?;
        let u = blk.up_proj.forward(x)?;
        Ok(blk.down_proj.forward(&(g * u)?)?)
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            w,
            self.cfg.rms_norm_eps as f32,
        )?)
    }
}

impl HookedModel for Llama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &ModelTokenizer {
        &self.tokenizer
    }

    fn pad_id(&self) -> u32 {
        self.cfg.pad_token_id.unwrap_or(0)
    }

    fn forward_hooked(
        &self,
        batch: &TokenBatch,
        hooks: &HookRequest,
        sink: &mut dyn ActivationSink,
    ) -> Result<()> {
        let (b, s) = batch.ids.dims2()?;
        let n = self.layers.len();
        let d = self.cfg.hidden_size;
        let blocks = hooks.blocks_needed().min(n);
        let ids = batch.ids.flatten_all()?;
        let mut x = self
            .embed_tokens
            .index_select(&ids, 0)?
            .reshape((b, s, d))?;
        if hooks.wants(HookPoint::ResidPost, 0) {
            sink.layer(HookPoint::ResidPost, 0, &x)?;
        }
        if blocks == 0 {
            return Ok(());
        }
        let mask = batch.attention_mask(true)?;
        let (cos, sin) = self.rope_tables(s)?;
        for (i, blk) in self.layers.iter().take(blocks).enumerate() {
            let l = i + 1;
            let h = self.rms_norm(&x, &blk.input_layernorm)?;
            let a = self.attention(blk, &h, &cos, &sin, &mask)?;
            if hooks.wants(HookPoint::AttnOut, l) {
                sink.layer(HookPoint::AttnOut, l, &a)?;
            }
            x = (x + a)?;
            let h = self.rms_norm(&x, &blk.post_attention_layernorm)?;
            let m = self.mlp(blk, &h)?;
            if hooks.wants(HookPoint::MlpOut, l) {
                sink.layer(HookPoint::MlpOut, l, &m)?;
            }
            x = (x + m)?;
            if l < n && hooks.wants(HookPoint::ResidPost, l) {
                sink.layer(HookPoint::ResidPost, l, &x)?;
            }
        }
        if blocks == n && hooks.wants(HookPoint::ResidPost, n) {
            let y = self.rms_norm(&x, &self.norm)?;
            sink.layer(HookPoint::ResidPost, n, &y)?;
        }
        Ok(())
    }
}
