#!/usr/bin/env bash
# train on CUDA: HF parity of the oracle and training trajectories against the CPU, on the GPU machine.
#   bash tools/gpu-train.sh prepare [DIR] [BUILD]   # here (autotpc needs LLVM): DIR (default gpu-train)
#       projects/   generated projects: the tiny llama/qwen2/phi3/mistral of specs/tiny at TP 1, 2 and 4 (the
#                   configs tools/hf_parity.py builds its models from), and tiny-llama-bf16 (specs/train's
#                   tiny Llama with bf16 on, TP 1)
#       data/fortunes.bin, cpu/loss.csv   the training data and the fp32 CPU trajectory to compare with:
#                   BUILD's golden tiny-llama-train (TP 2, ZeRO-1) under mpirun -np 2, STEPS steps; cpu/init: its
#                   seeded init as an HF checkpoint (tools/bf16_drift.py starts transformers from it)
#   run(command="bash tools/gpu-train.sh check", carry=["gpu-train", ".deps"])   # there (tools/stage-gpu-deps.sh first)
#       builds test/gpu with the projects (tools/gpu-check.sh's build), then
#       1. transformers (tools/hf_parity.py) writes the random-init models, token rows and its fp32 loss and
#          gradients; our oracle on CUDA reads the same models: fp32 at TP 1 (NCCL), TP 2 and TP 4 (2 and 4
#          ranks on one GPU: staged MPI) within 1e-4, bf16 at TP 1 and TP 2 within 2e-2 (compare_safetensors.py: each
#          gradient's largest difference over its largest element);
#       2. training: the golden tiny-llama-train on CUDA in fp32 at TP 2 (2 ranks on one GPU) and
#          tiny-llama-bf16 at TP 1, STEPS steps on the same data and seed: every step's loss within 2 % of the
#          CPU trajectory's (bf16: or within 1.25 x the largest drift transformers' own bf16 shows from its
#          fp32 on the same init and schedule, tools/bf16_drift.py; see the comment in check()).
#       Logs and the CSVs go to $OUT when set (the device tool fetches them), else DIR/out.
#   run(command="bash tools/gpu-train.sh bench", carry=["gpu-train", ".deps"])   # there: the speed benchmark
#       our train on the Llama-3.2-1B shape (specs/bench), seq 2048, micro-batch 4, one GPU, bf16 and fp32:
#       the median tokens/s and MFU (989 TFLOP/s) of steps 3..BENCH_STEPS, the device memory in use, and the
#       card's SM clock, power and power-cap samples during each run (with_power_log).
#   TORCH_BASELINES=0  bench: ours only (no tools/bench_torch.py); BENCH_F32=0: not our fp32 run either;
#   BENCH_TORCH  the baselines run (default all; e.g. "compile": torch.compile alone, the ratio that matters)
#   STEPS  training steps (default 200); FAMILIES (default "llama qwen2 phi3 mistral"); BENCH_STEPS (default 10);
#   BENCH_PEAK_GBPS  the profile's memory bandwidth where the card is not an H200 or H100 SXM
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/lib/gpu-build.sh
mode=${1:-}
dir=$(realpath -m "${2:-gpu-train}")
build=${3:-build}
steps=${STEPS:-200}
families=${FAMILIES:-llama qwen2 phi3 mistral}
mpirun=(mpirun --allow-run-as-root --oversubscribe)

prepare() {
  set -e
  local autotpc="$build/bin/autotpc" cpu_train="$PWD/$build/generated/tiny-llama-train/train"
  [ -x "$autotpc" ] && [ -x "$cpu_train" ] || { echo "gpu-train: build autotpc and the goldens' train first ($build)"; exit 2; }
  rm -rf "$dir" && mkdir -p "$dir/projects" "$dir/models" "$dir/data" "$dir/cpu"
  for family in $families; do
    # The model folder holds the config hf_parity.py builds its model from (mistral: a window of 8).
    mkdir -p "$dir/models/$family"
    python3 - "specs/tiny/$family.json" "$dir/models/$family/config.json" "$family" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
if sys.argv[3] == "mistral":
    c["sliding_window"] = 8
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
    for tp in 1 2 4; do
      cfg="$dir/models/parity-$family-tp$tp.json"
      # the family preset; phi3 states its [q, kv, kv] split (parity_config.py)
      python3 tools/parity_config.py "$dir/models/$family" "$tp" "$family" "$cfg"
      "$autotpc" "$cfg" -o "$dir/projects/parity-$family-tp$tp" >/dev/null
    done
  done
  # The bf16 tiny Llama: specs/train/tiny-llama.ds.json at TP 1 with bf16 on.
  python3 - specs/train/tiny-llama.ds.json "$dir/models/tiny-llama-bf16.json" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["model"] = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), c["model"])
