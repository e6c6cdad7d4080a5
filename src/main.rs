//! The `repdrift` binary: parse, run, print the error chain, exit 2 on user error.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Capture parallelises over sequences itself (one single-threaded BLAS per core); candle's
    // own per-op thread pool would only contend with it (measured: 526 → 647 tok/s on 2
    // cores, benches/capture.rs). A user's explicit setting wins.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cli = repdrift::cli::Cli::parse();
    match repdrift::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("repdrift: error: {err:#}");
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
