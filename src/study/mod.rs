//! `repdrift study`: a grid of weak-to-strong trainings (methods × regimes × seeds) on one
//! source and several targets, each run trained and evaluated in memory, and the answers to
//! "did the naive student lose transfer, did anchoring keep it, does drift predict it, drift or
//! head?" computed from the per-run files.
//!
//! [`config`] reads and checks the TOML grid, [`run`] executes it (resumable run by run;
//! [`bias`] measures each student's cue sensitivity and value bias when the config asks),
//! [`analysis`] summarises `runs/*.json`, [`render`] turns the summary into bytes and writes
//! them.

pub mod analysis;
pub mod bias;
pub mod config;
pub mod pairs;
pub mod plots;
pub mod render;
pub mod run;
pub mod stratified;
pub mod trust;

pub use analysis::{summarise, Summary};
pub use config::{read_config, StudyConfig, ValidStudy};
pub use run::{finished_runs, run_study, RunResult, StudyJob, StudyProgress};
