//! Training parameters, validated once at the boundary ([`TrainParams::check`]), and the
//! seeded test / half 1 / half 2 split of the source pairs.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Gold,
    Naive,
    Confidence,
    Anchor,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "gold" => Method::Gold,
            "naive" => Method::Naive,
            "confidence" => Method::Confidence,
            "anchor" => Method::Anchor,
            other => {
                return Err(Error::param(
                    "method",
                    format!("unknown method `{other}` (known: gold, naive, confidence, anchor)"),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Gold => "gold",
            Method::Naive => "naive",
            Method::Confidence => "confidence",
            Method::Anchor => "anchor",
        }
    }

    /// Whether the method trains on the weak teacher's labels.
    pub fn needs_teacher(self) -> bool {
        self != Method::Gold
    }
}

/// The anchor distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnchorDistance {
    Mse,
    Cosine,
}

impl AnchorDistance {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mse" => Ok(AnchorDistance::Mse),
            "cosine" => Ok(AnchorDistance::Cosine),
            other => Err(Error::param(
                "anchor-distance",
                format!("unknown distance `{other}` (known: mse, cosine)"),
            )),
        }
    }
}

/// Which parameters train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trainable {
    /// The top `K` blocks, the final norm and the head.
    Top(usize),
    /// Every block, the embeddings, the final norm and the head.
    All,
}

impl Trainable {
    /// `top:K` or `all`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(Trainable::All);
        }
        s.strip_prefix("top:")
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|&k| k > 0)
            .map(Trainable::Top)
            .ok_or_else(|| {
                Error::param(
                    "trainable",
                    format!("expected `top:K` (K ≥ 1) or `all`, got `{s}`"),
                )
            })
    }
}

/// Training parameters as given (see [`TrainParams::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub method: Method,
    /// Residual layers (HF `hidden_states` indexing) to anchor, for `anchor`.
    pub anchor_layers: Vec<usize>,
    /// λ, one value for every anchor layer, or one per layer.
    pub anchor_weight: Vec<f64>,
    pub anchor_distance: AnchorDistance,
    pub trainable: Trainable,
    pub epochs: usize,
    pub lr: f64,
    /// Pairs per step.
    pub batch_size: usize,
    pub max_tokens: Option<usize>,
    /// Seeds the head's initialisation and the batch order.
    pub seed: u64,
    /// Seeds the test / half 1 / half 2 split (keep it fixed across the students of a run).
    pub split_seed: u64,
    /// Share of the source pairs held out as the in-distribution test set.
    pub test_fraction: f64,
    /// Linear warm-up share of the steps (then linear decay to zero).
    pub warmup: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clipping (0 = none).
    pub max_grad_norm: f64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// How the scalar head starts: random, or fitted on the frozen base (LP-FT).
    #[serde(default)]
    pub head_init: HeadInit,
}

/// The head's initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    /// N(0, 0.02²), seeded.
    #[default]
    Random,
    /// LP-FT (Kumar et al. 2022): a Bradley–Terry linear probe (L2, C = 1) fitted on the frozen
    /// base's final normed last-token states of the training pairs, on the labels the method
    /// trains on (weak labels hardened at 0.5 for weak-to-strong students), then fine-tuned.
    Probe,
}

impl HeadInit {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "random" => Ok(HeadInit::Random),
            "probe" => Ok(HeadInit::Probe),
            _ => Err(Error::param(
                "head-init",
                format!("expected `random` or `probe`, got `{s}`"),
            )),
        }
    }
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            method: Method::Naive,
            anchor_layers: Vec::new(),
            anchor_weight: vec![0.1],
            anchor_distance: AnchorDistance::Mse,
            trainable: Trainable::Top(4),
            epochs: 2,
            lr: 2e-5,
            batch_size: 8,
            max_tokens: Some(256),
            seed: 0,
            split_seed: 0,
            test_fraction: 0.2,
            warmup: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            checkpoint_every: 20,
            head_init: HeadInit::Random,
        }
    }
}

