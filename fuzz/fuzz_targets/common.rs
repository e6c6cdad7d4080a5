// Shared by the fuzz targets (included with `include!`): a per-process scratch directory on
// tmpfs where each input is written as the file the reader under test expects.
#[allow(dead_code)]
fn scratch() -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("repdrift-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[allow(dead_code)]
fn put(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = scratch().join(name);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Keep libFuzzer's panic hook (it aborts: an uncaught panic is a crash) except inside
/// `repdrift::io::guarded`, where a third-party parser's panic becomes a named error.
#[allow(dead_code)]
fn quiet_guarded_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !repdrift::io::in_guarded() {
                fuzzer_hook(info)
            }
        }));
    });
}
