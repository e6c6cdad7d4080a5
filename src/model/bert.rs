//! The BERT encoder (all-MiniLM-L6-v2 and other `BertModel` checkpoints) with hook points.
//!
//! `resid_post` layer 0 is the embedding output (after its LayerNorm), layer `i` the output of
//! encoder layer `i`, as in HF's `hidden_states`. `attn_out` / `mlp_out` are the attention
//! and feed-forward dense projections before their residual add and LayerNorm (BERT is
//! post-norm). Token type ids are all 0, as HF uses for single sequences.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use serde::{Deserialize, Serialize};

use super::hooked::{ActivationSink, HookPoint, HookRequest, HookedModel, ModelInfo, TokenBatch};
use super::linear::{attention_matmul, Linear};
use super::tokenizer::ModelTokenizer;
use super::weights::Weights;
use crate::error::{Error, Result};

/// The HF `config.json` of a BERT model (field names as HF writes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_dense: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// A BERT encoder with hook points.
pub struct Bert {
    cfg: BertConfig,
    info: ModelInfo,
    tokenizer: ModelTokenizer,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

fn linb(w: &Weights, out: usize, inp: usize) -> Result<Linear> {
    Ok(Linear::new(
        w.get("weight", &[out, inp])?,
        Some(w.get("bias", &[out])?),
    ))
}

fn norm(w: &Weights, d: usize) -> Result<Norm> {
    Ok(Norm {
        w: w.get("weight", &[d])?,
        b: w.get("bias", &[d])?,
    })
}

impl Bert {
    /// Build the model by walking HF weight prefixes (with or without a leading `bert.`).
    pub fn new(
        cfg: BertConfig,
        weights: &Weights,
        tokenizer: ModelTokenizer,
        info: ModelInfo,
    ) -> Result<Self> {
        if cfg.hidden_act != "gelu" {
            return Err(Error::model(
                weights.path(),
                format!(
                    "hidden_act `{}` is not supported (gelu only)",
                    cfg.hidden_act
                ),
            ));
        }
        if let Some(p) = cfg.position_embedding_type.as_deref() {
            if p != "absolute" {
                return Err(Error::model(
                    weights.path(),
                    format!("position_embedding_type `{p}` is not supported (absolute only)"),
                ));
            }
        }
        let root = if weights.contains("bert.embeddings.word_embeddings.weight") {
            weights.pp("bert")
        } else {
            weights.clone()
        };
        let d = cfg.hidden_size;
        let e = root.pp("embeddings");
        let word = e
            .pp("word_embeddings")
            .get("weight", &[cfg.vocab_size, d])?;
        let position = e
            .pp("position_embeddings")
            .get("weight", &[cfg.max_position_embeddings, d])?;
        let token_type = e
            .pp("token_type_embeddings")
            .get("weight", &[cfg.type_vocab_size, d])?;
        let emb_norm = norm(&e.pp("LayerNorm"), d)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = root.pp("encoder.layer").pp(i);
            let a = l.pp("attention");
            layers.push(Layer {
                query: linb(&a.pp("self.query"), d, d)?,
                key: linb(&a.pp("self.key"), d, d)?,
                value: linb(&a.pp("self.value"), d, d)?,
                attn_dense: linb(&a.pp("output.dense"), d, d)?,
                attn_norm: norm(&a.pp("output.LayerNorm"), d)?,
                intermediate: linb(&l.pp("intermediate.dense"), cfg.intermediate_size, d)?,
                output: linb(&l.pp("output.dense"), d, cfg.intermediate_size)?,
                output_norm: norm(&l.pp("output.LayerNorm"), d)?,
            });
        }
        Ok(Self {
            cfg,
            info,
            tokenizer,
            word,
            position,
            token_type,
            emb_norm,
            layers,
        })
    }

