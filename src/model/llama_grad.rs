//! The training pass of a plain Llama block without an autograd graph: a forward pass that
//! keeps what the backward pass needs, and a hand-written backward pass, both on row-major
//! f32 buffers with OpenBLAS products (CPU, f32; what `train` runs for its trainable blocks).
//!
//! candle's autograd records every op of the differentiable forward
//! ([`super::llama::Llama::block_forward`] with `diff`) and replays its backward one op at a time,
//! each allocating a new tensor and adding it into a gradient store; here a block is seven
//! weight products plus two per attention head forward, fourteen plus four per head backward,
//! and one loop per element-wise step (norms, RoPE, softmax, SwiGLU, residual adds).
//!
//! Shapes (`T = batch · seq` rows, right-padded sequences, row `t` at position `t % seq`):
//! input `x (T, hidden)`; `q (T, heads · head_dim)`, `k`, `v (T, kv_heads · head_dim)` (HF's
//! head-major columns, so one head is a strided column block and no copy is made per head);
//! attention probabilities `(batch, heads, seq, seq)`; MLP `(T, intermediate)`. Weights in HF
//! layout (`(out, in)`), gradients in the same layout and [`super::llama_block::BLOCK_WEIGHTS`] order.
//!
//! Gradients (`g` the gradient of an output):
//! - linear `y = x Wᵀ`: `dx = g W`, `dW = gᵀ x`;
//! - RMSNorm, softmax and the rotary embedding as in [`super::fused`];
//! - SwiGLU `m = silu(a) ⊙ u`, `σ = sigmoid(a)`: `du = g ⊙ silu(a)`,
//!   `da = g ⊙ u ⊙ σ (1 + a (1 − σ))`;
//! - attention `S = q kᵀ / √d_h + mask`, `P = softmax(S)`, `C = P v`: `dv = Pᵀ dC`,
//!   `dS = P ⊙ (dP − rowsum(dP ⊙ P))` with `dP = dC vᵀ`, `dq = dS k / √d_h`,
//!   `dk = dSᵀ q / √d_h`; the query heads sharing a key/value head add into its gradients.
//!
//! The masked keys of a row (causal, and padding: keys at or past the sequence's length) get
//! probability 0, as `−∞` in candle's mask gives. Truth: `tests/integration/train.rs` checks
//! the output and every gradient against candle's autograd of the differentiable block.

use candle_core::{Storage, Tensor};

use super::fused::{rms_rows, rms_rows_backward};
use super::linear::{linear_rows as linear, sgemm, sgemm_new, BlasThreads, WeightRows};
use super::llama_block::Block;
use crate::error::{Error, Result};

/// The sizes of one block's pass.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub batch: usize,
    pub seq: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub eps: f32,
}

impl Dims {
    /// The sizes of a `(batch, seq)` pass through blocks of `cfg`.
    pub fn of(cfg: &super::llama_config::LlamaConfig, batch: usize, seq: usize) -> Self {
        Self {
            batch,
            seq,
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.kv_heads(),
            head_dim: cfg.head_dim(),
            intermediate: cfg.intermediate_size,
            eps: cfg.rms_norm_eps as f32,
        }
    }

    fn rows(&self) -> usize {
        self.batch * self.seq
    }
    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// A block's weights in [`super::llama_block::BLOCK_WEIGHTS`] order, HF layout, row-major;
/// the norms in f32, the products' weights as stored (f32, or bf16/f16 in inference).
pub struct Weights<'a> {
    pub ln1: &'a [f32],
    pub q: WeightRows<'a>,
    pub k: WeightRows<'a>,
    pub v: WeightRows<'a>,
    pub o: WeightRows<'a>,
    pub ln2: &'a [f32],
    pub gate: WeightRows<'a>,
    pub up: WeightRows<'a>,
    pub down: WeightRows<'a>,
}

/// What the forward pass keeps for the backward pass.
pub struct Cache {
    x: Vec<f32>,
    r1: Vec<f32>,
    h1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: Vec<f32>,
    ctx: Vec<f32>,
    x2: Vec<f32>,
    r2: Vec<f32>,
    h2: Vec<f32>,
    a: Vec<f32>,
    u: Vec<f32>,
    m: Vec<f32>,
}

