//! # repdrift
//!
//! Explains why a reward model does or does not transfer: captures per-layer activations of a
//! base model and its fine-tuned students, measures how far each layer drifted, and probes
//! whether the preference signal survives.
//!
//! Data flows one way: [`model`] → [`capture`] (an [`ActivationSink`](capture::ActivationSink)
//! per forward pass, pooled into a [`Store`](capture::Store)) → metrics / probes → reports.
//!
//! ```no_run
//! use repdrift::{capture, data, model};
//! let dev = candle_core::Device::Cpu;
//! let m = model::load("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), &dev)?;
//! let ds = data::read_jsonl("probes/data/source.jsonl".as_ref(), Some(16))?;
//! let params = capture::CaptureParams::default().check()?;
//! capture::capture(m.as_ref(), &ds, "out/store".as_ref(), &params, &dev, &mut capture::NoProgress)?;
//! let store = capture::Store::open("out/store".as_ref())?;
//! let x = store.read(model::HookPoint::ResidPost, 30, "chosen")?; // (16, 576)
//! # Ok::<(), repdrift::Error>(())
//! ```

// Links the system OpenBLAS that ndarray-linalg and the BLAS linear layer call.
extern crate openblas_src;

pub mod bias;
pub mod capture;
pub mod data;
pub mod demo;
pub mod diagnose;
pub mod fmt;
pub mod model;
pub mod plot;
pub mod probe;
pub mod recommend;
pub mod report;
pub mod study;
pub mod train;
pub mod validate;

// The core crate's modules, at the paths they had before the workspace split.
pub use error::{Error, Result};
pub use repdrift_core::{blas, error, hook, io, metrics, parallel, stats};
