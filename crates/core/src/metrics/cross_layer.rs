//! The base-layer × student-layer linear-CKA matrix (`compare --cross-layer`), on one field,
//! from centred f64 copies of every layer (the layers' rows held in memory).

use ndarray::{Array2, Axis};

use serde::{Deserialize, Serialize};

use super::accum::linear_cka_from_parts;
use super::rows::{field_matrix, RowCursor};
use crate::error::Result;
use crate::hook::HookPoint;
use crate::store::Store;

/// The cross-layer linear-CKA matrix of one student: `cka[i][j]` between base layer
/// `base_layers[i]` and student layer `student_layers[j]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossLayer {
    pub student: String,
    pub field: String,
    pub base_layers: Vec<usize>,
    pub student_layers: Vec<usize>,
    pub cka: Vec<Vec<Option<f64>>>,
}

/// Centred f64 copy of every layer's `field` matrix.
fn centred_layers(
    store: &Store,
    hook: HookPoint,
    layers: &[usize],
    field: &str,
    store_fields: &[String],
) -> Result<Vec<Array2<f64>>> {
    let n = store.manifest().n_examples();
    layers
        .iter()
        .map(|&l| {
            let mats = RowCursor::new(store, hook, l).rows(0, n)?;
            let x = field_matrix(store_fields, &mats, field).mapv(|v| v as f64);
            let mean = x.mean_axis(Axis(0)).expect("n > 0");
            Ok(x - &mean.insert_axis(Axis(0)))
        })
        .collect()
}

pub(super) fn cross_layer(
    base: &Store,
    student: &Store,
    name: &str,
    hook: HookPoint,
    field: &str,
    store_fields: &[String],
) -> Result<CrossLayer> {
    let bl = base.manifest().layers_of(hook).to_vec();
    let sl = student.manifest().layers_of(hook).to_vec();
    let xs = centred_layers(base, hook, &bl, field, store_fields)?;
    let ys = centred_layers(student, hook, &sl, field, store_fields)?;
    let fro = |m: &Array2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
    let fx: Vec<f64> = xs.iter().map(|x| fro(&x.t().dot(x))).collect();
    let fy: Vec<f64> = ys.iter().map(|y| fro(&y.t().dot(y))).collect();
    let cka = xs
        .iter()
        .zip(&fx)
        .map(|(x, &a)| {
            ys.iter()
                .zip(&fy)
                .map(|(y, &b)| {
                    let c = y.t().dot(x);
                    linear_cka_from_parts(c.iter().map(|v| v * v).sum(), a, b)
                })
                .collect()
        })
        .collect();
    Ok(CrossLayer {
        student: name.to_string(),
        field: field.to_string(),
        base_layers: bl,
        student_layers: sl,
        cka,
    })
}
