//! What `repdrift recommend` writes (`recommend.json`): each layer's score, the proposal, the
//! trained candidates of `--validate`. Below the ranking and its renderers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Scores of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    pub layer: usize,
    pub linear_cka: Option<f64>,
    /// 1 − linear CKA.
    pub drift: f64,
    /// The base's mean target-probe accuracy.
    pub base_target_accuracy: Option<f64>,
    pub score: f64,
    /// The anchor distance (normalised MSE) the student reached at this layer.
    pub anchor_distance: Option<f64>,
    /// The calibrated λ.
    pub lambda: Option<f64>,
}

/// An anchor configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub label: String,
    pub layers: Vec<usize>,
    pub weights: Vec<f64>,
}

/// One trained candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub proposal: Proposal,
    /// Accuracy on the source test split (`source_test`) and each target.
    pub accuracy: BTreeMap<String, f64>,
    pub mean_target: f64,
    /// In-distribution gain over the weak teacher (points), OOD gain, Net Transfer Score.
    pub idg: f64,
    pub aog: f64,
    pub nts: f64,
    pub pareto: bool,
}

/// `--validate`'s outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub trainable: String,
    pub epochs: usize,
    pub lr: f64,
    pub seed: u64,
    /// The weak teacher's accuracies.
    pub weak: BTreeMap<String, f64>,
    pub candidates: Vec<Candidate>,
    /// Whether the recommended configuration lies on the Pareto front.
    pub recommended_on_front: bool,
    /// Whether it has the best NTS of the grid.
    pub recommended_best_nts: bool,
    pub verdict: String,
}

/// `recommend.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub format: String,
    pub version: u32,
    pub student: String,
    pub base_model: String,
    pub budget: usize,
    pub fraction: f64,
    pub bt_loss_reference: f64,
    /// The layers the next run can anchor (computed by its trainable blocks).
    pub eligible: (usize, usize),
    pub scores: Vec<LayerScore>,
    pub proposal: Proposal,
    pub notes: Vec<String>,
    pub validation: Option<Validation>,
}
