//! What every check of `repdrift validate` reads (the model, its prepared inputs, the
//! parameters) and writes (the list of checks), and the helpers they share. Below every
//! check's file; uses none of them.

use std::path::Path;

use candle_core::Device;
use ndarray::Array2;

use super::types::{Check, Status, ValidValidateParams};
use crate::capture::{pool_sequences, PreparedSeq};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{HookPoint, HookRequest, HookedModel};

/// The largest deviation counted as 0 on bit-identical activations: the f64 algebra's own
/// rounding (the identity check shows its size, ≈ 1e-11 for debiased CKA).
pub const EXACT_TOL: f64 = 1e-9;

/// The run's fixed inputs, read by every check.
pub(super) struct Ctx<'a> {
    pub model: &'a dyn HookedModel,
    pub model_path: &'a Path,
    pub data: &'a Dataset,
    pub params: &'a ValidValidateParams,
    pub device: &'a Device,
    /// Each example's prepared sequences (one per field).
    pub prepared: Vec<Vec<PreparedSeq>>,
    /// The first field of every example: what the layers are captured on.
    pub first: Vec<PreparedSeq>,
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d: usize,
    /// Number of examples.
    pub n: usize,
}

impl Ctx<'_> {
    /// Every `resid_post` layer of the first field under `model` at the run's batch size.
    pub fn capture(&self, model: &dyn HookedModel) -> Result<Vec<Array2<f32>>> {
        capture_layers(model, &self.first, self.params.batch_size, self.device)
    }
}

/// The checks in the order they ran: what `validate.md` lists and the exit status reads.
#[derive(Default)]
pub(super) struct Checklist(pub Vec<Check>);

impl Checklist {
    pub fn push(&mut self, section: &str, name: String, figure: String, status: Status) {
        self.0.push(Check {
            section: section.into(),
            name,
            figure,
            status,
        })
    }
}

/// Every `resid_post` layer of `seqs`, pooled: `(seqs.len(), hidden)` per layer.
pub(super) fn capture_layers(
    model: &dyn HookedModel,
    seqs: &[PreparedSeq],
    batch: usize,
    device: &Device,
) -> Result<Vec<Array2<f32>>> {
    let info = model.info();
    let hooks = HookRequest::all_layers(&[HookPoint::ResidPost], info.n_layers);
    let mut pooled = pool_sequences(model, seqs, &hooks, batch, device, |_, _| {})?;
    (0..=info.n_layers)
        .map(|l| {
            let v = pooled
                .remove(&(HookPoint::ResidPost, l))
                .expect("requested layer");
            Ok(Array2::from_shape_vec((seqs.len(), info.hidden_size), v)
                .expect("pooled rows × hidden"))
        })
        .collect()
}

pub(super) fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max)
}

pub(super) fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.3e}"))
}
