//! Additive f64 accumulators from which linear CKA, debiased CKA, orthogonal Procrustes,
//! cosine distance and norm ratio are computed exactly, in one pass, in O(d²) memory.
//!
//! For paired examples `xᵢ ∈ ℝ^{d₁}` (rows of X, `(n, d₁)`) and `yᵢ ∈ ℝ^{d₂}` (rows of Y,
//! `(n, d₂)`) the accumulator holds, on rows shifted by fixed vectors `c_x`, `c_y`:
//! `n`, `Σx`, `Σy`, `XᵀX`, `YᵀY`, `YᵀX`, `Σ‖x‖²`, `Σ‖y‖²`, `Σ‖x‖⁴`, `Σ‖y‖⁴`, `Σ‖x‖²‖y‖²`,
//! `Σ‖y‖²x`, `Σ‖x‖²y`, `Σ‖x‖²x`, `Σ‖y‖²y`; and on the raw rows the sums for cosine distance
//! and norm ratio. Every measure derived here is invariant to the shift (CKA and Procrustes
//! centre the data; Song et al.'s unbiased HSIC is translation invariant), which only serves
//! to avoid cancellation when features have large means (outlier dimensions). Accumulators
//! over parts of any size, or over shards merged with [`PairAccumulator::merge`], give the
//! same result as one pass over the whole.

use ndarray::{Array1, Array2, ArrayView2};
use ndarray_linalg::SVD;

use super::nullable::Nullable;
use super::prepared::{dot, dot_rows, mixed, Element, Precision, PreparedRows, Shifted};
use crate::error::MetricError;

/// Streaming sums over paired rows. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct PairAccumulator {
    pub n: f64,
    pub shift_x: Array1<f64>,
    pub shift_y: Array1<f64>,
    pub sx: Array1<f64>,
    pub sy: Array1<f64>,
    /// Upper triangle of XᵀX (the lower one is not maintained).
    pub xx: Array2<f64>,
    /// Upper triangle of YᵀY.
    pub yy: Array2<f64>,
    pub yx: Array2<f64>,
    pub sq_x: f64,
    pub sq_y: f64,
    pub x4: f64,
    pub y4: f64,
    pub x2y2: f64,
    /// Σ‖yᵢ‖² xᵢ
    pub a_xy: Array1<f64>,
    /// Σ‖xᵢ‖² yᵢ
    pub b_yx: Array1<f64>,
    /// Σ‖xᵢ‖² xᵢ
    pub a_xx: Array1<f64>,
    /// Σ‖yᵢ‖² yᵢ
    pub b_yy: Array1<f64>,
    /// Σ (1 − cos(xᵢ, yᵢ)) and Σ (1 − cos)² on raw rows (same d only).
    pub cos_sum: f64,
    pub cos_sq: f64,
    /// Rows where x or y is the zero vector (cosine undefined).
    pub cos_zero: f64,
    /// Σ ‖yᵢ‖ / ‖xᵢ‖ on raw rows, and the rows with ‖xᵢ‖ = 0.
    pub ratio_sum: f64,
    pub ratio_zero: f64,
}

/// The measures that accumulators give.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairMetrics {
    pub n: usize,
    pub linear_cka: Nullable,
    pub debiased_cka: Nullable,
    pub cosine_distance: Nullable,
    pub cosine_distance_std: Nullable,
    pub procrustes_distance: Nullable,
    pub norm_ratio: Nullable,
}

/// `c += aᵀ b` for C-contiguous `a (m, p)`, `b (m, q)`, `c (p, q)` (BLAS dgemm, β = 1).
fn gemm_tn_acc(a: &Array2<f64>, b: &Array2<f64>, c: &mut Array2<f64>) {
    let (m, p) = a.dim();
    let q = b.ncols();
    assert!(a.is_standard_layout() && b.is_standard_layout() && c.is_standard_layout());
    assert_eq!((b.nrows(), c.dim()), (m, (p, q)));
    if m == 0 {
        return;
    }
    // SAFETY: the slices hold m·p, m·q and p·q values in row-major order (asserted above).
    unsafe {
        cblas_sys::cblas_dgemm(
            cblas_sys::CblasRowMajor,
            cblas_sys::CblasTrans,
            cblas_sys::CblasNoTrans,
            p as i32,
            q as i32,
            m as i32,
            1.0,
            a.as_ptr(),
            p as i32,
            b.as_ptr(),
            q as i32,
            1.0,
            c.as_mut_ptr(),
            q as i32,
        );
    }
}

