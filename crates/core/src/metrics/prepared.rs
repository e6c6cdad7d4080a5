//! One side's rows of a chunk, checked and prepared once for every accumulator that reads them
//! (a base layer's rows serve every student compared with it), and the precision of the
//! n-length products.
//!
//! For raw rows `r (m, d)` and a fixed shift `c (d)` a [`PreparedRows`] holds the shifted rows
//! `s = r − c` (f64, or rounded to f32 for [`Precision::Mixed`]), `‖rᵢ‖` (raw norms, f64),
//! `‖sᵢ‖²`, `Σ sᵢ` and `Σ ‖sᵢ‖² sᵢ` (f64 in both precisions), computed in one pass per row.
//!
//! [`Precision::Mixed`] runs the `d × d` products (`SᵀS`, `S_yᵀS_x`: all but ≈ 1 % of the
//! flops) as f32 BLAS products over blocks of [`MIXED_BLOCK`] rows, each block's result added
//! into the f64 sums: the rounding of one block's f32 sums stays local instead of growing with
//! n. Everything else stays f64. The measures then differ from the float64 reference by
//! ≈ 1e-7 relative instead of ≈ 1e-13 (`tests/integration/metrics_precision.rs` and
//! `metrics.rs` bound them), at about twice the product rate (≈ 1.7× the whole compare's).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::MetricError;

/// How the `d × d` products over the rows are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float64 throughout (the default): equals the float64 reference to ≈ 1e-13.
    #[default]
    F64,
    /// f32 products per block of [`MIXED_BLOCK`] rows, summed in f64; everything else f64.
    Mixed,
}

impl Precision {
    /// The name the CLI and the outputs use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::Mixed => "mixed",
        }
    }

    /// For serde's `skip_serializing_if`: outputs of the default precision keep their bytes.
    pub fn is_f64(&self) -> bool {
        *self == Precision::F64
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f64" => Ok(Precision::F64),
            "mixed" => Ok(Precision::Mixed),
            _ => Err(format!("`{s}`: use f64 or mixed")),
        }
    }
}

/// Rows per f32 product in [`Precision::Mixed`].
pub const MIXED_BLOCK: usize = 256;

/// An input element: f32 rows from stores, f64 rows from the float64 entry points.
pub trait Element: Copy + Into<f64> {}
impl Element for f32 {}
impl Element for f64 {}

/// Shifted rows, `(m, d)` row-major, in the precision the products read.
#[derive(Debug, Clone)]
pub enum Shifted {
    F64(Array2<f64>),
    F32(Array2<f32>),
}

impl Shifted {
    /// The precision the products read these rows in.
    pub(super) fn precision(&self) -> Precision {
        match self {
            Shifted::F64(_) => Precision::F64,
            Shifted::F32(_) => Precision::Mixed,
        }
    }

    /// `acc += a · row r` (`acc` of the rows' width).
    pub(super) fn axpy_row(&self, r: usize, a: f64, acc: &mut [f64]) {
        fn axpy<T: Element>(m: &Array2<T>, r: usize, a: f64, acc: &mut [f64]) {
            let d = m.ncols();
            let row = &m.as_slice().expect("built row-major")[r * d..(r + 1) * d];
            for (o, &v) in acc.iter_mut().zip(row) {
                *o += a * v.into();
            }
        }
        match self {
            Shifted::F64(m) => axpy(m, r, a, acc),
            Shifted::F32(m) => axpy(m, r, a, acc),
        }
    }
}

/// One side's rows, prepared for [`super::PairAccumulator::add_prepared`]. See the module docs.
#[derive(Debug, Clone)]
pub struct PreparedRows<'a, T> {
    pub(super) raw: ArrayView2<'a, T>,
    pub(super) shift: Array1<f64>,
    pub(super) shifted: Shifted,
    /// ‖rᵢ‖ on raw rows.
    pub(super) raw_norm: Vec<f64>,
    /// ‖sᵢ‖² on shifted rows.
    pub(super) sq: Vec<f64>,
    /// Σ sᵢ.
    pub(super) col_sum: Array1<f64>,
    /// Σ ‖sᵢ‖² sᵢ.
    pub(super) moment: Array1<f64>,
}

