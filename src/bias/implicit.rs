//! The implicit reward of a language model: the log-probability it gives a response, minus a
//! reference model's when one is given (the DPO-style `log π(y|x) − log π_ref(y|x)`, β = 1).
//!
//! Per sequence: the summed log-probability of the response tokens given the prompt and its
//! per-token mean, under the model and the reference ([`crate::capture::logprob`] says which
//! tokens count). The reward is `sum − ref_sum` (and `mean − ref_mean`); without a reference it
//! is the model's own log-probability. On preference pairs, pairwise accuracy is the share of
//! pairs whose chosen reply gets the higher reward (ties count one half), with a Wilson 95 %
//! interval.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::capture::logprob::{prepare_scored, response_logprobs, ScoredSeq, SeqLogProb};
use crate::capture::Progress;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::HookedModel;

use super::ValidScoreParams;

/// Which model a score came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub path: String,
    pub architecture: String,
    pub weights_sha256: String,
}

impl ModelRef {
    pub fn of(model: &dyn HookedModel) -> Self {
        let i = model.info();
        Self {
            path: i.path.display().to_string(),
            architecture: i.architecture.clone(),
            weights_sha256: i.weights_sha256.clone(),
        }
    }
}

/// One sequence's log-probabilities and implicit reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceScore {
    /// `chosen`, `rejected` or `text`.
    pub field: String,
    pub tokens: usize,
    pub logp_sum: f64,
    pub logp_mean: f64,
    pub ref_tokens: Option<usize>,
    pub ref_logp_sum: Option<f64>,
    pub ref_logp_mean: Option<f64>,
    /// `logp_sum − ref_logp_sum` (or `logp_sum`).
    pub reward_sum: f64,
    /// `logp_mean − ref_logp_mean` (or `logp_mean`).
    pub reward_mean: f64,
}

/// One example: its line and one score per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleScore {
    pub line: usize,
    pub sequences: Vec<SequenceScore>,
}

/// Pairwise accuracy of one reward variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAccuracy {
    /// Share of pairs with reward(chosen) > reward(rejected), ties counting one half.
    pub accuracy: f64,
    /// Wilson 95 % interval of `accuracy`.
    pub ci95: (f64, f64),
    pub ties: usize,
    /// Mean of reward(chosen) − reward(rejected).
    pub mean_margin: f64,
}

/// Pairwise accuracies on preference pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    pub pairs: usize,
    /// On the summed reward.
    pub sum: PairAccuracy,
    /// On the per-token mean reward (length-normalised).
    pub mean: PairAccuracy,
}

/// What `repdrift implicit-reward` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImplicitReport {
    pub model: ModelRef,
    pub reference: Option<ModelRef>,
    pub data: String,
    pub data_sha256: String,
    pub max_tokens: Option<usize>,
    pub examples: Vec<ExampleScore>,
    /// On preference pairs only.
    pub summary: Option<PairSummary>,
}

/// Tokenize every sequence of `data` for `model` (errors name the file and line).
fn prepare(
    model: &dyn HookedModel,
    data: &Dataset,
    max_tokens: Option<usize>,
) -> Result<Vec<ScoredSeq>> {
    let mut out = Vec::new();
    for ex in &data.examples {
        for seq in &ex.sequences {
            out.push(prepare_scored(model, seq, max_tokens, &data.path, ex.line)?);
        }
    }
    Ok(out)
}

