//! The activation store, read side: the manifest and file layout ([`manifest`]), the reader
//! ([`Store`]: rows in example order, every part checked against its sha256) and the layer
//! selection commands read with ([`LayerSelection`]). The writer lives with the capture that
//! fills it, in the `repdrift` crate.

pub mod manifest;
mod read;
mod select;

pub use manifest::{
    examples_path, part_path, plan_parts, read_manifest, rel_key, shard_range, DataFormat,
    Manifest, ManifestDataset, ManifestModel, PartInfo, Pooling, StoreShard, STORE_FORMAT,
    STORE_VERSION,
};
pub use read::{ExamplesPart, Store};
pub use select::LayerSelection;
