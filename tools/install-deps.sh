#!/usr/bin/env bash
# Installs what autotpc needs to build and test on Debian 12 (as root, or
# with sudo), skipping packages that are already there.
set -euo pipefail
packages=(
  cmake make g++ pkg-config python3
  llvm-14-dev llvm-14-tools          # LLVM Support; lit, FileCheck, not, split-file
  clang-14 libclang-rt-14-dev        # libFuzzer and the sanitizer runtimes
  nlohmann-json3-dev libre2-dev
  libopenmpi-dev openmpi-bin         # the MPI backend and multi-rank tests
  libgtest-dev libbenchmark-dev
  libopenblas-dev                    # the CPU kernels' GEMMs (runtime/kernels.cmake)
  fortunes-min                       # real text for the tokenizer's tests (/usr/share/games/fortunes)
  fortunes                           # more of it: what tools/run-example.sh trains the tiny Llama on
  gnuplot-nox                        # tools/run-example.sh plots the loss curve as a PNG
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
