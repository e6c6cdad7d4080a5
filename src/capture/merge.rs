//! Joining the shards of a capture. `capture --shard i/N` writes a store holding a contiguous
//! run of the whole store's parts (global part indices, see [`super::store::shard_range`]);
//! [`merge_shards`] checks that N shards fit together — same model, data and settings, every
//! shard once, parts tiling the data with no gap or overlap, each shard complete and every part
//! file matching its sha256 — and writes the store one process would have written: the same
//! files and the same manifest, byte for byte (each part depends only on its own examples).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::store::{
    examples_path, part_path, plan_parts, read_manifest, rel_key, Manifest, StoreWriter,
};
use crate::error::{Error, Result};

/// A shard's manifest with what differs between shards of one capture removed.
fn job_of(m: &Manifest) -> Manifest {
    let mut m = m.clone();
    m.shard = None;
    m.planned_parts.clear();
    m.parts.clear();
    m.sha256.clear();
    m.complete = false;
    m
}

/// The top-level manifest fields in which two jobs differ (for the error message).
fn differences(a: &Manifest, b: &Manifest) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(job_of(a)).expect("manifests serialise"),
        serde_json::to_value(job_of(b)).expect("manifests serialise"),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| match (v, b.get(k)) {
            (serde_json::Value::Object(_), _) => k.clone(),
            (v, Some(w)) => format!("{k} ({v} vs {w})"),
            (v, None) => format!("{k} ({v} vs none)"),
        })
        .collect()
}

/// Join the shard stores `shards` (any order) into the store `out` (which must be new or
/// empty, or is replaced with `force`). Returns the merged manifest.
pub fn merge_shards(shards: &[PathBuf], out: &Path, force: bool) -> Result<Manifest> {
    if shards.is_empty() {
        return Err(Error::param("shards", "name at least one shard store"));
    }
    let mut by_index: BTreeMap<usize, (PathBuf, Manifest)> = BTreeMap::new();
    let mut count = None;
    for dir in shards {
        let m = read_manifest(dir)?;
        let Some(sh) = m.shard else {
            return Err(Error::InvalidStore {
                path: dir.clone(),
                reason: "is not a shard store (its manifest has no `shard`; it was not written by `capture --shard i/N`)".into(),
            });
        };
        if !m.complete {
            return Err(Error::InvalidStore {
                path: dir.clone(),
                reason: format!(
                    "shard {}/{} is incomplete ({} of {} parts written); finish it with `repdrift capture --shard {}/{} --resume`",
                    sh.index,
                    sh.count,
                    m.parts.len(),
                    m.planned_parts.len(),
                    sh.index,
                    sh.count
                ),
            });
        }
        let first_dir = by_index
            .values()
            .next()
            .map_or_else(|| dir.clone(), |(d, _)| d.clone());
        if let Some((_, first)) = by_index.values().next() {
            let diff = differences(first, &m);
            if !diff.is_empty() {
                return Err(Error::Incompatible {
                    left: first_dir,
                    right: dir.clone(),
                    reason: format!(
                        "shards of different captures: they differ in {}",
                        diff.join(", ")
                    ),
                });
            }
        }
        if *count.get_or_insert(sh.count) != sh.count {
            return Err(Error::Incompatible {
                left: first_dir,
                right: dir.clone(),
                reason: format!(
                    "shards of {} and of {} shards",
                    count.unwrap_or(0),
                    sh.count
                ),
            });
        }
        if let Some((other, _)) = by_index.get(&sh.index) {
            return Err(Error::Incompatible {
                left: other.clone(),
                right: dir.clone(),
                reason: format!("both are shard {}/{}", sh.index, sh.count),
            });
        }
        by_index.insert(sh.index, (dir.clone(), m));
    }
    let count = count.expect("at least one shard");
    let missing: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::param(
            "shards",
            format!(
                "shard {} missing: merge needs all {count} shards",
                missing.join(", ")
            ),
        ));
    }
    // The parts must tile the whole store exactly.
    let (_, first) = by_index.values().next().expect("count ≥ 1");
    let full = plan_parts(first.dataset.n_examples, first.part_size);
    let tiled: Vec<_> = by_index
        .values()
        .flat_map(|(_, m)| m.planned_parts.iter().copied())
        .collect();
    if tiled != full {
        let at = tiled
            .iter()
            .zip(&full)
            .position(|(a, b)| a != b)
            .unwrap_or(tiled.len().min(full.len()));
        let (dir, _) = by_index
            .values()
            .find(|(_, m)| m.planned_parts.iter().any(|p| Some(p) == tiled.get(at)))
            .unwrap_or_else(|| by_index.values().last().expect("count ≥ 1"));
        return Err(Error::InvalidStore {
            path: dir.clone(),
            reason: format!(
                "the shards' parts do not tile the data: {} parts of {} examples expected, the shards hold {} (first gap or overlap at part {at})",
                full.len(),
                first.dataset.n_examples,
                tiled.len()
            ),
        });
    }
    let mut plan = job_of(first);
    plan.planned_parts = full;
    let existed = out.exists();
    let written = write_merged(out, plan, &by_index, force);
    if written.is_err() && !existed {
        // Nothing half-written: a merge that fails midway (a part changed after capture)
        // removes the store it started.
        let _ = std::fs::remove_dir_all(out);
    }
    written
}

fn write_merged(
    out: &Path,
    plan: Manifest,
    by_index: &BTreeMap<usize, (PathBuf, Manifest)>,
    force: bool,
) -> Result<Manifest> {
    let mut writer = StoreWriter::open(out, plan, false, force)?;
    for (dir, m) in by_index.values() {
        for part in &m.parts {
            let mut files: Vec<PathBuf> = m
                .hooks
                .iter()
                .flat_map(|&h| {
                    m.layers_of(h)
                        .iter()
                        .map(move |&l| part_path(dir, h, l, part.index))
                })
                .collect();
            files.push(examples_path(dir, part.index));
            let mut copied = Vec::with_capacity(files.len());
            for src in files {
                let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
                let key = rel_key(dir, &src);
                let got = crate::io::sha256_bytes(&bytes);
                if !m.sha256.is_empty() && m.sha256.get(&key) != Some(&got) {
                    return Err(Error::InvalidStore {
                        path: src.clone(),
                        reason: format!(
                            "sha256 {got} is not the manifest's {}: the part changed after capture",
                            m.sha256.get(&key).map(String::as_str).unwrap_or("(none)")
                        ),
                    });
                }
                copied.push((key, bytes, got));
            }
            writer.adopt_part(*part, &copied)?;
        }
    }
    writer.finish()
}
