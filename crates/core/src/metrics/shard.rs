//! Shards of `repdrift compare`: each shard writes its accumulators (`state.safetensors`) and
//! what it covered (`state.json`); [`merge_shards`] sums them into the result for the whole,
//! equal to one run over every part (tested to 1e-12 relative).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::output::{
    metric_err, metric_row, AccKey, Comparison, MetricsReport, StoreRecord, METRICS_FORMAT,
};
use super::{PairAccumulator, Precision};
use crate::error::{Error, Result};
use crate::hook::HookPoint;

/// `state.json` beside `state.safetensors`: what a shard covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardState {
    pub format: String,
    pub base: StoreRecord,
    pub students: Vec<StoreRecord>,
    pub hook: HookPoint,
    pub shard: (usize, usize),
    pub n_parts: usize,
    pub keys: Vec<AccKey>,
    /// sha256 of the `state.safetensors` written with this file: a shard directory whose two
    /// files come from different runs (a kill between the writes, a copy) is refused.
    #[serde(default)]
    pub tensors_sha256: String,
    /// The precision of the products (absent: `f64`); shards of different precisions are not
    /// merged.
    #[serde(default, skip_serializing_if = "Precision::is_f64")]
    pub precision: Precision,
}

const ACC_FIELDS: [&str; 21] = [
    "n",
    "shift_x",
    "shift_y",
    "sx",
    "sy",
    "xx",
    "yy",
    "yx",
    "sq_x",
    "sq_y",
    "x4",
    "y4",
    "x2y2",
    "a_xy",
    "b_yx",
    "a_xx",
    "b_yy",
    "cos",
    "cos_zero",
    "ratio",
    "ratio_zero",
];

fn acc_tensors(a: &PairAccumulator) -> Vec<(Vec<f64>, Vec<usize>)> {
    let v1 = |x: &Array1<f64>| (x.to_vec(), vec![x.len()]);
    let v2 = |x: &Array2<f64>| (x.iter().copied().collect(), x.shape().to_vec());
    let s = |x: f64| (vec![x], vec![1]);
    vec![
        s(a.n),
        v1(&a.shift_x),
        v1(&a.shift_y),
        v1(&a.sx),
        v1(&a.sy),
        v2(&a.xx),
        v2(&a.yy),
        v2(&a.yx),
        s(a.sq_x),
        s(a.sq_y),
        s(a.x4),
        s(a.y4),
        s(a.x2y2),
        v1(&a.a_xy),
        v1(&a.b_yx),
        v1(&a.a_xx),
        v1(&a.b_yy),
        (vec![a.cos_sum, a.cos_sq], vec![2]),
        s(a.cos_zero),
        s(a.ratio_sum),
        s(a.ratio_zero),
    ]
}

