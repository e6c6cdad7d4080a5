//! What `repdrift compare` writes (`metrics.json`): a row per (student, hook, layer, field),
//! the stores compared, and the accumulators a sharded run leaves; shared by the comparison,
//! its shards and its renderers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::bootstrap::Intervals;
use super::cross_layer::CrossLayer;
use super::permutation::NullBands;
use super::{MetricError, Nullable, PairAccumulator, PairMetrics, Precision};
use crate::error::Error;
use crate::hook::HookPoint;
use crate::store::Store;

/// The value of `metrics.json`'s `format`.
pub const METRICS_FORMAT: &str = "repdrift-metrics";

/// One output row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub student: String,
    pub hook: HookPoint,
    pub layer: usize,
    pub field: String,
    pub n: usize,
    pub linear_cka: Option<f64>,
    pub debiased_cka: Option<f64>,
    pub cosine_distance: Option<f64>,
    pub cosine_distance_std: Option<f64>,
    pub procrustes_distance: Option<f64>,
    pub norm_ratio: Option<f64>,
    pub knn_overlap: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ci: Option<Intervals>,
    /// Permutation nulls (`--permutations`): each measure's chance band and p-value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub null: Option<NullBands>,
    /// Why a null measure is null.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub null_reasons: BTreeMap<String, String>,
}

/// A store as recorded in the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub name: String,
    pub path: PathBuf,
    pub model_sha256: String,
    pub dataset_sha256: String,
    pub n_examples: usize,
    /// The activations' width (absent in files from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
}

/// `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    pub format: String,
    pub version: u32,
    pub repdrift_version: String,
    pub base: StoreRecord,
    pub students: Vec<StoreRecord>,
    pub hook: HookPoint,
    pub bootstrap: usize,
    /// Replicates behind linear CKA's example-space interval (`--cka-bootstrap`; 0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cka_bootstrap: usize,
    #[serde(default)]
    pub permutations: usize,
    pub seed: u64,
    pub knn_k: usize,
    pub merged_shards: Option<usize>,
    /// The precision of the products (absent: `f64`).
    #[serde(default, skip_serializing_if = "Precision::is_f64")]
    pub precision: Precision,
    pub rows: Vec<MetricRow>,
    #[serde(skip)]
    pub cross_layer: Vec<CrossLayer>,
}

impl StoreRecord {
    /// The record of store `s` under `name`.
    pub fn of(name: &str, s: &Store) -> Self {
        let m = s.manifest();
        Self {
            name: name.to_string(),
            path: s.dir().to_path_buf(),
            model_sha256: m.model.sha256.clone(),
            dataset_sha256: m.dataset.sha256.clone(),
            n_examples: m.n_examples(),
            hidden_size: Some(m.model.hidden_size),
        }
    }
}

/// Accumulators of one comparison: `(student, layer, field)` → accumulator.
pub type AccKey = (String, usize, String);

/// The result of [`super::compare::compare`]: the report (empty rows in shard mode) and the accumulators.
pub struct Comparison {
    pub report: MetricsReport,
    /// In computation order (student, layer, field as requested).
    pub accumulators: Vec<(AccKey, PairAccumulator)>,
    pub shard: Option<(usize, usize)>,
}

/// A row from finalised measures; each null measure's reason kept.
pub(super) fn metric_row(
    student: &str,
    hook: HookPoint,
    layer: usize,
    field: &str,
    m: PairMetrics,
) -> MetricRow {
    let mut reasons = BTreeMap::new();
    let mut take = |name: &str, v: Nullable| {
        if let Some(r) = v.reason {
            reasons.insert(name.to_string(), r);
        }
        v.value
    };
    MetricRow {
        student: student.to_string(),
        hook,
        layer,
        field: field.to_string(),
        n: m.n,
        linear_cka: take("linear_cka", m.linear_cka),
        debiased_cka: take("debiased_cka", m.debiased_cka),
        cosine_distance: take("cosine_distance", m.cosine_distance),
        cosine_distance_std: take("cosine_distance_std", m.cosine_distance_std),
        procrustes_distance: take("procrustes_distance", m.procrustes_distance),
        norm_ratio: take("norm_ratio", m.norm_ratio),
        knn_overlap: None,
        ci: None,
        null: None,
        null_reasons: reasons,
    }
}

/// A metric error named by what was being computed.
pub(super) fn metric_err(what: String) -> impl FnOnce(MetricError) -> Error {
    move |source| Error::Metric {
        what,
        cause: source,
    }
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}
