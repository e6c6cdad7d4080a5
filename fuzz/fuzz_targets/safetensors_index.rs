//! `model.safetensors.index.json` (sharded checkpoints): shard names, the weight map, hashes.
//! A valid one-tensor shard is there to be named; names that leave the directory must fail.
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;
use repdrift::model::weights::Weights;

fn shard() -> Vec<u8> {
    // One F32 tensor "w" of shape (1,): header, then 4 bytes.
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&1f32.to_le_bytes());
    v
}

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let dir = scratch().join("hf");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model-00001-of-00001.safetensors"), shard()).unwrap();
    std::fs::write(dir.join("model.safetensors.index.json"), data).unwrap();
    if let Ok((w, _)) = Weights::from_hf_dir(&dir, &candle_core::Device::Cpu) {
        let _ = w.get_any("w");
    }
});
