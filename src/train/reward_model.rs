//! A trainable reward model on a Llama backbone: the top `K` blocks, the final norm and a
//! scalar head `score (1, hidden)` as candle [`Var`]s; the bottom blocks stay frozen (shared with
//! the base and run once, their outputs cached by the trainer).
//!
//! The training forward pass uses only differentiable ops (`diff = true`: RMSNorm, softmax and
//! RoPE composed from primitive ops; linear layers on BLAS with a backward pass). Evaluation
//! uses the inference kernels on detached weights. The reward of a sequence is the head applied
//! to the final (normed) state of its last real token, as HF's `LlamaForSequenceClassification`.
//!
//! Shapes: inputs `(batch, seq, hidden)` at residual layer `first` (HF `hidden_states`
//! indexing), rewards `(batch,)`, pooled anchor states `(batch, hidden)` per anchor layer.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Tensor, Var};
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::model::delta;
use crate::model::llama::{last_token_states, Block, Llama, BLOCK_WEIGHTS};
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
            let v = Var::from_tensor(base.embed_tokens())?;
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
                let v = Var::from_tensor(t)?;
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