c["tensor_parallel"]["autotp_size"] = 1
c["bf16"] = {"enabled": True}
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
  "$autotpc" "$dir/models/tiny-llama-bf16.json" -o "$dir/projects/tiny-llama-bf16" >/dev/null
  # The speed benchmark's Llama-3.2-1B shape (specs/bench), bf16 and an fp32 copy.
  "$autotpc" specs/bench/llama-3.2-1b.ds.json -o "$dir/projects/bench-llama-1b" >/dev/null
  python3 - specs/bench/llama-3.2-1b.ds.json "$dir/models/bench-llama-1b-f32.json" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["model"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), c["model"]))
c["bf16"] = {"enabled": False}
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
  "$autotpc" "$dir/models/bench-llama-1b-f32.json" -o "$dir/projects/bench-llama-1b-f32" >/dev/null
  mapfile -t texts < <(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
  "$build/bin/autotpc-tokenize" --in "${texts[@]}" --out "$dir/data/fortunes.bin" --no-eot --doc-sep % >/dev/null
  (cd "$dir/cpu" && "${mpirun[@]}" -np 2 "$cpu_train" --data ../data/fortunes.bin --seq 256 --steps "$steps" \
    --log loss.csv --log-every 50 --device cpu &&
    "${mpirun[@]}" -np 2 "$cpu_train" --data ../data/fortunes.bin --seq 256 --steps 0 --log '' --export init >/dev/null)
  echo "gpu-train: prepared $dir ($(du -sh "$dir" | cut -f1)); carry it with .deps to the GPU machine"
}

# Every step's loss of CSV $2 within $3 (relative) of CSV $1's; prints the largest difference.
compare_losses() {
  python3 - "$@" <<'PY'
import csv, sys
ref = {r["step"]: float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))}
ours = {r["step"]: float(r["loss"]) for r in csv.DictReader(open(sys.argv[2]))}
tol, label = float(sys.argv[3]), sys.argv[4]
if set(ref) != set(ours):
    sys.exit("%s: FAIL: the logs have different steps (%d vs %d)" % (label, len(ref), len(ours)))
worst = max(ref, key=lambda s: abs(ours[s] - ref[s]) / abs(ref[s]))
rel = abs(ours[worst] - ref[worst]) / abs(ref[worst])
last = max(ref, key=int)
tail = sorted(ref, key=int)[-20:]
mo, mr = sum(ours[s] for s in tail) / len(tail), sum(ref[s] for s in tail) / len(tail)
print("%s: %s: largest loss difference %.3e relative at step %s (%.6f vs %.6f); last step %s: %.6f vs %.6f; "
      "mean of the last 20 steps %.4f vs %.4f (%+.2f%%)"
      % (label, "PASS" if rel <= tol else "FAIL", rel, worst, ours[worst], ref[worst], last, ours[last], ref[last],
         mo, mr, 100 * (mo - mr) / mr))
sys.exit(0 if rel <= tol else 1)
PY
}

