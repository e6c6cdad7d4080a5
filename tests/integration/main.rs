//! repdrift's integration tests, one binary.
//!
//! Tests that use the real models need `bash scripts/fetch-models.sh` first (the README's test
//! command runs it); they fail, not skip, when the models are missing.

mod archs;
mod chat;
mod common;
mod cues;
mod diagnose;
mod docs;
mod implicit;
mod kill;
mod layout;
mod lora;
mod metrics;
mod metrics_precision;
mod parity;
mod probe;
mod reliability;
mod report;
mod rm_head;
mod shard;
mod store;
mod study;
mod tiny_llama;
mod train;
mod validate;
mod values;
