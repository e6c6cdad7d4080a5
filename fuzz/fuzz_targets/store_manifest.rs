//! A store's `manifest.json`: opening it and reading what it lists (parts absent or present).
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;
use repdrift::capture::Store;
use repdrift::model::HookPoint;

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let dir = scratch().join("store");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), data).unwrap();
    let Ok(s) = Store::open(&dir) else { return };
    let m = s.manifest().clone();
    for f in &m.fields {
        for h in HookPoint::ALL {
            for &l in m.layers_of(h).iter().take(2) {
                let _ = s.read(h, l, f);
            }
        }
    }
    for p in m.parts.iter().take(4) {
        let _ = s.examples(p.index);
    }
});