check() {
  local status=0 work="$dir/work"
  mkdir -p "$out" "$work"
  exec > >(tee "$out/gpu-train.log") 2>&1
  nvidia-smi -L
  build_gpu
  echo "== 1. oracle on CUDA vs transformers (fp32 reference)"
  python3 tools/hf_parity.py "$dir/parity" || { echo "gpu-train: FAIL: hf_parity.py"; exit 1; }
  for family in $families; do
    for run in "1 f32 1e-4" "2 f32 1e-4" "4 f32 1e-4" "1 bf16 2e-2" "2 bf16 2e-2"; do
      set -- $run
      local tp=$1 dtype=$2 tol=$3 res="$work/$family-tp$1-$2.safetensors" log="$work/$family-tp$1-$2.log"
      if "${mpirun[@]}" -np "$tp" "$gpu_build/extra/parity-$family-tp$tp/train" --loss-and-grads "$dir/parity/$family/rows.bin" \
        --rows 4 --init-from "$dir/parity/$family" --device cuda --dtype "$dtype" --out "$res" >"$log" 2>&1; then
        python3 tools/compare_safetensors.py "$dir/parity/$family.reference.safetensors" "$res" --tol "$tol" \
          --label "$family tp=$tp $dtype cuda" || status=1
      else
        tail -5 "$log"; echo "$family tp=$tp $dtype: FAIL: the oracle failed"; status=1
      fi
    done
  done
  echo "== 1b. bf16 gradients: ours and transformers' own bf16, each against transformers' fp32 (per tensor)"
  for family in $families; do
    python3 - "$dir/parity/$family.reference.safetensors" "$dir/parity/$family.transformers-bf16.safetensors" \
      "$work/$family-tp1-bf16.safetensors" "$family" <<'PY'
import sys
sys.path.insert(0, "tools")
from compare_safetensors import load
ref, theirs, ours = (load(p) for p in sys.argv[1:4])
def err(a, b):
    scale = max(abs(x) for x in b) or 1e-30
    return max(abs(x - y) for x, y in zip(a, b)) / scale
worse = []
for name in sorted(ref):
    if name == "loss":
        continue
    e_ours, e_theirs = err(ours[name], ref[name]), err(theirs[name], ref[name])
    worse.append((e_ours / max(e_theirs, 1e-30), name, e_ours, e_theirs))
worse.sort(reverse=True)
print("%s bf16: largest gradient error ours %.3g, transformers %.3g; loss ours %.6f transformers %.6f fp32 %.6f"
      % (sys.argv[4], max(w[2] for w in worse), max(w[3] for w in worse), ours["loss"][0], theirs["loss"][0], ref["loss"][0]))
for ratio, name, eo, et in worse[:4]:
    print("    %-55s ours %.3g  transformers %.3g  (x%.2f)" % (name, eo, et, ratio))
PY
  done
  echo "== 2. training on CUDA vs the fp32 CPU trajectory ($steps steps)"
  local data="$dir/data/fortunes.bin" bf16_tol=0.02
  # bf16 rounding perturbs the trajectory by ~1e-3 a step and training amplifies that like a change of seed
  # (fp32 runs of other init seeds end 1.4-3.8 % apart here), so a fixed 2 % per step is more than even
  # transformers' bf16 meets. The yardstick: transformers' own bf16-vs-fp32 drift on the same init and
  # schedule (tools/bf16_drift.py); ours must stay within 2 %, or within 1.25 x transformers' largest.
  if python3 -c 'import torch, transformers' 2>/dev/null; then
    echo "-- transformers' own bf16 drift (same model, init, data and schedule): tools/bf16_drift.py"
    python3 tools/bf16_drift.py --data "$data" --steps "$steps" --init-from "$dir/cpu/init" --json "$work/drift.json" &&
      bf16_tol=$(python3 -c "import json; d = json.load(open('$work/drift.json')); print(max(0.02, 1.25 * d['bf16-master']))")
  fi
  mkdir -p "$work/f32-tp2" "$work/bf16-tp1"
  (cd "$work/f32-tp2" && "${mpirun[@]}" -np 2 "$OLDPWD/$gpu_build/generated/tiny-llama-train/train" --data "$data" \
    --seq 256 --steps "$steps" --log loss.csv --log-every 50 --device cuda) && \
    compare_losses "$dir/cpu/loss.csv" "$work/f32-tp2/loss.csv" 0.02 "train fp32 cuda tp=2 (2 ranks, 1 GPU)" || status=1
  (cd "$work/bf16-tp1" && "${mpirun[@]}" -np 1 "$OLDPWD/$gpu_build/extra/tiny-llama-bf16/train" --data "$data" \
    --seq 256 --steps "$steps" --log loss.csv --log-every 50 --device cuda) && \
    compare_losses "$dir/cpu/loss.csv" "$work/bf16-tp1/loss.csv" "$bf16_tol" "train bf16 cuda tp=1 (tolerance $bf16_tol)" || status=1
  cp "$dir/cpu/loss.csv" "$out/cpu-loss.csv"
  cp "$work/f32-tp2/loss.csv" "$out/f32-tp2-loss.csv" 2>/dev/null
  cp "$work/bf16-tp1/loss.csv" "$out/bf16-tp1-loss.csv" 2>/dev/null
  echo "gpu-train: $([ $status = 0 ] && echo PASS || echo FAIL)"
  exit $status
}