/// The rotary embedding in place on `x (T, heads · head_dim)`; `inverse` rotates back (the
/// backward pass). `cos`, `sin` are `(seq, head_dim / 2)`.
fn rope(x: &mut [f32], dm: &Dims, heads: usize, cos: &[f32], sin: &[f32], inverse: bool) {
    let hd = dm.head_dim;
    let half = hd / 2;
    for (t, row) in x.chunks_exact_mut(heads * hd).enumerate() {
        let pos = t % dm.seq;
        let (c, s) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
        for head in row.chunks_exact_mut(hd) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let sn = if inverse { -s[i] } else { s[i] };
                let (ai, bi) = (a[i], b[i]);
                a[i] = ai * c[i] - bi * sn;
                b[i] = bi * c[i] + ai * sn;
            }
        }
    }
}

/// Run `f` on the f32 values of `ts` (CPU, contiguous), read in place.
pub fn with_slices<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: Vec<&[f32]> = Vec::with_capacity(ts.len());
    for (g, l) in &guards {
        let Storage::Cpu(cpu) = &**g else {
            return Err(Error::param(
                "device",
                "the graph-free pass needs its weights on the CPU",
            ));
        };
        slices.push(super::linear::f32_slice(cpu, l, "graph-free pass")?);
    }
    Ok(f(&slices))
}

/// Run `f` on a block's weights, read in place (product weights in their stored dtype).
pub fn with_block<R>(blk: &Block, f: impl FnOnce(Weights<'_>) -> R) -> Result<R> {
    let ts = blk.tensors();
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut cpu = Vec::with_capacity(guards.len());
    for (g, l) in &guards {
        let Storage::Cpu(c) = &**g else {
            return Err(Error::param(
                "device",
                "the graph-free pass needs its weights on the CPU",
            ));
        };
        cpu.push((c, l));
    }
    let op = "graph-free pass";
    let norm = |i: usize| super::linear::f32_slice(cpu[i].0, cpu[i].1, op);
    let prod = |i: usize| WeightRows::of(cpu[i].0, cpu[i].1, op);
    Ok(f(Weights {
        ln1: norm(0)?,
        q: prod(1)?,
        k: prod(2)?,
        v: prod(3)?,
        o: prod(4)?,
        ln2: norm(5)?,
        gate: prod(6)?,
        up: prod(7)?,
        down: prod(8)?,
    }))
}

/// How many keys query `q` of a sequence of length `len` sees (causal, padding masked).
fn visible(q: usize, len: usize) -> usize {
    (q + 1).min(len)
}

thread_local! {
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with this thread's passes serial: for callers that already run one pass per core
/// (capture's workers), whose passes would otherwise each split over all the cores again.
/// The bench's capture batch, five alternating pairs on 2 cores: 1.31–1.40 s serial against
/// 1.41–1.52 s split again (medians 1.32 and 1.42).
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let out = f();
    SERIAL.with(|s| s.set(before));
    out
}

/// `f` on every item, the items split in order over the machine's cores, each worker with a
/// single-threaded BLAS (one product per core instead of one product over both cores, whose
/// threads wait on each other for matrices as small as one attention head's). An item's result
/// does not depend on which worker ran it, so the pass stays deterministic.
fn par_each<I: Send>(items: Vec<I>, f: impl Fn(I) + Sync) {
    let workers = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1)
        .min(items.len());
    if workers <= 1 || SERIAL.with(|s| s.get()) {
        items.into_iter().for_each(f);
        return;
    }
    let _blas = BlasThreads::single();
    let per = items.len().div_ceil(workers);
    let mut items = items.into_iter();
    let f = &f;
    std::thread::scope(|scope| loop {
        let group: Vec<I> = items.by_ref().take(per).collect();
        if group.is_empty() {
            break;
        }
        scope.spawn(move || group.into_iter().for_each(f));
    });
}

/// Rows split into about one chunk per core (a multiple of `row` values each).
fn chunk_len(n: usize, row: usize) -> usize {
    let workers = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    (n / row).div_ceil(workers).max(1) * row
}

