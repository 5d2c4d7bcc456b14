#!/usr/bin/env bash
# The main job on the embedded default, no GPU needed: install what is
# missing, build, then
#   1. verify specs/examples/llama.json (Llama-3.1-8B, TP 4, ZeRO-2, bf16) and
#      print its shard plan (first lines) and per-GPU memory;
#   2. compile the tiny Llama of specs/tiny/ at TP 2 into a C++ project, build
#      it on its own against runtime/, write a random HF checkpoint, shard it
#      per TP rank and consolidate it back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target autotpc make-tiny-checkpoint
example=${1:-specs/examples/llama.json}
out=build/example
rm -rf "$out" && mkdir -p "$out"
echo "== autotpc --check $example"
build/bin/autotpc --check "$example"
echo "== autotpc --emit=plan $example (first 12 lines)"
build/bin/autotpc --emit=plan "$example" > "$out/plan.txt" # whole, then show the start
head -n 12 "$out/plan.txt"
echo "== autotpc --emit=memory $example"
build/bin/autotpc --emit=memory "$example"

echo "== autotpc specs/tiny/llama.ds.json -o $out/gen (tiny Llama, TP 2)"
build/bin/autotpc specs/tiny/llama.ds.json -o "$out/gen"
cmake -S "$out/gen" -B "$out/gen/build" -DCMAKE_BUILD_TYPE=Release \
  -DAUTOTPC_ENABLE_CUDA=OFF >/dev/null
cmake --build "$out/gen/build" -j"$(nproc)" >/dev/null
echo "== make-tiny-checkpoint, shard, consolidate"
build/bin/make-tiny-checkpoint specs/tiny/llama.json "$out/hf"
"$out/gen/build/shard" --in "$out/hf" --out "$out/shards"
"$out/gen/build/consolidate" --in "$out/shards" --out "$out/back.safetensors"
ls -l "$out/shards"
