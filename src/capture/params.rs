//! What a capture is asked for: the pooling, the layers, the checked parameters, and the
//! shape pooled activations take. Below the capture driver and the store.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::{HookPoint, HookRequest, HookedModel};
pub use repdrift_core::store::{LayerSelection, Pooling};

/// Pooled activations: `(hook, layer)` → `rows × hidden` values, row-major.
pub type Pooled = HashMap<(HookPoint, usize), Vec<f32>>;

/// Capture parameters as given (see [`CaptureParams::check`]).
#[derive(Debug, Clone)]
pub struct CaptureParams {
    pub pooling: Pooling,
    pub hooks: Vec<HookPoint>,
    pub layers: LayerSelection,
    pub batch_size: usize,
    pub max_tokens: Option<usize>,
    pub part_size: usize,
    pub resume: bool,
    pub force: bool,
    /// Capture only shard `i` of `N` (`(i, N)`): a contiguous run of the store's parts; the
    /// shards are joined by [`merge_shards`](super::merge::merge_shards) into the store one process would write.
    pub shard: Option<(usize, usize)>,
}

impl Default for CaptureParams {
    fn default() -> Self {
        Self {
            pooling: Pooling::Last,
            hooks: vec![HookPoint::ResidPost],
            layers: LayerSelection::All,
            batch_size: 8,
            max_tokens: Some(512),
            part_size: 256,
            resume: false,
            force: false,
            shard: None,
        }
    }
}

/// Checked capture parameters.
#[derive(Debug, Clone)]
pub struct ValidCaptureParams(CaptureParams);

impl std::ops::Deref for ValidCaptureParams {
    type Target = CaptureParams;
    fn deref(&self) -> &CaptureParams {
        &self.0
    }
}

impl CaptureParams {
    /// Check the parameters once, at the boundary.
    pub fn check(self) -> Result<ValidCaptureParams> {
        if self.batch_size == 0 {
            return Err(Error::param("batch-size", "must be at least 1"));
        }
        if self.part_size == 0 {
            return Err(Error::param("part-size", "must be at least 1"));
        }
        if self.max_tokens == Some(0) {
            return Err(Error::param("max-tokens", "must be at least 1"));
        }
        if self.hooks.is_empty() {
            return Err(Error::param("hooks", "name at least one hook point"));
        }
        if let Some((i, n)) = self.shard {
            if n == 0 || i >= n {
                return Err(Error::param(
                    "shard",
                    format!("{i}/{n}: need 0 ≤ i < N (shards are numbered 0 … N−1)"),
                ));
            }
        }
        if self.resume && self.force {
            return Err(Error::param(
                "resume",
                "--resume and --force exclude each other",
            ));
        }
        let mut p = self;
        p.hooks.sort();
        p.hooks.dedup();
        Ok(ValidCaptureParams(p))
    }
}

impl ValidCaptureParams {
    /// The hook request for a model of `n_layers` blocks.
    pub fn hook_request(&self, n_layers: usize) -> Result<HookRequest> {
        match &self.layers {
            LayerSelection::All => Ok(HookRequest::all_layers(&self.hooks, n_layers)),
            LayerSelection::List(l) => HookRequest::new(&self.hooks, l, n_layers),
        }
    }

    /// The hook request for `model`: its layers, plus its reward head when it has one.
    pub fn model_request(&self, model: &dyn HookedModel) -> Result<HookRequest> {
        let n = model.info().n_layers;
        let req = self.hook_request(n)?;
        Ok(if model.has_reward_head() {
            req.with_reward(n)
        } else {
            req
        })
    }
}
