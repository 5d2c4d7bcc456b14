#!/usr/bin/env bash
# The main job, on the CPU (no GPU, no download): install what is missing, build, then
#   1. compile the tiny Llama of specs/train/tiny-llama.ds.json (TP 2, ZeRO-1, AdamW, warmup-cosine
#      schedule, fp32) into a C++ project and build its `train` against runtime/;
#   2. turn Debian's fortunes into a token file (byte-level tokenizer);
#   3. train it for 300 steps under `mpirun -np 2` (two TP ranks), with progress lines, held-out evaluation
#      every 50 steps, checkpoints every 100, a CSV log, and an HF export at the end;
#   4. plot the loss curve with gnuplot (build/example/loss.png) and print a sample from the export.
# Everything lands in build/example/. Arguments go to `train` (e.g. --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target autotpc autotpc-tokenize
spec=specs/train/tiny-llama.ds.json
out=build/example
rm -rf "$out" && mkdir -p "$out"
mpirun=(mpirun -np 2)
[ "$(id -u)" -ne 0 ] || mpirun+=(--allow-run-as-root)
mpirun+=(--oversubscribe)

echo "== autotpc --check $spec"
build/bin/autotpc --check "$spec"
echo "== autotpc $spec -o $out/gen, then cmake --build (the generated project finds runtime/ by itself)"
build/bin/autotpc "$spec" -o "$out/gen"
cmake -S "$out/gen" -B "$out/gen/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/gen/build" -j"$(nproc)" >/dev/null

echo "== autotpc-tokenize: the fortunes in /usr/share/games/fortunes -> $out/fortunes.bin"
mapfile -t texts < <(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
build/bin/autotpc-tokenize --in "${texts[@]}" --out "$out/fortunes.bin" --no-eot --doc-sep %

echo "== ${mpirun[*]} train: 300 steps of 8 rows x 256 tokens"
cd "$out"
"${mpirun[@]}" gen/build/train --data fortunes.bin --seq 256 --steps 300 --eval-every 50 --save-every 100 \
  --log-every 10 --log loss.csv --export hf "$@"

gnuplot <<'PLOT'
set terminal pngcairo size 900,500
set output 'loss.png'
set datafile separator ','
set key autotitle columnhead
set xlabel 'step'
set ylabel 'cross-entropy (nats / byte)'
set title 'tiny Llama (361k parameters), TP 2, fp32 CPU, on Debian fortunes'
plot 'loss.csv' using 1:2 with lines title 'training loss', \
     '' using 1:($3 > 0 ? $3 : 1/0) with linespoints pointtype 7 title 'held-out loss'
PLOT
echo "== loss curve: $out/loss.png"

echo "== train --generate from the HF export ($out/hf), top-k 8"
"${mpirun[@]}" gen/build/train --generate "Q: What is the meaning of life?" --init-from hf --seq 256 \
  --max-new-tokens 200 --top-k 8 --temperature 0.8 --seed 1
echo "== done in $((SECONDS - start)) s (outputs in $out: loss.csv, loss.png, checkpoints/, hf/)"
