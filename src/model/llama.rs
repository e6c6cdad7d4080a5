//! The Llama-family decoder (Llama, SmolLM2) with hook points.
//!
//! Weights use HF names (`model.embed_tokens`, `model.layers.{i}.self_attn.q_proj`, …) and the
//! HF (half-split) rotary layout; the GGUF loader converts llama.cpp's interleaved Q/K layout
//! back on load. Activations are `(batch, seq, hidden)`; sequences are right-padded.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};

use super::hooked::{ActivationSink, HookPoint, HookRequest, HookedModel, ModelInfo, TokenBatch};
use super::linear::{attention_matmul, Linear};
pub use super::llama_block::{Block, BLOCK_WEIGHTS};
pub use super::llama_config::{
    read_config, rope_tables, Llama3Rope, LlamaConfig, RopeParameters, Variant,
};
pub use super::reward_head::{last_token_rewards, last_token_states, RewardHead};
use super::tokenizer::ModelTokenizer;
use super::weights::Weights;
use crate::error::{Error, Result};

/// What one block computed: its attention and MLP outputs and the residual stream after it.
pub struct BlockOutput {
    pub attn_out: Tensor,
    pub mlp_out: Tensor,
    pub resid: Tensor,
}

/// What a Llama is built from: its config, weights (HF names), tokenizer and description.
pub struct LlamaParts {
    pub cfg: LlamaConfig,
    pub weights: Weights,
    pub tokenizer: ModelTokenizer,
    pub info: ModelInfo,
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
    /// The scalar reward head: `score.weight` `(1, hidden)` of a sequence-classification
    /// reward model, or TRL's value head `v_head.summary.{weight, bias}`.
    score: Option<RewardHead>,
    variant: Variant,
    rope3: Option<Llama3Rope>,
    device: Device,
}

fn lin(w: &Weights, out: usize, inp: usize, bias: bool) -> Result<Linear> {
    let b = if bias {
        Some(w.get("bias", &[out])?)
    } else {
        None
    };
    Ok(Linear::new(w.get_stored("weight", &[out, inp])?, b))
}

