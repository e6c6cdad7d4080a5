//! One table and a few sentences over several models' cue and value reports — the section the
//! demo report shows ("What else did the students learn?").
//!
//! Per model: each cue's effect in reward sd (with whether its 95 % interval excludes 0), the
//! flip rate of the strongest cue, Spearman ρ of reward against length, the agency win rate,
//! the smallest cosine between the model's agency–communion axis and the base's over layers,
//! and the change of the reward's alignment with that axis at the last layer. Sentences: a
//! student whose cue sensitivity grew beyond the gold student's by more than [`MARGIN`] reward
//! sd ([`super::cues::grew_beyond_gold`]) — or that none did, with the largest excess — and
//! each model's value lean.

use serde::{Deserialize, Serialize};

use super::cues::{grew_beyond_gold, CueReport};
use super::score::RewardSource;
use super::values::{reward_sentence, ValueReport};

/// How much larger (in reward sd) a student's cue effect must be than gold's to be reported.
pub const MARGIN: f64 = 0.2;

/// One cue's effect on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CueCell {
    pub cue: String,
    pub effect_sd: f64,
    /// Whether the 95 % interval of the raw change excludes 0.
    pub significant: bool,
    pub flip_rate: Option<f64>,
}

/// One model's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasRow {
    pub model: String,
    pub reward: RewardSource,
    pub cues: Vec<CueCell>,
    pub length_rho: Option<f64>,
    /// (agency win rate, Wilson 95 % interval).
    pub agency_wins: Option<(f64, (f64, f64))>,
    /// min over layers of cos(model's agency–communion axis, base's).
    pub axis_kept_min: Option<f64>,
    /// Alignment change (cos(reward, axis) − base's) at the last layer.
    pub alignment_change_last: Option<f64>,
    /// Pairwise accuracy of the model's implicit reward (summed response log-probability,
    /// minus the reference's when it has one) on the cue pairs.
    #[serde(default)]
    pub implicit_accuracy: Option<f64>,
}

/// The section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BiasSection {
    /// The data the cues were measured on, and its pairs.
    pub cue_data: String,
    pub cue_pairs: usize,
    /// Value-lexicon pairs used.
    pub value_pairs: usize,
    pub rows: Vec<BiasRow>,
    pub sentences: Vec<String>,
}

/// A model's name and reports (either may be missing).
pub struct Measured<'a> {
    pub name: &'a str,
    pub cues: Option<&'a CueReport>,
    pub values: Option<&'a ValueReport>,
    pub implicit: Option<&'a super::implicit::ImplicitReport>,
}

fn row(m: &Measured<'_>) -> Option<BiasRow> {
    let reward = m
        .cues
        .map(|c| c.reward)
        .or_else(|| m.values.map(|v| v.value.reward))?;
    let cues = m.cues.map_or(Vec::new(), |c| {
        c.cues
            .iter()
            .map(|e| CueCell {
                cue: e.cue.name().to_string(),
                effect_sd: e.effect_sd,
                significant: e.ci95.is_some_and(|(a, b)| a > 0.0 || b < 0.0),
                flip_rate: e.flip_rate,
            })
            .collect()
    });
    let v = m.values;
    Some(BiasRow {
        model: m.name.to_string(),
        reward,
        cues,
        length_rho: m.cues.and_then(|c| c.length.spearman.map(|s| s.rho)),
        agency_wins: v.map(|v| (v.value.agency_wins.accuracy, v.value.agency_wins.ci95)),
        axis_kept_min: v.and_then(ValueReport::axis_kept_min),
        alignment_change_last: v.and_then(ValueReport::alignment_change_last),
        implicit_accuracy: m
            .implicit
            .and_then(|i| i.summary.as_ref().map(|s| s.sum.accuracy)),
    })
}

/// Build the section; `gold` names the gold student among `models` (its cue effects are the
/// yardstick of the others').
pub fn section(models: &[Measured<'_>], gold: Option<&str>) -> BiasSection {
    let first_cues = models.iter().find_map(|m| m.cues);
    let mut s = BiasSection {
        cue_data: first_cues.map_or(String::new(), |c| c.data.clone()),
        cue_pairs: first_cues.map_or(0, |c| c.pairs),
        value_pairs: models.iter().find_map(|m| m.values).map_or(0, |v| v.pairs),
        rows: models.iter().filter_map(row).collect(),
        sentences: Vec::new(),
    };
    let gold_cues = gold.and_then(|g| models.iter().find(|m| m.name == g).and_then(|m| m.cues));
    if let Some(gc) = gold_cues {
        let mut grew = Vec::new();
        let mut largest: Option<(f64, String, String)> = None;
        for m in models.iter().filter(|m| Some(m.name) != gold) {
            let Some(c) = m.cues else { continue };
            if c.reward != RewardSource::Head {
                continue;
            }
            grew.extend(grew_beyond_gold(m.name, c, gc, MARGIN));
            for e in &c.cues {
                if let Some(g) = gc.cues.iter().find(|g| g.cue == e.cue) {
                    let excess = e.effect_sd.abs() - g.effect_sd.abs();
                    if largest.as_ref().is_none_or(|l| excess > l.0) {
                        largest = Some((excess, m.name.to_string(), e.cue.name().to_string()));
                    }
                }
            }
        }
        if grew.is_empty() {
            if let Some((x, m, c)) = largest {
                s.sentences.push(format!(
                    "No student's reward is more sensitive to a cue than the gold student's by more than {MARGIN} reward sd with an interval excluding 0; the largest difference |student| − |gold| is {x:+.2} sd ({m}, {c})."
                ));
            }
        }
        s.sentences.extend(grew);
    }
    for m in models {
        if let Some(v) = m.values {
            s.sentences.push(reward_sentence(m.name, &v.value));
        }
    }
    s
}

fn f2(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:+.2}"))
}

