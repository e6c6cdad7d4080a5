//! Percentile bootstrap intervals over resampled examples (seeded, deterministic).
//!
//! Each replicate draws n example indices with replacement and recomputes the accumulator
//! measures on those rows; the interval is the 2.5th and 97.5th percentile (linear
//! interpolation) of the non-null replicate values.

use ndarray::{ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{MetricError, PairAccumulator, PairMetrics};

/// A 95 % percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

/// Intervals for the accumulator measures (None where no replicate was defined).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    pub linear_cka: Option<Interval>,
    pub debiased_cka: Option<Interval>,
    pub cosine_distance: Option<Interval>,
    pub procrustes_distance: Option<Interval>,
    pub norm_ratio: Option<Interval>,
    /// The number of replicates.
    pub b: usize,
}

impl Intervals {
    /// The five intervals in column order (linear CKA, debiased CKA, cosine, Procrustes, norm
    /// ratio).
    pub fn measures(&self) -> [Option<Interval>; 5] {
        [
            self.linear_cka,
            self.debiased_cka,
            self.cosine_distance,
            self.procrustes_distance,
            self.norm_ratio,
        ]
    }
}

/// The q-quantile of sorted values, linear interpolation (also the permutation bands').
pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval(mut v: Vec<f64>) -> Option<Interval> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    Some(Interval {
        lo: percentile(&v, 0.025),
        hi: percentile(&v, 0.975),
    })
}

/// Bootstrap `b` replicates of the accumulator measures of `x (n, d₁)`, `y (n, d₂)`.
pub fn bootstrap(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    b: usize,
    seed: u64,
) -> Result<Intervals, MetricError> {
    let n = x.nrows();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vals: [Vec<f64>; 5] = Default::default();
    for _ in 0..b {
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        let xs = x.select(Axis(0), &idx);
        let ys = y.select(Axis(0), &idx);
        let mut acc = PairAccumulator::new(x.ncols(), y.ncols());
        acc.update(xs.view(), ys.view())?;
        let m: PairMetrics = acc.finalize()?;
        for (slot, v) in vals.iter_mut().zip([
            m.linear_cka.value,
            m.debiased_cka.value,
            m.cosine_distance.value,
            m.procrustes_distance.value,
            m.norm_ratio.value,
        ]) {
            if let Some(v) = v {
                slot.push(v);
            }
        }
    }
    let [a, bb, c, d, e] = vals;
    Ok(Intervals {
        linear_cka: interval(a),
        debiased_cka: interval(bb),
        cosine_distance: interval(c),
        procrustes_distance: interval(d),
        norm_ratio: interval(e),
        b,
    })
}
