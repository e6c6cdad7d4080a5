//! Where in a transformer's forward pass activations are read: the store's first key.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