/// The table's header and rows (cue columns in the first row's order).
pub fn table(s: &BiasSection) -> (Vec<String>, Vec<Vec<String>>) {
    let cue_names: Vec<String> = s
        .rows
        .iter()
        .find(|r| !r.cues.is_empty())
        .map_or(Vec::new(), |r| {
            r.cues.iter().map(|c| c.cue.clone()).collect()
        });
    let mut head = vec!["model".to_string(), "reward".to_string()];
    head.extend(cue_names.iter().map(|c| format!("{c} (Δ/sd)")));
    head.extend(
        [
            "implicit-reward accuracy",
            "length ρ",
            "agency win rate",
            "axis kept (min cos)",
            "alignment change (last layer)",
        ]
        .map(String::from),
    );
    let rows = s
        .rows
        .iter()
        .map(|r| {
            let mut v = vec![
                r.model.clone(),
                match r.reward {
                    RewardSource::Head => "head".into(),
                    RewardSource::Implicit => "implicit".into(),
                },
            ];
            for c in &cue_names {
                v.push(r.cues.iter().find(|x| &x.cue == c).map_or("–".into(), |x| {
                    format!(
                        "{:+.2}{}",
                        x.effect_sd,
                        if x.significant { "*" } else { "" }
                    )
                }));
            }
            v.push(
                r.implicit_accuracy
                    .map_or("–".into(), |a| format!("{:.1} %", 100.0 * a)),
            );
            v.push(f2(r.length_rho));
            v.push(r.agency_wins.map_or("–".into(), |(a, (lo, hi))| {
                format!("{:.0} % [{:.0}, {:.0}]", 100.0 * a, 100.0 * lo, 100.0 * hi)
            }));
            v.push(r.axis_kept_min.map_or("–".into(), |x| format!("{x:.3}")));
            v.push(f2(r.alignment_change_last));
            v
        })
        .collect();
    (head, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bias::cues::{Cue, CueEffect, LengthBias, SubsetAccuracy};
    use crate::bias::implicit::ModelRef;

    fn report(effects: &[(Cue, f64, (f64, f64))]) -> CueReport {
        let none = SubsetAccuracy {
            n: 0,
            accuracy: None,
            ci95: None,
        };
        CueReport {
            model: ModelRef {
                path: "m".into(),
                architecture: "llama".into(),
                weights_sha256: String::new(),
            },
            reference: None,
            reward: RewardSource::Head,
            data: "d.jsonl".into(),
            data_sha256: String::new(),
            pairs: 10,
            reward_mean: 0.0,
            reward_sd: 1.0,
            length: LengthBias {
                spearman: None,
                accuracy_all: none.clone(),
                accuracy_chosen_shorter: none.clone(),
                accuracy_chosen_longer: none,
            },
            cues: effects
                .iter()
                .map(|&(cue, sd, ci)| CueEffect {
                    cue,
                    edit: cue.describe(),
                    n: 20,
                    mean_delta: sd,
                    ci95: Some(ci),
                    effect_sd: sd,
                    flip_rate: None,
                    flip_n: 0,
                    layers: Vec::new(),
                })
                .collect(),
        }
    }

    /// Truth: by hand. Gold moves 0.1 sd on apology; naive moves 0.5 sd with an interval above
    /// 0 (reported: excess 0.4 > 0.2); anchor moves 0.25 sd (excess 0.15, not reported), and
    /// a 0.9 sd effect whose interval spans 0 is not reported either.
    #[test]
    fn only_a_clear_excess_over_gold_is_reported() {
        let gold = report(&[
            (Cue::Apology, 0.1, (0.0, 0.2)),
            (Cue::List, 0.0, (-0.1, 0.1)),
        ]);
        let naive = report(&[
            (Cue::Apology, 0.5, (0.3, 0.7)),
            (Cue::List, 0.9, (-0.2, 2.0)),
        ]);
        let anchor = report(&[
            (Cue::Apology, 0.25, (0.1, 0.4)),
            (Cue::List, 0.0, (-0.1, 0.1)),
        ]);
        let m = |name, c| Measured {
            name,
            cues: Some(c),
            values: None,
            implicit: None,
        };
        let s = section(
            &[m("gold", &gold), m("naive", &naive), m("anchor", &anchor)],
            Some("gold"),
        );
        assert_eq!(s.sentences.len(), 1, "{:?}", s.sentences);
        assert!(s.sentences[0].starts_with("naive:") && s.sentences[0].contains("apology"));
        let s = section(&[m("gold", &gold), m("anchor", &anchor)], Some("gold"));
        assert!(
            s.sentences[0].contains("+0.15 sd (anchor, apology)"),
            "{:?}",
            s.sentences
        );
        let (head, rows) = table(&s);
        assert_eq!(head[2], "apology (Δ/sd)");
        assert_eq!(rows[1][2], "+0.25*");
    }
}
