//! Named weights with shape checks, walked by prefix like candle's `VarBuilder::pp`.
//!
//! Sources: an in-memory map (GGUF, dequantized to f32), safetensors files read tensor by tensor, or
//! an overlay (a student's delta: its own tensors first, the base's for the rest).
//! Every tensor is returned as f32 on the requested device. A missing weight or a wrong shape
//! is an error naming the file, the weight and both shapes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::tensor_file::TensorFile;
use crate::error::{Error, Result};

enum Source {
    Map(HashMap<String, Tensor>),
    /// Safetensors files (one, or an index's shards) read tensor by tensor; a name's file.
    Files(Vec<TensorFile>, HashMap<String, usize>),
    /// Tensors that replace the base's, then the base.
    Overlay(HashMap<String, Tensor>, Arc<Store>),
}

impl Store {
    fn new(path: PathBuf, source: Source, device: Device) -> Self {
        let mut s = Self {
            path,
            source,
            device,
            headless: false,
        };
        s.headless = !s.contains("model.embed_tokens.weight") && s.contains("embed_tokens.weight");
        s
    }

    /// The stored name of HF name `full`: in a headless checkpoint (saved from the bare model
    /// class, `LlamaModel.save_pretrained`: `embed_tokens.weight`, `layers.0.…`, `norm.weight`)
    /// `model.X` is stored as `X`.
    fn stored<'a>(&self, full: &'a str) -> &'a str {
        match (self.headless, full.strip_prefix("model.")) {
            (true, Some(rest)) => rest,
            _ => full,
        }
    }

    fn contains(&self, full: &str) -> bool {
        let name = self.stored(full);
        match &self.source {
            Source::Map(m) => m.contains_key(name),
            Source::Files(_, by_name) => by_name.contains_key(name),
            Source::Overlay(m, base) => m.contains_key(full) || base.contains(full),
        }
    }

    /// The tensor named `full`, on the store's device, in its stored dtype.
    fn lookup(&self, full: &str) -> Result<Option<Tensor>> {
        let name = self.stored(full);
        Ok(match &self.source {
            Source::Map(m) => m.get(name).cloned(),
            Source::Files(files, by_name) => match by_name.get(name) {
                Some(&i) => files[i].load(name, &self.device)?,
                None => None,
            },
            Source::Overlay(m, base) => match m.get(full) {
                Some(t) => Some(t.clone()),
                None => base.lookup(full)?,
            },
        })
    }
}

struct Store {
    path: PathBuf,
    source: Source,
    device: Device,
    /// Saved from the bare model class: HF names lose their `model.` prefix (see `stored`).
    headless: bool,
}

/// A view of a weight store under a name prefix.
#[derive(Clone)]
pub struct Weights {
    store: Arc<Store>,
    prefix: String,
    /// The dtype `get` returns (f32 unless [`Weights::with_dtype`] says otherwise).
    dtype: DType,
}

impl Weights {
    /// Weights from an in-memory map (names in HF convention).
    pub fn from_map(path: &Path, map: HashMap<String, Tensor>, device: &Device) -> Self {
        Self {
            store: Arc::new(Store::new(
                path.to_path_buf(),
                Source::Map(map),
                device.clone(),
            )),
            prefix: String::new(),
            dtype: DType::F32,
        }
    }

    /// `delta`'s tensors in place of the same-named ones of `base` (a student stored as the
    /// tensors training changed). Errors name `path` (the delta).
    pub fn overlay(path: &Path, delta: HashMap<String, Tensor>, base: &Weights) -> Self {
        Self {
            store: Arc::new(Store::new(
                path.to_path_buf(),
                Source::Overlay(delta, base.store.clone()),
                base.store.device.clone(),
            )),
            prefix: String::new(),
            dtype: base.dtype,
        }
    }

    /// One safetensors file, its header checked (complete, every tensor's range inside the
    /// file); tensors are read when asked for (see [`TensorFile`]).
    pub fn from_safetensors(path: &Path, device: &Device) -> Result<Self> {
        let source = files_source(vec![TensorFile::open(path)?]);
        Ok(Self {
            store: Arc::new(Store::new(path.to_path_buf(), source, device.clone())),
            prefix: String::new(),
            dtype: DType::F32,
        })
    }

