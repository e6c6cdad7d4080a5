//! A trainable reward model on a Llama backbone: the top `K` blocks, the final norm and a
//! scalar head `score (1, hidden)` as candle [`Var`]s; the bottom blocks stay frozen (shared with
//! the base and run once, their outputs cached by the trainer).
//!
//! Training runs one of two passes. On the CPU in f32 (`fast_path`), the trainable blocks run
//! graph-free ([`forward_fast`](TrainableRm::forward_fast) /
//! [`backward_fast`](TrainableRm::backward_fast), the block math in
//! [`crate::model::llama_grad`]): candle's graph starts at the top block's last-token states
//! (and the anchored layers' ones), so it holds only the final norm, the head and the loss,
//! and the blocks' gradients are added to its gradient store afterwards. Elsewhere the forward
//! uses only differentiable ops (`diff = true`) and candle's autograd does the rest; a test
//! holds the two passes to the same rewards and gradients. Evaluation uses the inference
//! kernels on detached weights. The reward of a sequence is the head applied
//! to the final (normed) state of its last real token, as HF's `LlamaForSequenceClassification`.
//!
//! Shapes: inputs `(batch, seq, hidden)` at residual layer `first` (HF `hidden_states`
//! indexing), rewards `(batch,)`, pooled anchor states `(batch, hidden)` per anchor layer.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::model::delta;
use crate::model::llama::{last_token_states, Block, Llama, BLOCK_WEIGHTS};
use crate::model::llama_grad::{self, with_block, with_slices};
use crate::model::{HookedModel, TokenBatch};

pub use crate::model::delta::NamedWeight;

/// What the forward pass returns.
pub struct RmOutput {
    /// One reward per row, `(batch,)`.
    pub rewards: Tensor,
    /// Last-token states `(batch, hidden)` at each requested layer, in request order.
    pub pooled: Vec<Tensor>,
}

/// A reward model whose top blocks, final norm and head train.
pub struct TrainableRm<'a> {
    base: &'a Llama,
    first: usize,
    embed: Option<Var>,
    /// (HF name, variable), the order checkpoints and the optimizer use.
    vars: Vec<(String, Var)>,
    blocks: Vec<Block>,
    norm: Var,
    score: Var,
}

/// Seeded N(0, std²) values (Box–Muller over the seeded generator, so a seed fixes them).
pub fn seeded_normal(n: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}

impl<'a> TrainableRm<'a> {
    /// Copy the top `trainable_blocks` blocks (all and the embeddings when it equals the
    /// number of blocks and `train_embeddings`), the final norm and a new head
    /// (N(0, 0.02²), HF's `initializer_range`, from `seed`) into variables.
    pub fn new(
        base: &'a Llama,
        trainable_blocks: usize,
        train_embeddings: bool,
        seed: u64,
    ) -> Result<Self> {
        if !base.variant().is_plain() {
            return Err(Error::model(
                &base.info().path,
                format!(
                    "training supports plain Llama blocks; `{}` checkpoints are read by capture only",
                    base.variant().arch
                ),
            ));
        }
        let n = base.blocks().len();
        let k = trainable_blocks.min(n);
        let first = n - k;
        let mut vars = Vec::new();
        let embed = if train_embeddings && first == 0 {
            let v = Var::from_tensor(&base.embed_tokens().to_dtype(DType::F32)?)?;
            vars.push(("model.embed_tokens.weight".to_string(), v.clone()));
            Some(v)
        } else {
            None
        };
        let mut blocks = Vec::with_capacity(k);
        for (i, blk) in base.blocks().iter().enumerate().skip(first) {
            let ts = blk.tensors();
            let mut vs: Vec<Tensor> = Vec::with_capacity(9);
            for (name, t) in BLOCK_WEIGHTS.iter().zip(ts) {
                // Trainable weights in f32 (a half checkpoint's are held in their stored dtype).
                let v = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
                vs.push(v.as_tensor().clone());
                vars.push((format!("model.layers.{i}.{name}"), v));
            }
            let arr: [Tensor; 9] = vs.try_into().expect("nine block weights");
            blocks.push(Block::from_tensors(arr, true));
        }
        let norm = Var::from_tensor(base.final_norm())?;
        vars.push(("model.norm.weight".to_string(), norm.clone()));
        let d = base.config().hidden_size;
        let init = Tensor::from_vec(
            seeded_normal(d, 0.02, seed),
            (1, d),
            base.final_norm().device(),
        )?;
        let score = Var::from_tensor(&init)?;
        vars.push(("score.weight".to_string(), score.clone()));
        Ok(Self {
            base,
            first,
            embed,
            vars,
            blocks,
            norm,
            score,
        })
    }

