#!/usr/bin/env bash
# Configures a clang build with the libFuzzer targets (ASan+UBSan) in
# build-fuzz/ and runs every target for SECONDS (default 600), in parallel,
# with the flags of the fuzz ctests. Each target's corpus grows in
# build-fuzz/test/fuzz/corpus/<target>/ (seeded from test/fuzz/corpus/); an
# input that crashes, leaks, hangs or runs out of memory is saved under
# build-fuzz/test/fuzz/artifacts/<target>/ and fails the run. Reproduce one
# with: build-fuzz/test/fuzz/<target> FILE
#   tools/run-fuzzers.sh [SECONDS]        (build dir: $AUTOTPC_BUILD_DIR or build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
build=${AUTOTPC_BUILD_DIR:-build-fuzz}
targets=(ConfigFuzzer ModelConfigFuzzer SafetensorsHeaderFuzzer TokenDataFuzzer)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DAUTOTPC_FUZZ=ON -DAUTOTPC_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
out=$build/test/fuzz
cmake -E copy_directory test/fuzz/corpus "$out/corpus"
pids=()
for t in "${targets[@]}"; do
  mkdir -p "$out/artifacts/$t"
  "$out/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict=test/fuzz/json.dict -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" >"$out/$t.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
  if wait "${pids[$i]}"; then
    result=ok
  else
    result="FAILED (exit $?)"
    status=1
  fi
  echo "${targets[$i]}: $result; $(grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
    "$out/${targets[$i]}.log" | tr '\n' ' ')log: $out/${targets[$i]}.log"
done
findings=$(find "$out/artifacts" -type f | sort)
if [ -n "$findings" ]; then
  echo "run-fuzzers: inputs that failed (this run or earlier):"
  echo "$findings"
fi
exit $status