/// One block forward on `x (T, hidden)`: the output `(T, hidden)` and the cache.
pub fn forward(
    w: &Weights,
    dm: &Dims,
    lens: &[usize],
    cos: &[f32],
    sin: &[f32],
    x: Vec<f32>,
) -> (Vec<f32>, Cache) {
    let (t, d, s, hd) = (dm.rows(), dm.hidden, dm.seq, dm.head_dim);
    let (qw, kw, inter) = (dm.q_width(), dm.kv_width(), dm.intermediate);
    let group = dm.heads / dm.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let (h1, r1) = rms_rows(&x, w.ln1, dm.eps);
    let mut q = linear(&h1, w.q, t, qw, d);
    let mut k = linear(&h1, w.k, t, kw, d);
    let v = linear(&h1, w.v, t, kw, d);
    rope(&mut q, dm, dm.heads, cos, sin, false);
    rope(&mut k, dm, dm.kv_heads, cos, sin, false);
    let mut p = vec![0f32; dm.batch * dm.heads * s * s];
    let mut ctx = vec![0f32; t * qw];
    let items: Vec<_> = p
        .chunks_exact_mut(dm.heads * s * s)
        .zip(ctx.chunks_exact_mut(s * qw))
        .enumerate()
        .collect();
    par_each(items, |(b, (pb, cb))| {
        for (h, pm) in pb.chunks_exact_mut(s * s).enumerate() {
            let ko = b * s * kw + (h / group) * hd;
            sgemm(
                (false, true),
                (s, s, hd),
                1.0,
                (&q[b * s * qw + h * hd..], qw),
                (&k[ko..], kw),
                0.0,
                (pm, s),
            );
            for (qi, row) in pm.chunks_exact_mut(s).enumerate() {
                let n = visible(qi, lens[b]);
                let (seen, masked) = row.split_at_mut(n);
                let mut mx = f32::NEG_INFINITY;
                for e in seen.iter_mut() {
                    *e *= scale;
                    mx = mx.max(*e);
                }
                let mut sum = 0f32;
                for e in seen.iter_mut() {
                    *e = (*e - mx).exp();
                    sum += *e;
                }
                for e in seen.iter_mut() {
                    *e /= sum;
                }
                masked.fill(0.0);
            }
            sgemm(
                (false, false),
                (s, hd, s),
                1.0,
                (pm, s),
                (&v[ko..], kw),
                0.0,
                (&mut cb[h * hd..], qw),
            );
        }
    });
    let mut x2 = linear(&ctx, w.o, t, d, qw);
    for (o, xi) in x2.iter_mut().zip(&x) {
        *o += xi;
    }
    let (h2, r2) = rms_rows(&x2, w.ln2, dm.eps);
    let a = linear(&h2, w.gate, t, inter, d);
    let u = linear(&h2, w.up, t, inter, d);
    let mut m = vec![0f32; t * inter];
    let cl = chunk_len(m.len(), inter);
    let items: Vec<_> = m
        .chunks_mut(cl)
        .zip(a.chunks(cl).zip(u.chunks(cl)))
        .collect();
    par_each(items, |(mc, (ac, uc))| {
        for ((o, &ai), &ui) in mc.iter_mut().zip(ac).zip(uc) {
            *o = ai / (1.0 + (-ai).exp()) * ui;
        }
    });
    let mut out = linear(&m, w.down, t, d, inter);
    for (o, xi) in out.iter_mut().zip(&x2) {
        *o += xi;
    }
    let cache = Cache {
        x,
        r1,
        h1,
        q,
        k,
        v,
        p,
        ctx,
        x2,
        r2,
        h2,
        a,
        u,
        m,
    };
    (out, cache)
}