    /// The residual layer whose states feed the trainable blocks (0 = embeddings).
    pub fn first(&self) -> usize {
        self.first
    }

    /// Whether the input is token ids (embeddings train) rather than cached states.
    pub fn trains_embeddings(&self) -> bool {
        self.embed.is_some()
    }

    /// The trainable variables with their HF names.
    pub fn named_vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The trainable variables.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// The scalar head's weights `(hidden,)`: reward = head · final normed last-token state.
    pub fn head(&self) -> Result<Vec<f32>> {
        Ok(self.score.as_tensor().flatten_all()?.to_vec1()?)
    }

    /// Replace the head's weights (LP-FT: a head fitted on the frozen base's states).
    pub fn set_head(&self, w: &[f32]) -> Result<()> {
        let t = Tensor::from_vec(w.to_vec(), self.score.dims(), self.score.device())?;
        self.score.set(&t)?;
        Ok(())
    }

    /// The frozen base model.
    pub fn base(&self) -> &Llama {
        self.base
    }

    /// Run the trainable part on `input` (states `(batch, seq, hidden)` at layer
    /// [`first`](Self::first), or ignored when embeddings train: then `batch.ids` is read).
    /// `pool_layers` are residual layers in `first..=n` whose last-token states are returned.
    /// `diff` selects the differentiable (training) path; otherwise detached weights and the
    /// inference kernels are used.
    pub fn forward(
        &self,
        input: Option<&Tensor>,
        batch: &TokenBatch,
        pool_layers: &[usize],
        diff: bool,
    ) -> Result<RmOutput> {
        let n = self.base.blocks().len();
        let (b, s) = batch.ids.dims2()?;
        let d = self.base.config().hidden_size;
        let detached;
        let (blocks, norm, score, embed) = if diff {
            (
                &self.blocks,
                self.norm.as_tensor().clone(),
                self.score.as_tensor().clone(),
                self.embed.as_ref().map(|v| v.as_tensor().clone()),
            )
        } else {
            detached = self
                .blocks
                .iter()
                .map(|blk| {
                    let ts: Vec<Tensor> = blk.tensors().iter().map(|t| t.detach()).collect();
                    Block::from_tensors(ts.try_into().expect("nine"), false)
                })
                .collect::<Vec<_>>();
            (
                &detached,
                self.norm.as_tensor().detach(),
                self.score.as_tensor().detach(),
                self.embed.as_ref().map(|v| v.as_tensor().detach()),
            )
        };
        let mut x = match (&embed, input) {
            (Some(e), _) => e
                .index_select(&batch.ids.flatten_all()?, 0)?
                .reshape((b, s, d))?,
            (None, Some(x)) => x.clone(),
            (None, None) => {
                return Err(Error::param(
                    "train",
                    "the trainable part needs the cached input states",
                ))
            }
        };
        let mut pooled: BTreeMap<usize, Tensor> = BTreeMap::new();
        if pool_layers.contains(&self.first) {
            pooled.insert(self.first, last_token_states(&x, &batch.lens)?);
        }
        let mask = batch.attention_mask(true)?;
        let rope = self.base.rope_tables(s)?;
        for (j, blk) in blocks.iter().enumerate() {
            let l = self.first + j + 1;
            x = self.base.block_forward(blk, &x, &rope, &mask, diff)?.resid;
            if l < n && pool_layers.contains(&l) {
                pooled.insert(l, last_token_states(&x, &batch.lens)?);
            }
        }
        let y = self.base.rms_norm(&x, &norm, diff)?;
        let last = last_token_states(&y, &batch.lens)?;
        if pool_layers.contains(&n) {
            pooled.insert(n, last.clone());
        }
        let rewards = last.matmul(&score.t()?)?.squeeze(1)?;
        let pooled = pool_layers
            .iter()
            .map(|l| {
                pooled
                    .get(l)
                    .cloned()
                    .ok_or_else(|| Error::LayerOutOfRange {
                        layer: *l,
                        min: self.first,
                        max: n,
                        what: "layers computed by the trainable blocks".into(),
                    })
            })
            .collect::<Result<_>>()?;
        Ok(RmOutput { rewards, pooled })
    }

    /// Whether [`forward_fast`](Self::forward_fast) applies: CPU f32 weights, all contiguous.
    pub fn fast_path(&self) -> bool {
        self.vars.iter().all(|(_, v)| {
            crate::model::fused::fusable(v.as_tensor()) && v.as_tensor().is_contiguous()
        })
    }

