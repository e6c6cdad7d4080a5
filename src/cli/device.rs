//! `--device`: `cpu` or `cuda:N`.

/// `cpu` or `cuda:N` (the latter needs a build with `--features cuda`).
pub fn parse_device(s: &str) -> repdrift::Result<candle_core::Device> {
    if s == "cpu" {
        return Ok(candle_core::Device::Cpu);
    }
    let n = s
        .strip_prefix("cuda:")
        .or_else(|| (s == "cuda").then_some("0"))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            repdrift::Error::param("device", format!("`{s}`: expected cpu or cuda:N"))
        })?;
    candle_core::Device::new_cuda(n).map_err(|e| {
        repdrift::Error::param(
            "device",
            format!("{s}: {e} (CUDA needs a build with `cargo build --release --features cuda` and an NVIDIA driver)"),
        )
    })
}
