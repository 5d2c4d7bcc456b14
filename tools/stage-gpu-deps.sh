#!/usr/bin/env bash
# Copies what the runtime needs from this (dev) machine's packages into the checkout, for a machine that
# lacks them: today the header-only nlohmann/json, into .deps/nlohmann-include/nlohmann (gitignored).
# runtime/CMakeLists.txt looks there when find_package(nlohmann_json) finds nothing, and tools/gpu-check.sh
# and tools/multigpu-check.sh pass it as -DAUTOTPC_NLOHMANN_INCLUDE_DIR. Run it here before a device call,
# and carry the folder (the device tool's `carry` takes ignored paths):
#   tools/stage-gpu-deps.sh        then   run(command="tools/gpu-check.sh", carry=[".deps"])
#   NLOHMANN_SRC  the folder holding nlohmann/json.hpp to copy, default /usr/include
set -euo pipefail
cd "$(dirname "$0")/.."
src=${NLOHMANN_SRC:-/usr/include}
if [ ! -f "$src/nlohmann/json.hpp" ]; then
  echo "stage-gpu-deps: $src/nlohmann/json.hpp not found (apt-get install nlohmann-json3-dev, or set NLOHMANN_SRC)" >&2
  exit 1
fi
rm -rf .deps/nlohmann-include
mkdir -p .deps/nlohmann-include
cp -r "$src/nlohmann" .deps/nlohmann-include/
echo "stage-gpu-deps: .deps/nlohmann-include/nlohmann ($(du -sh .deps/nlohmann-include | cut -f1))"
