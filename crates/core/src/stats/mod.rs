//! Small statistics shared by the report, the study and the bias analyses: mean ± Student-t
//! interval ([`Stat`]), Spearman's ρ with a permutation p-value, the Wilson interval of a
//! proportion and Cohen's d. Pure functions of `f64` slices; NaN and infinities are never
//! returned (undefined results are `None`). [`paired`] holds the tests on per-pair results
//! (exact McNemar, the paired and seed-and-pair bootstrap, detectable differences, Holm) and
//! [`verdict`] the drift-or-head decision built on them.

pub mod paired;
pub mod verdict;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The median of values sorted ascending (the mean of the middle two for an even count);
/// `None` for no values.
pub fn median_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(0.5 * (sorted[n / 2 - 1] + sorted[n / 2])),
    }
}

/// Mean, sample standard deviation and count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: Option<f64>,
    pub n: usize,
}

/// Two-sided 95 % Student-t quantiles t(0.975; df) for df = 1..=30, three decimals, as printed
/// in standard tables (e.g. NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2); the
/// tests check each against a numerical integral of the t density.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// t(0.975; df), df ≥ 1; above 30 the df-30 value (an interval at most 4 % too wide).
pub fn t975(df: usize) -> f64 {
    T975[df.clamp(1, 30) - 1]
}

impl Stat {
    /// The 95 % Student-t interval for the mean, `mean ± t975(n − 1) · sd / √n` (None for n < 2).
    pub fn ci95(&self) -> Option<(f64, f64)> {
        let sd = self.sd?;
        let h = t975(self.n - 1) * sd / (self.n as f64).sqrt();
        Some((self.mean - h, self.mean + h))
    }
}

/// [`Stat`] of the finite values of `v` (None when there are none).
pub fn stat(v: &[f64]) -> Option<Stat> {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let sd = (n > 1)
        .then(|| (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt());
    Some(Stat { mean, sd, n })
}

/// Spearman's rank correlation with its permutation p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spearman {
    pub rho: f64,
    pub n: usize,
    pub p: f64,
}

/// Ranks 1..=n of `v`, ties given their mean rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).expect("finite"));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Spearman's ρ of `a` and `b` with a two-sided permutation p-value; None when either side is
/// constant or n < 3.
pub fn spearman(a: &[f64], b: &[f64], permutations: usize, seed: u64) -> Option<Spearman> {
    if a.len() != b.len() || a.len() < 3 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let rho = pearson(&ra, &rb)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut perm = rb.clone();
    let mut extreme = 0usize;
    for _ in 0..permutations {
        perm.shuffle(&mut rng);
        if pearson(&ra, &perm).is_some_and(|r| r.abs() >= rho.abs() - 1e-12) {
            extreme += 1;
        }
    }
    Some(Spearman {
        rho,
        n: a.len(),
        p: (1 + extreme) as f64 / (1 + permutations) as f64,
    })
}

/// The Wilson score interval (95 %, z = 1.96) of `k` successes in `n` trials; None for n = 0.
/// Truth: Wilson (1927); the tests check a value printed by Newcombe (1998), Table I.
pub fn wilson(k: f64, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, z) = (n as f64, 1.959_963_984_540_054);
    let p = k / n;
    let den = 1.0 + z * z / n;
    let mid = (p + z * z / (2.0 * n)) / den;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / den;
    Some((mid - h, mid + h))
}

/// Cohen's d of `a` against `b`: (mean a − mean b) / pooled sample sd. None when either side
/// has fewer than two values or the pooled sd is 0.
pub fn cohen_d(a: &[f64], b: &[f64]) -> Option<f64> {
    let (sa, sb) = (stat(a)?, stat(b)?);
    let (va, vb) = (sa.sd? * sa.sd?, sb.sd? * sb.sd?);
    let pooled =
        (((sa.n - 1) as f64 * va + (sb.n - 1) as f64 * vb) / (sa.n + sb.n - 2) as f64).sqrt();
    (pooled > 0.0).then(|| (sa.mean - sb.mean) / pooled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(|T| < q) for Student's t with `df` degrees of freedom, by Simpson's rule after
    /// x = √df · tan θ, which turns the density into cos^(df−1) θ on (−π/2, π/2).
    fn t_mass(q: f64, df: usize) -> f64 {
        let f = |th: f64| th.cos().powi(df as i32 - 1);
        let simpson = |a: f64, b: f64| {
            let n = 20_000;
            let h = (b - a) / n as f64;
            let mut s = f(a) + f(b);
            for i in 1..n {
                s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            s * h / 3.0
        };
        let half = std::f64::consts::FRAC_PI_2;
        let a = (q / (df as f64).sqrt()).atan();
        simpson(-a, a) / simpson(-half, half)
    }

    /// Truth: the t density integrated numerically; the table has three decimals, so each
    /// quantile ± 0.0005 must bracket 95 % of the mass.
    #[test]
    fn t_quantiles_match_the_t_distribution() {
        for df in 1..=30 {
            let q = t975(df);
            let (lo, hi) = (t_mass(q - 0.0005, df), t_mass(q + 0.0005, df));
            assert!(lo <= 0.95 && 0.95 <= hi, "df {df}: t {q} covers {lo}..{hi}");
        }
        assert_eq!(t975(100), t975(30));
    }

    #[test]
    fn ci95_is_mean_plus_minus_t_se() {
        let s = stat(&[1.0, 2.0, 6.0]).unwrap();
        let (lo, hi) = s.ci95().unwrap();
        let h = 4.303 * s.sd.unwrap() / 3f64.sqrt();
        assert!((lo - (3.0 - h)).abs() < 1e-12 && (hi - (3.0 + h)).abs() < 1e-12);
        assert_eq!(stat(&[5.0]).unwrap().ci95(), None);
    }

    /// Truth: Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    /// Table I, example 81/263: Wilson interval 0.2553–0.3662.
    #[test]
    fn wilson_matches_newcombe() {
        let (lo, hi) = wilson(81.0, 263).unwrap();
        assert!(
            (lo - 0.2553).abs() < 5e-5 && (hi - 0.3662).abs() < 5e-5,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0.0, 0), None);
    }

    /// Truth: by hand — a = [1, 2, 3] (mean 2, sd 1), b = [3, 4, 5] (mean 4, sd 1): d = −2.
    #[test]
    fn cohen_d_by_hand() {
        assert!((cohen_d(&[1.0, 2.0, 3.0], &[3.0, 4.0, 5.0]).unwrap() + 2.0).abs() < 1e-12);
        assert_eq!(cohen_d(&[1.0], &[2.0, 3.0]), None);
        assert_eq!(cohen_d(&[1.0, 1.0], &[1.0, 1.0]), None);
    }
}
