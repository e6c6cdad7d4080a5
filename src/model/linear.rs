//! A linear layer `y = x Wᵀ (+ b)` whose CPU f32 inference path runs on OpenBLAS `sgemm`.
//!
//! candle's CPU matmul (the `gemm` crate) reaches about a third of OpenBLAS's throughput on
//! the 2-core machines repdrift targets; capture is dominated by these products. The BLAS
//! path is a candle [`CustomOp2`] whose backward pass runs on BLAS as well; inference calls it
//! without recording a graph. Non-CPU devices and other dtypes use candle's own matmul. A
//! weight held in bf16/f16 (a half-precision checkpoint, kept at its stored size) is widened
//! to f32 on the CPU inside the product, 256 of its rows at a time into a buffer that stays in
//! cache (`HalfWeightGemm`); in training, where the product is differentiable, the whole
//! weight is converted for the product.
//! Shapes: `x` is `(…, in)`, `W` is `(out, in)` as in HF checkpoints, `y` is `(…, out)`.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Module, Shape, Tensor};

use repdrift_core::blas::{call_sgemm, for_each_tile, SendPtr, PARALLEL_FLOPS};
pub use repdrift_core::blas::{sgemm, sgemm_new, BlasThreads};

/// The f32 values of a contiguous CPU storage (the custom ops' inputs), or a named error.
pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: f32 only");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// `op(a) · op(b)` through `cblas_sgemm` for contiguous 2-D f32 inputs, where `op` transposes
/// when the flag says so. `(false, true)` is the linear layer `x (m, k) · w (n, k)ᵀ`; its
/// backward pass runs on the same BLAS (`dx = g · w`, `dw = gᵀ · x`), so training keeps
/// OpenBLAS speed.
struct BlasGemm {
    trans_a: bool,
    trans_b: bool,
}

impl CustomOp2 for BlasGemm {
    fn name(&self) -> &'static str {
        "blas-gemm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (r1, c1) = l1.shape().dims2()?;
        let (r2, c2) = l2.shape().dims2()?;
        let (m, k) = if self.trans_a { (c1, r1) } else { (r1, c1) };
        let (k2, n) = if self.trans_b { (c2, r2) } else { (r2, c2) };
        if k != k2 {
            candle_core::bail!("blas-gemm: inner dims differ: {k} vs {k2}");
        }
        let (a, b) = (
            f32_slice(s1, l1, "blas-gemm")?,
            f32_slice(s2, l2, "blas-gemm")?,
        );
        // Not zero-filled (`sgemm_new`): the fill was a whole extra pass over the output
        // (≈ 4 % of capture's profile).
        let c = sgemm_new((self.trans_a, self.trans_b), (m, n, k), (a, c1), (b, c2));
        Ok((CpuStorage::F32(c), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        if self.trans_a || !self.trans_b {
            candle_core::bail!("blas-gemm: backward only for the linear layer form");
        }
        let g = g.contiguous()?;
        let dx = g.apply_op2_no_bwd(
            w,
            &BlasGemm {
                trans_a: false,
                trans_b: false,
            },
        )?;
        let dw = g.apply_op2_no_bwd(
            &x.contiguous()?,
            &BlasGemm {
                trans_a: true,
                trans_b: false,
            },
        )?;
        Ok((Some(dx), Some(dw)))
    }
}

const LINEAR_FORM: BlasGemm = BlasGemm {
    trans_a: false,
    trans_b: true,
};

/// `x (m, k) · w (n, k)ᵀ` for an f32 `x` and a weight held in bf16 or f16 (inference only).
/// The weight is widened `HALF_ROWS` rows at a time — exactly: every half value is an f32
/// value — into a buffer that stays in cache, and each block of C's columns is one
/// single-threaded `sgemm`. Converting the whole weight for every product instead wrote 4 bytes
/// per parameter to memory and read them back (36 % of a 1.1B bf16 capture's time). The cut
/// depends on the shape alone; the blocks run over the cores when no guard is held, as
/// [`sgemm`]'s tiles do.
struct HalfWeightGemm;

/// Weight rows (C columns) per block of [`HalfWeightGemm`]: 256 × k f32 values (2 MiB at
/// k = 2048), and enough columns per `sgemm` call that packing `x` again for each block costs
/// little against the block's products.
const HALF_ROWS: usize = 256;

impl CustomOp2 for HalfWeightGemm {
    fn name(&self) -> &'static str {
        "blas-gemm-half-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("blas-gemm-half-weight: inner dims differ: {k} vs {k2}");
        }
        let x = f32_slice(s1, l1, "blas-gemm-half-weight")?;
        let w = WeightRows::of(s2, l2, "blas-gemm-half-weight")?;
        Ok((
            CpuStorage::F32(linear_rows(x, w, m, n, k)),
            Shape::from((m, n)),
        ))
    }
}

