//! Parquet files (rows read as JSON objects).
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let p = put("x.parquet", data);
    let _ = repdrift::data::read_jsonl(&p, None);
});
