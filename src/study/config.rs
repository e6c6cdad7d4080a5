//! The study's configuration (TOML), checked once into the list of runs it stands for.
//!
//! ```toml
//! base = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
//! teacher = "models/all-minilm-l6-v2"
//! source = "probes/w2s/source.jsonl"
//! seeds = [0, 1, 2]
//! methods = ["gold", "naive", "confidence", "anchor", "lpft"]
//! max_tokens = 96
//! batch_size = 8
//! eval_every = 10            # trajectory points (0: only the start and the end)
//! trajectory_pairs = 48      # pairs of each set scored at a trajectory point
//! drift_layers = [8, 16, 22, 26, 28, 30]
//!
//! [targets]
//! chat = "probes/w2s/target_chat.jsonl"
//!
//! [[regimes]]
//! name = "top4"
//! trainable = "top:4"
//! lr = 1e-4
//! epochs = 4
//!
//! [[anchors]]                # each becomes a method named after it
//! name = "anchor"
//! layers = "trainable"       # or a list of residual layers
//! every = 2                  # with "trainable": every 2nd layer the trainable blocks compute
//! weight = 1.0
//! ```
//!
//! Methods: `gold`, `naive`, `confidence`, `lpft` (naive weak labels, head fitted on the
//! frozen base first), and one per `[[anchors]]` entry (naive + anchor term). Relative paths
//! are resolved against the config file's folder's repository root: the current directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::{AnchorDistance, HeadInit, Method, TrainParams, Trainable, ValidTrainParams};

/// One training regime: how much of the model trains and how hard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regime {
    pub name: String,
    /// `top:K` or `all`.
    pub trainable: String,
    pub lr: f64,
    pub epochs: usize,
}

/// Anchor layers: explicit, or every `every`-th layer the trainable blocks compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnchorLayers {
    List(Vec<usize>),
    Keyword(String),
}

/// One anchored method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorSpec {
    pub name: String,
    pub layers: AnchorLayers,
    #[serde(default = "one")]
    pub every: usize,
    pub weight: f64,
    #[serde(default)]
    pub distance: Option<String>,
}

fn one() -> usize {
    1
}

/// The configuration file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    pub base: PathBuf,
    /// The weak teacher's encoder (unless `weak_rule` names a rule instead).
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub teacher: PathBuf,
    /// A rule as the weak teacher (`"padding"`: prefers the reply that ends with the padding
    /// sentence; the shortcut arm) instead of an encoder with a fitted head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_rule: Option<String>,
    pub source: PathBuf,
    /// Only the first N source pairs.
    #[serde(default)]
    pub limit_source: Option<usize>,
    pub targets: BTreeMap<String, PathBuf>,
    /// Only the first N pairs of each target.
    #[serde(default)]
    pub limit_targets: Option<usize>,
    pub seeds: Vec<u64>,
    pub methods: Vec<String>,
    pub regimes: Vec<Regime>,
    #[serde(default)]
    pub anchors: Vec<AnchorSpec>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default)]
    pub eval_every: usize,
    #[serde(default = "default_traj_pairs")]
    pub trajectory_pairs: usize,
    #[serde(default = "default_drift_layers")]
    pub drift_layers: Vec<usize>,
    /// Measure each student's cue sensitivity and value bias (`[bias]`; off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<super::bias::BiasSpec>,
    /// Method pairs `[a, b]` to test a − b pair by pair, beside naive − gold and every method −
    /// naive (analysis only: runs do not depend on it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contrasts: Vec<(String, String)>,
    /// The pages' title (`--title` overrides it; analysis only), so that the committed pages
    /// re-render from the config alone. Not written to the study's `config.json`, which
    /// records what the runs depend on.
    #[serde(default, skip_serializing)]
    pub title: Option<String>,
    /// A `repdrift validate` output (validate.json) of the base for "Can these numbers be
    /// trusted?" (`--validate` overrides it; analysis only; not in `config.json` either).
    #[serde(default, skip_serializing)]
    pub validate: Option<PathBuf>,
}

