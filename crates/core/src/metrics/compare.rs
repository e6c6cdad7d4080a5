//! `repdrift compare`: per (student, hook, layer, field) drift measures between a base model's
//! store and each student's store of the same examples, streamed over store parts.
//!
//! Fields are the stores' own (`text`, or `chosen` and `rejected`) plus `diff` = chosen −
//! rejected, row by row, for preference stores. Accumulator measures stream part by part in
//! O(d²) memory; kNN overlap and bootstrap intervals need the layer's rows in memory and run
//! only when asked (`knn_max_n`, `bootstrap`). `--shard i/N` writes the accumulators of every
//! N-th part from part i; `--merge` sums shard states into the result for the whole.

use std::collections::BTreeMap;

use ndarray::{Array2, CowArray, Ix2};

use super::bootstrap::{bootstrap, bootstrap_linear_cka};
use super::cross_layer::cross_layer;
pub use super::cross_layer::CrossLayer;
use super::knn::mutual_knn_overlap;
use super::output::{metric_err, metric_row};
pub use super::output::{
    AccKey, Comparison, MetricRow, MetricsReport, StoreRecord, METRICS_FORMAT,
};
use super::permutation::permutation_null;
use super::rows::{field_matrix, RowCursor};
use super::{PairAccumulator, Precision, PreparedRows};
use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::store::{LayerSelection, Store};

pub use super::render::{render_cross_layer, render_csv, render_json};
pub use super::shard::{merge_shards, render_state, ShardState};

/// Compare parameters as given.
#[derive(Debug, Clone)]
pub struct CompareParams {
    pub hook: HookPoint,
    /// `None`: every field of the stores, plus `diff` for preference stores.
    pub fields: Option<Vec<String>>,
    pub layers: LayerSelection,
    pub cross_layer: bool,
    pub bootstrap: usize,
    /// Linear CKA's bootstrap interval alone, computed in example space (O(n²) a replicate;
    /// [`super::bootstrap::bootstrap_linear_cka`]); used when `bootstrap` is 0.
    pub cka_bootstrap: usize,
    /// Permutations for each measure's null band and p-value (0: off).
    pub permutations: usize,
    pub seed: u64,
    pub knn_k: usize,
    /// kNN overlap is computed only when n is at most this.
    pub knn_max_n: usize,
    /// `(i, N)`: process parts `p` with `p % N == i` and keep the accumulators only.
    pub shard: Option<(usize, usize)>,
    /// The precision of the `d × d` products (see [`Precision`]).
    pub precision: Precision,
}

impl Default for CompareParams {
    fn default() -> Self {
        Self {
            hook: HookPoint::ResidPost,
            fields: None,
            layers: LayerSelection::All,
            cross_layer: false,
            bootstrap: 0,
            cka_bootstrap: 0,
            permutations: 0,
            seed: 0,
            knn_k: 10,
            knn_max_n: 10_000,
            shard: None,
            precision: Precision::F64,
        }
    }
}

/// Checked compare parameters.
#[derive(Debug, Clone)]
pub struct ValidCompareParams(CompareParams);

impl std::ops::Deref for ValidCompareParams {
    type Target = CompareParams;
    fn deref(&self) -> &CompareParams {
        &self.0
    }
}

impl CompareParams {
    pub fn check(self) -> Result<ValidCompareParams> {
        if let Some((i, n)) = self.shard {
            if n == 0 || i >= n {
                return Err(Error::param("shard", format!("`{i}/{n}`: need 0 ≤ i < N")));
            }
            if self.cross_layer
                || self.bootstrap > 0
                || self.cka_bootstrap > 0
                || self.permutations > 0
            {
                return Err(Error::param(
                    "shard",
                    "--cross-layer, --bootstrap and --permutations need all rows at once and cannot run per shard",
                ));
            }
        }
        if self.knn_k == 0 {
            return Err(Error::param("knn-k", "must be at least 1"));
        }
        for (name, b) in [
            ("bootstrap", self.bootstrap),
            ("cka-bootstrap", self.cka_bootstrap),
        ] {
            if b == 1 {
                return Err(Error::param(name, "use 0 (off) or at least 2 replicates"));
            }
        }
        if self.permutations == 1 {
            return Err(Error::param(
                "permutations",
                "use 0 (off) or at least 2 permutations (1000 gives p-values down to 0.001)",
            ));
        }
        Ok(ValidCompareParams(self))
    }
}