# Builds test/gpu with DIR's projects (the check's and the benchmark's build): every target, or only the given ones.
build_gpu() { build_gpu_projects "$gpu_build" "$dir/projects" "$out/cmake.log" gpu-train "$@"; }

# The card's clocks and power while COMMAND runs, sampled by nvidia-smi every 100 ms into $1 (CSV), then summed up
# over the busy samples (utilization >= 50 %): under a sustained load the card may hold its power limit by lowering
# the SM clock, and the same kernels then run slower than alone (stop 22, one H100 at 700 W: the power-cap reason
# was active in 78-100 % of the busy samples of each of 12 training runs, ours and torch.compile's). Runs COMMAND
# alone where nvidia-smi cannot log; its exit status is COMMAND's.
with_power_log() {
  local csv=$1 logger=""
  shift
  if nvidia-smi --query-gpu=clocks_event_reasons.active --format=csv,noheader >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,clocks.sm,power.draw,power.limit,clocks_event_reasons.active \
      --format=csv,noheader,nounits -lms 100 >"$csv" 2>/dev/null &
    logger=$!
  fi
  "$@"
  local rc=$?
  [ -n "$logger" ] || return $rc
  kill "$logger" 2>/dev/null
  wait "$logger" 2>/dev/null
  [ -s "$csv" ] || return $rc
  python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = []
for r in csv.reader(open(sys.argv[1])):
    try:
        rows.append((float(r[1]), float(r[2]), float(r[3]), float(r[4]), int(r[5].strip(), 16)))
    except (IndexError, ValueError):
        pass  # a partial last line
busy = [r for r in rows if r[0] >= 50]
if busy:
    capped = sum(1 for r in busy if r[4] & 0x4)  # SW power cap
    slowed = sum(1 for r in busy if r[4] & (0x8 | 0x20 | 0x40))  # HW slowdown, SW / HW thermal
    print("  card while busy (%d samples of 100 ms): SM clock median %.0f MHz (%.0f-%.0f), power mean %.0f W of %.0f; "
          "power cap %d%%, thermal or HW slowdown %d%% of samples"
          % (len(busy), statistics.median(r[1] for r in busy), min(r[1] for r in busy), max(r[1] for r in busy),
             statistics.mean(r[2] for r in busy), busy[0][3], round(100 * capped / len(busy)),
             round(100 * slowed / len(busy))))
PY
  return $rc
}

