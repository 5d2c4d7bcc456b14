#!/usr/bin/env bash
# The generated `shard` tool against `cp` on a real-size checkpoint, on this machine's disk.
#   tools/bench-shard.sh [BUILD_DIR]     default build-a (configured here if it is not yet)
#   MODEL   HF config of the checkpoint (random weights from make-tiny-checkpoint), default
#           specs/models/Llama-3.2-1B.json (bf16, 2.47 GB; written in well under a minute)
#   CONFIG  DeepSpeed config compiled for it, default specs/examples/llama.json;  TP default 4
#   WORK    scratch folder (about 4 x the checkpoint), default /tmp/atp-bench-shard;  REPS default 5
# Steps: build autotpc and make-tiny-checkpoint, write the checkpoint, compile the config with
# `autotpc -o`, build the generated project (CPU runtime), then time, warm (the page cache cannot be
# dropped here) and alternating, REPS runs each of
#   shard      shard --in CKPT --out DIR              (writes every file atomically: fsync, rename)
#   cp         cp CKPT/model.safetensors DIR2/
#   cp+fsync   cp, then sync of the copied file       (the same durability as shard)
# and prints the medians, the time ratios t_cp / t_shard (goal >= 0.8) and the throughputs (bytes written
# per second; shard writes replicated tensors once per rank, so it writes more bytes than cp).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-a}
model=${MODEL:-specs/models/Llama-3.2-1B.json}
config=${CONFIG:-specs/examples/llama.json}
tp=${TP:-4}
work=${WORK:-/tmp/atp-bench-shard}
reps=${REPS:-5}
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
run_cp() { cp "$ckpt_file" "$work/copy/"; }
run_cp_fsync() { cp "$ckpt_file" "$work/copy/" && sync "$work/copy/model.safetensors"; }
prepare && run_shard && run_cp # warm-up: the checkpoint in the page cache
declare -A times
for i in $(seq "$reps"); do
  for what in shard cp cp_fsync; do
    prepare
    t0=$(now)
    "run_$what"
    times[$what]+="$(python3 -c "print($(now) - $t0)") "
    [ "$what" != shard ] || shard_bytes=$(du -cb "$work"/shards/*.safetensors | tail -1 | cut -f1)
  done
done
cp_bytes=$(stat -c %s "$ckpt_file")
rm -rf "$work/shards" "$work/copy"
python3 - "$shard_bytes" "$cp_bytes" "${times[shard]}" "${times[cp]}" "${times[cp_fsync]}" "$(nproc)" <<'PY'
import statistics, sys
shard_bytes, cp_bytes = int(sys.argv[1]), int(sys.argv[2])
t = {k: statistics.median(float(x) for x in v.split()) for k, v in zip(("shard", "cp", "cp+fsync"), sys.argv[3:6])}
print(f"checkpoint {cp_bytes / 1e9:.2f} GB; shard writes {shard_bytes / 1e9:.2f} GB; {sys.argv[6]} cores")
print(f"{'':10} {'median s':>9} {'GB/s written':>13}")
for k, b in (("shard", shard_bytes), ("cp", cp_bytes), ("cp+fsync", cp_bytes)):
    print(f"{k:10} {t[k]:9.3f} {b / t[k] / 1e9:13.2f}")
print(f"time ratio t_cp / t_shard:       {t['cp'] / t['shard']:.3f}   (goal >= 0.8)")
print(f"time ratio t_cp+fsync / t_shard: {t['cp+fsync'] / t['shard']:.3f}")
print(f"throughput ratio shard / cp (bytes written per second): {shard_bytes / t['shard'] / (cp_bytes / t['cp']):.3f}")
PY
