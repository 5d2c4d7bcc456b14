# gpu-build.sh - sourced by the scripts that run on the GPU machine (gpu-train.sh, gpu-ab.sh, multigpu-train.sh):
# test/gpu built there without LLVM, with a folder of generated projects.

# build_gpu_projects BUILD PROJECTS LOG TAG [TARGET...]: configures test/gpu in BUILD with every project under
# PROJECTS and builds every target, or only the given ones, logging to LOG; on failure prints the log's tail and
# "TAG: FAIL: build" and exits 1.
build_gpu_projects() {
  local build=$1 projects=$2 log=$3 tag=$4
  shift 4
  local targets=()
  [ $# = 0 ] || targets=(--target "$@")
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  cmake -S test/gpu -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a}" \
    -DAUTOTPC_NLOHMANN_INCLUDE_DIR="$(realpath -m .deps/nlohmann-include)" \
    -DAUTOTPC_GPU_EXTRA_PROJECTS="$(realpath -m "$projects")" >"$log" 2>&1 &&
    cmake --build "$build" -j"$(nproc)" "${targets[@]}" >>"$log" 2>&1 ||
    { tail -30 "$log"; echo "$tag: FAIL: build"; exit 1; }
}

# gpu_train_target PROJECT: the train target of the generated project in folder PROJECT (its CMake project's name,
# then _train); nothing if PROJECT holds no generated CMakeLists.txt.
gpu_train_target() {
  [ -f "$1/CMakeLists.txt" ] && sed -n 's/^project(\([A-Za-z0-9_]*\) .*/\1_train/p' "$1/CMakeLists.txt" | head -1
}
