//! Gemma 2 (`model_type: gemma2`) with hook points.
//!
//! What differs from Llama (transformers' `modeling_gemma2.py`): embeddings scaled by
//! √hidden; RMSNorm with `(1 + w)`; four norms per block — `input_layernorm` and
//! `post_attention_layernorm` around attention, `pre_feedforward_layernorm` and
//! `post_feedforward_layernorm` around the MLP, the post-norms applied *before* the residual
//! add; attention scores scaled by `query_pre_attn_scalar^−½` and soft-capped
//! (`tanh(s / c) · c`); sliding-window attention on the layers `layer_types` names; GeLU (tanh
//! approximation) MLP. The final logit soft-capping acts on logits only, not on hidden states.
//! Hooks: `resid_post` 0 = scaled embeddings, `i` = after block `i`, `n` = after the final
//! norm; `attn_out` / `mlp_out` = the post-normed outputs added to the residual stream.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use serde::{Deserialize, Serialize};

use super::hooked::{ActivationSink, HookPoint, HookRequest, HookedModel, ModelInfo, TokenBatch};
use super::linear::{attention_matmul, Linear};
use super::llama::{read_config, rope_tables, LlamaConfig, Masks, RewardHead};
use super::qwen2::windows;
use super::tokenizer::ModelTokenizer;
use super::weights::Weights;
use crate::error::{Error, Result};

/// `config.json` of a Gemma 2 model (HF field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gemma2Config {
    /// The fields it shares with Llama's config (same HF names).
    #[serde(flatten)]
    pub decoder: LlamaConfig,
    #[serde(default = "default_scalar")]
    pub query_pre_attn_scalar: f64,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "default_act")]
    pub hidden_activation: String,
}

fn default_scalar() -> f64 {
    256.0
}

fn default_act() -> String {
    "gelu_pytorch_tanh".into()
}

struct Block {
    input_layernorm: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: Tensor,
    pre_feedforward_layernorm: Tensor,
    post_feedforward_layernorm: Tensor,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    window: Option<usize>,
}

/// A Gemma 2 decoder with hook points.
pub struct Gemma2 {
    cfg: Gemma2Config,
    info: ModelInfo,
    tokenizer: ModelTokenizer,
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: Tensor,
    /// `lm_head.weight` when the config unties it; else the LM head is the token embeddings
    /// (Gemma 2 ties them by default).
    lm_head: Option<Tensor>,
    score: Option<RewardHead>,
    device: Device,
}

impl Gemma2 {
    /// Load an HF directory (`config.json`, safetensors — one file or shards —, `tokenizer.json`).
    pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let cfg: Gemma2Config = read_config(dir)?;
        let cfg_path = dir.join("config.json");
        if cfg.hidden_activation != "gelu_pytorch_tanh" && cfg.hidden_activation != "gelu" {
            return Err(Error::model(
                &cfg_path,
                format!(
                    "hidden_activation `{}` is not supported (gelu_pytorch_tanh)",
                    cfg.hidden_activation
                ),
            ));
        }
        let c = &cfg.decoder;
        // Gemma 2's own default: odd-numbered blocks (1st, 3rd, …) use the sliding window.
        let types: Vec<String> = cfg.layer_types.clone().unwrap_or_else(|| {
            (0..c.num_hidden_layers)
                .map(|i| {
                    if (i + 1) % 2 == 1 {
                        "sliding_attention"
                    } else {
                        "full_attention"
                    }
                    .into()
                })
                .collect()
        });
        let win = windows(
            &cfg_path,
            c.num_hidden_layers,
            Some(&types),
            false,
            cfg.sliding_window,
            None,
        )?;
        let (weights, sha) = Weights::from_hf_dir(dir, device)?;
        let weights = weights.with_dtype(dtype);
        let tokenizer = ModelTokenizer::from_json_file(&dir.join("tokenizer.json"))?;
        let (d, hd, nh, nkv) = (
            c.hidden_size,
            c.head_dim(),
            c.num_attention_heads,
            c.kv_heads(),
        );
        let inter = c.intermediate_size;
        let bias = c.attention_bias;
        let lin = |w: &Weights, out: usize, inp: usize, b: bool| -> Result<Linear> {
            let bias = if b {
                Some(w.get("bias", &[out])?)
            } else {
                None
            };
            Ok(Linear::new(w.get("weight", &[out, inp])?, bias))
        };
        // Norm weights are stored as w; the norm multiplies by (1 + w).
        let norm_w = |w: &Weights| -> Result<Tensor> { Ok((w.get("weight", &[d])? + 1.0)?) };
        let m = weights.pp("model");
        let embed_tokens = m.pp("embed_tokens").get("weight", &[c.vocab_size, d])?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for (i, window) in win.into_iter().enumerate() {
            let l = m.pp("layers").pp(i);
            let (a, mlp) = (l.pp("self_attn"), l.pp("mlp"));
            layers.push(Block {
                input_layernorm: norm_w(&l.pp("input_layernorm"))?,
                q_proj: lin(&a.pp("q_proj"), nh * hd, d, bias)?,
                k_proj: lin(&a.pp("k_proj"), nkv * hd, d, bias)?,
                v_proj: lin(&a.pp("v_proj"), nkv * hd, d, bias)?,
                o_proj: lin(&a.pp("o_proj"), d, nh * hd, bias)?,
                post_attention_layernorm: norm_w(&l.pp("post_attention_layernorm"))?,
                pre_feedforward_layernorm: norm_w(&l.pp("pre_feedforward_layernorm"))?,
                post_feedforward_layernorm: norm_w(&l.pp("post_feedforward_layernorm"))?,
                gate_proj: lin(&mlp.pp("gate_proj"), inter, d, false)?,
                up_proj: lin(&mlp.pp("up_proj"), inter, d, false)?,
                down_proj: lin(&mlp.pp("down_proj"), d, inter, false)?,
                window,
            });
        }
        let norm = norm_w(&m.pp("norm"))?;
        let lm_head = if weights.contains("lm_head.weight") && !c.tie_word_embeddings {
            Some(weights.pp("lm_head").get("weight", &[c.vocab_size, d])?)
        } else {
            None
        };
        let score = RewardHead::load(&weights, d)?;
        let info = ModelInfo {
            path: dir.to_path_buf(),
            architecture: "gemma2".into(),
            source: "safetensors".into(),
            weights_sha256: sha,
            n_layers: c.num_hidden_layers,
            hidden_size: d,
        };
        Ok(Self {
            cfg,
            info,
            tokenizer,
            embed_tokens,
            layers,
            lm_head,
            norm,
            score,
            device: device.clone(),
        })
    }

    fn rms(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let eps = self.cfg.decoder.rms_norm_eps as f32;
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)?)
    }

    fn attention(
        &self,
        blk: &Block,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.cfg.decoder;
        let (b, s, _) = x.dims3()?;
        let (hd, nh, nkv) = (c.head_dim(), c.num_attention_heads, c.kv_heads());
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, s, n, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = heads(blk.q_proj.forward(x)?, nh)?;
        let k = heads(blk.k_proj.forward(x)?, nkv)?;
        let v = heads(blk.v_proj.forward(x)?, nkv)?;
        let q = candle_nn::rotary_emb::rope(&q, &rope.0, &rope.1)?;
        let k = candle_nn::rotary_emb::rope(&k, &rope.0, &rope.1)?;
        let mut scores =
            (attention_matmul(&q, &k, true, false)? * self.cfg.query_pre_attn_scalar.powf(-0.5))?;
        if let Some(cap) = self.cfg.attn_logit_softcapping {
            scores = ((scores / cap)?.tanh()? * cap)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?)?;
        let ctx = attention_matmul(&probs, &v, false, false)?
            .transpose(1, 2)?
            .reshape((b, s, nh * hd))?;
        Ok(blk.o_proj.forward(&ctx)?)
    }
}