/// Serialise a shard's accumulators: `(state.json bytes, state.safetensors bytes)`.
pub fn render_state(c: &Comparison) -> Result<(Vec<u8>, Vec<u8>)> {
    let shard = c
        .shard
        .ok_or_else(|| Error::param("shard", "not a shard comparison"))?;
    let keys: Vec<AccKey> = c.accumulators.iter().map(|(k, _)| k.clone()).collect();
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (ki, (_, acc)) in c.accumulators.iter().enumerate() {
        for (name, (vals, shape)) in ACC_FIELDS.iter().zip(acc_tensors(acc)) {
            tensors.push((
                format!("{ki:05}.{name}"),
                vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape,
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                TensorView::new(Dtype::F64, s.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    let st = safetensors::tensor::serialize(views, None)
        .map_err(|e| Error::param("shard", format!("cannot serialise state: {e}")))?;
    let state = ShardState {
        format: "repdrift-compare-state".into(),
        base: c.report.base.clone(),
        students: c.report.students.clone(),
        hook: c.report.hook,
        shard,
        n_parts: 0,
        keys,
        tensors_sha256: crate::io::sha256_bytes(&st),
        precision: c.report.precision,
    };
    let json = crate::io::json_bytes(&state);
    Ok((json, st))
}

fn read_state(dir: &Path) -> Result<(ShardState, BTreeMap<AccKey, PairAccumulator>)> {
    let jp = dir.join("state.json");
    let sp = dir.join("state.safetensors");
    let state: ShardState = serde_json::from_slice(
        &std::fs::read(&jp).map_err(|e| Error::io(&jp, e))?,
    )
    .map_err(|e| Error::Json {
        path: jp.clone(),
        cause: e,
    })?;
    let bytes = std::fs::read(&sp).map_err(|e| Error::io(&sp, e))?;
    if !state.tensors_sha256.is_empty() && state.tensors_sha256 != crate::io::sha256_bytes(&bytes) {
        return Err(Error::InvalidStore {
            path: sp.clone(),
            reason: format!(
                "does not belong to {} (sha256 differs: the two files come from different runs, e.g. a run killed between them); run this shard again",
                jp.display()
            ),
        });
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Truncated {
        path: sp.clone(),
        detail: e.to_string(),
    })?;
    let get = |ki: usize, name: &str| -> Result<(Vec<f64>, Vec<usize>)> {
        let t = st
            .tensor(&format!("{ki:05}.{name}"))
            .map_err(|e| Error::InvalidStore {
                path: sp.clone(),
                reason: e.to_string(),
            })?;
        Ok((
            t.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                .collect(),
            t.shape().to_vec(),
        ))
    };
    let mut accs = BTreeMap::new();
    for (ki, key) in state.keys.iter().enumerate() {
        let a1 = |n: &str| -> Result<Array1<f64>> { Ok(Array1::from(get(ki, n)?.0)) };
        let a2 = |n: &str| -> Result<Array2<f64>> {
            let (v, s) = get(ki, n)?;
            Array2::from_shape_vec((s[0], s[1]), v).map_err(|e| Error::InvalidStore {
                path: sp.clone(),
                reason: e.to_string(),
            })
        };
        let sc = |n: &str| -> Result<f64> { Ok(get(ki, n)?.0[0]) };
        let cos = get(ki, "cos")?.0;
        accs.insert(
            key.clone(),
            PairAccumulator {
                n: sc("n")?,
                shift_x: a1("shift_x")?,
                shift_y: a1("shift_y")?,
                sx: a1("sx")?,
                sy: a1("sy")?,
                xx: a2("xx")?,
                yy: a2("yy")?,
                yx: a2("yx")?,
                sq_x: sc("sq_x")?,
                sq_y: sc("sq_y")?,
                x4: sc("x4")?,
                y4: sc("y4")?,
                x2y2: sc("x2y2")?,
                a_xy: a1("a_xy")?,
                b_yx: a1("b_yx")?,
                a_xx: a1("a_xx")?,
                b_yy: a1("b_yy")?,
                cos_sum: cos[0],
                cos_sq: cos[1],
                cos_zero: sc("cos_zero")?,
                ratio_sum: sc("ratio")?,
                ratio_zero: sc("ratio_zero")?,
            },
        );
    }
    Ok((state, accs))
}

/// Merge shard states (directories written by `compare --shard`) into the whole's report.
/// kNN overlap and bootstrap intervals are null: they need all rows at once.
pub fn merge_shards(dirs: &[PathBuf]) -> Result<MetricsReport> {
    let mut states = Vec::new();
    for d in dirs {
        states.push((d.clone(), read_state(d)?));
    }
    let (first_dir, (first, _)) = states
        .first()
        .ok_or_else(|| Error::param("merge", "name at least one shard"))?;
    let n_sh = first.shard.1;
    let mut seen = vec![false; n_sh];
    for (d, (s, _)) in &states {
        let inc = |reason: String| Error::Incompatible {
            left: first_dir.clone(),
            right: d.clone(),
            reason,
        };
        if s.base != first.base
            || s.students != first.students
            || s.hook != first.hook
            || s.keys != first.keys
        {
            return Err(inc("shards of different comparisons".into()));
        }
        if s.precision != first.precision {
            return Err(inc(format!(
                "precision {} vs {}",
                first.precision.name(),
                s.precision.name()
            )));
        }
        if s.shard.1 != n_sh {
            return Err(inc(format!("shard counts {} vs {}", n_sh, s.shard.1)));
        }
        if seen[s.shard.0] {
            return Err(inc(format!("shard {}/{} given twice", s.shard.0, n_sh)));
        }
        seen[s.shard.0] = true;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(Error::param(
            "merge",
            format!("shard {missing}/{n_sh} is missing"),
        ));
    }
    let mut total: BTreeMap<AccKey, PairAccumulator> = BTreeMap::new();
    for (d, (_, accs)) in &states {
        for (k, a) in accs {
            match total.get_mut(k) {
                Some(t) => t.merge(a).map_err(metric_err(format!("{}", d.display())))?,
                None => {
                    total.insert(k.clone(), a.clone());
                }
            }
        }
    }
    let mut rows = Vec::new();
    for ((student, layer, field), a) in &total {
        let m = a
            .finalize_with(first.precision)
            .map_err(metric_err(format!("{student} layer {layer} {field}")))?;
        let mut row = metric_row(student, first.hook, *layer, field, m);
        row.null_reasons.insert(
            "knn_overlap".into(),
            "not computed from merged shards (needs all rows at once)".into(),
        );
        rows.push(row);
    }
    // Student order as given, then layer, then field order as in the shards' keys.
    let order: Vec<&AccKey> = first.keys.iter().collect();
    rows.sort_by_key(|r| {
        order
            .iter()
            .position(|k| k.0 == r.student && k.1 == r.layer && k.2 == r.field)
            .unwrap_or(usize::MAX)
    });
    Ok(MetricsReport {
        format: METRICS_FORMAT.into(),
        version: 1,
        repdrift_version: env!("CARGO_PKG_VERSION").into(),
        base: first.base.clone(),
        students: first.students.clone(),
        hook: first.hook,
        bootstrap: 0,
        cka_bootstrap: 0,
        permutations: 0,
        seed: 0,
        knn_k: 0,
        merged_shards: Some(n_sh),
        precision: first.precision,
        rows,
        cross_layer: Vec::new(),
    })
}
