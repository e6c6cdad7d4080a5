//! What every model offers its callers, below the architectures and the loaders: the hooks a
//! forward pass serves ([`HookRequest`], into an [`ActivationSink`]), the padded token batch it
//! runs on, what a loaded model is ([`ModelInfo`]) and the [`HookedModel`] trait itself.

use std::collections::BTreeSet;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::tokenizer::ModelTokenizer;
use crate::error::{Error, Result};
pub use repdrift_core::hook::HookPoint;

/// Receives activations from a forward pass, push-style (like ripgrep's `Sink`).
pub trait ActivationSink {
    /// Called before the forward pass of each batch.
    fn begin(&mut self, _batch: &TokenBatch) -> Result<()> {
        Ok(())
    }
    /// One requested activation, `(batch, seq, hidden)`.
    fn layer(&mut self, hook: HookPoint, layer: usize, states: &Tensor) -> Result<()>;
    /// One reward per batch row, from a reward model's scalar head (only when requested).
    fn reward(&mut self, _rewards: &[f32]) -> Result<()> {
        Ok(())
    }
    /// Called after the forward pass of each batch.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The set of `(hook, layer)` activations a forward pass must hand to its sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookRequest {
    points: BTreeSet<(HookPoint, usize)>,
    /// `Some(n_layers)` when the model's reward head must be read (it needs every block).
    reward: Option<usize>,
}

impl HookRequest {
    /// Build a request, checking every layer against the model's range.
    pub fn new(hooks: &[HookPoint], layers: &[usize], n_layers: usize) -> Result<Self> {
        let mut points = BTreeSet::new();
        for &h in hooks {
            let (min, max) = h.layer_range(n_layers);
            for &l in layers {
                if l < min || l > max {
                    return Err(Error::LayerOutOfRange {
                        layer: l,
                        min,
                        max,
                        what: format!("hook {h} of a {n_layers}-block model"),
                    });
                }
                points.insert((h, l));
            }
        }
        Ok(Self {
            points,
            reward: None,
        })
    }

    /// Also read the reward head of a model of `n_layers` blocks (a full forward pass).
    pub fn with_reward(mut self, n_layers: usize) -> Self {
        self.reward = Some(n_layers);
        self
    }

    /// Whether the reward head is requested.
    pub fn reward(&self) -> bool {
        self.reward.is_some()
    }

    /// Every layer of every given hook.
    pub fn all_layers(hooks: &[HookPoint], n_layers: usize) -> Self {
        let mut points = BTreeSet::new();
        for &h in hooks {
            let (min, max) = h.layer_range(n_layers);
            for l in min..=max {
                points.insert((h, l));
            }
        }
        Self {
            points,
            reward: None,
        }
    }

    /// Whether `(hook, layer)` is requested.
    pub fn wants(&self, hook: HookPoint, layer: usize) -> bool {
        self.points.contains(&(hook, layer))
    }

    /// The number of blocks the forward pass must run (it stops after the last one needed).
    pub fn blocks_needed(&self) -> usize {
        let hooks = self.points.iter().map(|&(_, l)| l).max().unwrap_or(0);
        hooks.max(self.reward.unwrap_or(0))
    }

    /// The requested points in store order.
    pub fn points(&self) -> impl Iterator<Item = (HookPoint, usize)> + '_ {
        self.points.iter().copied()
    }

    /// Whether nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.reward.is_none()
    }
}

/// What a loaded model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The file or directory the model was loaded from.
    pub path: PathBuf,
    /// `llama` or `bert`.
    pub architecture: String,
    /// Where the weights came from: `gguf` or `safetensors`.
    pub source: String,
    /// sha256 of the weights file.
    pub weights_sha256: String,
    /// The number of blocks.
    pub n_layers: usize,
    /// The width of the residual stream.
    pub hidden_size: usize,
}

/// A padded batch of token ids: `ids` is `(batch, seq)` u32, right-padded; `lens[b]` is the
/// number of real tokens of row `b`.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    pub ids: Tensor,
    pub lens: Vec<usize>,
}

impl TokenBatch {
    /// Right-pad `seqs` with `pad_id` into one batch on `device`.
    pub fn new(seqs: &[&[u32]], pad_id: u32, device: &Device) -> Result<Self> {
        let max = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(seqs.len() * max);
        for s in seqs {
            flat.extend_from_slice(s);
            flat.extend(std::iter::repeat_n(pad_id, max - s.len()));
        }
        let ids = Tensor::from_vec(flat, (seqs.len(), max), device)?;
        Ok(Self {
            ids,
            lens: seqs.iter().map(|s| s.len()).collect(),
        })
    }

    /// The additive attention mask `(batch, 1, q, k)`: `-inf` where a key is padding, or (for
    /// causal models) lies after the query.
    pub fn attention_mask(&self, causal: bool) -> Result<Tensor> {
        let (b, s) = self.ids.dims2()?;
        let mut m = vec![0f32; b * s * s];
        for (bi, &len) in self.lens.iter().enumerate() {
            for q in 0..s {
                for k in 0..s {
                    if k >= len || (causal && k > q) {
                        m[(bi * s + q) * s + k] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, (b, 1, s, s), self.ids.device())?)
    }

    /// The causal mask restricted to a sliding window: a query attends to itself and the
    /// `window − 1` keys before it (HF's `kv_idx > q_idx − window`), padding masked.
    pub fn attention_mask_window(&self, window: usize) -> Result<Tensor> {
        let (b, s) = self.ids.dims2()?;
        let mut m = vec![0f32; b * s * s];
        for (bi, &len) in self.lens.iter().enumerate() {
            for q in 0..s {
                for k in 0..s {
                    // Padded query rows keep every real key: a fully masked row would give NaN,
                    // which would reach real rows through the next layer's keys.
                    if k >= len || k > q || (q < len && k + window <= q) {
                        m[(bi * s + q) * s + k] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, (b, 1, s, s), self.ids.device())?)
    }
}

/// A model whose forward pass can hand activations to a sink.
pub trait HookedModel: Send + Sync {
    /// What the model is.
    fn info(&self) -> &ModelInfo;
    /// The model's tokenizer.
    fn tokenizer(&self) -> &ModelTokenizer;
    /// The id used for padding (never read: padded positions are masked and not pooled).
    fn pad_id(&self) -> u32;
    /// Whether the checkpoint carries a scalar reward head (`score.weight`); its rewards reach
    /// the sink through [`ActivationSink::reward`]
    /// when the request asks for them.
    fn has_reward_head(&self) -> bool {
        false
    }
    /// Next-token logits `(rows, vocab)` from final hidden states `(rows, hidden)` (`resid_post`
    /// layer n): the language-model head — `lm_head.weight`, or the token embeddings when they
    /// are tied — with Gemma 2's final soft-capping. An error for models without one (BERT
    /// encoders, sequence-classification checkpoints that dropped the head).
    fn lm_logits(&self, _final_hidden: &Tensor) -> Result<Tensor> {
        Err(Error::model(
            &self.info().path,
            format!(
                "a {} model has no language-model head: log-probabilities need a causal LM",
                self.info().architecture
            ),
        ))
    }
    /// Run the forward pass on `batch` and hand every requested activation to `sink`, as a
    /// `(batch, seq, hidden)` tensor, in layer order. Stops after the last requested block.
    fn forward_hooked(
        &self,
        batch: &TokenBatch,
        hooks: &HookRequest,
        sink: &mut dyn ActivationSink,
    ) -> Result<()>;
}