impl<'a, T: Element> PreparedRows<'a, T> {
    /// Prepare `raw (m, d)` shifted by `shift (d)`. A non-finite value is
    /// [`MetricError::NonFinite`] naming `side` and its row (0-based); a width other than the
    /// shift's is [`MetricError::Shape`].
    pub fn new(
        raw: ArrayView2<'a, T>,
        shift: &Array1<f64>,
        precision: Precision,
        side: &'static str,
    ) -> Result<Self, MetricError> {
        let (m, d) = raw.dim();
        if d != shift.len() {
            return Err(MetricError::Shape {
                x: vec![m, d],
                y: vec![m, d],
                expected: (shift.len(), shift.len()),
            });
        }
        let mut raw_norm = Vec::with_capacity(m);
        let mut sq = Vec::with_capacity(m);
        let mut col_sum = Array1::<f64>::zeros(d);
        let mut moment = Array1::<f64>::zeros(d);
        let mut rv = vec![0f64; d];
        let mut buf = vec![0f64; d];
        let mut out64 = Vec::with_capacity(if precision == Precision::F64 {
            m * d
        } else {
            0
        });
        let mut out32 = Vec::with_capacity(if precision == Precision::Mixed {
            m * d
        } else {
            0
        });
        let c = shift.as_slice().expect("an owned Array1 is contiguous");
        let (cs, mo) = (
            col_sum.as_slice_mut().expect("contiguous"),
            moment.as_slice_mut().expect("contiguous"),
        );
        let prepare = |r: &[T], buf: &mut [f64]| match precision {
            Precision::F64 => shift_row::<T, false>(r, c, buf),
            Precision::Mixed => shift_row::<T, true>(r, c, buf),
        };
        for (i, row) in raw.outer_iter().enumerate() {
            // Rows are contiguous in stores; a strided view is converted first.
            let r2 = match row.as_slice() {
                Some(r) => prepare(r, &mut buf),
                None => {
                    for (o, &v) in rv.iter_mut().zip(row.iter()) {
                        *o = v.into();
                    }
                    match precision {
                        Precision::F64 => shift_row::<f64, false>(&rv, c, &mut buf),
                        Precision::Mixed => shift_row::<f64, true>(&rv, c, &mut buf),
                    }
                }
            };
            // A non-finite value makes ‖r‖² non-finite; only then is the row searched.
            if !r2.is_finite() && row.iter().any(|&v| !v.into().is_finite()) {
                return Err(MetricError::NonFinite { side, row: i });
            }
            let s2 = dot(&buf, &buf);
            for ((o, m_), &b) in cs.iter_mut().zip(mo.iter_mut()).zip(&buf) {
                *o += b;
                *m_ += s2 * b;
            }
            match precision {
                Precision::F64 => out64.extend_from_slice(&buf),
                Precision::Mixed => out32.extend(buf.iter().map(|&b| b as f32)),
            }
            raw_norm.push(r2.sqrt());
            sq.push(s2);
        }
        let shifted = match precision {
            Precision::F64 => Shifted::F64(Array2::from_shape_vec((m, d), out64).expect("m·d")),
            Precision::Mixed => Shifted::F32(Array2::from_shape_vec((m, d), out32).expect("m·d")),
        };
        Ok(Self {
            raw,
            shift: shift.clone(),
            shifted,
            raw_norm,
            sq,
            col_sum,
            moment,
        })
    }
}

