//! Reading a store's rows for one (hook, layer) across part boundaries, and building a compared
//! field (`diff` = chosen − rejected) from the store's own fields.

use ndarray::{concatenate, Array2, ArrayView2, Axis};

use crate::capture::store::PartInfo;
use crate::capture::Store;
use crate::error::Result;
use crate::model::HookPoint;

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

    /// Rows `[start, end)` of every field.
    pub(super) fn rows(&mut self, start: usize, end: usize) -> Result<Vec<Array2<f32>>> {
        let store = self.store;
        let parts: &[PartInfo] = &store.manifest().parts;
        let n_fields = self.store.manifest().fields.len();
        let mut pieces: Vec<Vec<Array2<f32>>> = vec![Vec::new(); n_fields];
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
            for (f, m) in mats.iter().enumerate() {
                pieces[f].push(m.slice(ndarray::s![lo..hi, ..]).to_owned());
            }
            r = p.start + hi;
        }
        Ok(pieces
            .into_iter()
            .map(|ps| {
                let views: Vec<ArrayView2<'_, f32>> = ps.iter().map(|p| p.view()).collect();
                concatenate(Axis(0), &views).expect("same widths")
            })
            .collect())
    }
}

/// The matrix of `field` from a store's fields (`diff` = chosen − rejected).
pub(super) fn field_matrix(
    store_fields: &[String],
    mats: &[Array2<f32>],
    field: &str,
) -> Array2<f32> {
    if field == "diff" {
        &mats[0] - &mats[1]
    } else {
        let i = store_fields
            .iter()
            .position(|f| f == field)
            .expect("planned field");
        mats[i].clone()
    }
}
