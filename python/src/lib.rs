//! `repdrift._native`: the Rust side of the `repdrift` Python package. Thin wrappers over the
//! library — stores read by `repdrift_core::store::Store` (sha256-checked parts, rows in example
//! order) and the streaming f64 metrics of `repdrift_core::metrics` — with every repdrift error
//! raised as `repdrift.RepdriftError` carrying the library's message (file, shapes, reason).
//! The Python package (`python/repdrift/__init__.py`) builds the documented API on these.

use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    RepdriftError,
    PyException,
    "An error from repdrift: a bad store, path, shape or value (the message names it)."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    RepdriftError::new_err(e.to_string())
}

fn metrics_json(m: repdrift_core::metrics::PairMetrics) -> String {
    serde_json::to_string(&m).expect("metrics serialise")
}

/// Every pair measure of float32 `x (n, d1)` and `y (n, d2)` (accumulated in float64), as
/// JSON: `{"n", "linear_cka": {"value", "reason"}, …}`.
#[pyfunction]
fn pair_metrics_f32(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f32>,
    y: PyReadonlyArray2<'_, f32>,
) -> PyResult<String> {
    let (x, y) = (x.as_array(), y.as_array());
    let m = py
        .detach(|| repdrift_core::metrics::pair_metrics(x, y))
        .map_err(err)?;
    Ok(metrics_json(m))
}

/// The same on float64 `x`, `y` (no rounding to float32).
#[pyfunction]
fn pair_metrics_f64(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    y: PyReadonlyArray2<'_, f64>,
) -> PyResult<String> {
    let (x, y) = (x.as_array(), y.as_array());
    let m = py
        .detach(|| repdrift_core::metrics::pair_metrics_f64(x, y))
        .map_err(err)?;
    Ok(metrics_json(m))
}

/// A finished activation store (read-only).
#[pyclass(frozen)]
struct NativeStore(repdrift_core::store::Store);

#[pymethods]
impl NativeStore {
    #[new]
    fn new(path: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self(repdrift_core::store::Store::open(&path).map_err(err)?))
    }

    /// The manifest as JSON.
    fn manifest_json(&self) -> String {
        serde_json::to_string(self.0.manifest()).expect("manifests serialise")
    }

    /// `(n_examples, hidden)` float32 rows of one hook, layer and field, across parts.
    fn layer<'py>(
        &self,
        py: Python<'py>,
        hook: &str,
        layer: usize,
        field: &str,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let hook = repdrift_core::hook::HookPoint::parse(hook).map_err(err)?;
        let m = py
            .detach(|| self.0.read(hook, layer, field).map_err(|e| e.to_string()))
            .map_err(err)?;
        Ok(m.into_pyarray(py))
    }

    /// `(n_examples, n_fields)` float64 rewards, or None when the model had no reward head.
    fn rewards<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f64>>>> {
        let r = py
            .detach(|| self.0.rewards().map_err(|e| e.to_string()))
            .map_err(err)?;
        Ok(r.map(|r| r.into_pyarray(py)))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RepdriftError", m.py().get_type::<RepdriftError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(pair_metrics_f32, m)?)?;
    m.add_function(wrap_pyfunction!(pair_metrics_f64, m)?)?;
    m.add_class::<NativeStore>()?;
    Ok(())
}
