//! Value bias on the Big Two axes: does a model's reward prefer *agency* or *communion*, how
//! does its reward direction line up with the agency–communion axis of its states, and how did
//! that move from the base?
//!
//! Items: matched pairs of the repo's value lexicon (`probes/values/items.jsonl`; the agency
//! reply in the `chosen` slot, the communion reply in `rejected`, same question and template).
//! Rewards come from a reward head or, for a causal LM, its implicit reward
//! ([`super::score`]).
//!
//! - Reward: the mean reward of agency and of communion items; the paired difference
//!   (agency − communion) with a 95 % Student-t interval; Cohen's d between the two reward sets;
//!   the agency win rate (share of pairs whose agency item gets the higher reward, ties ½,
//!   Wilson interval).
//! - Per layer (last-token `resid_post`): the agency–communion axis (paired mean difference,
//!   agency − communion), how decodable it is, and `alignment`, the cosine between the reward's
//!   ridge direction (on all items, ridge [`super::cues::RIDGE`]) and the axis. With a base:
//!   the base's axis and alignment, the cosine between the model's axis and the base's
//!   (`axis_kept`), and `alignment_change` = alignment − base alignment.

use serde::{Deserialize, Serialize};

use super::cues::{FOLDS, RIDGE};
use super::direction::{cosine, decodability, paired_mean_diff, ridge_direction};
use super::implicit::{pair_accuracy, ModelRef, PairAccuracy};
use super::score::{Item, RewardSource, Scorer, Scores};
use crate::capture::Progress;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// One layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueLayer {
    pub layer: usize,
    /// Held-out accuracy of the mean-difference rule telling agency from communion items.
    pub decodability: Option<f64>,
    /// cos(reward direction, agency − communion axis), this model.
    pub alignment: Option<f64>,
    /// The same for the base.
    pub base_alignment: Option<f64>,
    /// cos(this model's axis, the base's axis).
    pub axis_kept: Option<f64>,
    /// `alignment − base_alignment`.
    pub alignment_change: Option<f64>,
}

/// The reward side of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueReward {
    pub reward: RewardSource,
    pub agency_mean: f64,
    pub communion_mean: f64,
    /// Mean of agency − communion over pairs.
    pub diff_mean: f64,
    pub diff_ci95: Option<(f64, f64)>,
    pub cohen_d: Option<f64>,
    /// Agency beats communion.
    pub agency_wins: PairAccuracy,
}

/// What `repdrift values` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueReport {
    pub model: ModelRef,
    pub reference: Option<ModelRef>,
    pub base: Option<ModelRef>,
    pub items: String,
    pub items_sha256: String,
    pub pairs: usize,
    pub value: ValueReward,
    pub base_value: Option<ValueReward>,
    pub layers: Vec<ValueLayer>,
}

impl ValueReport {
    /// The smallest cosine over layers between the model's agency–communion axis and the
    /// base's (None without a base).
    pub fn axis_kept_min(&self) -> Option<f64> {
        self.layers
            .iter()
            .filter_map(|l| l.axis_kept)
            .min_by(f64::total_cmp)
    }

    /// The alignment change from the base at the last layer.
    pub fn alignment_change_last(&self) -> Option<f64> {
        self.layers.last().and_then(|l| l.alignment_change)
    }
}

fn items_of(data: &Dataset) -> Result<Vec<Item>> {
    if data.format.fields().len() != 2 {
        return Err(Error::param(
            "items",
            format!(
                "{}: value items are matched pairs (agency reply as `chosen`, communion reply as `rejected`)",
                data.path.display()
            ),
        ));
    }
    Ok(data
        .examples
        .iter()
        .flat_map(|e| {
            e.sequences.iter().map(|q| Item {
                seq: q.clone(),
                line: e.line,
            })
        })
        .collect())
}

fn reward_side(s: &Scores) -> ValueReward {
    let (a, c): (Vec<f64>, Vec<f64>) = s.rewards.chunks(2).map(|p| (p[0], p[1])).unzip();
    let diffs: Vec<f64> = a.iter().zip(&c).map(|(x, y)| x - y).collect();
    let d = crate::stats::stat(&diffs).expect("at least one pair");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    ValueReward {
        reward: s.source,
        agency_mean: mean(&a),
        communion_mean: mean(&c),
        diff_mean: d.mean,
        diff_ci95: d.ci95(),
        cohen_d: crate::stats::cohen_d(&a, &c),
        agency_wins: pair_accuracy(&diffs),
    }
}

/// Per layer: (axis, decodability, reward direction) of one model's scores.
type LayerGeometry = Vec<(usize, Vec<f64>, Option<f64>, Vec<f64>)>;

fn geometry(s: &Scores, d: usize) -> Result<LayerGeometry> {
    let states = s.states.as_ref().expect("states were asked for");
    let mut out = Vec::new();
    for (&l, x) in states {
        let (mut a, mut c) = (Vec::new(), Vec::new());
        for (i, row) in x.chunks_exact(d).enumerate() {
            if i % 2 == 0 { &mut a } else { &mut c }.extend_from_slice(row);
        }
        let axis = paired_mean_diff(&c, &a, d);
        let dec = decodability(&c, &a, d, FOLDS);
        let what = format!("reward direction at layer {l}");
        let w = ridge_direction(x, &s.rewards, d, RIDGE, &what)?;
        out.push((l, axis, dec, w));
    }
    Ok(out)
}

/// A model's scores on the value items, and which model it was.
pub struct Scored {
    pub model: ModelRef,
    pub reference: Option<ModelRef>,
    pub scores: Scores,
}

