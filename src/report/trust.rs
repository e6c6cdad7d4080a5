//! "Can these numbers be trusted?": the report's section on noise and chance.
//!
//! Two reference levels frame each student's per-layer drift `1 − linear CKA`:
//!
//! - the **numerical floor** (from `repdrift validate`, [`crate::validate::NoiseFloor`]): the
//!   largest drift the same model shows against itself when only the batching changes. For
//!   paired measures an unchanged model gives exactly the no-change value on any sample, so
//!   drift at or below this floor is no measurable change: it is greyed out and never called
//!   drift by the diagnosis.
//! - the **chance level** (from `compare --permutations`): the drift a student would show if
//!   its rows were shuffled against the base's — a layer whose CKA lies inside this band is
//!   no more like the base than chance.
//!
//! Plus a warning when n < d (linear CKA biased upward, estimates spread) and the validate
//! run's summary when one is given.

use serde::{Deserialize, Serialize};

use super::series::StudentSeries;
use crate::error::Result;
use crate::validate::{Status, ValidateReport};

/// A validate run as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateSummary {
    pub path: String,
    pub model: String,
    pub n_examples: usize,
    pub hidden_size: usize,
    pub passed: usize,
    pub counted: usize,
    /// The failed checks' names.
    pub failed: Vec<String>,
    /// The numerical floor of 1 − linear CKA.
    pub floor_linear_cka: Option<f64>,
    /// Linear CKA's chance level in the null check (mean over layers) and its n.
    #[serde(default)]
    pub chance_linear_cka: Option<f64>,
    #[serde(default)]
    pub chance_n: usize,
}

impl ValidateSummary {
    pub fn of(path: &str, r: &ValidateReport) -> Self {
        let counted = r
            .checks
            .iter()
            .filter(|c| matches!(c.status, Status::Pass | Status::Fail))
            .count();
        Self {
            path: path.to_string(),
            model: r.model.display().to_string(),
            n_examples: r.n_examples,
            hidden_size: r.hidden_size,
            passed: counted - r.failures(),
            counted,
            failed: r
                .checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| format!("{} · {}", c.section, c.name))
                .collect(),
            floor_linear_cka: r.noise_floor.deviation[0],
            chance_linear_cka: {
                let v: Vec<f64> = r.null.iter().filter_map(|n| n.linear_cka).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            },
            chance_n: r.null.first().map_or(0, |n| n.n),
        }
    }
}

/// Read `validate.json` at `path` and check that it validated the model with weights hash
/// `base_sha256` (the base store's).
pub fn summary_for(path: &std::path::Path, base_sha256: &str) -> Result<ValidateSummary> {
    let r = crate::validate::read_report(path)?;
    if r.weights_sha256 != base_sha256 {
        return Err(crate::Error::Incompatible {
            left: path.to_path_buf(),
            right: std::path::PathBuf::from("the base store"),
            reason: format!(
                "validate.json describes the model with weights sha256 {}, the base store was captured from {}",
                r.weights_sha256, base_sha256
            ),
        });
    }
    Ok(ValidateSummary::of(&path.display().to_string(), &r))
}

/// What the trust section says.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trust {
    /// Examples per comparison and the activations' width (when the stores recorded it).
    pub n: Option<usize>,
    pub d: Option<usize>,
    /// Permutations behind the chance bands (0: none computed).
    pub permutations: usize,
    pub validate: Option<ValidateSummary>,
    pub sentences: Vec<String>,
}

/// Whether `drift` (1 − CKA) is at or below the numerical floor.
pub fn inside_floor(drift: f64, floor: Option<f64>) -> bool {
    floor.is_some_and(|f| drift <= f)
}

/// Build the section from the series (with their chance bands) and the validate summary.
pub fn build(
    students: &[StudentSeries],
    n: Option<usize>,
    d: Option<usize>,
    permutations: usize,
    validate: Option<ValidateSummary>,
) -> Trust {
    let mut s = Vec::new();
    let floor = validate.as_ref().and_then(|v| v.floor_linear_cka);
    match &validate {
        Some(v) => {
            s.push(if v.failed.is_empty() {
                format!(
                    "`repdrift validate` ({}, {} examples): all {} pass/fail checks pass — identity and invariances, the null, planted drift (found where it was planted and nowhere before it), layer matching and shuffled-label probes.",
                    v.path, v.n_examples, v.counted
                )
            } else {
                format!(
                    "`repdrift validate` ({}): {} of {} checks FAIL: {}. Read the figures below with that in mind.",
                    v.path,
                    v.failed.len(),
                    v.counted,
                    v.failed.join("; ")
                )
            });
            if let Some(f) = floor {
                s.push(format!(
                    "Numerical floor: the same model captured at two batch sizes differs by 1 − CKA ≤ {f:.1e}; drift at or below it is no measurable change (grey in the drift plot) and is never called drift."
                ));
            }
        }
        None => s.push(
            "No `repdrift validate` run was given (`report --validate`), so no numerical floor is drawn: run it once per model to prove the measures on your data.".into(),
        ),
    }
    for st in students {
        let drift: Vec<(usize, f64)> = st
            .layers
            .iter()
            .zip(&st.linear_cka)
            .filter_map(|(l, c)| c.map(|c| (*l, 1.0 - c)))
            .collect();
        if floor.is_some() {
            let quiet: Vec<usize> = drift
                .iter()
                .filter(|(_, v)| inside_floor(*v, floor))
                .map(|(l, _)| *l)
                .collect();
            s.push(format!(
                "{}: {} of {} layers show no change beyond the numerical floor{}.",
                st.student,
                quiet.len(),
                drift.len(),
                if quiet.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", super::diagnosis::ranges(&quiet))
                }
            ));
        }
        if permutations > 0 {
            let chance: Vec<usize> = st
                .layers
                .iter()
                .zip(st.linear_cka.iter().zip(&st.null_linear))
                .filter_map(|(l, (c, b))| match (c, b) {
                    (Some(c), Some((_, hi))) if *c <= *hi => Some(*l),
                    _ => None,
                })
                .collect();
            let max_p = st
                .p_linear
                .iter()
                .flatten()
                .fold(None, |a: Option<f64>, &p| Some(a.map_or(p, |a| a.max(p))));
            s.push(if chance.is_empty() {
                format!(
                    "{}: at every layer the student's CKA to the base is far above chance (the 97.5th percentile of {permutations} row shuffles; largest permutation p = {}).",
                    st.student,
                    max_p.map_or("n/a".into(), |p| format!("{p:.4}"))
                )
            } else {
                format!(
                    "{}: at layers {} the student's CKA to the base is inside the chance band — there it is no more like the base than a random pairing of examples.",
                    st.student,
                    super::diagnosis::ranges(&chance)
                )
            });
        }
    }
    if permutations == 0 {
        s.push("No chance bands were computed (`compare --permutations N`).".into());
    }
    if let (Some(n), Some(d)) = (n, d) {
        if n < d {
            s.push(format!(
                "n = {n} examples is below the width d = {d}: linear CKA is biased upward at this size (its chance level is far above 0; debiased CKA corrects it) and every estimate spreads more than with n ≫ d. Treat differences of a few thousandths as unresolved."
            ));
        }
    }
    Trust {
        n,
        d,
        permutations,
        validate,
        sentences: s,
    }
}