/// A product weight `(out, in)`, row-major, read in place: f32, or a half dtype held at its
/// stored size.
#[derive(Debug, Clone, Copy)]
pub enum WeightRows<'a> {
    F32(&'a [f32]),
    Bf16(&'a [half::bf16]),
    F16(&'a [half::f16]),
}

impl<'a> WeightRows<'a> {
    /// The values of a contiguous CPU storage (f32, bf16 or f16), or a named error.
    pub fn of(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<Self> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("{op}: the weight must be contiguous");
        };
        Ok(match s {
            CpuStorage::F32(v) => Self::F32(&v[a..b]),
            CpuStorage::BF16(v) => Self::Bf16(&v[a..b]),
            CpuStorage::F16(v) => Self::F16(&v[a..b]),
            _ => candle_core::bail!("{op}: weights must be f32, bf16 or f16"),
        })
    }

    /// The f32 values. Only f32 weights have them: a backward pass runs on trainable blocks,
    /// which training always holds as f32 copies, so a half weight here is a bug of the caller.
    pub fn f32(self) -> &'a [f32] {
        match self {
            Self::F32(v) => v,
            _ => panic!("a product that needs f32 weights got a half-precision one"),
        }
    }
}

/// `x (rows, n) · W (out, n)ᵀ` → `(rows, out)`: one [`sgemm_new`] for an f32 weight; a half
/// weight is widened block by block inside the product (`HalfWeightGemm`).
pub fn linear_rows(x: &[f32], w: WeightRows<'_>, rows: usize, out: usize, n: usize) -> Vec<f32> {
    /// Widen rows r0..r1 of the `(out, n)` weight `w` into `dst`.
    /// (`f` is a function item, a type of its own, so that the loop is compiled for it and
    /// vectorised: through a function pointer the widening ran 4 s slower on a 1.1B capture.)
    fn widen<'a, H: Copy + Sync, F: Fn(H) -> f32 + Sync + 'a>(
        w: &'a [H],
        n: usize,
        f: F,
    ) -> impl Fn(&mut [f32], usize, usize) + Sync + 'a {
        move |dst, r0, r1| {
            for (d, h) in dst.iter_mut().zip(&w[r0 * n..r1 * n]) {
                *d = f(*h);
            }
        }
    }
    let dims = (rows, out, n);
    let short = |len: usize| assert!(len >= out * n, "blas-gemm-half-weight: W too short");
    match w {
        WeightRows::F32(w) => sgemm_new((false, true), dims, (x, n), (w, n)),
        WeightRows::Bf16(w) => {
            short(w.len());
            half_weight_product(x, dims, widen(w, n, half::bf16::to_f32))
        }
        WeightRows::F16(w) => {
            short(w.len());
            half_weight_product(x, dims, widen(w, n, half::f16::to_f32))
        }
    }
}

/// C (m × n, row-major) = x · Wᵀ with W's rows widened block by block by `widen(dst, r0, r1)`.
fn half_weight_product(
    x: &[f32],
    (m, n, k): (usize, usize, usize),
    widen: impl Fn(&mut [f32], usize, usize) + Sync,
) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    assert!(x.len() >= m * k, "blas-gemm-half-weight: x too short");
    let blocks = n.div_ceil(HALF_ROWS);
    let workers = if BlasThreads::held() || blocks < 2 || m * n * k < PARALLEL_FLOPS {
        1
    } else {
        std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1)
            .min(blocks)
    };
    let _one = BlasThreads::single();
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let cp = SendPtr(c.as_mut_ptr());
    let block = |t: usize, buf: &mut Vec<f32>| {
        let (r0, r1) = (t * HALF_ROWS, ((t + 1) * HALF_ROWS).min(n));
        buf.resize((r1 - r0) * k, 0.0);
        widen(buf, r0, r1);
        let cp = &cp;
        // SAFETY: x holds m·k values (checked), buf (r1 − r0)·k; C's columns r0..r1 of every
        // row lie inside its m·n room, and blocks write disjoint columns.
        unsafe {
            call_sgemm(
                (false, true),
                (m, r1 - r0, k),
                1.0,
                x.as_ptr(),
                k,
                buf.as_ptr(),
                k,
                0.0,
                cp.0.add(r0),
                n,
            )
        };
    };
    for_each_tile(blocks, workers, block);
    // SAFETY: with β = 0 and k > 0 every block's sgemm wrote its columns of every row, and the
    // blocks cover all n columns.
    unsafe { c.set_len(m * n) };
    c
}

