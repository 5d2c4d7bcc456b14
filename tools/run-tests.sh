#!/usr/bin/env bash
# Every test: install what is missing, then
#   1. a clang build with the libFuzzer targets, each run for a bounded time;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build of the suite, host code only: without a GPU
#      the CUDA targets' tests cannot run and nvcc's device code is not sanitized, so compiling them twice
#      bought nothing but CI time;
#   3. the Release build of the suite (lit + GoogleTest under ctest) with every CUDA target compiled, last,
#      so that ctest's closing summary line is the full suite's.
# ctest runs -j(cores): GoogleTest cases side by side, every other test alone (cmake/tests.cmake).
#
# Build time on a 2-core machine is most of the run, so the two sanitizer builds use clang at -O1 with line
# tables only (enough for ASan's file:line reports): compiling runtime/src/trainer.cpp with the sanitizers
# took 56 s with g++ -O2 -g, 28 s with g++ -O1 -g1 and 17 s with clang -O1 -gline-tables-only. The 8-rank
# tests (label np8: eight processes on two cores, 5-6x slower under ASan) run in the Release stage only;
# their code paths run under the sanitizers at 1, 2 and 4 ranks. A clean clone on the 2-core development machine
# took 74.8 min before these choices (fuzz 10.7, sanitizers 24.3 build + 15.6 tests, Release 11.3 + 12.8) and
# 45.1 min after (6.1; 8.6 + 8.3; 11.4 + 10.7).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)
clang_san=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo
           "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG"
           "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG"
           -DAUTOTPC_BENCH=OFF -DAUTOTPC_ENABLE_CUDA=OFF)

echo "== fuzzing (clang, libFuzzer, ASan+UBSan)"
cmake -S . -B build-fuzz "${clang_san[@]}" -DAUTOTPC_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target autotpc_fuzzers
(cd build-fuzz && ctest -j"$jobs" --output-on-failure -L fuzz)

echo "== sanitizers (clang, ASan+UBSan)"
cmake -S . -B build-asan "${clang_san[@]}" -DAUTOTPC_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -j"$jobs" --output-on-failure -LE 'fuzz|np8')

echo "== test suite (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure -LE fuzz)
