#!/usr/bin/env bash
# build/bin/autotpc's output folder builds with plain cmake against the checkout's runtime/ (the build
# tree's lib/cmake/autotpc_runtime package, found through autotpc-paths.cmake); AUTOTPC_RUNTIME_DIR and
# CMAKE_PREFIX_PATH still choose another; with nothing to find, the error says what to set. The overrides
# are checked with stand-in runtimes (an INTERFACE target), configured only.
source "$(dirname "$0")/common.sh"
spec="$src/specs/tiny/llama.ds.json"

echo "== autotpc -o out && cmake -S out -B out/build && cmake --build out/build, nothing else"
"$build/bin/autotpc" "$spec" -o out > /dev/null
expect_text out/autotpc-paths.cmake "set(AUTOTPC_GENERATOR_PREFIX [[$build]])"
cmake -S out -B out/build > out/configure.log 2>&1 || { cat out/configure.log >&2; fail "configure out"; }
expect_text out/configure.log \
  "autotpc runtime: $src/runtime ($build/lib/cmake/autotpc_runtime/autotpc_runtimeConfig.cmake)"
build_and_shard out

echo "== AUTOTPC_RUNTIME_DIR wins over what find_package would find"
mkdir fake-runtime
cat > fake-runtime/CMakeLists.txt <<'CMAKE'
add_library(autotpc_runtime INTERFACE)
message(STATUS "the override's runtime")
CMAKE
cmake -S out -B override -DAUTOTPC_RUNTIME_DIR="$work/fake-runtime" > override.log 2>&1 ||
  { cat override.log >&2; fail "configure with the override"; }
expect_text override.log "the override's runtime"
expect_text override.log "autotpc runtime: $work/fake-runtime (AUTOTPC_RUNTIME_DIR)"
! grep -q "autotpc_runtimeConfig.cmake" override.log || fail "find_package ran despite the override"

echo "== CMAKE_PREFIX_PATH, set by the user, wins over autotpc-paths.cmake (find_package's order)"
mkdir -p other/lib/cmake/autotpc_runtime
cat > other/lib/cmake/autotpc_runtime/autotpc_runtimeConfig.cmake <<'CMAKE'
add_library(autotpc_runtime INTERFACE)
set(autotpc_runtime_SOURCE_DIR "the other package's runtime")
CMAKE
cmake -S out -B other-build -DCMAKE_PREFIX_PATH="$work/other" > other.log 2>&1 ||
  { cat other.log >&2; fail "configure with CMAKE_PREFIX_PATH"; }
expect_text other.log \
  "autotpc runtime: the other package's runtime ($work/other/lib/cmake/autotpc_runtime/autotpc_runtimeConfig.cmake)"

echo "== a wrong AUTOTPC_RUNTIME_DIR is an error that names it"
if cmake -S out -B wrong -DAUTOTPC_RUNTIME_DIR="$work/no-such" > wrong.log 2>&1; then fail "configured"; fi
expect_text wrong.log "AUTOTPC_RUNTIME_DIR is '$work/no-such', which has no CMakeLists.txt"

echo "== without autotpc-paths.cmake and nothing on the search paths: the error says what to set"
mkdir moved && cp out/CMakeLists.txt out/*.h out/*.cpp moved/
# No search path at all (PATH's bin/ folders would name prefixes too), so the tools are named.
cached() { sed -n "s/^$1:[A-Z]*=//p" out/build/CMakeCache.txt; }
isolated=(-DCMAKE_FIND_USE_SYSTEM_ENVIRONMENT_PATH=OFF -DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF
          -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_MAKE_PROGRAM="$(cached CMAKE_MAKE_PROGRAM)"
          -DCMAKE_C_COMPILER="$(cached CMAKE_C_COMPILER)" -DCMAKE_CXX_COMPILER="$(cached CMAKE_CXX_COMPILER)")
if cmake -S moved -B moved/build "${isolated[@]}" > lost.log 2>&1; then fail "configured"; fi
expect_text lost.log "autotpc's runtime was not found where the autotpc that generated this folder lives"
expect_text lost.log "(unknown: no autotpc-paths.cmake), in CMAKE_PREFIX_PATH or in the system prefixes"
expect_text lost.log "set -DAUTOTPC_RUNTIME_DIR=<autotpc checkout>/runtime, or"
expect_text lost.log "-DCMAKE_PREFIX_PATH=<prefix autotpc was installed to>"

echo "== the same folder with CMAKE_PREFIX_PATH naming the build tree"
rm -rf moved/build
cmake -S moved -B moved/build -DCMAKE_PREFIX_PATH="$build" > prefix.log 2>&1 ||
  { cat prefix.log >&2; fail "configure with CMAKE_PREFIX_PATH"; }
expect_text prefix.log "autotpc runtime: $src/runtime ($build/lib/cmake/autotpc_runtime/autotpc_runtimeConfig.cmake)"
echo "ok"