    /// Load an HF directory: `config.json`, `model.safetensors` (or shards with
    /// `model.safetensors.index.json`), `tokenizer.json`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let (cfg, weights, tokenizer, info) = Self::read_dir(dir, device)?;
        Self::new(cfg, &weights, tokenizer, info)
    }

    /// What [`Bert::load_dir`] builds the model from: config, weights, tokenizer, description.
    pub fn read_dir(
        dir: &Path,
        device: &Device,
    ) -> Result<(BertConfig, Weights, ModelTokenizer, ModelInfo)> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: cfg_path.clone(),
            cause: e,
        })?;
        let (weights, sha) = Weights::from_hf_dir(dir, device)?;
        let tokenizer = ModelTokenizer::from_json_file(&dir.join("tokenizer.json"))?;
        let info = ModelInfo {
            path: dir.to_path_buf(),
            architecture: "bert".into(),
            source: "safetensors".into(),
            weights_sha256: sha,
            n_layers: cfg.num_hidden_layers,
            hidden_size: cfg.hidden_size,
        };
        Ok((cfg, weights, tokenizer, info))
    }

    fn ln(&self, x: &Tensor, n: &Norm) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            &n.w,
            &n.b,
            self.cfg.layer_norm_eps as f32,
        )?)
    }
}

impl HookedModel for Bert {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &ModelTokenizer {
        &self.tokenizer
    }

    fn pad_id(&self) -> u32 {
        self.cfg.pad_token_id
    }

    fn forward_hooked(
        &self,
        batch: &TokenBatch,
        hooks: &HookRequest,
        sink: &mut dyn ActivationSink,
    ) -> Result<()> {
        let (b, s) = batch.ids.dims2()?;
        if s > self.cfg.max_position_embeddings {
            return Err(Error::param(
                "max-tokens",
                format!(
                    "a sequence has {s} tokens but the model has {} positions; pass --max-tokens {}",
                    self.cfg.max_position_embeddings, self.cfg.max_position_embeddings
                ),
            ));
        }
        let d = self.cfg.hidden_size;
        let nh = self.cfg.num_attention_heads;
        let hd = d / nh;
        let ids = batch.ids.flatten_all()?;
        let x = self.word.index_select(&ids, 0)?.reshape((b, s, d))?;
        let x = x.broadcast_add(&self.position.narrow(0, 0, s)?)?;
        let x = x.broadcast_add(&self.token_type.narrow(0, 0, 1)?)?;
        let mut x = self.ln(&x, &self.emb_norm)?;
        if hooks.wants(HookPoint::ResidPost, 0) {
            sink.layer(HookPoint::ResidPost, 0, &x)?;
        }
        let blocks = hooks.blocks_needed().min(self.layers.len());
        if blocks == 0 {
            return Ok(());
        }
        let mask = batch.attention_mask(false)?;
        for (i, layer) in self.layers.iter().take(blocks).enumerate() {
            let l = i + 1;
            let heads = |t: Tensor| -> candle_core::Result<Tensor> {
                t.reshape((b, s, nh, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = heads(layer.query.forward(&x)?)?;
            let k = heads(layer.key.forward(&x)?)?;
            let v = heads(layer.value.forward(&x)?)?;
            let scores = (attention_matmul(&q, &k, true, false)? / (hd as f64).sqrt())?
                .broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = attention_matmul(&probs, &v, false, false)?
                .transpose(1, 2)?
                .reshape((b, s, d))?;
            let a = layer.attn_dense.forward(&ctx)?;
            if hooks.wants(HookPoint::AttnOut, l) {
                sink.layer(HookPoint::AttnOut, l, &a)?;
            }
            let h = self.ln(&(a + &x)?, &layer.attn_norm)?;
            let inter = layer.intermediate.forward(&h)?.gelu_erf()?;
            let m = layer.output.forward(&inter)?;
            if hooks.wants(HookPoint::MlpOut, l) {
                sink.layer(HookPoint::MlpOut, l, &m)?;
            }
            x = self.ln(&(m + h)?, &layer.output_norm)?;
            if hooks.wants(HookPoint::ResidPost, l) {
                sink.layer(HookPoint::ResidPost, l, &x)?;
            }
        }
        Ok(())
    }
}
