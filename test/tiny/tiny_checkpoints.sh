#!/usr/bin/env bash
# ctest tiny_checkpoints: make-tiny-checkpoint for every specs/tiny family.
#
#   tiny_checkpoints.sh MAKE_TINY CHECK_TINY AUTOTPC SPECS_DIR WORK_DIR
#
# For each family: write a checkpoint, re-read it with the runtime reader
# (check-tiny-checkpoint: names, shapes, dtypes against the inventory, every
# value against the documented formula), check that the same seed gives the
# same bytes and another seed other bytes, and that autotpc accepts the
# checkpoint as the model of the family's DeepSpeed config. Then sharding,
# --dtype, and errors leaving no output.
set -euo pipefail
MAKE=$1 CHECK=$2 AUTOTPC=$3 SPECS=$4 WORK=$5
FAMILIES="llama mistral qwen2 phi3 mixtral deepseek_v2 bloom chatglm"

rm -rf "$WORK"
mkdir -p "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }

for f in $FAMILIES; do
  "$MAKE" "$SPECS/$f.json" "$WORK/$f.a" --seed 7 >/dev/null
  "$MAKE" "$SPECS/$f.json" "$WORK/$f.b" --seed 7 >/dev/null
  "$MAKE" "$SPECS/$f.json" "$WORK/$f.c" --seed 8 >/dev/null
  "$CHECK" "$WORK/$f.a" --seed 7 --dtype BF16 --files 1
  "$CHECK" "$WORK/$f.c" --seed 8 --dtype BF16 --files 1 >/dev/null
  cmp "$SPECS/$f.json" "$WORK/$f.a/config.json" || fail "$f: config.json is not a copy"
  cmp "$WORK/$f.a/model.safetensors" "$WORK/$f.b/model.safetensors" || fail "$f: same seed, different bytes"
  if cmp -s "$WORK/$f.a/model.safetensors" "$WORK/$f.c/model.safetensors"; then
    fail "$f: seeds 7 and 8 gave the same bytes"
  fi
  size=$(stat -c %s "$WORK/$f.a/model.safetensors")
  [ "$size" -lt 2200000 ] || fail "$f: checkpoint is $size bytes"
  # autotpc reads the stored inventory and cross-checks it with config.json.
  "$AUTOTPC" --check "$SPECS/$f.ds.json" --model "$WORK/$f.a" -Wno-not-deepspeed >/dev/null ||
    fail "$f: autotpc --check rejects the checkpoint"
done

# Sharded: same values, several files and an index; rewriting the folder as
# one file again removes the shards and the index.
out=$("$MAKE" "$SPECS/mixtral.json" "$WORK/shards" --seed 7 --max-shard-bytes 300000)
echo "$out"
n=$(ls "$WORK/shards" | grep -c '^model-0000[0-9]-of-0000[0-9]\.safetensors$')
[ "$n" -ge 3 ] || fail "expected >= 3 shards, got $n"
echo "$out" | grep -q "in $n files" || fail "summary does not say $n files"
"$CHECK" "$WORK/shards" --seed 7 --dtype BF16 --files "$n"
"$MAKE" "$SPECS/mixtral.json" "$WORK/shards" --seed 7 >/dev/null
[ "$(ls "$WORK/shards")" = "$(printf 'config.json\nmodel.safetensors')" ] || fail "stale shards left: $(ls "$WORK/shards")"
cmp "$WORK/shards/model.safetensors" "$WORK/mixtral.a/model.safetensors"

# --dtype: values rounded into each dtype, and config.json saying so.
for d in F32 F16 F64; do
  "$MAKE" "$SPECS/qwen2.json" "$WORK/qwen2.$d" --seed 7 --dtype $d >/dev/null
  "$CHECK" "$WORK/qwen2.$d" --seed 7 --dtype $d --files 1 >/dev/null
done
grep -q '"torch_dtype": "float16"' "$WORK/qwen2.F16/config.json" || fail "config.json keeps the old dtype"
"$MAKE" "$SPECS/qwen2.json" "$WORK/qwen2.same" --seed 7 --dtype BF16 >/dev/null
cmp "$SPECS/qwen2.json" "$WORK/qwen2.same/config.json"

# Errors: exit 1, a message naming the file, no output left behind.
expect_error() { # PATTERN OUT_DIR ARGS...
  local pattern=$1 dir=$2; shift 2
  if "$MAKE" "$@" >"$WORK/err.out" 2>"$WORK/err.txt"; then fail "succeeded: $*"; fi
  grep -q -- "$pattern" "$WORK/err.txt" || { cat "$WORK/err.txt" >&2; fail "message lacks '$pattern': $*"; }
  [ ! -e "$dir" ] || fail "left output in $dir: $*"
}
sed 's/"model_type": "llama"/"model_type": "gpt2"/' "$SPECS/llama.json" >"$WORK/gpt2.json"
expect_error "gpt2.json:.*unknown model_type 'gpt2'" "$WORK/gpt2.out" "$WORK/gpt2.json" "$WORK/gpt2.out"
sed 's/"num_attention_heads": 16/"num_attention_heads": 0/' "$SPECS/llama.json" >"$WORK/zero.json"
expect_error "zero.json:.*'num_attention_heads' (0) must be positive" "$WORK/zero.out" "$WORK/zero.json" "$WORK/zero.out"
expect_error "missing.json" "$WORK/missing.out" "$WORK/missing.json" "$WORK/missing.out"
touch "$WORK/a-file"
expect_error "a-file/sub" "$WORK/a-file/sub" "$SPECS/llama.json" "$WORK/a-file/sub"
expect_error "dtype must be" "$WORK/i8.out" "$SPECS/llama.json" "$WORK/i8.out" --dtype I8
# A failure into an existing checkpoint leaves it as it was.
cp -r "$WORK/llama.a" "$WORK/llama.keep"
expect_error "gpt2.json" "$WORK/nothing" "$WORK/gpt2.json" "$WORK/llama.keep"
diff -r "$WORK/llama.a" "$WORK/llama.keep" >/dev/null || fail "a failed run changed an existing folder"
[ -z "$(ls -A "$WORK/llama.keep" | grep -v -e '^config.json$' -e '^model.safetensors$')" ] || fail "temporaries left"

echo "tiny_checkpoints: ok"
