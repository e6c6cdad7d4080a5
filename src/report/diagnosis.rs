//! Numbers → sentences. The rules, in order (thresholds are [`Rules`] fields):
//!
//! 1. **Drift, measured, not thresholded.** For each student, on the diagnosis field (`diff`
//!    when the stores hold pairs, else the first field), a layer *drifted* when its change from
//!    the base is measurable: its drift 1 − linear CKA is above zero and above the numerical
//!    floor (when a `validate` run gives one) and, when bootstrap intervals exist, the
//!    interval's upper end is below 1 (the base's own level). No fixed CKA cut-off enters:
//!    how far each student moved is reported as magnitudes (the largest drift and its layer,
//!    the median over layers), and drifted layers as contiguous ranges.
//! 2. **Transfer where it drifted.** With probe results for the base (`base_model`) and the
//!    student, the change (student − base, in points) of the mean target-probe accuracy and of
//!    the source (in-distribution) accuracy, averaged over the drifted layers with each layer
//!    weighted by its drift — the layers that moved most count most.
//! 3. **Does drift explain the transfer loss?** Spearman's ρ between per-layer drift (1 − CKA)
//!    and per-layer transfer loss (base − student target accuracy) over all layers with both,
//!    with a two-sided permutation p-value (10,000 seeded permutations). ρ > 0 with p < `alpha`
//!    (0.05) reads "drift coincides with transfer loss"; otherwise the report says the data do
//!    not support that conclusion. Fewer than 5 layers: no test.
//! 4. **Anchor candidates.** Layers ranked by (1 − CKA of the student) × max(0, base target
//!    accuracy − 0.5): where the base's preference direction transfers and the student moved
//!    away most. A heuristic shortlist, not a validated recommendation.

use serde::{Deserialize, Serialize};

/// Settings of the diagnosis rules (a significance level and test sizes; no point threshold
/// on any measure).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rules {
    pub alpha: f64,
    pub permutations: usize,
    pub min_layers: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            permutations: 10_000,
            min_layers: 5,
        }
    }
}

pub use crate::stats::{spearman, Spearman};

/// Contiguous ranges of sorted layers, e.g. `[18, 19, 20, 25]` → "18–20, 25".
pub fn ranges(layers: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let mut j = i;
        while j + 1 < layers.len() && layers[j + 1] == layers[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            layers[i].to_string()
        } else {
            format!("{}–{}", layers[i], layers[j])
        });
        i = j + 1;
    }
    out.join(", ")
}
