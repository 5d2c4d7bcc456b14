#!/usr/bin/env bash
# Builds autotpc and the benchmark (Release) and times `autotpc --check` on
# Llama-3.1-405B (specs/examples/llama-405b-tp8.json), in process and as a
# whole process; read the median rows (goal: under 20 ms). Extra arguments go
# to Google Benchmark, e.g. --benchmark_filter=Process.
#   tools/bench-check.sh [BENCHMARK_ARGS...]     (build dir: $AUTOTPC_BUILD_DIR or build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${AUTOTPC_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAUTOTPC_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target autotpc CheckBench
"$build/bin/CheckBench" "$@"
