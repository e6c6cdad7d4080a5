//! The activation store: a documented on-disk format (see the README) that NumPy and the
//! `safetensors` Python package can read, written part by part, atomically.
//!
//! ```text
//! STORE/manifest.json
//! STORE/{hook}/layer_{LLL}/part_{PPPPP}.safetensors   one 2-D F32 tensor per field, (rows, hidden)
//! STORE/examples/part_{PPPPP}.safetensors             n_tokens I64 (rows, n_fields), numeric extras F64 (rows,),
//!                                                     reward_{field} F64 (rows,) for reward models
//! ```
//! A part is the unit of atomic write and of resume: its files are renamed into place, then
//! the manifest (rewritten atomically) lists it. `capture --resume` continues at the first
//! part the manifest does not list; the finished store is bit-identical to an uninterrupted
//! run (the manifest holds no timestamps).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::params::{Pooled, Pooling, ValidCaptureParams};
use crate::data::{DataFormat, Dataset, Example};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::{HookPoint, HookRequest, ModelInfo};

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

fn numeric_extras(examples: &[Example]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    if let Some(first) = examples.first() {
        for (k, v) in &first.extras {
            if v.is_number()
                && examples
                    .iter()
                    .all(|e| e.extras.get(k).is_some_and(|x| x.is_number()))
            {
                keys.push(k.clone());
            }
        }
    }
    keys.sort();
    keys
}

impl Manifest {
    /// The manifest of a store about to be captured.
    pub fn plan(
        model: &ModelInfo,
        data: &Dataset,
        params: &ValidCaptureParams,
        hooks: &HookRequest,
    ) -> Self {
        let mut layers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (h, l) in hooks.points() {
            layers.entry(h.name().to_string()).or_default().push(l);
        }
        let n = data.examples.len();
        let mut planned_parts = plan_parts(n, params.part_size);
        let shard = params
            .shard
            .map(|(index, count)| StoreShard { index, count });
        if let Some(sh) = shard {
            planned_parts = planned_parts[shard_range(planned_parts.len(), sh)].to_vec();
        }
        let mut example_fields = vec!["n_tokens".to_string()];
        example_fields.extend(numeric_extras(&data.examples));
        let reward_fields = if hooks.reward() {
            data.format
                .fields()
                .iter()
                .map(|f| format!("reward_{f}"))
                .collect()
        } else {
            Vec::new()
        };
        Manifest {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            repdrift_version: env!("CARGO_PKG_VERSION").into(),
            model: ManifestModel {
                path: model.path.clone(),
                architecture: model.architecture.clone(),
                source: model.source.clone(),
                sha256: model.weights_sha256.clone(),
                n_layers: model.n_layers,
                hidden_size: model.hidden_size,
            },
            dataset: ManifestDataset {
                path: data.path.clone(),
                sha256: data.sha256.clone(),
                format: data.format,
                n_examples: n,
            },
            pooling: params.pooling,
            max_tokens: params.max_tokens,
            batch_size: params.batch_size,
            part_size: params.part_size,
            hooks: params.hooks.clone(),
            layers,
            fields: data.format.fields().iter().map(|s| s.to_string()).collect(),
            dtype: "F32".into(),
            example_fields,
            reward_fields,
            planned_parts,
            parts: Vec::new(),
            complete: false,
            sha256: BTreeMap::new(),
            shard,
        }
    }

