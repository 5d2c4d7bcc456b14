#!/usr/bin/env bash
# cmake --install of autotpc gives a self-contained prefix (nothing in it names the checkout or the build
# tree) that works after a move: its autotpc's output folder builds with plain cmake against the installed
# runtime sources, found through find_package(autotpc_runtime), and shards like the build tree's tools.
source "$(dirname "$0")/common.sh"

echo "== cmake --install $build --prefix $work/staged, then moved to $work/prefix"
cmake --install "$build" --prefix staged > install.log
mv staged prefix
[ -x prefix/bin/autotpc ] || fail "no prefix/bin/autotpc"
config=$(find prefix -path '*/cmake/autotpc_runtime/autotpc_runtimeConfig.cmake')
[ -n "$config" ] || fail "no autotpc_runtimeConfig.cmake under prefix"
[ -f prefix/share/autotpc/runtime/CMakeLists.txt ] || fail "no runtime sources under prefix/share/autotpc"
[ -f prefix/share/autotpc/runtime/include/atp/checkpoint_tools.h ] || fail "no runtime headers under prefix"
if grep -rlF -e "$src" -e "$build" -e "$work/staged" prefix; then fail "the files above name a path outside the prefix"; fi

# Without the runtime's CUDA half: the install copies runtime/ whole, package_build_tree compiles that half from
# the same files, and what this test checks (the installed runtime found and built) does not depend on it.
echo "== prefix/bin/autotpc -o out && cmake -S out -B out/build && cmake --build out/build"
(cd / && "$work/prefix/bin/autotpc" "$src/specs/tiny/llama.ds.json" -o "$work/out" > /dev/null)
expect_text out/autotpc-paths.cmake "set(AUTOTPC_GENERATOR_PREFIX [[$work/prefix]])"
cmake -S out -B out/build -DAUTOTPC_ENABLE_CUDA=OFF > out/configure.log 2>&1 ||
  { cat out/configure.log >&2; fail "configure out"; }
expect_text out/configure.log "autotpc runtime: $work/prefix/share/autotpc/runtime ($work/$config)"
build_and_shard out
echo "ok"
