#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, then
# verify specs/examples/llama.json (Llama-3.1-8B, TP 4, ZeRO-2, bf16) and print
# its shard plan (first lines) and per-GPU memory. No GPU needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target autotpc
example=${1:-specs/examples/llama.json}
echo "== autotpc --check $example"
build/bin/autotpc --check "$example"
echo "== autotpc --emit=plan $example (first 20 lines)"
build/bin/autotpc --emit=plan "$example" | head -n 20
echo "== autotpc --emit=memory $example"
build/bin/autotpc --emit=memory "$example"
