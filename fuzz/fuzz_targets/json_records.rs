//! The JSON files repdrift reads back: weak labels, metrics, probe results, validate runs.
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let _ = serde_json::from_slice::<repdrift::train::WeakLabels>(data);
    let _ = serde_json::from_slice::<repdrift::metrics::compare::MetricsReport>(data);
    let _ = serde_json::from_slice::<repdrift::probe::run::ProbeReport>(data);
    let p = put("validate.json", data);
    let _ = repdrift::validate::read_report(&p);
});
