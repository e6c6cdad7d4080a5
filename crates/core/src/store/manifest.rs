//! The activation store's manifest (`STORE/manifest.json`): what was captured — model,
//! data, pooling, hooks, layers, parts — and the sha256 of every part file; the file layout
//! ([`part_path`], [`examples_path`]); and reading it back ([`read_manifest`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hook::HookPoint;

/// The shape of the lines of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// `{"text"}`
    Text,
    /// `{"prompt","chosen","rejected"}`
    PromptPair,
    /// `{"chosen","rejected"}` (HH-RLHF transcripts)
    Transcript,
    /// PKU-SafeRLHF rows (`response_0`, `response_1` and a `*_response_id` label)
    PkuPair,
    /// `{"messages": [...]}`
    Conversation,
    /// `{"chosen": [...], "rejected": [...]}` message lists (optional `"prompt": [...]`)
    ConversationPair,
}

impl DataFormat {
    /// The store fields (one activation matrix each) that examples of this format produce.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            DataFormat::Text | DataFormat::Conversation => &["text"],
            DataFormat::PromptPair
            | DataFormat::Transcript
            | DataFormat::PkuPair
            | DataFormat::ConversationPair => &["chosen", "rejected"],
        }
    }
}

/// How a sequence's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The last real (non-pad) token.
    Last,
    /// The mean over all real tokens (special tokens included).
    Mean,
    /// The mean over the response's tokens (pairs only): tokens whose byte span ends after the
    /// response start; special tokens (empty spans) excluded.
    ResponseMean,
}

impl Pooling {
    /// Parse `last`, `mean` or `response-mean`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            "response-mean" => Ok(Pooling::ResponseMean),
            _ => Err(Error::param(
                "pool",
                format!("unknown pooling `{s}` (known: last, mean, response-mean)"),
            )),
        }
    }

    /// The name used in manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
            Pooling::ResponseMean => "response-mean",
        }
    }
}

/// The value of `manifest.format`.
pub const STORE_FORMAT: &str = "repdrift-activations";
/// The value of `manifest.version`.
pub const STORE_VERSION: u32 = 1;

/// The model a store was captured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestModel {
    pub path: PathBuf,
    pub architecture: String,
    pub source: String,
    pub sha256: String,
    pub n_layers: usize,
    pub hidden_size: usize,
}

/// The data set a store was captured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestDataset {
    pub path: PathBuf,
    pub sha256: String,
    pub format: DataFormat,
    pub n_examples: usize,
}

/// One part: examples `[start, start + rows)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub index: usize,
    pub start: usize,
    pub rows: usize,
}

/// `STORE/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub repdrift_version: String,
    pub model: ManifestModel,
    pub dataset: ManifestDataset,
    pub pooling: Pooling,
    pub max_tokens: Option<usize>,
    pub batch_size: usize,
    pub part_size: usize,
    /// Hook names, in store order.
    pub hooks: Vec<HookPoint>,
    /// Captured layers per hook name.
    pub layers: BTreeMap<String, Vec<usize>>,
    /// Activation fields: `["text"]` or `["chosen", "rejected"]`.
    pub fields: Vec<String>,
    pub dtype: String,
    /// Per-example tensors in `examples/part_*.safetensors`.
    pub example_fields: Vec<String>,
    /// `reward_{field}` tensors (F64, one reward per row) when the model has a reward head.
    #[serde(default)]
    pub reward_fields: Vec<String>,
    /// Every part of the finished store.
    pub planned_parts: Vec<PartInfo>,
    /// Parts written so far (all of `planned_parts` when `complete`).
    pub parts: Vec<PartInfo>,
    pub complete: bool,
    /// sha256 of every file of every written part, keyed by its path relative to the store
    /// (`resid_post/layer_003/part_00000.safetensors`, `examples/part_00000.safetensors`; the
    /// same hex digest `sha256sum` prints). Every read checks it, so a part changed after
    /// capture (a bit flip, a copy from another store) is refused by name. Stores written before
    /// the field existed have none and are read unchecked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sha256: BTreeMap<String, String>,
    /// Set on the store of one shard (`capture --shard i/N`): it holds a contiguous run of the
    /// whole store's parts (`planned_parts`, with their global indices and starts), and opens
    /// for reading only once `repdrift store merge` has joined all N shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<StoreShard>,
}

/// Which shard of a store a shard store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreShard {
    pub index: usize,
    pub count: usize,
}

/// Every part of a store of `n` examples in parts of `part_size`.
pub fn plan_parts(n: usize, part_size: usize) -> Vec<PartInfo> {
    (0..n.div_ceil(part_size))
        .map(|i| PartInfo {
            index: i,
            start: i * part_size,
            rows: part_size.min(n - i * part_size),
        })
        .collect()
}

/// The contiguous run of `n_parts` parts that shard `index` of `count` holds:
/// `[index·n_parts/count, (index+1)·n_parts/count)`, so shards differ by at most one part.
pub fn shard_range(n_parts: usize, shard: StoreShard) -> std::ops::Range<usize> {
    shard.index * n_parts / shard.count..(shard.index + 1) * n_parts / shard.count
}

impl Manifest {
    /// The same capture, ignoring progress (`parts`, `complete`).
    pub fn same_job(&self, other: &Manifest) -> bool {
        let strip = |m: &Manifest| {
            let mut m = m.clone();
            m.parts.clear();
            m.complete = false;
            m.sha256.clear();
            m
        };
        strip(self) == strip(other)
    }

    /// The number of examples.
    pub fn n_examples(&self) -> usize {
        self.dataset.n_examples
    }

    /// The captured layers of `hook`.
    pub fn layers_of(&self, hook: HookPoint) -> &[usize] {
        self.layers
            .get(hook.name())
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }
}

/// `STORE/{hook}/layer_{LLL}/part_{PPPPP}.safetensors`.
pub fn part_path(dir: &Path, hook: HookPoint, layer: usize, part: usize) -> PathBuf {
    dir.join(hook.name())
        .join(format!("layer_{layer:03}"))
        .join(format!("part_{part:05}.safetensors"))
}

/// `STORE/examples/part_{PPPPP}.safetensors`.
pub fn examples_path(dir: &Path, part: usize) -> PathBuf {
    dir.join("examples")
        .join(format!("part_{part:05}.safetensors"))
}

/// `path` relative to the store, with `/` separators: the key of [`Manifest::sha256`].
pub fn rel_key(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Read and check `STORE/manifest.json` (format and version).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        cause: e,
    })?;
    if m.format != STORE_FORMAT || m.version != STORE_VERSION {
        return Err(Error::InvalidStore {
            path,
            reason: format!(
                "format `{}` version {} is not `{STORE_FORMAT}` version {STORE_VERSION}",
                m.format, m.version
            ),
        });
    }
    Ok(m)
}
