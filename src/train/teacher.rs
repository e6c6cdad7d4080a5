//! The weak teacher of the weak-to-strong protocol and its soft labels.
//!
//! Choice (documented in the README): the weak teacher is a small frozen encoder — by default
//! all-MiniLM-L6-v2 — with a linear Bradley–Terry head on its mean-pooled last-layer states,
//! fitted on the gold labels of source half 1 (L2-regularised logistic regression on
//! `h(chosen) − h(rejected)`, C picked by 5-fold cross-validation). Its soft label for a pair of
//! half 2 is `p(chosen ≻ rejected) = σ(w · (h_c − h_r))`. A frozen-feature head is the cheapest
//! teacher that is clearly weaker than a fine-tuned 135M decoder yet well above chance on the
//! source, which is what the protocol needs; it trains in seconds on two cores.

use std::collections::BTreeMap;

use candle_core::Device;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::params::Split;
use crate::capture::{pool_sequences, prepare_example, Pooling, PreparedSeq};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{HookPoint, HookRequest, HookedModel};
use crate::probe::{cross_validate, fit_pairwise, pair_accuracy, ProbeData, Solver};

/// The value of `weak_labels.json`'s `format`.
pub const LABELS_FORMAT: &str = "repdrift-weak-labels";

/// `weak_labels.json`: the teacher, the split it was fitted on, its soft labels for half 2 and
/// its pairwise accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeakLabels {
    pub format: String,
    pub version: u32,
    /// The teacher model (path and weights hash) and its head's C.
    pub teacher_model: String,
    pub teacher_sha256: String,
    pub c: f64,
    /// The source data and split the labels belong to.
    pub data_sha256: String,
    pub split_seed: u64,
    pub test_fraction: f64,
    pub n_examples: usize,
    /// 1-based source lines of half 2, and the teacher's p(chosen ≻ rejected) for each.
    pub lines: Vec<usize>,
    pub p: Vec<f64>,
    /// Pairwise accuracy: `half1_cv` (cross-validated, at the chosen C), `half2` (agreement of
    /// the hardened soft labels with gold), `source_test`, and each `--eval` set by name.
    pub accuracy: BTreeMap<String, f64>,
}

