# cmake -DPATHS=<output>/autotpc-paths.cmake -P print-generator-prefix.cmake: the prefix as CMake reads it.
include("${PATHS}")
message("prefix=<${AUTOTPC_GENERATOR_PREFIX}>")