    /// The same capture, ignoring progress (`parts`, `complete`).
    fn same_job(&self, other: &Manifest) -> bool {
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
pub(crate) fn rel_key(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn serialize(
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    meta: Option<(String, String)>,
) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::param("store", format!("cannot build tensor `{n}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let info = meta.map(|(k, v)| HashMap::from([(k, v)]));
    safetensors::tensor::serialize(views, info)
        .map_err(|e| Error::param("store", format!("cannot serialize part: {e}")))
}

/// Writes a store part by part; resumes an interrupted one.
pub struct StoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    /// Held while writing: a second writer of the same store gets a named error.
    _lock: crate::io::DirLock,
}

impl StoreWriter {
    /// Open `dir` for the job described by `plan`: a new or empty directory; with `resume` an
    /// unfinished store of the same job; with `force` anything (its contents are removed).
    pub fn open(dir: &Path, plan: Manifest, resume: bool, force: bool) -> Result<Self> {
        let manifest_path = dir.join("manifest.json");
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidStore {
                path: dir.to_path_buf(),
                reason: "exists and is not a directory".into(),
            });
        }
        // Lock first (creating the directory), so that two writers cannot both pass the
        // checks below.
        let lock = crate::io::lock_dir(dir)?;
        let mut non_empty = !is_empty_dir(dir)?;
        // A writer killed before its first manifest landed leaves at most a temp file: with
        // `resume` that directory is as good as empty (regression: CI's capture kill trial 15
        // landed there and the resume failed on the missing manifest).
        if non_empty && resume && !manifest_path.exists() && holds_only_temps(dir)? {
            remove_stale_temps(dir)?;
            non_empty = false;
        }
        let manifest = if non_empty && force {
            crate::io::clear_dir(dir)?;
            plan
        } else if non_empty && resume {
            if !manifest_path.exists() {
                return Err(Error::InvalidStore {
                    path: dir.to_path_buf(),
                    reason: "cannot resume: not a repdrift store (no manifest.json, and not empty); use another --out, or --force to replace its contents".into(),
                });
            }
            remove_stale_temps(dir)?;
            let old = read_manifest(dir)?;
            if !old.same_job(&plan) {
                return Err(Error::InvalidStore {
                    path: dir.to_path_buf(),
                    reason: "cannot resume: the store was captured with another model, data set or parameters (use --force to start over)".into(),
                });
            }
            old
        } else if non_empty {
            return Err(Error::StoreExists {
                path: dir.to_path_buf(),
            });
        } else {
            plan
        };
        let w = Self {
            dir: dir.to_path_buf(),
            manifest,
            _lock: lock,
        };
        if !manifest_path.exists() {
            w.write_manifest()?;
        }
        Ok(w)
    }

    fn write_manifest(&self) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.manifest).map_err(|e| Error::Json {
            path: self.dir.join("manifest.json"),
            cause: e,
        })?;
        bytes.push(b'\n');
        write_atomic(&self.dir.join("manifest.json"), &bytes)
    }

    /// The manifest as written so far.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Parts already written.
    pub fn parts_done(&self) -> usize {
        self.manifest.parts.len()
    }

    /// Examples already written.
    pub fn examples_done(&self) -> usize {
        self.manifest.parts.iter().map(|p| p.rows).sum()
    }

    /// Parts still to write, in order.
    pub fn parts_todo(&self) -> Vec<PartInfo> {
        self.manifest.planned_parts[self.manifest.parts.len()..].to_vec()
    }

    /// Write one part: `buffers[(hook, layer)]` holds `rows × n_fields` pooled rows, example
    /// by example with fields interleaved; `n_tokens` one count per sequence in that order.
    pub fn write_part(
        &mut self,
        index: usize,
        buffers: &Pooled,
        n_fields: usize,
        n_tokens: &[i64],
        examples: &[Example],
        rewards: Option<&[f32]>,
    ) -> Result<()> {
        let expected = self.manifest.planned_parts[self.manifest.parts.len()];
        assert_eq!(expected.index, index, "parts are written in order");
        let rows = expected.rows;
        let d = self.manifest.model.hidden_size;
        let files: Vec<(HookPoint, usize)> = self
            .manifest
            .hooks
            .iter()
            .flat_map(|&h| self.manifest.layers_of(h).iter().map(move |&l| (h, l)))
            .collect();
        for (hook, layer) in files {
            let buf = buffers
                .get(&(hook, layer))
                .ok_or_else(|| Error::InvalidStore {
                    path: self.dir.clone(),
                    reason: format!("model produced no activation for {hook} layer {layer}"),
                })?;
            let mut tensors = Vec::new();
            for (fi, field) in self.manifest.fields.iter().enumerate() {
                let mut m = Vec::with_capacity(rows * d);
                for r in 0..rows {
                    let s = r * n_fields + fi;
                    m.extend_from_slice(&buf[s * d..(s + 1) * d]);
                }
                tensors.push((field.clone(), Dtype::F32, vec![rows, d], f32_bytes(&m)));
            }
            let bytes = serialize(tensors, None)?;
            self.write_hashed(&part_path(&self.dir, hook, layer, index), &bytes)?;
        }
        let mut tensors = vec![(
            "n_tokens".to_string(),
            Dtype::I64,
            vec![rows, n_fields],
            n_tokens.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )];
        for key in self.manifest.example_fields.iter().skip(1) {
            let vals: Vec<u8> = examples
                .iter()
                .flat_map(|e| {
                    e.extras
                        .get(key)
                        .and_then(|v| v.as_f64())
                        .unwrap_or(f64::NAN)
                        .to_le_bytes()
                })
                .collect();
            tensors.push((key.clone(), Dtype::F64, vec![rows], vals));
        }
        for (fi, key) in self.manifest.reward_fields.iter().enumerate() {
            let r = rewards.ok_or_else(|| Error::InvalidStore {
                path: self.dir.clone(),
                reason: "the model produced no rewards".into(),
            })?;
            let vals: Vec<u8> = (0..rows)
                .flat_map(|row| (r[row * n_fields + fi] as f64).to_le_bytes())
                .collect();
            tensors.push((key.clone(), Dtype::F64, vec![rows], vals));
        }
        let extras: Vec<serde_json::Value> = examples
            .iter()
            .map(|e| {
                let mut m = e.extras.clone();
                m.insert("line".into(), e.line.into());
                serde_json::Value::Object(m)
            })
            .collect();
        let meta = serde_json::to_string(&extras).expect("JSON values serialize");
        let bytes = serialize(tensors, Some(("extras".into(), meta)))?;
        self.write_hashed(&examples_path(&self.dir, index), &bytes)?;
        self.manifest.parts.push(expected);
        self.write_manifest()
    }

    /// Write one part file and record its sha256 (the manifest written after the part lists it).
    fn write_hashed(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic(path, bytes)?;
        self.manifest
            .sha256
            .insert(rel_key(&self.dir, path), crate::io::sha256_bytes(bytes));
        Ok(())
    }

    /// Add part `part` from files already written elsewhere (a shard): `files` are
    /// `(path relative to the store, bytes, their sha256)`, the digest already checked by the
    /// caller; the part must be the next one planned.
    pub fn adopt_part(
        &mut self,
        part: PartInfo,
        files: &[(String, Vec<u8>, String)],
    ) -> Result<()> {
        let expected = self.manifest.planned_parts.get(self.manifest.parts.len());
        if expected != Some(&part) {
            return Err(Error::InvalidStore {
                path: self.dir.clone(),
                reason: format!("part {part:?} is not the next planned part ({expected:?})"),
            });
        }
        for (key, bytes, sha) in files {
            write_atomic(&self.dir.join(key), bytes)?;
            self.manifest.sha256.insert(key.clone(), sha.clone());
        }
        self.manifest.parts.push(part);
        self.write_manifest()
    }

    /// Mark the store complete.
    pub fn finish(mut self) -> Result<Manifest> {
        self.manifest.complete = self.manifest.parts.len() == self.manifest.planned_parts.len();
        self.write_manifest()?;
        Ok(self.manifest)
    }
}

/// Remove the temp files (`.NAME.PID.tmp`) that writers killed mid-write left behind: no
/// reader opens them, and the resumed writer rewrites their targets.
fn remove_stale_temps(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if p.is_dir() {
                stack.push(p);
            } else if name.is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp")) {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    Ok(())
}

/// Whether `dir` holds nothing (no files, no folders).
fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .next()
        .is_none())
}

/// Whether `dir` holds temp files (`.NAME.PID.tmp`) and nothing else.
fn holds_only_temps(dir: &Path) -> Result<bool> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() || !(name.starts_with('.') && name.ends_with(".tmp")) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest> {
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
