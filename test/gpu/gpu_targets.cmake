# The GPU tests and benchmarks. Included by test/gpu/CMakeLists.txt, the standalone project that
# tools/gpu-check.sh builds and runs on the GPU machine (no LLVM there), and by the main build
# (test/CMakeLists.txt), which compiles them against every generated plan without running them.
#
#   atp_gpu_test(name src... [LIBS lib...] [DEFINES def...])
#       an executable that checks something on the GPU and exits non-zero on failure; registered under
#       ctest with the label 'gpu' when ATP_GPU_REGISTER_TESTS is on (the standalone project).
#   atp_gpu_bench(name src... [LIBS lib...] [DEFINES def...])
#       an executable that prints a table; gpu-check.sh runs every one after the tests.
#
# Sources are relative to this folder. Both link autotpc_runtime and atp_gpu_check (gpu_check.h: device
# fills and comparisons; shard_cuda_check.h). The includer sets ATP_GPU_PLAN_TARGETS, the generated
# <prefix>_plan libraries: shard_cuda_test_<prefix> and shard_cuda_bench_<prefix> are built for each.
set(ATP_GPU_DIR "${CMAKE_CURRENT_LIST_DIR}")

add_library(atp_gpu_check STATIC ${ATP_GPU_DIR}/gpu_check.cu ${ATP_GPU_DIR}/shard_cuda_check.cpp)
target_include_directories(atp_gpu_check PUBLIC ${ATP_GPU_DIR})
target_link_libraries(atp_gpu_check PUBLIC autotpc_runtime)
atp_cuda_options(atp_gpu_check)

function(atp_gpu_executable name)
  cmake_parse_arguments(ARG "" "" "LIBS;DEFINES" ${ARGN})
  set(sources "")
  foreach(src IN LISTS ARG_UNPARSED_ARGUMENTS)
    if(NOT IS_ABSOLUTE "${src}")
      set(src "${ATP_GPU_DIR}/${src}")
    endif()
    list(APPEND sources "${src}")
  endforeach()
  add_executable(${name} ${sources})
  target_link_libraries(${name} PRIVATE atp_gpu_check ${ARG_LIBS})
  target_compile_definitions(${name} PRIVATE ${ARG_DEFINES})
  atp_cuda_options(${name})
endfunction()

function(atp_gpu_test name)
  atp_gpu_executable(${name} ${ARGN})
  if(ATP_GPU_REGISTER_TESTS)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS gpu TIMEOUT 900)
  endif()
endfunction()

function(atp_gpu_bench name)
  atp_gpu_executable(${name} ${ARGN})
  set_property(GLOBAL APPEND PROPERTY ATP_GPU_BENCHES ${name})
endfunction()

# ---- shard/gather copies (runtime/include/atp/shard_cuda.h)
foreach(plan IN LISTS ATP_GPU_PLAN_TARGETS)
  string(REGEX REPLACE "_plan$" "" prefix "${plan}")
  atp_gpu_test(shard_cuda_test_${prefix} shard_cuda_test.cpp LIBS ${plan} DEFINES ATP_PLAN_NAME="${prefix}")
  atp_gpu_bench(shard_cuda_bench_${prefix} shard_cuda_bench.cpp LIBS ${plan} DEFINES ATP_PLAN_NAME="${prefix}")
endforeach()
atp_gpu_test(shard_cuda_edge_test shard_cuda_edge_test.cpp)

# ---- the ZeRO engine: CUDA ops + NCCL against CPU ops + MPI, on one GPU (zero_engine_cuda_test.cpp)
atp_gpu_test(zero_engine_cuda_test zero_engine_cuda_test.cpp)

# ---- the ZeRO engine's elementwise ops: CUDA against CPU (bit for bit), and their bandwidth (atp/ops.h)
atp_gpu_test(ops_cuda_test ops_cuda_test.cu)
atp_gpu_bench(adamw_bench adamw_bench.cu)

# ---- the model's kernels on CUDA (atp/kernels.h, make_cuda_kernels): against double host loops; device times
# (with cuDNN built in, the test expects BF16 attention of the shapes cuDNN takes to run on it: on Hopper)
get_property(_atp_has_cudnn GLOBAL PROPERTY ATP_RUNTIME_HAS_CUDNN)
if(_atp_has_cudnn)
  atp_gpu_test(kernels_cuda_test kernels_cuda_test.cu DEFINES ATP_RUNTIME_HAS_CUDNN=1)
else()
  atp_gpu_test(kernels_cuda_test kernels_cuda_test.cu)
endif()
atp_gpu_bench(kernels_cuda_bench kernels_cuda_bench.cu)
atp_gpu_bench(lt_algos_bench lt_algos_bench.cu) # cuBLASLt's candidates per product: time, same bytes as the first

# ---- our NCCL comm against NCCL called directly, at the trainer's collectives (issue 11): several GPUs under
# mpirun with a TP size argument, so neither a test nor a gpu-check.sh benchmark (tools/multigpu-train.sh runs it)
atp_gpu_executable(comm_bench comm_bench.cpp LIBS ATP::nccl)
