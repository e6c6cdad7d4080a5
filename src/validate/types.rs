//! The parameters and the result of `repdrift validate`: what a run was asked (`ValidateParams`,
//! checked once into `ValidValidateParams`) and what it found (`ValidateReport`, written as
//! `validate.json` and read back by `report --validate`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checks::{InvarianceRow, NullRow};
use crate::capture::Pooling;
use crate::error::{Error, Result};

/// The value of `validate.json`'s `format`.
pub const VALIDATE_FORMAT: &str = "repdrift-validate";

/// Validate parameters as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateParams {
    pub pooling: Pooling,
    pub max_tokens: Option<usize>,
    pub batch_size: usize,
    /// Permutations for the null check.
    pub permutations: usize,
    /// Random subsets per size in the sample-size check.
    pub bootstrap: usize,
    /// Relative noise strengths of the planted drift, ascending.
    pub strengths: Vec<f64>,
    /// Blocks to plant drift in (empty: three, at a quarter, half and three quarters depth).
    pub blocks: Vec<usize>,
    /// Train two students for the layer-matching check (Llama family only).
    pub students: bool,
    /// Trainable top blocks of those students.
    pub student_blocks: usize,
    pub knn_k: usize,
    pub seed: u64,
}

impl Default for ValidateParams {
    fn default() -> Self {
        Self {
            pooling: Pooling::Last,
            max_tokens: Some(128),
            batch_size: 8,
            permutations: 2000,
            bootstrap: 100,
            strengths: vec![0.001, 0.01, 0.1, 1.0],
            blocks: Vec::new(),
            students: true,
            student_blocks: 8,
            knn_k: 10,
            seed: 0,
        }
    }
}

/// Checked parameters.
#[derive(Debug, Clone)]
pub struct ValidValidateParams(ValidateParams);

impl std::ops::Deref for ValidValidateParams {
    type Target = ValidateParams;
    fn deref(&self) -> &ValidateParams {
        &self.0
    }
}

impl ValidateParams {
    pub fn check(self) -> Result<ValidValidateParams> {
        if self.batch_size < 2 {
            return Err(Error::param(
                "batch-size",
                "must be at least 2 (the numerical-floor check compares it with batch size 1)",
            ));
        }
        if self.strengths.is_empty()
            || self.strengths.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self.strengths.windows(2).any(|w| w[1] <= w[0])
        {
            return Err(Error::param(
                "strengths",
                format!(
                    "need positive, strictly ascending strengths, got {:?}",
                    self.strengths
                ),
            ));
        }
        if self.permutations < 100 {
            return Err(Error::param("permutations", "use at least 100"));
        }
        if self.bootstrap < 10 {
            return Err(Error::param("bootstrap", "use at least 10 replicates"));
        }
        if self.knn_k == 0 {
            return Err(Error::param("knn-k", "must be at least 1"));
        }
        Ok(ValidValidateParams(self))
    }
}

/// Pass, fail, or a figure shown for information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Info,
    Skipped,
}

impl Status {
    pub fn of(pass: bool) -> Self {
        if pass {
            Status::Pass
        } else {
            Status::Fail
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Info => "info",
            Status::Skipped => "skipped",
        }
    }
}

/// One check's line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub section: String,
    pub name: String,
    pub figure: String,
    pub status: Status,
}

/// The numerical floor: the largest deviation of each measure over layers between two
/// captures of the same model that differ only in batch size ([`MEASURES`](super::MEASURES) order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    pub deviation: [Option<f64>; 5],
    /// The largest absolute difference of any activation value.
    pub max_abs_diff: f64,
}

/// Deviations of one planted model at one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlantedRow {
    pub block: usize,
    pub strength: f64,
    pub layer: usize,
    /// Largest absolute activation difference from the base at this layer.
    pub max_abs_diff: f64,
    pub deviation: [Option<f64>; 5],
}

/// Per (block, measure): the smallest strength flagged at layer block + 1, and dose–response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SensitivityRow {
    pub block: usize,
    pub measure: String,
    pub smallest_flagged: Option<f64>,
    pub monotone_next: bool,
    pub monotone_last: bool,
}

/// The layer-matching check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMatching {
    /// Why the student part was skipped, if it was.
    pub skipped: Option<String>,
    pub accuracy_all: Option<f64>,
    pub accuracy_trained: Option<f64>,
    /// The layers the students' training changed.
    pub trained_layers: Vec<usize>,
    pub base_monotone_share: Option<f64>,
    pub base_neighbour_share: Option<f64>,
    /// Of two layers on the same side of i, the share where the nearer is the more similar.
    pub base_order_agreement: Option<f64>,
}

/// The shuffled-label probe check at one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeCheck {
    pub layer: usize,
    pub n: usize,
    /// Cross-validated accuracy on the real labels (C chosen by CV) and the chosen C.
    pub accuracy: f64,
    pub c: f64,
    /// Cross-validated accuracy with shuffled orientations, C fixed at 1 (no selection).
    pub control_accuracy: f64,
    pub band_lo: f64,
    pub band_hi: f64,
}

/// Bootstrap spread at sample size m.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRow {
    pub m: usize,
    pub d: usize,
    pub sd_linear_cka: Option<f64>,
    pub sd_debiased_cka: Option<f64>,
    pub sd_procrustes: Option<f64>,
}

/// `validate.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateReport {
    pub format: String,
    pub version: u32,
    pub repdrift_version: String,
    pub model: PathBuf,
    pub architecture: String,
    pub weights_sha256: String,
    pub n_layers: usize,
    pub hidden_size: usize,
    pub data: PathBuf,
    pub data_sha256: String,
    pub n_examples: usize,
    pub params: ValidateParams,
    pub checks: Vec<Check>,
    pub noise_floor: NoiseFloor,
    pub invariances: Vec<InvarianceRow>,
    pub null: Vec<NullRow>,
    pub planted: Vec<PlantedRow>,
    pub sensitivity: Vec<SensitivityRow>,
    pub layer_matching: LayerMatching,
    pub probes: Vec<ProbeCheck>,
    pub sample_size: Vec<SampleRow>,
    pub seconds: f64,
}

impl ValidateReport {
    /// Whether every pass/fail check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
    /// The number of failed checks.
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }
}

/// `validate.json`.
pub fn render_json(r: &ValidateReport) -> Vec<u8> {
    crate::io::json_bytes(r)
}

/// Read a `validate.json` (for `report --validate`).
pub fn read_report(path: &Path) -> Result<ValidateReport> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let r: ValidateReport = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        cause: e,
    })?;
    if r.format != VALIDATE_FORMAT {
        return Err(Error::param(
            "validate",
            format!(
                "{}: format `{}` is not `{VALIDATE_FORMAT}`",
                path.display(),
                r.format
            ),
        ));
    }
    Ok(r)
}
