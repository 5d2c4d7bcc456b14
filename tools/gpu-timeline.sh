#!/usr/bin/env bash
# Runs a CUDA program under tools/gpu-timeline/inject.cpp (CUPTI activity records: every kernel, memcpy and
# memset with its GPU start and end, at the program's own speed) and prints tools/gpu_timeline.py's per-step
# busy / idle times and kernel table. On the GPU machine:
#   bash tools/gpu-timeline.sh OUT.csv [gpu_timeline.py options --] COMMAND...
# e.g. bash tools/gpu-timeline.sh ours.csv -- build-gpu/extra/bench-llama-1b/train --data t.bin --steps 8 ...
#      bash tools/gpu-timeline.sh torch.csv --step-start REGEX -- python3 tools/bench_torch.py --impl compile
#      (gpu_timeline.py --gaps K: the K costliest kinds of idle gap, by the operations before and after them)
# CUPTI: the CUDA toolkit's (CUDA_HOME, default /usr/local/cuda), include/ and lib64/ or lib/ or extras/CUPTI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
csv=$(realpath -m "$1"); shift
opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "usage: gpu-timeline.sh OUT.csv [gpu_timeline.py options] -- COMMAND..." >&2; exit 2; }
cuda=${CUDA_HOME:-/usr/local/cuda}
inc="" lib=""
for d in "$cuda/include" "$cuda/extras/CUPTI/include"; do [ -f "$d/cupti.h" ] && inc=$d && break; done
for d in "$cuda/lib64" "$cuda/lib" "$cuda/extras/CUPTI/lib64" "$cuda/targets/x86_64-linux/lib"; do
  ls "$d"/libcupti.so* >/dev/null 2>&1 && lib=$d && break
done
[ -n "$inc" ] && [ -n "$lib" ] || { echo "gpu-timeline: CUPTI not found under $cuda (set CUDA_HOME)" >&2; exit 1; }
so=${TMPDIR:-/tmp}/libatp_gpu_timeline.so
g++ -std=c++17 -O2 -shared -fPIC -I"$inc" "$here/gpu-timeline/inject.cpp" -L"$lib" -Wl,-rpath,"$lib" -lcupti -o "$so"
ATP_TIMELINE_OUT="$csv" CUDA_INJECTION64_PATH="$so" "$@"
python3 "$here/gpu_timeline.py" "$csv" "${opts[@]}"
