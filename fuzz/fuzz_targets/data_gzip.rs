//! gzip input: the raw bytes as a `.jsonl.gz` (corrupt streams) and the bytes gzip-compressed
//! (valid streams of arbitrary JSONL).
#![no_main]
include!("common.rs");
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use repdrift::data::read_jsonl;

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let p = put("raw.jsonl.gz", data);
    let _ = read_jsonl(&p, None);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    let p = put("packed.jsonl.gz", &enc.finish().unwrap());
    let _ = read_jsonl(&p, Some(64));
});
