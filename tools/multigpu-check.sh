#!/usr/bin/env bash
# Sharding at real size on the GPU machine (issue 5, item 1), built without LLVM: a random bf16
# Llama-3.1-8B-shaped checkpoint from make-tiny-checkpoint, compiled at TP 2, 4 and 8 by autotpc, sharded
# offline by each generated `shard` tool (timed against `cp` of the same bytes), then load_sharded on
# TP ranks under mpirun -np TP compared byte for byte with the offline shards.
#   AUTOTPC_BIN  folder holding autotpc and make-tiny-checkpoint (built on the dev box; they need only libc,
#                libstdc++ and libtinfo), default build/bin
#   WORK         scratch folder (needs ~35 GB), default /tmp/atp-mgpu
#   TPS          TP sizes, default "2 4 8"
#   MODEL, CONFIG  the HF config and the DeepSpeed config to compile (default the 8B and
#                specs/examples/llama.json); MODEL=specs/tiny/llama.json CONFIG=specs/tiny/llama.ds.json
#                runs the same steps in seconds
#   NLOHMANN_INCLUDE  a folder holding nlohmann/json.hpp (the runtime reads JSON with it), default
#                .deps/nlohmann-include: run tools/stage-gpu-deps.sh on the dev machine and carry .deps
# Logs go to $OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${AUTOTPC_BIN:-build/bin}
work=${WORK:-/tmp/atp-mgpu}
tps=${TPS:-2 4 8}
model=${MODEL:-specs/models/Llama-3.1-8B.json}
config=${CONFIG:-specs/examples/llama.json}
log=${OUT:-$work}/multigpu-check.log
mkdir -p "$work" "$(dirname "$log")"
exec > >(tee -a "$log") 2>&1
mpirun=(mpirun --allow-run-as-root --oversubscribe)
now() { date +%s.%N; }
since() { python3 -c "print(round($(now) - $1, 3))"; }

echo "== checkpoint: make-tiny-checkpoint $model (random)"
t0=$(now)
rm -rf "$work/ckpt"
"$bin/make-tiny-checkpoint" "$model" "$work/ckpt" --seed 1
echo "written in $(since "$t0") s: $(du -sh "$work/ckpt" | cut -f1)"

dirs=()
for tp in $tps; do
  python3 tools/lib/ds-config.py "$tp" "$work/llama8b_tp$tp.json" "$config" "$model"
  rm -rf "$work/gen/llama8b_tp$tp"
  "$bin/autotpc" "$work/llama8b_tp$tp.json" -o "$work/gen/llama8b_tp$tp"
  dirs+=("$work/gen/llama8b_tp$tp")
done
cmake -S test/multigpu -B "$work/build" -DAUTOTPC_ENABLE_CUDA=OFF \
  -DAUTOTPC_NLOHMANN_INCLUDE_DIR="$(realpath -m "${NLOHMANN_INCLUDE:-.deps/nlohmann-include}")" \
  -DAUTOTPC_GENERATED_DIRS="$(IFS=';'; echo "${dirs[*]}")" >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null

echo "== cp of the checkpoint (the reference for the shard tool)"
rm -rf "$work/copy" && mkdir -p "$work/copy"
sync
t0=$(now); cp -r "$work/ckpt/." "$work/copy/"; sync; tcp=$(since "$t0")
rm -rf "$work/copy"
echo "cp: $tcp s"
for tp in $tps; do
  echo "== TP $tp: shard, then load_sharded on $tp ranks"
  rm -rf "$work/shards"
  t0=$(now); "$work/build/gen/llama8b_tp$tp/shard" --in "$work/ckpt" --out "$work/shards"; sync
  tsh=$(since "$t0")
  echo "shard tp=$tp: $tsh s; cp/shard time ratio $(python3 -c "print(round($tcp / $tsh, 3))")"
  "${mpirun[@]}" -np "$tp" "$work/build/load_sharded_check_llama8b_tp$tp" "$work/ckpt" "$work/shards"
done
rm -rf "$work/shards"
