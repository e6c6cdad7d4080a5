//! # repdrift-core
//!
//! The part of repdrift that needs no model runtime: the activation store's format and reader
//! ([`store`]), the per-layer similarity measures in float64 ([`metrics`]), the paired
//! statistics the verdicts use ([`stats`]), BLAS products whose bits do not depend on the
//! core count ([`blas`]), and the I/O helpers every writer uses ([`io`]: atomic writes,
//! directory locks, sha256). The `repdrift` crate (models, capture, training, reports, the
//! command line) is built on it and re-exports these modules at the same paths; the Python
//! package's native module depends on this crate alone.
//!
//! ```
//! use ndarray::array;
//! let x = array![[1.0f32, 0.0], [0.0, 2.0], [3.0, 1.0], [2.0, 2.0]];
//! let m = repdrift_core::metrics::pair_metrics(x.view(), x.view()).unwrap();
//! assert!((m.linear_cka.value.unwrap() - 1.0).abs() < 1e-12);
//! ```

// Links the system OpenBLAS that ndarray-linalg and `blas::sgemm` call.
extern crate openblas_src;

pub mod blas;
pub mod error;
pub mod hook;
pub mod io;
pub mod metrics;
pub mod parallel;
pub mod stats;
pub mod store;

pub use error::{Error, MetricError, Result};
