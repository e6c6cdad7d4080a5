//! Tests on per-pair results. The uncertainty a user of one reward model has is which pairs
//! were sampled: two readouts scored on the same pairs (a student's head and the base's probe,
//! say) give, per pair, "correct" or not for each, and every function here is a function of
//! those booleans — with seeds, one vector per seed, all seeds scored on the same pairs.
//!
//! - [`mcnemar_exact`]: the exact (binomial) McNemar test on the discordant pairs;
//! - [`bootstrap_difference`]: the percentile bootstrap of the accuracy difference, over pairs
//!   and, with several seeds, over seeds too (a two-way resample: seeds with replacement, and
//!   one resample of the pairs shared by every seed, because every seed is scored on the same
//!   pairs — resampling pairs independently within each seed would average the pairs' own
//!   noise away and give intervals that are too narrow);
//! - [`detectable_difference`]: the smallest difference a test at level α detects with the
//!   given power at n pairs (normal approximation to McNemar, Connor 1987);
//! - [`holm`]: Holm's step-down adjustment across a family of tests;
//! - [`normal_quantile`]: Φ⁻¹ (Acklam's rational approximation, relative error < 1.2e-9).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Per-pair agreement of two readouts `a` and `b` on the same `n` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discordance {
    pub n: usize,
    /// Pairs `a` gets right and `b` wrong.
    pub a_only: usize,
    /// Pairs `b` gets right and `a` wrong.
    pub b_only: usize,
}

impl Discordance {
    /// Count the discordant pairs of two equally long outcome vectors.
    pub fn of(a: &[bool], b: &[bool]) -> Self {
        assert_eq!(a.len(), b.len(), "paired outcomes of equal length");
        let a_only = a.iter().zip(b).filter(|(x, y)| **x && !**y).count();
        let b_only = a.iter().zip(b).filter(|(x, y)| !**x && **y).count();
        Self {
            n: a.len(),
            a_only,
            b_only,
        }
    }

    /// accuracy(a) − accuracy(b), as a fraction; 0 for n = 0.
    pub fn difference(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        (self.a_only as f64 - self.b_only as f64) / self.n as f64
    }

    /// The fraction of pairs on which the two disagree.
    pub fn discordant_fraction(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        (self.a_only + self.b_only) as f64 / self.n as f64
    }
}

/// P(X ≤ k) for X ~ Binomial(n, ½), summed in log space (exact to rounding for any n).
pub fn binomial_half_cdf(k: usize, n: usize) -> f64 {
    if k >= n {
        return 1.0;
    }
    let ln2 = std::f64::consts::LN_2;
    // ln C(n, j), built up term by term.
    let mut ln_c = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for j in 0..=k {
        if j > 0 {
            ln_c += ((n - j + 1) as f64).ln() - (j as f64).ln();
        }
        terms.push(ln_c - n as f64 * ln2);
    }
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln())
        .exp()
        .min(1.0)
}

/// The exact two-sided McNemar p-value for `a_only` and `b_only` discordant pairs:
/// min(1, 2 · P(X ≤ min(a_only, b_only))), X ~ Binomial(a_only + b_only, ½). 1 when there is
/// no discordant pair (the two readouts agree on every pair: no evidence either way).
pub fn mcnemar_exact(a_only: usize, b_only: usize) -> f64 {
    let m = a_only + b_only;
    if m == 0 {
        return 1.0;
    }
    (2.0 * binomial_half_cdf(a_only.min(b_only), m)).min(1.0)
}

/// Φ⁻¹(p) for 0 < p < 1 (Acklam's algorithm; relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    assert!(
        p > 0.0 && p < 1.0,
        "normal_quantile needs 0 < p < 1, got {p}"
    );
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The smallest accuracy difference (as a fraction) that a two-sided paired test at level
/// `alpha` detects with probability `power` on `n` pairs, when the two readouts disagree on a
/// fraction `discordant` of them: (z₁₋α/₂ + z_power) · √(max(discordant, δ) / n). A difference
/// δ needs at least δ discordance, so the answer is never below (z₁₋α/₂ + z_power)² / n.
/// None for n = 0.
pub fn detectable_difference(n: usize, discordant: f64, alpha: f64, power: f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power);
    let n = n as f64;
    let floor = z * z / n;
    Some((z * (discordant / n).sqrt()).max(floor).min(1.0))
}