impl Llama {
    /// Build a Llama-like decoder of the given [`Variant`].
    pub fn with_variant(
        cfg: LlamaConfig,
        variant: Variant,
        weights: &Weights,
        tokenizer: ModelTokenizer,
        info: ModelInfo,
        device: &Device,
    ) -> Result<Self> {
        cfg.check(weights.path())?;
        if variant.sliding_window.len() != cfg.num_hidden_layers {
            return Err(Error::model(
                weights.path(),
                format!(
                    "{} attention types for {} layers",
                    variant.sliding_window.len(),
                    cfg.num_hidden_layers
                ),
            ));
        }
        let d = cfg.hidden_size;
        let hd = cfg.head_dim();
        let (nh, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
        let m = weights.pp("model");
        let embed_tokens = m
            .pp("embed_tokens")
            .get_stored("weight", &[cfg.vocab_size, d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(i);
            let a = l.pp("self_attn");
            let mlp = l.pp("mlp");
            let (qb, ob, mb) = (variant.qkv_bias, variant.o_bias, variant.mlp_bias);
            let inter = cfg.intermediate_size;
            let norm = |name: &str| -> Result<Option<Tensor>> {
                if variant.qk_norm {
                    Ok(Some(a.pp(name).get("weight", &[hd])?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Block {
                input_layernorm: l.pp("input_layernorm").get("weight", &[d])?,
                q_proj: lin(&a.pp("q_proj"), nh * hd, d, qb)?,
                k_proj: lin(&a.pp("k_proj"), nkv * hd, d, qb)?,
                v_proj: lin(&a.pp("v_proj"), nkv * hd, d, qb)?,
                o_proj: lin(&a.pp("o_proj"), d, nh * hd, ob)?,
                post_attention_layernorm: l.pp("post_attention_layernorm").get("weight", &[d])?,
                gate_proj: lin(&mlp.pp("gate_proj"), inter, d, mb)?,
                up_proj: lin(&mlp.pp("up_proj"), inter, d, mb)?,
                down_proj: lin(&mlp.pp("down_proj"), d, inter, mb)?,
                q_norm: norm("q_norm")?,
                k_norm: norm("k_norm")?,
                window: variant.sliding_window[i],
            });
        }
        let norm = m.pp("norm").get("weight", &[d])?;
        let lm_head = if weights.contains("lm_head.weight") && !cfg.tie_word_embeddings {
            Some(
                weights
                    .pp("lm_head")
                    .get_stored("weight", &[cfg.vocab_size, d])?,
            )
        } else {
            None
        };
        let rope3 = cfg.llama3_rope(weights.path())?;
        let score = RewardHead::load(weights, d)?;
        Ok(Self {
            cfg,
            info,
            tokenizer,
            embed_tokens,
            layers,
            norm,
            lm_head,
            score,
            variant,
            rope3,
            device: device.clone(),
        })
    }

    /// Load an HF directory (`config.json`, `model.safetensors` or shards with
    /// `model.safetensors.index.json`, `tokenizer.json`) computing in `dtype` (f32, or bf16/f16
    /// for GPUs).
    pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let cfg: LlamaConfig = read_config(dir)?;
        let v = Variant::llama(&cfg);
        Self::load_dir_as(dir, cfg, v, device, dtype)
    }

    /// The parts of a plain Llama HF directory (weights memory-mapped, f32).
    pub fn read_dir(dir: &Path, device: &Device) -> Result<LlamaParts> {
        let cfg: LlamaConfig = read_config(dir)?;
        Self::read_dir_as(dir, cfg, "llama", device)
    }

    /// The parts of an HF directory whose config is already read (`arch` names the variant).
    fn read_dir_as(
        dir: &Path,
        cfg: LlamaConfig,
        arch: &str,
        device: &Device,
    ) -> Result<LlamaParts> {
        let (weights, sha) = Weights::from_hf_dir(dir, device)?;
        let tokenizer = ModelTokenizer::from_json_file(&dir.join("tokenizer.json"))?;
        let info = ModelInfo {
            path: dir.to_path_buf(),
            architecture: arch.to_string(),
            source: "safetensors".into(),
            weights_sha256: sha,
            n_layers: cfg.num_hidden_layers,
            hidden_size: cfg.hidden_size,
        };
        Ok(LlamaParts {
            cfg,
            weights,
            tokenizer,
            info,
        })
    }

    /// Build a plain Llama from its parts (weights returned in `dtype`).
    pub fn from_parts(p: LlamaParts, device: &Device, dtype: DType) -> Result<Self> {
        let weights = p.weights.with_dtype(dtype);
        let v = Variant::llama(&p.cfg);
        Self::with_variant(p.cfg, v, &weights, p.tokenizer, p.info, device)
    }

    /// Load an HF directory with an already-read config and variant (the other architectures'
    /// loaders call this).
    pub fn load_dir_as(
        dir: &Path,
        cfg: LlamaConfig,
        variant: Variant,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let p = Self::read_dir_as(dir, cfg, &variant.arch, device)?;
        let weights = p.weights.with_dtype(dtype);
        Self::with_variant(p.cfg, variant, &weights, p.tokenizer, p.info, device)
    }

    /// The architecture variant.
    pub fn variant(&self) -> &Variant {
        &self.variant
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Next-token logits `(…, vocab)` from final hidden states (`resid_post` layer n): through
    /// `lm_head.weight`, or the token embeddings when the config ties them. A checkpoint with
    /// neither (a headless `AutoModel` save, a sequence-classification RM) is refused.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let w = match (&self.lm_head, self.cfg.tie_word_embeddings) {
            (Some(w), _) => w,
            (None, true) => &self.embed_tokens,
            (None, false) => {
                return Err(Error::model(
                    &self.info.path,
                    "no lm_head.weight and tie_word_embeddings is false: the checkpoint has no language-model head (saved without it, or a sequence-classification model)",
                ))
            }
        };
        Ok(Linear::new(w.clone(), None).forward(hidden)?)
    }

    /// `(cos, sin)`, each `(seq, head_dim / 2)`, computed in f32 as HF transformers does.
    pub fn rope_tables(&self, seq: usize) -> Result<(Tensor, Tensor)> {
        rope_tables(
            self.cfg.head_dim(),
            self.cfg.rope_theta(),
            self.rope3,
            seq,
            &self.device,
        )
    }

    /// [`Self::rope_tables`] as row-major f32 values, for the graph-free pass
    /// ([`super::llama_grad`]).
    pub fn rope_vecs(&self, seq: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (cos, sin) = self.rope_tables(seq)?;
        Ok((cos.flatten_all()?.to_vec1()?, sin.flatten_all()?.to_vec1()?))
    }

    /// The blocks, bottom first.
    pub fn blocks(&self) -> &[Block] {
        &self.layers
    }

    /// The final norm's weight `(hidden,)`.
    pub fn final_norm(&self) -> &Tensor {
        &self.norm
    }

    /// The token embedding matrix `(vocab, hidden)`.
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// `score.weight` `(1, hidden)` when the checkpoint is a sequence-classification RM.
    pub fn score(&self) -> Option<&Tensor> {
        self.score.as_ref().map(|h| &h.weight)
    }

    /// The reward head's bias (TRL value heads have one; `score.weight` heads do not).
    pub fn score_bias(&self) -> Option<f32> {
        self.score.as_ref().and_then(|h| h.bias)
    }

    /// The tokenizer (also through [`HookedModel::tokenizer`]).
    pub fn model_tokenizer(&self) -> &ModelTokenizer {
        &self.tokenizer
    }

    /// RMSNorm; `diff` selects the differentiable form.
    pub fn rms_norm(&self, x: &Tensor, w: &Tensor, diff: bool) -> Result<Tensor> {
        let eps = self.cfg.rms_norm_eps as f32;
        Ok(if diff && super::fused::fusable(x) {
            super::fused::rms_norm(x, w, eps)?
        } else if diff {
            candle_nn::ops::rms_norm_slow(x, w, eps)?
        } else {
            candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)?
        })
    }

    fn attention(
        &self,
        blk: &Block,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
        diff: bool,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let hd = self.cfg.head_dim();
        let (nh, nkv) = (self.cfg.num_attention_heads, self.cfg.kv_heads());
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, s, n, hd))?.transpose(1, 2)?.contiguous()
        };
        let mut q = heads(blk.q_proj.forward(x)?, nh)?;
        let mut k = heads(blk.k_proj.forward(x)?, nkv)?;
        let v = heads(blk.v_proj.forward(x)?, nkv)?;
        if let (Some(qn), Some(kn)) = (&blk.q_norm, &blk.k_norm) {
            q = self.rms_norm(&q, qn, diff)?;
            k = self.rms_norm(&k, kn, diff)?;
        }
        let (cos, sin) = rope;
        let (q, k) = if diff && super::fused::fusable(&q) {
            (
                super::fused::rope(&q, cos, sin)?,
                super::fused::rope(&k, cos, sin)?,
            )
        } else if diff {
            (
                candle_nn::rotary_emb::rope_slow(&q, cos, sin)?,
                candle_nn::rotary_emb::rope_slow(&k, cos, sin)?,
            )
        } else {
            (
                candle_nn::rotary_emb::rope(&q, cos, sin)?,
                candle_nn::rotary_emb::rope(&k, cos, sin)?,
            )
        };
        let scores =
            (attention_matmul(&q, &k, true, diff)? / (hd as f64).sqrt())?.broadcast_add(mask)?;
        let probs = if diff && super::fused::fusable(&scores) {
            super::fused::softmax_last_dim(&scores)?
        } else if diff {
            candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let ctx = attention_matmul(&probs, &v, false, diff)?
            .transpose(1, 2)?
            .reshape((b, s, nh * hd))?;
        Ok(blk.o_proj.forward(&ctx)?)
    }