/// `out = r − c` (rounded to f32 and back when `MIXED`: the products read the rounded values
/// and the f64 sums read the same ones, so that every term describes one matrix); returns
/// `‖r‖²` as [`dot`] sums it.
fn shift_row<T: Element, const MIXED: bool>(r: &[T], c: &[f64], out: &mut [f64]) -> f64 {
    let mut acc = [0f64; 8];
    let n8 = r.len() / 8 * 8;
    let body = r[..n8].chunks_exact(8).zip(c.chunks_exact(8));
    for ((x, cj), o) in body.zip(out.chunks_exact_mut(8)) {
        for k in 0..8 {
            let v: f64 = x[k].into();
            acc[k] += v * v;
            let b = v - cj[k];
            o[k] = if MIXED { b as f32 as f64 } else { b };
        }
    }
    let mut tail = 0f64;
    for j in n8..r.len() {
        let v: f64 = r[j].into();
        tail += v * v;
        let b = v - c[j];
        out[j] = if MIXED { b as f32 as f64 } else { b };
    }
    acc.iter().sum::<f64>() + tail
}

/// `a · b` in f64 with eight partial sums (the loop vectorises; the order is fixed, so results
/// are reproducible).
pub(super) fn dot<T: Element>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = (ca.remainder().iter().zip(cb.remainder()))
        .map(|(&x, &y)| x.into() * y.into())
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k].into() * y[k].into();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// [`dot`] of two rows of inputs (any strides).
pub(super) fn dot_rows<T: Element>(a: ArrayView1<'_, T>, b: ArrayView1<'_, T>) -> f64 {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => dot(a, b),
        _ => a
            .iter()
            .zip(b.iter())
            .map(|(&x, &y)| x.into() * y.into())
            .sum(),
    }
}

/// The f32 products of [`Precision::Mixed`], block by block into f64 sums.
pub(super) mod mixed {
    use ndarray::Array2;

    use super::MIXED_BLOCK;

    /// Upper triangle of `c += aᵀ a` for row-major `a (m, p)`: f32 `ssyrk` per block of rows.
    pub(crate) fn syrk_acc(a: &Array2<f32>, c: &mut Array2<f64>) {
        let (m, p) = a.dim();
        assert!(a.is_standard_layout() && c.is_standard_layout() && c.dim() == (p, p));
        let src = a.as_slice().expect("standard layout");
        let mut blk = vec![0f32; p * p];
        for r0 in (0..m).step_by(MIXED_BLOCK) {
            let rows = MIXED_BLOCK.min(m - r0);
            let part = &src[r0 * p..(r0 + rows) * p];
            // SAFETY: `part` holds rows·p values, `blk` p·p, both row-major with stride p.
            unsafe {
                cblas_sys::cblas_ssyrk(
                    cblas_sys::CblasRowMajor,
                    cblas_sys::CblasUpper,
                    cblas_sys::CblasTrans,
                    p as i32,
                    rows as i32,
                    1.0,
                    part.as_ptr(),
                    p as i32,
                    0.0,
                    blk.as_mut_ptr(),
                    p as i32,
                );
            }
            let cs = c.as_slice_mut().expect("standard layout");
            for i in 0..p {
                let row = i * p + i..(i + 1) * p;
                for (o, &v) in cs[row.clone()].iter_mut().zip(&blk[row]) {
                    *o += v as f64;
                }
            }
        }
    }

    /// `c += aᵀ b` for row-major `a (m, p)`, `b (m, q)`: f32 `sgemm` per block of rows.
    pub(crate) fn gemm_acc(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f64>) {
        let (m, p) = a.dim();
        let q = b.ncols();
        assert!(a.is_standard_layout() && b.is_standard_layout() && c.is_standard_layout());
        assert_eq!((b.nrows(), c.dim()), (m, (p, q)));
        let (sa, sb) = (
            a.as_slice().expect("standard"),
            b.as_slice().expect("standard"),
        );
        let cs = c.as_slice_mut().expect("standard layout");
        for r0 in (0..m).step_by(MIXED_BLOCK) {
            let rows = MIXED_BLOCK.min(m - r0);
            let blk = crate::blas::sgemm_new(
                (true, false),
                (p, q, rows),
                (&sa[r0 * p..(r0 + rows) * p], p),
                (&sb[r0 * q..(r0 + rows) * q], q),
            );
            for (o, &v) in cs.iter_mut().zip(&blk) {
                *o += v as f64;
            }
        }
    }
}