/// One block backward: `g` is the gradient of the block's output `(T, hidden)`; returns the
/// gradient of its input and of its nine weights (HF layout, `BLOCK_WEIGHTS` order).
pub fn backward(
    w: &Weights,
    dm: &Dims,
    lens: &[usize],
    cos: &[f32],
    sin: &[f32],
    c: Cache,
    g: Vec<f32>,
) -> (Vec<f32>, [Vec<f32>; 9]) {
    let (t, d, s, hd) = (dm.rows(), dm.hidden, dm.seq, dm.head_dim);
    let (qw, kw, inter) = (dm.q_width(), dm.kv_width(), dm.intermediate);
    let group = dm.heads / dm.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // MLP: out = x2 + m Wdᵀ.
    let d_down = sgemm_new((true, false), (d, inter, t), (&g, d), (&c.m, inter));
    let mut dm_ = sgemm_new(
        (false, false),
        (t, inter, d),
        (&g, d),
        (w.down.f32(), inter),
    );
    // dm_ becomes d(gate output) in place; du is new.
    let mut du = vec![0f32; t * inter];
    let cl = chunk_len(du.len(), inter);
    let items: Vec<_> = dm_
        .chunks_mut(cl)
        .zip(du.chunks_mut(cl))
        .zip(c.a.chunks(cl).zip(c.u.chunks(cl)))
        .collect();
    par_each(items, |((dmc, duc), (ac, uc))| {
        for (((dmi, dui), &ai), &ui) in dmc.iter_mut().zip(duc).zip(ac).zip(uc) {
            let sg = 1.0 / (1.0 + (-ai).exp());
            *dui = *dmi * ai * sg;
            *dmi *= ui * sg * (1.0 + ai * (1.0 - sg));
        }
    });
    let da = dm_;
    let d_gate = sgemm_new((true, false), (inter, d, t), (&da, inter), (&c.h2, d));
    let d_up = sgemm_new((true, false), (inter, d, t), (&du, inter), (&c.h2, d));
    let mut dh2 = sgemm_new(
        (false, false),
        (t, d, inter),
        (&da, inter),
        (w.gate.f32(), d),
    );
    sgemm(
        (false, false),
        (t, d, inter),
        1.0,
        (&du, inter),
        (w.up.f32(), d),
        1.0,
        (&mut dh2, d),
    );
    drop((da, du));
    let mut gx2 = g;
    let d_ln2 = rms_rows_backward(&c.x2, &c.r2, w.ln2, &dh2, &mut gx2);
    drop(dh2);
    // Attention: x2 = x + ctx Woᵀ.
    let d_o = sgemm_new((true, false), (d, qw, t), (&gx2, d), (&c.ctx, qw));
    let dctx = sgemm_new((false, false), (t, qw, d), (&gx2, d), (w.o.f32(), qw));
    let mut dq = vec![0f32; t * qw];
    let mut dk = vec![0f32; t * kw];
    let mut dv = vec![0f32; t * kw];
    let items: Vec<_> =
        c.p.chunks_exact(dm.heads * s * s)
            .zip(dq.chunks_exact_mut(s * qw))
            .zip(dk.chunks_exact_mut(s * kw).zip(dv.chunks_exact_mut(s * kw)))
            .enumerate()
            .collect();
    par_each(items, |(b, ((pb, dqb), (dkb, dvb)))| {
        let mut dp = vec![0f32; s * s];
        for (h, pm) in pb.chunks_exact(s * s).enumerate() {
            let (qo, ko) = (b * s * qw + h * hd, b * s * kw + (h / group) * hd);
            sgemm(
                (false, true),
                (s, s, hd),
                1.0,
                (&dctx[qo..], qw),
                (&c.v[ko..], kw),
                0.0,
                (&mut dp, s),
            );
            sgemm(
                (true, false),
                (s, hd, s),
                1.0,
                (pm, s),
                (&dctx[qo..], qw),
                1.0,
                (&mut dvb[(h / group) * hd..], kw),
            );
            for (qi, (dr, pr)) in dp.chunks_exact_mut(s).zip(pm.chunks_exact(s)).enumerate() {
                let n = visible(qi, lens[b]);
                let dot: f32 = dr[..n].iter().zip(&pr[..n]).map(|(a, b)| a * b).sum();
                for (e, &pi) in dr[..n].iter_mut().zip(&pr[..n]) {
                    *e = pi * (*e - dot);
                }
                dr[n..].fill(0.0);
            }
            sgemm(
                (false, false),
                (s, hd, s),
                scale,
                (&dp, s),
                (&c.k[ko..], kw),
                0.0,
                (&mut dqb[h * hd..], qw),
            );
            sgemm(
                (true, false),
                (s, hd, s),
                scale,
                (&dp, s),
                (&c.q[qo..], qw),
                1.0,
                (&mut dkb[(h / group) * hd..], kw),
            );
        }
    });
    drop(dctx);
    rope(&mut dq, dm, dm.heads, cos, sin, true);
    rope(&mut dk, dm, dm.kv_heads, cos, sin, true);
    let d_q = sgemm_new((true, false), (qw, d, t), (&dq, qw), (&c.h1, d));
    let d_k = sgemm_new((true, false), (kw, d, t), (&dk, kw), (&c.h1, d));
    let d_v = sgemm_new((true, false), (kw, d, t), (&dv, kw), (&c.h1, d));
    let mut dh1 = sgemm_new((false, false), (t, d, qw), (&dq, qw), (w.q.f32(), d));
    sgemm(
        (false, false),
        (t, d, kw),
        1.0,
        (&dk, kw),
        (w.k.f32(), d),
        1.0,
        (&mut dh1, d),
    );
    sgemm(
        (false, false),
        (t, d, kw),
        1.0,
        (&dv, kw),
        (w.v.f32(), d),
        1.0,
        (&mut dh1, d),
    );
    let mut gx = gx2;
    let d_ln1 = rms_rows_backward(&c.x, &c.r1, w.ln1, &dh1, &mut gx);
    (gx, [d_ln1, d_q, d_k, d_v, d_o, d_ln2, d_gate, d_up, d_down])
}
