//! AdamW (Loshchilov & Hutter) with decoupled weight decay and global-norm gradient clipping,
//! with its state exposed so checkpoints can save and restore it exactly (candle-nn's `AdamW`
//! keeps its moments private).

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Storage, Tensor, Var};

use crate::error::Result;

/// Whether the fused in-place CPU kernels apply: the model's fused-op condition (f32 on the
/// CPU), and contiguous.
fn fusable(t: &Tensor) -> bool {
    crate::model::fused::fusable(t) && t.is_contiguous()
}

/// Sum of squares of a contiguous f32 CPU tensor in f64, read in place.
fn sum_sq_cpu(t: &Tensor) -> Option<f64> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => {
            Some(v[a..b].iter().map(|&x| f64::from(x) * f64::from(x)).sum())
        }
        _ => None,
    }
}

/// The slice a contiguous layout covers.
fn span(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    l.contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("adamw: {what} is not contiguous")))
}

/// In place: `m ← β·m + (1 − β)·x` with `x = s·g` (`square = false`) or `(s·g)²`.
struct Moment {
    beta: f32,
    scale: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let ((a1, b1), (a2, b2)) = (span(l1, "a moment")?, span(l2, "a gradient")?);
        let (CpuStorage::F32(m), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("adamw: f32 only")
        };
        let (beta, rest, s) = (self.beta, 1.0 - self.beta, self.scale);
        let (m, g) = (&mut m[a1..b1], &g[a2..b2]);
        if self.square {
            m.iter_mut().zip(g).for_each(|(m, &g)| {
                let x = g * s;
                *m = *m * beta + x * x * rest
            });
        } else {
            m.iter_mut()
                .zip(g)
                .for_each(|(m, &g)| *m = *m * beta + g * s * rest);
        }
        Ok(())
    }
}

/// In place: `p ← p·(1 − lr·wd) − lr·(m/c1) / (√(v/c2) + ε)`.
struct Apply {
    decay: f32,
    lr: f32,
    c1: f32,
    c2: f32,
    eps: f32,
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "adamw-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let (r1, r2, r3) = (span(l1, "a weight")?, span(l2, "m")?, span(l3, "v")?);
        let (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) = (s1, s2, s3) else {
            candle_core::bail!("adamw: f32 only")
        };
        let (p, m, v) = (&mut p[r1.0..r1.1], &m[r2.0..r2.1], &v[r3.0..r3.1]);
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            let update = (m / self.c1) / ((v / self.c2).sqrt() + self.eps);
            *p = *p * self.decay - update * self.lr;
        }
        Ok(())
    }
}

/// AdamW state for a fixed list of variables.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// First and second moments, one pair per variable, in variable order.
    pub m: Vec<Var>,
    pub v: Vec<Var>,
    /// Steps taken.
    pub t: usize,
}