/// One triangle (`uplo`, row-major) of `c += aᵀ a` (`gram_of_columns`) or `c += a aᵀ` for
/// C-contiguous `a (m, p)`, `c` square (p or m) — BLAS dsyrk, the one wrapper of it here.
pub(super) fn syrk_acc(
    a: ArrayView2<'_, f64>,
    c: &mut Array2<f64>,
    uplo: cblas_sys::CBLAS_UPLO,
    gram_of_columns: bool,
) {
    let (m, p) = a.dim();
    let (n, k, trans) = if gram_of_columns {
        (p, m, cblas_sys::CblasTrans)
    } else {
        (m, p, cblas_sys::CblasNoTrans)
    };
    assert!(a.is_standard_layout() && c.is_standard_layout() && c.dim() == (n, n));
    if k == 0 {
        return;
    }
    // SAFETY: `a` holds m·p values row-major with stride p, `c` n·n with stride n (asserted).
    unsafe {
        cblas_sys::cblas_dsyrk(
            cblas_sys::CblasRowMajor,
            uplo,
            trans,
            n as i32,
            k as i32,
            1.0,
            a.as_ptr(),
            p as i32,
            1.0,
            c.as_mut_ptr(),
            n as i32,
        );
    }
}

/// The full symmetric matrix from its upper triangle.
fn symmetric(upper: &Array2<f64>) -> Array2<f64> {
    let mut m = upper.as_standard_layout().into_owned();
    let p = m.nrows();
    let s = m.as_slice_mut().expect("standard layout");
    // Tiles, so that the transposed reads stay in cache.
    const T: usize = 32;
    for i0 in (0..p).step_by(T) {
        for j0 in (0..=i0).step_by(T) {
            for i in i0..(i0 + T).min(p) {
                for j in j0..(j0 + T).min(i) {
                    s[i * p + j] = s[j * p + i];
                }
            }
        }
    }
    m
}

/// `Σ mᵢⱼ²` (eight partial sums over the row-major values).
fn fro2(m: &Array2<f64>) -> f64 {
    match m.as_slice() {
        Some(v) => dot(v, v),
        None => m.iter().map(|v| v * v).sum(),
    }
}

impl PairAccumulator {
    /// An empty accumulator for widths `d₁`, `d₂`, shifting rows by `shift_x`, `shift_y`
    /// (any fixed vectors; use [`PairAccumulator::new`] for none).
    pub fn with_shift(shift_x: Array1<f64>, shift_y: Array1<f64>) -> Self {
        let (d1, d2) = (shift_x.len(), shift_y.len());
        Self {
            n: 0.0,
            shift_x,
            shift_y,
            sx: Array1::zeros(d1),
            sy: Array1::zeros(d2),
            xx: Array2::zeros((d1, d1)),
            yy: Array2::zeros((d2, d2)),
            yx: Array2::zeros((d2, d1)),
            sq_x: 0.0,
            sq_y: 0.0,
            x4: 0.0,
            y4: 0.0,
            x2y2: 0.0,
            a_xy: Array1::zeros(d1),
            b_yx: Array1::zeros(d2),
            a_xx: Array1::zeros(d1),
            b_yy: Array1::zeros(d2),
            cos_sum: 0.0,
            cos_sq: 0.0,
            cos_zero: 0.0,
            ratio_sum: 0.0,
            ratio_zero: 0.0,
        }
    }

    /// An empty accumulator without shift.
    pub fn new(d1: usize, d2: usize) -> Self {
        Self::with_shift(Array1::zeros(d1), Array1::zeros(d2))
    }

