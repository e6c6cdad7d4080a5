//! What a capture is asked for: the pooling, the layers, the checked parameters, and the
//! shape pooled activations take. Below the capture driver and the store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{HookPoint, HookRequest, HookedModel};

/// Pooled activations: `(hook, layer)` → `rows × hidden` values, row-major.
pub type Pooled = HashMap<(HookPoint, usize), Vec<f32>>;

/// How a sequence's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The last real (non-pad) token.
    Last,
    /// The mean over all real tokens (special tokens included).
    Mean,
    /// The mean over the response's tokens (pairs only): tokens whose byte span ends after the
    /// response start; special tokens (empty spans) excluded.
    ResponseMean,
}

impl Pooling {
    /// Parse `last`, `mean` or `response-mean`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            "response-mean" => Ok(Pooling::ResponseMean),
            _ => Err(Error::param(
                "pool",
                format!("unknown pooling `{s}` (known: last, mean, response-mean)"),
            )),
        }
    }

    /// The name used in manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
            Pooling::ResponseMean => "response-mean",
        }
    }
}

/// Which layers to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelection {
    All,
    List(Vec<usize>),
}

impl LayerSelection {
    /// Parse `all` or a comma-separated list such as `0,4,8`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(LayerSelection::All);
        }
        let mut v = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            v.push(p.parse::<usize>().map_err(|_| {
                Error::param(
                    "layers",
                    format!("`{p}` is not a layer number (use `all` or e.g. `0,4,8`)"),
                )
            })?);
        }
        v.sort_unstable();
        v.dedup();
        Ok(LayerSelection::List(v))
    }
}

impl LayerSelection {
    /// The layers to use out of `available` (sorted): all of them, or the listed ones, each of
    /// which must be available (else an error naming `what` and the available layers).
    pub fn resolve(&self, available: &[usize], what: &str) -> Result<Vec<usize>> {
        match self {
            LayerSelection::All => Ok(available.to_vec()),
            LayerSelection::List(want) => {
                if let Some(&l) = want.iter().find(|l| !available.contains(l)) {
                    return Err(Error::LayerOutOfRange {
                        layer: l,
                        min: available.first().copied().unwrap_or(0),
                        max: available.last().copied().unwrap_or(0),
                        what: format!("{what} ({available:?})"),
                    });
                }
                Ok(want.clone())
            }
        }
    }
}

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
    /// shards are joined by [`store::merge_shards`] into the store one process would write.
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
