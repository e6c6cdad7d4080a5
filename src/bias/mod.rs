//! What a reward model inherits or learns besides the preference signal, measured on the same
//! models and data as drift:
//! - [`implicit`]: the implicit reward of a language model (log-probabilities of responses,
//!   against a reference model), and its pairwise accuracy on preference pairs;
//! - [`score`]: one reward per sequence for any model (a reward head, or the implicit reward)
//!   and its last-token states at every layer;
//! - [`direction`]: per-layer directions — a cue's or a value axis's mean difference, how
//!   linearly decodable it is, the reward's ridge direction and the cosine between them;
//! - [`cues`]: sensitivity to length and style cues through counterfactual edits;
//! - [`values`]: agency against communion on the repo's value lexicon;
//! - [`summary`]: one table and a few sentences over several models (the report's section).

pub mod cues;
pub mod direction;
pub mod implicit;
pub mod score;
pub mod summary;
pub mod values;

use crate::error::{Error, Result};

/// How models are run over sequences, as given (see [`ScoreParams::check`]).
#[derive(Debug, Clone)]
pub struct ScoreParams {
    /// Keep at most this many tokens per sequence (dropping from the left).
    pub max_tokens: Option<usize>,
    /// Sequences per forward pass.
    pub batch_size: usize,
}

impl Default for ScoreParams {
    fn default() -> Self {
        Self {
            max_tokens: Some(512),
            batch_size: 8,
        }
    }
}

/// Checked [`ScoreParams`].
#[derive(Debug, Clone)]
pub struct ValidScoreParams(ScoreParams);

impl std::ops::Deref for ValidScoreParams {
    type Target = ScoreParams;
    fn deref(&self) -> &ScoreParams {
        &self.0
    }
}

impl ScoreParams {
    /// Check the parameters once, at the boundary.
    pub fn check(self) -> Result<ValidScoreParams> {
        if self.batch_size == 0 {
            return Err(Error::param("batch-size", "must be at least 1"));
        }
        if self.max_tokens == Some(0) {
            return Err(Error::param("max-tokens", "must be at least 1"));
        }
        Ok(ValidScoreParams(self))
    }
}
