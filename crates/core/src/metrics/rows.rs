//! Reading a store's rows for one (hook, layer) across part boundaries, and building a compared
//! field (`diff` = chosen − rejected) from the store's own fields.

use ndarray::{Array2, CowArray, Ix2};

use crate::error::Result;
use crate::hook::HookPoint;
use crate::store::PartInfo;
use crate::store::Store;

/// Reads arbitrary row ranges of one store layer, all fields, across its parts.
pub(super) struct RowCursor<'a> {
    store: &'a Store,
    hook: HookPoint,
    layer: usize,
    cached: Option<(usize, Vec<Array2<f32>>)>,
}

impl<'a> RowCursor<'a> {
    pub(super) fn new(store: &'a Store, hook: HookPoint, layer: usize) -> Self {
        Self {
            store,
            hook,
            layer,
            cached: None,
        }
    }

    /// Rows `[start, end)` of every field, each copied once from its parts.
    pub(super) fn rows(&mut self, start: usize, end: usize) -> Result<Vec<Array2<f32>>> {
        let store = self.store;
        let parts: &[PartInfo] = &store.manifest().parts;
        let n_fields = self.store.manifest().fields.len();
        let d = store.manifest().model.hidden_size;
        let mut out: Vec<Vec<f32>> = (0..n_fields)
            .map(|_| Vec::with_capacity((end - start) * d))
            .collect();
        let mut r = start;
        while r < end {
            let p = parts
                .iter()
                .find(|p| p.start <= r && r < p.start + p.rows)
                .copied()
                .expect("row inside the store");
            if self.cached.as_ref().map(|c| c.0) != Some(p.index) {
                let m = store.read_part(self.hook, self.layer, &p)?;
                self.cached = Some((p.index, m));
            }
            let mats = &self.cached.as_ref().expect("just cached").1;
            let lo = r - p.start;
            let hi = (end - p.start).min(p.rows);
            for (o, m) in out.iter_mut().zip(mats) {
                let m = m.as_slice().expect("parts are read in standard layout");
                o.extend_from_slice(&m[lo * d..hi * d]);
            }
            r = p.start + hi;
        }
        Ok(out
            .into_iter()
            .map(|v| Array2::from_shape_vec((end - start, d), v).expect("rows × hidden"))
            .collect())
    }
}

/// The matrix of `field` from a store's fields (`diff` = chosen − rejected): a new matrix for
/// `diff`, else the store field's own, borrowed.
pub(super) fn field_matrix<'a>(
    store_fields: &[String],
    mats: &'a [Array2<f32>],
    field: &str,
) -> CowArray<'a, f32, Ix2> {
    if field == "diff" {
        CowArray::from(&mats[0] - &mats[1])
    } else {
        let i = store_fields
            .iter()
            .position(|f| f == field)
            .expect("planned field");
        CowArray::from(mats[i].view())
    }
}