/// Check that `student` describes the same examples as `base`.
pub fn check_compatible(base: &Store, student: &Store, hook: HookPoint) -> Result<()> {
    let (a, b) = (base.manifest(), student.manifest());
    let inc = |reason: String| Error::Incompatible {
        left: base.dir().to_path_buf(),
        right: student.dir().to_path_buf(),
        reason,
    };
    if a.dataset.sha256 != b.dataset.sha256 {
        return Err(inc(format!(
            "different data sets (sha256 {} vs {})",
            a.dataset.sha256, b.dataset.sha256
        )));
    }
    if a.n_examples() != b.n_examples() {
        return Err(inc(format!(
            "{} vs {} examples",
            a.n_examples(),
            b.n_examples()
        )));
    }
    if a.fields != b.fields {
        return Err(inc(format!("fields {:?} vs {:?}", a.fields, b.fields)));
    }
    if a.pooling != b.pooling || a.max_tokens != b.max_tokens {
        return Err(inc(format!(
            "captured differently (pooling {} vs {}, max_tokens {:?} vs {:?})",
            a.pooling.name(),
            b.pooling.name(),
            a.max_tokens,
            b.max_tokens
        )));
    }
    if !b.hooks.contains(&hook) || !a.hooks.contains(&hook) {
        return Err(inc(format!("hook {hook} is not in both stores")));
    }
    Ok(())
}

/// Field names to compare and how each is built from store fields.
fn plan_fields(store: &Store, wanted: &Option<Vec<String>>) -> Result<Vec<String>> {
    let have = &store.manifest().fields;
    let pair = have.len() == 2;
    let mut all: Vec<String> = have.clone();
    if pair {
        all.push("diff".into());
    }
    match wanted {
        None => Ok(all),
        Some(w) => {
            for f in w {
                if !all.contains(f) {
                    return Err(Error::param(
                        "fields",
                        format!("`{f}` is not available (available: {})", all.join(", ")),
                    ));
                }
            }
            Ok(w.clone())
        }
    }
}

fn layers_to_compare(base: &Store, student: &Store, p: &CompareParams) -> Result<Vec<usize>> {
    let a = base.manifest().layers_of(p.hook);
    let b = student.manifest().layers_of(p.hook);
    let common: Vec<usize> = a.iter().copied().filter(|l| b.contains(l)).collect();
    p.layers.resolve(
        &common,
        &format!(
            "the layers captured in both {} and {}",
            base.dir().display(),
            student.dir().display()
        ),
    )
}

