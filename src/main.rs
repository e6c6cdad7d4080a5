//! The `repdrift` binary: parse, run, print the error chain, exit 2 on user error.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// OpenBLAS 0.3.21 (Debian 12) picks its kernels from `cpuid` when the library loads, and on
/// the virtual machines repdrift is developed on that detection is unstable: the same binary
/// came up as "Cooperlake" (≈ 550 tok/s capture) in one run and "Prescott" — the SSE3 fallback,
/// ≈ 140 tok/s — in the next (`OPENBLAS_VERBOSE=2` prints the choice). When the CPU has the
/// AVX-512 subsets OpenBLAS's SkylakeX kernels use and the user has not chosen a core type, the
/// binary re-executes itself once with `OPENBLAS_CORETYPE=SKYLAKEX` (the variable must be set
/// before the library loads). Results are checked against HF transformers by the parity tests
/// under that setting too (README, "Speed and OpenBLAS"). `REPDRIFT_BLAS_PIN=0` turns it off.
#[cfg(all(target_arch = "x86_64", unix))]
fn pin_openblas_kernels() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("OPENBLAS_CORETYPE").is_some()
        || std::env::var_os("REPDRIFT_BLAS_PIN").is_some()
    {
        return;
    }
    let avx512 = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl");
    if !avx512 {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // Only returns on failure; then run as we are.
    let _ = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("OPENBLAS_CORETYPE", "SKYLAKEX")
        .env("REPDRIFT_BLAS_PIN", "1")
        .exec();
}

#[cfg(not(all(target_arch = "x86_64", unix)))]
fn pin_openblas_kernels() {}

/// The error and its causes joined by ": ". repdrift's own errors show their cause in their
/// message (`{path}: {cause}`) and do not expose it again as `source()`, so each appears once.
fn error_chain(err: &anyhow::Error) -> String {
    err.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn main() -> ExitCode {
    pin_openblas_kernels();
    repdrift::parallel::keep_freed_memory();
    // Panics inside a guarded third-party parser become named errors: do not print them.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !repdrift::io::in_guarded() {
            default_hook(info)
        }
    }));
    let cli = cli::Cli::parse();
    // Capture parallelises over sequences itself (one single-threaded BLAS per core); candle's
    // own per-op thread pool would only contend with it (measured: 526 → 647 tok/s on 2
    // cores, benches/capture.rs). `train` is one autograd graph per step, whose elementwise
    // ops gain from the pool (≈ 10 % more steps/s, scripts/bench.sh). Set before any candle op
    // runs (the pool reads it once); a user's explicit setting wins.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none()
        && !matches!(cli.command, cli::Command::Train(_))
    {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("repdrift: error: {}", error_chain(&err));
            let user = err
                .downcast_ref::<repdrift::Error>()
                .map(|e| e.is_user_error())
                .unwrap_or(false);
            if user {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