bench() {
  # Our train (bf16, fp32), then, where python3 has torch, the PyTorch baselines of the same shape on the same card
  # (tools/bench_torch.py: eager, torch.compile, transformers) and ours bf16 over each as a ratio.
  mkdir -p "$out"
  exec > >(tee "$out/gpu-bench.log") 2>&1
  nvidia-smi -L
  local text="$out/bench-tokens.bin" n=${BENCH_STEPS:-10}
  local wanted=(bench-llama-1b) projects=() targets=() project target
  [ "${BENCH_F32:-1}" = 0 ] || wanted+=(bench-llama-1b-f32)
  for project in "${wanted[@]}"; do
    target=$(gpu_train_target "$dir/projects/$project")
    if [ -z "$target" ]; then
      echo "gpu-train: $project failed: no generated project in $dir/projects/$project (gpu-train.sh prepare)"
      continue
    fi
    projects+=("$project")
    targets+=("$target")
  done
  [ ${#targets[@]} -gt 0 ] || exit 1
  build_gpu "${targets[@]}" # only the trainers: the whole of test/gpu takes minutes of device time
  python3 tools/bench_tokens.py "$text" # uniform random ids over the vocabulary, as the baselines get
  # The memory bandwidth the profile's table measures kernels against: H200 HBM3e 4.8 TB/s, H100 SXM HBM3
  # 3.35 TB/s, else BENCH_PEAK_GBPS (or no bandwidth column).
  local card peak_gbps=${BENCH_PEAK_GBPS:-}
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  if [ -z "$peak_gbps" ]; then
    case $card in
    *H200*) peak_gbps=4800 ;;
    *"H100 80GB HBM3"*) peak_gbps=3350 ;;
    esac
  fi
  for project in "${projects[@]}"; do
    mkdir -p "$out/$project"
    # bf16: the last step is profiled (train --profile: every kernel synchronized) and left out of the median.
    local profile=()
    [ "$project" = bench-llama-1b ] && profile=(--profile "$n")
    [ "$project" = bench-llama-1b ] && [ -n "$peak_gbps" ] && profile+=(--peak-gbps "$peak_gbps")
    (cd "$out/$project" && with_power_log "$out/$project/power.csv" "$OLDPWD/$gpu_build/extra/$project/train" \
      --data "$text" --seq 2048 --steps "$n" --peak-tflops 989 --log loss.csv --device cuda "${profile[@]}") ||
      { echo "gpu-train: $project failed"; continue; }
    python3 - "$out/$project/loss.csv" "$project" "$out/$project/summary.json" "${#profile[@]}" <<'PY'
import csv, json, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[2:]  # steps 1-2 warm up (allocation, cuBLASLt plans)
if int(sys.argv[4]) and len(rows) > 1:
    rows = rows[:-1]  # the profiled step
tps = statistics.median(float(r["tokens_per_s"]) for r in rows)
mfu = statistics.median(float(r["mfu"]) for r in rows)
mem = max(int(r["peak_mem_bytes"]) for r in rows)
print("%s: %.0f tokens/s (median of steps 3..%d), MFU %.2f%%, device memory in use %.1f GiB"
      % (sys.argv[2], tps, len(rows) + 2, 100 * mfu, mem / 2**30))
json.dump({"tokens_per_s": tps, "mfu": mfu, "peak_mem_bytes": mem}, open(sys.argv[3], "w"))
PY
  done
  if [ "${TORCH_BASELINES:-1}" = 0 ]; then
    echo "gpu-train: TORCH_BASELINES=0: no PyTorch baselines"
    return
  fi
  if ! python3 -c 'import torch' 2>/dev/null; then
    echo "gpu-train: python3 has no torch here: no PyTorch baselines"
    return
  fi
  echo "== PyTorch baselines (tools/bench_torch.py)"
  local impls=() impl
  for impl in ${BENCH_TORCH:-all}; do
    impls+=(--impl "$impl")
  done
  with_power_log "$out/torch-power.csv" \
    python3 tools/bench_torch.py "${impls[@]}" --steps 15 --parity --json "$out/torch.json" ||
    echo "gpu-train: bench_torch.py reported a failure (the table has what it measured)"
  python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def ours(project):
    path = os.path.join(out, project, "summary.json")
    return json.load(open(path)) if os.path.exists(path) else None
rows = [("ours bf16", ours("bench-llama-1b"))]
if os.path.isdir(os.path.join(out, "bench-llama-1b-f32")):  # left out with BENCH_F32=0
    rows.append(("ours fp32", ours("bench-llama-1b-f32")))
names = {"eager": "PyTorch eager", "compile": "torch.compile", "hf": "HF transformers eager"}
path = os.path.join(out, "torch.json")
for rec in json.load(open(path)) if os.path.exists(path) else []:
    rows.append((names.get(rec["impl"], rec["impl"]), None if "error" in rec else rec))
ref = rows[0][1]
# Memory: ours is cudaMemGetInfo's in use (CUDA context and caches too), torch's max_memory_allocated.
print("%-22s %10s %7s %9s   %s" % ("", "tokens/s", "MFU", "mem GiB", "ours bf16 / this"))
for name, r in rows:
    if r is None:
        print("%-22s %10s" % (name, "failed"))
        continue
    ratio = "%.2fx" % (ref["tokens_per_s"] / r["tokens_per_s"]) if ref else "-"
    print("%-22s %10.0f %6.1f%% %9.1f   %s" % (name, r["tokens_per_s"], 100 * r["mfu"], r["peak_mem_bytes"] / 2**30, ratio))
PY
}

out=${OUT:-$dir/out}
gpu_build=${BUILD:-build-gpu}
case "$mode" in
  prepare) prepare ;;
  check) check ;;
  bench) bench ;;
  *) echo "usage: $0 prepare|check|bench [DIR] [BUILD]" >&2; exit 2 ;;
esac
