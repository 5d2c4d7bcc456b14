#!/usr/bin/env bash
# The generated `shard` tool against `cp` on a real-size checkpoint, on this machine's disk.
#   tools/bench-shard.sh [BUILD_DIR]     default build-a (configured here if it is not yet)
#   MODEL   HF config of the checkpoint (random weights from make-tiny-checkpoint), default
#           specs/models/Llama-3.2-1B.json (bf16, 2.47 GB; written in well under a minute)
#   CONFIG  DeepSpeed config compiled for it, default specs/examples/llama.json;  TP default 4
#   WORK    scratch folder (about 6 x the checkpoint), default /tmp/atp-bench-shard;  REPS default 5
#   BASELINE  another build's shard binary for the same config (e.g. one saved before a change), timed
#           in the same rounds as `base`, so that before and after share the machine's load
# Steps: build autotpc and make-tiny-checkpoint, write the checkpoint, compile the config with
# `autotpc -o`, build the generated project (CPU runtime), then time, warm (the page cache cannot be
# dropped here) and alternating, REPS runs each of
#   shard        shard --in CKPT --out DIR            (writes every file atomically: fsync, rename)
#   base         BASELINE --in CKPT --out DIR         (only with BASELINE)
#   cp           cp CKPT/model.safetensors DIR2/
#   cp+fsync     cp, then sync of the copied file     (the same durability as shard)
#   cpsame+fsync cp of a previous run's shard files, then sync of the copies: the same bytes and files
#                as shard writes (shard writes replicated tensors once per rank, so more bytes than cp)
# and prints the medians, the time ratios against shard (goal: cp of the same bytes, both followed by
# sync, >= 0.8 x) and the throughputs (bytes written per second).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-a}
model=${MODEL:-specs/models/Llama-3.2-1B.json}
config=${CONFIG:-specs/examples/llama.json}
tp=${TP:-4}
work=${WORK:-/tmp/atp-bench-shard}
reps=${REPS:-5}
base=${BASELINE:-}
[ -z "$base" ] || [ -x "$base" ] || { echo "bench-shard: BASELINE $base is not an executable" >&2; exit 1; }
now() { date +%s.%N; }

echo "== build ($build)"
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target autotpc make-tiny-checkpoint >/dev/null
mkdir -p "$work"

echo "== checkpoint: $model (random, seed 1)"
t0=$(now)
rm -rf "$work/ckpt"
"$build/bin/make-tiny-checkpoint" "$model" "$work/ckpt" --seed 1
echo "written in $(python3 -c "print(round($(now) - $t0, 1))") s"
ckpt_file="$work/ckpt/model.safetensors"
[ -f "$ckpt_file" ] || { echo "bench-shard: expected one file, $ckpt_file (lower MODEL's size)" >&2; exit 1; }

echo "== compile $config at TP $tp, build the generated project"
python3 tools/lib/ds-config.py "$tp" "$work/config.json" "$config" "$model"
rm -rf "$work/gen"
"$build/bin/autotpc" "$work/config.json" -o "$work/gen"
cmake -S "$work/gen" -B "$work/gen-build" -DCMAKE_BUILD_TYPE=Release -DAUTOTPC_ENABLE_CUDA=OFF \
  -DAUTOTPC_RUNTIME_DIR="$PWD/runtime" >/dev/null
cmake --build "$work/gen-build" -j"$(nproc)" >/dev/null
shard=$(find "$work/gen-build" -maxdepth 1 -name shard -type f -perm -u+x)

echo "== timing, $reps runs each, warm"
# Each run starts from the same state: its output removed, every dirty page of the machine written back.
prepare() { rm -rf "$work/shards" "$work/copy" && mkdir "$work/copy" && sync; }
run_shard() { "$shard" --in "$work/ckpt" --out "$work/shards" >/dev/null; }
run_base() { "$base" --in "$work/ckpt" --out "$work/shards" >/dev/null; }
run_cp() { cp "$ckpt_file" "$work/copy/"; }
run_cp_fsync() { cp "$ckpt_file" "$work/copy/" && sync "$work/copy/model.safetensors"; }
run_cpsame_fsync() { cp "$work"/same/*.safetensors "$work/copy/" && sync "$work"/copy/*.safetensors; }
# Warm-up: the checkpoint in the page cache, and a shard output kept as the same-bytes copy's source.
prepare && run_shard && run_cp && rm -rf "$work/same" && mv "$work/shards" "$work/same"
if [ -n "$base" ]; then # both builds must write the same bytes
  prepare && run_base
  for f in "$work"/same/*.safetensors; do cmp "$f" "$work/shards/${f##*/}"; done
  echo "shard and BASELINE wrote the same bytes"
fi
kinds="shard ${base:+base} cp cp_fsync cpsame_fsync"
declare -A times
for i in $(seq "$reps"); do
  line="round $i:"
  for what in $kinds; do
    prepare
    t0=$(now)
    "run_$what"
    dt=$(python3 -c "print(round($(now) - $t0, 3))")
    times[$what]+="$dt "
    line+=" $what $dt"
  done
  echo "$line"
done
shard_bytes=$(du -cb "$work"/same/*.safetensors | tail -1 | cut -f1)
cp_bytes=$(stat -c %s "$ckpt_file")
rm -rf "$work/shards" "$work/copy" "$work/same"
python3 - "$shard_bytes" "$cp_bytes" "$(nproc)" "${times[shard]}" "${times[base]:-}" "${times[cp]}" \
  "${times[cp_fsync]}" "${times[cpsame_fsync]}" <<'PY'
import statistics, sys
shard_bytes, cp_bytes, cores = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
names = ("shard", "base", "cp", "cp+fsync", "cpsame+fsync")
t = {k: statistics.median(float(x) for x in v.split()) for k, v in zip(names, sys.argv[4:]) if v.strip()}
written = {"shard": shard_bytes, "base": shard_bytes, "cp": cp_bytes, "cp+fsync": cp_bytes, "cpsame+fsync": shard_bytes}
print(f"checkpoint {cp_bytes / 1e9:.2f} GB; shard writes {shard_bytes / 1e9:.2f} GB; {cores} cores")
print(f"{'':13} {'median s':>9} {'GB/s written':>13}")
for k in t:
    print(f"{k:13} {t[k]:9.3f} {written[k] / t[k] / 1e9:13.2f}")
for s in ("shard", "base"):
    if s in t:
        print(f"{s}: t_cpsame+fsync / t_{s}: {t['cpsame+fsync'] / t[s]:.3f} (goal >= 0.8: the same bytes, both synced); "
              f"t_cp+fsync / t_{s}: {t['cp+fsync'] / t[s]:.3f}; t_cp / t_{s}: {t['cp'] / t[s]:.3f}")
if "base" in t:
    print(f"speed-up of shard over base: {t['base'] / t['shard']:.2f}x")
PY