fn is_empty_path(p: &std::path::Path) -> bool {
    p.as_os_str().is_empty()
}

fn default_max_tokens() -> usize {
    128
}
fn default_batch() -> usize {
    8
}
fn default_test_fraction() -> f64 {
    0.2
}
fn default_traj_pairs() -> usize {
    48
}
fn default_drift_layers() -> Vec<usize> {
    vec![8, 16, 22, 26, 28, 30]
}

/// One run of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// `{regime}__{method}__s{seed}`: the run's file name.
    pub id: String,
    pub method: String,
    pub regime: String,
    pub seed: u64,
    pub params: ValidTrainParams,
}

/// A checked configuration: the resolved paths and every run, in execution order (regime, then
/// seed, then method: cheap regimes finish with all their seeds first, and each (regime, seed)
/// shares one frozen-bottom cache).
#[derive(Debug, Clone)]
pub struct ValidStudy {
    pub config: StudyConfig,
    pub runs: Vec<RunSpec>,
    pub n_layers: usize,
}

/// Read and parse a config file (`path` names the file in errors).
pub fn read_config(path: &Path) -> Result<StudyConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| {
        Error::param(
            "config",
            format!("{}: {}", path.display(), e.to_string().trim_end()),
        )
    })
}

impl StudyConfig {
    /// Check once, at the boundary; `n_layers` is the base's block count (anchor layers and
    /// `top:K` are checked against it).
    pub fn check(self, n_layers: usize) -> Result<ValidStudy> {
        self.check_fields(n_layers)?;
        let mut runs = Vec::new();
        for r in &self.regimes {
            let (trainable, first) = r.trainable_part(n_layers)?;
            for &seed in &self.seeds {
                for m in &self.methods {
                    let mut p = TrainParams {
                        trainable,
                        epochs: r.epochs,
                        lr: r.lr,
                        batch_size: self.batch_size,
                        max_tokens: (self.max_tokens > 0).then_some(self.max_tokens),
                        seed,
                        split_seed: seed,
                        test_fraction: self.test_fraction,
                        checkpoint_every: 0,
                        ..Default::default()
                    };
                    self.set_method(&mut p, m, r, first, n_layers)?;
                    runs.push(RunSpec {
                        id: format!("{}__{}__s{}", r.name, m, seed),
                        method: m.clone(),
                        regime: r.name.clone(),
                        seed,
                        params: p.check()?,
                    });
                }
            }
        }
        Ok(ValidStudy {
            config: self,
            runs,
            n_layers,
        })
    }

