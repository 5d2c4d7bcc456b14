#!/usr/bin/env bash
# exp/s27.sh - session 27's experiment, on one GPU: cuDNN's deterministic attention backward split into causal
# diagonal blocks and unmasked blocks below them (ATP_CUDNN_SPLIT=1: halved once, 2: twice), against the whole
# sequence at once (0). Needs gpu-train/ (tools/gpu-train.sh prepare) and .deps (tools/stage-gpu-deps.sh):
#   run(command="bash exp/s27.sh", carry=["gpu-train", ".deps"])
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-exp-out}
mkdir -p "$out"
exec > >(tee "$out/s27.log") 2>&1
nvidia-smi -L
export PATH=/usr/local/cuda/bin:$PATH
b=build-gpu
t0=$(date +%s)
cmake -S test/gpu -B $b -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DAUTOTPC_NLOHMANN_INCLUDE_DIR="$(realpath .deps/nlohmann-include)" \
  -DAUTOTPC_GPU_EXTRA_PROJECTS="$(realpath gpu-train/projects)" >"$out/cmake.log" 2>&1 &&
  cmake --build $b -j"$(nproc)" --target kernels_cuda_test bench_llama_1b_train >>"$out/cmake.log" 2>&1 ||
  { tail -40 "$out/cmake.log"; echo "s27: FAIL: build"; exit 1; }
echo "s27: built in $(( $(date +%s) - t0 )) s"
text="$out/tokens.bin"
python3 - "$text" <<'PY'
import random, struct, sys
vocab, count = 128256, 4 * 2049 * 64
random.seed(0)
ids = [random.randrange(vocab) for _ in range(count)]
with open(sys.argv[1], "wb") as f:
    f.write(b"ATPTOKEN" + struct.pack("<IIQII", 1, 4, count, max(ids) + 1, 0))
    f.write(struct.pack("<%dI" % count, *ids))
PY
train="$PWD/$b/extra/bench-llama-1b/train"
n=${STEPS:-9}
for run in ${RUNS:-s0-1 s1-1 s2-1 s0-2 s1-2 s2-2}; do
  v=${run%-*} round=${run#*-}
  {
    d="$out/$v-$round"
    mkdir -p "$d"
    env=(ATP_CUDNN_SPLIT=${v#s})
    nvidia-smi --query-gpu=utilization.gpu,clocks.sm,power.draw --format=csv,noheader,nounits -lms 100 >"$d/smi.csv" &
    smi=$!
    (cd "$d" && env "${env[@]}" "$train" --data "$text" --seq 2048 --steps "$n" --peak-tflops 989 --log loss.csv \
      --device cuda --profile "$n" --peak-gbps 4800 >train.log 2>&1) || { echo "s27: $v-$round failed"; tail -5 "$d/train.log"; }
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
    python3 - "$d" "$v-$round" <<'PY'
import csv, hashlib, statistics, sys
d, name = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(d + "/loss.csv")))
tps = statistics.median(float(r["tokens_per_s"]) for r in rows[2:-1])
h = hashlib.sha256("".join(r["loss"] + r["grad_norm"] for r in rows).encode()).hexdigest()[:8]
busy = []
for r in csv.reader(open(d + "/smi.csv")):
    try:
        if float(r[0]) >= 50: busy.append((float(r[1]), float(r[2])))
    except (ValueError, IndexError): pass
clk = statistics.median(b[0] for b in busy) if busy else 0
pw = statistics.mean(b[1] for b in busy) if busy else 0
print("s27: %-8s %8.0f tokens/s  hash %s  loss@%s %s  SM clock median %.0f MHz, power mean %.0f W" % (name, tps, h, rows[-1]["step"], rows[-1]["loss"], clk, pw))
PY
  }
done
for v in 0; do  # the test sets ATP_CUDNN_SPLIT itself for its split cases
  t1=$(date +%s)
  ATP_CUDNN_SPLIT=$v timeout 150 $b/kernels_cuda_test >"$out/kct-$v.log" 2>&1
  echo "s27: kernels_cuda_test ($v): rc $? in $(( $(date +%s) - t1 )) s: $(tail -1 "$out/kct-$v.log")"
  grep -i "fail\|cuDNN has no" "$out/kct-$v.log" | head -10
done
if [ $(( $(date +%s) - t0 )) -gt ${TORCH_AFTER_S:-330} ]; then echo "s27: no time left for torch.compile"; else
echo "== torch.compile, same card, same call (tools/bench_torch.py --impl compile)"
nvidia-smi --query-gpu=utilization.gpu,clocks.sm,power.draw --format=csv,noheader,nounits -lms 100 >"$out/torch-smi.csv" &
smi=$!
timeout 200 python3 tools/bench_torch.py --impl compile --steps 10 --warmup 3 --json "$out/torch.json" 2>&1 | tail -5
kill $smi 2>/dev/null; wait $smi 2>/dev/null
fi
for v in s0 s1 s2; do
  echo "== profile of step $n, $v-1"
  grep -v "^step " "$out/$v-1/train.log" | head -80
done