/// Compare each student store with the base store. `progress` receives one line per
/// finished (student, layer).
///
/// ```no_run
/// use repdrift_core::store::Store;
/// use repdrift_core::metrics::compare::{compare, CompareParams};
/// let base = Store::open("stores/base".as_ref())?;
/// let naive = Store::open("stores/naive".as_ref())?;
/// let params = CompareParams::default().check()?;
/// let out = compare(&base, &[("naive".into(), naive)], &params, &mut |_| {})?;
/// for row in &out.report.rows {
///     println!("{} layer {} {}: CKA {:?}", row.student, row.layer, row.field, row.linear_cka);
/// }
/// # Ok::<(), repdrift_core::Error>(())
/// ```
pub fn compare(
    base: &Store,
    students: &[(String, Store)],
    params: &ValidCompareParams,
    progress: &mut (dyn FnMut(&CompareStep) + Send),
) -> Result<Comparison> {
    if students.is_empty() {
        return Err(Error::param(
            "student",
            "name at least one --student NAME=STORE",
        ));
    }
    let hook = params.hook;
    let fields = plan_fields(base, &params.fields)?;
    let store_fields = base.manifest().fields.clone();
    let n = base.manifest().n_examples();
    let mut rows = Vec::new();
    let mut accs = Vec::new();
    let mut cross = Vec::new();
    let mut plans = Vec::with_capacity(students.len());
    for (_, student) in students {
        check_compatible(base, student, hook)?;
        plans.push(layers_to_compare(base, student, params)?);
    }
    let total = plans.iter().map(Vec::len).sum();
    let done = std::sync::Mutex::new((0usize, progress));
    let report = |student: usize, layer: usize| {
        let mut g = done.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let step = CompareStep {
            student: &students[student].0,
            hook,
            layer,
            done: g.0,
            total,
        };
        (g.1)(&step);
    };
    // Layers outer (spread over the cores), students inner: a layer's base rows are read, checked
    // and multiplied out (xᵀx) once for every student that has the layer.
    let mut union: Vec<usize> = plans.iter().flatten().copied().collect();
    union.sort_unstable();
    union.dedup();
    let ctx = LayerCtx {
        base,
        students,
        fields: &fields,
        store_fields: &store_fields,
        params,
        n,
    };
    let per_layer = crate::parallel::map_indexed(union.len(), |i| {
        let layer = union[i];
        let who: Vec<usize> = (0..students.len())
            .filter(|&s| plans[s].contains(&layer))
            .collect();
        compare_layer(&ctx, layer, &who, &report)
    })?;
    let mut outs: BTreeMap<(usize, usize), LayerOut> = BTreeMap::new();
    for (i, per_student) in per_layer.into_iter().enumerate() {
        for (s, out) in per_student {
            outs.insert((s, union[i]), out);
        }
    }
    // Rows in student order, then each student's layer order (as one student at a time gave).
    for (s, layers) in plans.iter().enumerate() {
        for &l in layers {
            let (r, a) = outs.remove(&(s, l)).expect("every planned layer ran");
            rows.extend(r);
            accs.extend(a);
        }
        if params.cross_layer {
            let (name, student) = &students[s];
            cross.push(cross_layer(
                base,
                student,
                name,
                hook,
                &fields[0],
                &store_fields,
            )?);
        }
    }
    Ok(Comparison {
        report: MetricsReport {
            format: METRICS_FORMAT.into(),
            version: 1,
            repdrift_version: env!("CARGO_PKG_VERSION").into(),
            base: StoreRecord::of("base", base),
            students: students
                .iter()
                .map(|(n, s)| StoreRecord::of(n, s))
                .collect(),
            hook,
            bootstrap: params.bootstrap,
            cka_bootstrap: if params.bootstrap > 0 {
                0
            } else {
                params.cka_bootstrap
            },
            permutations: params.permutations,
            seed: params.seed,
            knn_k: params.knn_k,
            merged_shards: None,
            precision: params.precision,
            rows,
            cross_layer: cross,
        },
        accumulators: accs,
        shard: params.shard,
    })
}

/// One layer of one student compared: `done` of `total` (students × layers) so far.
#[derive(Debug, Clone, Copy)]
pub struct CompareStep<'a> {
    pub student: &'a str,
    pub hook: HookPoint,
    pub layer: usize,
    pub done: usize,
    pub total: usize,
}

/// Rows per accumulator update when not sharding (several parts at once: larger BLAS calls).
const CHUNK_ROWS: usize = 2048;

struct LayerCtx<'a> {
    base: &'a Store,
    students: &'a [(String, Store)],
    fields: &'a [String],
    store_fields: &'a [String],
    params: &'a ValidCompareParams,
    n: usize,
}

/// Append a chunk's rows (row-major) to a layer's kept rows.
fn keep_rows(kept: &mut Vec<f32>, rows: &ndarray::ArrayView2<'_, f32>) {
    match rows.as_slice() {
        Some(v) => kept.extend_from_slice(v),
        None => kept.extend(rows.iter()),
    }
}

type LayerOut = (Vec<MetricRow>, Vec<(AccKey, PairAccumulator)>);

