//! AdamW (Loshchilov & Hutter) with decoupled weight decay and global-norm gradient clipping,
//! with its state exposed so checkpoints can save and restore it exactly (candle-nn's `AdamW`
//! keeps its moments private).

use candle_core::backprop::GradStore;
use candle_core::Var;

use crate::error::Result;

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
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sq.sqrt())
    }

    /// One step at learning rate `lr`, gradients scaled by `clip` (1 for none).
    pub fn step(&mut self, vars: &[Var], grads: &GradStore, lr: f64, clip: f64) -> Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
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
