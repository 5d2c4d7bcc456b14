#!/usr/bin/env bash
# gpu-ab.sh - A/B of runtime settings side by side in one device call: the speed benchmark's trainer (the
# Llama-3.2-1B shape, seq 2048, micro-batch 4, bf16, one GPU) run once per variant and round, alternating, each
# variant an environment assignment (or "-" for none), with kernels_cuda_test first. For each run: the median
# tokens/s of steps 3..STEPS-1 (the last step is profiled: train --profile, every kernel synchronized), a hash of
# the losses and grad norms (equal hashes: the same bits), and the SM clock and power nvidia-smi saw while busy.
# Needs gpu-train/projects/bench-llama-1b (tools/gpu-train.sh prepare, or autotpc specs/bench/llama-3.2-1b.ds.json
# -o gpu-train/projects/bench-llama-1b) and .deps (tools/stage-gpu-deps.sh):
#   run(command="VARIANTS='- ATP_ATTENTION=flash' bash tools/gpu-ab.sh", carry=["gpu-train", ".deps"])
#   VARIANTS (default "-"), ROUNDS (2), STEPS (10), PEAK_GBPS (4800: H200; 3350 on an H100 SXM),
#   KERNEL_TESTS=0: skip kernels_cuda_test. Logs and each run's loss.csv and profile go to $OUT (else gpu-ab-out).
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/lib/gpu-build.sh
out=${OUT:-gpu-ab-out}
mkdir -p "$out"
exec > >(tee "$out/gpu-ab.log") 2>&1
nvidia-smi -L
target=$(gpu_train_target gpu-train/projects/bench-llama-1b)
[ -n "$target" ] || { echo "gpu-ab: no generated project in gpu-train/projects/bench-llama-1b (see the top)"; exit 2; }
b=build-gpu
t0=$(date +%s)
build_gpu_projects $b gpu-train/projects "$out/cmake.log" gpu-ab kernels_cuda_test "$target"
echo "gpu-ab: built in $(( $(date +%s) - t0 )) s"
if [ "${KERNEL_TESTS:-1}" != 0 ]; then
  t1=$(date +%s)
  timeout 300 $b/kernels_cuda_test >"$out/kernels_cuda_test.log" 2>&1
  echo "gpu-ab: kernels_cuda_test: rc $? in $(( $(date +%s) - t1 )) s: $(tail -1 "$out/kernels_cuda_test.log")"
  grep -i "fail" "$out/kernels_cuda_test.log" | head -20
fi
text="$out/tokens.bin"
python3 tools/bench_tokens.py "$text" # the data tools/gpu-train.sh bench trains on
train="$PWD/$b/extra/bench-llama-1b/train"
n=${STEPS:-10}
read -r -a variants <<<"${VARIANTS:--}"
for round in $(seq 1 "${ROUNDS:-2}"); do
  for i in "${!variants[@]}"; do
    v=${variants[$i]}
    d="$out/v$i-r$round"
    mkdir -p "$d"
    env=()
    [ "$v" = - ] || env=("$v")
    nvidia-smi --query-gpu=utilization.gpu,clocks.sm,power.draw --format=csv,noheader,nounits -lms 100 >"$d/smi.csv" &
    smi=$!
    (cd "$d" && env "${env[@]}" "$train" --data "$text" --seq 2048 --steps "$n" --peak-tflops 989 --log loss.csv \
      --device cuda --profile "$n" --peak-gbps "${PEAK_GBPS:-4800}" >train.log 2>&1) ||
      { echo "gpu-ab: $v (round $round) failed"; tail -5 "$d/train.log"; }
    kill $smi 2>/dev/null
    wait $smi 2>/dev/null
    python3 - "$d" "$v" "$round" <<'PY'
import csv, hashlib, os, statistics, sys
d, name, rnd = sys.argv[1:4]
rows = list(csv.DictReader(open(d + "/loss.csv"))) if os.path.exists(d + "/loss.csv") else []
if not rows:
    sys.exit(0)
tps = statistics.median(float(r["tokens_per_s"]) for r in rows[2:-1]) if len(rows) > 3 else 0
h = hashlib.sha256("".join(r["loss"] + r["grad_norm"] for r in rows).encode()).hexdigest()[:8]
busy = []
for r in csv.reader(open(d + "/smi.csv")):
    try:
        if float(r[0]) >= 50:
            busy.append((float(r[1]), float(r[2])))
    except (ValueError, IndexError):
        pass
clock = statistics.median(b[0] for b in busy) if busy else 0
power = statistics.mean(b[1] for b in busy) if busy else 0
print("gpu-ab: %-28s round %s: %8.0f tokens/s  hash %s  last loss %s  SM clock median %.0f MHz, power mean %.0f W"
      % (name, rnd, tps, h, rows[-1]["loss"], clock, power))
PY
  done
done
echo "gpu-ab: each run's profile of step $n is in $out/v*-r*/train.log"