/// Holm's step-down adjustment of a family of p-values (same order as given): the i-th
/// smallest becomes max over j ≤ i of min(1, (m − j + 1) · p₍ⱼ₎).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// A bootstrap interval of a difference and its two-sided bootstrap p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapDifference {
    /// Percentile interval (fractions).
    pub lo: f64,
    pub hi: f64,
    /// 2 · min(share of resamples ≤ 0, share ≥ 0), at most 1.
    pub p: f64,
    pub resamples: usize,
}

/// Percentile bootstrap of mean(a) − mean(b) at confidence `level`, from per-pair differences
/// `d[s][i]` = a − b ∈ {−1, 0, 1} of seed s on pair i. One seed: the paired bootstrap over
/// pairs. Several seeds: each resample draws the seeds with replacement and one set of pair
/// indices used for every drawn seed (the seeds share their pairs; see the module docs).
/// None when there is no pair, or the seeds differ in their number of pairs.
pub fn bootstrap_difference(
    d: &[Vec<i8>],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<BootstrapDifference> {
    bootstrap_mean_over_sets(&[d], resamples, level, seed)
}

/// The same bootstrap for a mean over several data sets (a student's mean over its targets):
/// `d[t][s][i]` is the difference of seed s on pair i of set t. Every set has the same seeds (a
/// seed's students are scored on every set) and its own pairs. Each resample draws the seeds
/// with replacement once, shared by every set, then for each set one set of its pair indices
/// used for every drawn seed; the statistic is the mean over sets of each set's mean
/// difference, every set weighing the same. With one set it is [`bootstrap_difference`], draw
/// for draw. None when a set has no seed or no pair, or the sets differ in their number of
/// seeds, or a set's seeds differ in their number of pairs.
pub fn bootstrap_mean_over_sets(
    d: &[&[Vec<i8>]],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<BootstrapDifference> {
    let s = d.first()?.len();
    let ragged =
        |set: &[Vec<i8>]| set.len() != s || set.iter().any(|row| row.len() != set[0].len());
    if s == 0 || resamples == 0 || d.iter().any(|set| ragged(set) || set[0].is_empty()) {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means = Vec::with_capacity(resamples);
    let mut seeds = vec![0usize; s];
    let mut pairs: Vec<Vec<usize>> = d.iter().map(|set| vec![0usize; set[0].len()]).collect();
    for _ in 0..resamples {
        if s > 1 {
            seeds.iter_mut().for_each(|k| *k = rng.random_range(0..s));
        }
        let mut sum = 0.0;
        for (set, idx) in d.iter().zip(pairs.iter_mut()) {
            let n = idx.len();
            idx.iter_mut().for_each(|i| *i = rng.random_range(0..n));
            let mut total = 0i64;
            for &k in &seeds {
                let row = &set[k];
                total += idx.iter().map(|&i| row[i] as i64).sum::<i64>();
            }
            sum += total as f64 / (s * n) as f64;
        }
        means.push(sum / d.len() as f64);
    }
    means.sort_by(f64::total_cmp);
    let q = |f: f64| {
        let pos = f * (resamples - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        let j = (i + 1).min(resamples - 1);
        means[i] + frac * (means[j] - means[i])
    };
    let tail = (1.0 - level) / 2.0;
    let le = means.iter().filter(|m| **m <= 0.0).count() as f64 / resamples as f64;
    let ge = means.iter().filter(|m| **m >= 0.0).count() as f64 / resamples as f64;
    Some(BootstrapDifference {
        lo: q(tail),
        hi: q(1.0 - tail),
        p: (2.0 * le.min(ge)).min(1.0),
        resamples,
    })
}

/// Per-pair differences a − b as −1, 0, 1.
pub fn differences(a: &[bool], b: &[bool]) -> Vec<i8> {
    a.iter().zip(b).map(|(x, y)| *x as i8 - *y as i8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truth: the binomial probabilities written out by hand — C(n, j) / 2ⁿ summed in the test
    /// itself with integer binomial coefficients (exact for n ≤ 60 in u128).
    fn binom_sum(k: usize, n: usize) -> f64 {
        let mut c: u128 = 1; // C(n, 0)
        let mut s: u128 = 0;
        for j in 0..=k {
            if j > 0 {
                c = c * (n - j + 1) as u128 / j as u128;
            }
            s += c;
        }
        s as f64 / 2f64.powi(n as i32)
    }

    #[test]
    fn mcnemar_exact_equals_a_binomial_sum_written_in_the_test() {
        for (a, b) in [
            (0, 5),
            (3, 12),
            (12, 3),
            (7, 7),
            (1, 1),
            (20, 31),
            (0, 1),
            (25, 35),
        ] {
            let m = a + b;
            let want = (2.0 * binom_sum(a.min(b), m)).min(1.0);
            let got = mcnemar_exact(a, b);
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1e-300),
                "({a}, {b}): {got} vs {want}"
            );
        }
        // Hand values: 0 of 5 discordant pairs against → p = 2/32.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-15);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(7, 7), 1.0);
    }

    /// Truth: Φ⁻¹ values as printed by standard normal tables / scipy.stats.norm.ppf
    /// (0.975 → 1.959963984540054, 0.8 → 0.8416212335729143, 0.001 → −3.090232306167813).
    #[test]
    fn normal_quantile_matches_tabled_values() {
        for (p, z) in [
            (0.975, 1.959_963_984_540_054),
            (0.8, 0.841_621_233_572_914_3),
            (0.001, -3.090_232_306_167_813),
            (0.5, 0.0),
            (0.999_9, 3.719_016_485_455_68),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-8, "{p}");
        }
    }

    /// Truth: Holm (1979) by hand — p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005·4 = 0.02,
    /// 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max-accumulated 0.02, 0.03, 0.06, 0.06.
    #[test]
    fn holm_by_hand() {
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (g, w) in adj.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{adj:?}");
        }
        assert_eq!(holm(&[0.7]), vec![0.7]);
        assert_eq!(holm(&[0.6, 0.9]), vec![1.0, 1.0]);
    }

    /// Paired outcomes with accuracies `pa`, `pb` and discordance `disc` (a_only + b_only).
    fn simulate(rng: &mut StdRng, n: usize, a_only: f64, b_only: f64) -> (Vec<bool>, Vec<bool>) {
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let u: f64 = rng.random();
            // a_only, b_only, then both right / both wrong equally.
            let (x, y) = if u < a_only {
                (true, false)
            } else if u < a_only + b_only {
                (false, true)
            } else {
                let both = rng.random::<bool>();
                (both, both)
            };
            a.push(x);
            b.push(y);
        }
        (a, b)
    }

    /// Truth: simulation with a known true difference (a_only 0.10, b_only 0.18 of the pairs:
    /// true difference −0.08), n = 200 pairs, 1,000 data sets, 1,000 resamples each: the 95 %
    /// percentile interval must cover the truth in 95 % ± 2 % of the data sets.
    #[test]
    fn paired_bootstrap_interval_covers_95_percent_of_simulated_data_sets() {
        let mut rng = StdRng::seed_from_u64(7);
        let truth = 0.10 - 0.18;
        let sims = 1000;
        let mut covered = 0;
        for k in 0..sims {
            let (a, b) = simulate(&mut rng, 200, 0.10, 0.18);
            let d = differences(&a, &b);
            let ci = bootstrap_difference(&[d], 1000, 0.95, k as u64).unwrap();
            covered += (ci.lo <= truth && truth <= ci.hi) as usize;
        }
        let rate = covered as f64 / sims as f64;
        eprintln!("paired bootstrap coverage {rate}");
        assert!((0.93..=0.97).contains(&rate), "coverage {rate}");
    }

    /// One seed's simulated differences: pair i has P(d = +1) − P(d = −1) = `shift` + `pair[i]`
    /// and discordance 0.4.
    fn seed_row(rng: &mut StdRng, shift: f64, pair: &[f64]) -> Vec<i8> {
        pair.iter()
            .map(|p| {
                let u: f64 = rng.random();
                if u < 0.2 + (shift + p) / 2.0 {
                    1
                } else if u < 0.4 {
                    -1
                } else {
                    0
                }
            })
            .collect()
    }

    /// Truth: simulation. Seeds × pairs with a shared pair effect (each pair is hard or easy
    /// for every seed) and a seed effect; the two-way bootstrap must not under-cover (≥ 93 %),
    /// while resampling pairs independently within each seed — the naive hierarchical
    /// bootstrap — does (it averages the shared pair noise away).
    #[test]
    fn two_way_bootstrap_over_seeds_and_shared_pairs_covers_its_truth() {
        let mut rng = StdRng::seed_from_u64(11);
        let (n, seeds, sims) = (120, 5, 400);
        // True difference: pair effect has mean 0; seed effect has mean 0; base rate −0.05.
        let truth = -0.05;
        let (mut two_way, mut naive) = (0, 0);
        for k in 0..sims {
            // Each pair's propensity for a (vs b) to be right, shared by the seeds.
            let pair: Vec<f64> = (0..n).map(|_| rng.random_range(-0.3..0.3)).collect();
            let d: Vec<Vec<i8>> = (0..seeds)
                .map(|_| {
                    let s: f64 = rng.random_range(-0.05..0.05);
                    seed_row(&mut rng, truth + s, &pair)
                })
                .collect();
            let ci = bootstrap_difference(&d, 600, 0.95, k as u64).unwrap();
            two_way += (ci.lo <= truth && truth <= ci.hi) as usize;
            // Naive: pairs drawn independently for every seed.
            let mut r = StdRng::seed_from_u64(k as u64);
            let mut means: Vec<f64> = (0..600)
                .map(|_| {
                    let mut t = 0i64;
                    for _ in 0..seeds {
                        let s = r.random_range(0..seeds);
                        for _ in 0..n {
                            t += d[s][r.random_range(0..n)] as i64;
                        }
                    }
                    t as f64 / (seeds * n) as f64
                })
                .collect();
            means.sort_by(f64::total_cmp);
            naive += (means[15] <= truth && truth <= means[584]) as usize;
        }
        let (tw, nv) = (two_way as f64 / sims as f64, naive as f64 / sims as f64);
        eprintln!("coverage: two-way {tw}, naive {nv}");
        assert!(tw >= 0.93, "two-way coverage {tw}");
        assert!(nv < tw, "naive {nv} vs two-way {tw}");
    }

    /// Truth: simulation with the exact McNemar test. At the detectable difference for n = 200
    /// pairs and discordance 0.3 (α = 0.05, power 0.8), 4,000 simulated data sets must reject
    /// in 80 % ± 5 % of them.
    #[test]
    fn detectable_difference_has_the_stated_power_in_simulation() {
        let (n, disc) = (200, 0.3);
        let delta = detectable_difference(n, disc, 0.05, 0.8).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let sims = 4000;
        let mut rejected = 0;
        for _ in 0..sims {
            let (a, b) = simulate(&mut rng, n, (disc - delta) / 2.0, (disc + delta) / 2.0);
            let c = Discordance::of(&a, &b);
            rejected += (mcnemar_exact(c.a_only, c.b_only) < 0.05) as usize;
        }
        let power = rejected as f64 / sims as f64;
        eprintln!("power {power} at δ = {delta}");
        assert!(
            (0.75..=0.85).contains(&power),
            "power {power} at δ = {delta}"
        );
        // And it is the smallest: a third less is clearly under-powered.
        let mut rejected = 0;
        for _ in 0..sims {
            let d = delta * 2.0 / 3.0;
            let (a, b) = simulate(&mut rng, n, (disc - d) / 2.0, (disc + d) / 2.0);
            let c = Discordance::of(&a, &b);
            rejected += (mcnemar_exact(c.a_only, c.b_only) < 0.05) as usize;
        }
        assert!((rejected as f64 / sims as f64) < 0.6);
    }

    #[test]
    fn detectable_difference_never_below_its_floor() {
        let d = detectable_difference(100, 0.0, 0.05, 0.8).unwrap();
        let z = normal_quantile(0.975) + normal_quantile(0.8);
        assert!((d - z * z / 100.0).abs() < 1e-12);
        assert_eq!(detectable_difference(0, 0.3, 0.05, 0.8), None);
    }

    /// Truth: arithmetic. Set A's differences are all +1 (3 seeds × 10 pairs), set B's all 0
    /// (3 seeds × 30 pairs): every resample's mean over sets is (1 + 0) / 2 = 0.5 exactly —
    /// each set weighs the same whatever its size (pooling the pairs would give 10 / 40).
    #[test]
    fn mean_over_sets_weighs_every_set_the_same() {
        let a = vec![vec![1i8; 10]; 3];
        let b = vec![vec![0i8; 30]; 3];
        let r = bootstrap_mean_over_sets(&[&a, &b], 200, 0.95, 1).unwrap();
        assert_eq!((r.lo, r.hi, r.p), (0.5, 0.5, 0.0));
    }

    /// Truth: simulation. Two sets of different sizes (120 and 60 pairs) scored by the same 5
    /// seeds, each seed with one effect shared by both sets, and per set a pair effect shared
    /// by the seeds; true mean over sets (−0.05 + −0.15) / 2 = −0.10. The 95 % interval must
    /// cover it in at least 93 % of 300 simulated studies.
    #[test]
    fn mean_over_sets_bootstrap_covers_its_truth() {
        let mut rng = StdRng::seed_from_u64(13);
        let (seeds, sims) = (5, 300);
        let sets = [(120usize, -0.05f64), (60, -0.15)];
        let truth = -0.10;
        let mut covered = 0;
        for k in 0..sims {
            let seed_effect: Vec<f64> = (0..seeds).map(|_| rng.random_range(-0.05..0.05)).collect();
            let data: Vec<Vec<Vec<i8>>> = sets
                .iter()
                .map(|&(n, base)| {
                    let pair: Vec<f64> = (0..n).map(|_| rng.random_range(-0.3..0.3)).collect();
                    seed_effect
                        .iter()
                        .map(|s| seed_row(&mut rng, base + s, &pair))
                        .collect()
                })
                .collect();
            let refs: Vec<&[Vec<i8>]> = data.iter().map(|d| d.as_slice()).collect();
            let ci = bootstrap_mean_over_sets(&refs, 500, 0.95, k as u64).unwrap();
            covered += (ci.lo <= truth && truth <= ci.hi) as usize;
        }
        let rate = covered as f64 / sims as f64;
        eprintln!("mean-over-sets bootstrap coverage {rate}");
        assert!(rate >= 0.93, "coverage {rate}");
    }

    #[test]
    fn mean_over_sets_refuses_sets_with_different_seeds() {
        let a = vec![vec![1i8; 4]; 3];
        let b = vec![vec![0i8; 4]; 2];
        assert!(bootstrap_mean_over_sets(&[&a, &b], 10, 0.95, 0).is_none());
        assert!(bootstrap_mean_over_sets(&[], 10, 0.95, 0).is_none());
        let empty: Vec<Vec<i8>> = vec![vec![]; 3];
        assert!(bootstrap_mean_over_sets(&[&a, &empty], 10, 0.95, 0).is_none());
    }

    #[test]
    fn bootstrap_refuses_ragged_seeds_and_empty_input() {
        assert!(bootstrap_difference(&[vec![1, 0], vec![1]], 10, 0.95, 0).is_none());
        assert!(bootstrap_difference(&[vec![]], 10, 0.95, 0).is_none());
        assert!(bootstrap_difference(&[], 10, 0.95, 0).is_none());
        let all_zero = bootstrap_difference(&[vec![0; 30]], 50, 0.95, 0).unwrap();
        assert_eq!((all_zero.lo, all_zero.hi, all_zero.p), (0.0, 0.0, 1.0));
    }
}
