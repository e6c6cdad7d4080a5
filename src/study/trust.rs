//! The study's "Can these numbers be trusted?": its drift figures beside the base's
//! `repdrift validate` run (numerical floor, chance level).

use super::run::RunResult;
use crate::report::trust::ValidateSummary;

/// The study's drift figures against `repdrift validate`'s numerical floor and chance level:
/// how many trained-layer drift values are at or below the floor (no measurable change), and
/// how the lowest CKA of any run compares with linear CKA's chance level.
pub fn trust_lines(runs: &[RunResult], v: Option<&ValidateSummary>) -> Vec<String> {
    let Some(v) = v else {
        return vec!["No `repdrift validate` run was given (`study --validate`): the drift figures have no numerical floor or chance level beside them.".into()];
    };
    let mut out = vec![if v.failed.is_empty() {
        format!(
            "`repdrift validate` of the base ({}): all {} pass/fail checks pass.",
            v.path, v.counted
        )
    } else {
        format!(
            "`repdrift validate` of the base ({}): {} of {} checks FAIL ({}).",
            v.path,
            v.failed.len(),
            v.counted,
            v.failed.join("; ")
        )
    }];
    let trained: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.drift.iter())
        .filter(|d| !d.frozen)
        .filter_map(|d| d.linear_cka.map(|c| 1.0 - c))
        .collect();
    let frozen_nonzero = runs
        .iter()
        .flat_map(|r| r.drift.iter())
        .filter(|d| d.frozen && d.linear_cka.is_some_and(|c| c != 1.0))
        .count();
    if let Some(f) = v.floor_linear_cka {
        let quiet = trained.iter().filter(|&&d| d <= f).count();
        out.push(format!(
            "Numerical floor 1 − CKA ≤ {f:.1e}: {quiet} of the {} drift values of trained layers (runs × layers × sets) are at or below it; frozen layers are the base's bit for bit ({} of them show any drift).",
            trained.len(),
            frozen_nonzero
        ));
    }
    if let (Some(c), Some(min)) = (
        v.chance_linear_cka,
        trained.iter().copied().fold(None, |a: Option<f64>, d| {
            Some(a.map_or(d, |a: f64| a.max(d)))
        }),
    ) {
        out.push(format!(
            "Chance level: linear CKA between unrelated examples of the base is {c:.2} (mean over layers, n = {}); the lowest CKA of any trained layer in any run is {:.3}, {}.",
            v.chance_n,
            1.0 - min,
            if 1.0 - min > c {
                "above it: no run's representation is replaced wholesale"
            } else {
                "at or below it: some layer is no more like the base than chance"
            }
        ));
    }
    out
}