/// Checked parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTrainParams(TrainParams);

impl std::ops::Deref for ValidTrainParams {
    type Target = TrainParams;
    fn deref(&self) -> &TrainParams {
        &self.0
    }
}

impl TrainParams {
    /// Check once, at the boundary (layer ranges are checked against the model in [`train`](super::train)).
    pub fn check(self) -> Result<ValidTrainParams> {
        let p = self;
        if p.epochs == 0 {
            return Err(Error::param("epochs", "must be at least 1"));
        }
        if p.batch_size == 0 {
            return Err(Error::param("batch-size", "must be at least 1"));
        }
        if !(p.lr > 0.0 && p.lr.is_finite()) {
            return Err(Error::param(
                "lr",
                format!("must be positive, got {}", p.lr),
            ));
        }
        if p.max_tokens == Some(0) {
            return Err(Error::param("max-tokens", "must be at least 1"));
        }
        if !(0.0..0.9).contains(&p.test_fraction) {
            return Err(Error::param("test-fraction", "must lie in [0, 0.9)"));
        }
        if !(0.0..=1.0).contains(&p.warmup) {
            return Err(Error::param("warmup", "must lie in [0, 1]"));
        }
        if p.weight_decay < 0.0 || p.max_grad_norm < 0.0 {
            return Err(Error::param(
                "weight-decay",
                "weight decay and gradient clipping must not be negative",
            ));
        }
        if p.method == Method::Anchor {
            if p.anchor_layers.is_empty() {
                return Err(Error::param(
                    "anchor-layers",
                    "--method anchor needs --anchor-layers (e.g. 26,28,30)",
                ));
            }
            let k = p.anchor_weight.len();
            if k != 1 && k != p.anchor_layers.len() {
                return Err(Error::param(
                    "anchor-weight",
                    format!(
                        "give one λ or one per anchor layer ({} layers, {k} weights)",
                        p.anchor_layers.len()
                    ),
                ));
            }
            if p.anchor_weight
                .iter()
                .any(|w| !(*w >= 0.0 && w.is_finite()))
            {
                return Err(Error::param("anchor-weight", "λ must be finite and ≥ 0"));
            }
        } else if !p.anchor_layers.is_empty() {
            return Err(Error::param(
                "anchor-layers",
                format!(
                    "only --method anchor uses anchor layers (method is {})",
                    p.method.name()
                ),
            ));
        }
        let mut p = p;
        if p.method == Method::Anchor {
            let mut pairs: Vec<(usize, f64)> = p
                .anchor_layers
                .iter()
                .enumerate()
                .map(|(i, &l)| (l, p.anchor_weight[i.min(p.anchor_weight.len() - 1)]))
                .collect();
            pairs.sort_by_key(|x| x.0);
            pairs.dedup_by_key(|x| x.0);
            p.anchor_layers = pairs.iter().map(|x| x.0).collect();
            p.anchor_weight = pairs.iter().map(|x| x.1).collect();
        }
        Ok(ValidTrainParams(p))
    }
}

/// The seeded split of the source pairs (indices into the data set).
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub test: Vec<usize>,
    pub half1: Vec<usize>,
    pub half2: Vec<usize>,
}

/// Split `n` pairs: a seeded permutation; the first `round(n · test_fraction)` are the test
/// part, the rest is cut in two halves (half 2 gets the odd one). Each part is sorted.
pub fn split(n: usize, test_fraction: f64, seed: u64) -> Split {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x5917));
    let t = ((n as f64) * test_fraction).round() as usize;
    let rest = n - t;
    let mut test = idx[..t].to_vec();
    let mut half1 = idx[t..t + rest / 2].to_vec();
    let mut half2 = idx[t + rest / 2..].to_vec();
    test.sort();
    half1.sort();
    half2.sort();
    Split { test, half1, half2 }
}
