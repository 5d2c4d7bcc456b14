#!/usr/bin/env bash
# Issue 11 on a machine with several GPUs (one process per GPU, NCCL), under mpirun and under torchrun:
# equivalence over the (tp, dp, stage) grid and a rank killed mid-run. DEVICE=cpu runs the same steps on this
# machine's CPU (MPI and TCP host comms, fp32 only), which checks the script and the CPU path.
#   bash tools/multigpu-train.sh prepare [DIR] [BUILD]    # here (autotpc needs LLVM); DIR default multigpu-train
#       DIR/projects/tiny-llama-{f32,bf16}-tp{1,2,4,8}-z{0,1,2}: specs/train's tiny Llama at every TP size and
#       ZeRO stage, train_batch_size 16 over micro-batches of 2 (so GAS = 8 / DP: the same global batch at
#       every layout), AdamW eps 1e-3 (test/train/TrainMpi.cpp says why: fp32 sums in another order move an
#       update by up to lr x rounding / eps near |g| ~ eps).
#   run(kind="nvidia-h200-x8", command="bash tools/multigpu-train.sh check", carry=["multigpu-train", ".deps"])
#       builds test/gpu with the projects (as tools/gpu-train.sh does), then on NGPU ranks (DP = NGPU / TP):
#       1. equivalence: every project whose TP divides NGPU trains STEPS steps on README.md under mpirun and
#          under torchrun (tools/launch-local where torchrun is missing) and exports HF weights; every step's
#          loss and every weight tensor against TP 1 / DP 1 / stage 0 of the same dtype on one rank:
#          fp32 within 1e-5 relative, bf16 within 2e-2 (the single-GPU parity tolerance);
#       2. faults: rank 1 is SIGKILLed mid-run (saving every 2 steps) under each launcher: the other ranks must
#          end, non-zero and naming what failed, within 60 s (ATP_COMM_TIMEOUT_S=30), and the last complete
#          checkpoint must resume;
#       3. collectives (GPUs only): test/gpu/comm_bench at every TP size that leaves a DP group: the TP
#          all-reduce and the DP reduce-scatter / all-gather / all-reduce through our comm against NCCL called
#          directly, time and bus bandwidth, in the same run (a benchmark: printed, not judged).
#   NGPU (default: the GPUs nvidia-smi lists; 4 with DEVICE=cpu), STEPS (default 10), OUT (logs; default DIR/out)
#       4. speed (GPUs only; SPEED=0 skips it): the Llama-3.1-8B shape at seq SEQ8B (8192), ours at each LAYOUTS
#          TP:STAGE against tools/bench_dist_torch.py (DTensor TP + FSDP2) in the same run (a benchmark).
# Steps 3 and 4 and the bf16 half of step 1 have not run yet: no multi-GPU machine was lent while they were
# written; DEVICE=cpu ran steps 1 (fp32) and 2 at 4 ranks.
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/lib/gpu-build.sh
mode=${1:-}
dir=$(realpath -m "${2:-multigpu-train}")
build=${3:-build}
device=${DEVICE:-cuda}
steps=${STEPS:-10}
out=$(realpath -m "${OUT:-$dir/out}")
mpirun=(mpirun --allow-run-as-root --oversubscribe)
tps="1 2 4 8"

prepare() {
  set -e
  local autotpc="$build/bin/autotpc"
  [ -x "$autotpc" ] || { echo "multigpu-train: build autotpc first ($build)"; exit 2; }
  rm -rf "$dir" && mkdir -p "$dir/projects" "$dir/configs"
  for dtype in f32 bf16; do
    for tp in $tps; do
      for stage in 0 1 2; do
        local name="tiny-llama-$dtype-tp$tp-z$stage" cfg="$dir/configs/tiny-llama-$dtype-tp$tp-z$stage.json"
        python3 - specs/train/tiny-llama.ds.json "$cfg" "$tp" "$stage" "$dtype" <<'PY'
import json, os, sys
src, out, tp, stage, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = json.load(open(src))
c["model"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(src)), c["model"]))
c["tensor_parallel"]["autotp_size"] = tp
c["zero_optimization"] = {"stage": stage, "reduce_bucket_size": 20000}  # several buckets: stage 2 reduces in backward
c.pop("gradient_accumulation_steps", None)
c["train_batch_size"] = 16
c["train_micro_batch_size_per_gpu"] = 2
c["optimizer"]["params"]["eps"] = 1e-3
c["bf16"] = {"enabled": dtype == "bf16"}
json.dump(c, open(out, "w"), indent=1)
PY
        "$autotpc" "$cfg" -o "$dir/projects/$name" >/dev/null 2>>"$dir/autotpc.log" # notes: TP 1 is off
      done
    done
  done
  # The speed run's Llama-3.1-8B shape: bf16, micro-batch 1, ZeRO-1 and ZeRO-2, at TP 2, 4 and 8.
  for tp in 2 4 8; do
    for stage in 1 2; do
      local cfg="$dir/configs/llama8b-tp$tp-z$stage.json"
      python3 - specs/models/Llama-3.1-8B.json "$cfg" "$tp" "$stage" <<'PY'
