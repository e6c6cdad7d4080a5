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
/// (the study's shortcut arm), or gold labels with a known share flipped at random (weak labels
/// of controlled quality: the learnable HH arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeakRule {
    /// Prefers the reply that ends with [`crate::data::CUE_PADDING`].
    Padding,
    /// Gold labels with exactly `round(percent · n / 100)` of a set's `n` pairs flipped,
    /// the flipped pairs drawn by the seed (`flip:25`).
    Flip { percent: u8 },
}

impl WeakRule {
    /// The rule named in a study grid (`weak_rule = "padding"` or `"flip:P"`, 0 ≤ P ≤ 50).
    pub fn parse(s: &str) -> Result<Self> {
        if s == "padding" {
            return Ok(Self::Padding);
        }
        if let Some(p) = s.strip_prefix("flip:") {
            return match p.parse::<u8>() {
                Ok(percent) if percent <= 50 => Ok(Self::Flip { percent }),
                _ => Err(Error::param(
                    "weak_rule",
                    format!(
                        "`{s}`: the share flipped is a whole percent from 0 to 50, as `flip:25`"
                    ),
                )),
            };
        }
        Err(Error::param(
            "weak_rule",
            format!("unknown weak rule `{s}`: the rules are `padding` and `flip:P` (P % of gold labels flipped)"),
        ))
    }

    pub fn name(self) -> String {
        match self {
            Self::Padding => "padding".into(),
            Self::Flip { percent } => format!("flip:{percent}"),
        }
    }

    /// The padding rule's score: +1 when only the chosen reply shows the cue, −1 when only the
    /// rejected one does, 0 otherwise (a tie).
    fn padding_score(ex: &crate::data::Example) -> f64 {
        let cued = |i: usize| {
            ex.sequences[i]
                .text
                .trim_end()
                .ends_with(crate::data::CUE_PADDING)
        };
        cued(0) as i8 as f64 - cued(1) as i8 as f64
    }

    /// Scores (+1 chosen, −1 rejected, 0 a tie) of the pairs `idx` of `ds`; `stream` tells the
    /// flip rule's sets apart (each set's flips are drawn from its own stream of the seed).
    fn scores(self, ds: &Dataset, idx: &[usize], seed: u64, stream: u64) -> ndarray::Array1<f64> {
        match self {
            Self::Padding => idx
                .iter()
                .map(|&i| Self::padding_score(&ds.examples[i]))
                .collect(),
            Self::Flip { percent } => {
                use rand::SeedableRng;
                let n = idx.len();
                let k = (percent as usize * n + 50) / 100;
                let mut rng = rand::rngs::StdRng::seed_from_u64(
                    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (0xF11F_0000 + stream),
                );
                let mut s = ndarray::Array1::from_elem(n, 1.0);
                for j in rand::seq::index::sample(&mut rng, n, k) {
                    s[j] = -1.0;
                }
                s
            }
        }
    }

    /// p(chosen ≻ rejected) for a score: the padding rule is [`RULE_CONFIDENCE`] sure; a flipped
    /// gold label is a hard label (0 or 1).
    fn p_of(self, score: f64) -> f64 {
        match self {
            Self::Padding => 0.5 + (RULE_CONFIDENCE - 0.5) * score,
            Self::Flip { .. } => 0.5 + 0.5 * score,
        }
    }
}

/// p(chosen ≻ rejected) a rule gives for a score of +1 (1 − p for −1, ½ for a tie).
pub const RULE_CONFIDENCE: f64 = 0.9;

/// Weak labels from a rule for the pairs of half 2 (p = ½ + (RULE_CONFIDENCE − ½) · score for
/// the padding rule; 1 or 0 for flipped gold labels); accuracies (a tie counts as wrong) on
/// half 1, half 2, the test part and every `evals` set.
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
    let scores =
        |ds: &Dataset, idx: &[usize], stream: u64| rule.scores(ds, idx, split_seed, stream);
    let mut accuracy = BTreeMap::new();
    let half2 = scores(data, &split.half2, 2);
    accuracy.insert(
        "half1".to_string(),
        pair_accuracy(scores(data, &split.half1, 1).view()),
    );
    accuracy.insert("half2".to_string(), pair_accuracy(half2.view()));
    if !split.test.is_empty() {
        accuracy.insert(
            "source_test".to_string(),
            pair_accuracy(scores(data, &split.test, 0).view()),
        );
    }
    for (j, (name, ds)) in evals.iter().enumerate() {
        let all: Vec<usize> = (0..ds.examples.len()).collect();
        accuracy.insert(
            name.clone(),
            pair_accuracy(scores(ds, &all, 3 + j as u64).view()),
        );
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
        p: half2.iter().map(|&s| rule.p_of(s)).collect(),
        accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataFormat, Example, Sequence};

    fn pairs(n: usize) -> Dataset {
        let seq = |t: &str| Sequence {
            text: t.to_string(),
            response_start: None,
        };
        Dataset {
            path: "pairs.jsonl".into(),
            sha256: String::new(),
            format: DataFormat::Transcript,
            examples: (0..n)
                .map(|i| Example {
                    line: i + 1,
                    sequences: vec![seq("good"), seq("bad")],
                    extras: Default::default(),
                })
                .collect(),
        }
    }

    /// Issue 33 item 4: "gold labels flipped at random, 10 / 25 / 40 %". Truth: the definition —
    /// exactly round(P · n / 100) of the n training pairs get p = 0, the others p = 1; the same
    /// seed draws the same pairs, another seed others; each evaluation set has its own draw.
    #[test]
    fn the_flip_rule_flips_exactly_its_share_of_gold_labels_drawn_by_the_seed() {
        let data = pairs(270);
        let split = crate::train::params::split(270, 0.1, 0);
        let n2 = split.half2.len();
        let labels = |percent: u8, seed: u64| {
            rule_labels(WeakRule::Flip { percent }, &data, &split, &[], seed, 0.1).unwrap()
        };
        for percent in [0u8, 10, 25, 40, 50] {
            let l = labels(percent, 0);
            let flipped = l.p.iter().filter(|&&p| p == 0.0).count();
            assert_eq!(
                flipped,
                (percent as usize * n2 + 50) / 100,
                "flip:{percent}"
            );
            assert!(l.p.iter().all(|&p| p == 0.0 || p == 1.0));
            let acc = l.accuracy["half2"];
            assert!((acc - (n2 - flipped) as f64 / n2 as f64).abs() < 1e-12);
            assert_eq!(l.teacher_model, format!("rule:flip:{percent}"));
        }
        assert_eq!(labels(25, 3).p, labels(25, 3).p);
        assert_ne!(labels(25, 3).p, labels(25, 4).p);
    }

    #[test]
    fn weak_rules_parse_and_refuse_by_name() {
        assert_eq!(WeakRule::parse("padding").unwrap(), WeakRule::Padding);
        assert_eq!(
            WeakRule::parse("flip:40").unwrap(),
            WeakRule::Flip { percent: 40 }
        );
        for bad in ["flip:60", "flip:x", "flip:", "length"] {
            let e = WeakRule::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("weak_rule"), "{e}");
        }
    }
}