    /// The weights of an HF directory: `model.safetensors`, or the shards that
    /// `model.safetensors.index.json` lists (each checked to be complete, all memory-mapped).
    /// Also returns the weights' hash: the file's sha256, or for shards the sha256 of the index
    /// file's bytes followed by each shard's sha256 (hex) in name order.
    pub fn from_hf_dir(dir: &Path, device: &Device) -> Result<(Self, String)> {
        let index = dir.join("model.safetensors.index.json");
        if !index.exists() {
            let st = dir.join("model.safetensors");
            let w = Self::from_safetensors(&st, device)?;
            return Ok((w, crate::io::sha256_file(&st)?));
        }
        let bytes = std::fs::read(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: index.clone(),
            cause: e,
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::model(&index, "no `weight_map` object in the shard index"))?;
        let mut files: Vec<String> = map
            .values()
            .map(|f| {
                f.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::model(&index, "`weight_map` values must be file names"))
            })
            .collect::<Result<_>>()?;
        files.sort();
        files.dedup();
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut hasher, &bytes);
        let mut shards = Vec::new();
        for f in &files {
            if f.contains('/') || f.contains("..") {
                return Err(Error::model(
                    &index,
                    format!("shard `{f}` is not a file in the directory"),
                ));
            }
            let p = dir.join(f);
            if !p.exists() {
                return Err(Error::model(
                    &p,
                    "shard listed in model.safetensors.index.json is missing",
                ));
            }
            sha2::Digest::update(&mut hasher, crate::io::sha256_file(&p)?.as_bytes());
            shards.push(TensorFile::open(&p)?);
        }
        let sha = crate::io::hex(&sha2::Digest::finalize(hasher));
        Ok((
            Self {
                store: Arc::new(Store::new(index, files_source(shards), device.clone())),
                prefix: String::new(),
                dtype: DType::F32,
            },
            sha,
        ))
    }

    /// The same weights, returned by `get` in `dtype` (f32, bf16 or f16).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The view under `prefix` (joined with a dot).
    pub fn pp(&self, prefix: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{}.{}", self.prefix, prefix)
        };
        Self {
            store: self.store.clone(),
            prefix,
            dtype: self.dtype,
        }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// The weight `name` as stored (any shape), in this view's dtype; `None` when absent.
    pub fn get_any(&self, name: &str) -> Result<Option<Tensor>> {
        match self.store.lookup(&self.full(name))? {
            Some(t) => Ok(Some(t.to_dtype(self.dtype)?.to_device(&self.store.device)?)),
            None => Ok(None),
        }
    }

    /// Whether weight `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.store.contains(&self.full(name))
    }

    /// The weight `name`, checked to have `shape`, in this view's dtype (f32 by default).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self
            .with_dtype_of_store(name, shape)?
            .to_dtype(self.dtype)?)
    }

    /// [`Weights::get`] for a product's weight (a linear layer's, the token embeddings): a
    /// bf16 or f16 tensor stays in its stored dtype when this view computes in f32 on the CPU,
    /// so that a half-precision checkpoint is held at its stored size; the products convert it
    /// a block at a time (exactly: every half value is an f32 value). Otherwise as `get`.
    pub fn get_stored(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let keep = self.dtype == DType::F32 && matches!(self.store.device, Device::Cpu);
        if !keep {
            return self.get(name, shape);
        }
        let t = self.with_dtype_of_store(name, shape)?;
        Ok(match t.dtype() {
            DType::BF16 | DType::F16 => t,
            _ => t.to_dtype(DType::F32)?,
        })
    }

    /// The weight `name`, checked to have `shape`, in its stored dtype on the store's device.
    fn with_dtype_of_store(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.full(name);
        let t = self.store.lookup(&full)?;
        let t =
            t.ok_or_else(|| Error::model(&self.store.path, format!("missing weight `{full}`")))?;
        if t.dims() != shape {
            return Err(Error::WeightShape {
                path: self.store.path.clone(),
                name: full,
                expected: shape.to_vec(),
                actual: t.dims().to_vec(),
            });
        }
        Ok(t.to_device(&self.store.device)?)
    }

    /// The file the weights come from.
    pub fn path(&self) -> &Path {
        &self.store.path
    }
}

/// Check that a safetensors file is complete: its header parses and every tensor's byte
/// range fits its shape and lies inside the file.
pub fn check_safetensors(path: &Path) -> Result<()> {
    TensorFile::open(path).map(|_| ())
}

/// The source of several files: each name read from the first file that holds it.
fn files_source(files: Vec<TensorFile>) -> Source {
    let mut by_name = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        for n in f.names() {
            by_name.entry(n.clone()).or_insert(i);
        }
    }
    Source::Files(files, by_name)
}