import json, os, sys
model, out, tp, stage = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
json.dump({"model": os.path.abspath(model), "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
           "gradient_clipping": 1.0, "bf16": {"enabled": True},
           "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.95], "eps": 1e-8,
                                                     "weight_decay": 0.1}},
           "zero_optimization": {"stage": stage},
           "tensor_parallel": {"autotp_size": tp, "preset_model": "llama"}}, open(out, "w"), indent=1)
PY
      "$autotpc" "$cfg" -o "$dir/projects/llama8b-tp$tp-z$stage" >/dev/null 2>>"$dir/autotpc.log"
    done
  done
  echo "multigpu-train: prepared $dir ($(ls "$dir/projects" | wc -l) projects); carry it with .deps to the GPU machine"
}

# Builds the projects: on GPUs with test/gpu (as tools/gpu-train.sh does); on the CPU in one CMake project of
# their own beside one runtime/ (CUDA off).
build_projects() {
  if [ "$device" = cpu ]; then
    mkdir -p "$dir/cpu-project"
    {
      echo "cmake_minimum_required(VERSION 3.25)"
      echo "project(multigpu_train_cpu LANGUAGES C CXX)"
      echo "set(AUTOTPC_ENABLE_CUDA OFF)"
      echo "add_subdirectory(\"$PWD/runtime\" autotpc_runtime)"
      for p in "$dir"/projects/*f32*; do
        echo "add_subdirectory(\"$p\" extra/$(basename "$p"))"
      done
    } >"$dir/cpu-project/CMakeLists.txt"
    local launcher_flags=()
    command -v ccache >/dev/null && launcher_flags=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$dir/cpu-project" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release "${launcher_flags[@]}" >"$out/cmake.log" 2>&1 &&
      cmake --build "$dir/build" -j"$(nproc)" >>"$out/cmake.log" 2>&1 ||
      { tail -30 "$out/cmake.log"; echo "multigpu-train: FAIL: build"; exit 1; }
  else
    build_gpu_projects "$dir/build" "$dir/projects" "$out/cmake.log" multigpu-train
  fi
}

train_of() { echo "$dir/build/extra/$1/train"; } # the train executable of project $1

# launcher LAUNCHER NP: sets LAUNCH to the command prefix that starts NP ranks: mpirun, or a torchrun-style
# launch (torchrun where it exists, else tools/launch-local).
launch_local=$PWD/tools/launch-local
launcher() {
  if [ "$1" = mpirun ]; then
    LAUNCH=("${mpirun[@]}" -np "$2")
  elif command -v torchrun >/dev/null; then
    LAUNCH=(torchrun --standalone --nproc-per-node "$2" --no-python)
  else
    LAUNCH=(python3 "$launch_local" "$2")
  fi
}

# Every step's loss of CSV $2 within $3 (relative) of CSV $1's.
compare_losses() {
  python3 - "$@" <<'PY'
import csv, sys
ref = {r["step"]: float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))}
ours = {r["step"]: float(r["loss"]) for r in csv.DictReader(open(sys.argv[2]))}
tol, label = float(sys.argv[3]), sys.argv[4]
if not ref or set(ref) != set(ours):
    sys.exit("%s: FAIL: the logs have different steps (%d vs %d)" % (label, len(ref), len(ours)))
worst = max(ref, key=lambda s: abs(ours[s] - ref[s]) / abs(ref[s]))
rel = abs(ours[worst] - ref[worst]) / abs(ref[worst])
print("%s: losses %s: largest difference %.2e relative at step %s (%.7f vs %.7f)"
      % (label, "PASS" if rel <= tol else "FAIL", rel, worst, ours[worst], ref[worst]))
sys.exit(0 if rel <= tol else 1)
PY
}

check() {
  local status=0 work="$dir/work" data=$PWD/README.md
  mkdir -p "$out" "$work"
  exec > >(tee "$out/multigpu-train.log") 2>&1
  local ngpu=${NGPU:-}
  if [ -z "$ngpu" ]; then
    if [ "$device" = cpu ]; then ngpu=4; else ngpu=$(nvidia-smi -L | wc -l); nvidia-smi -L; fi
  fi
  local dtypes="f32 bf16"
  [ "$device" = cpu ] && dtypes=f32
  echo "multigpu-train: $ngpu ranks, device $device, $steps steps; launchers: mpirun and" \
    "$(command -v torchrun >/dev/null && echo torchrun || echo tools/launch-local)"
  build_projects
  export ATP_COMM_TIMEOUT_S=${ATP_COMM_TIMEOUT_S:-30}
  local args=(--data "$data" --seq 64 --steps "$steps" --device "$device" --log loss.csv --log-every 5 --export hf)
  echo "== 1. equivalence over the (tp, dp, stage) grid"
  for dtype in $dtypes; do
    local tol=1e-5
    [ "$dtype" = bf16 ] && tol=2e-2
    local ref="$work/ref-$dtype"
    rm -rf "$ref" && mkdir -p "$ref"
    launcher mpirun 1
    (cd "$ref" && "${LAUNCH[@]}" "$(train_of tiny-llama-$dtype-tp1-z0)" "${args[@]}" >run.log 2>&1) ||
      { tail -5 "$ref/run.log"; echo "reference $dtype: FAIL"; status=1; continue; }
    for tp in $tps; do
      [ $((ngpu % tp)) -eq 0 ] || continue
      for stage in 0 1 2; do
        for how in mpirun torchrun; do
          local name="tiny-llama-$dtype-tp$tp-z$stage" run="$work/$dtype-tp$tp-z$stage-$how"
          local label="$dtype tp=$tp dp=$((ngpu / tp)) stage $stage ($how)"
          rm -rf "$run" && mkdir -p "$run"
          launcher "$how" "$ngpu"
          if (cd "$run" && "${LAUNCH[@]}" "$(train_of "$name")" "${args[@]}" >run.log 2>&1); then
            compare_losses "$ref/loss.csv" "$run/loss.csv" "$tol" "$label" || status=1
            python3 tools/compare_safetensors.py "$ref/hf/model.safetensors" "$run/hf/model.safetensors" \
              --tol "$tol" --label "$label: weights" || status=1
          else
            tail -5 "$run/run.log"; echo "$label: FAIL: the run failed"; status=1
          fi
        done
      done
    done
  done
  echo "== 2. a rank killed mid-run"
  local tp=2
  [ "$ngpu" -ge 2 ] || tp=1
  for how in mpirun torchrun; do
    local run="$work/killed-$how" label="kill rank 1 of $ngpu ($how)" bin
    bin=$(train_of tiny-llama-f32-tp$tp-z1)
    rm -rf "$run" && mkdir -p "$run"
    launcher "$how" "$ngpu"
    if (cd "$run" && python3 "$OLDPWD/test/Tools/Inputs/kill_rank.py" 1 k.csv 7 60 -- "${LAUNCH[@]}" "$bin" \
      --data "$data" --seq 64 --steps 100000 --save-every 2 --save-dir k --log k.csv --device "$device" >kill.log 2>&1); then
      grep -E "kill_rank:|error" "$run/kill.log" | head -6
      if (cd "$run" && "${LAUNCH[@]}" "$bin" --data "$data" --seq 64 --steps 12 --save-dir k --resume k --log r.csv \
        --device "$device" >resume.log 2>&1) && grep -q "resumed at step" "$run/resume.log"; then
        echo "$label: PASS: the job ended by itself within the limit; $(grep -o 'resumed at step [0-9]*' "$run/resume.log")"
      else
        tail -5 "$run/resume.log"; echo "$label: FAIL: the last checkpoint did not resume"; status=1
      fi
    else
      tail -8 "$run/kill.log"; echo "$label: FAIL"; status=1
    fi
  done
  if [ "$device" != cpu ]; then
    echo "== 3. collectives: our NCCL comm against NCCL called directly (test/gpu/comm_bench.cpp)"
    for tp in $tps; do
      [ "$tp" -gt 1 ] && [ $((ngpu % tp)) -eq 0 ] || continue
      "${mpirun[@]}" -np "$ngpu" "$dir/build/comm_bench" "$tp" 2>&1 | tee "$out/comm-bench-tp$tp.log" || status=1
    done
  fi
  if [ "$device" != cpu ] && [ "${SPEED:-1}" != 0 ]; then
    speed || status=1
  fi
  echo "multigpu-train: $([ $status = 0 ] && echo PASS || echo FAIL)"
  exit $status
}

# 4. The Llama-3.1-8B shape at SEQ8B tokens (default 8192), micro-batch 1, bf16, on every GPU: ours at each
# LAYOUTS entry TP:STAGE (default "8:1 4:1 4:2 2:2") and tools/bench_dist_torch.py (DTensor TP + FSDP2) at the
# same TP, in the same run: tokens/s per GPU, MFU, peak memory, and ours over theirs.
speed() {
  local seq=${SEQ8B:-8192} n=${SPEED_STEPS:-8} text="$dir/work/tokens-8b.bin" status=0
  echo "== 4. speed: Llama-3.1-8B shape, seq $seq, micro-batch 1, bf16, $ngpu GPUs"
  python3 - "$text" "$seq" "$ngpu" <<'PY'
import random, struct, sys
vocab, count = 128256, (int(sys.argv[2]) + 1) * int(sys.argv[3]) * 16
random.seed(0)
ids = [random.randrange(vocab) for _ in range(count)]
with open(sys.argv[1], "wb") as f:  # an autotpc token file (runtime/include/atp/token_file.h)
    f.write(b"ATPTOKEN" + struct.pack("<IIQII", 1, 4, count, max(ids) + 1, 0))
    f.write(struct.pack("<%dI" % count, *ids))
PY
  for layout in ${LAYOUTS:-8:1 4:1 4:2 2:2}; do
    local tp=${layout%:*} stage=${layout#*:} run="$dir/work/speed-tp${layout/:/-z}"
    [ $((ngpu % tp)) -eq 0 ] || continue
    rm -rf "$run" && mkdir -p "$run"
    (cd "$run" && "${mpirun[@]}" -np "$ngpu" "$dir/build/extra/llama8b-tp$tp-z$stage/train" --data "$text" --seq "$seq" \
      --steps "$n" --peak-tflops 989 --log ours.csv --device cuda >ours.log 2>&1) || { tail -5 "$run/ours.log"; status=1; }
    if python3 -c 'import torch' 2>/dev/null; then
      (cd "$run" && torchrun --standalone --nproc-per-node "$ngpu" "$OLDPWD/tools/bench_dist_torch.py" --tp "$tp" \
        --seq "$seq" --steps "$n" --json theirs.json >theirs.log 2>&1) || tail -5 "$run/theirs.log"
    fi
    python3 - "$run" "$ngpu" "TP $tp x DP $((ngpu / tp)) ZeRO-$stage" <<'PY'
import csv, json, os, statistics, sys
run, gpus, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ours = None
if os.path.exists(os.path.join(run, "ours.csv")):
    rows = list(csv.DictReader(open(os.path.join(run, "ours.csv"))))[2:]  # steps 1-2 warm up
    if rows:
        ours = {"tps": statistics.median(float(r["tokens_per_s"]) for r in rows) / gpus,
                "mfu": statistics.median(float(r["mfu"]) for r in rows),
                "mem": max(int(r["peak_mem_bytes"]) for r in rows)}
theirs = None
if os.path.exists(os.path.join(run, "theirs.json")):
    t = json.load(open(os.path.join(run, "theirs.json")))
    theirs = {"tps": t["tokens_per_s_per_gpu"], "mfu": t["mfu"], "mem": t["peak_mem_bytes"]}
def show(name, r):
    return "%s %s" % (name, "failed" if r is None else "%.0f tok/s/GPU, MFU %.1f%%, %.1f GiB"
                      % (r["tps"], 100 * r["mfu"], r["mem"] / 2**30))
ratio = " | ours / theirs %.2fx" % (ours["tps"] / theirs["tps"]) if ours and theirs else ""
print("%s: %s | %s%s" % (label, show("ours", ours), show("DTensor TP + FSDP2", theirs), ratio))
PY
  done
  return $status
}

case "$mode" in
prepare) prepare ;;
check) check ;;
*)
  sed -n '2,/^set -uo/p' "$0" | sed '$d'
  exit 2
  ;;
esac
