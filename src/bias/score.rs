//! One reward per sequence, whatever the model is, and its last-token states at every layer.
//!
//! - A reward model (a checkpoint with a scalar head, e.g. a student written by `repdrift
//!   train`): the head's reward at the last real token ([`RewardSource::Head`]).
//! - A causal LM: its implicit reward, the summed log-probability of the response tokens minus
//!   the reference's when one is given ([`RewardSource::Implicit`]; see
//!   [`crate::capture::logprob`]).
//!
//! With `states`, the `resid_post` states of every layer at each sequence's last real token
//! (the position a reward head reads) come back too: `layer → (rows, hidden)` f32, row-major.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::ValidScoreParams;
use crate::capture::logprob::{prepare_scored, response_logprobs, ScoredSeq};
use crate::capture::{pool_with_rewards, PreparedSeq, Progress};
use crate::data::Sequence;
use crate::error::{Error, Result};
use crate::model::{HookPoint, HookRequest, HookedModel};

/// What a model's reward is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardSource {
    /// The scalar reward head.
    Head,
    /// Summed response log-probability (minus a reference's).
    Implicit,
}

/// A sequence to score and where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct Item {
    pub seq: Sequence,
    /// 1-based line of the data file the sequence was built from.
    pub line: usize,
}

/// Rewards (and states) of a list of sequences, in input order.
#[derive(Debug, Clone)]
pub struct Scores {
    pub source: RewardSource,
    pub rewards: Vec<f64>,
    /// Response tokens of each sequence under the model's tokenizer (all tokens for texts).
    pub response_tokens: Vec<usize>,
    /// `layer → (rows, hidden)` last-token `resid_post` states, when asked for.
    pub states: Option<BTreeMap<usize, Vec<f32>>>,
}

/// A model to score with: a reward model, or a causal LM (with an optional reference).
pub struct Scorer<'a> {
    pub model: &'a dyn HookedModel,
    pub reference: Option<&'a dyn HookedModel>,
    pub params: &'a ValidScoreParams,
    pub device: &'a Device,
}

impl<'a> Scorer<'a> {
    /// A scorer without a reference model.
    pub fn new(
        model: &'a dyn HookedModel,
        params: &'a ValidScoreParams,
        device: &'a Device,
    ) -> Self {
        Self {
            model,
            reference: None,
            params,
            device,
        }
    }

    /// What this scorer's rewards are, or an error when a reference is given to a reward
    /// model.
    pub fn source(&self) -> Result<RewardSource> {
        if !self.model.has_reward_head() {
            return Ok(RewardSource::Implicit);
        }
        if self.reference.is_some() {
            return Err(Error::param(
                "reference",
                format!(
                    "{} is a reward model (it has a reward head): a reference model only makes sense for a causal LM's implicit reward",
                    self.model.info().path.display()
                ),
            ));
        }
        Ok(RewardSource::Head)
    }

    /// How many sequences [`Scorer::score`] reports to its progress per item: one forward pass
    /// for a reward head; for a causal LM one log-probability pass per model (and one more for
    /// the states when they are asked for).
    pub fn passes(&self, states: bool) -> usize {
        if self.model.has_reward_head() {
            1
        } else {
            1 + self.reference.is_some() as usize + states as usize
        }
    }

    /// Score `items` (`path` names their data file in errors); with `states`, also return the
    /// last-token states of every layer.
    pub fn score(
        &self,
        items: &[Item],
        path: &Path,
        states: bool,
        progress: &mut dyn Progress,
    ) -> Result<Scores> {
        let (model, reference, params, device) =
            (self.model, self.reference, self.params, self.device);
        let prepare = |m: &dyn HookedModel| -> Result<Vec<ScoredSeq>> {
            items
                .iter()
                .map(|it| prepare_scored(m, &it.seq, params.max_tokens, path, it.line))
                .collect()
        };
        let toks = prepare(model)?;
        let response_tokens = toks.iter().map(|s| s.scored.1 - s.scored.0).collect();
        let n_layers = model.info().n_layers;
        let source = self.source()?;
        let hooks = if states {
            HookRequest::all_layers(&[HookPoint::ResidPost], n_layers)
        } else {
            HookRequest::default()
        };
        let hooks = if source == RewardSource::Head {
            hooks.with_reward(n_layers)
        } else {
            hooks
        };
        let pooled_seqs: Vec<PreparedSeq> = toks
            .iter()
            .map(|s| PreparedSeq {
                ids: s.ids.clone(),
                pool: (s.ids.len() - 1, s.ids.len()),
            })
            .collect();
        let mut pooled = None;
        let mut rewards: Vec<f64> = Vec::new();
        if !hooks.is_empty() {
            let (p, r) = pool_with_rewards(
                model,
                &pooled_seqs,
                &hooks,
                params.batch_size,
                device,
                |n, t| progress.advance(n, t),
            )?;
            if let Some(r) = r {
                rewards = r.into_iter().map(f64::from).collect();
            }
            pooled = Some(p);
        }
        if source == RewardSource::Implicit {
            let scored = |m: &dyn HookedModel,
                          seqs: &[ScoredSeq],
                          progress: &mut dyn Progress|
             -> Result<Vec<f64>> {
                Ok(
                    response_logprobs(m, seqs, params.batch_size, device, |n, t| {
                        progress.advance(n, t)
                    })?
                    .into_iter()
                    .map(|s| s.sum)
                    .collect(),
                )
            };
            rewards = scored(model, &toks, progress)?;
            if let Some(r) = reference {
                // The reference tokenizes with its own tokenizer.
                let base = scored(r, &prepare(r)?, progress)?;
                rewards.iter_mut().zip(base).for_each(|(a, b)| *a -= b);
            }
        }
        if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
            return Err(Error::MalformedLine {
                path: path.to_path_buf(),
                line: items[i].line,
                reason: format!(
                    "{} gives this sequence a non-finite reward ({})",
                    model.info().path.display(),
                    rewards[i]
                ),
            });
        }
        let states = states.then(|| {
            let mut p = pooled.unwrap_or_default();
            (0..=n_layers)
                .filter_map(|l| p.remove(&(HookPoint::ResidPost, l)).map(|v| (l, v)))
                .collect()
        });
        Ok(Scores {
            source,
            rewards,
            response_tokens,
            states,
        })
    }
}