/// Batched `a (B, m, k)` · `b (B', k, n)` (or `b (B', n, k)`ᵀ with `trans_b`) → `(B, m, n)`
/// through one `cblas_sgemm` per matrix. Grouped-query attention: `a`'s matrix `i` pairs
/// with `b`'s matrix `(i / heads) * kv_heads + (i % heads) / (heads / kv_heads)`, so K and V
/// are never copied per query head.
struct BlasBmm {
    trans_b: bool,
    heads: usize,
    kv_heads: usize,
}

impl CustomOp2 for BlasBmm {
    fn name(&self) -> &'static str {
        "blas-bmm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (ba, m, k) = l1.shape().dims3()?;
        let (bb, r2, c2) = l2.shape().dims3()?;
        let (k2, n) = if self.trans_b { (c2, r2) } else { (r2, c2) };
        let rep = self.heads / self.kv_heads;
        if k != k2 || ba % self.heads != 0 || bb != ba / self.heads * self.kv_heads {
            candle_core::bail!(
                "blas-bmm: incompatible shapes {:?} {:?}",
                l1.dims(),
                l2.dims()
            );
        }
        let (a, b) = (
            f32_slice(s1, l1, "blas-bmm")?,
            f32_slice(s2, l2, "blas-bmm")?,
        );
        // Not zero-filled (β = 0: BLAS does not read C); every matrix i is written below.
        let mut c: Vec<f32> = Vec::with_capacity(ba * m * n);
        if m == 0 || n == 0 || k == 0 {
            c.resize(ba * m * n, 0.0);
            return Ok((CpuStorage::F32(c), Shape::from((ba, m, n))));
        }
        let tb = if self.trans_b {
            cblas_sys::CblasTrans
        } else {
            cblas_sys::CblasNoTrans
        };
        let ldb = if self.trans_b { k } else { n };
        // One BLAS thread: per-head products are small, and their bits must not depend on the
        // process's thread count.
        let _one = BlasThreads::single();
        for i in 0..ba {
            let j = (i / self.heads) * self.kv_heads + (i % self.heads) / rep;
            // SAFETY: matrix i of a holds m*k values, matrix j of b k*n; c has room for ba*m*n.
            unsafe {
                cblas_sys::cblas_sgemm(
                    cblas_sys::CblasRowMajor,
                    cblas_sys::CblasNoTrans,
                    tb,
                    m as i32,
                    n as i32,
                    k as i32,
                    1.0,
                    a[i * m * k..].as_ptr(),
                    k as i32,
                    b[j * k * n..].as_ptr(),
                    ldb as i32,
                    0.0,
                    c.as_mut_ptr().add(i * m * n),
                    n as i32,
                );
            }
        }
        // SAFETY: the loop wrote all ba matrices of m*n values.
        unsafe { c.set_len(ba * m * n) };
        Ok((CpuStorage::F32(c), Shape::from((ba, m, n))))
    }
}

/// Grouped-query batched matmul for attention. `a` is `(batch, heads, m, k)`, `b` is
/// `(batch, kv_heads, k, n)`, or `(batch, kv_heads, n, k)` with `trans_b`; returns
/// `(batch, heads, m, n)`. On CPU f32 inference it runs on OpenBLAS without copying K/V per
/// head; otherwise (training, GPU) it repeats K/V and uses candle's matmul.
pub fn attention_matmul(
    a: &Tensor,
    b: &Tensor,
    trans_b: bool,
    differentiable: bool,
) -> candle_core::Result<Tensor> {
    let (bs, heads, m, k) = a.dims4()?;
    let (_, kv_heads, r, c) = b.dims4()?;
    let cpu = !differentiable && matches!(a.device(), Device::Cpu) && a.dtype() == DType::F32;
    if cpu {
        let a3 = a.contiguous()?.reshape((bs * heads, m, k))?;
        let b3 = b.contiguous()?.reshape((bs * kv_heads, r, c))?;
        let out = a3.apply_op2_no_bwd(
            &b3,
            &BlasBmm {
                trans_b,
                heads,
                kv_heads,
            },
        )?;
        let n = out.dim(2)?;
        out.reshape((bs, heads, m, n))
    } else {
        let b = candle_transformers::utils::repeat_kv(b.clone(), heads / kv_heads)?.contiguous()?;
        let b = if trans_b { b.t()? } else { b };
        a.contiguous()?.matmul(&b)
    }
}

