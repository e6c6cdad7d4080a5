//! GGUF headers, metadata and tensor infos, through the Llama reader (config from metadata,
//! tokenizer, dequantization).
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let p = put("x.gguf", data);
    let _ = repdrift::model::gguf::read_llama(&p, &candle_core::Device::Cpu);
});
