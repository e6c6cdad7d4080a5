//! JSONL records of every data shape (text, prompt pairs, HH transcripts, messages, TRL pairs,
//! PKU rows), rendered with both built-in templates: an error or a dataset, never a panic.
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;
use repdrift::data::{chat::ChatTemplate, read_jsonl_with, PairLabel, ReadOptions};

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let p = put("x.jsonl", data);
    for (template, label) in [
        (ChatTemplate::Hh, PairLabel::Safer),
        (ChatTemplate::Plain, PairLabel::Better),
    ] {
        let opts = ReadOptions {
            limit: None,
            label,
            template,
        };
        let _ = read_jsonl_with(&p, &opts);
    }
});
