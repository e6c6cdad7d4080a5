//! Per-run cue sensitivity and value bias (study config `[bias]`): after a run is trained, its
//! student (the delta the trainer writes into the run's work directory) is measured by
//! `repdrift cues` on the first `cue_pairs` pairs of the seed's source test split and by
//! `repdrift values` on the first `value_pairs` pairs of the value lexicon, against the base
//! (scored once per study process, by its implicit reward). The run file keeps the headline
//! numbers ([`RunBias`]); the study's table gains one column per measure (mean ± sd over seeds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::bias::cues;
use crate::bias::score::Scorer;
use crate::bias::values::{self, Scored};
use crate::bias::{ScoreParams, ValidScoreParams};
use crate::capture::NoProgress;
use crate::data::{read_jsonl, Dataset};
use crate::error::Result;
use crate::model::HookedModel;

/// The `[bias]` table of a study config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasSpec {
    /// Source test pairs whose replies are edited (per seed).
    #[serde(default = "default_cue_pairs")]
    pub cue_pairs: usize,
    /// The value lexicon and how many of its pairs to use.
    #[serde(default = "default_items")]
    pub value_items: PathBuf,
    #[serde(default = "default_value_pairs")]
    pub value_pairs: usize,
}

impl BiasSpec {
    /// Enough cue pairs for the decodability folds, at least two value pairs, and value items
    /// that exist.
    pub fn check(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if self.cue_pairs < crate::bias::cues::FOLDS || self.value_pairs < 2 {
            return Err(Error::param(
                "bias",
                format!(
                    "cue_pairs must be at least {} (the folds of the decodability estimate) and value_pairs at least 2; got {} and {}",
                    crate::bias::cues::FOLDS,
                    self.cue_pairs,
                    self.value_pairs
                ),
            ));
        }
        if !self.value_items.exists() {
            return Err(Error::io(
                &self.value_items,
                std::io::Error::new(std::io::ErrorKind::NotFound, "value items not found"),
            ));
        }
        Ok(())
    }
}

fn default_cue_pairs() -> usize {
    32
}
fn default_items() -> PathBuf {
    PathBuf::from("probes/values/items.jsonl")
}
fn default_value_pairs() -> usize {
    48
}

/// What a run file keeps of its student's cue and value reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBias {
    /// cue → mean reward change in units of the reward sd on the original replies.
    pub cue_effect_sd: BTreeMap<String, f64>,
    /// cue → flip rate (share of rightly ranked pairs the edited rejected reply flips).
    pub cue_flip_rate: BTreeMap<String, f64>,
    /// Spearman ρ of reward against response tokens.
    pub length_rho: Option<f64>,
    /// Share of value pairs whose agency reply gets the higher reward.
    pub agency_win_rate: f64,
    /// min over layers of cos(student's agency–communion axis, base's).
    pub axis_kept_min: Option<f64>,
    /// Change of cos(reward direction, axis) from the base at the last layer.
    pub alignment_change_last: Option<f64>,
}

/// What every run of a study process shares.
pub struct BiasCtx {
    params: ValidScoreParams,
    items: Dataset,
    base: Scored,
    cue_pairs: usize,
}

impl BiasCtx {
    /// Read the value items and score them under the base.
    pub fn new(
        spec: &BiasSpec,
        base: &dyn HookedModel,
        max_tokens: usize,
        device: &Device,
    ) -> Result<Self> {
        let params = ScoreParams {
            max_tokens: (max_tokens > 0).then_some(max_tokens),
            batch_size: 8,
        }
        .check()?;
        let items = read_jsonl(&spec.value_items, Some(spec.value_pairs))?;
        let base =
            values::score_items(&Scorer::new(base, &params, device), &items, &mut NoProgress)?;
        Ok(Self {
            params,
            items,
            base,
            cue_pairs: spec.cue_pairs,
        })
    }

    /// The first `cue_pairs` pairs of `source` among the `test` indices, as a data set.
    pub fn cue_data(&self, source: &Dataset, test: &[usize]) -> Dataset {
        let mut idx = test.to_vec();
        idx.sort_unstable();
        Dataset {
            path: source.path.clone(),
            sha256: source.sha256.clone(),
            format: source.format,
            examples: idx
                .iter()
                .take(self.cue_pairs)
                .map(|&i| source.examples[i].clone())
                .collect(),
        }
    }

    /// Measure the student saved in `dir`.
    pub fn measure(&self, dir: &Path, cue_data: &Dataset, device: &Device) -> Result<RunBias> {
        let m = crate::model::load(dir, device)?;
        let s = Scorer::new(m.as_ref(), &self.params, device);
        let c = cues::cues(&s, cue_data, &mut NoProgress)?;
        let scored = values::score_items(&s, &self.items, &mut NoProgress)?;
        let v = values::analyse(&scored, Some(&self.base), &self.items)?;
        Ok(RunBias {
            cue_effect_sd: c
                .cues
                .iter()
                .map(|e| (e.cue.name().to_string(), e.effect_sd))
                .collect(),
            cue_flip_rate: c
                .cues
                .iter()
                .filter_map(|e| e.flip_rate.map(|f| (e.cue.name().to_string(), f)))
                .collect(),
            length_rho: c.length.spearman.map(|s| s.rho),
            agency_win_rate: v.value.agency_wins.accuracy,
            axis_kept_min: v.axis_kept_min(),
            alignment_change_last: v.alignment_change_last(),
        })
    }
}

/// The per-run numbers as study metrics: `cue:{name}` (Δ/sd), `length_rho`, `agency_win`
/// (points), `axis_kept`, `alignment_change`.
pub fn metrics(b: &RunBias, m: &mut BTreeMap<String, f64>) {
    for (k, v) in &b.cue_effect_sd {
        m.insert(format!("cue:{k}"), *v);
    }
    if let Some(r) = b.length_rho {
        m.insert("length_rho".into(), r);
    }
    m.insert("agency_win".into(), 100.0 * b.agency_win_rate);
    if let Some(k) = b.axis_kept_min {
        m.insert("axis_kept".into(), k);
    }
    if let Some(a) = b.alignment_change_last {
        m.insert("alignment_change".into(), a);
    }
}

/// The bias table's metric keys in column order and their headers, for the cues present.
pub fn columns(keys: &[String]) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = cues::Cue::ALL
        .iter()
        .map(|c| format!("cue:{}", c.name()))
        .filter(|k| keys.contains(k))
        .map(|k| {
            let h = format!("{} (Δ/sd)", &k[4..]);
            (k, h)
        })
        .collect();
    for (k, h) in [
        ("length_rho", "length ρ"),
        ("agency_win", "agency win %"),
        ("axis_kept", "axis kept (min cos)"),
        ("alignment_change", "alignment change (last layer)"),
    ] {
        if keys.iter().any(|x| x == k) {
            cols.push((k.to_string(), h.to_string()));
        }
    }
    cols
}
