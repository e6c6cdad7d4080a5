#!/usr/bin/env bash
# The Python package end to end, as a user installs it: a fresh venv (target/py-venv),
# `pip install ./python[test]` (maturin builds the PyO3 extension from source), then the pytest
# suite (python/tests), which captures stores with the release CLI and checks the bindings
# against float64 NumPy references.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f models/all-minilm-l6-v2/model.safetensors ] || bash scripts/fetch-models.sh
cargo build --release --quiet
venv=target/py-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "./python[test]"
"$venv/bin/python" -c "import numpy as np, repdrift; X = np.random.default_rng(0).standard_normal((50, 8)); print('repdrift', repdrift.__version__, 'linear_cka(X, 2X) =', repdrift.linear_cka(X, 2 * X))"
"$venv/bin/python" -m pytest -q python/tests
