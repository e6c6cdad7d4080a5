//! Study grid files (TOML): parsing and the checks against a 30-block model.
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let p = put("grid.toml", data);
    if let Ok(c) = repdrift::study::read_config(&p) {
        let _ = c.check(30);
    }
});