    /// Widths `(d₁, d₂)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.sx.len(), self.sy.len())
    }

    /// Add paired rows: `x` is `(m, d₁)`, `y` is `(m, d₂)`. A non-finite value is an error
    /// naming its row (0-based within this call; x's rows are checked before y's).
    pub fn update(
        &mut self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
    ) -> Result<(), MetricError> {
        self.update_rows(x, y, true)
    }

    /// Take `xᵀx` from `o`, an accumulator fed the same x rows with the same x shift (refused
    /// otherwise): completes an accumulator fed by [`add_prepared`](Self::add_prepared) without
    /// `xᵀx` (several students against one base compute the base's Gram matrix once).
    pub fn copy_xx_from(&mut self, o: &PairAccumulator) -> Result<(), MetricError> {
        if self.dims().0 != o.dims().0
            || self.shift_x != o.shift_x
            || self.n != o.n
            || self.sx != o.sx
        {
            return Err(MetricError::Merge);
        }
        self.xx.assign(&o.xx);
        Ok(())
    }

    /// [`update`](Self::update) for float64 rows (no rounding to f32 on the way in).
    pub fn update_f64(
        &mut self,
        x: ArrayView2<'_, f64>,
        y: ArrayView2<'_, f64>,
    ) -> Result<(), MetricError> {
        self.update_rows(x, y, true)
    }

    fn update_rows<T: Element>(
        &mut self,
        x: ArrayView2<'_, T>,
        y: ArrayView2<'_, T>,
        with_xx: bool,
    ) -> Result<(), MetricError> {
        self.check_shapes(x.dim(), y.dim())?;
        let px = PreparedRows::new(x, &self.shift_x, Precision::F64, "x")?;
        let py = PreparedRows::new(y, &self.shift_y, Precision::F64, "y")?;
        self.add_prepared(&px, &py, with_xx)
    }

    /// Shapes `(m, d₁)`, `(m, d₂)`.
    fn check_shapes(&self, x: (usize, usize), y: (usize, usize)) -> Result<(), MetricError> {
        let (d1, d2) = self.dims();
        if x.0 != y.0 || x.1 != d1 || y.1 != d2 {
            return Err(MetricError::Shape {
                x: vec![x.0, x.1],
                y: vec![y.0, y.1],
                expected: (d1, d2),
            });
        }
        Ok(())
    }

    /// Add rows prepared once per side ([`PreparedRows`]): `x` with this accumulator's x shift,
    /// `y` with its y shift (refused otherwise), both in the same precision. `xᵀx` only when
    /// `with_xx` (else take it afterwards with [`copy_xx_from`](Self::copy_xx_from)). One base side prepared
    /// once serves every student compared with it.
    pub fn add_prepared<T: Element>(
        &mut self,
        x: &PreparedRows<'_, T>,
        y: &PreparedRows<'_, T>,
        with_xx: bool,
    ) -> Result<(), MetricError> {
        self.check_shapes(x.raw.dim(), y.raw.dim())?;
        if x.shift != self.shift_x
            || y.shift != self.shift_y
            || x.shifted.precision() != y.shifted.precision()
        {
            return Err(MetricError::Prepared);
        }
        let (d1, d2) = self.dims();
        let m = x.raw.nrows();
        // Row by row: the raw-row measures and Σ‖y‖²x, Σ‖x‖²y (rows stay in cache).
        let a_xy = self
            .a_xy
            .as_slice_mut()
            .expect("an owned Array1 is contiguous");
        let b_yx = self
            .b_yx
            .as_slice_mut()
            .expect("an owned Array1 is contiguous");
        for r in 0..m {
            let (nx, ny) = (x.raw_norm[r], y.raw_norm[r]);
            if nx == 0.0 {
                self.ratio_zero += 1.0;
            } else {
                self.ratio_sum += ny / nx;
            }
            if d1 == d2 {
                if nx == 0.0 || ny == 0.0 {
                    self.cos_zero += 1.0;
                } else {
                    let dist = 1.0 - dot_rows(x.raw.row(r), y.raw.row(r)) / (nx * ny);
                    self.cos_sum += dist;
                    self.cos_sq += dist * dist;
                }
            }
            x.shifted.axpy_row(r, y.sq[r], a_xy);
            y.shifted.axpy_row(r, x.sq[r], b_yx);
        }
        self.n += m as f64;
        self.sx += &x.col_sum;
        self.sy += &y.col_sum;
        self.a_xx += &x.moment;
        self.b_yy += &y.moment;
        self.sq_x += x.sq.iter().sum::<f64>();
        self.sq_y += y.sq.iter().sum::<f64>();
        self.x4 += dot(&x.sq, &x.sq);
        self.y4 += dot(&y.sq, &y.sq);
        self.x2y2 += dot(&x.sq, &y.sq);
        match (&x.shifted, &y.shifted) {
            (Shifted::F64(xs), Shifted::F64(ys)) => {
                if with_xx {
                    syrk_acc(xs.view(), &mut self.xx, cblas_sys::CblasUpper, true);
                }
                syrk_acc(ys.view(), &mut self.yy, cblas_sys::CblasUpper, true);
                gemm_tn_acc(ys, xs, &mut self.yx);
            }
            (Shifted::F32(xs), Shifted::F32(ys)) => {
                if with_xx {
                    mixed::syrk_acc(xs, &mut self.xx);
                }
                mixed::syrk_acc(ys, &mut self.yy);
                mixed::gemm_acc(ys, xs, &mut self.yx);
            }
            _ => return Err(MetricError::Prepared),
        }
        Ok(())
    }

    /// Add another accumulator's sums (a shard over other rows, same shift).
    pub fn merge(&mut self, o: &PairAccumulator) -> Result<(), MetricError> {
        if self.dims() != o.dims() || self.shift_x != o.shift_x || self.shift_y != o.shift_y {
            return Err(MetricError::Merge);
        }
        self.n += o.n;
        self.sx += &o.sx;
        self.sy += &o.sy;
        self.xx += &o.xx;
        self.yy += &o.yy;
        self.yx += &o.yx;
        self.sq_x += o.sq_x;
        self.sq_y += o.sq_y;
        self.x4 += o.x4;
        self.y4 += o.y4;
        self.x2y2 += o.x2y2;
        self.a_xy += &o.a_xy;
        self.b_yx += &o.b_yx;
        self.a_xx += &o.a_xx;
        self.b_yy += &o.b_yy;
        self.cos_sum += o.cos_sum;
        self.cos_sq += o.cos_sq;
        self.cos_zero += o.cos_zero;
        self.ratio_sum += o.ratio_sum;
        self.ratio_zero += o.ratio_zero;
        Ok(())
    }

    fn centered(mut m: Array2<f64>, a: &Array1<f64>, b: &Array1<f64>, n: f64) -> Array2<f64> {
        // m − a bᵀ / n
        for (mut row, &ai) in m.outer_iter_mut().zip(a) {
            for (v, &bj) in row.iter_mut().zip(b) {
                *v -= ai * bj / n;
            }
        }
        m
    }

    /// Song et al.'s unbiased HSIC from the Gram-form pieces.
    fn hsic_u(n: f64, tr_kl: f64, sum_k: f64, sum_l: f64, one_kl_one: f64) -> f64 {
        (tr_kl + sum_k * sum_l / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * one_kl_one)
            / (n * (n - 3.0))
    }

    /// Unbiased HSIC of (X, Y), (X, X), (Y, Y) with linear kernels.
    pub fn hsic_unbiased(&self) -> (f64, f64, f64) {
        self.hsic_unbiased_of(&symmetric(&self.xx), &symmetric(&self.yy))
    }

    /// [`hsic_unbiased`](Self::hsic_unbiased) given the full `XᵀX`, `YᵀY`.
    fn hsic_unbiased_of(&self, xx_full: &Array2<f64>, yy_full: &Array2<f64>) -> (f64, f64, f64) {
        let n = self.n;
        let sx = &self.sx;
        let sy = &self.sy;
        let sum_k = sx.dot(sx) - self.sq_x;
        let sum_l = sy.dot(sy) - self.sq_y;
        let xy = Self::hsic_u(
            n,
            fro2(&self.yx) - self.x2y2,
            sum_k,
            sum_l,
            sy.dot(&self.yx.dot(sx)) - self.a_xy.dot(sx) - self.b_yx.dot(sy) + self.x2y2,
        );
        let xx = Self::hsic_u(
            n,
            fro2(xx_full) - self.x4,
            sum_k,
            sum_k,
            sx.dot(&xx_full.dot(sx)) - 2.0 * self.a_xx.dot(sx) + self.x4,
        );
        let yy = Self::hsic_u(
            n,
            fro2(yy_full) - self.y4,
            sum_l,
            sum_l,
            sy.dot(&yy_full.dot(sy)) - 2.0 * self.b_yy.dot(sy) + self.y4,
        );
        (xy, xx, yy)
    }

    /// Compute every measure. Undefined values are null with a reason, never NaN.
    pub fn finalize(&self) -> Result<PairMetrics, MetricError> {
        self.finalize_with(Precision::F64)
    }

    /// [`finalize`](Self::finalize) for sums accumulated in `precision`: with
    /// [`Precision::Mixed`] Procrustes' nuclear norm comes from the eigenvalues of `MᵀM`
    /// (`‖M‖_* = Σ √λᵢ`, a symmetric eigensolver instead of an SVD, about half its time) — its
    /// error for tiny singular values, √(u₆₄)·‖M‖ ≈ 1.5e-8·‖M‖, is below the f32 products'.
    pub fn finalize_with(&self, precision: Precision) -> Result<PairMetrics, MetricError> {
        let n = self.n;
        let count = n as usize;
        let (d1, d2) = self.dims();
        let empty = |r: &str| Nullable::null(r);
        if count == 0 {
            let r = "no examples";
            return Ok(PairMetrics {
                n: 0,
                linear_cka: empty(r),
                debiased_cka: empty(r),
                cosine_distance: empty(r),
                cosine_distance_std: empty(r),
                procrustes_distance: empty(r),
                norm_ratio: empty(r),
            });
        }
        let (xx_full, yy_full) = (symmetric(&self.xx), symmetric(&self.yy));
        let cxx = Self::centered(xx_full.clone(), &self.sx, &self.sx, n);
        let cyy = Self::centered(yy_full.clone(), &self.sy, &self.sy, n);
        let cyx = Self::centered(self.yx.clone(), &self.sy, &self.sx, n);
        let fro = |m: &Array2<f64>| fro2(m).sqrt();
        let tr = |m: &Array2<f64>| m.diag().sum();
        let (fxx, fyy, tx, ty) = (fro(&cxx), fro(&cyy), tr(&cxx), tr(&cyy));
        let degenerate = if count < 2 {
            Some("needs n ≥ 2".to_string())
        } else if tx <= 0.0 {
            Some("X has zero variance (all rows equal)".into())
        } else if ty <= 0.0 {
            Some("Y has zero variance (all rows equal)".into())
        } else {
            None
        };
        let linear_cka = match &degenerate {
            Some(r) => empty(r),
            None => {
                let f = fro(&cyx);
                Nullable::value((f * f / (fxx * fyy)).clamp(0.0, 1.0))
            }
        };
        let procrustes_distance = match &degenerate {
            Some(r) => empty(r),
            // The f32 rounding of the products is full-rank noise: with fewer examples than
            // dimensions it lifts the cross-covariance's zero singular values, hundreds of them,
            // and the nuclear norm moves by ≈ 1e-5 (measured on a 30-example store).
            None if precision == Precision::Mixed && count < d1.max(d2) => empty(&format!(
                "mixed precision needs n ≥ max(d₁, d₂) = {} for Procrustes (n = {count}): the f32 rounding lifts the zero singular values; use --precision f64",
                d1.max(d2)
            )),
            None => {
                let nuc = match precision {
                    Precision::F64 => nuclear_norm(&cyx)?,
                    Precision::Mixed => nuclear_norm_eig(&cyx)?,
                } / (tx * ty).sqrt();
                Nullable::value((2.0 - 2.0 * nuc).clamp(0.0, 2.0))
            }
        };
        let debiased_cka = if count < 4 {
            empty(&format!(
                "needs n ≥ 4 for the unbiased HSIC estimator (n = {count})"
            ))
        } else {
            let (xy, xx, yy) = self.hsic_unbiased_of(&xx_full, &yy_full);
            if xx <= 0.0 || yy <= 0.0 || !(xx * yy).is_finite() {
                empty(&format!(
                    "unbiased HSIC(X,X) = {xx:.3e}, HSIC(Y,Y) = {yy:.3e}: not positive, so the normaliser is undefined (too few or degenerate examples)"
                ))
            } else {
                Nullable::value(xy / (xx * yy).sqrt())
            }
        };
        let (cosine_distance, cosine_distance_std) = if d1 != d2 {
            let r = format!("needs equal widths (d₁ = {d1}, d₂ = {d2})");
            (empty(&r), empty(&r))
        } else if self.cos_zero > 0.0 {
            let r = format!(
                "{} rows have a zero vector: cosine undefined",
                self.cos_zero
            );
            (empty(&r), empty(&r))
        } else {
            let mean = self.cos_sum / n;
            let var = (self.cos_sq / n - mean * mean).max(0.0);
            (Nullable::value(mean), Nullable::value(var.sqrt()))
        };
        let norm_ratio = if self.ratio_zero > 0.0 {
            empty(&format!("{} base rows have zero norm", self.ratio_zero))
        } else {
            Nullable::value(self.ratio_sum / n)
        };
        Ok(PairMetrics {
            n: count,
            linear_cka,
            debiased_cka,
            cosine_distance,
            cosine_distance_std,
            procrustes_distance,
            norm_ratio,
        })
    }
}

