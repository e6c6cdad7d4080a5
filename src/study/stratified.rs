//! Drift against transfer within strata (one regime and one method each, the gold variant left
//! out): a correlation that differences between methods or regimes cannot make. Ranks are
//! taken within each stratum and centred on the stratum's mean rank; the statistic is the
//! Pearson correlation of the pooled centred ranks (a within-stratum Spearman ρ, strata
//! weighted by their size), and its null permutes the transfer changes within each stratum.
//! At the layer fixed before looking (the last drift layer, the one a reward head reads) the
//! p-value is that permutation's; for the best layer after looking it is against the null of
//! the largest |ρ| over all layers under the same permutations.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::stats::ranks;

/// One run as the test sees it.
#[derive(Debug, Clone, Copy)]
pub struct RunDrift<'a> {
    pub regime: &'a str,
    pub method: &'a str,
    /// layer → drift (1 − linear CKA, mean over targets).
    pub drift: &'a BTreeMap<usize, f64>,
    /// Mean target accuracy minus the base probe's (points).
    pub transfer_change: f64,
}

/// Fewest runs a stratum needs to count.
const MIN_STRATUM: usize = 3;

/// The within-stratum correlation of drift with the transfer change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stratified {
    /// Runs in the strata that count, and how many strata.
    pub n: usize,
    pub strata: usize,
    pub permutations: usize,
    /// The layer fixed before looking, ρ there and its permutation p (two-sided).
    pub layer: usize,
    pub rho: Option<f64>,
    pub p: Option<f64>,
    /// The layer with the largest |ρ| after looking, its ρ and its p against the largest |ρ|
    /// over layers under the null.
    pub best_layer: Option<usize>,
    pub best_rho: Option<f64>,
    pub best_p: Option<f64>,
}

/// Centred within-stratum ranks of `v`, `groups` giving each stratum's indices.
fn centred_ranks(v: &[f64], groups: &[Vec<usize>]) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for g in groups {
        let vals: Vec<f64> = g.iter().map(|&i| v[i]).collect();
        let r = ranks(&vals);
        let mid = (g.len() as f64 + 1.0) / 2.0;
        for (k, &i) in g.iter().enumerate() {
            out[i] = r[k] - mid;
        }
    }
    out
}

/// Σ a·b / √(Σ a² · Σ b²) of centred values; `None` when either has no spread.
fn centred_corr(a: &[f64], b: &[f64]) -> Option<f64> {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    (aa > 0.0 && bb > 0.0).then(|| ab / (aa * bb).sqrt())
}

/// The within-stratum ρ of `drift` with `transfer` (indices grouped by `groups`).
pub fn within_rho(drift: &[f64], transfer: &[f64], groups: &[Vec<usize>]) -> Option<f64> {
    centred_corr(
        &centred_ranks(drift, groups),
        &centred_ranks(transfer, groups),
    )
}

