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
    # phi3: DeepSpeed's preset splits qkv_proj in equal thirds, wrong for GQA; state [q, kv, kv] instead.
    python3 - "$src" "$tp" "$family" "$cfg" <<'PY'
import json, sys
src, tp, family, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
tpc = {"autotp_size": tp, "preset_model": family}
if family == "phi3":
    c = json.load(open(src + "/config.json"))
    d = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    tpc = {"autotp_size": tp, "partition_config": {"use_default_specs": False, "layer_specs": [
        {"patterns": [r".*\.self_attn\.o_proj\.weight$", r".*\.mlp\.down_proj\.weight$"], "partition_type": "row"},
        {"patterns": [r".*\.self_attn\.qkv_proj\.weight$"], "partition_type": "column",
         "shape": [[q, kv, kv], -1], "partition_dim": 0},
        {"patterns": [r".*\.mlp\.gate_up_proj\.weight$"], "partition_type": "column", "shape": [2, -1],
         "partition_dim": 0}]}}
json.dump({"model": src, "train_micro_batch_size_per_gpu": 1, "tensor_parallel": tpc}, open(out, "w"), indent=1)
PY
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
