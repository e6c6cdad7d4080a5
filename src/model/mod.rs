//! Models with hook points: an explicit layer loop per architecture that hands each requested
//! activation to an [`ActivationSink`](ActivationSink).
//!
//! Hook points follow TransformerLens names and HF transformers' `output_hidden_states`
//! indexing:
//! - `resid_post` layer 0 is the embedding output, layer `i` (1..=n) the residual stream after
//!   block `i`; for decoders (pre-norm) layer `n` is taken after the final norm, exactly as HF
//!   returns `hidden_states[n]`. For BERT (post-norm) layer `i` is the block output.
//! - `attn_out` / `mlp_out` layer `i` (1..=n) is block `i`'s attention / MLP output as added to
//!   the residual stream (for BERT: the dense projection before its residual add and LayerNorm).
//!
//! Every tensor handed to a sink has shape `(batch, seq, hidden)`. Sequences are right-padded;
//! padded positions carry unspecified values and are never read by pooling.

pub mod adapter;
pub mod bert;
pub mod delta;
pub mod edit;
pub mod form;
pub mod fused;
pub mod gemma2;
pub mod gguf;
pub mod linear;
pub mod llama;
pub mod llama_block;
pub mod llama_config;
pub mod llama_grad;
pub mod mistral;
pub mod qwen2;
pub mod qwen3;
pub mod reward_head;
pub mod tensor_file;
pub mod tokenizer;
pub mod weights;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use tokenizer::ModelTokenizer;

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

/// A place in the forward pass where activations can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    ResidPost,
    AttnOut,
    MlpOut,
}

impl HookPoint {
    /// All hook points, in store order.
    pub const ALL: [HookPoint; 3] = [HookPoint::ResidPost, HookPoint::AttnOut, HookPoint::MlpOut];

    /// The TransformerLens-style name used on the command line and in stores.
    pub fn name(self) -> &'static str {
        match self {
            HookPoint::ResidPost => "resid_post",
            HookPoint::AttnOut => "attn_out",
            HookPoint::MlpOut => "mlp_out",
        }
    }

    /// Parse a hook name.
    pub fn parse(s: &str) -> Result<Self> {
        HookPoint::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| {
                Error::param(
                    "hooks",
                    format!("unknown hook point `{s}` (known: resid_post, attn_out, mlp_out)"),
                )
            })
    }

    /// The valid layer range `(min, max)` for a model of `n_layers` blocks.
    pub fn layer_range(self, n_layers: usize) -> (usize, usize) {
        match self {
            HookPoint::ResidPost => (0, n_layers),
            HookPoint::AttnOut | HookPoint::MlpOut => (1, n_layers),
        }
    }
}

impl std::fmt::Display for HookPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
    /// the sink through [`ActivationSink::reward`](ActivationSink::reward)
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

/// Load a Llama-family model as the concrete type (training needs its blocks): a `.gguf` file,
/// an HF directory whose `config.json` says `model_type: llama`, a delta student or a LoRA
/// adapter over such a base.
pub fn load_llama(path: &Path, device: &Device) -> Result<llama::Llama> {
    match form::ModelForm::detect(path)? {
        form::ModelForm::Gguf => gguf::load_llama(path, device),
        form::ModelForm::Delta => delta::load(path, device, DType::F32),
        form::ModelForm::Adapter => adapter::load(path, None, device, DType::F32),
        form::ModelForm::HfDir(form::Arch::Llama) => llama::Llama::load_dir(path, device, DType::F32),
        form::ModelForm::HfDir(other) => Err(Error::model(
            path.join("config.json"),
            format!(
                "model_type `{}`: training needs a Llama-family base (a .gguf file or an HF llama directory)",
                other.name()
            ),
        )),
    }
}

/// Load a model: a `.gguf` file (Llama family) or an HF directory (`config.json` with
/// `model_type` `llama`, `mistral`, `qwen2`, `qwen3`, `gemma2` or `bert`, `model.safetensors` or shards
/// with `model.safetensors.index.json`, `tokenizer.json`).
///
/// ```no_run
/// let model = repdrift::model::load("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(),
///     &candle_core::Device::Cpu).unwrap();
/// assert_eq!(model.info().n_layers, 30);
/// ```
pub fn load(path: &Path, device: &Device) -> Result<Box<dyn HookedModel>> {
    load_with(path, device, DType::F32)
}

/// The compute dtype for a model on a device: `auto` is f32 on CPU and, on a GPU, the
/// checkpoint's own dtype (`config.json` `dtype` / `torch_dtype`) when it is bf16 or f16.
pub fn resolve_dtype(name: &str, path: &Path, device: &Device) -> Result<DType> {
    match name {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        "auto" => {
            if matches!(device, Device::Cpu) || !path.is_dir() {
                return Ok(DType::F32);
            }
            let v: serde_json::Value = llama::read_config(path)?;
            let d = v
                .get("dtype")
                .or_else(|| v.get("torch_dtype"))
                .and_then(|d| d.as_str())
                .unwrap_or("float32");
            Ok(match d {
                "bfloat16" => DType::BF16,
                "float16" => DType::F16,
                _ => DType::F32,
            })
        }
        other => Err(Error::param(
            "dtype",
            format!("`{other}`: expected auto, f32, bf16 or f16"),
        )),
    }
}

/// [`load_with`], reading a PEFT LoRA adapter over `adapter_base` when it is one and a base
/// is given (else over the base its config names). The one dispatcher: the path's form is
/// decided once ([`form::ModelForm::detect`]).
pub fn load_with_base(
    path: &Path,
    adapter_base: Option<&Path>,
    device: &Device,
    dtype: DType,
) -> Result<Box<dyn HookedModel>> {
    Ok(match form::ModelForm::detect(path)? {
        form::ModelForm::Gguf => Box::new(gguf::load_llama(path, device)?),
        form::ModelForm::Delta => Box::new(delta::load(path, device, dtype)?),
        form::ModelForm::Adapter => Box::new(adapter::load(path, adapter_base, device, dtype)?),
        form::ModelForm::HfDir(arch) => match arch {
            form::Arch::Bert => Box::new(bert::Bert::load_dir(path, device)?),
            form::Arch::Llama => Box::new(llama::Llama::load_dir(path, device, dtype)?),
            form::Arch::Qwen2 => Box::new(qwen2::load_dir(path, device, dtype)?),
            form::Arch::Qwen3 => Box::new(qwen3::load_dir(path, device, dtype)?),
            form::Arch::Mistral => Box::new(mistral::load_dir(path, device, dtype)?),
            form::Arch::Gemma2 => Box::new(gemma2::Gemma2::load_dir(path, device, dtype)?),
        },
    })
}

/// [`load`] computing in `dtype` (Llama-family and Gemma 2 models; BERT and GGUF models
/// compute in f32 whatever is asked, GGUF weights being dequantized to f32 first).
pub fn load_with(path: &Path, device: &Device, dtype: DType) -> Result<Box<dyn HookedModel>> {
    load_with_base(path, None, device, dtype)
}