    /// The training forward pass with the trainable blocks run graph-free
    /// ([`llama_grad`]): the same rewards and pooled states as [`forward`](Self::forward)
    /// with `diff`, recorded in candle's graph only from the blocks' outputs on (final norm,
    /// head, anchors). After `loss.backward()`, [`backward_fast`](Self::backward_fast) adds the
    /// blocks' (and embeddings') gradients to the store.
    pub fn forward_fast(
        &self,
        input: Option<&Tensor>,
        batch: &TokenBatch,
        pool_layers: &[usize],
    ) -> Result<(RmOutput, FastPass)> {
        let n = self.base.blocks().len();
        let (b, s) = batch.ids.dims2()?;
        let cfg = self.base.config();
        let d = cfg.hidden_size;
        let dev = self.norm.device().clone();
        let ids: Vec<u32> = batch.ids.flatten_all()?.to_vec1()?;
        let mut x: Vec<f32> = match (&self.embed, input) {
            (Some(e), _) => {
                let vocab = e.dims()[0];
                if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
                    return Err(Error::param(
                        "train",
                        format!("token id {bad} is outside the embedding table ({vocab} rows)"),
                    ));
                }
                with_slices(&[e.as_tensor()], |e| {
                    ids.iter()
                        .flat_map(|&i| e[0][i as usize * d..][..d].iter().copied())
                        .collect()
                })?
            }
            (None, Some(x)) if x.dims() == [b, s, d] => x.flatten_all()?.to_vec1()?,
            (None, Some(x)) => {
                return Err(Error::param(
                    "train",
                    format!(
                        "cached input states have shape {:?}, the batch needs ({b}, {s}, {d})",
                        x.dims()
                    ),
                ))
            }
            (None, None) => {
                return Err(Error::param(
                    "train",
                    "the trainable part needs the cached input states",
                ))
            }
        };
        let (cos, sin) = self.base.rope_vecs(s)?;
        let mut fp = FastPass {
            caches: Vec::with_capacity(self.blocks.len()),
            dims: llama_grad::Dims::of(cfg, b, s),
            lens: batch.lens.clone(),
            ids,
            cos,
            sin,
            last: None,
            pooled: Vec::new(),
        };
        if pool_layers.contains(&self.first) && self.first < n {
            fp.pooled
                .push((self.first, Var::from_tensor(&fp.last_rows(&x, &dev)?)?));
        }
        for (j, blk) in self.blocks.iter().enumerate() {
            let l = self.first + j + 1;
            let (y, cache) = with_block(blk, |w| {
                llama_grad::forward(&w, &fp.dims, &fp.lens, &fp.cos, &fp.sin, x)
            })?;
            fp.caches.push(cache);
            x = y;
            if l < n && pool_layers.contains(&l) {
                fp.pooled
                    .push((l, Var::from_tensor(&fp.last_rows(&x, &dev)?)?));
            }
        }
        let last = Var::from_tensor(&fp.last_rows(&x, &dev)?)?;
        let y = self
            .base
            .rms_norm(last.as_tensor(), self.norm.as_tensor(), true)?;
        let rewards = y.matmul(&self.score.as_tensor().t()?)?.squeeze(1)?;
        let pooled = pool_layers
            .iter()
            .map(|&l| {
                if l == n {
                    return Ok(y.clone());
                }
                fp.pooled
                    .iter()
                    .find(|(pl, _)| *pl == l)
                    .map(|(_, v)| v.as_tensor().clone())
                    .ok_or_else(|| Error::LayerOutOfRange {
                        layer: l,
                        min: self.first,
                        max: n,
                        what: "layers computed by the trainable blocks".into(),
                    })
            })
            .collect::<Result<_>>()?;
        fp.last = Some(last);
        Ok((RmOutput { rewards, pooled }, fp))
    }

    /// The backward pass of [`forward_fast`](Self::forward_fast): reads the gradients of the
    /// blocks' outputs from `grads` (what `loss.backward()` left there) and adds the
    /// gradients of every block weight, and of the embeddings when they train.
    pub fn backward_fast(&self, mut fp: FastPass, grads: &mut GradStore) -> Result<()> {
        let n = self.base.blocks().len();
        let dm = fp.dims;
        let d = dm.hidden;
        let dev = self.norm.device().clone();
        let mut g = vec![0f32; dm.batch * dm.seq * d];
        let last = fp.last.take().expect("set by forward_fast");
        if let Some(gl) = grads.remove(last.as_tensor()) {
            fp.add_last_rows(&mut g, &gl)?;
        }
        for j in (0..self.blocks.len()).rev() {
            let l = self.first + j + 1;
            if l < n {
                fp.add_pooled(l, &mut g, grads)?;
            }
            let cache = fp.caches.pop().expect("one cache per block");
            let blk = &self.blocks[j];
            let (gx, wg) = with_block(blk, |w| {
                llama_grad::backward(&w, &dm, &fp.lens, &fp.cos, &fp.sin, cache, g)
            })?;
            g = gx;
            for (t, gw) in blk.tensors().into_iter().zip(wg) {
                grads.insert(t, Tensor::from_vec(gw, t.shape(), &dev)?);
            }
        }
        fp.add_pooled(self.first, &mut g, grads)?;
        if let Some(e) = &self.embed {
            let mut de = vec![0f32; e.elem_count()];
            for (row, &id) in g.chunks_exact(d).zip(&fp.ids) {
                for (o, v) in de[id as usize * d..][..d].iter_mut().zip(row) {
                    *o += v;
                }
            }
            grads.insert(e.as_tensor(), Tensor::from_vec(de, e.shape(), &dev)?);
        }
        Ok(())
    }

    /// Every weight of the reward model under its HF name (`model.*` and `score.weight`), the
    /// trained ones from the variables, the rest from the base, as row-major f32.
    pub fn state(&self) -> Result<Vec<NamedWeight>> {
        let trained: BTreeMap<&str, &Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_tensor()))
            .collect();
        delta::hf_state(self.base, &trained)
    }

    /// Only the trained weights (what a delta student stores), in variable order.
    pub fn delta_state(&self) -> Result<Vec<NamedWeight>> {
        self.vars
            .iter()
            .map(|(n, v)| {
                let t = v.as_tensor();
                Ok((
                    n.clone(),
                    t.dims().to_vec(),
                    t.flatten_all()?.to_vec1::<f32>()?,
                ))
            })
            .collect()
    }

    /// Write an HF `LlamaForSequenceClassification` directory (see
    /// [`delta::write_hf_reward_model`]).
    pub fn save_hf(&self, dir: &Path, extra: &[(&str, Vec<u8>)]) -> Result<()> {
        delta::write_hf_reward_model(dir, self.base, &self.state()?, extra)
    }

    /// Write a delta student: the trained weights and the base's path and hash (see
    /// [`delta::write_delta`]).
    pub fn save_delta(&self, dir: &Path, extra: &[(&str, Vec<u8>)]) -> Result<()> {
        delta::write_delta(dir, self.base.info(), &self.delta_state()?, extra)
    }
}

