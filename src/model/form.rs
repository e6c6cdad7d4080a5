//! What a model path holds, decided once from its files. Every loader in [`super`] matches on
//! a [`ModelForm`] instead of testing the files again; every error about a path's form (missing,
//! a pickle, an unknown extension, an unsupported `model_type`) is raised here.

use std::path::Path;

use crate::error::{Error, Result};

/// The architecture an HF directory's `config.json` names (`model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma2,
    Bert,
}

impl Arch {
    const ALL: [(&'static str, Arch); 6] = [
        ("llama", Arch::Llama),
        ("mistral", Arch::Mistral),
        ("qwen2", Arch::Qwen2),
        ("qwen3", Arch::Qwen3),
        ("gemma2", Arch::Gemma2),
        ("bert", Arch::Bert),
    ];

    /// The `model_type` string.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .expect("every Arch is listed")
    }
}

/// The form of a model path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelForm {
    /// A `.gguf` file (Llama family).
    Gguf,
    /// A student saved as a delta over its base (`repdrift train` with `top:k`).
    Delta,
    /// A PEFT LoRA adapter directory (`adapter_config.json`).
    Adapter,
    /// An HF directory: `config.json`, safetensors weights, `tokenizer.json`.
    HfDir(Arch),
}

impl ModelForm {
    /// Decide the form of `path` from its files.
    pub fn detect(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::model(path, "no such file or directory"));
        }
        if path.is_file() {
            return match path.extension().and_then(|e| e.to_str()) {
                Some("gguf") => Ok(Self::Gguf),
                Some("bin") | Some("pt") | Some("pth") | Some("ckpt") | Some("pkl") => Err(Error::model(
                    path,
                    "pickle checkpoints are refused (loading them can execute code); convert to safetensors first, e.g. in Python: `safetensors.torch.save_file(torch.load(p, weights_only=True), 'model.safetensors')`",
                )),
                _ => Err(Error::model(
                    path,
                    "expected a .gguf file or an HF model directory (config.json + model.safetensors + tokenizer.json)",
                )),
            };
        }
        if super::delta::is_delta(path) {
            return Ok(Self::Delta);
        }
        if super::adapter::is_adapter(path) {
            return Ok(Self::Adapter);
        }
        let v: serde_json::Value = super::llama::read_config(path)?;
        let mt = v.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        match Arch::ALL.iter().find(|(n, _)| *n == mt) {
            Some((_, a)) => Ok(Self::HfDir(*a)),
            None => Err(Error::model(
                path.join("config.json"),
                format!("model_type `{mt}` is not supported (supported: llama, mistral, qwen2, qwen3, gemma2, bert)"),
            )),
        }
    }
}
