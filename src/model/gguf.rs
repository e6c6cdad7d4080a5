//! Loading Llama-family models from GGUF files (e.g. SmolLM2-135M-Instruct Q4_1).
//!
//! Every tensor is dequantized to f32 (quantized matmul is ~10× slower for batched prefill on
//! CPU) and renamed to HF's convention. llama.cpp stores Q/K projections permuted for
//! interleaved rotary embeddings; they are permuted back to HF's half-split layout, as
//! transformers' GGUF loader does (`reverse_permute`). The tokenizer is built from the
//! metadata. A file shorter than its tensor table says is reported as truncated.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};

use super::hooked::ModelInfo;
use super::llama::{Llama, LlamaConfig, LlamaParts};
use super::tokenizer::ModelTokenizer;
use super::weights::Weights;
use crate::error::{Error, Result};

fn md_usize(path: &Path, c: &gguf_file::Content, key: &str) -> Result<usize> {
    let v = c
        .metadata
        .get(key)
        .ok_or_else(|| Error::model(path, format!("GGUF metadata lacks `{key}`")))?;
    Ok(v.to_u32()
        .map(|x| x as usize)
        .or_else(|_| v.to_u64().map(|x| x as usize))?)
}

fn md_f64(c: &gguf_file::Content, key: &str) -> Option<f64> {
    c.metadata
        .get(key)
        .and_then(|v| v.to_f32().ok())
        .map(f64::from)
}

/// Undo llama.cpp's Q/K permutation: `(heads·hd, in)` interleaved → half-split.
fn reverse_permute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    Ok(w.reshape((heads, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

fn hf_name(gguf: &str) -> Option<String> {
    let map = |s: &str| -> Option<&'static str> {
        Some(match s {
            "attn_norm.weight" => "input_layernorm.weight",
            "attn_q.weight" => "self_attn.q_proj.weight",
            "attn_k.weight" => "self_attn.k_proj.weight",
            "attn_v.weight" => "self_attn.v_proj.weight",
            "attn_output.weight" => "self_attn.o_proj.weight",
            "ffn_norm.weight" => "post_attention_layernorm.weight",
            "ffn_gate.weight" => "mlp.gate_proj.weight",
            "ffn_up.weight" => "mlp.up_proj.weight",
            "ffn_down.weight" => "mlp.down_proj.weight",
            _ => return None,
        })
    };
    match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => Some("model.norm.weight".into()),
        "output.weight" => Some("lm_head.weight".into()),
        _ => {
            let rest = gguf.strip_prefix("blk.")?;
            let (i, name) = rest.split_once('.')?;
            let i: usize = i.parse().ok()?;
            Some(format!("model.layers.{i}.{}", map(name)?))
        }
    }
}

/// Check that every tensor's bytes lie inside the file.
fn check_complete(path: &Path, c: &gguf_file::Content, file_len: u64) -> Result<()> {
    let mut end = 0u64;
    for info in c.tensor_infos.values() {
        let n = info.shape.elem_count();
        let bs = info.ggml_dtype.block_size();
        let bytes = (n / bs * info.ggml_dtype.type_size()) as u64;
        end = end.max(c.tensor_data_offset + info.offset + bytes);
    }
    if end > file_len {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!("tensor data needs {end} bytes but the file has {file_len}"),
        });
    }
    Ok(())
}

/// Load a Llama-architecture GGUF file.
pub fn load_llama(path: &Path, device: &Device) -> Result<Llama> {
    Llama::from_parts(read_llama(path, device)?, device, DType::F32)
}

/// The parts of a Llama-architecture GGUF file (weights dequantized to f32, HF names).
pub fn read_llama(path: &Path, device: &Device) -> Result<LlamaParts> {
    crate::io::guarded(|| read_llama_unguarded(path, device)).unwrap_or_else(|panic| {
        Err(Error::model(
            path,
            format!("not a readable GGUF file (the GGUF reader failed: {panic})"),
        ))
    })
}

fn read_llama_unguarded(path: &Path, device: &Device) -> Result<LlamaParts> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let content = gguf_file::Content::read(&mut f).map_err(|e| {
        if file_len < 1024 * 1024 {
            Error::Truncated {
                path: path.to_path_buf(),
                detail: format!("cannot read the GGUF header ({e}); the file has {file_len} bytes"),
            }
        } else {
            Error::model(path, format!("not a readable GGUF file: {e}"))
        }
    })?;
    check_complete(path, &content, file_len)?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    if arch != "llama" {
        return Err(Error::model(
            path,
            format!("GGUF architecture `{arch}` is not supported (supported: llama)"),
        ));
    }
    let tokenizer = ModelTokenizer::from_gguf(path, &content)?;
    let n_layers = md_usize(path, &content, "llama.block_count")?;
    let hidden = md_usize(path, &content, "llama.embedding_length")?;
    let heads = md_usize(path, &content, "llama.attention.head_count")?;
    let kv_heads = md_usize(path, &content, "llama.attention.head_count_kv").unwrap_or(heads);
    let cfg = LlamaConfig {
        hidden_size: hidden,
        intermediate_size: md_usize(path, &content, "llama.feed_forward_length")?,
        num_hidden_layers: n_layers,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv_heads),
        head_dim: md_usize(path, &content, "llama.attention.key_length").ok(),
        rms_norm_eps: md_f64(&content, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: Some(md_f64(&content, "llama.rope.freq_base").unwrap_or(10_000.0)),
        rope_parameters: None,
        rope_scaling: None,
        vocab_size: tokenizer
            .inner()
            .get_vocab_size(false)
            .max(md_usize(path, &content, "llama.vocab_size").unwrap_or(0)),
        max_position_embeddings: md_usize(path, &content, "llama.context_length").ok(),
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        pad_token_id: md_usize(path, &content, "tokenizer.ggml.padding_token_id")
            .ok()
            .map(|x| x as u32),
        attention_bias: false,
        mlp_bias: false,
    };
    let mut map = HashMap::new();
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    for name in names {
        let Some(hf) = hf_name(&name) else {
            continue;
        };
        let q = content.tensor(&mut f, &name, device)?;
        let mut t = q.dequantize(device)?;
        if name.ends_with("attn_q.weight") {
            t = reverse_permute(&t, heads)?;
        } else if name.ends_with("attn_k.weight") {
            t = reverse_permute(&t, kv_heads)?;
        }
        map.insert(hf, t);
    }
    let weights = Weights::from_map(path, map, device);
    let info = ModelInfo {
        path: path.to_path_buf(),
        architecture: "llama".into(),
        source: "gguf".into(),
        weights_sha256: crate::io::sha256_file(path)?,
        n_layers,
        hidden_size: hidden,
    };
    Ok(LlamaParts {
        cfg,
        weights,
        tokenizer,
        info,
    })
}