impl AdamW {
    /// Zero moments shaped like `vars`.
    pub fn new(vars: &[Var], weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| -> Result<Var> { Ok(Var::zeros(v.shape(), v.dtype(), v.device())?) };
        Ok(Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            m: vars.iter().map(zeros).collect::<Result<_>>()?,
            v: vars.iter().map(zeros).collect::<Result<_>>()?,
            t: 0,
        })
    }

    /// The global L2 norm of the gradients of `vars` (missing gradients count as zero).
    pub fn grad_norm(vars: &[Var], grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                if let Some(s) = sum_sq_cpu(g) {
                    sq += s;
                    continue;
                }
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sq.sqrt())
    }

    /// One step at learning rate `lr`, gradients scaled by `clip` (1 for none). f32 CPU
    /// tensors are updated in place by fused kernels (three passes, no allocation); others by
    /// composed tensor ops.
    pub fn step(&mut self, vars: &[Var], grads: &GradStore, lr: f64, clip: f64) -> Result<()> {
        self.step_with(vars, grads, lr, clip, true)
    }

    fn step_with(
        &mut self,
        vars: &[Var],
        grads: &GradStore,
        lr: f64,
        clip: f64,
        fuse: bool,
    ) -> Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let (m, v) = (self.m[i].as_tensor(), self.v[i].as_tensor());
            if fuse && [var.as_tensor(), g, m, v].into_iter().all(fusable) {
                // Three in-place passes instead of fourteen allocating ones.
                let moment = |beta: f64, square| Moment {
                    beta: beta as f32,
                    scale: clip as f32,
                    square,
                };
                m.inplace_op2(g, &moment(b1, false))?;
                v.inplace_op2(g, &moment(b2, true))?;
                let apply = Apply {
                    decay: (1.0 - lr * self.weight_decay) as f32,
                    lr: lr as f32,
                    c1: c1 as f32,
                    c2: c2 as f32,
                    eps: self.eps as f32,
                };
                var.as_tensor().inplace_op3(m, v, &apply)?;
                continue;
            }
            let g = (g * clip)?;
            let m = ((self.m[i].as_tensor() * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((self.v[i].as_tensor() * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let m_hat = (&m / c1)?;
            let v_hat = (&v / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            let next = (decayed - (update * lr)?)?;
            self.m[i].set(&m)?;
            self.v[i].set(&v)?;
            var.set(&next)?;
        }
        Ok(())
    }
}

/// Scale factor that brings a gradient of global norm `norm` down to `max_norm` (1 if it is
/// already within, or if `max_norm` is 0 = no clipping).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up over the first `warmup`
/// fraction, then linear decay to zero (transformers' `linear` schedule).
pub fn lr_at(step: usize, total: usize, lr: f64, warmup: f64) -> f64 {
    let w = (warmup * total as f64).round() as usize;
    if step < w {
        lr * (step + 1) as f64 / w as f64
    } else {
        let rest = (total - w).max(1) as f64;
        lr * (1.0 - (step - w) as f64 / rest).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((lr_at(0, 100, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 100, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 100, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!(lr_at(99, 100, 1.0, 0.1) < 0.02);
        assert!((lr_at(0, 10, 2.0, 0.0) - 2.0).abs() < 1e-12);
    }

    /// The fused in-place step equals the composed tensor-op step (the formula of
    /// Loshchilov & Hutter as `torch.optim.AdamW` implements it) over five steps with weight
    /// decay and clipping, on seeded random weights and gradients of two shapes.
    #[test]
    fn the_fused_step_equals_the_composed_one() {
        let dev = candle_core::Device::Cpu;
        let init = |seed: u64, shape: &[usize]| {
            let n = shape.iter().product();
            let w = crate::train::reward_model::seeded_normal(n, 1.0, seed);
            Var::from_tensor(&Tensor::from_vec(w, shape, &dev).unwrap()).unwrap()
        };
        let shapes: [&[usize]; 2] = [&[7, 33], &[129]];
        let (fused, composed): (Vec<Var>, Vec<Var>) = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (init(i as u64, s), init(i as u64, s)))
            .unzip();
        let mut opt_f = AdamW::new(&fused, 0.01).unwrap();
        let mut opt_c = AdamW::new(&composed, 0.01).unwrap();
        for step in 0..5u64 {
            // loss = Σ c ⊙ w² with seeded c: gradients 2 c ⊙ w, different at every step.
            let loss = |vars: &[Var]| {
                let mut total = Tensor::new(0f32, &dev).unwrap();
                for (i, v) in vars.iter().enumerate() {
                    let n = v.as_tensor().elem_count();
                    let c =
                        crate::train::reward_model::seeded_normal(n, 1.0, 100 + step + i as u64);
                    let c = Tensor::from_vec(c, v.shape(), &dev).unwrap();
                    let term = (v.as_tensor().sqr().unwrap() * c)
                        .unwrap()
                        .sum_all()
                        .unwrap();
                    total = (total + term).unwrap();
                }
                total.backward().unwrap()
            };
            let (gf, gc) = (loss(&fused), loss(&composed));
            let (nf, nc) = (
                AdamW::grad_norm(&fused, &gf).unwrap(),
                AdamW::grad_norm(&composed, &gc).unwrap(),
            );
            assert!((nf - nc).abs() <= 1e-5 * nc, "{nf} {nc}");
            let clip = clip_factor(nc, 5.0);
            opt_f.step_with(&fused, &gf, 0.05, clip, true).unwrap();
            opt_c.step_with(&composed, &gc, 0.05, clip, false).unwrap();
        }
        let flat =
            |v: &Var| -> Vec<f32> { v.as_tensor().flatten_all().unwrap().to_vec1().unwrap() };
        let largest = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        for (i, (f, c)) in fused.iter().zip(&composed).enumerate() {
            let (f, c) = (flat(f), flat(c));
            let worst = largest(&f, &c);
            assert!(worst < 1e-5, "largest difference {worst}");
            // Five steps of lr 0.05 moved the weights (so equality is not two no-ops).
            assert!(largest(&f, &flat(&init(i as u64, shapes[i]))) > 0.1);
        }
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        // With bias correction, Adam's first update is lr · g / (|g| + eps) ≈ lr · sign(g).
        let dev = candle_core::Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &dev).unwrap()).unwrap();
        let loss = (w.as_tensor() * Tensor::new(&[2f32, -0.5, 0.0], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(std::slice::from_ref(&w), 0.0).unwrap();
        opt.step(std::slice::from_ref(&w), &grads, 0.1, 1.0)
            .unwrap();
        let got: Vec<f32> = w.as_tensor().to_vec1().unwrap();
        assert!((got[0] - 0.9).abs() < 1e-6, "{got:?}");
        assert!((got[1] - -1.9).abs() < 1e-6, "{got:?}");
        assert!((got[2] - 3.0).abs() < 1e-6, "{got:?}");
    }
}
