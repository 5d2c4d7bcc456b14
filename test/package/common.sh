# Shared by the package tests: arguments, a clean work folder, and the checks both make.
#   bash TEST.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$(realpath "$1") build=$(realpath "$2") work=$3
rm -rf "$work" && mkdir -p "$work" && work=$(realpath "$work") && cd "$work"
# The caller's environment must not decide where the runtime comes from.
unset CMAKE_PREFIX_PATH AUTOTPC_RUNTIME_DIR
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_text FILE TEXT: FILE says TEXT (fixed string), read with runs of spaces and line breaks as one space,
# since CMake wraps its messages.
expect_text() {
  tr '\n' ' ' < "$1" | tr -s ' ' | grep -qF -- "$2" || { cat "$1" >&2; fail "$1 does not say: $2"; }
}

# build_and_shard PROJECT: builds the generated shard tool (and only what it needs), shards a tiny random
# Llama with it, and compares the shards byte for byte with those of tiny-gen-tool, which runs the same
# runtime entry point on the plan compiled in process from the same spec.
build_and_shard() {
  local project=$1
  cmake --build "$project/build" -j2 --target llama_ds_tp2_shard > "$project/build.log" 2>&1 ||
    { tail -n 40 "$project/build.log" >&2; fail "building $project"; }
  [ -d ckpt ] || "$build/bin/make-tiny-checkpoint" "$src/specs/tiny/llama.json" ckpt > /dev/null
  [ -d want ] || "$build/bin/tiny-gen-tool" llama 2 shard --in ckpt --out want > /dev/null
  "$project/build/shard" --in ckpt --out "$project/shards" > "$project/shard.log"
  expect_text "$project/shard.log" "shard: wrote 2 files (tp_size 2, 21 parameters"
  for f in tp_rank_00_of_02.safetensors tp_rank_01_of_02.safetensors; do
    cmp "want/$f" "$project/shards/$f" || fail "$project/shards/$f differs from tiny-gen-tool's"
  done
}