/// Drift against transfer within regime × method over the study's runs (gold left out).
pub fn stratified(points: &[RunDrift<'_>], permutations: usize, seed: u64) -> Option<Stratified> {
    let layers: Vec<usize> = {
        let mut l: Vec<usize> = points
            .iter()
            .flat_map(|p| p.drift.keys().copied())
            .collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    let fixed = *layers.last()?;
    // Runs with drift at every layer, by stratum (BTreeMap: a stable order).
    let mut by: BTreeMap<(&str, &str), Vec<&RunDrift<'_>>> = BTreeMap::new();
    for p in points {
        if p.method != "gold" && layers.iter().all(|l| p.drift.contains_key(l)) {
            by.entry((p.regime, p.method)).or_default().push(p);
        }
    }
    // The runs of the strata that count, in order, and each stratum's indices into them.
    let (mut kept, mut groups): (Vec<&RunDrift<'_>>, Vec<Vec<usize>>) = (Vec::new(), Vec::new());
    for g in by.values().filter(|g| g.len() >= MIN_STRATUM) {
        groups.push((kept.len()..kept.len() + g.len()).collect());
        kept.extend(g);
    }
    if groups.is_empty() {
        return None;
    }
    let transfer: Vec<f64> = kept.iter().map(|p| p.transfer_change).collect();
    let drift: Vec<Vec<f64>> = layers
        .iter()
        .map(|l| kept.iter().map(|p| p.drift[l]).collect())
        .collect();
    let rx: Vec<Vec<f64>> = drift.iter().map(|d| centred_ranks(d, &groups)).collect();
    let ry = centred_ranks(&transfer, &groups);
    let rho: Vec<Option<f64>> = rx.iter().map(|r| centred_corr(r, &ry)).collect();
    let fixed_i = layers.len() - 1;
    let abs = |r: &Option<f64>| r.map_or(0.0, f64::abs);
    let best_i = (0..layers.len())
        .filter(|&i| rho[i].is_some())
        .max_by(|&a, &b| abs(&rho[a]).total_cmp(&abs(&rho[b])));
    let max_obs = best_i.map(|i| abs(&rho[i]));
    // Permute the transfer changes within each stratum; the same permutation serves every
    // layer, so the largest |ρ| over layers has its own null.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut perm = ry.clone();
    let (mut hit_fixed, mut hit_max) = (0usize, 0usize);
    for _ in 0..permutations {
        for g in &groups {
            let mut vals: Vec<f64> = g.iter().map(|&i| ry[i]).collect();
            vals.shuffle(&mut rng);
            for (k, &i) in g.iter().enumerate() {
                perm[i] = vals[k];
            }
        }
        let rs: Vec<f64> = rx
            .iter()
            .map(|r| centred_corr(r, &perm).map_or(0.0, f64::abs))
            .collect();
        if rho[fixed_i].is_some_and(|r| rs[fixed_i] >= r.abs() - 1e-12) {
            hit_fixed += 1;
        }
        if max_obs.is_some_and(|m| rs.iter().cloned().fold(0.0, f64::max) >= m - 1e-12) {
            hit_max += 1;
        }
    }
    let p = |hits: usize| (hits + 1) as f64 / (permutations + 1) as f64;
    Some(Stratified {
        n: kept.len(),
        strata: groups.len(),
        permutations,
        layer: fixed,
        rho: rho[fixed_i],
        p: rho[fixed_i].map(|_| p(hit_fixed)),
        best_layer: best_i.map(|i| layers[i]),
        best_rho: best_i.and_then(|i| rho[i]),
        best_p: best_i.map(|_| p(hit_max)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truth, by hand: stratum A x = [1, 2, 3], y = [1, 3, 2] → centred ranks [−1, 0, 1] and
    /// [−1, 1, 0], Σ xy = 1; stratum B x = [1, 2, 3], y = [3, 2, 1] → [−1, 0, 1] and
    /// [1, 0, −1], Σ xy = −2. Σ x² = Σ y² = 4, so ρ = (1 − 2) / 4 = −0.25.
    #[test]
    fn within_rho_equals_the_hand_computed_value() {
        let drift = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let transfer = [1.0, 3.0, 2.0, 30.0, 20.0, 10.0];
        let groups = vec![vec![0, 1, 2], vec![3, 4, 5]];
        let r = within_rho(&drift, &transfer, &groups).unwrap();
        assert!((r + 0.25).abs() < 1e-15, "{r}");
    }

    /// (method, drift by layer, transfer change) of one run of regime "r".
    type Owned = (String, BTreeMap<usize, f64>, f64);

    fn point(method: &str, drift: &[(usize, f64)], transfer: f64) -> Owned {
        (method.into(), drift.iter().copied().collect(), transfer)
    }

    fn view(pts: &[Owned]) -> Vec<RunDrift<'_>> {
        pts.iter()
            .map(|(m, d, t)| RunDrift {
                regime: "r",
                method: m,
                drift: d,
                transfer_change: *t,
            })
            .collect()
    }

    /// Within each method drift rises with transfer, while between methods the method that
    /// drifts more transfers worse: plain Spearman over the runs is negative, the
    /// within-stratum ρ is +1 and its permutation p small; gold is left out.
    #[test]
    fn a_between_method_difference_does_not_make_a_within_method_correlation() {
        let mut pts = Vec::new();
        for s in 0..5u64 {
            let t = s as f64;
            pts.push(point(
                "naive",
                &[(29, 0.5), (30, 0.1 + 0.01 * t)],
                -20.0 + t,
            ));
            pts.push(point("anchor", &[(29, 0.5), (30, 0.001 + 0.0001 * t)], t));
            // Gold would reverse everything if it counted.
            pts.push(point("gold", &[(29, 0.5), (30, 1.0 - 0.1 * t)], t));
        }
        let kept: Vec<&Owned> = pts.iter().filter(|p| p.0 != "gold").collect();
        let all_d: Vec<f64> = kept.iter().map(|p| p.1[&30]).collect();
        let all_t: Vec<f64> = kept.iter().map(|p| p.2).collect();
        let plain = crate::stats::spearman(&all_d, &all_t, 0, 0).unwrap().rho;
        assert!(plain < 0.0, "{plain}");
        let s = stratified(&view(&pts), 999, 1).unwrap();
        assert_eq!((s.n, s.strata, s.layer), (10, 2, 30));
        assert!((s.rho.unwrap() - 1.0).abs() < 1e-12, "{:?}", s.rho);
        // Two strata of 5: 1 of 120² orderings reaches +1 or its mirror −1 → p ≈ 2/14400.
        assert!(s.p.unwrap() < 0.01, "{:?}", s.p);
        // Layer 29 has no spread: it has no ρ, and the best layer is 30.
        assert_eq!(s.best_layer, Some(30));
        assert!(s.best_p.unwrap() >= s.p.unwrap());
    }

    /// Unrelated drift and transfer: the permutation p is not small (a test that could fail:
    /// the same code gives p < 0.01 above).
    #[test]
    fn unrelated_drift_has_a_large_p() {
        let mut pts = Vec::new();
        let noise = [0.3, 0.9, 0.1, 0.7, 0.5, 0.2, 0.8, 0.4, 0.6, 0.0];
        for i in 0..5 {
            pts.push(point("naive", &[(30, noise[i])], noise[9 - i]));
            pts.push(point("lpft", &[(30, noise[i + 5])], noise[(i * 3) % 10]));
        }
        let s = stratified(&view(&pts), 999, 2).unwrap();
        assert!(s.p.unwrap() > 0.05, "{s:?}");
    }
}
