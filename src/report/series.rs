//! Per-layer series the report is drawn from: each student's drift measures and each model's
//! probe accuracies. Below the report model, its trust section and its plots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Per-layer numbers of one student on the diagnosis field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudentSeries {
    pub student: String,
    pub field: String,
    pub layers: Vec<usize>,
    pub linear_cka: Vec<Option<f64>>,
    pub debiased_cka: Vec<Option<f64>>,
    pub ci_linear: Vec<Option<(f64, f64)>>,
    pub cosine_distance: Vec<Option<f64>>,
    pub norm_ratio: Vec<Option<f64>>,
    /// Linear CKA's permutation chance band per layer (`compare --permutations`).
    #[serde(default)]
    pub null_linear: Vec<Option<(f64, f64)>>,
    /// Linear CKA's permutation p-value per layer.
    #[serde(default)]
    pub p_linear: Vec<Option<f64>>,
}

/// Per-layer probe accuracies of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeSeries {
    pub model: String,
    pub layers: Vec<usize>,
    pub in_dist: Vec<Option<f64>>,
    /// target name → accuracies.
    pub targets: BTreeMap<String, Vec<Option<f64>>>,
    pub control: Vec<Option<f64>>,
    /// `train` label → accuracies of cross-model rows scored on this model.
    pub cross_model: BTreeMap<String, Vec<Option<f64>>>,
    /// Layers where the model's chosen and rejected features are identical for every
    /// training pair (the accuracies there are left out: `None`, shown "n/a (tied)").
    #[serde(default)]
    pub tied: Vec<bool>,
}

impl ProbeSeries {
    /// Mean target accuracy at layer index `i`.
    pub fn mean_target(&self, i: usize) -> Option<f64> {
        let v: Vec<f64> = self.targets.values().filter_map(|t| t[i]).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}