/// The log-probabilities of every sequence of `data` under `model`, flattened in example
/// then field order; non-finite values are refused with the example's line.
pub fn logprobs(
    model: &dyn HookedModel,
    data: &Dataset,
    params: &ValidScoreParams,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Vec<SeqLogProb>> {
    let seqs = prepare(model, data, params.max_tokens)?;
    let out = response_logprobs(model, &seqs, params.batch_size, device, |n, t| {
        progress.advance(n, t)
    })?;
    let per = data.format.fields().len();
    if let Some(i) = out.iter().position(|s| !s.sum.is_finite()) {
        return Err(Error::MalformedLine {
            path: data.path.clone(),
            line: data.examples[i / per].line,
            reason: format!(
                "{} gives a non-finite log-probability ({}) to this sequence",
                model.info().path.display(),
                out[i].sum
            ),
        });
    }
    Ok(out)
}

/// The pairwise accuracy of `margins` (chosen − rejected).
pub fn pair_accuracy(margins: &[f64]) -> PairAccuracy {
    let ties = margins.iter().filter(|&&m| m == 0.0).count();
    let wins = margins.iter().filter(|&&m| m > 0.0).count() as f64 + 0.5 * ties as f64;
    let n = margins.len();
    PairAccuracy {
        accuracy: wins / n as f64,
        ci95: crate::stats::wilson(wins, n).unwrap_or((0.0, 1.0)),
        ties,
        mean_margin: margins.iter().sum::<f64>() / n as f64,
    }
}

/// Score `data` under `model` (and `reference`): the implicit reward of every sequence and,
/// on preference pairs, its pairwise accuracy. `progress` counts sequences of both models.
pub fn implicit_reward(
    model: &dyn HookedModel,
    reference: Option<&dyn HookedModel>,
    data: &Dataset,
    params: &ValidScoreParams,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<ImplicitReport> {
    let fields = data.format.fields();
    let n_seq = data.examples.len() * fields.len();
    progress.start(n_seq * (1 + reference.is_some() as usize), 0);
    let lp = logprobs(model, data, params, device, progress)?;
    let rp = match reference {
        Some(r) => Some(logprobs(r, data, params, device, progress)?),
        None => None,
    };
    progress.finish();
    let mut examples = Vec::with_capacity(data.examples.len());
    for (e, ex) in data.examples.iter().enumerate() {
        let sequences = fields
            .iter()
            .enumerate()
            .map(|(f, name)| {
                let i = e * fields.len() + f;
                let m = lp[i];
                let r = rp.as_ref().map(|r| r[i]);
                SequenceScore {
                    field: name.to_string(),
                    tokens: m.tokens,
                    logp_sum: m.sum,
                    logp_mean: m.mean(),
                    ref_tokens: r.map(|r| r.tokens),
                    ref_logp_sum: r.map(|r| r.sum),
                    ref_logp_mean: r.map(|r| r.mean()),
                    reward_sum: m.sum - r.map_or(0.0, |r| r.sum),
                    reward_mean: m.mean() - r.map_or(0.0, |r| r.mean()),
                }
            })
            .collect();
        examples.push(ExampleScore {
            line: ex.line,
            sequences,
        });
    }
    let summary = (fields.len() == 2 && !examples.is_empty()).then(|| {
        let margin = |f: fn(&SequenceScore) -> f64| -> Vec<f64> {
            examples
                .iter()
                .map(|e| f(&e.sequences[0]) - f(&e.sequences[1]))
                .collect()
        };
        PairSummary {
            pairs: examples.len(),
            sum: pair_accuracy(&margin(|s| s.reward_sum)),
            mean: pair_accuracy(&margin(|s| s.reward_mean)),
        }
    });
    Ok(ImplicitReport {
        model: ModelRef::of(model),
        reference: reference.map(ModelRef::of),
        data: data.path.display().to_string(),
        data_sha256: data.sha256.clone(),
        max_tokens: params.max_tokens,
        examples,
        summary,
    })
}

/// `implicit_reward.json`.
pub fn render_json(r: &ImplicitReport) -> Vec<u8> {
    crate::io::json_bytes(r)
}

/// `implicit_reward.csv`: one row per sequence.
pub fn render_csv(r: &ImplicitReport) -> Vec<u8> {
    use crate::io::csv_num;
    let mut s = String::from(
        "line,field,tokens,logp_sum,logp_mean,ref_tokens,ref_logp_sum,ref_logp_mean,reward_sum,reward_mean\n",
    );
    for e in &r.examples {
        for q in &e.sequences {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                e.line,
                q.field,
                q.tokens,
                csv_num(Some(q.logp_sum)),
                csv_num(Some(q.logp_mean)),
                q.ref_tokens.map(|t| t.to_string()).unwrap_or_default(),
                csv_num(q.ref_logp_sum),
                csv_num(q.ref_logp_mean),
                csv_num(Some(q.reward_sum)),
                csv_num(Some(q.reward_mean)),
            ));
        }
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truth: by hand — margins (+1, −2, 0, +3): wins 2 + ½ tie = 2.5 of 4.
    #[test]
    fn pair_accuracy_counts_ties_half() {
        let a = pair_accuracy(&[1.0, -2.0, 0.0, 3.0]);
        assert_eq!(a.accuracy, 0.625);
        assert_eq!(a.ties, 1);
        assert_eq!(a.mean_margin, 0.5);
        assert!(a.ci95.0 < 0.625 && 0.625 < a.ci95.1);
    }
}
