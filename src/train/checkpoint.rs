//! Checkpoints: the trainable weights and AdamW's moments (safetensors) and the state
//! (parameters, hashes, step, log); a resume checks they belong to the same parameters, base
//! and data.
//!
//! The two files form one checkpoint, so they are committed as one: the tensors go to a new
//! file named after the step (`state-{step:06}.safetensors`, written to a temp name and
//! renamed), then `state.json`, which names that file, is replaced atomically — the commit
//! point — and only then are older tensor files removed. A kill at any moment leaves a
//! `state.json` whose tensors are those of its own step (regression test: a kill between the
//! two writes used to pair step k's weights with step k − 1's state, and the resumed run
//! differed from an uninterrupted one).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim;
use super::params::TrainParams;
use super::record::StepRecord;
use super::reward_model::TrainableRm;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::{json_bytes, write_atomic};
use crate::model::llama::Llama;
use crate::model::HookedModel;

/// What a checkpoint records beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CheckpointState {
    params: TrainParams,
    data_sha256: String,
    base_sha256: String,
    step: usize,
    log: Vec<StepRecord>,
    /// The tensor file of this step (older checkpoints: `state.safetensors`).
    #[serde(default = "legacy_weights")]
    weights: String,
}

fn legacy_weights() -> String {
    "state.safetensors".into()
}

pub(super) fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

#[allow(clippy::too_many_arguments)]
pub(super) fn save_checkpoint(
    dir: &Path,
    params: &TrainParams,
    data: &Dataset,
    base: &Llama,
    rm: &TrainableRm<'_>,
    opt: &optim::AdamW,
    step: usize,
    log: &[StepRecord],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (i, (name, v)) in rm.named_vars().iter().enumerate() {
        tensors.push((format!("w.{name}"), v.as_tensor().clone()));
        tensors.push((format!("m.{name}"), opt.m[i].as_tensor().clone()));
        tensors.push((format!("v.{name}"), opt.v[i].as_tensor().clone()));
    }
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let name = format!("state-{step:06}.safetensors");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    let fin = dir.join(&name);
    std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    let state = CheckpointState {
        params: params.clone(),
        data_sha256: data.sha256.clone(),
        base_sha256: base.info().weights_sha256.clone(),
        step,
        log: log.to_vec(),
        weights: name.clone(),
    };
    // The commit point: from here on the checkpoint is step `step`.
    write_atomic(&dir.join("state.json"), &json_bytes(&state))?;
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stale_tensors = n.starts_with("state") && n.ends_with(".safetensors") && n != name;
        let stale_temp = n.starts_with('.') && n.ends_with(".tmp");
        if stale_tensors || stale_temp {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

pub(super) fn load_checkpoint(
    dir: &Path,
    params: &TrainParams,
    data: &Dataset,
    base: &Llama,
    rm: &TrainableRm<'_>,
    opt: &mut optim::AdamW,
    log: &mut Vec<StepRecord>,
) -> Result<usize> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        cause: e,
    })?;
    if &state.params != params {
        return Err(Error::InvalidStore {
            path: path.clone(),
            reason: "the checkpoint was written with other training parameters; resume with the same ones or start again with --force".into(),
        });
    }
    if state.data_sha256 != data.sha256 || state.base_sha256 != base.info().weights_sha256 {
        return Err(Error::InvalidStore {
            path: path.clone(),
            reason: "the checkpoint belongs to another base model or data file".into(),
        });
    }
    if state.weights.contains(['/', '\\']) || state.weights.starts_with('.') {
        return Err(Error::InvalidStore {
            path: path.clone(),
            reason: format!(
                "`weights` names `{}`, not a file of the checkpoint",
                state.weights
            ),
        });
    }
    let st_path = dir.join(&state.weights);
    crate::model::weights::check_safetensors(&st_path)?;
    let map = candle_core::safetensors::load(&st_path, &Device::Cpu)?;
    for (i, (name, v)) in rm.named_vars().iter().enumerate() {
        for (prefix, var) in [("w", v), ("m", &opt.m[i]), ("v", &opt.v[i])] {
            let key = format!("{prefix}.{name}");
            let t = map.get(&key).ok_or_else(|| Error::InvalidStore {
                path: st_path.clone(),
                reason: format!("checkpoint lacks `{key}`"),
            })?;
            if t.dims() != var.dims() {
                return Err(Error::WeightShape {
                    path: st_path.clone(),
                    name: key,
                    expected: var.dims().to_vec(),
                    actual: t.dims().to_vec(),
                });
            }
            var.set(&t.to_device(var.device())?)?;
        }
    }
    opt.t = state.step;
    *log = state.log;
    Ok(state.step)
}
