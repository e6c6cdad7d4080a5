//! Fused element-wise ops with a hand-written backward pass, for the training forward on the
//! CPU (f32, contiguous inputs): RMSNorm, softmax over the last dimension and the rotary
//! embedding. Composed from candle's primitive ops (the `diff` path's fallback, used on other
//! devices and dtypes) each of these is 5–8 passes over the tensor forward and as many again
//! backward, every one allocating a new tensor; fused, each is one pass each way.
//!
//! Gradients (row-wise, `d` = last dimension, `g` = gradient of the output):
//! - RMSNorm `y = x · r · w`, `r = (mean(x²) + ε)^(−½)`:
//!   `dx = r · (g ⊙ w − x · r² · Σᵢ gᵢ wᵢ xᵢ / d)`, `dw = Σ_rows g ⊙ x · r`;
//! - softmax `y`: `dx = y ⊙ (g − Σᵢ gᵢ yᵢ)`;
//! - rotary embedding (halves `a`, `b` of each head, angle tables `cos`, `sin` `(seq, d/2)`):
//!   `y = (a cos − b sin, b cos + a sin)`, a rotation, so `dx` is the same op with `−sin`.
//!
//! Tests (`tests` below) check values and gradients against the composed ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::linear::f32_slice as slice;

type CResult<T> = candle_core::Result<T>;

/// Whether the fused ops apply to `x` (else the caller composes primitive ops).
pub fn fusable(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ss: f32 = row.iter().map(|v| v * v).sum();
    1.0 / (ss / row.len() as f32 + eps).sqrt()
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (x, w) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let d = w.len();
        if d == 0 || x.len() % d != 0 || l1.dims().last() != Some(&d) {
            candle_core::bail!("fused-rms-norm: shapes {:?} and {:?}", l1.dims(), l2.dims());
        }
        let (y, _) = rms_rows(x, w, self.eps);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        // One pass computes both: dx's values, then dw's d values, in one flat tensor.
        let x = x.contiguous()?;
        let both = x.apply_op3_no_bwd(w, &g.contiguous()?, &RmsNormBwd { eps: self.eps })?;
        let n = x.elem_count();
        let dx = both.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = both.narrow(0, n, w.elem_count())?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// RMSNorm's backward pass: `(x, w, g)` → `[dx (flat); dw]`.
struct RmsNormBwd {
    eps: f32,
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "fused-rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let n = self.name();
        let (x, w, g) = (slice(s1, l1, n)?, slice(s2, l2, n)?, slice(s3, l3, n)?);
        let d = w.len();
        let r: Vec<f32> = x
            .chunks_exact(d)
            .map(|row| inv_rms(row, self.eps))
            .collect();
        let mut out = vec![0f32; x.len()];
        let dw = rms_rows_backward(x, &r, w, g, &mut out);
        out.extend(dw);
        Ok((CpuStorage::F32(out), Shape::from(x.len() + d)))
    }
}

/// RMSNorm rows of `x (·, d)` with weight `w (d)`: `(y, r)` with `r` each row's inverse RMS
/// (the forward kernel of [`rms_norm`] and of the graph-free block pass).
pub(crate) fn rms_rows(x: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let mut y = Vec::with_capacity(x.len());
    let mut rs = Vec::with_capacity(x.len() / d);
    for row in x.chunks_exact(d) {
        let r = inv_rms(row, eps);
        rs.push(r);
        y.extend(row.iter().zip(w).map(|(v, wi)| v * r * wi));
    }
    (y, rs)
}

/// RMSNorm's backward from each row's inverse RMS `r`: adds `dx` into `dx_acc`, returns `dw`
/// (the kernel of [`rms_norm`]'s backward and of the graph-free block pass).
pub(crate) fn rms_rows_backward(
    x: &[f32],
    r: &[f32],
    w: &[f32],
    g: &[f32],
    dx_acc: &mut [f32],
) -> Vec<f32> {
    let d = w.len();
    let mut dw = vec![0f32; d];
    for (((xr, gr), &r), acc) in x
        .chunks_exact(d)
        .zip(g.chunks_exact(d))
        .zip(r)
        .zip(dx_acc.chunks_exact_mut(d))
    {
        let dot: f32 = xr.iter().zip(gr).zip(w).map(|((a, b), c)| a * b * c).sum();
        let k = r * r * dot / d as f32;
        for ((((xi, gi), wi), dwi), o) in xr.iter().zip(gr).zip(w).zip(dw.iter_mut()).zip(acc) {
            *o += r * (gi * wi - xi * k);
            *dwi += gi * xi * r;
        }
    }
    dw
}