/// A linear layer with HF's weight layout `(out, in)`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// Record the product in the autograd graph (training); on CPU it still runs on BLAS.
    differentiable: bool,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            differentiable: false,
        }
    }

    /// The weight, `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Record the product in candle's autograd graph (training) or not (inference).
    pub fn set_differentiable(&mut self, on: bool) {
        self.differentiable = on;
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = *dims.last().expect("linear input has at least one dim");
        let lead: usize = dims[..dims.len() - 1].iter().product();
        let n = self.weight.dim(0)?;
        let cpu_f32 = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32;
        let half = matches!(self.weight.dtype(), DType::BF16 | DType::F16);
        // A weight held in its stored half dtype (a bf16/f16 checkpoint read on the CPU) is
        // widened exactly, every half value being an f32 value: block by block inside the
        // product for inference, whole for a differentiable product.
        let converted = if half && cpu_f32 && self.differentiable {
            Some(self.weight.to_dtype(DType::F32)?)
        } else {
            None
        };
        let weight = converted.as_ref().unwrap_or(&self.weight);
        let y = if cpu_f32 && half && !self.differentiable {
            let x2 = x.reshape((lead, k))?.contiguous()?;
            x2.apply_op2_no_bwd(&self.weight.contiguous()?, &HalfWeightGemm)?
        } else if cpu_f32 && weight.dtype() == DType::F32 {
            let x2 = x.reshape((lead, k))?.contiguous()?;
            if self.differentiable {
                x2.apply_op2(weight, LINEAR_FORM)?
            } else {
                x2.apply_op2_no_bwd(weight, &LINEAR_FORM)?
            }
        } else {
            x.reshape((lead, k))?.matmul(&weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("non-empty") = n;
        y.reshape(out_dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32: a bf16 weight widened block by block inside the product. Truth: the textbook
    /// float64 sum over the widened values (every bf16 value is an f32 value), and the f32
    /// product of the widened weight, bit for bit — on one block and on several (n over
    /// `HALF_ROWS`), with C's rows below and above the row-tiling threshold, on one core
    /// (under a guard) and over the cores.
    #[test]
    fn a_half_weight_product_equals_the_f32_product_of_its_widened_weight() {
        let mut seed = 11u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(m, n, k) in &[(5, 40, 33), (37, 600, 70), (520, 300, 64)] {
            let x: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let w: Vec<half::bf16> = (0..n * k).map(|_| half::bf16::from_f32(rnd())).collect();
            let wide: Vec<f32> = w.iter().map(|h| h.to_f32()).collect();
            let reference = sgemm_new((false, true), (m, n, k), (&x, k), (&wide, k));
            let parallel = linear_rows(&x, WeightRows::Bf16(&w), m, n, k);
            let serial = {
                let _g = BlasThreads::single();
                linear_rows(&x, WeightRows::Bf16(&w), m, n, k)
            };
            assert_eq!(
                parallel, reference,
                "{m}x{n}x{k}: not the f32 product's bits"
            );
            assert_eq!(serial, reference, "{m}x{n}x{k}: depends on the cores");
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|t| x[i * k + t] as f64 * wide[j * k + t] as f64)
                        .sum();
                    let got = parallel[i * n + j] as f64;
                    assert!(
                        (got - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                        "{got} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn blas_path_equals_candle_matmul() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 5, 7), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 7), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
        let mut lin = Linear::new(w, Some(b));
        let fast = lin.forward(&x).unwrap();
        lin.set_differentiable(true);
        let slow = lin.forward(&x).unwrap();
        assert_eq!(fast.dims(), &[2, 5, 3]);
        let d = (fast - slow)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "max abs diff {d}");
    }

    #[test]
    fn blas_attention_matmul_equals_repeat_kv_matmul() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 6, 5, 4), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (2, 3, 5, 4), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (2, 3, 5, 7), &dev).unwrap();
        for (b, tb) in [(&k, true), (&v, false)] {
            let a = if tb {
                q.clone()
            } else {
                Tensor::randn(0f32, 1.0, (2, 6, 5, 5), &dev).unwrap()
            };
            let fast = attention_matmul(&a, b, tb, false).unwrap();
            let slow = attention_matmul(&a, b, tb, true).unwrap();
            assert_eq!(fast.dims(), slow.dims());
            let d = (fast - slow)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "max abs diff {d}");
        }
    }
}