/// What [`TrainableRm::forward_fast`] keeps for [`TrainableRm::backward_fast`].
pub struct FastPass {
    caches: Vec<llama_grad::Cache>,
    dims: llama_grad::Dims,
    lens: Vec<usize>,
    ids: Vec<u32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// The last-token rows of the top block's output, where candle's graph starts.
    last: Option<Var>,
    /// The last-token rows of residual layers below the top that the loss reads (anchors).
    pooled: Vec<(usize, Var)>,
}

impl FastPass {
    /// The row of each sequence's last real token (as [`last_token_states`]).
    fn last_row(&self, i: usize) -> usize {
        i * self.dims.seq + self.lens[i].max(1) - 1
    }

    /// The last-token rows of `x (T, hidden)` as a `(batch, hidden)` tensor.
    fn last_rows(&self, x: &[f32], dev: &candle_core::Device) -> Result<Tensor> {
        let d = self.dims.hidden;
        let v: Vec<f32> = (0..self.dims.batch)
            .flat_map(|i| x[self.last_row(i) * d..][..d].iter().copied())
            .collect();
        Ok(Tensor::from_vec(v, (self.dims.batch, d), dev)?)
    }

    /// Add `rows (batch, hidden)` into the last-token rows of `g (T, hidden)`.
    fn add_last_rows(&self, g: &mut [f32], rows: &Tensor) -> Result<()> {
        let d = self.dims.hidden;
        let rows: Vec<f32> = rows.flatten_all()?.to_vec1()?;
        for (i, r) in rows.chunks_exact(d).enumerate() {
            for (o, v) in g[self.last_row(i) * d..][..d].iter_mut().zip(r) {
                *o += v;
            }
        }
        Ok(())
    }

    /// Add the loss's gradient of the pooled state at `layer`, if the loss read it.
    fn add_pooled(&self, layer: usize, g: &mut [f32], grads: &mut GradStore) -> Result<()> {
        if let Some((_, v)) = self.pooled.iter().find(|(l, _)| *l == layer) {
            if let Some(gp) = grads.remove(v.as_tensor()) {
                self.add_last_rows(g, &gp)?;
            }
        }
        Ok(())
    }
}