/// RMSNorm of `x (…, d)` with weight `w (d)`, differentiable in both.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> CResult<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let d = *l.dims().last().unwrap_or(&1);
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks_exact(d.max(1)) {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let start = y.len();
            let mut sum = 0f32;
            y.extend(row.iter().map(|v| {
                let e = (v - m).exp();
                sum += e;
                e
            }));
            let inv = 1.0 / sum;
            y[start..].iter_mut().for_each(|v| *v *= inv);
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBwd)?))
    }
}

struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "fused-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let d = *l1.dims().last().unwrap_or(&1);
        let mut dx = Vec::with_capacity(y.len());
        for (yr, gr) in y.chunks_exact(d.max(1)).zip(g.chunks_exact(d.max(1))) {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            dx.extend(yr.iter().zip(gr).map(|(yi, gi)| yi * (gi - dot)));
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// Rotary embedding (halves layout, as HF's `rotate_half`) of `x (b, h, seq, d)` with angle
/// tables `(seq, d/2)`.
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let (_, _, seq, d) = l.shape().dims4()?;
        let half = d / 2;
        if d % 2 != 0 || self.cos.len() != seq * half || self.sin.len() != seq * half {
            candle_core::bail!(
                "fused-rope: x {:?} against tables of {} angles",
                l.dims(),
                self.cos.len()
            );
        }
        let mut y = vec![0f32; x.len()];
        for (i, (xr, yr)) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).enumerate() {
            let t = i % seq;
            let (c, s) = (
                &self.cos[t * half..(t + 1) * half],
                &self.sin[t * half..(t + 1) * half],
            );
            let (a, b) = xr.split_at(half);
            let (ya, yb) = yr.split_at_mut(half);
            for j in 0..half {
                ya[j] = a[j] * c[j] - b[j] * s[j];
                yb[j] = b[j] * c[j] + a[j] * s[j];
            }
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        let back = Rope {
            cos: self.cos.clone(),
            sin: self.sin.iter().map(|v| -v).collect(),
        };
        Ok(Some(g.contiguous()?.apply_op1_no_bwd(&back)?))
    }
}

/// Rotary embedding of `x (b, h, seq, d)` with `cos`, `sin` `(seq, d/2)`, differentiable in `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> CResult<Tensor> {
    let op = Rope {
        cos: cos.flatten_all()?.to_vec1()?,
        sin: sin.flatten_all()?.to_vec1()?,
    };
    x.contiguous()?.apply_op1(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max).max(1e-30);
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
            / scale
    }

    /// Values and gradients of `fused` equal `composed`'s (candle's primitive ops, whose own
    /// backward passes are the truth) for the inputs `vars`, under a random linear readout.
    fn check(
        vars: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Tensor,
        composed: impl Fn(&[Tensor]) -> Tensor,
        what: &str,
    ) {
        let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
            let vs: Vec<Var> = vars.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
            let ts: Vec<Tensor> = vs.iter().map(|v| v.as_tensor().clone()).collect();
            let y = f(&ts);
            let readout = rand(y.dims(), 99);
            let loss = (&y * &readout).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let gs: Vec<Tensor> = ts.iter().map(|t| grads.get(t).unwrap().clone()).collect();
            (y, gs)
        };
        let (yf, gf) = run(&fused);
        let (yc, gc) = run(&composed);
        let e = max_rel(&yf, &yc);
        assert!(e < 1e-5, "{what}: values differ by {e:.2e}");
        for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
            let e = max_rel(a, b);
            assert!(e < 1e-4, "{what}: gradient of input {i} differs by {e:.2e}");
        }
    }

    #[test]
    fn fused_rms_norm_equals_the_composed_ops() {
        let (x, w) = (rand(&[3, 5, 64], 1), rand(&[64], 2));
        check(
            &[x, w],
            |t| rms_norm(&t[0], &t[1], 1e-5).unwrap(),
            |t| candle_nn::ops::rms_norm_slow(&t[0], &t[1], 1e-5).unwrap(),
            "rms_norm",
        );
    }

    #[test]
    fn fused_softmax_equals_the_composed_ops() {
        let x = (rand(&[2, 3, 7, 7], 3) * 4.0).unwrap();
        check(
            &[x],
            |t| softmax_last_dim(&t[0]).unwrap(),
            |t| candle_nn::ops::softmax(&t[0], D::Minus1).unwrap(),
            "softmax",
        );
    }

    #[test]
    fn fused_rope_equals_the_composed_ops() {
        let x = rand(&[2, 3, 6, 8], 4);
        let cos = rand(&[6, 4], 5);
        let sin = rand(&[6, 4], 6);
        let (c2, s2) = (cos.clone(), sin.clone());
        check(
            &[x],
            move |t| rope(&t[0], &cos, &sin).unwrap(),
            move |t| candle_nn::rotary_emb::rope_slow(&t[0], &c2, &s2).unwrap(),
            "rope",
        );
    }
}
