//! Percentile bootstrap intervals over resampled examples (seeded, deterministic).
//!
//! Each replicate draws n example indices with replacement and recomputes the accumulator
//! measures on those rows; the interval is the 2.5th and 97.5th percentile (linear
//! interpolation) of the non-null replicate values.
//!
//! [`bootstrap_linear_cka`] draws the same replicates for linear CKA alone in example space. A
//! replicate is a weighting w of the examples (how often each was drawn, Σw = n); with the
//! column-centred Gram matrices `K = X_c X_cᵀ`, `L = Y_c Y_cᵀ` computed once and A, B their
//! double-centring on the replicate's own weighted mean (`r = K w / n`, `g = wᵀr / n`,
//! `A = K − r1ᵀ − 1rᵀ + g`, likewise s, h, B for L), the replicate's HSIC is
//! `Σᵢⱼ wᵢ wⱼ Aᵢⱼ Bᵢⱼ = wᵀ(K∘L)w − 2n Σᵢ wᵢ rᵢ sᵢ + n² g h` (A's weighted rows sum to zero,
//! so B's centring terms drop out). All replicates together are five (n × n)(n × b) products
//! — instead of b products of O(n d²).

use ndarray::{Array2, ArrayView2, Axis};
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

/// `v (n, d)` in f64 with its column means subtracted; a non-finite row is an error.
pub(super) fn centred(
    v: ArrayView2<'_, f32>,
    side: &'static str,
) -> Result<Array2<f64>, MetricError> {
    let mut m = v.mapv(|a| a as f64);
    for (i, row) in m.outer_iter().enumerate() {
        if !row.iter().all(|a| a.is_finite()) {
            return Err(MetricError::NonFinite { side, row: i });
        }
    }
    let mean = m.mean_axis(Axis(0)).expect("n > 0");
    m -= &mean.insert_axis(Axis(0));
    Ok(m)
}

/// Both sides column-centred, after checking that they describe the same n examples.
pub(super) fn centred_pair(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<(Array2<f64>, Array2<f64>), MetricError> {
    if x.nrows() != y.nrows() {
        return Err(MetricError::Shape {
            x: x.shape().to_vec(),
            y: y.shape().to_vec(),
            expected: (x.ncols(), y.ncols()),
        });
    }
    Ok((centred(x, "x")?, centred(y, "y")?))
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

/// Linear CKA's bootstrap interval of `x (n, d₁)` against `y (n, d₂)` over `b` replicates —
/// the same replicates (and so the same interval, up to rounding) as [`bootstrap`]'s
/// `linear_cka`, computed in example space (see the module docs). The other measures stay
/// `None`.
pub fn bootstrap_linear_cka(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    b: usize,
    seed: u64,
) -> Result<Intervals, MetricError> {
    let n = x.nrows();
    let (xc, yc) = centred_pair(x, y)?;
    let (k, l) = (xc.dot(&xc.t()), yc.dot(&yc.t()));
    // Replicate c's multiplicities w (how often each example was drawn), column c of `w`.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = Array2::<f64>::zeros((n, b));
    for c in 0..b {
        for _ in 0..n {
            w[[rng.random_range(0..n), c]] += 1.0;
        }
    }
    let (kw, lw) = (k.dot(&w), l.dot(&w));
    let (klw, kkw, llw) = ((&k * &l).dot(&w), (&k * &k).dot(&w), (&l * &l).dot(&w));
    let nn = n as f64;
    let mut vals = Vec::with_capacity(b);
    for c in 0..b {
        let wc = w.column(c);
        // r = K w / N, s = L w / N; g = wᵀr / N, h = wᵀs / N.
        let (mut g, mut h, mut wrs, mut wrr, mut wss) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut kl, mut kk, mut ll) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (wi, r, s) = (wc[i], kw[[i, c]] / nn, lw[[i, c]] / nn);
            g += wi * r;
            h += wi * s;
            wrs += wi * r * s;
            wrr += wi * r * r;
            wss += wi * s * s;
            kl += wi * klw[[i, c]];
            kk += wi * kkw[[i, c]];
            ll += wi * llw[[i, c]];
        }
        let (g, h) = (g / nn, h / nn);
        // ⟨A, B⟩_W = wᵀ(K∘L)w − 2N Σ wᵢ rᵢ sᵢ + N² g h for the weighted double-centred A, B.
        let kl = kl - 2.0 * nn * wrs + nn * nn * g * h;
        let kk = kk - 2.0 * nn * wrr + nn * nn * g * g;
        let ll = ll - 2.0 * nn * wss + nn * nn * h * h;
        if kk > 0.0 && ll > 0.0 {
            vals.push((kl / (kk * ll).sqrt()).clamp(0.0, 1.0));
        }
    }
    Ok(Intervals {
        linear_cka: interval(vals),
        b,
        ..Default::default()
    })
}