/// Centred linear CKA from per-layer centred Gram pieces: used by the cross-layer matrix.
/// `cyx` is `Σ (y − ȳ)(x − x̄)ᵀ`, `fxx = ‖C_xx‖_F`, `fyy = ‖C_yy‖_F`.
pub fn linear_cka_from_parts(cyx_fro2: f64, fxx: f64, fyy: f64) -> Option<f64> {
    (fxx > 0.0 && fyy > 0.0).then(|| (cyx_fro2 / (fxx * fyy)).clamp(0.0, 1.0))
}

/// The sum of singular values of `m`.
pub fn nuclear_norm(m: &Array2<f64>) -> Result<f64, MetricError> {
    if m.is_empty() {
        return Ok(0.0);
    }
    let (_, s, _) = m
        .svd(false, false)
        .map_err(|e| MetricError::Linalg(e.to_string()))?;
    Ok(s.sum())
}

/// The sum of singular values of `m (p, q)` as `Σ √λᵢ` over the eigenvalues of `mᵀm` (or
/// `m mᵀ`, the smaller): a symmetric eigensolver instead of an SVD. Negative rounding of a
/// zero eigenvalue counts as zero; a tiny singular value's error is ≈ √(u)·‖m‖₂ (u = 2⁻⁵³),
/// so use [`nuclear_norm`] where that matters.
pub fn nuclear_norm_eig(m: &Array2<f64>) -> Result<f64, MetricError> {
    use ndarray_linalg::{layout::MatrixLayout, Lapack, UPLO};
    if m.is_empty() {
        return Ok(0.0);
    }
    let m = m.as_standard_layout();
    let (p, q) = m.dim();
    // The smaller Gram matrix, one triangle only (`dsyrk`: half a product's flops).
    let k = p.min(q);
    let mut g = Array2::<f64>::zeros((k, k));
    syrk_acc(m.view(), &mut g, cblas_sys::CblasLower, p >= q);
    let (mut a, _) = g.into_raw_vec_and_offset();
    // Eigenvalues only (ndarray-linalg's `eigvalsh` asks LAPACK for the vectors too). LAPACK
    // reads column-major, where the row-major lower triangle is the upper one (LAPACK's
    // upper-triangle reduction, `dsymv_U`, is the faster one in OpenBLAS: 1 % against 4 % of
    // a mixed-precision compare).
    let layout = MatrixLayout::C {
        row: k as i32,
        lda: k as i32,
    };
    let l = <f64 as Lapack>::eigh(false, layout, UPLO::Upper, &mut a)
        .map_err(|e| MetricError::Linalg(e.to_string()))?;
    Ok(l.iter().map(|&v| v.max(0.0).sqrt()).sum())
}
