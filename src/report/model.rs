//! The report model (`report.json`): the series, the findings, the trust section and the
//! sections callers add. Built by [`super::build`], rendered by `render` and `plots`.

use serde::{Deserialize, Serialize};

use super::diagnosis::{Rules, Spearman};
use super::series::{ProbeSeries, StudentSeries};
use super::trust;
use crate::metrics::compare::CrossLayer;
use crate::probe::transfer::TransferReport;

/// A section a caller puts at the top of the report: a title, paragraphs, a table (cells are
/// plain text, escaped by the renderers) and notes under it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadSection {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

/// What the diagnosis says about one student.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub student: String,
    pub drifted_layers: Vec<usize>,
    pub sentences: Vec<String>,
    pub spearman: Option<Spearman>,
    /// (layer, score) best first.
    pub anchor_candidates: Vec<(usize, f64)>,
}

/// The report model (also written as `report.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    pub repdrift_version: String,
    pub rules: Rules,
    pub inputs: Vec<(String, String, String)>,
    pub students: Vec<StudentSeries>,
    pub probes: Vec<ProbeSeries>,
    pub cross_layer: Vec<CrossLayer>,
    pub transfer: Option<TransferReport>,
    pub findings: Vec<Finding>,
    pub base_model: String,
    /// (model, dataset, accuracy, n): reward models' own pairwise accuracy (their score head).
    #[serde(default)]
    pub reward_models: Vec<(String, String, f64, usize)>,
    /// The anchor recommendation and its validation by training (`repdrift recommend`).
    #[serde(default)]
    pub recommendation: Option<crate::recommend::Recommendation>,
    /// Paragraphs under the title.
    #[serde(default)]
    pub context: Vec<String>,
    /// Sections before the drift sections (absent when empty, so other reports keep their
    /// bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lead: Vec<LeadSection>,
    /// "Can these numbers be trusted?"
    #[serde(default)]
    pub trust: trust::Trust,
    /// "What else did the students learn?": cue sensitivity and value bias.
    #[serde(default)]
    pub bias: Option<crate::bias::summary::BiasSection>,
}
