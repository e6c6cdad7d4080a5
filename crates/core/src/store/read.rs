//! Reading a finished store: [`Store`] streams the parts of one `(hook, layer, field)` matrix,
//! reads per-example data and rewards, and checks every part file against the manifest's
//! sha256. Shapes: each part of a field is `(rows, hidden)` F32; `read` concatenates them to
//! `(n_examples, hidden)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors};

use super::manifest::{examples_path, part_path, read_manifest, rel_key, Manifest, PartInfo};
use crate::error::{Error, Result};
use crate::hook::HookPoint;

/// A finished store, opened for reading.
///
/// ```no_run
/// use repdrift_core::store::Store;
/// use repdrift_core::hook::HookPoint;
/// let store = Store::open("out/store".as_ref()).unwrap();
/// for part in store.parts(HookPoint::ResidPost, 12, "chosen").unwrap() {
///     let x = part.unwrap(); // (rows, hidden)
///     println!("{:?}", x.dim());
/// }
/// ```
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
}

/// Per-example data of one part.
#[derive(Debug, Clone)]
pub struct ExamplesPart {
    /// `(rows, n_fields)` token counts.
    pub n_tokens: Array2<i64>,
    /// Numeric extra fields (e.g. `label`), one value per row.
    pub numeric: BTreeMap<String, Vec<f64>>,
    /// All extra fields of each example, with its source `line`.
    pub extras: Vec<serde_json::Value>,
    /// `reward_{field}` → one reward per row (reward-model stores only).
    pub rewards: BTreeMap<String, Vec<f64>>,
}

