#!/usr/bin/env bash
# Every test: install what is missing, then
#   1. a clang build with the libFuzzer targets, each run for a bounded time;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build of the suite, host code only: without a GPU
#      the CUDA targets' tests cannot run and nvcc's device code is not sanitized, so compiling them twice
#      bought nothing but CI time;
#   3. the Release build of the suite (lit + GoogleTest under ctest) with every CUDA target compiled, last,
#      so that ctest's closing summary line is the full suite's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)

echo "== fuzzing (clang, libFuzzer, ASan+UBSan)"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DAUTOTPC_FUZZ=ON -DAUTOTPC_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target autotpc_fuzzers
(cd build-fuzz && ctest --output-on-failure -L fuzz)

echo "== sanitizers (ASan+UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAUTOTPC_SANITIZE=ON -DAUTOTPC_BENCH=OFF \
  -DAUTOTPC_ENABLE_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -LE fuzz)

echo "== test suite (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -LE fuzz)
