#!/usr/bin/env bash
# The single-GPU checks, run from the repository root on the GPU machine (CMake, nvcc, NCCL and MPI; no
# LLVM there): builds the standalone project test/gpu (runtime/, the checked-in generated/ plans, the GPU
# tests and benchmarks) for sm_90a, prints the GPUs, runs every test registered with the label 'gpu'
# (test/gpu/gpu_targets.cmake: atp_gpu_test), then every benchmark (atp_gpu_bench).
#   tools/gpu-check.sh [all|tests|benches]     default all; the build step runs every time (incremental)
#   BUILD       the build folder, default build-gpu
#   CUDA_ARCHS  CMAKE_CUDA_ARCHITECTURES, default 90a
#   OUT         where the logs go, default the build folder: gpu-check.log (everything printed here),
#               ctest.log (every test's full output), bench-<name>.log (one per benchmark)
#   NLOHMANN_INCLUDE  a folder holding nlohmann/json.hpp, for a machine without the package (the runtime
#               reads JSON with it), default .deps/nlohmann-include: run tools/stage-gpu-deps.sh on the dev
#               machine first and carry .deps (device tool: run(command=..., carry=[".deps"]))
# Exits non-zero when the build or a test failed; benchmarks only print (their own ratios are not judged).
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in all | tests | benches) ;; *) echo "usage: $0 [all|tests|benches]" >&2 && exit 2 ;; esac
build=${BUILD:-build-gpu}
out=${OUT:-$build}
mkdir -p "$out" "$build"
out=$(cd "$out" && pwd)
exec > >(tee "$out/gpu-check.log") 2>&1
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH

echo "== GPUs"
nvidia-smi -L || echo "gpu-check: nvidia-smi failed"
echo "== build ($build, sm ${CUDA_ARCHS:-90a})"
cmake --version | head -1
nvcc --version | tail -1
nlohmann=$(realpath -m "${NLOHMANN_INCLUDE:-.deps/nlohmann-include}")
if ! cmake -S test/gpu -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a}" \
  -DAUTOTPC_NLOHMANN_INCLUDE_DIR="$nlohmann" ||
  ! cmake --build "$build" -j"$(nproc)"; then
  echo "gpu-check: FAIL: the build failed"
  exit 1
fi

rc=0
if [ "$what" != benches ]; then
  echo "== tests (ctest -L gpu)"
  (cd "$build" && ctest -L gpu --output-on-failure --output-log "$out/ctest.log") || rc=1
  # Each test's closing lines (its PASS/FAIL summary), also when it passed.
  grep -E "^[a-z_]+: (PASS|FAIL)|^[a-z_]+: [0-9]+ passed, [0-9]+ failed" "$out/ctest.log" || true
fi
if [ "$what" != tests ]; then
  echo "== benchmarks"
  while read -r bench; do
    [ -n "$bench" ] || continue
    echo "-- $(basename "$bench")"
    "$bench" 2>&1 | tee "$out/bench-$(basename "$bench").log"
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "gpu-check: $(basename "$bench") exited non-zero"; rc=1; }
  done <"$build/gpu_benches.txt"
fi
echo "gpu-check: $([ $rc = 0 ] && echo PASS || echo FAIL) ($what)"
exit $rc