/// Score the value items under `scorer` (states included).
pub fn score_items(
    scorer: &Scorer<'_>,
    items: &Dataset,
    progress: &mut dyn Progress,
) -> Result<Scored> {
    let list = items_of(items)?;
    Ok(Scored {
        model: ModelRef::of(scorer.model),
        reference: scorer.reference.map(ModelRef::of),
        scores: scorer.score(&list, &items.path, true, progress)?,
    })
}

/// Measure `scorer`'s model (and `base`, when given) on the value items.
pub fn values(
    scorer: &Scorer<'_>,
    base: Option<&Scorer<'_>>,
    items: &Dataset,
    progress: &mut dyn Progress,
) -> Result<ValueReport> {
    let n = items_of(items)?.len();
    progress.start(
        n * (scorer.passes(true) + base.map_or(0, |b| b.passes(true))),
        0,
    );
    let s = score_items(scorer, items, progress)?;
    let b = base.map(|b| score_items(b, items, progress)).transpose()?;
    progress.finish();
    analyse(&s, b.as_ref(), items)
}

/// The width of the states in `s` (0 when it holds none).
fn hidden_of(s: &Scores) -> usize {
    s.states
        .as_ref()
        .and_then(|m| m.values().next())
        .map_or(0, |x| x.len() / s.rewards.len().max(1))
}

/// The value report of scored items `s`, against the base's scores `b` when given.
pub fn analyse(s: &Scored, b: Option<&Scored>, items: &Dataset) -> Result<ValueReport> {
    let d = hidden_of(&s.scores);
    if let Some(bs) = b {
        let bd = hidden_of(&bs.scores);
        if bd != d {
            return Err(Error::ShapeMismatch {
                what: "the model's and the base's residual streams".into(),
                left_name: "model hidden".into(),
                left: vec![d],
                right_name: "base hidden".into(),
                right: vec![bd],
            });
        }
    }
    let g = geometry(&s.scores, d)?;
    let bg = b.map(|b| geometry(&b.scores, d)).transpose()?;
    let layers = g
        .iter()
        .map(|(l, axis, dec, w)| {
            let alignment = cosine(w, axis);
            let base = bg
                .as_ref()
                .and_then(|bg| bg.iter().find(|(bl, ..)| bl == l));
            let base_alignment = base.and_then(|(_, ba, _, bw)| cosine(bw, ba));
            ValueLayer {
                layer: *l,
                decodability: *dec,
                alignment,
                base_alignment,
                axis_kept: base.and_then(|(_, ba, ..)| cosine(axis, ba)),
                alignment_change: alignment.zip(base_alignment).map(|(a, b)| a - b),
            }
        })
        .collect();
    Ok(ValueReport {
        model: s.model.clone(),
        reference: s.reference.clone(),
        base: b.map(|b| b.model.clone()),
        items: items.path.display().to_string(),
        items_sha256: items.sha256.clone(),
        pairs: items.examples.len(),
        value: reward_side(&s.scores),
        base_value: b.map(|b| reward_side(&b.scores)),
        layers,
    })
}

/// `values.json`.
pub fn render_json(r: &ValueReport) -> Vec<u8> {
    crate::io::json_bytes(r)
}

/// `values.csv`: one row per layer.
pub fn render_csv(r: &ValueReport) -> Vec<u8> {
    use crate::io::csv_num;
    let mut s =
        String::from("layer,decodability,alignment,base_alignment,axis_kept,alignment_change\n");
    for l in &r.layers {
        s.push_str(&format!(
            "{},{},{},{},{},{}\n",
            l.layer,
            csv_num(l.decodability),
            csv_num(l.alignment),
            csv_num(l.base_alignment),
            csv_num(l.axis_kept),
            csv_num(l.alignment_change),
        ));
    }
    s.into_bytes()
}

/// One sentence on a model's reward side.
pub fn reward_sentence(name: &str, v: &ValueReward) -> String {
    let (lo, hi) = v.agency_wins.ci95;
    let leaning = if lo > 0.5 {
        "prefers agency"
    } else if hi < 0.5 {
        "prefers communion"
    } else {
        "shows no clear preference between agency and communion"
    };
    format!(
        "{name} {leaning}: agency wins {:.1} % of matched pairs (95 % CI {:.1}–{:.1} %); mean reward difference agency − communion {:+.3}{}, Cohen's d {}.",
        100.0 * v.agency_wins.accuracy,
        100.0 * lo,
        100.0 * hi,
        v.diff_mean,
        v.diff_ci95
            .map_or(String::new(), |(a, b)| format!(" (95 % CI {a:+.3} to {b:+.3})")),
        v.cohen_d.map_or("–".into(), |d| format!("{d:+.2}")),
    )
}

/// A Markdown section (`title` names the model).
pub fn render_md(r: &ValueReport, title: &str) -> String {
    use crate::fmt::{f3, md_table};
    let mut s = format!(
        "### Value bias: {title}\n\n{} pairs of the value lexicon ({}).\n\n- {}\n",
        r.pairs,
        r.items,
        reward_sentence("The model", &r.value)
    );
    if let Some(b) = &r.base_value {
        s += &format!("- {}\n", reward_sentence("The base", b));
    }
    let rows: Vec<Vec<String>> = r
        .layers
        .iter()
        .map(|l| {
            vec![
                l.layer.to_string(),
                f3(l.decodability),
                f3(l.alignment),
                f3(l.base_alignment),
                f3(l.axis_kept),
                f3(l.alignment_change),
            ]
        })
        .collect();
    s += "\n";
    s += &md_table(
        &[
            "layer",
            "axis decodability",
            "cos(reward, axis)",
            "base cos",
            "axis kept (cos)",
            "change",
        ],
        &rows,
    );
    s
}
