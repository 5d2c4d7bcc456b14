#!/usr/bin/env bash
# Regenerates generated/ on purpose (the golden files that a lit test
# compares against): one folder per example spec. Review the diff like code.
#   tools/update-generated.sh            (uses build/bin/autotpc, building it if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
autotpc=${AUTOTPC:-build/bin/autotpc}
if [ ! -x "$autotpc" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target autotpc
fi
# name  config (paths relative to the repository root, as the goldens record them)
while read -r name config; do
  [ -z "$name" ] && continue
  "$autotpc" "$config" -o "generated/$name" >/dev/null
  rm "generated/$name/autotpc-paths.cmake" # names this machine's autotpc; not a golden
  echo "generated/$name <- $config"
done <<'LIST'
llama-tp4 specs/examples/llama.json
custom-fused-gqa-tp2 specs/examples/custom-fused-gqa.json
tiny-llama-train specs/train/tiny-llama.ds.json
tiny-qwen2-train specs/train/tiny-qwen2.ds.json
LIST