/// Mean-pooled last-layer pair differences `(n_pairs, hidden)` of `examples` of `data`.
fn pair_features(
    model: &dyn HookedModel,
    data: &Dataset,
    examples: &[usize],
    max_tokens: Option<usize>,
    device: &Device,
) -> Result<Array2<f64>> {
    let n_layers = model.info().n_layers;
    let d = model.info().hidden_size;
    let seqs: Vec<PreparedSeq> = examples
        .iter()
        .map(|&i| {
            prepare_example(
                model,
                &data.examples[i],
                Pooling::Mean,
                max_tokens,
                &data.path,
            )
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    if seqs.len() != 2 * examples.len() {
        return Err(Error::param(
            "teacher",
            "the weak teacher needs preference pairs",
        ));
    }
    let hooks = HookRequest::new(&[HookPoint::ResidPost], &[n_layers], n_layers)?;
    let pooled = pool_sequences(model, &seqs, &hooks, 16, device, |_, _| {})?;
    let h = &pooled[&(HookPoint::ResidPost, n_layers)];
    let mut delta = Array2::<f64>::zeros((examples.len(), d));
    for (r, mut row) in delta.rows_mut().into_iter().enumerate() {
        let (c, j) = (
            &h[2 * r * d..(2 * r + 1) * d],
            &h[(2 * r + 1) * d..(2 * r + 2) * d],
        );
        for (o, (a, b)) in row.iter_mut().zip(c.iter().zip(j)) {
            *o = *a as f64 - *b as f64;
        }
    }
    Ok(delta)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fit the weak teacher on half 1 of `data` and label half 2; also measure its accuracy on
/// the source test split and on `evals`.
#[allow(clippy::too_many_arguments)]
pub fn fit_teacher(
    model: &dyn HookedModel,
    data: &Dataset,
    split: &Split,
    evals: &[(String, Dataset)],
    max_tokens: Option<usize>,
    split_seed: u64,
    test_fraction: f64,
    device: &Device,
) -> Result<WeakLabels> {
    let cs = [0.001, 0.01, 0.1, 1.0, 10.0];
    let train = pair_features(model, data, &split.half1, max_tokens, device)?;
    let cv = cross_validate(
        &ProbeData::Pairs(train.clone()),
        &cs,
        5.min(split.half1.len()),
        split_seed,
        Solver::default(),
    )?;
    let probe = fit_pairwise(train.view(), cv.c, Solver::default())?;
    let mut accuracy = BTreeMap::new();
    accuracy.insert("half1_cv".to_string(), cv.accuracy);
    let half2 = pair_features(model, data, &split.half2, max_tokens, device)?;
    let s2 = probe.scores(half2.view());
    accuracy.insert("half2".to_string(), pair_accuracy(s2.view()));
    if !split.test.is_empty() {
        let t = pair_features(model, data, &split.test, max_tokens, device)?;
        accuracy.insert(
            "source_test".to_string(),
            pair_accuracy(probe.scores(t.view()).view()),
        );
    }
    for (name, ds) in evals {
        let all: Vec<usize> = (0..ds.examples.len()).collect();
        let f = pair_features(model, ds, &all, max_tokens, device)?;
        accuracy.insert(name.clone(), pair_accuracy(probe.scores(f.view()).view()));
    }
    Ok(WeakLabels {
        format: LABELS_FORMAT.into(),
        version: 1,
        teacher_model: model.info().path.display().to_string(),
        teacher_sha256: model.info().weights_sha256.clone(),
        c: cv.c,
        data_sha256: data.sha256.clone(),
        split_seed,
        test_fraction,
        n_examples: data.examples.len(),
        lines: split.half2.iter().map(|&i| data.examples[i].line).collect(),
        p: s2.iter().map(|&s| sigmoid(s)).collect(),
        accuracy,
    })
}

/// A weak teacher that is a rule, not a model: a known shortcut whose errors have structure
/// (the study's shortcut arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeakRule {
    /// Prefers the reply that ends with [`crate::data::CUE_PADDING`].
    Padding,
}

impl WeakRule {
    /// The rule named in a study grid (`weak_rule = "padding"`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "padding" => Ok(Self::Padding),
            _ => Err(Error::param(
                "weak_rule",
                format!("unknown weak rule `{s}`: the one rule is `padding`"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Padding => "padding",
        }
    }

    /// +1 when only the chosen reply shows the cue, −1 when only the rejected one does, 0
    /// otherwise (a tie).
    pub fn score(self, ex: &crate::data::Example) -> f64 {
        let Self::Padding = self;
        let cued = |i: usize| {
            ex.sequences[i]
                .text
                .trim_end()
                .ends_with(crate::data::CUE_PADDING)
        };
        cued(0) as i8 as f64 - cued(1) as i8 as f64
    }
}

/// p(chosen ≻ rejected) a rule gives for a score of +1 (1 − p for −1, ½ for a tie).
pub const RULE_CONFIDENCE: f64 = 0.9;

/// Weak labels from a rule: p = ½ + (RULE_CONFIDENCE − ½) · score for the pairs of half 2;
/// accuracies (a tie counts as wrong) on half 1, half 2, the test part and every `evals` set.
pub fn rule_labels(
    rule: WeakRule,
    data: &Dataset,
    split: &Split,
    evals: &[(String, Dataset)],
    split_seed: u64,
    test_fraction: f64,
) -> Result<WeakLabels> {
    for ds in std::iter::once(data).chain(evals.iter().map(|e| &e.1)) {
        if let Some(e) = ds.examples.iter().find(|e| e.sequences.len() != 2) {
            return Err(Error::param(
                "weak_rule",
                format!(
                    "{}:{}: the `{}` rule needs preference pairs",
                    ds.path.display(),
                    e.line,
                    rule.name()
                ),
            ));
        }
    }
    let scores = |ds: &Dataset, idx: &[usize]| -> ndarray::Array1<f64> {
        idx.iter().map(|&i| rule.score(&ds.examples[i])).collect()
    };
    let mut accuracy = BTreeMap::new();
    let half2 = scores(data, &split.half2);
    for (key, idx) in [("half1", &split.half1), ("half2", &split.half2)] {
        accuracy.insert(key.to_string(), pair_accuracy(scores(data, idx).view()));
    }
    if !split.test.is_empty() {
        accuracy.insert(
            "source_test".to_string(),
            pair_accuracy(scores(data, &split.test).view()),
        );
    }
    for (name, ds) in evals {
        let all: Vec<usize> = (0..ds.examples.len()).collect();
        accuracy.insert(name.clone(), pair_accuracy(scores(ds, &all).view()));
    }
    Ok(WeakLabels {
        format: LABELS_FORMAT.into(),
        version: 1,
        teacher_model: format!("rule:{}", rule.name()),
        teacher_sha256: String::new(),
        c: 0.0,
        data_sha256: data.sha256.clone(),
        split_seed,
        test_fraction,
        n_examples: data.examples.len(),
        lines: split.half2.iter().map(|&i| data.examples[i].line).collect(),
        p: half2
            .iter()
            .map(|&s| 0.5 + (RULE_CONFIDENCE - 0.5) * s)
            .collect(),
        accuracy,
    })
}
