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

use super::params::{Pooled, ValidCaptureParams};
use crate::data::{Dataset, Example};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::{HookPoint, HookRequest, ModelInfo};
pub use repdrift_core::store::manifest::{
    examples_path, part_path, plan_parts, read_manifest, rel_key, shard_range, Manifest,
    ManifestDataset, ManifestModel, PartInfo, StoreShard, STORE_FORMAT, STORE_VERSION,
};

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

/// The manifest of a store about to be captured.
pub fn plan_manifest(
    model: &ModelInfo,
    data: &Dataset,
    params: &ValidCaptureParams,
    hooks: &HookRequest,
) -> Manifest {
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
