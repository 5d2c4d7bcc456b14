#!/usr/bin/env bash
# Bytes the ZeRO engine communicates per optimizer step, against the theoretical volume of DeepSpeed's
# algorithm, for every stage in bf16 and fp32 (test/zero/ZeroCommVolume.cpp says what is counted).
# CPU only: MPI ranks on this machine. Usage: tools/bench-zero-comm.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target zero_comm_volume >/dev/null
exe="$build/test/zero/zero_comm_volume"
for layout in "2 1" "4 1" "8 2"; do # np tp: dp 2, dp 4, tp 2 x dp 4
  set -- $layout
  mpirun --allow-run-as-root --oversubscribe -np "$1" "$exe" "$2" llama
done