    /// One block on the residual stream `x (batch, seq, hidden)`; `rope` from
    /// [`Llama::rope_tables`], `mask` from [`TokenBatch::attention_mask`] (causal).
    pub fn block_forward(
        &self,
        blk: &Block,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
        diff: bool,
    ) -> Result<BlockOutput> {
        let h = self.rms_norm(x, &blk.input_layernorm, diff)?;
        let attn_out = self.attention(blk, &h, rope, mask, diff)?;
        let x = (x + &attn_out)?;
        let h = self.rms_norm(&x, &blk.post_attention_layernorm, diff)?;
        let g = blk.gate_proj.forward(&h)?.silu()?;
        let u = blk.up_proj.forward(&h)?;
        let mlp_out = blk.down_proj.forward(&(g * u)?)?;
        let resid = (x + &mlp_out)?;
        Ok(BlockOutput {
            attn_out,
            mlp_out,
            resid,
        })
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

    fn lm_logits(&self, final_hidden: &Tensor) -> Result<Tensor> {
        self.logits(final_hidden)
    }

    fn has_reward_head(&self) -> bool {
        self.score.is_some()
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
        // The embeddings may be held in their stored half dtype; the stream computes in the
        // norms' dtype.
        let mut x = self
            .embed_tokens
            .index_select(&ids, 0)?
            .reshape((b, s, d))?
            .to_dtype(self.norm.dtype())?;
        if hooks.wants(HookPoint::ResidPost, 0) {
            sink.layer(HookPoint::ResidPost, 0, &x)?;
        }
        if blocks == 0 {
            return Ok(());
        }
        if self.graph_free_applies(&x, hooks, blocks) {
            x = self.blocks_graph_free(x, batch, hooks, blocks, sink)?;
        } else {
            x = self.blocks_candle(x, batch, hooks, blocks, sink)?;
        }
        if blocks == n && (hooks.wants(HookPoint::ResidPost, n) || hooks.reward()) {
            let y = self.rms_norm(&x, &self.norm, false)?;
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

impl Llama {
    /// Whether inference can run the blocks through [`super::llama_grad::forward`]: plain
    /// Llama blocks with CPU f32 contiguous weights and input, and no `attn_out` / `mlp_out`
    /// hook (that pass adds the branches into the residual stream in place).
    fn graph_free_applies(&self, x: &Tensor, hooks: &HookRequest, blocks: usize) -> bool {
        let cpu_f32 = |t: &Tensor| super::fused::fusable(t) && t.is_contiguous();
        let cpu_weight = |t: &Tensor| {
            cpu_f32(t)
                || (matches!(t.device(), Device::Cpu)
                    && matches!(t.dtype(), DType::BF16 | DType::F16)
                    && t.is_contiguous())
        };
        self.variant().is_plain()
            && cpu_f32(x)
            && (1..=blocks)
                .all(|l| !hooks.wants(HookPoint::AttnOut, l) && !hooks.wants(HookPoint::MlpOut, l))
            && self.layers[..blocks]
                .iter()
                .all(|b| b.tensors().iter().all(|t| cpu_weight(t)))
    }

    /// The first `blocks` blocks graph-free (one row-major buffer, OpenBLAS products, fused
    /// norms, RoPE and softmax; [`super::llama_grad`]), handing `resid_post` to the sink; returns
    /// the last block's output `(b, s, hidden)`. Same numbers as [`Self::blocks_candle`] to
    /// float32 rounding (the training tests hold the pass to candle's within 1e-5; the parity
    /// tests hold capture to HF transformers).
    fn blocks_graph_free(
        &self,
        x: Tensor,
        batch: &TokenBatch,
        hooks: &HookRequest,
        blocks: usize,
        sink: &mut dyn ActivationSink,
    ) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let n = self.layers.len();
        let dev = x.device().clone();
        let dims = super::llama_grad::Dims::of(&self.cfg, b, s);
        let (cos, sin) = self.rope_vecs(s)?;
        let mut xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
        for (i, stored) in self.layers.iter().take(blocks).enumerate() {
            let l = i + 1;
            // A half-precision block's product weights are widened inside each product, a
            // few rows at a time (`linear::HalfWeightGemm`).
            let (y, _) = super::llama_grad::with_block(stored, |w| {
                super::llama_grad::forward(&w, &dims, &batch.lens, &cos, &sin, xv)
            })?;
            xv = y;
            if l < n && hooks.wants(HookPoint::ResidPost, l) {
                sink.layer(
                    HookPoint::ResidPost,
                    l,
                    &Tensor::from_slice(&xv, (b, s, d), &dev)?,
                )?;
            }
        }
        Ok(Tensor::from_vec(xv, (b, s, d), &dev)?)
    }

    /// The first `blocks` blocks on candle's ops, handing every wanted hook to the sink.
    fn blocks_candle(
        &self,
        mut x: Tensor,
        batch: &TokenBatch,
        hooks: &HookRequest,
        blocks: usize,
        sink: &mut dyn ActivationSink,
    ) -> Result<Tensor> {
        let n = self.layers.len();
        let (_, s, _) = x.dims3()?;
        let dtype = x.dtype();
        let masks = Masks::new(batch, self.layers.iter().map(|b| b.window), dtype)?;
        let (cos, sin) = self.rope_tables(s)?;
        let rope = (cos.to_dtype(dtype)?, sin.to_dtype(dtype)?);
        for (i, blk) in self.layers.iter().take(blocks).enumerate() {
            let l = i + 1;
            let out = self.block_forward(blk, &x, &rope, masks.get(blk.window), false)?;
            if hooks.wants(HookPoint::AttnOut, l) {
                sink.layer(HookPoint::AttnOut, l, &out.attn_out)?;
            }
            if hooks.wants(HookPoint::MlpOut, l) {
                sink.layer(HookPoint::MlpOut, l, &out.mlp_out)?;
            }
            x = out.resid;
            if l < n && hooks.wants(HookPoint::ResidPost, l) {
                sink.layer(HookPoint::ResidPost, l, &x)?;
            }
        }
        Ok(x)
    }
}

/// The causal mask, and one sliding-window mask per window width the blocks use.
pub struct Masks {
    full: Tensor,
    windowed: Vec<(usize, Tensor)>,
}

impl Masks {
    /// The masks for blocks with these sliding windows, in the activations' `dtype`.
    pub fn new(
        batch: &TokenBatch,
        windows: impl IntoIterator<Item = Option<usize>>,
        dtype: DType,
    ) -> Result<Self> {
        let mut windowed: Vec<(usize, Tensor)> = Vec::new();
        for w in windows.into_iter().flatten() {
            if !windowed.iter().any(|(x, _)| *x == w) {
                windowed.push((w, batch.attention_mask_window(w)?.to_dtype(dtype)?));
            }
        }
        Ok(Self {
            full: batch.attention_mask(true)?.to_dtype(dtype)?,
            windowed,
        })
    }

    /// The mask for a block with this window.
    pub fn get(&self, window: Option<usize>) -> &Tensor {
        window
            .and_then(|w| self.windowed.iter().find(|(x, _)| *x == w).map(|(_, m)| m))
            .unwrap_or(&self.full)
    }
}
