//! Per-pair readouts at the verdict layer, for every model and data set: the base's probe
//! (fitted on the base's source states) applied to each model's states, and each reward
//! model's own head. On the source, every pair is scored by a probe of the cross-validation
//! fold that did not see it (on the base's states and on each student's), so no source pair
//! is scored by a probe trained on it; on the targets, by the probe refitted on the whole
//! source. These margins are what every test is computed from, and they are stored
//! (`pairs.csv`) so that any test can be rerun later.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::capture::Store;
use crate::error::{Error, Result};
use crate::model::HookPoint;
use crate::probe::run::load_layer;
use crate::probe::{cross_fit, cross_validate, fit_pairwise, ProbeData, Solver};

/// The probe's settings: the C grid and folds of `repdrift probe`'s defaults.
pub const CS: [f64; 4] = [0.001, 0.01, 0.1, 1.0];
pub const FOLDS: usize = 5;

/// One model's per-pair margins on one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    pub model: String,
    pub set: String,
    /// The base probe's logit on this model's states (chosen − rejected direction).
    pub probe: Vec<f64>,
    /// reward(chosen) − reward(rejected) of the model's own head; None without a head.
    pub head: Option<Vec<f64>>,
}

/// Every model's margins on every set, and how the probe was fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readouts {
    pub layer: usize,
    /// The probe's C, picked by cross-validation on the base's source states.
    pub c: f64,
    pub folds: usize,
    /// The base probe's cross-validated accuracy on the source at that C.
    pub cv_accuracy: f64,
    /// Per set, each pair's 1-based line in its file.
    pub lines: BTreeMap<String, Vec<usize>>,
    pub scores: Vec<PairScores>,
}

impl Readouts {
    pub fn get(&self, model: &str, set: &str) -> &PairScores {
        self.scores
            .iter()
            .find(|s| s.model == model && s.set == set)
            .expect("a readout for every model and set")
    }
}

/// Stores by (model id, set name).
pub type StoreMap = BTreeMap<(String, String), PathBuf>;

fn deltas(stores: &StoreMap, model: &str, set: &str, layer: usize) -> Result<Array2<f64>> {
    let store = Store::open(&stores[&(model.to_string(), set.to_string())])?;
    match load_layer(&store, HookPoint::ResidPost, layer)? {
        ProbeData::Pairs(d) => Ok(d),
        ProbeData::Labels(..) => Err(Error::InvalidStore {
            path: store.dir().to_path_buf(),
            reason: "expected a store of preference pairs".into(),
        }),
    }
}

fn head_margins(stores: &StoreMap, model: &str, set: &str) -> Result<Option<Vec<f64>>> {
    let store = Store::open(&stores[&(model.to_string(), set.to_string())])?;
    Ok(store
        .rewards()?
        .map(|r| r.rows().into_iter().map(|row| row[0] - row[1]).collect()))
}

/// Fit the base probe and score every model on every set.
pub fn compute(plan: &Plan, stores: &StoreMap, seed: u64) -> Result<Readouts> {
    let layer = plan.verdict_layer;
    let solver = Solver::default();
    let ids: Vec<&str> = plan.models().map(|m| m.id.as_str()).collect();
    let mut scores = Vec::new();

    // Source: cross-fitted on the base's states, applied fold by fold to every student's.
    let base_src = deltas(stores, "base", "source", layer)?;
    let cv = cross_validate(
        &ProbeData::Pairs(base_src.clone()),
        &CS,
        FOLDS,
        seed,
        solver,
    )?;
    let student_src: Vec<Array2<f64>> = ids[1..]
        .iter()
        .map(|id| deltas(stores, id, "source", layer))
        .collect::<Result<_>>()?;
    let views: Vec<_> = student_src.iter().map(|d| d.view()).collect();
    let fitted = cross_fit(base_src.view(), &views, cv.c, FOLDS, seed, solver)?;
    for (id, s) in ids.iter().zip(fitted) {
        scores.push(PairScores {
            model: id.to_string(),
            set: "source".into(),
            probe: s.to_vec(),
            head: head_margins(stores, id, "source")?,
        });
    }

    // Targets: the probe refitted on the whole source.
    let probe = fit_pairwise(base_src.view(), cv.c, solver)?;
    for set in plan.targets() {
        for id in &ids {
            let d = deltas(stores, id, &set.name, layer)?;
            let s: Array1<f64> = probe.scores(d.view());
            scores.push(PairScores {
                model: id.to_string(),
                set: set.name.clone(),
                probe: s.to_vec(),
                head: head_margins(stores, id, &set.name)?,
            });
        }
    }
    let lines = plan
        .sets
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.data.examples.iter().map(|e| e.line).collect(),
            )
        })
        .collect();
    Ok(Readouts {
        layer,
        c: cv.c,
        folds: FOLDS,
        cv_accuracy: cv.accuracy,
        lines,
        scores,
    })
}

/// Correct = strictly positive margin (reward-bench's convention: ties count as wrong).
pub fn correct(margins: &[f64]) -> Vec<bool> {
    margins.iter().map(|m| *m > 0.0).collect()
}

/// `pairs.csv`: one row per (set, pair, model) with the probe's logit and the head's margin.
pub fn render_csv(r: &Readouts) -> Vec<u8> {
    let mut o =
        String::from("set,pair,line,model,probe_logit,probe_correct,head_margin,head_correct\n");
    for s in &r.scores {
        let lines = &r.lines[&s.set];
        for (i, p) in s.probe.iter().enumerate() {
            let (h, hc) = match &s.head {
                Some(h) => (format!("{:?}", h[i]), ((h[i] > 0.0) as u8).to_string()),
                None => (String::new(), String::new()),
            };
            o.push_str(&format!(
                "{},{i},{},{},{p:?},{},{h},{hc}\n",
                crate::io::csv_field(&s.set),
                lines[i],
                crate::io::csv_field(&s.model),
                (*p > 0.0) as u8
            ));
        }
    }
    o.into_bytes()
}
