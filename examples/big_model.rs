//! Write a random-weight Llama reward model (`LlamaForSequenceClassification`, one score
//! label) of a named public shape, in bf16, in HF layout with 5 GB shards and an index — the
//! form a user's 1–8B reward model has on disk — for measuring load memory and capture speed
//! at scale (`scripts/big-model.sh`).
//!
//! ```text
//! cargo run --release --example big_model -- SHAPE OUT_DIR TOKENIZER_JSON
//! ```
//!
//! SHAPE: `135m` (SmolLM2-135M's widths), `0.5b` (Qwen2.5-0.5B's widths), `1.1b` (TinyLlama-1.1B), `3b` (Llama-3.2-3B), `8b`
//! (Llama-3.1-8B); no language-model head, as a reward model has none. Weights are uniform with
//! standard deviation 0.02 (norms 1), from a fixed xorshift seed: the same bytes every run.
//! Written tensor by tensor, so the writer holds no more than a 1 MiB buffer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

struct Shape {
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    inter: usize,
    vocab: usize,
}

fn shape(name: &str) -> Option<Shape> {
    let s = |hidden, layers, heads, kv_heads, inter, vocab| Shape {
        hidden,
        layers,
        heads,
        kv_heads,
        inter,
        vocab,
    };
    Some(match name {
        "135m" => s(576, 30, 9, 3, 1536, 49_152),
        "0.5b" => s(896, 24, 14, 2, 4864, 151_936),
        "1.1b" => s(2048, 22, 32, 4, 5632, 32_000),
        "3b" => s(3072, 28, 24, 8, 8192, 128_256),
        "8b" => s(4096, 32, 32, 8, 14_336, 128_256),
        _ => return None,
    })
}

/// (name, shape, is a norm weight) in the order HF writes them.
fn tensors(s: &Shape) -> Vec<(String, Vec<usize>, bool)> {
    let (d, hd) = (s.hidden, s.hidden / s.heads);
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![s.vocab, d],
        false,
    )];
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        t.push((format!("{p}.input_layernorm.weight"), vec![d], true));
        t.push((
            format!("{p}.self_attn.q_proj.weight"),
            vec![s.heads * hd, d],
            false,
        ));
        t.push((
            format!("{p}.self_attn.k_proj.weight"),
            vec![s.kv_heads * hd, d],
            false,
        ));
        t.push((
            format!("{p}.self_attn.v_proj.weight"),
            vec![s.kv_heads * hd, d],
            false,
        ));
        t.push((
            format!("{p}.self_attn.o_proj.weight"),
            vec![d, s.heads * hd],
            false,
        ));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![d],
            true,
        ));
        t.push((format!("{p}.mlp.gate_proj.weight"), vec![s.inter, d], false));
        t.push((format!("{p}.mlp.up_proj.weight"), vec![s.inter, d], false));
        t.push((format!("{p}.mlp.down_proj.weight"), vec![d, s.inter], false));
    }
    t.push(("model.norm.weight".to_string(), vec![d], true));
    t.push(("score.weight".to_string(), vec![1, d], false));
    t
}

const SHARD_BYTES: usize = 5_000_000_000;

struct Rng(u64);

impl Rng {
    /// A bf16 value uniform on ±0.02·√3 (standard deviation 0.02), as its bits.
    fn bf16(&mut self) -> u16 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let u = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
        let v = (2.0 * u - 1.0) * 0.02 * 3f32.sqrt();
        (v.to_bits() >> 16) as u16
    }
}

fn write_shard(
    path: &Path,
    items: &[(String, Vec<usize>, bool)],
    rng: &mut Rng,
) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, _) in items {
        let bytes = 2 * shape.iter().product::<usize>();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut f = BufWriter::with_capacity(1 << 20, File::create(path)?);
    f.write_all(&(h.len() as u64).to_le_bytes())?;
    f.write_all(&h)?;
    let one = (1.0f32.to_bits() >> 16) as u16;
    for (_, shape, norm) in items {
        for _ in 0..shape.iter().product::<usize>() {
            let v = if *norm { one } else { rng.bf16() };
            f.write_all(&v.to_le_bytes())?;
        }
    }
    f.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, out, tokenizer] = args.as_slice() else {
        return Err("usage: big_model SHAPE OUT_DIR TOKENIZER_JSON".into());
    };
    let s = shape(name).ok_or(format!("unknown shape `{name}` (135m, 0.5b, 1.1b, 3b, 8b)"))?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let all = tensors(&s);
    let params: usize = all.iter().map(|t| t.1.iter().product::<usize>()).sum();
    // Cut into shards of at most SHARD_BYTES (a tensor never split).
    let mut shards: Vec<Vec<(String, Vec<usize>, bool)>> = vec![Vec::new()];
    let mut size = 0;
    for t in all {
        let bytes = 2 * t.1.iter().product::<usize>();
        if size + bytes > SHARD_BYTES && !shards.last().expect("one").is_empty() {
            shards.push(Vec::new());
            size = 0;
        }
        size += bytes;
        shards.last_mut().expect("one").push(t);
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (i, items) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        write_shard(&out.join(&file), items, &mut rng)?;
        for (name, _, _) in items {
            weight_map.insert(name.clone(), file.clone().into());
        }
    }
    let index =
        serde_json::json!({"metadata": {"total_size": 2 * params}, "weight_map": weight_map});
    std::fs::write(
        out.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&index)?,
    )?;
    let config = serde_json::json!({
        "architectures": ["LlamaForSequenceClassification"],
        "model_type": "llama",
        "dtype": "bfloat16",
        "hidden_size": s.hidden,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "intermediate_size": s.inter,
        "vocab_size": s.vocab,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": false,
        "attention_bias": false,
        "mlp_bias": false,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
    });
    std::fs::write(out.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    std::fs::copy(tokenizer, out.join("tokenizer.json"))?;
    println!(
        "big_model: {name}: {params} parameters, {:.2} GB in bf16, {n} shard(s) in {}",
        2.0 * params as f64 / 1e9,
        out.display()
    );
    Ok(())
}