impl Store {
    /// Open a complete store.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        if let Some(sh) = manifest.shard {
            return Err(Error::InvalidStore {
                path: dir.to_path_buf(),
                reason: format!(
                    "is shard {} of {} of a store; join all {} shards first with `repdrift store merge`",
                    sh.index, sh.count, sh.count
                ),
            });
        }
        if !manifest.complete {
            return Err(Error::InvalidStore {
                path: dir.to_path_buf(),
                reason: format!(
                    "incomplete: {} of {} parts written; finish it with `repdrift capture --resume`",
                    manifest.parts.len(),
                    manifest.planned_parts.len()
                ),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read a part file and check it against the manifest's sha256 (when the store has them).
    fn read_checked(&self, path: &Path) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if self.manifest.sha256.is_empty() {
            return Ok(bytes);
        }
        let key = rel_key(&self.dir, path);
        let Some(want) = self.manifest.sha256.get(&key) else {
            return Err(Error::InvalidStore {
                path: path.to_path_buf(),
                reason: format!("the manifest lists no sha256 for part file `{key}`"),
            });
        };
        let got = crate::io::sha256_bytes(&bytes);
        if &got != want {
            return Err(Error::InvalidStore {
                path: path.to_path_buf(),
                reason: format!(
                    "sha256 {got} differs from the manifest's {want}: the part changed after capture (re-capture it, or restore the file)"
                ),
            });
        }
        Ok(bytes)
    }

    fn check_request(&self, hook: HookPoint, layer: usize, field: &str) -> Result<()> {
        if !self.manifest.fields.iter().any(|f| f == field) {
            return Err(Error::InvalidStore {
                path: self.dir.clone(),
                reason: format!(
                    "no field `{field}` (fields: {})",
                    self.manifest.fields.join(", ")
                ),
            });
        }
        let layers = self.manifest.layers_of(hook);
        if !layers.contains(&layer) {
            return Err(Error::InvalidStore {
                path: self.dir.clone(),
                reason: format!("no {hook} layer {layer} (captured: {layers:?})"),
            });
        }
        Ok(())
    }

    /// Stream the parts of one `(hook, layer, field)` matrix, each `(rows, hidden)`, in order.
    pub fn parts(
        &self,
        hook: HookPoint,
        layer: usize,
        field: &str,
    ) -> Result<impl Iterator<Item = Result<Array2<f32>>> + '_> {
        self.check_request(hook, layer, field)?;
        let field = field.to_string();
        Ok(self.manifest.parts.iter().map(move |p| {
            let path = part_path(&self.dir, hook, layer, p.index);
            let bytes = self.read_checked(&path)?;
            matrix_from_bytes(
                &bytes,
                &path,
                &field,
                p.rows,
                self.manifest.model.hidden_size,
            )
        }))
    }

    /// Every field of one part, in manifest field order, each `(rows, hidden)` (one file read).
    pub fn read_part(
        &self,
        hook: HookPoint,
        layer: usize,
        part: &PartInfo,
    ) -> Result<Vec<Array2<f32>>> {
        self.check_request(hook, layer, &self.manifest.fields[0])?;
        let path = part_path(&self.dir, hook, layer, part.index);
        let bytes = self.read_checked(&path)?;
        self.manifest
            .fields
            .iter()
            .map(|f| {
                matrix_from_bytes(&bytes, &path, f, part.rows, self.manifest.model.hidden_size)
            })
            .collect()
    }

    /// The whole `(n_examples, hidden)` matrix of one `(hook, layer, field)`.
    pub fn read(&self, hook: HookPoint, layer: usize, field: &str) -> Result<Array2<f32>> {
        let d = self.manifest.model.hidden_size;
        let mut all = Vec::with_capacity(self.manifest.n_examples() * d);
        for part in self.parts(hook, layer, field)? {
            all.extend(part?);
        }
        Ok(Array2::from_shape_vec((self.manifest.n_examples(), d), all)
            .expect("parts hold n_examples rows"))
    }

    /// Per-example data of part `index`.
    pub fn examples(&self, index: usize) -> Result<ExamplesPart> {
        let path = examples_path(&self.dir, index);
        let bytes = self.read_checked(&path)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Truncated {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::Truncated {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let nt = st.tensor("n_tokens").map_err(|e| Error::InvalidStore {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let shape = (nt.shape()[0], nt.shape()[1]);
        let vals: Vec<i64> = nt
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let n_tokens = Array2::from_shape_vec(shape, vals).map_err(|e| Error::InvalidStore {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let f64s = |key: &str| -> Result<Vec<f64>> {
            let t = st.tensor(key).map_err(|e| Error::InvalidStore {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Ok(t.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        };
        let mut numeric = BTreeMap::new();
        for key in self.manifest.example_fields.iter().skip(1) {
            numeric.insert(key.clone(), f64s(key)?);
        }
        let mut rewards = BTreeMap::new();
        for key in &self.manifest.reward_fields {
            rewards.insert(key.clone(), f64s(key)?);
        }
        let extras = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("extras"))
            .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(s).ok())
            .unwrap_or_default();
        Ok(ExamplesPart {
            n_tokens,
            numeric,
            extras,
            rewards,
        })
    }

    /// The reward model's rewards over all parts, `(n_examples, n_fields)` in field order, or
    /// `None` when the store was captured from a model without a reward head.
    pub fn rewards(&self) -> Result<Option<Array2<f64>>> {
        if self.manifest.reward_fields.is_empty() {
            return Ok(None);
        }
        let n_fields = self.manifest.reward_fields.len();
        let mut all = Vec::with_capacity(self.manifest.n_examples() * n_fields);
        for part in &self.manifest.parts {
            let ex = self.examples(part.index)?;
            for row in 0..part.rows {
                for key in &self.manifest.reward_fields {
                    all.push(ex.rewards[key][row]);
                }
            }
        }
        Ok(Some(
            Array2::from_shape_vec((self.manifest.n_examples(), n_fields), all)
                .expect("parts hold n_examples rows"),
        ))
    }
}

fn matrix_from_bytes(
    bytes: &[u8],
    path: &Path,
    field: &str,
    rows: usize,
    cols: usize,
) -> Result<Array2<f32>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Truncated {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let t = st.tensor(field).map_err(|e| Error::InvalidStore {
        path: path.to_path_buf(),
        reason: format!("tensor `{field}`: {e}"),
    })?;
    if t.dtype() != Dtype::F32 || t.shape() != [rows, cols] {
        return Err(Error::ShapeMismatch {
            what: format!("{} tensor `{field}` ({:?})", path.display(), t.dtype()),
            left_name: "manifest".into(),
            left: vec![rows, cols],
            right_name: "file".into(),
            right: t.shape().to_vec(),
        });
    }
    let vals: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(Array2::from_shape_vec((rows, cols), vals).expect("shape checked"))
}