impl HookedModel for Gemma2 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &ModelTokenizer {
        &self.tokenizer
    }

    fn pad_id(&self) -> u32 {
        self.cfg.decoder.pad_token_id.unwrap_or(0)
    }

    fn has_reward_head(&self) -> bool {
        self.score.is_some()
    }

    fn lm_logits(&self, final_hidden: &Tensor) -> Result<Tensor> {
        let w = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        let logits = Linear::new(w.clone(), None).forward(final_hidden)?;
        Ok(match self.cfg.final_logit_softcapping {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        })
    }

    fn forward_hooked(
        &self,
        batch: &TokenBatch,
        hooks: &HookRequest,
        sink: &mut dyn ActivationSink,
    ) -> Result<()> {
        let c = &self.cfg.decoder;
        let (b, s) = batch.ids.dims2()?;
        let (n, d) = (self.layers.len(), c.hidden_size);
        let blocks = hooks.blocks_needed().min(n);
        let scale = (d as f64).sqrt() as f32;
        let mut x = (self
            .embed_tokens
            .index_select(&batch.ids.flatten_all()?, 0)?
            .reshape((b, s, d))?
            * scale as f64)?;
        if hooks.wants(HookPoint::ResidPost, 0) {
            sink.layer(HookPoint::ResidPost, 0, &x)?;
        }
        if blocks == 0 {
            return Ok(());
        }
        let dtype = x.dtype();
        let masks = Masks::new(batch, self.layers.iter().map(|l| l.window), dtype)?;
        let (cos, sin) = rope_tables(c.head_dim(), c.rope_theta(), None, s, &self.device)?;
        let rope = (cos.to_dtype(dtype)?, sin.to_dtype(dtype)?);
        for (i, blk) in self.layers.iter().take(blocks).enumerate() {
            let l = i + 1;
            let mask = masks.get(blk.window);
            let h = self.rms(&x, &blk.input_layernorm)?;
            let a = self.rms(
                &self.attention(blk, &h, &rope, mask)?,
                &blk.post_attention_layernorm,
            )?;
            if hooks.wants(HookPoint::AttnOut, l) {
                sink.layer(HookPoint::AttnOut, l, &a)?;
            }
            x = (x + a)?;
            let h = self.rms(&x, &blk.pre_feedforward_layernorm)?;
            let g = blk.gate_proj.forward(&h)?.gelu()?;
            let m = blk.down_proj.forward(&(g * blk.up_proj.forward(&h)?)?)?;
            let m = self.rms(&m, &blk.post_feedforward_layernorm)?;
            if hooks.wants(HookPoint::MlpOut, l) {
                sink.layer(HookPoint::MlpOut, l, &m)?;
            }
            x = (x + m)?;
            if l < n && hooks.wants(HookPoint::ResidPost, l) {
                sink.layer(HookPoint::ResidPost, l, &x)?;
            }
        }
        if blocks == n && (hooks.wants(HookPoint::ResidPost, n) || hooks.reward()) {
            let y = self.rms(&x, &self.norm)?;
            if hooks.wants(HookPoint::ResidPost, n) {
                sink.layer(HookPoint::ResidPost, n, &y)?;
            }
            if let (Some(head), true) = (&self.score, hooks.reward()) {
                sink.reward(&head.rewards(&y, &batch.lens)?)?;
            }
        }
        Ok(())
    }
}