/// Compare one layer for the students `who` (indices into the context's students), reporting
/// each as it finishes; one output per student, in `who` order.
fn compare_layer(
    ctx: &LayerCtx<'_>,
    layer: usize,
    who: &[usize],
    report: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<(usize, LayerOut)>> {
    let hook = ctx.params.hook;
    let mut bc = RowCursor::new(ctx.base, hook, layer);
    let mut scs: Vec<RowCursor<'_>> = who
        .iter()
        .map(|&s| RowCursor::new(&ctx.students[s].1, hook, layer))
        .collect();
    let mut fas = shifted_accumulators(ctx, &mut bc, &mut scs)?;
    let params = ctx.params;
    let keep = params.shard.is_none()
        && (params.bootstrap > 0
            || params.cka_bootstrap > 0
            || params.permutations > 0
            || ctx.n <= params.knn_max_n);
    let kept = stream_rows(ctx, layer, who, (&mut bc, &mut scs), &mut fas, keep)?;
    let (first, rest) = fas.split_first_mut().expect("at least one student");
    for fa in rest {
        for (a, f0) in fa.iter_mut().zip(first.iter()) {
            a.copy_xx_from(f0).map_err(metric_err(format!(
                "{hook} layer {layer}: shared base Gram"
            )))?;
        }
    }
    // Every field of a store is (rows, its hidden size); rows kept only when `keep`.
    let as_matrix = |v: Vec<f32>, s: &Store| {
        let d = s.manifest().model.hidden_size;
        Array2::from_shape_vec((v.len().checked_div(d).unwrap_or(0), d), v)
            .expect("whole rows kept")
    };
    let Kept {
        x: kept_x,
        y: mut kept_y,
    } = kept;
    let kept_x: Vec<Array2<f32>> = kept_x.into_iter().map(|v| as_matrix(v, ctx.base)).collect();
    let mut out = Vec::with_capacity(who.len());
    for (k, &s) in who.iter().enumerate() {
        let kept_y: Vec<Array2<f32>> = std::mem::take(&mut kept_y[k])
            .into_iter()
            .map(|v| as_matrix(v, &ctx.students[s].1))
            .collect();
        let kept = keep.then_some((kept_x.as_slice(), kept_y.as_slice()));
        let student_out = finish_student(ctx, layer, s, &fas[k], kept)?;
        report(s, layer);
        out.push((s, student_out));
    }
    Ok(out)
}

/// Each student's accumulators per field, shifted by row 0 of each store (the same for every
/// shard).
fn shifted_accumulators(
    ctx: &LayerCtx<'_>,
    bc: &mut RowCursor<'_>,
    scs: &mut [RowCursor<'_>],
) -> Result<Vec<Vec<PairAccumulator>>> {
    let (fields, store_fields) = (ctx.fields, ctx.store_fields);
    let b0 = bc.rows(0, 1)?;
    let mut fas: Vec<Vec<PairAccumulator>> = Vec::with_capacity(scs.len());
    for sc in scs {
        let s0 = sc.rows(0, 1)?;
        fas.push(
            fields
                .iter()
                .map(|f| {
                    let bx = field_matrix(store_fields, &b0, f).row(0).mapv(|v| v as f64);
                    let sy = field_matrix(store_fields, &s0, f).row(0).mapv(|v| v as f64);
                    PairAccumulator::with_shift(bx, sy)
                })
                .collect(),
        );
    }
    Ok(fas)
}

/// A layer's rows kept in memory for kNN, bootstrap and permutations, row-major per field:
/// the base's once, each student's.
struct Kept {
    x: Vec<Vec<f32>>,
    y: Vec<Vec<Vec<f32>>>,
}

/// Stream the layer's rows — this shard's parts, or chunks of CHUNK_ROWS over the whole
/// store — into every student's accumulators, keeping the rows when `keep`.
fn stream_rows(
    ctx: &LayerCtx<'_>,
    layer: usize,
    who: &[usize],
    (bc, scs): (&mut RowCursor<'_>, &mut [RowCursor<'_>]),
    fas: &mut [Vec<PairAccumulator>],
    keep: bool,
) -> Result<Kept> {
    let LayerCtx {
        base,
        students,
        fields,
        store_fields,
        params,
        n,
    } = *ctx;
    let hook = params.hook;
    let mut kept = Kept {
        x: vec![Vec::new(); fields.len()],
        y: vec![vec![Vec::new(); fields.len()]; who.len()],
    };
    let ranges: Vec<(usize, usize)> = match params.shard {
        Some((i, nsh)) => base
            .manifest()
            .parts
            .iter()
            .filter(|p| p.index % nsh == i)
            .map(|p| (p.start, p.start + p.rows))
            .collect(),
        None => (0..n)
            .step_by(CHUNK_ROWS)
            .map(|s| (s, (s + CHUNK_ROWS).min(n)))
            .collect(),
    };
    let precision = params.precision;
    for (start, end) in ranges {
        let bm = bc.rows(start, end)?;
        let xs: Vec<CowArray<'_, f32, Ix2>> = fields
            .iter()
            .map(|f| field_matrix(store_fields, &bm, f))
            .collect();
        let what = |k: usize, f: &str| {
            format!(
                "{hook} layer {layer} field {f}, rows {start}..{end} of {} / {}",
                base.dir().display(),
                students[who[k]].1.dir().display()
            )
        };
        // The base side of each field, checked, shifted and normed once for every student (all
        // students' accumulators share the base's shift).
        let mut pxs = Vec::with_capacity(fields.len());
        for (fi, f) in fields.iter().enumerate() {
            let shift = &fas[0][fi].shift_x;
            pxs.push(
                PreparedRows::new(xs[fi].view(), shift, precision, "x")
                    .map_err(metric_err(what(0, f)))?,
            );
            if keep {
                keep_rows(&mut kept.x[fi], &xs[fi].view());
            }
        }
        for (k, sc) in scs.iter_mut().enumerate() {
            let sm = sc.rows(start, end)?;
            for (fi, f) in fields.iter().enumerate() {
                let y = field_matrix(store_fields, &sm, f);
                let acc = &mut fas[k][fi];
                // The first student adds the base's xᵀx; the others copy it at the end.
                PreparedRows::new(y.view(), &acc.shift_y, precision, "y")
                    .and_then(|py| acc.add_prepared(&pxs[fi], &py, k == 0))
                    .map_err(metric_err(what(k, f)))?;
                if keep {
                    keep_rows(&mut kept.y[k][fi], &y.view());
                }
            }
        }
    }
    Ok(kept)
}

/// The kept rows of one layer, per field: the base's and one student's.
type KeptPair<'a> = (&'a [Array2<f32>], &'a [Array2<f32>]);

/// Student `s`'s rows of this layer (finalised accumulators, plus kNN, intervals and the
/// permutation null from the kept rows `(base, student)` per field) and its accumulators for a
/// later merge.
fn finish_student(
    ctx: &LayerCtx<'_>,
    layer: usize,
    s: usize,
    fa: &[PairAccumulator],
    kept: Option<KeptPair<'_>>,
) -> Result<LayerOut> {
    let (params, n, hook) = (ctx.params, ctx.n, ctx.params.hook);
    let name = ctx.students[s].0.as_str();
    let mut rows = Vec::new();
    let mut accs = Vec::new();
    for (fi, f) in ctx.fields.iter().enumerate() {
        if params.shard.is_none() {
            let what = format!("{name} {hook} layer {layer} field {f}");
            let m = fa[fi]
                .finalize_with(params.precision)
                .map_err(metric_err(what.clone()))?;
            let mut row = metric_row(name, hook, layer, f, m);
            if let Some((kx, ky)) = kept {
                from_kept_rows(&mut row, (&kx[fi], &ky[fi]), params, (n, layer, fi), &what)?;
            }
            if n > params.knn_max_n {
                row.null_reasons.insert(
                    "knn_overlap".into(),
                    format!("n = {n} is above --knn-max-n {}", params.knn_max_n),
                );
            }
            rows.push(row);
        }
        accs.push(((name.to_string(), layer, f.clone()), fa[fi].clone()));
    }
    Ok((rows, accs))
}

/// The measures that need every row: mutual kNN overlap (n ≤ --knn-max-n), the bootstrap
/// interval (full or linear-CKA only) and the permutation null.
fn from_kept_rows(
    row: &mut MetricRow,
    (x, y): (&Array2<f32>, &Array2<f32>),
    params: &ValidCompareParams,
    (n, layer, fi): (usize, usize, usize),
    what: &str,
) -> Result<()> {
    if n <= params.knn_max_n {
        let k = mutual_knn_overlap(x.view(), y.view(), params.knn_k)
            .map_err(metric_err(what.to_string()))?;
        if let Some(r) = k.reason {
            row.null_reasons.insert("knn_overlap".into(), r);
        }
        row.knn_overlap = k.value;
    }
    let seed = params.seed ^ ((layer as u64) << 32) ^ (fi as u64);
    if params.bootstrap > 0 {
        row.ci = Some(
            bootstrap(x.view(), y.view(), params.bootstrap, seed)
                .map_err(metric_err(what.to_string()))?,
        );
    } else if params.cka_bootstrap > 0 {
        row.ci = Some(
            bootstrap_linear_cka(x.view(), y.view(), params.cka_bootstrap, seed)
                .map_err(metric_err(what.to_string()))?,
        );
    }
    if params.permutations > 0 {
        let seed = params.seed ^ 0x9e37_79b9 ^ ((layer as u64) << 32) ^ (fi as u64);
        row.null = Some(
            permutation_null(x.view(), y.view(), params.permutations, seed)
                .map_err(metric_err(what.to_string()))?,
        );
    }
    Ok(())
}