    /// Every field that does not depend on a regime: non-empty grid and targets, one weak
    /// teacher, drift layers in range, `[bias]` sizes, unique regime names, known methods.
    fn check_fields(&self, n_layers: usize) -> Result<()> {
        let c = self;
        if c.seeds.is_empty() || c.methods.is_empty() || c.regimes.is_empty() {
            return Err(Error::param(
                "config",
                "seeds, methods and regimes must each name at least one entry",
            ));
        }
        if c.targets.is_empty() {
            return Err(Error::param(
                "config",
                "name at least one target under [targets]",
            ));
        }
        if let Some((a, b)) = c
            .contrasts
            .iter()
            .find(|(a, b)| a == b || !c.methods.contains(a) || !c.methods.contains(b))
        {
            return Err(Error::param(
                "config",
                format!(
                    "contrast [{a:?}, {b:?}]: name two different methods of `methods` ({:?})",
                    c.methods
                ),
            ));
        }
        match (&c.weak_rule, c.teacher.as_os_str().is_empty()) {
            (Some(r), true) => {
                crate::train::WeakRule::parse(r)?;
            }
            (None, false) => {}
            _ => {
                return Err(Error::param(
                    "config",
                    "name the weak teacher either by `teacher` (an encoder) or by `weak_rule`, not both",
                ))
            }
        }
        if let Some(&l) = c.drift_layers.iter().find(|&&l| l > n_layers) {
            return Err(Error::LayerOutOfRange {
                layer: l,
                min: 0,
                max: n_layers,
                what: "drift_layers (residual layers of the base)".into(),
            });
        }
        if let Some(b) = &c.bias {
            b.check()?;
        }
        let mut names: Vec<&str> = c.regimes.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        names.dedup();
        if names.len() != c.regimes.len() {
            return Err(Error::param("config", "regime names must be unique"));
        }
        for m in &c.methods {
            let known = ["gold", "naive", "confidence", "lpft"].contains(&m.as_str())
                || c.anchors.iter().any(|a| &a.name == m);
            if !known {
                return Err(Error::param(
                    "config",
                    format!(
                        "unknown method `{m}`: use gold, naive, confidence, lpft or the name of an [[anchors]] entry"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `p` set up for method `m` (checked known) in regime `r`, whose trainable blocks start
    /// after layer `first`.
    fn set_method(
        &self,
        p: &mut TrainParams,
        m: &str,
        r: &Regime,
        first: usize,
        n_layers: usize,
    ) -> Result<()> {
        match m {
            "gold" => p.method = Method::Gold,
            "naive" => p.method = Method::Naive,
            "confidence" => p.method = Method::Confidence,
            "lpft" => {
                p.method = Method::Naive;
                p.head_init = HeadInit::Probe;
            }
            name => {
                let a = self
                    .anchors
                    .iter()
                    .find(|a| a.name == name)
                    .expect("checked by check_fields");
                p.method = Method::Anchor;
                p.anchor_weight = vec![a.weight];
                if let Some(d) = &a.distance {
                    p.anchor_distance = AnchorDistance::parse(d)?;
                }
                p.anchor_layers = a.layers_in(r, first, n_layers)?;
            }
        }
        Ok(())
    }
}

impl Regime {
    /// The regime's trainable part and the last frozen layer (`top:K` checked against the
    /// base's `n_layers` blocks).
    fn trainable_part(&self, n_layers: usize) -> Result<(Trainable, usize)> {
        let trainable = Trainable::parse(&self.trainable)?;
        let first = match trainable {
            Trainable::Top(k) if k > n_layers => {
                return Err(Error::param(
                    "trainable",
                    format!(
                        "regime `{}`: top:{k} exceeds the base's {n_layers} blocks",
                        self.name
                    ),
                ))
            }
            Trainable::Top(k) => n_layers - k,
            Trainable::All => 0,
        };
        Ok((trainable, first))
    }
}

impl AnchorSpec {
    /// The anchored layers in regime `r` (trainable blocks after layer `first`): the list as
    /// given, or every `every`-th layer the trainable blocks compute; each must be trainable.
    fn layers_in(&self, r: &Regime, first: usize, n_layers: usize) -> Result<Vec<usize>> {
        let layers = match &self.layers {
            AnchorLayers::List(l) => l.clone(),
            AnchorLayers::Keyword(k) if k == "trainable" => {
                let mut v: Vec<usize> = (first + 1..=n_layers)
                    .rev()
                    .step_by(self.every.max(1))
                    .collect();
                v.reverse();
                v
            }
            AnchorLayers::Keyword(k) => {
                return Err(Error::param(
                    "config",
                    format!(
                        "anchor `{}`: layers must be a list or \"trainable\", got \"{k}\"",
                        self.name
                    ),
                ))
            }
        };
        if let Some(&l) = layers.iter().find(|&&l| l <= first || l > n_layers) {
            return Err(Error::LayerOutOfRange {
                layer: l,
                min: first + 1,
                max: n_layers,
                what: format!(
                    "anchor `{}` in regime `{}` (lower layers are frozen)",
                    self.name, r.name
                ),
            });
        }
        Ok(layers)
    }
}
