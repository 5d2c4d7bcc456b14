#!/usr/bin/env bash
# Our `train --loss-and-grads` (CPU backend) against transformers' loss and gradients on the same model and
# tokens. The reference side is tools/hf_parity.py, run where torch + transformers exist (the GPU machine):
#   python3 tools/hf_parity.py PARITY_DIR        # there: PARITY_DIR/<family>/{model.safetensors,config.json,
#                                                #   rows.bin} and PARITY_DIR/<family>.reference.safetensors
#   bash tools/hf-parity.sh PARITY_DIR [BUILD]   # here: for llama, qwen2, phi3, mistral at TP 1, 2 and
#                                                #   TP 2 x DP 2, prints the largest relative errors
#   FAMILIES  the families to check, default "llama qwen2 phi3 mistral"
# The exit status is non-zero if any loss or gradient differs by more than 1e-5 relative (gradients: to the
# largest element of the tensor).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath "$1")
build=${2:-build}
autotpc="$build/bin/autotpc"
[ -x "$autotpc" ] || { echo "hf-parity: build autotpc first ($autotpc)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for family in ${FAMILIES:-llama qwen2 phi3 mistral}; do
  src="$dir/$family"
  for tp in 1 2; do
    cfg="$work/$family-tp$tp.json"
    # the family preset; phi3 states its [q, kv, kv] split (parity_config.py)
    python3 tools/parity_config.py "$src" "$tp" "$family" "$cfg"
    "$autotpc" "$cfg" -o "$work/$family-tp$tp" >/dev/null 2>&1 || "$autotpc" "$cfg" --check
    cmake -S "$work/$family-tp$tp" -B "$work/$family-tp$tp/build" -DAUTOTPC_RUNTIME_DIR="$PWD/runtime" \
      -DAUTOTPC_ENABLE_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$work/$family-tp$tp/build" -j"$(nproc)" >/dev/null
    for np in $tp $((tp * 2)); do
      out="$work/$family-tp$tp-np$np.safetensors"
      mpirun -np "$np" --allow-run-as-root --oversubscribe "$work/$family-tp$tp/build/train" \
        --loss-and-grads "$src/rows.bin" --rows 4 --init-from "$src" --out "$out" >/dev/null
      python3 tools/compare_safetensors.py "$dir/$family.reference.safetensors" "$out" --tol 1e-5 \
        --label "$family tp=$tp dp=$((np / tp))" || status=1
    done
  done
done
exit $status
