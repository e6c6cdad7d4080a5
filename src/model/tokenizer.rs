//! Tokenizers: loaded from an HF `tokenizer.json`, or assembled from GGUF metadata.
//!
//! For GGUF files with `tokenizer.ggml.model = "gpt2"` the byte-level BPE is rebuilt from
//! `tokenizer.ggml.tokens`, `tokenizer.ggml.merges` and `tokenizer.ggml.token_type`; tokens of
//! type 3 (control) become special added tokens, type 4 (user-defined) plain added tokens.
//! The pre-tokenizer named by `tokenizer.ggml.pre` is mapped by hand (llama.cpp's table):
//! `smollm` (also `starcoder`, `refact`, `codeshell`) splits every digit, then applies the
//! GPT-2 byte-level regex. Parity with HF transformers' token ids is proven in the tests.

use std::path::Path;

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// A tokenizer plus the facts capture needs about it.
#[derive(Clone)]
pub struct ModelTokenizer {
    inner: Tokenizer,
    /// Whether `encode` adds special tokens (BOS, CLS/SEP) as the model's tokenizer does by default.
    pub add_special_tokens: bool,
    /// The model's chat template (`--template model`), when it ships one.
    pub chat_template: Option<crate::data::chat::ChatTemplate>,
}

/// A special token in `tokenizer_config.json`: a string or `{"content": …}`.
fn token_string(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    }
}

/// The chat template beside an HF `tokenizer.json`: `chat_template.jinja`, or
/// `tokenizer_config.json`'s `chat_template` (a string, or a list of `{name, template}` whose
/// `default` entry is used).
fn hf_chat_template(dir: &Path) -> Result<Option<crate::data::chat::ChatTemplate>> {
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: serde_json::Value = if cfg_path.exists() {
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Json {
            path: cfg_path.clone(),
            cause: e,
        })?
    } else {
        serde_json::Value::Null
    };
    let jinja = dir.join("chat_template.jinja");
    let source = if jinja.exists() {
        Some(std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?)
    } else {
        match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        }
    };
    Ok(source.map(|source| crate::data::chat::ChatTemplate::Jinja {
        source,
        bos_token: token_string(cfg.get("bos_token")),
        eos_token: token_string(cfg.get("eos_token")),
    }))
}

/// One tokenized sequence: ids and the byte span of each token in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

impl ModelTokenizer {
    /// Load an HF `tokenizer.json`. Padding and truncation stored in the file are switched off:
    /// HF transformers ignores them unless asked, and repdrift pads and truncates itself.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| Error::model(path, format!("tokenizer: {e}")))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let chat_template = match path.parent() {
            Some(dir) => hf_chat_template(dir)?,
            None => None,
        };
        Ok(Self {
            inner,
            add_special_tokens: true,
            chat_template,
        })
    }

    /// Assemble the tokenizer that a GGUF file describes in its metadata.
    pub fn from_gguf(path: &Path, content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let get = |k: &str| {
            md.get(k)
                .ok_or_else(|| Error::model(path, format!("GGUF metadata lacks `{k}`")))
        };
        let kind = get("tokenizer.ggml.model")?.to_string()?.clone();
        if kind != "gpt2" {
            return Err(Error::model(
                path,
                format!(
                    "GGUF tokenizer model `{kind}` is not supported (only byte-level BPE `gpt2`)"
                ),
            ));
        }
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_else(|| "default".into());
        let tokens: Vec<String> = get("tokenizer.ggml.tokens")?
            .to_vec()?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()?;
        let merges: Vec<(String, String)> = get("tokenizer.ggml.merges")?
            .to_vec()?
            .iter()
            .map(|v| {
                let s = v.to_string()?;
                let (a, b) = s.split_once(' ').ok_or_else(|| {
                    candle_core::Error::Msg(format!("GGUF merge `{s}` has no space"))
                })?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<candle_core::Result<_>>()?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()?
                .iter()
                .map(|t| t.to_i32())
                .collect::<candle_core::Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::model(path, format!("tokenizer: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tok: PreTokenizerWrapper = match pre.as_str() {
            "smollm" | "starcoder" | "refact" | "codeshell" => Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ])
            .into(),
            "default" | "gpt-2" | "gpt2" => byte_level.into(),
            other => {
                return Err(Error::model(
                    path,
                    format!("GGUF pre-tokenizer `{other}` is not supported yet (known: smollm, starcoder, refact, codeshell, gpt-2)"),
                ))
            }
        };
        inner.with_pre_tokenizer(Some(pre_tok));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true).normalized(false))
            .collect();
        inner
            .add_special_tokens(control)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 4)
            .map(|(tok, _)| AddedToken::from(tok.clone(), false).normalized(false))
            .collect();
        inner
            .add_tokens(user)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        if add_bos {
            return Err(Error::model(
                path,
                "GGUF tokenizers that add a BOS token are not supported yet",
            ));
        }
        let token_str = |key: &str| -> String {
            md.get(key)
                .and_then(|v| v.to_u32().ok())
                .and_then(|id| tokens.get(id as usize).cloned())
                .unwrap_or_default()
        };
        let chat_template = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok().cloned())
            .map(|source| crate::data::chat::ChatTemplate::Jinja {
                source,
                bos_token: token_str("tokenizer.ggml.bos_token_id"),
                eos_token: token_str("tokenizer.ggml.eos_token_id"),
            });
        Ok(Self {
            inner,
            add_special_tokens: true,
            chat_template,
        })
    }

    /// Tokenize `text` as the model's tokenizer does by default. With `max_tokens`, keep the
    /// last tokens (left truncation), special tokens preserved.
    pub fn encode(&self, text: &str, max_tokens: Option<usize>) -> Result<Tokens> {
        let enc = self
            .inner
            .encode(text, self.add_special_tokens)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids();
        let offsets = enc.get_offsets();
        let specials = enc.get_special_tokens_mask();
        let n = ids.len();
        let (mut ids, mut offsets) = (ids.to_vec(), offsets.to_vec());
        if let Some(max) = max_tokens {
            if n > max {
                // Keep leading special tokens (e.g. [CLS]) and the end of the text.
                let lead = specials.iter().take_while(|&&s| s == 1).count().min(max);
                let keep_tail = max - lead;
                let mut new_ids = ids[..lead].to_vec();
                new_ids.extend_from_slice(&ids[n - keep_tail..]);
                let mut new_off = offsets[..lead].to_vec();
                new_off.extend_from_slice(&offsets[n - keep_tail..]);
                ids = new_ids;
                offsets = new_off;
            }
        }
        Ok(Tokens { ids, offsets })
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
