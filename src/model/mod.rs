//! Models with hook points: an explicit layer loop per architecture that hands each requested
//! activation to an [`ActivationSink`].
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
pub mod hooked;
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

use std::path::Path;

use candle_core::{DType, Device};

use crate::error::{Error, Result};
pub use form::{Arch, ModelForm};
pub use hooked::{ActivationSink, HookRequest, HookedModel, ModelInfo, TokenBatch};
pub use repdrift_core::hook::HookPoint;
pub use tokenizer::ModelTokenizer;

/// Load a Llama-family model as the concrete type (training needs its blocks): a `.gguf` file,
/// an HF directory whose `config.json` says `model_type: llama`, a delta student or a LoRA
/// adapter over such a base.
pub fn load_llama(path: &Path, device: &Device) -> Result<llama::Llama> {
    match ModelForm::detect(path)? {
        ModelForm::Gguf => gguf::load_llama(path, device),
        ModelForm::Delta => delta::load(path, device, DType::F32),
        ModelForm::Adapter => adapter::load(path, None, device, DType::F32),
        ModelForm::HfDir(Arch::Llama) => llama::Llama::load_dir(path, device, DType::F32),
        ModelForm::HfDir(other) => Err(Error::model(
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
/// decided once ([`ModelForm::detect`]).
pub fn load_with_base(
    path: &Path,
    adapter_base: Option<&Path>,
    device: &Device,
    dtype: DType,
) -> Result<Box<dyn HookedModel>> {
    Ok(match ModelForm::detect(path)? {
        ModelForm::Gguf => Box::new(gguf::load_llama(path, device)?),
        ModelForm::Delta => Box::new(delta::load(path, device, dtype)?),
        ModelForm::Adapter => Box::new(adapter::load(path, adapter_base, device, dtype)?),
        ModelForm::HfDir(arch) => match arch {
            Arch::Bert => Box::new(bert::Bert::load_dir(path, device)?),
            Arch::Llama => Box::new(llama::Llama::load_dir(path, device, dtype)?),
            Arch::Qwen2 => Box::new(qwen2::load_dir(path, device, dtype)?),
            Arch::Qwen3 => Box::new(qwen3::load_dir(path, device, dtype)?),
            Arch::Mistral => Box::new(mistral::load_dir(path, device, dtype)?),
            Arch::Gemma2 => Box::new(gemma2::Gemma2::load_dir(path, device, dtype)?),
        },
    })
}

/// [`load`] computing in `dtype` (Llama-family and Gemma 2 models; BERT and GGUF models
/// compute in f32 whatever is asked, GGUF weights being dequantized to f32 first).
pub fn load_with(path: &Path, device: &Device, dtype: DType) -> Result<Box<dyn HookedModel>> {
    load_with_base(path, None, device, dtype)
}

/// Write the reward model at `model` (a delta student or any Llama reward model) as a full HF
/// directory at `out`, copying the training records beside it when there are any.
pub fn export(model: &Path, out: &Path, device: &Device) -> Result<()> {
    let m = load_llama(model, device)?;
    if m.score_bias().is_some() {
        return Err(Error::model(
            model,
            "the reward head has a bias (a TRL value head), which LlamaForSequenceClassification cannot hold",
        ));
    }
    let state = delta::hf_state(&m, &std::collections::BTreeMap::new())?;
    let mut extra = Vec::new();
    for name in ["training_args.json", "loss_log.jsonl", "train_summary.json"] {
        let p = model.join(name);
        if model.is_dir() && p.is_file() {
            extra.push((name, std::fs::read(&p).map_err(|e| Error::io(&p, e))?));
        }
    }
    delta::write_hf_reward_model(out, &m, &state, &extra)
}
