//! Loading a model with some weights replaced in memory. `validate` plants a known change this
//! way — noise on one block's output projections — and checks that the drift measures find it
//! where it is and nowhere before it.
//!
//! Supported: Llama-architecture GGUF files, HF `llama` directories and HF `bert` directories
//! (the two default models and the trainer's architecture). Other architectures get a named
//! error that says so.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::bert::Bert;
use super::form::{Arch, ModelForm};
use super::gguf;
use super::hooked::HookedModel;
use super::llama::{Llama, LlamaParts};
use super::weights::Weights;
use crate::error::{Error, Result};

/// Computes replacement tensors (HF names) from the model's weights.
pub type Edit<'a> = &'a dyn Fn(&Weights) -> Result<HashMap<String, Tensor>>;

/// The architecture family an edit can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Bert,
}

/// Which family `path` is, or a named error when editing it is not supported.
pub fn family(path: &Path) -> Result<Family> {
    match ModelForm::detect(path)? {
        ModelForm::Gguf | ModelForm::HfDir(Arch::Llama) => Ok(Family::Llama),
        ModelForm::HfDir(Arch::Bert) => Ok(Family::Bert),
        _ => Err(Error::model(
            path,
            "editing weights (planted drift) is supported for Llama GGUF files and HF llama or bert directories only",
        )),
    }
}

/// The HF names of block `layer`'s two output projections — the matrices through which the
/// block writes into the residual stream (attention output and MLP output).
pub fn output_projections(family: Family, weights: &Weights, layer: usize) -> Vec<String> {
    match family {
        Family::Llama => vec![
            format!("model.layers.{layer}.self_attn.o_proj.weight"),
            format!("model.layers.{layer}.mlp.down_proj.weight"),
        ],
        Family::Bert => {
            let root = if weights.contains("bert.embeddings.word_embeddings.weight") {
                "bert."
            } else {
                ""
            };
            vec![
                format!("{root}encoder.layer.{layer}.attention.output.dense.weight"),
                format!("{root}encoder.layer.{layer}.output.dense.weight"),
            ]
        }
    }
}

/// Load `path` with the tensors `edit` returns in place of the same-named ones. `tag` is
/// appended to the model's weights hash so that stores of the edited model never pass for
/// the original's.
pub fn load_edited(
    path: &Path,
    device: &Device,
    tag: &str,
    edit: Edit<'_>,
) -> Result<Box<dyn HookedModel>> {
    let fam = family(path)?;
    match fam {
        Family::Llama => {
            // `family` let through a GGUF file or an HF llama directory only.
            let p = if path.is_file() {
                gguf::read_llama(path, device)?
            } else {
                Llama::read_dir(path, device)?
            };
            let replaced = checked(path, &p.weights, edit(&p.weights)?)?;
            let mut info = p.info;
            info.weights_sha256 = format!("{}+{tag}", info.weights_sha256);
            let parts = LlamaParts {
                weights: Weights::overlay(path, replaced, &p.weights),
                info,
                ..p
            };
            Ok(Box::new(Llama::from_parts(parts, device, DType::F32)?))
        }
        Family::Bert => {
            let (cfg, weights, tok, mut info) = Bert::read_dir(path, device)?;
            let replaced = checked(path, &weights, edit(&weights)?)?;
            info.weights_sha256 = format!("{}+{tag}", info.weights_sha256);
            let w = Weights::overlay(path, replaced, &weights);
            Ok(Box::new(Bert::new(cfg, &w, tok, info)?))
        }
    }
}

/// Every replacement must name an existing tensor and keep its shape.
fn checked(
    path: &Path,
    weights: &Weights,
    map: HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>> {
    for (name, t) in &map {
        let old = weights.get_any(name)?.ok_or_else(|| {
            Error::model(
                path,
                format!("edit names `{name}`, which the model does not have"),
            )
        })?;
        if old.dims() != t.dims() {
            return Err(Error::WeightShape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: old.dims().to_vec(),
                actual: t.dims().to_vec(),
            });
        }
    }
    Ok(map)
}
