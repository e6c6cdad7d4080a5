//! safetensors headers and bodies: the completeness check, the positional reader, and reading every
//! tensor the header lists.
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;
use repdrift::model::weights::{check_safetensors, Weights};

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let p = put("model.safetensors", data);
    if check_safetensors(&p).is_err() {
        return;
    }
    let Ok(w) = Weights::from_safetensors(&p, &candle_core::Device::Cpu) else {
        return;
    };
    // The header's names (the reader must have validated them to get here).
    if data.len() >= 8 {
        let n = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
        if let Some(h) = data.get(8..8usize.saturating_add(n)) {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(h)
            {
                for k in m.keys() {
                    let _ = w.get_any(k);
                }
            }
        }
    }
});
