//! Peak memory of `repdrift compare` as n grows 10× (4,096 → 40,960 examples, d = 576,
//! layers 0..=2, one student; kNN off since it holds rows in memory by design).
//!
//!     cargo bench --bench compare_memory
//!
//! Runs the `repdrift` binary on synthetic stores and reads the child's peak resident set
//! (VmHWM in /proc/PID/status, Linux) while it runs. Prints one line per n.

#[path = "common/stores.rs"]
mod stores;

use std::process::Command;
use std::time::{Duration, Instant};

fn peak_kib(mut cmd: Command) -> (u64, Duration) {
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("run repdrift");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(l) = s.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                peak = peak.max(kib);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "compare failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (peak, t0.elapsed())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = stores::bench_dir().join("memory");
    for n in [4096usize, 40960] {
        let (b, s) = (
            dir.join(format!("base-{n}")),
            dir.join(format!("student-{n}")),
        );
        if !b.join("manifest.json").exists() || !s.join("manifest.json").exists() {
            stores::write_store(&b, n, 2, 1, 0.0);
            stores::write_store(&s, n, 2, 2, 1.0);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_repdrift"));
        cmd.args(["compare", "--knn-max-n", "0", "--base"])
            .arg(&b)
            .arg("--student")
            .arg(format!("s={}", s.display()))
            .arg("--out")
            .arg(dir.join(format!("out-{n}")));
        let (kib, t) = peak_kib(cmd);
        let store_mib = (n * 576 * 4 * 3) as f64 / (1 << 20) as f64;
        println!(
            "compare_memory: n = {n:>6}: peak RSS {:.1} MiB ({:.1} s); each store holds {store_mib:.0} MiB of activations",
            kib as f64 / 1024.0,
            t.as_secs_f64()
        );
    }
}
