//! Flags shared by the commands that run a model over a data set (`capture`,
//! `implicit-reward`, `cues`, `values`): how to read the data and how to run the model.

use std::path::{Path, PathBuf};

use repdrift::model::HookedModel;

/// How a data file is read.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Use only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// PKU-SafeRLHF rows: which label picks the chosen reply (`safer` or `better`).
    #[arg(long, default_value = "safer")]
    pub label: String,
    /// How message lists (conversations, PKU rows) become text: hh, plain, or model (the
    /// model's own chat template).
    #[arg(long, default_value = "hh")]
    pub template: String,
}

impl DataArgs {
    /// Read `path` with these options (`--template model` takes `model`'s template).
    pub fn read(
        &self,
        path: &Path,
        model: &dyn HookedModel,
    ) -> repdrift::Result<repdrift::data::Dataset> {
        repdrift::data::read_jsonl_with(
            path,
            &repdrift::data::ReadOptions {
                limit: self.limit,
                label: repdrift::data::PairLabel::parse(&self.label)?,
                template: super::train::template(&self.template, model)?,
            },
        )
    }
}

/// How a model runs.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Keep at most this many tokens per sequence, dropping from the left (0 = no limit).
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// cpu or cuda:N (build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype: auto (f32 on CPU; the checkpoint's bf16/f16 on a GPU), f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// The base model of a PEFT LoRA adapter given as the model, when its
    /// `base_model_name_or_path` is not a local path.
    #[arg(long)]
    pub adapter_base: Option<std::path::PathBuf>,
}

impl RunArgs {
    /// `--max-tokens`, 0 meaning no limit.
    pub fn max_tokens(&self) -> Option<usize> {
        (self.max_tokens > 0).then_some(self.max_tokens)
    }

    /// The device.
    pub fn device(&self) -> repdrift::Result<candle_core::Device> {
        super::device::parse_device(&self.device)
    }

    /// Load the model at `path` on `device` in the `--dtype` it resolves to.
    pub fn load(
        &self,
        path: &Path,
        device: &candle_core::Device,
    ) -> repdrift::Result<Box<dyn HookedModel>> {
        let dtype = repdrift::model::resolve_dtype(&self.dtype, path, device)?;
        repdrift::model::load_with_base(path, self.adapter_base.as_deref(), device, dtype)
    }
}

/// `NAME=PATH` (or a bare PATH named `default`) for `flag`.
pub fn named(s: &str, flag: &str, default: Option<&str>) -> repdrift::Result<(String, PathBuf)> {
    match (s.split_once('='), default) {
        (Some((n, p)), _) if !n.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        (None, Some(d)) => Ok((d.to_string(), PathBuf::from(s))),
        _ => Err(repdrift::Error::param(
            flag,
            format!("`{s}` is not NAME=STORE"),
        )),
    }
}

/// `i/N`: shard i of N.
pub fn parse_shard(s: &str) -> repdrift::Result<(usize, usize)> {
    let bad =
        || repdrift::Error::param("shard", format!("`{s}` is not of the form i/N (e.g. 0/2)"));
    let (a, b) = s.split_once('/').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}
