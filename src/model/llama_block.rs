//! A Llama-family decoder block's weights, below both of its passes: the candle pass in
//! [`super::llama`] and the graph-free training pass in [`super::llama_grad`].

use candle_core::Tensor;

use super::linear::Linear;

/// One decoder block. Its forward pass has two forms: inference (candle's fused norm,
/// softmax and RoPE kernels, which cut the autograd graph) and `diff` (differentiable, for
/// training: on the CPU in f32 the fused ops of [`super::fused`] with their own backward
/// passes, elsewhere compositions of candle's primitive ops). Capture of plain Llama blocks on
/// the CPU in f32 without `attn_out`/`mlp_out` hooks skips both and runs the graph-free pass
/// of [`super::llama_grad`] (the parity tests check both paths against HF transformers).
#[derive(Clone)]
pub struct Block {
    pub input_layernorm: Tensor,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub post_attention_layernorm: Tensor,
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    /// Per-head query/key RMSNorm weights `(head_dim,)` (Qwen3).
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    /// Sliding-window width of this block's attention, if any.
    pub window: Option<usize>,
}

/// The names of a block's weights below `model.layers.{i}`, in a fixed order.
pub const BLOCK_WEIGHTS: [&str; 9] = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
];

impl Block {
    /// The block's weights in [`BLOCK_WEIGHTS`] order.
    pub fn tensors(&self) -> [&Tensor; 9] {
        [
            &self.input_layernorm,
            self.q_proj.weight(),
            self.k_proj.weight(),
            self.v_proj.weight(),
            self.o_proj.weight(),
            &self.post_attention_layernorm,
            self.gate_proj.weight(),
            self.up_proj.weight(),
            self.down_proj.weight(),
        ]
    }

    /// A block from weights in [`BLOCK_WEIGHTS`] order, its products recorded in the autograd
    /// graph when `differentiable`.
    pub fn from_tensors(t: [Tensor; 9], differentiable: bool) -> Self {
        let lin = |w: Tensor| {
            let mut l = Linear::new(w, None);
            l.set_differentiable(differentiable);
            l
        };
        let [ln1, q, k, v, o, ln2, g, u, d] = t;
        Self {
            input_layernorm: ln1,
            q_proj: lin(q),
            k_proj: lin(k),
            v_proj: lin(v),
            o_proj: lin(o),
            post_attention_layernorm: ln2,
            gate_proj: lin(g),
            up_proj: lin(u),
            down_proj: lin(d),
            q_norm: None,
            k_norm: None,
            window: None,
        }
    }
}
